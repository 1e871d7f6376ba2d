"""Features from raw PRTG sensor rows: calendar features of the timestamp and the target's own
recent history (lags, rolling means), built strictly from earlier rows: never the future."""
from __future__ import annotations

import pandas as pd

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
    stamps = pd.to_datetime(frame[time_column])
    out = pd.DataFrame({
        "minutes": stamps.dt.minute,
        "hour": stamps.dt.hour,
        "day_of_week": stamps.dt.day_of_week,
    })
    series = frame[target].astype(float)
    for lag in lags:
        out[lag_name(lag)] = series.shift(lag)
    previous = series.shift(1)  # a rolling mean ending at the row before: no look-ahead
    for window in windows:
        out[rolling_name(window)] = previous.rolling(window).mean()
    out[target] = series
    out[time_column] = stamps
    return out.dropna(subset=[c for c in out.columns if c != target]).reset_index(drop=True)
