"""_kfold / _num_cv_round: the built-in's (repeated) k-fold cross-validation on train + validation rows.

Each fold's rounds print as usual, then one line per repetition (and one over all of them) with the
folds' mean of every metric, "[num_round]<TAB>train-rmse:...<TAB>validation-rmse:...", which the
built-in prints too. The fold models are saved as xgboost-model-0 ... like the built-in's; the
out-of-fold predictions go to predictions.csv (label, mean prediction; for classification label,
mean probability of the predicted class, most frequent class). The job's xgboost-model is then
trained as without _kfold, so that the endpoint has one model to serve.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import scipy.sparse as sp
import xgboost as xgb

from byoc import metrics
from byoc.errors import HyperparameterError

from .objectives import family

log = logging.getLogger(__name__)


def fold_ids(labels: np.ndarray, k: int, rng: np.random.Generator, stratified: bool) -> np.ndarray:
    """Each row's fold 0..k-1; stratified: every class spread evenly over the folds."""
    ids = np.empty(labels.size, dtype=int)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if stratified else [np.arange(labels.size)]
    offset = 0
    for rows in groups:
        ids[rng.permutation(rows)] = (np.arange(rows.size) + offset) % k
        offset += rows.size  # the next class starts where this one ended: fold sizes stay even
    return ids


def cross_validate(env, hp: dict, cluster, params: dict, train_set, validation) -> None:
    from .train import boost, matrix, predict  # train imports this module only for _kfold jobs

    if cluster.size > 1:
        raise HyperparameterError("_kfold runs on one instance here; use instance_count=1 for cross-validation")
    parts = [d for d in (train_set, validation) if d is not None]
    if any(d.qid is not None for d in parts):
        raise HyperparameterError("_kfold with query groups (libsvm qid) is not supported here: leave _kfold out")
    features = (sp.vstack([d.features for d in parts], format="csr") if sp.issparse(parts[0].features)
                else np.concatenate([d.features for d in parts]))
    labels = np.concatenate([d.labels for d in parts])
    k, repeats = hp["_kfold"], hp["_num_cv_round"] or 1
    if labels.size < k:
        raise HyperparameterError(f"_kfold={k} needs at least {k} rows; train + validation have {labels.size}")
    kind = family(hp["objective"])
    classification = kind in ("binary", "multiclass")
    rng = np.random.default_rng(hp["seed"] % 2**32)
    log.info("%d-round %d-fold cross-validation on %d rows", repeats, k, labels.size)
    env.model_dir.mkdir(parents=True, exist_ok=True)
    env.output_data_dir.mkdir(parents=True, exist_ok=True)
    oof = np.zeros((labels.size, repeats))
    oof_class = np.zeros((labels.size, repeats))
    summaries, everything = [], []
    for repeat in range(repeats):
        ids = fold_ids(labels, k, rng, classification)
        results = []
        for fold in range(k):
            held = ids == fold
            part = type(train_set)(features[~held], labels[~held], train_set.feature_names, train_set.source)
            rest = type(train_set)(features[held], labels[held], train_set.feature_names, train_set.source)
            dtrain, dvalid = matrix(part, hp["objective"]), matrix(rest, hp["objective"])
            log.info("cross-validation round %d, fold %d of %d", repeat + 1, fold + 1, k)
            recorder = _Recorder()
            booster = boost(env, hp, cluster, params, dtrain, [(dtrain, "train"), (dvalid, "validation")], {},
                            checkpointed=False, extra=[recorder])
            results.append(recorder.last)
            booster.save_model(str(env.model_dir / f"xgboost-model-{repeat * k + fold}"))
            scores = predict(booster, rest.features)
            if classification:
                if scores.ndim == 2:
                    oof_class[held, repeat] = np.argmax(scores, axis=1)
                    oof[held, repeat] = scores.max(axis=1)
                else:
                    oof_class[held, repeat] = _classes(hp["objective"], scores)
                    oof[held, repeat] = scores
            else:
                oof[held, repeat] = scores
        everything += results
        summaries.append(_print_mean(hp["num_round"], results))
    overall = _print_mean(hp["num_round"], everything) if repeats > 1 else summaries[0]
    columns = [labels, oof.mean(axis=1)]
    if classification:
        columns.append(np.array([np.bincount(row.astype(int)).argmax() for row in oof_class]))
    np.savetxt(env.output_data_dir / "predictions.csv", np.column_stack(columns), delimiter=",", fmt="%f")
    (env.output_data_dir / "cross_validation.json").write_text(json.dumps(
        {"folds": k, "repetitions": repeats, "rows": int(labels.size), "mean": overall, "per_repetition": summaries},
        indent=2))


def _classes(objective: str, scores: np.ndarray) -> np.ndarray:
    if objective == "binary:logitraw":
        return (scores > 0).astype(float)
    return (scores >= 0.5).astype(float) if objective != "binary:hinge" else scores


class _Recorder(xgb.callback.TrainingCallback):
    """The fold's last round of every metric (the booster's final state, as the built-in averages)."""

    def __init__(self):
        super().__init__()
        self.last: dict = {}

    def after_iteration(self, model, epoch, evals_log) -> bool:
        self.last = {f"{data}-{name}": float(values[-1])
                     for data, results in evals_log.items() for name, values in results.items()}
        return False


def _print_mean(num_round: int, results: list[dict]) -> dict:
    names = list(results[0])
    means = {name: float(np.mean([r[name] for r in results])) for name in names}
    metrics.print_round(num_round, means)
    return means
