"""SageMaker built-in XGBoost's objectives and evaluation metrics, grouped by what a model predicts.

The family decides which labels a channel may hold, what `evaluation.json` reports, and what the
built-in's own metrics (accuracy, f1, r2, ... computed by the container, not by XGBoost) mean.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .data import LabelRule

FAMILIES = {
    "binary": ("binary:logistic", "binary:logitraw", "binary:hinge", "reg:logistic"),
    "regression": ("reg:squarederror", "reg:linear", "reg:squaredlogerror", "reg:pseudohubererror",
                   "reg:absoluteerror", "reg:quantileerror", "reg:gamma", "reg:tweedie"),
    "count": ("count:poisson",),
    "survival": ("survival:cox", "survival:aft"),
    "multiclass": ("multi:softmax", "multi:softprob"),
    "ranking": ("rank:pairwise", "rank:ndcg", "rank:map"),
}
OBJECTIVES = tuple(name for names in FAMILIES.values() for name in names)
RENAMED = {"reg:linear": "reg:squarederror"}  # XGBoost deprecated the old name

# Metrics the built-in accepts (its maximize and minimize lists) and which way is better.
MAXIMIZE = ("accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg",
            "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro", "recall_micro",
            "pre", "interval-regression-accuracy")
MINIMIZE = ("aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik", "logloss", "mae", "mape",
            "merror", "mlogloss", "mphe", "mse", "poisson-nloglik", "rmse", "rmsle", "tweedie-nloglik", "quantile")
EVAL_METRICS = MAXIMIZE + MINIMIZE
WITH_AT = ("error", "ndcg", "map", "pre")  # "error@0.7", "ndcg@5"
# Computed here from the predictions (XGBoost does not have them), as the built-in does.
CUSTOM = ("accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "mse", "precision", "precision_macro",
          "precision_micro", "r2", "recall", "recall_macro", "recall_micro")
BINARY_ONLY = ("f1_binary", "precision", "recall")  # the positive class's: undefined for multi-class


def family(objective: str) -> str:
    return next(name for name, members in FAMILIES.items() if objective in members)


def maximize(metric: str) -> bool:
    return metric.split("@")[0] in MAXIMIZE


def label_rule(objective: str, num_class: int | None) -> LabelRule:
    """The labels the objective takes: another fails naming its file and row, before any training."""
    return LabelRule(*_label_problem(objective, num_class))


def _label_problem(objective: str, num_class: int | None) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    kind = family(objective)
    finite = np.isfinite
    if kind == "binary" and objective != "reg:logistic":
        return (lambda y: ~np.isin(y, (0.0, 1.0))), "a binary classifier needs 0 or 1"
    if objective == "reg:logistic":
        return (lambda y: ~(finite(y) & (y >= 0) & (y <= 1))), "objective reg:logistic needs a label in [0, 1]"
    if kind == "multiclass":
        top = (num_class or 2) - 1
        return ((lambda y: ~(finite(y) & (y >= 0) & (y <= top) & (y == np.round(y)))),
                f"objective {objective} with num_class={num_class} needs a class 0 .. {top}")
    if objective in ("count:poisson", "reg:tweedie") or kind == "ranking":
        return (lambda y: ~(finite(y) & (y >= 0))), f"objective {objective} needs a label >= 0"
    if objective == "reg:gamma":
        return (lambda y: ~(finite(y) & (y > 0))), "objective reg:gamma needs a label > 0"
    if objective == "reg:squaredlogerror":
        return (lambda y: ~(finite(y) & (y > -1))), "objective reg:squaredlogerror needs a label > -1"
    if objective == "survival:aft":
        return (lambda y: ~(finite(y) & (y > 0))), "objective survival:aft needs a survival time > 0"
    return (lambda y: ~finite(y)), f"objective {objective} needs a finite number"


def predicted_labels(objective: str, predictions: np.ndarray) -> np.ndarray:
    """Classes from what Booster.predict gives: probabilities, margins (logitraw), classes (hinge, softmax)."""
    if predictions.ndim == 2:
        return np.argmax(predictions, axis=1).astype(np.float64)
    if objective == "binary:logitraw":
        return (predictions > 0).astype(np.float64)
    if objective in ("multi:softmax", "binary:hinge"):
        return predictions.astype(np.float64)
    return (predictions >= 0.5).astype(np.float64)


def _per_class(labels: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    classes = np.union1d(labels, predicted)  # as scikit-learn: every class either side names
    tp = np.array([np.sum((predicted == c) & (labels == c)) for c in classes], dtype=np.float64)
    fp = np.array([np.sum((predicted == c) & (labels != c)) for c in classes], dtype=np.float64)
    fn = np.array([np.sum((predicted != c) & (labels == c)) for c in classes], dtype=np.float64)
    return classes, tp, fp, fn


def _ratio(top: np.ndarray | float, bottom: np.ndarray | float):
    return np.divide(top, bottom, out=np.zeros_like(np.asarray(top, dtype=np.float64)), where=np.asarray(bottom) > 0)


def classification_metric(name: str, labels: np.ndarray, predicted: np.ndarray) -> float:
    if name == "accuracy":
        return float(np.mean(predicted == labels)) if labels.size else 0.0
    classes, tp, fp, fn = _per_class(labels, predicted)
    if name in BINARY_ONLY:
        tp, fp, fn = (a[classes == 1.0].sum() for a in (tp, fp, fn))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    if name in ("precision", "recall", "f1_binary"):
        return float({"precision": precision, "recall": recall, "f1_binary": f1}[name])
    if name.endswith("_micro"):
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        return float(_ratio(tp, tp + (fp if name.startswith("precision") else fn)))
    if name == "balanced_accuracy":
        present = np.isin(classes, labels)
        return float(np.mean(recall[present]))
    return float(np.mean({"precision_macro": precision, "recall_macro": recall, "f1": f1, "f1_macro": f1}[name]))


def regression_metric(name: str, labels: np.ndarray, predictions: np.ndarray) -> float:
    error = predictions.astype(np.float64) - labels
    if name == "mse":
        return float(np.mean(error ** 2))
    spread = np.sum((labels - labels.mean()) ** 2)
    return float(1.0 - np.sum(error ** 2) / spread) if spread > 0 else 0.0  # r2


def custom_metric(names: list[str], objective: str) -> Callable | None:
    """XGBoost's custom_metric for the container-computed metrics in `names`, or None without any."""
    wanted = [n for n in names if n in CUSTOM]
    if not wanted:
        return None

    def evaluate(predictions: np.ndarray, data) -> list[tuple[str, float]]:
        labels = data.get_label().astype(np.float64)
        predicted = predicted_labels(objective, predictions)
        return [(n, regression_metric(n, labels, predictions) if n in ("mse", "r2")
                 else classification_metric(n, labels, predicted)) for n in wanted]

    return evaluate
