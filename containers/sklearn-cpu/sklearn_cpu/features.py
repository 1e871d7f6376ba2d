"""Features from raw PRTG sensor rows: calendar features of the timestamp and the target's own
recent history (lags, rolling means), built strictly from earlier rows: never the future."""
from __future__ import annotations

import logging

import pandas as pd

from byoc.errors import DataError

from .data import to_times

log = logging.getLogger(__name__)

TIME_FEATURES = ("minutes", "hour", "day_of_week")


def lag_name(lag: int) -> str:
    return f"lag_{lag}"


def rolling_name(window: int) -> str:
    return f"rolling_mean_{window}"


def history_names(lags, windows) -> list[str]:
    return [lag_name(k) for k in lags] + [rolling_name(w) for w in windows]


def build(frame: pd.DataFrame, time_column: str, target: str, lags, windows) -> pd.DataFrame:
    """Rows sorted by time with time and history features; rows without full history dropped."""
    frame = frame.sort_values(time_column, kind="stable").reset_index(drop=True)
    stamps = to_times(frame[time_column], time_column)
    out = pd.DataFrame({
        "minutes": stamps.dt.minute,
        "hour": stamps.dt.hour,
        "day_of_week": stamps.dt.day_of_week,
    })
    _check_time_features(out, stamps, time_column)
    series = frame[target].astype(float)
    for lag in lags:
        out[lag_name(lag)] = series.shift(lag)
    previous = series.shift(1)  # a rolling mean ending at the row before: no look-ahead
    for window in windows:
        out[rolling_name(window)] = previous.rolling(window).mean()
    out[target] = series
    out[time_column] = stamps
    return out.dropna(subset=[c for c in out.columns if c != target]).reset_index(drop=True)


def _check_time_features(out: pd.DataFrame, stamps: pd.Series, time_column: str) -> None:
    """All time features constant means the times say nothing (a wrong unit, or every row within one
    minute): an error. One constant feature (a single day, readings on the hour) is only logged."""
    constant = [name for name in TIME_FEATURES if out[name].nunique() <= 1]
    span = f"{stamps.min()} to {stamps.max()}"
    if len(constant) == len(TIME_FEATURES) and len(out) > 1:
        raise DataError(f"column {time_column!r}: the {len(out)} rows' times span only {span}, so the time features "
                        f"{', '.join(TIME_FEATURES)} are all constant; check the times (numbers are Unix times in "
                        "seconds, ms, us or ns, told by their size), or train on rows that span more time")
    for name in constant:
        log.warning("time feature %r is constant over %s (column %r); it cannot help the model", name, span,
                    time_column)
