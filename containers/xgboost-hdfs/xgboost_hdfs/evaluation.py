"""Binary classification metrics, computed with numpy (the image carries no scikit-learn)."""
from __future__ import annotations

import numpy as np

from byoc.errors import HyperparameterError


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return None  # undefined with one class
    # Imported here, not at the top: scipy.stats takes 0.6 s to import, and `serve` imports this
    # package too (cold start), though only training computes metrics.
    from scipy.stats import rankdata

    ranks = rankdata(scores)  # ties share their average rank
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(labels: np.ndarray, scores: np.ndarray, threshold: float, auc: bool = True) -> dict:
    predicted = scores >= threshold
    actual = labels == 1
    tp = int(np.sum(predicted & actual))
    fp = int(np.sum(predicted & ~actual))
    fn = int(np.sum(~predicted & actual))
    tn = int(np.sum(~predicted & ~actual))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    result = {
        "rows": int(labels.size),
        "accuracy": (tp + tn) / labels.size if labels.size else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "threshold": float(threshold),
    }
    if auc:
        result["roc_auc"] = roc_auc(labels, scores)
    return result


def f1_at(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """F1 of `scores >= t` for every t in `thresholds`, from one sort and cumulative counts."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    positives = int(np.sum(labels == 1))
    if positives == 0:
        return np.zeros(thresholds.shape)
    order = np.argsort(scores, kind="stable")[::-1]  # highest score first
    ranked, is_positive = np.asarray(scores, dtype=np.float64)[order], labels[order] == 1
    true_positives = np.cumsum(is_positive)
    # The rows predicted positive at t are a prefix of the ranking: those scoring >= t.
    predicted = ranked.size - np.searchsorted(ranked[::-1], thresholds, side="left")
    tp = np.where(predicted > 0, true_positives[np.maximum(predicted, 1) - 1], 0)
    return 2 * tp / (predicted + positives)  # 2 tp / (2 tp + fp + fn), fp + fn = predicted + positives - 2 tp


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray, default: float, low: float, high: float) -> float:
    """The threshold in [low, high] with the best F1 on these scores; ties go to the one nearest
    the default. Candidates are the midpoints between neighbouring distinct scores (a margin on
    both sides generalises better than a score itself), clipped to the range, the range's ends
    and the default."""
    distinct = np.unique(np.asarray(scores, dtype=np.float64))
    candidates = np.unique(np.concatenate([np.clip((distinct[:-1] + distinct[1:]) / 2, low, high),
                                           [low, high, default]]))
    f1 = f1_at(labels, scores, candidates)
    ties = candidates[f1 >= f1.max() - 1e-12]
    return float(ties[np.argmin(np.abs(ties - default))])


THRESHOLD_RANGE = (0.05, 0.95)  # probabilities: a chosen threshold stays clear of the extremes


class ScoreScale:
    """Thresholds are probabilities for the user; the model's scores (what serving compares with
    the stored threshold) are margins for binary:logitraw, probabilities otherwise."""

    def __init__(self, objective: str):
        self.margins = objective == "binary:logitraw"
        self.choosable = objective != "binary:hinge"  # hinge scores are 0 or 1: nothing to choose
        self.bounds = tuple(self.score(p) for p in THRESHOLD_RANGE)

    def score(self, probability: float) -> float:
        if not self.margins:
            return float(probability)
        if not 0.0 < probability < 1.0:
            raise HyperparameterError(f"threshold={probability:g}: with objective=binary:logitraw the threshold "
                                      "is a probability strictly between 0 and 1 (a margin of log(p / (1 - p)))")
        return float(np.log(probability / (1.0 - probability)))

    def probability(self, score: float) -> float:
        return float(1.0 / (1.0 + np.exp(-score))) if self.margins else float(score)


def report(labels: np.ndarray, scores: np.ndarray, threshold: float, scale: ScoreScale,
           chosen_on: np.ndarray | None, chosen_scores: np.ndarray) -> dict:
    """Quality on rows the threshold never saw, at the threshold and at probability 0.5."""
    evaluation = evaluate(labels, scores, threshold)
    evaluation["threshold_probability"] = scale.probability(threshold)
    at_half = evaluate(labels, scores, scale.score(0.5), auc=False)
    evaluation["at_probability_0.5"] = {k: at_half[k] for k in ("precision", "recall", "f1", "false_positive_rate",
                                                                 "confusion_matrix")}
    if chosen_on is None:
        evaluation["threshold_chosen_on"] = None  # given, or 0.5: every scored row is unseen by it
        return evaluation
    chosen = evaluate(chosen_on, chosen_scores, threshold, auc=False)
    evaluation["threshold_chosen_on"] = {
        "rows": chosen["rows"], "f1": chosen["f1"],
        "how": f"best F1 on each host's earlier half of the validation rows, within probabilities "
               f"{THRESHOLD_RANGE[0]}-{THRESHOLD_RANGE[1]}, ties toward 0.5; the metrics above are on the later half"}
    return evaluation


# Other objective families: the metrics that fit what the model predicts (no threshold).

def regression(labels: np.ndarray, predictions: np.ndarray) -> dict:
    error = predictions.astype(np.float64) - labels
    spread = float(np.sum((labels - labels.mean()) ** 2))
    return {"rmse": float(np.sqrt(np.mean(error ** 2))), "mae": float(np.mean(np.abs(error))),
            "r2": 1.0 - float(np.sum(error ** 2)) / spread if spread > 0 else None}


def multiclass(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    rows = np.arange(labels.size)
    chosen = np.clip(probabilities[rows, labels.astype(int)], 1e-15, 1.0)  # XGBoost's mlogloss clips the same way
    accuracy = float(np.mean(np.argmax(probabilities, axis=1) == labels))
    return {"mlogloss": float(-np.mean(np.log(chosen))), "merror": 1.0 - accuracy, "accuracy": accuracy}


def ranking(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray | None = None) -> dict:
    """Mean NDCG (gain 2^label - 1, as XGBoost's ndcg) and MAP (label > 0 is relevant) over the query
    groups (`groups`: each row's group id; none: the rows are one group)."""
    groups = np.zeros((labels.size, 1)) if groups is None else groups.reshape(labels.size, -1)
    ndcg, average_precision = [], []
    _, ids = np.unique(groups, axis=0, return_inverse=True)
    for group in np.unique(ids):
        rows = ids.ravel() == group
        y, s = labels[rows], scores[rows]
        ranked = y[np.argsort(-s, kind="stable")]
        discount = 1.0 / np.log2(np.arange(2, y.size + 2))
        ideal = np.sum((2.0 ** np.sort(y)[::-1] - 1) * discount)
        ndcg.append(np.sum((2.0 ** ranked - 1) * discount) / ideal if ideal > 0 else 1.0)  # XGBoost: 1 without relevant rows
        relevant = ranked > 0
        hits = np.cumsum(relevant)
        average_precision.append(float(np.sum(hits[relevant] / (np.flatnonzero(relevant) + 1)) / hits[-1])
                                 if hits[-1] else 1.0)
    return {"ndcg": float(np.mean(ndcg)), "map": float(np.mean(average_precision)), "groups": int(len(ndcg))}


def concordance(times: np.ndarray, events: np.ndarray, risks: np.ndarray, limit: int = 20000) -> float | None:
    """Harrell's C-index: of the pairs where the earlier time is an event, the share where that row has
    the higher risk (ties count half). Over at most `limit` evenly spaced rows (the pairs grow as n^2)."""
    if times.size > limit:
        keep = np.linspace(0, times.size - 1, limit).astype(int)
        times, events, risks = times[keep], events[keep], risks[keep]
    concordant = comparable = 0.0
    for start in range(0, times.size, 1024):
        t, e, r = times[start:start + 1024, None], events[start:start + 1024, None], risks[start:start + 1024, None]
        pairs = e & (t < times[None, :])
        comparable += pairs.sum()
        concordant += (pairs & (r > risks[None, :])).sum() + 0.5 * (pairs & (r == risks[None, :])).sum()
    return float(concordant / comparable) if comparable else None


def survival(objective: str, labels: np.ndarray, predictions: np.ndarray) -> dict:
    if objective == "survival:cox":  # a negative label is a censored time; predictions are hazard ratios
        return {"c_index": concordance(np.abs(labels), labels > 0, predictions)}
    result = regression(labels, predictions)  # survival:aft: predicted times, every label an observed one
    result["c_index"] = concordance(labels, np.ones(labels.size, dtype=bool), -predictions)
    return result


def count(labels: np.ndarray, predictions: np.ndarray) -> dict:
    result = regression(labels, predictions)
    mean = np.maximum(predictions.astype(np.float64), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(labels > 0, labels * np.log(labels / mean), 0.0)
    result["poisson_deviance"] = float(np.mean(2 * (term - (labels - mean))))
    return result


def quantile_loss(labels: np.ndarray, predictions: np.ndarray, alpha: float) -> float:
    error = labels - predictions.astype(np.float64)
    return float(np.mean(np.maximum(alpha * error, (alpha - 1) * error)))
