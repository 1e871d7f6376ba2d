"""SageMaker hyperparameters: strings in, validated typed values out.

SageMaker passes every value as a string; the Python SDK may JSON-encode them once more
("\"5\""). Unknown names and invalid values fail before any training, naming the parameter
and what is allowed.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from .errors import HyperparameterError

# Keys SageMaker, its SDK and tuning jobs add on their own; never the algorithm's business.
RESERVED_PREFIXES = ("sagemaker_", "_")


@dataclass(frozen=True)
class Param:
    """One hyperparameter: type, default, allowed values, and a one-line description for docs."""

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple | None = None
    low: float | None = None  # inclusive, unless low_open
    high: float | None = None  # inclusive, unless high_open
    parse: Callable[[str], Any] | None = None  # custom parser for special values ("auto")
    low_open: bool = False  # (low, ...: the bound itself is refused
    high_open: bool = False
    aliases: tuple = ()  # other names for it (XGBoost's learning_rate for eta)
    shows: str = ""  # what is allowed, in words, for a custom parser (docs and errors)

    def allowed(self) -> str:
        if self.shows:
            return self.shows
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else self.low
            hi = "inf" if self.high is None else self.high
            return f"{self.type.__name__} in {'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}"
        return self.type.__name__

    def convert(self, raw: str, given: str | None = None) -> Any:
        """`given`: the name the user wrote (an alias), for the error."""
        name = given or self.name
        try:
            value = self.parse(raw) if self.parse else _convert(raw, self.type)
        except (TypeError, ValueError) as exc:
            raise HyperparameterError(
                f"hyperparameter {name}={raw!r} is invalid: expected {self.allowed()} ({exc})"
            ) from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not self._within(value):
                raise HyperparameterError(
                    f"hyperparameter {name}={raw!r} is out of range: expected {self.allowed()}"
                )
        if self.choices and value not in self.choices:
            raise HyperparameterError(
                f"hyperparameter {name}={raw!r} is not allowed: expected {self.allowed()}"
            )
        return value

    def _within(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below


def _convert(raw: str, kind: type) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError("not a boolean (true/false)")
    if kind is int:
        number = float(raw)
        if not number.is_integer():
            raise ValueError("not a whole number")
        return int(number)
    if kind is float:
        number = float(raw)
        if math.isnan(number):
            raise ValueError("NaN is not a value")
        return number
    return kind(raw)


def unwrap(value: Any) -> str:
    """The plain string behind a SageMaker value: "5", "\"5\"" and 5 all give "5"."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse(raw: Mapping[str, Any], spec: Iterable[Param], extra: Mapping[str, Param] | None = None) -> dict[str, Any]:
    """Validate raw hyperparameters against a spec; returns every parameter with its default."""
    params = {p.name: p for p in spec}
    if extra:
        params.update(extra)
    aliases = {alias: p.name for p in params.values() for alias in p.aliases}
    values = {name: p.default for name, p in params.items()}
    unknown, given = [], {}
    for name, value in raw.items():
        canonical = aliases.get(name, name)
        if canonical not in params:
            if not name.startswith(RESERVED_PREFIXES):  # a declared "_kfold" is validated like any other
                unknown.append(name)
            continue
        if canonical in given:
            raise HyperparameterError(f"hyperparameters {given[canonical]} and {name} are the same parameter; give one")
        given[canonical] = name
        values[canonical] = params[canonical].convert(unwrap(value), name)
    if unknown:
        raise HyperparameterError(
            f"unknown hyperparameter(s): {', '.join(sorted(unknown))}. "
            f"Allowed: {', '.join(sorted(params))}"
        )
    return values


def table(spec: Iterable[Param]) -> str:
    """A Markdown table of the spec, for the README."""
    rows = ["| name | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for p in spec:
        shown = " ".join(map(str, p.default)) if isinstance(p.default, list) else p.default
        default = "—" if p.default is None else f"`{shown}`"
        names = " ".join(f"`{n}`" for n in (p.name, *p.aliases))
        rows.append(f"| {names} | {p.type.__name__} | {default} | {p.allowed()} | {p.help} |")
    return "\n".join(rows)
