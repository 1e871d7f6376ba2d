"""Metric log lines in the formats SageMaker metric definitions already parse.

Per-round lines follow the built-in XGBoost container: "[12]<TAB>train-auc:0.99000<TAB>validation-auc:0.98000"
(CloudWatch shows the tab as #011). Final metrics are "name: value" lines.
"""
from __future__ import annotations

import logging
import sys
from typing import Mapping

log = logging.getLogger(__name__)


def round_line(iteration: int, results: Mapping[str, float]) -> str:
    return f"[{iteration}]" + "".join(f"\t{name}:{value:.5f}" for name, value in results.items())


def print_round(iteration: int, results: Mapping[str, float]) -> None:
    print(round_line(iteration, results), file=sys.stdout, flush=True)


def print_metric(name: str, value: float) -> None:
    print(f"{name}: {value:.6g}", file=sys.stdout, flush=True)
