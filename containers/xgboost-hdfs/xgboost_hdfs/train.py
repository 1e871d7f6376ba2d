"""Training: hyperparameters, XGBoost rounds with built-in-style metric lines, threshold, artifact."""
from __future__ import annotations

import json
import logging
import os
import platform
from datetime import datetime, timezone

import numpy as np
import xgboost as xgb

from byoc import memory, metrics
from byoc.errors import DataError
from byoc.hyperparameters import Param, parse
from byoc.training import TrainingEnv, stop_signal

from . import checkpoints
from .data import RAW_LOGS, Dataset, load_channel, match_widths, memory_needed, settle_libsvm_base
from .distributed import Cluster
from .evaluation import ScoreScale, best_f1_threshold, report
from .logparse import TemplateMatcher, load_templates

log = logging.getLogger(__name__)

MODEL_FILE = "xgboost-model"  # same name as SageMaker's built-in XGBoost; native UBJSON format
METADATA_FILE = "metadata.json"
OBJECTIVES = ("binary:logistic", "reg:logistic", "binary:logitraw", "binary:hinge")
EVAL_METRICS = ("auc", "aucpr", "logloss", "error", "rmse", "mae", "pre", "map", "ndcg")


def _positive_or_auto(raw: str):
    return "auto" if raw.strip().lower() == "auto" else float(raw)


def _threshold(raw: str):
    if raw.strip().lower() == "auto":
        return "auto"
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("a threshold is a probability in [0, 1]")
    return value


def _eval_metrics(raw: str) -> list[str]:
    names = [m.strip() for m in raw.split(",") if m.strip()]
    for name in names:
        if name.split("@")[0] not in EVAL_METRICS:
            raise ValueError(f"{name!r} is not one of {', '.join(EVAL_METRICS)} (optionally with @k or @t)")
    if not names:
        raise ValueError("no metric given")
    return names


HYPERPARAMETERS = [
    Param("num_round", int, 100, "boosting rounds", low=1, high=100000),
    Param("early_stopping_rounds", int, None, "stop when the last eval_metric on validation has not improved for this many rounds", low=1),
    Param("eval_metric", str, ["logloss", "auc"], "comma-separated metrics printed each round; the last one drives early stopping", parse=_eval_metrics),
    Param("objective", str, "binary:logistic", "learning objective", choices=OBJECTIVES),
    Param("booster", str, "gbtree", "tree booster", choices=("gbtree", "dart")),
    Param("eta", float, 0.3, "learning rate", low=0.0, high=1.0),
    Param("gamma", float, 0.0, "minimum loss reduction to split", low=0.0),
    Param("max_depth", int, 6, "maximum tree depth (0: no limit, lossguide only)", low=0, high=64),
    Param("min_child_weight", float, 0.1, "minimum hessian in a leaf; low because anomalies are rare", low=0.0),
    Param("max_delta_step", float, 0.0, "cap on each leaf's step", low=0.0),
    Param("subsample", float, 1.0, "row sampling per tree", low=0.0, high=1.0),
    Param("colsample_bytree", float, 1.0, "column sampling per tree", low=0.0, high=1.0),
    Param("colsample_bylevel", float, 1.0, "column sampling per level", low=0.0, high=1.0),
    Param("colsample_bynode", float, 1.0, "column sampling per split", low=0.0, high=1.0),
    Param("lambda", float, 1.0, "L2 regularisation", low=0.0),
    Param("alpha", float, 0.0, "L1 regularisation", low=0.0),
    Param("tree_method", str, "hist", "tree construction", choices=("auto", "exact", "approx", "hist")),
    Param("max_bin", int, 256, "histogram bins (hist, approx)", low=2),
    Param("grow_policy", str, "depthwise", "how trees grow", choices=("depthwise", "lossguide")),
    Param("max_leaves", int, 0, "maximum leaves (0: no limit)", low=0),
    Param("num_parallel_tree", int, 1, "trees per round (random-forest style)", low=1),
    Param("scale_pos_weight", float, "auto", "weight of positives; auto = negatives / positives in train", parse=_positive_or_auto),
    Param("base_score", float, None, "initial prediction (default: estimated by XGBoost)", low=0.0, high=1.0),
    Param("rate_drop", float, None, "dart: dropout rate", low=0.0, high=1.0),
    Param("skip_drop", float, None, "dart: probability of skipping dropout", low=0.0, high=1.0),
    Param("seed", int, 0, "random seed"),
    Param("nthread", int, None, "threads (default: all CPUs)", low=1),
    Param("verbosity", int, 1, "XGBoost log level", low=0, high=3),
    Param("collective_timeout", int, 900, "multi-instance jobs: seconds a host waits for the others", low=10),
    Param("checkpoint_frequency", int, 10, "with a checkpoint configuration: rounds between checkpoints", low=1, high=100000),
    Param("csv_weights", int, 0, "1: in CSV channels the column after the label is each row's instance weight", choices=(0, 1)),
    Param("threshold", float, "auto", "decision threshold, a probability (for binary:logitraw too); auto = best F1 on the earlier half of the validation channel, within 0.05-0.95 (0.5 without one)", parse=_threshold),
]
_XGB_NAMES = {"lambda": "reg_lambda", "alpha": "reg_alpha"}
_NOT_XGB = {"num_round", "early_stopping_rounds", "threshold", "eval_metric", "collective_timeout", "checkpoint_frequency",
            "csv_weights"}


def xgboost_params(hp: dict, positives: float, rows: float) -> dict:
    params = {_XGB_NAMES.get(k, k): v for k, v in hp.items() if k not in _NOT_XGB and v is not None}
    params["eval_metric"] = hp["eval_metric"]
    if params["scale_pos_weight"] == "auto":
        params["scale_pos_weight"] = float((rows - positives) / positives) if positives else 1.0
    params.setdefault("nthread", os.cpu_count() or 1)
    return params


class _PrintRounds(xgb.callback.TrainingCallback):
    """Per-round lines exactly as SageMaker's built-in XGBoost prints them."""

    def before_training(self, model):
        self.start = model.num_boosted_rounds()  # a resumed job goes on counting from its checkpoint
        return model

    def after_iteration(self, model, epoch, evals_log) -> bool:
        metrics.print_round(self.start + epoch, {f"{data}-{name}": values[-1]
                                    for data, results in evals_log.items() for name, values in results.items()})
        return False


def train(env: TrainingEnv) -> None:
    hp = parse(env.hyperparameters, HYPERPARAMETERS)
    with Cluster(env, hp["collective_timeout"]) as cluster:
        _train(env, hp, cluster)


def _load(env: TrainingEnv, hp: dict) -> tuple[Dataset, Dataset | None]:
    matcher = TemplateMatcher()
    memory.require(memory_needed(env, "train") + memory_needed(env, "validation"),
                   "loading the train and validation channels")
    train_set = load_channel(env, "train", matcher, csv_weights=hp["csv_weights"] == 1)
    validation = load_channel(env, "validation", matcher, required=False, like=train_set, csv_weights=hp["csv_weights"] == 1)
    _check_compatible(train_set, validation)
    if hp["early_stopping_rounds"] and validation is None:
        raise DataError("early_stopping_rounds needs a 'validation' channel; add one, or leave early_stopping_rounds out")
    return train_set, validation


def _train(env: TrainingEnv, hp: dict, cluster: Cluster) -> None:
    scale = ScoreScale(hp["objective"])
    if hp["threshold"] != "auto":
        scale.score(hp["threshold"])  # a threshold logitraw cannot use fails before any work
    try:
        train_set, validation = _load(env, hp)
    except DataError as problem:
        cluster.agree(problem)  # raises here, and on the other hosts in their agree(None)
        raise
    cluster.agree(None)
    settle_libsvm_base(cluster.gather, train_set, validation)
    match_widths(cluster.gather(train_set.features.shape[1]), train_set, validation)
    positives, rows = cluster.total([train_set.labels.sum(), len(train_set.labels)])
    if positives == 0 or positives == rows:
        raise DataError(f"the train channel has only one class ({int(positives)} of {int(rows)} rows are 1); "
                        "it needs both normal (0) and anomalous (1) examples: add rows of the missing class")

    params = xgboost_params(hp, positives, rows)
    log.info("training on %d rows x %d features (%d positive)%s; params %s", *train_set.features.shape,
             int(train_set.labels.sum()), f" on this host, {int(rows)} on all {cluster.size}" if cluster.size > 1 else "",
             params)
    dtrain = xgb.DMatrix(train_set.features, train_set.labels, weight=train_set.weights, feature_names=train_set.feature_names)
    evals = [(dtrain, "train")]
    if validation is not None:
        dvalid = xgb.DMatrix(validation.features, validation.labels, weight=validation.weights,
                             feature_names=validation.feature_names)
        evals.append((dvalid, "validation"))
    data = _data_identity(env, cluster, train_set, validation)
    booster = checkpoints.train(params, dtrain, hp["num_round"], evals, folder=env.checkpoint_dir,
                                frequency=hp["checkpoint_frequency"], early_stopping_rounds=hp["early_stopping_rounds"],
                                cluster=cluster, callbacks=[_PrintRounds()] if cluster.is_leader else [], data=data)

    # Every host holds the same booster; the threshold and the evaluation need every host's rows.
    scored = validation or train_set
    choose = hp["threshold"] == "auto" and validation is not None and scale.choosable
    # Rows are in file order (chronological for the HDFS layouts): the threshold is chosen on each
    # host's earlier half of validation and scored on the later half, rows it never saw.
    half = _earlier_half(cluster, len(scored.labels)) if choose else 0
    scores = _predict(booster, scored.features)
    parts = [(np.concatenate(cluster.gather(scored.labels[rows])), np.concatenate(cluster.gather(scores[rows])))
             for rows in (slice(0, half), slice(half, None))]
    if not cluster.is_leader:
        # Exit only once the leader has saved: local mode (docker-compose --abort-on-container-exit)
        # stops every container of the job as soon as one exits.
        cluster.barrier()
        log.info("done as rank %d; %s saved the model", cluster.rank, cluster.hosts[0])
        return
    (chosen_on, chosen_scores), (labels, scores) = parts
    if choose:
        threshold = best_f1_threshold(chosen_on, chosen_scores, scale.score(0.5), *scale.bounds)
    else:
        threshold = scale.score(0.5 if hp["threshold"] == "auto" else hp["threshold"])
    evaluation = report(labels, scores, threshold, scale, chosen_on if choose else None, chosen_scores)
    evaluation["dataset"] = "validation" if validation is not None else "train"
    evaluation["best_iteration"] = getattr(booster, "best_iteration", hp["num_round"] - 1)
    evaluation["hosts"] = cluster.size
    for name in ("accuracy", "precision", "recall", "f1", "false_positive_rate", "roc_auc"):
        metrics.print_metric(f"{evaluation['dataset']}-{name}", evaluation[name])
    metrics.print_metric(f"{evaluation['dataset']}-f1_at_0.5", evaluation["at_probability_0.5"]["f1"])

    with stop_signal.deferred():  # a stop now would leave a model without its metadata
        _save(env, booster, train_set, hp, scale, threshold, evaluation)
        if env.checkpoint_dir is not None:
            checkpoints.mark_finished(env.checkpoint_dir, booster.num_boosted_rounds())
    cluster.barrier()  # the other hosts may exit now


def _predict(booster: xgb.Booster, features: np.ndarray) -> np.ndarray:
    limit = getattr(booster, "best_iteration", None)
    rounds = (0, limit + 1) if limit is not None else (0, 0)
    return booster.inplace_predict(features, iteration_range=rounds)


def _earlier_half(cluster: Cluster, rows: int) -> int:
    """This host's count of the earlier half: about half its rows, and half of all rows over all
    hosts exactly, as one host would split them (odd counts round up on the first hosts)."""
    counts = cluster.gather(rows)
    halves = [n // 2 for n in counts]
    odd = [rank for rank, n in enumerate(counts) if n % 2][: sum(counts) // 2 - sum(halves)]
    return halves[cluster.rank] + (cluster.rank in odd)


def _data_identity(env: TrainingEnv, cluster: Cluster, train_set: Dataset, validation: Dataset | None) -> dict:
    """Each channel's digest over every host's share, for the checkpoint fingerprint (only with checkpoints)."""
    if env.checkpoint_dir is None:
        return {}
    own = [checkpoints.data_identity(d.features, d.labels, d.feature_names) if d is not None else None
           for d in (train_set, validation)]
    shares = cluster.gather(own)
    return {name: checkpoints.combined([host[i] for host in shares]) for i, name in enumerate(("train", "validation"))}


def _check_compatible(train_set: Dataset, validation: Dataset | None) -> None:
    if validation is None:
        return
    if validation.features.shape[1] != train_set.features.shape[1]:
        raise DataError(f"validation has {validation.features.shape[1]} features but train has "
                        f"{train_set.features.shape[1]}; both channels need the same columns")
    if validation.source != train_set.source:
        raise DataError(f"train is {train_set.source} but validation is {validation.source}; use one format")


def _save(env: TrainingEnv, booster: xgb.Booster, dataset: Dataset, hp: dict, scale: ScoreScale, threshold: float,
          evaluation: dict) -> None:
    """Model and metadata only after everything succeeded, so a failed job leaves no model."""
    env.model_dir.mkdir(parents=True, exist_ok=True)
    env.output_data_dir.mkdir(parents=True, exist_ok=True)
    if getattr(booster, "best_iteration", None) is not None:
        booster = booster[: booster.best_iteration + 1]
    booster.save_model(str(env.model_dir / MODEL_FILE) + ".ubj")
    os.replace(str(env.model_dir / MODEL_FILE) + ".ubj", env.model_dir / MODEL_FILE)
    metadata = {
        "format": 1,
        "feature_names": dataset.feature_names,
        "feature_source": dataset.source,
        "libsvm_index_base": dataset.index_base,  # serving reads libsvm requests the same way
        "templates": load_templates() if dataset.source == RAW_LOGS else None,
        "objective": hp["objective"],
        "threshold": float(threshold),  # in score space: serving compares scores >= threshold
        "threshold_probability": scale.probability(threshold),
        "versions": {"xgboost": xgb.__version__, "python": platform.python_version()},
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (env.model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    (env.output_data_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
    if dataset.report:
        (env.output_data_dir / "extraction.json").write_text(json.dumps(dataset.report, indent=2))
    log.info("saved %s and %s; threshold %.4f", MODEL_FILE, METADATA_FILE, threshold)
