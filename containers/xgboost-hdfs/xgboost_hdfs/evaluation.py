"""Binary classification metrics, computed with numpy (the image carries no scikit-learn)."""
from __future__ import annotations

import numpy as np


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


def evaluate(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    predicted = scores >= threshold
    actual = labels == 1
    tp = int(np.sum(predicted & actual))
    fp = int(np.sum(predicted & ~actual))
    fn = int(np.sum(~predicted & actual))
    tn = int(np.sum(~predicted & ~actual))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "rows": int(labels.size),
        "accuracy": (tp + tn) / labels.size if labels.size else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
        "roc_auc": roc_auc(labels, scores),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "threshold": float(threshold),
    }


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray, default: float) -> float:
    """The threshold with the best F1 on these scores; ties go to the one nearest the default."""
    distinct = np.unique(scores)
    if distinct.size > 2000:  # quantiles are plenty to find the optimum's neighbourhood
        distinct = np.unique(np.quantile(scores, np.linspace(0, 1, 2001)))
    # Midpoints between neighbouring scores: a margin on both sides generalises better than a score itself.
    candidates = (distinct[:-1] + distinct[1:]) / 2
    best, best_f1 = default, evaluate(labels, scores, default)["f1"]
    for threshold in candidates:
        f1 = evaluate(labels, scores, threshold)["f1"]
        if f1 > best_f1 + 1e-12 or (abs(f1 - best_f1) <= 1e-12 and abs(threshold - default) < abs(best - default)):
            best, best_f1 = float(threshold), f1
    return best
