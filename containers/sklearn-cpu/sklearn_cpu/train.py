"""Built-in training: a scikit-learn regressor on named features, evaluated against the mean baseline."""
from __future__ import annotations

import json
import logging
import platform
from datetime import datetime, timezone

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor

from byoc import memory, metrics
from byoc.datafiles import is_parquet
from byoc.errors import DataError, HyperparameterError
from byoc.hyperparameters import Param, parse
from byoc.training import TrainingEnv

from . import features as feats
from .data import load_channel, require_numbers, require_times

log = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
MIN_R2_GAIN = 0.01  # below this the model is no better than the mean, whatever the last digits say
METADATA_FILE = "metadata.json"
# Bytes of memory per byte of input while training: pandas' frame, the concatenation, the features
# and the float matrices, from the peak use of real-data jobs (a 60 MiB CSV was OOM-killed with
# 500 MiB, fine with 550). A parquet file counts as 8 bytes a cell, its size in memory.
MEMORY_FACTOR = {"csv": 8, "parquet": 3}

# Each model and the hyperparameters that apply to it (others are refused, not ignored).
MODELS = {
    "LinearRegression": (LinearRegression, ()),
    "Ridge": (Ridge, ("alpha",)),
    "Lasso": (Lasso, ("alpha", "max_iter")),
    "ElasticNet": (ElasticNet, ("alpha", "l1_ratio", "max_iter")),
    "RandomForestRegressor": (RandomForestRegressor, ("n_estimators", "max_depth", "min_samples_leaf", "random_state")),
    "HistGradientBoostingRegressor": (HistGradientBoostingRegressor,
                                      ("learning_rate", "max_iter", "max_depth", "min_samples_leaf", "random_state")),
    "KNeighborsRegressor": (KNeighborsRegressor, ("n_neighbors",)),
}


def _names(raw: str) -> list[str]:
    names = raw.replace(",", " ").split()
    if not names:
        raise ValueError("no names given")
    return names


def _positive_ints(raw: str) -> list[int]:
    values = [int(v) for v in raw.replace(",", " ").split()]
    if any(v < 1 for v in values):
        raise ValueError("every value must be a whole number of rows >= 1")
    return values


HYPERPARAMETERS = [
    Param("features", str, None, "space-separated feature columns (default: all; from raw sensor data: time and history features)", parse=_names),
    Param("target", str, "snmpcpu_processor_1", "the column to predict"),
    Param("model", str, "LinearRegression", "the regressor", choices=tuple(MODELS)),
    Param("time_column", str, "ts", "timestamp column that marks raw sensor data"),
    Param("lags", str, [1, 2, 3, 5, 10, 30, 60], "raw data: lags of the target, in rows (minutes)", parse=_positive_ints),
    Param("rolling_windows", str, [5, 15, 60, 240], "raw data: windows of rolling means of the target, in rows", parse=_positive_ints),
    Param("test_fraction", float, 0.25, "without a test channel: the latest part held out for evaluation", low=0.05, high=0.5),
    Param("alpha", float, None, "Ridge, Lasso, ElasticNet: regularisation strength", low=0.0),
    Param("l1_ratio", float, None, "ElasticNet: L1 share", low=0.0, high=1.0),
    Param("max_iter", int, None, "Lasso, ElasticNet, HistGradientBoosting: iterations", low=1),
    Param("n_estimators", int, None, "RandomForest: trees", low=1),
    Param("max_depth", int, None, "RandomForest, HistGradientBoosting: tree depth", low=1),
    Param("min_samples_leaf", int, None, "RandomForest, HistGradientBoosting: rows per leaf", low=1),
    Param("learning_rate", float, None, "HistGradientBoosting: shrinkage", low=0.0, high=1.0),
    Param("n_neighbors", int, None, "KNeighbors: neighbours", low=1),
    Param("random_state", int, 0, "seed of the randomised models"),
]


MODEL_PARAMS = sorted({name for _, names in MODELS.values() for name in names})


def make_model(hp: dict):
    cls, allowed = MODELS[hp["model"]]
    # random_state always has a value; it is simply not passed to models without randomness.
    wrong = [n for n in MODEL_PARAMS if n not in allowed and n != "random_state" and hp.get(n) is not None]
    if wrong:
        raise HyperparameterError(
            f"hyperparameter(s) {', '.join(wrong)} do not apply to model={hp['model']}; "
            f"it takes {', '.join(allowed) or 'none'}"
        )
    return cls(**{n: hp[n] for n in allowed if hp.get(n) is not None})


def prepare(frame: pd.DataFrame, hp: dict, channel: str) -> tuple[pd.DataFrame, bool]:
    """Raw sensor rows get time and history features; a table is used as it is."""
    target = hp["target"]
    if target not in frame.columns:
        raise DataError(f"target {target!r} is not a column of the '{channel}' channel; columns: {list(frame.columns)}; "
                        "set the target hyperparameter to one of them")
    raw = hp["time_column"] in frame.columns
    if raw:
        frame = feats.build(frame, hp["time_column"], target, hp["lags"], hp["rolling_windows"])
        if frame.empty:
            raise DataError(f"the '{channel}' channel has fewer rows than the longest history "
                            f"({max(hp['lags'] + hp['rolling_windows'])}); lower lags/rolling_windows")
    return frame, raw


def feature_columns(frame: pd.DataFrame, hp: dict, raw: bool) -> list[str]:
    if hp["features"]:
        names = hp["features"]
    elif raw:
        names = [*feats.TIME_FEATURES, *feats.history_names(hp["lags"], hp["rolling_windows"])]
    else:
        names = [c for c in frame.columns if c != hp["target"]]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise HyperparameterError(f"feature(s) {missing} are not columns; available: "
                                  f"{[c for c in frame.columns if c not in (hp['target'], hp['time_column'])]}; "
                                  "set features to names from that list")
    if hp["target"] in names:
        raise HyperparameterError(f"the target {hp['target']!r} cannot also be a feature; remove it from features")
    return list(names)


def matrix(frame: pd.DataFrame, columns: list[str], channel: str) -> np.ndarray:
    """A float matrix; a non-numeric or missing cell is an error naming column and row."""
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.fillna(0))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"'{channel}' channel, column {column!r}, row {row + 1}: "
                            f"{frame[column].iloc[row]!r} is not a finite number")
    return frame[columns].to_numpy(dtype=np.float64)


def regression_report(actual: np.ndarray, predicted: np.ndarray) -> dict:
    errors = np.abs(actual - predicted)
    residual = float(np.sum((actual - predicted) ** 2))
    total = float(np.sum((actual - actual.mean()) ** 2))
    return {
        "AE-at-10th-percentile": float(np.percentile(errors, 10)),
        "AE-at-50th-percentile": float(np.percentile(errors, 50)),
        "AE-at-90th-percentile": float(np.percentile(errors, 90)),
        "MAE": float(errors.mean()),
        "RMSE": float(np.sqrt(np.mean((actual - predicted) ** 2))),
        "R2": 1.0 - residual / total if total else 0.0,
    }


def check_cells(hp: dict):
    """Per file, before anything is built: the cells the model will read are numbers (and times)."""
    def check(frame: pd.DataFrame, where) -> None:
        time_column, target = hp["time_column"], hp["target"]
        if time_column in frame.columns:  # raw sensor data: features come from the time and the target
            require_times(frame, time_column, where)
            names = [target, *(n for n in hp["features"] or () if n in frame.columns)]
        else:
            names = [target, *(hp["features"] or (c for c in frame.columns if c != target))]
        require_numbers(frame, [n for n in dict.fromkeys(names) if n in frame.columns], where)
    return check


def train(env: TrainingEnv) -> None:
    hp = parse(env.hyperparameters, HYPERPARAMETERS)
    model = make_model(hp)
    inputs = env.channel_files("train", required=False) + env.channel_files("test", required=False)
    needed = sum(memory.loaded_size(f) * MEMORY_FACTOR["parquet" if is_parquet(f) else "csv"] for f in inputs)
    memory.require(int(needed), "loading the train and test channels")
    train_frame, raw = prepare(load_channel(env, "train", check=check_cells(hp)), hp, "train")
    test_raw = load_channel(env, "test", required=False, check=check_cells(hp))
    if test_raw is not None:
        test_frame, _ = prepare(test_raw, hp, "test")
        held_out = "test channel"
    else:  # hold out the latest rows, never a random sample: the rows are a time series
        cut = int(len(train_frame) * (1 - hp["test_fraction"]))
        train_frame, test_frame = train_frame.iloc[:cut], train_frame.iloc[cut:]
        held_out = f"latest {hp['test_fraction']:.0%} of train"
    columns = feature_columns(train_frame, hp, raw)
    absent = [c for c in columns if c not in test_frame.columns]
    if absent:
        raise DataError(f"the test channel has no column(s) {absent} that train has; "
                        "give both channels the same columns")
    x_train, y_train = matrix(train_frame, columns, "train"), matrix(train_frame, [hp["target"]], "train")[:, 0]
    x_test, y_test = matrix(test_frame, columns, "test"), matrix(test_frame, [hp["target"]], "test")[:, 0]
    if np.ptp(y_train) == 0:
        raise DataError(f"target {hp['target']!r} is constant ({y_train[0]}) in train; there is nothing to learn: "
                        "choose another target column, or train on data where it varies")
    log.info("%s on %d rows, features %s; evaluating on %d rows (%s)", hp["model"], len(y_train), columns, len(y_test), held_out)
    model.fit(x_train, y_train)

    report = regression_report(y_test, model.predict(x_test))
    baseline = regression_report(y_test, np.full_like(y_test, y_train.mean()))
    for name, value in report.items():
        metrics.print_metric(name, value)
    for name, value in baseline.items():
        metrics.print_metric(f"baseline-{name}", value)
    beats = report["R2"] - baseline["R2"] >= MIN_R2_GAIN and report["MAE"] < baseline["MAE"]
    if not beats:
        print(f"WARNING: the model does not beat predicting the training mean: R2 {report['R2']:.4f} vs "
              f"{baseline['R2']:.4f}, MAE {report['MAE']:.4f} vs {baseline['MAE']:.4f}. "
              "Add history features (train on the raw sensor data) or choose another model.", flush=True)
    evaluation = {"model": report, "baseline_train_mean": baseline, "beats_baseline": beats,
                  "evaluated_on": held_out, "rows": {"train": int(len(y_train)), "test": int(len(y_test))}}
    _save(env, model, hp, columns, raw, evaluation)


def _save(env: TrainingEnv, model, hp: dict, columns: list[str], raw: bool, evaluation: dict) -> None:
    env.model_dir.mkdir(parents=True, exist_ok=True)
    env.output_data_dir.mkdir(parents=True, exist_ok=True)
    # scikit-learn has no native model format: joblib, beside metadata that says what it expects.
    joblib.dump(model, env.model_dir / MODEL_FILE)
    metadata = {
        "format": 1,
        "feature_names": columns,
        "target": hp["target"],
        "model": hp["model"],
        "params": model.get_params(),
        "history": {"lags": hp["lags"], "rolling_windows": hp["rolling_windows"]} if raw else None,
        "versions": {"scikit-learn": sklearn.__version__, "python": platform.python_version()},
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (env.model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))
    (env.output_data_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
