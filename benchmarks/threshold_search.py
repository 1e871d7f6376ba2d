"""The best-F1 threshold search, before and after issue #12, in one run on this machine.

    .venv/bin/python -m benchmarks.threshold_search                 # 115k rows: old and new; 575k: new
    .venv/bin/python -m benchmarks.threshold_search --old-rows 20000

The old search evaluated every one of up to 2,001 candidates with the full metric set (ROC AUC
included, a sort each); the new one sorts once and reads F1 off cumulative counts. Scores are
synthetic, shaped like the HDFS full-scale set (3 % anomalies, most scores near 0, many ties).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "core"), str(REPO / "containers" / "xgboost-hdfs")]

import numpy as np  # noqa: E402

from xgboost_hdfs.evaluation import best_f1_threshold, evaluate, f1_at  # noqa: E402


def old_best_f1_threshold(labels: np.ndarray, scores: np.ndarray, default: float) -> float:
    """The implementation this replaces (xgboost_hdfs/evaluation.py before issue #12)."""
    distinct = np.unique(scores)
    if distinct.size > 2000:
        distinct = np.unique(np.quantile(scores, np.linspace(0, 1, 2001)))
    candidates = (distinct[:-1] + distinct[1:]) / 2
    best, best_f1 = default, evaluate(labels, scores, default)["f1"]
    for threshold in candidates:
        f1 = evaluate(labels, scores, threshold)["f1"]
        if f1 > best_f1 + 1e-12 or (abs(f1 - best_f1) <= 1e-12 and abs(threshold - default) < abs(best - default)):
            best, best_f1 = float(threshold), f1
    return best


def scores_like_hdfs(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.03).astype(np.float32)
    margins = np.where(labels == 1, rng.normal(3, 2, rows), rng.normal(-6, 2, rows))
    scores = (1 / (1 + np.exp(-np.round(margins, 2)))).astype(np.float32)  # rounding: many ties, as trees give
    return labels, scores


def timed(function, *args) -> tuple[float, float]:
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-rows", type=int, default=115_000)
    parser.add_argument("--new-rows", type=int, default=575_061)
    args = parser.parse_args()
    labels, scores = scores_like_hdfs(args.old_rows)
    old, old_seconds = timed(old_best_f1_threshold, labels, scores, 0.5)
    new, new_seconds = timed(best_f1_threshold, labels, scores, 0.5, 0.0, 1.0)  # the old search had no bounds
    f1_old, f1_new = f1_at(labels, scores, [old, new])
    print(f"{args.old_rows:,} rows: old {old_seconds:.2f} s (threshold {old:.4f}, F1 {f1_old:.4f}), "
          f"new {new_seconds:.3f} s (threshold {new:.4f}, F1 {f1_new:.4f})")
    labels, scores = scores_like_hdfs(args.new_rows, seed=1)
    new, new_seconds = timed(best_f1_threshold, labels, scores, 0.5, 0.05, 0.95)
    print(f"{args.new_rows:,} rows: new {new_seconds:.3f} s (threshold {new:.4f} in [0.05, 0.95])")


if __name__ == "__main__":
    main()
