"""What an answer holds per row: our default, or the outputs SAGEMAKER_INFERENCE_OUTPUT selects.

SAGEMAKER_INFERENCE_OUTPUT is SageMaker built-in XGBoost's "selectable inference output": a comma-
separated list of keys, answered per row in that order (CSV columns; JSON and JSON Lines records).
A key the model's objective has no value for is answered as null (CSV: nan) with a warning at
load, as the built-in does; a key the built-in does not know fails the start.

Unset, the answers are ours: {"score", "predicted_label"} for binary models, {"score": [one
probability per class], "predicted_label"} for multi:softprob, {"score"} for every other objective
(regression, ranking, count, survival): always the built-in's own default answer plus fields.
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

OUTPUT_VARIABLE = "SAGEMAKER_INFERENCE_OUTPUT"
SELECTABLE = ("predicted_label", "labels", "probability", "probabilities", "raw_score", "raw_scores",
              "predicted_score")
_LABELLED = ("predicted_label", "labels", "raw_score", "raw_scores")
_PROBABILISTIC = (*_LABELLED, "probability", "probabilities")
# The keys with a value per objective, as the built-in lists them; every objective outside
# binary:* and multi:* answers a score (the built-in refuses those it does not list).
KEYS_BY_OBJECTIVE = {
    "binary:logistic": _PROBABILISTIC,
    "binary:logitraw": _LABELLED,
    "binary:hinge": _LABELLED,
    "multi:softprob": _PROBABILISTIC,
    "multi:softmax": _LABELLED,
}


def selected_keys(raw: str | None) -> tuple[str, ...] | None:
    """The keys SAGEMAKER_INFERENCE_OUTPUT names (spaces and case ignored, as the built-in does),
    without repeats; None when it is unset or blank."""
    if raw is None or not raw.strip():
        return None
    keys = tuple(dict.fromkeys(key.strip().lower() for key in raw.split(",")))
    unknown = [key for key in keys if key not in SELECTABLE]
    if unknown:
        raise ValueError(f"{OUTPUT_VARIABLE}={raw!r}: unknown output key(s) {', '.join(map(repr, unknown))}; "
                         f"the keys are {', '.join(SELECTABLE)}")
    return keys


class Answers:
    """Scores (XGBoost's predictions, one per row or one row of class probabilities) to answer records."""

    def __init__(self, objective: str, threshold: float | None, num_class: int, keys: Sequence[str] | None):
        self.objective, self.threshold, self.keys = objective, threshold, keys
        self.binary, self.multi = objective.startswith("binary:"), objective.startswith("multi:")
        self.classes = list(range(2 if self.binary else num_class))
        applicable = KEYS_BY_OBJECTIVE.get(objective, () if self.binary or self.multi else ("predicted_score",))
        self.missing = [key for key in keys or () if key not in applicable]
        if self.missing:
            log.warning("%s: %s has no %s; answered as null (CSV: nan). Keys with a value for it: %s",
                        OUTPUT_VARIABLE, objective, ", ".join(self.missing), ", ".join(applicable) or "none")
        #: the fields of a CSV line (Runtime.encode writes a default answer's list of scores as the columns)
        self.csv_fields = tuple(keys) if keys else ("score",)

    @classmethod
    def from_env(cls, objective: str, threshold: float | None, num_class: int) -> "Answers":
        return cls(objective, threshold, num_class, selected_keys(os.environ.get(OUTPUT_VARIABLE)))

    def records(self, scores: np.ndarray) -> list[dict]:
        if self.keys is None:
            return self._default(scores)
        columns = [self._column(key, scores) for key in self.keys]
        return [dict(zip(self.keys, row)) for row in zip(*columns)]

    def _default(self, scores: np.ndarray) -> list[dict]:
        # Python floats and ints in one call each (float() per numpy scalar is 3x slower).
        if self.binary:
            labels = (scores >= self.threshold).astype(np.int8).tolist()
            return [{"score": s, "predicted_label": l} for s, l in zip(scores.tolist(), labels)]
        if self.multi:
            return [{"score": s, "predicted_label": l} for s, l in zip(scores.tolist(), self._labels(scores))]
        return [{"score": s} for s in scores.tolist()]

    def _labels(self, scores: np.ndarray) -> list[int]:
        if scores.ndim == 2:  # multi:softprob: the likeliest class
            return scores.argmax(axis=1).tolist()
        if self.multi or self.objective == "binary:hinge":  # the model answers the class itself
            return scores.astype(np.int64).tolist()
        return (scores >= self.threshold).astype(np.int8).tolist()

    def _column(self, key: str, scores: np.ndarray) -> list:
        """One key's value for every row. Values are the built-in's, computed in float64 as it does."""
        rows = len(scores)
        if key in self.missing:
            return [None] * rows
        if key == "predicted_score":
            return scores.tolist()
        if key == "predicted_label":
            return self._labels(scores)
        if key == "labels":
            return [self.classes] * rows
        per_class = scores.ndim == 2
        if key in ("probability", "raw_score"):  # of the likeliest class, or binary:*'s own value
            return scores.max(axis=1).tolist() if per_class else scores.tolist()
        # probabilities, raw_scores: per class, or [1 - v, v] for a one-score model
        if per_class:
            return scores.tolist()
        value = scores.astype(np.float64)
        return np.stack([1.0 - value, value], axis=1).tolist()
