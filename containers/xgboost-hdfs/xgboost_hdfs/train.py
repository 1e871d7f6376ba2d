"""Training: the built-in XGBoost's hyperparameters, rounds with its metric lines, the threshold (binary
objectives) or the metrics that fit the objective, artifact."""
from __future__ import annotations

import ast
import json
import logging
import os
import platform
import re
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import xgboost as xgb

from byoc import memory, metrics
from byoc.errors import DataError, HyperparameterError
from byoc.hyperparameters import Param, parse
from byoc.training import TrainingEnv, stop_signal

from . import checkpoints
from . import evaluation as scoring
from .data import RAW_LOGS, Dataset, load_channel, match_widths, memory_needed, settle_libsvm_base
from .distributed import Cluster
from .evaluation import ScoreScale, best_f1_threshold, report
from .logparse import TemplateMatcher, load_templates
from .objectives import (BINARY_ONLY, CUSTOM, EVAL_METRICS, OBJECTIVES, RENAMED, WITH_AT, custom_metric, family,
                         label_rule, maximize)

log = logging.getLogger(__name__)

MODEL_FILE = "xgboost-model"  # same name as SageMaker's built-in XGBoost; native UBJSON format
METADATA_FILE = "metadata.json"
def _positive_or_auto(raw: str):
    if raw.strip().lower() == "auto":
        return "auto"
    value = float(raw)
    if not value > 0:
        raise ValueError("a weight is > 0")
    return value


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
        metric, at, cut = name.partition("@")
        if metric not in EVAL_METRICS:
            raise ValueError(f"{name!r} is not one of {', '.join(EVAL_METRICS)} (error, ndcg, map, pre with @k or @t)")
        if at and metric not in WITH_AT:
            raise ValueError(f"{name!r}: only {', '.join(WITH_AT)} take @k or @t")
        if at:
            float(cut.rstrip("-"))  # ValueError names the value: "could not convert string to float"
    if not names:
        raise ValueError("no metric given")
    return names


def _tuning_metric(raw: str) -> str:
    channel, _, metric = raw.strip().partition(":")
    if channel not in ("validation", "train") or metric not in EVAL_METRICS:
        raise ValueError(f"expected validation:<metric> with a metric of {', '.join(EVAL_METRICS)}")
    return metric


def _choice_list(allowed: tuple) -> Callable[[str], list[str]]:
    def parse(raw: str) -> list[str]:
        names = [n.strip() for n in raw.split(",") if n.strip()]
        wrong = [n for n in names if n not in allowed]
        if wrong or not names:
            raise ValueError(f"{', '.join(wrong) or 'nothing'} not in {', '.join(allowed)}")
        return names
    return parse


def _literal(kind: str) -> Callable[[str], str]:
    """monotone_constraints "(1,0,-1)" and interaction_constraints "[[0,1],[2,3]]", as XGBoost takes them."""
    def parse(raw: str) -> str:
        value = ast.literal_eval(raw.strip())
        if kind == "tuple":
            items = list(value) if isinstance(value, (tuple, list)) else [value]
            if not items or any(v not in (-1, 0, 1) or isinstance(v, bool) for v in items):
                raise ValueError("expected a tuple of -1, 0 and 1, one a feature, e.g. (1,0,-1)")
            return "(" + ",".join(str(int(v)) for v in items) + ")"
        if not (isinstance(value, list) and value and all(isinstance(g, list) and g for g in value)
                and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for g in value for i in g)):
            raise ValueError("expected lists of feature indices, e.g. [[0,1],[2,3]]")
        return str(value).replace(" ", "")
    return parse


_TRUE_FALSE = ("true", "false")
_UPDATERS = ("grow_colmaker", "distcol", "grow_histmaker", "grow_skmaker", "grow_quantile_histmaker", "sync",
             "refresh", "prune", "shotgun", "coord_descent")

HYPERPARAMETERS = [
    Param("num_round", int, 100, "boosting rounds", low=1),
    Param("early_stopping_rounds", int, None, "stop when the early-stopping metric (the tuning job's objective metric, else the last eval_metric) on validation has not improved for this many rounds", low=1),
    Param("eval_metric", str, None, "comma-separated metrics printed each round (default: logloss,auc for binary objectives, XGBoost's default for the others)", parse=_eval_metrics, shows="comma-separated: " + ", ".join(EVAL_METRICS) + " (error, ndcg, map, pre with @k or @t)"),
    Param("objective", str, "binary:logistic", "learning objective (families: see Drop-in below)", choices=OBJECTIVES),
    Param("num_class", int, None, "number of classes, required by multi:softmax and multi:softprob (labels 0 .. num_class-1)", low=2),
    Param("booster", str, "gbtree", "booster", choices=("gbtree", "gblinear", "dart")),
    Param("eta", float, 0.3, "learning rate", low=0.0, high=1.0, aliases=("learning_rate",)),
    Param("gamma", float, 0.0, "minimum loss reduction to split", low=0.0, aliases=("min_split_loss",)),
    Param("max_depth", int, 6, "maximum tree depth (0: no limit, lossguide only)", low=0),
    Param("min_child_weight", float, 0.1, "minimum hessian in a leaf; low because anomalies are rare (XGBoost's default: 1)", low=0.0),
    Param("max_delta_step", float, 0.0, "cap on each leaf's step", low=0.0),
    Param("subsample", float, 1.0, "row sampling per tree", low=0.0, high=1.0, low_open=True),
    Param("sampling_method", str, None, "how rows are sampled", choices=("uniform", "gradient_based")),
    Param("colsample_bytree", float, 1.0, "column sampling per tree", low=0.0, high=1.0, low_open=True),
    Param("colsample_bylevel", float, 1.0, "column sampling per level", low=0.0, high=1.0, low_open=True),
    Param("colsample_bynode", float, 1.0, "column sampling per split", low=0.0, high=1.0, low_open=True),
    Param("lambda", float, 1.0, "L2 regularisation", low=0.0, aliases=("reg_lambda",)),
    Param("alpha", float, 0.0, "L1 regularisation", low=0.0, aliases=("reg_alpha",)),
    Param("tree_method", str, "hist", "tree construction (gpu_hist: hist, this image has no GPU)", choices=("auto", "exact", "approx", "hist", "gpu_hist")),
    Param("max_bin", int, 256, "histogram bins (hist, approx)", low=2),
    Param("grow_policy", str, "depthwise", "how trees grow", choices=("depthwise", "lossguide")),
    Param("max_leaves", int, 0, "maximum leaves (0: no limit)", low=0),
    Param("num_parallel_tree", int, 1, "trees per round (random-forest style)", low=1),
    Param("monotone_constraints", str, None, "per feature -1/0/1, e.g. `(1,0,-1)`; tree_method exact or hist", parse=_literal("tuple"), shows="tuple of -1, 0, 1"),
    Param("interaction_constraints", str, None, "feature index groups that may interact, e.g. `[[0,1],[2,3]]`; tree_method exact, hist or approx", parse=_literal("nested"), shows="list of lists of feature indices"),
    Param("max_cat_to_onehot", int, None, "categorical splits: one-hot below this many categories", low=1),
    Param("max_cached_hist_node", int, None, "hist: histogram cache size in nodes", low=1),
    Param("updater", str, None, "comma-separated tree updaters (distcol, grow_skmaker: removed from XGBoost, run as grow_colmaker, grow_histmaker)", parse=_choice_list(_UPDATERS), shows="comma-separated: " + ", ".join(_UPDATERS)),
    Param("process_type", str, None, "update: refresh or prune an existing model's trees", choices=("default", "update")),
    Param("refresh_leaf", int, None, "updater refresh: also update leaf values", low=0, high=1),
    Param("scale_pos_weight", float, "auto", "binary: weight of positives; auto = negatives / positives in train (ignored by other objectives)", parse=_positive_or_auto, shows="float > 0 or `auto`"),
    Param("base_score", float, None, "initial prediction (default: estimated by XGBoost; strictly between 0 and 1 for logistic objectives)", low=0.0),
    Param("tweedie_variance_power", float, None, "reg:tweedie: variance power", low=1.0, high=2.0, low_open=True, high_open=True),
    Param("quantile_alpha", float, None, "reg:quantileerror (required there): the quantile", low=0.0, high=1.0, low_open=True, high_open=True),
    Param("huber_slope", float, None, "reg:pseudohubererror: the delta", low=0.0, low_open=True),
    Param("aft_loss_distribution", str, None, "survival:aft: distribution of the log survival time", choices=("normal", "logistic", "extreme")),
    Param("aft_loss_distribution_scale", float, None, "survival:aft: its scale", low=0.0),
    Param("sample_type", str, None, "dart: how dropped trees are chosen", choices=("uniform", "weighted")),
    Param("normalize_type", str, None, "dart: weight of new trees", choices=("tree", "forest")),
    Param("rate_drop", float, None, "dart: dropout rate", low=0.0, high=1.0),
    Param("one_drop", int, None, "dart: always drop at least one tree", low=0, high=1),
    Param("skip_drop", float, None, "dart: probability of skipping dropout", low=0.0, high=1.0),
    Param("seed", int, 0, "random seed", low=-(2**31), high=2**31 - 1, low_open=True, high_open=True),
    Param("nthread", int, None, "threads (default: all CPUs)", low=1),
    Param("verbosity", int, 1, "XGBoost log level", low=0, high=3),
    Param("save_model_on_termination", str, "false", "true: a stopped job (SIGTERM) still saves the model of the rounds done", choices=_TRUE_FALSE),
    Param("_tuning_objective_metric", str, None, "set by tuning jobs (e.g. `validation:rmse`): printed each round and drives early stopping", parse=_tuning_metric, shows="`validation:` and an eval_metric name"),
    Param("_kfold", int, None, "k-fold cross-validation on train + validation rows (see Drop-in below)", low=2),
    Param("_num_cv_round", int, None, "with _kfold: times the k-fold split is repeated (default 1)", low=1),
    Param("device", str, None, "cpu (cuda, gpu: this image has no GPU; run on the CPU)", choices=("cpu", "cuda", "gpu")),
    Param("use_dask_gpu_training", str, None, "built-in's Dask GPU training: runs as CPU training here", choices=_TRUE_FALSE),
    # Accepted as the built-in does, though XGBoost 3.2 no longer has them: ignored with a warning.
    Param("sketch_eps", float, None, "removed from XGBoost (approx uses max_bin): ignored", low=0.0, high=1.0, low_open=True, high_open=True),
    Param("dsplit", str, None, "removed from XGBoost: ignored", choices=("row", "col")),
    Param("predictor", str, None, "removed from XGBoost (it picks the predictor): ignored", choices=("auto", "cpu_predictor", "gpu_predictor")),
    Param("lambda_bias", float, None, "removed from XGBoost (gblinear): ignored", low=0.0, high=1.0),
    Param("single_precision_histogram", str, None, "removed from XGBoost: ignored", choices=_TRUE_FALSE),
    Param("deterministic_histogram", str, None, "removed from XGBoost (always deterministic): ignored", choices=_TRUE_FALSE),
    Param("prob_buffer_row", float, None, "removed from XGBoost: ignored", low=1.0, low_open=True),
    Param("collective_timeout", int, 900, "multi-instance jobs: seconds a host waits for the others", low=10),
    Param("checkpoint_frequency", int, 10, "with a checkpoint configuration: rounds between checkpoints", low=1, high=100000),
    Param("csv_weights", int, 0, "1: in CSV channels the column after the label is each row's instance weight", choices=(0, 1)),
    Param("threshold", float, "auto", "binary objectives: decision threshold, a probability (for binary:logitraw too); auto = best F1 on the earlier half of the validation channel, within 0.05-0.95 (0.5 without one)", parse=_threshold, shows="float in [0, 1] or `auto`"),
]
REMOVED = {"sketch_eps", "dsplit", "predictor", "lambda_bias", "single_precision_histogram",
           "deterministic_histogram", "prob_buffer_row", "use_dask_gpu_training"}
_NOT_XGB = {"num_round", "early_stopping_rounds", "threshold", "eval_metric", "collective_timeout",
            "checkpoint_frequency", "save_model_on_termination", "_tuning_objective_metric", "_kfold",
            "_num_cv_round", "csv_weights", *REMOVED}
_XGB_NAMES = {"lambda": "reg_lambda", "alpha": "reg_alpha"}
_REPLACED_UPDATERS = {"distcol": "grow_colmaker", "grow_skmaker": "grow_histmaker"}


def check(hp: dict) -> None:
    """What the built-in's validation checks between parameters; errors name them."""
    objective, kind = hp["objective"], family(hp["objective"])
    if kind == "multiclass" and hp["num_class"] is None:
        raise HyperparameterError(f"objective={objective} needs num_class (the number of classes, 2 or more)")
    if kind != "multiclass" and hp["num_class"] is not None:
        raise HyperparameterError(f"num_class={hp['num_class']} is only for multi:softmax and multi:softprob, "
                                  f"not objective={objective}; leave num_class out")
    if objective == "reg:quantileerror" and hp["quantile_alpha"] is None:
        raise HyperparameterError("objective=reg:quantileerror needs quantile_alpha (the quantile, e.g. 0.5)")
    metrics = [m.split("@")[0] for m in (hp["eval_metric"] or []) + [hp["_tuning_objective_metric"] or ""]]
    if "auc" in metrics and kind not in ("binary", "ranking"):
        raise HyperparameterError(f"eval_metric auc is only for binary and rank objectives, not objective={objective}")
    if "aft-nloglik" in metrics and objective != "survival:aft":
        raise HyperparameterError(f"eval_metric aft-nloglik is only for objective=survival:aft, not {objective}")
    for metric in set(metrics) & set(BINARY_ONLY):
        if kind == "multiclass":
            raise HyperparameterError(f"eval_metric {metric} is the positive class's, for binary objectives; "
                                      f"with objective={objective} use {metric.split('_')[0]}_macro or _micro")
    tree = "hist" if hp["tree_method"] == "gpu_hist" else hp["tree_method"]
    if hp["monotone_constraints"] is not None and tree not in ("exact", "hist"):
        raise HyperparameterError(f"monotone_constraints needs tree_method exact or hist, not {tree}")
    if hp["interaction_constraints"] is not None and tree not in ("exact", "hist", "approx"):
        raise HyperparameterError(f"interaction_constraints needs tree_method exact, hist or approx, not {tree}")
    _check_updater(hp)
    if hp["base_score"] is not None and objective in ("binary:logistic", "reg:logistic") and not 0 < hp["base_score"] < 1:
        raise HyperparameterError(f"base_score={hp['base_score']:g}: with objective={objective} it is a "
                                  "probability strictly between 0 and 1")
    if kind != "binary" and hp["threshold"] != "auto":
        raise HyperparameterError(f"threshold is for binary objectives only, not objective={objective}; leave it out")


def _check_updater(hp: dict) -> None:
    updaters = hp["updater"]
    if not updaters:
        return
    if hp["booster"] == "gblinear":
        if len(updaters) != 1 or updaters[0] not in ("shotgun", "coord_descent"):
            raise HyperparameterError("updater with booster=gblinear is one of shotgun, coord_descent")
    elif hp["process_type"] == "update":
        if any(u not in ("refresh", "prune") for u in updaters):
            raise HyperparameterError("updater with process_type=update takes only refresh and prune")
    else:
        if any(u in ("shotgun", "coord_descent") for u in updaters):
            raise HyperparameterError("updater shotgun and coord_descent are for booster=gblinear")
        growers = [u for u in updaters if u in ("grow_colmaker", "distcol", "grow_histmaker", "grow_skmaker",
                                                "grow_quantile_histmaker")]
        if len(growers) > 1:
            raise HyperparameterError(f"updater has {len(growers)} tree grow plugins ({', '.join(growers)}); choose one")


def eval_metrics(hp: dict) -> list[str]:
    """What each round prints: eval_metric (default for binary: logloss, auc) and the tuning job's metric."""
    names = list(hp["eval_metric"] or (["logloss", "auc"] if family(hp["objective"]) == "binary" else []))
    tuning = hp["_tuning_objective_metric"]
    return names + [tuning] if tuning and tuning not in names else names


def early_stopping_metric(hp: dict) -> str | None:
    """As the built-in: the tuning job's metric, else the last eval_metric, else XGBoost's default."""
    metrics = eval_metrics(hp)
    return hp["_tuning_objective_metric"] or (metrics[-1] if metrics else None)


def xgboost_params(hp: dict, positives: float, rows: float) -> dict:
    for name in sorted(REMOVED):
        if hp.get(name) is not None:
            log.warning("hyperparameter %s is not in XGBoost %s (removed after the built-in's version): ignored",
                        name, xgb.__version__)
    params = {_XGB_NAMES.get(k, k): v for k, v in hp.items() if k not in _NOT_XGB and v is not None}
    params["objective"] = RENAMED.get(hp["objective"], hp["objective"])
    native = [m for m in eval_metrics(hp) if m not in CUSTOM]
    if native:
        params["eval_metric"] = native
    if params["tree_method"] == "gpu_hist":
        log.warning("tree_method=gpu_hist: this image has no GPU (and XGBoost %s has no gpu_hist); training with hist",
                    xgb.__version__)
        params["tree_method"] = "hist"
    if params.get("device", "cpu") != "cpu":
        log.warning("device=%s: this image has no GPU; training on the CPU", params["device"])
        params["device"] = "cpu"
    if params.get("updater"):
        for old, new in _REPLACED_UPDATERS.items():
            if old in params["updater"]:
                log.warning("updater %s is not in XGBoost %s: using %s", old, xgb.__version__, new)
        params["updater"] = ",".join(_REPLACED_UPDATERS.get(u, u) for u in params["updater"])
    if params["scale_pos_weight"] == "auto":
        if family(hp["objective"]) == "binary":
            params["scale_pos_weight"] = float((rows - positives) / positives) if positives else 1.0
        else:
            del params["scale_pos_weight"]
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


class _SaveOnTermination(xgb.callback.TrainingCallback):
    """save_model_on_termination=true: a stop signal still leaves the model of the rounds done (the
    round in progress finishes first), as the built-in does; the job then ends as stopped."""

    def __init__(self, save):
        super().__init__()
        self.save = save

    def after_iteration(self, model, epoch, evals_log) -> bool:
        if stop_signal.requested:
            self.save(model)
            log.warning("stopped: saved the model of %d rounds (save_model_on_termination=true)",
                        model.num_boosted_rounds())
        return False


def train(env: TrainingEnv) -> None:
    hp = parse(env.hyperparameters, HYPERPARAMETERS)
    check(hp)
    with Cluster(env, hp["collective_timeout"]) as cluster:
        _train(env, hp, cluster)


def _load(env: TrainingEnv, hp: dict) -> tuple[Dataset, Dataset | None]:
    matcher = TemplateMatcher()
    memory.require(memory_needed(env, "train") + memory_needed(env, "validation"),
                   "loading the train and validation channels")
    labels = label_rule(hp["objective"], hp["num_class"])
    weighted = hp["csv_weights"] == 1
    train_set = load_channel(env, "train", matcher, labels=labels, csv_weights=weighted)
    validation = load_channel(env, "validation", matcher, required=False, like=train_set, labels=labels,
                              csv_weights=weighted)
    _check_compatible(train_set, validation)
    if hp["early_stopping_rounds"] and validation is None and not hp["_kfold"]:
        raise DataError("early_stopping_rounds needs a 'validation' channel; add one, or leave early_stopping_rounds out")
    return train_set, validation


def matrix(dataset: Dataset, objective: str) -> xgb.DMatrix:
    if dataset.qid is not None and np.any(np.diff(dataset.qid) < 0):
        row = int(np.flatnonzero(np.diff(dataset.qid) < 0)[0]) + 2
        raise DataError(f"the libsvm rows' qid go down at row {row} ({dataset.qid[row - 2]} then {dataset.qid[row - 1]}): "
                        "XGBoost needs each query group's rows together, in increasing qid; sort the rows by qid")
    data = xgb.DMatrix(dataset.features, dataset.labels, weight=dataset.weights, feature_names=dataset.feature_names,
                       qid=dataset.qid)
    if objective == "survival:aft":  # one label column: every time observed (lower = upper bound)
        data.set_float_info("label_lower_bound", dataset.labels)
        data.set_float_info("label_upper_bound", dataset.labels)
    return data


def boost(env: TrainingEnv, hp: dict, cluster: Cluster, params: dict, dtrain: xgb.DMatrix, evals: list,
          data: dict, on_stop=None, checkpointed: bool = True, printed: bool = True, extra: tuple = ()) -> xgb.Booster:
    """XGBoost rounds with the built-in's metric lines, early stopping on its metric, checkpoints."""
    callbacks = [*extra, *([_PrintRounds()] if cluster.is_leader and printed else [])]
    if on_stop is not None and hp["save_model_on_termination"] == "true" and cluster.is_leader:
        callbacks.append(_SaveOnTermination(on_stop))
    stopping = early_stopping_metric(hp)
    try:
        return _checked_train(env, hp, cluster, params, dtrain, evals, data, callbacks, checkpointed, stopping)
    except xgb.core.XGBoostError as exc:
        reason = _xgboost_reason(exc)
        if reason is None:
            raise
        raise DataError(f"XGBoost refused this training: {reason} (objective={hp['objective']}, eval_metric "
                        f"{','.join(eval_metrics(hp)) or 'default'}); fix the labels or the hyperparameters") from None


def _xgboost_reason(exc: Exception) -> str | None:
    """The message of a failed XGBoost check on the data or parameters ("Check failed: ... : map can
    only be used with binary labels"), without its source position and stack; None for other errors."""
    first = str(exc).split("Stack trace:")[0].strip()
    if "Check failed" not in first and "Invalid Input" not in first:
        return None
    return re.sub(r"^\[[\d:]+\] [^ ]+: ", "", first)


def _checked_train(env, hp, cluster, params, dtrain, evals, data, callbacks, checkpointed, stopping):
    # As the built-in: early stopping watches validation only (a _kfold job may have none: then no stopping)
    rounds = hp["early_stopping_rounds"] if any(name == "validation" for _, name in evals) else None
    return checkpoints.train(params, dtrain, hp["num_round"], evals, folder=env.checkpoint_dir if checkpointed else None,
                             frequency=hp["checkpoint_frequency"], early_stopping_rounds=rounds,
                             cluster=cluster, callbacks=callbacks, data=data, early_stopping_metric=stopping,
                             maximize=maximize(stopping) if stopping else None,
                             custom_metric=custom_metric(eval_metrics(hp), hp["objective"]))


def _train(env: TrainingEnv, hp: dict, cluster: Cluster) -> None:
    binary = family(hp["objective"]) == "binary"
    scale = ScoreScale(hp["objective"])
    if binary and hp["threshold"] != "auto":
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
    if binary and (positives == 0 or positives == rows):
        raise DataError(f"the train channel has only one class ({int(positives)} of {int(rows)} rows are 1); "
                        "it needs both normal (0) and anomalous (1) examples: add rows of the missing class")

    params = xgboost_params(hp, positives, rows)
    log.info("training on %d rows x %d features (%d positive)%s; params %s", *train_set.features.shape,
             int(train_set.labels.sum()), f" on this host, {int(rows)} on all {cluster.size}" if cluster.size > 1 else "",
             params)
    if hp["_kfold"]:
        from .crossvalidation import cross_validate  # only k-fold jobs need it

        cross_validate(env, hp, cluster, params, train_set, validation)
    dtrain = matrix(train_set, hp["objective"])
    evals = [(dtrain, "train")]
    if validation is not None:
        evals.append((matrix(validation, hp["objective"]), "validation"))
    data = _data_identity(env, cluster, train_set, validation)
    stop_threshold = scale.score(0.5 if hp["threshold"] == "auto" else hp["threshold"]) if binary else None
    booster = boost(env, hp, cluster, params, dtrain, evals, data, printed=not hp["_kfold"],
                    on_stop=lambda model: _save(env, model, train_set, hp, scale, stop_threshold, None))

    scored = validation or train_set
    if not binary:
        _finish_other(env, hp, cluster, booster, train_set, scored, "validation" if validation is not None else "train")
        return
    # Every host holds the same booster; the threshold and the evaluation need every host's rows.
    choose = hp["threshold"] == "auto" and validation is not None and scale.choosable
    # Rows are in file order (chronological for the HDFS layouts): the threshold is chosen on each
    # host's earlier half of validation and scored on the later half, rows it never saw.
    half = _earlier_half(cluster, len(scored.labels)) if choose else 0
    scores = predict(booster, scored.features)
    parts = [(np.concatenate(cluster.gather(scored.labels[rows])), np.concatenate(cluster.gather(scores[rows])))
             for rows in (slice(0, half), slice(half, None))]
    if not cluster.is_leader:
        _wait_for_leader(cluster)
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
    _save_finished(env, cluster, booster, train_set, hp, scale, threshold, evaluation)


def _wait_for_leader(cluster: Cluster) -> None:
    # Exit only once the leader has saved: local mode (docker-compose --abort-on-container-exit)
    # stops every container of the job as soon as one exits.
    cluster.barrier()
    log.info("done as rank %d; %s saved the model", cluster.rank, cluster.hosts[0])


def _save_finished(env: TrainingEnv, cluster: Cluster, booster: xgb.Booster, train_set: Dataset, hp: dict,
                   scale: ScoreScale | None, threshold: float | None, evaluation: dict) -> None:
    with stop_signal.deferred():  # a stop now would leave a model without its metadata
        _save(env, booster, train_set, hp, scale, threshold, evaluation)
        if env.checkpoint_dir is not None:
            checkpoints.mark_finished(env.checkpoint_dir, booster.num_boosted_rounds())
    cluster.barrier()  # the other hosts may exit now


def _finish_other(env: TrainingEnv, hp: dict, cluster: Cluster, booster: xgb.Booster, train_set: Dataset,
                  scored: Dataset, dataset: str) -> None:
    """Regression, multi-class, ranking, count and survival: their metrics on every host's rows."""
    predictions = predict(booster, scored.features, margin=family(hp["objective"]) == "multiclass")
    labels = np.concatenate(cluster.gather(scored.labels))
    predictions = np.concatenate(cluster.gather(predictions))
    # query groups stay apart per host: a host's qid 1 is not another's
    groups = (np.concatenate([np.stack([np.full(q.size, rank), q], axis=1) for rank, q in
                              enumerate(cluster.gather(scored.qid))]) if scored.qid is not None else None)
    if not cluster.is_leader:
        _wait_for_leader(cluster)
        return
    evaluation = evaluate_other(hp, labels.astype(np.float64), predictions, groups)
    for name, value in evaluation.items():
        if isinstance(value, float):
            metrics.print_metric(f"{dataset}-{name}", value)
    evaluation.update(objective=hp["objective"], rows=int(labels.size), dataset=dataset, hosts=cluster.size,
                      best_iteration=getattr(booster, "best_iteration", hp["num_round"] - 1))
    _save_finished(env, cluster, booster, train_set, hp, None, None, evaluation)


def evaluate_other(hp: dict, labels: np.ndarray, predictions: np.ndarray, groups: np.ndarray | None = None) -> dict:
    objective, kind = hp["objective"], family(hp["objective"])
    if kind == "multiclass":
        margins = predictions - predictions.max(axis=1, keepdims=True)
        return scoring.multiclass(labels, np.exp(margins) / np.exp(margins).sum(axis=1, keepdims=True))
    if kind == "ranking":
        return scoring.ranking(labels, predictions, groups)
    if kind == "survival":
        return scoring.survival(objective, labels, predictions)
    if kind == "count":
        return scoring.count(labels, predictions)
    result = scoring.regression(labels, predictions)
    if objective == "reg:quantileerror":
        result["quantile_loss"] = scoring.quantile_loss(labels, predictions, hp["quantile_alpha"])
    return result


def predict(booster: xgb.Booster, features, margin: bool = False) -> np.ndarray:
    limit = getattr(booster, "best_iteration", None)
    rounds = (0, limit + 1) if limit is not None else (0, 0)
    kind = "margin" if margin else "value"
    try:
        return booster.inplace_predict(features, iteration_range=rounds, predict_type=kind)
    except xgb.core.XGBoostError:  # gblinear has no inplace prediction
        return booster.predict(xgb.DMatrix(features, feature_names=booster.feature_names), iteration_range=rounds, output_margin=margin)


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


def _save(env: TrainingEnv, booster: xgb.Booster, dataset: Dataset, hp: dict, scale: ScoreScale | None,
          threshold: float | None, evaluation: dict | None) -> None:
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
        "objective": RENAMED.get(hp["objective"], hp["objective"]),
        **({"num_class": hp["num_class"]} if hp["num_class"] else {}),
        # Binary objectives: in score space, serving compares scores >= threshold
        **({"threshold": float(threshold), "threshold_probability": scale.probability(threshold)}
           if threshold is not None else {}),
        "versions": {"xgboost": xgb.__version__, "python": platform.python_version()},
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (env.model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    if evaluation is not None:  # none when a stop signal ended training (save_model_on_termination)
        (env.output_data_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
    if dataset.report:
        (env.output_data_dir / "extraction.json").write_text(json.dumps(dataset.report, indent=2))
    log.info("saved %s and %s%s", MODEL_FILE, METADATA_FILE, "" if threshold is None else f"; threshold {threshold:.4f}")
