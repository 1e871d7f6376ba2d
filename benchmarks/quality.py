"""The README's xgboost-hdfs quality table, measured: train on the real HDFS sample's chronological
split (examples/opt_ml.py hdfs-raw: raw-log channels, first 80 % of blocks train, last 20 %
validation) with each hyperparameter set, and print evaluation.json's figures on the validation
rows the threshold never saw.

    .venv/bin/python -m benchmarks.quality
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "core"), str(REPO / "containers" / "xgboost-hdfs"), str(REPO / "examples")]

import opt_ml  # noqa: E402
from byoc.training import run  # noqa: E402
from xgboost_hdfs import train  # noqa: E402

BUILT_IN = {"max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.7, "num_round": 50}
RUNS = {
    "defaults (no hyperparameters)": {},
    "built-in set, our auto class weight and threshold": BUILT_IN,
    "built-in set as the built-in container runs it": {**BUILT_IN, "scale_pos_weight": 1, "threshold": 0.5},
}


def main() -> None:
    logging.disable(logging.INFO)
    print("| run | precision | recall | F1 | threshold | precision at 0.5 | recall at 0.5 | F1 at 0.5 | ROC AUC | "
          "scored rows | F1 where the threshold was chosen |")
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw"
        opt_ml.hdfs_raw(raw)
        for name, hyperparameters in RUNS.items():
            root = Path(scratch) / "job"
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(raw / "input", root / "input")
            opt_ml.write_config(root, hyperparameters)
            with contextlib.redirect_stdout(io.StringIO()):  # the per-round lines
                code = run(train, root)
            assert code == 0, (root / "output" / "failure").read_text()
            e = json.loads((root / "output" / "data" / "evaluation.json").read_text())
            half, chosen = e["at_probability_0.5"], e["threshold_chosen_on"]
            seen = f"{chosen['f1']:.3f} on {chosen['rows']}" if chosen else "-"
            print(f"| {name} | {e['precision']:.3f} | {e['recall']:.3f} | {e['f1']:.3f} | "
                  f"{e['threshold_probability']:.4g}{' (auto)' if chosen else ''} | "
                  f"{half['precision']:.3f} | {half['recall']:.3f} | {half['f1']:.3f} | {e['roc_auc']:.4f} | "
                  f"{e['rows']} ({e['confusion_matrix']['tp'] + e['confusion_matrix']['fn']} anomalies) | "
                  f"{seen} |", flush=True)


if __name__ == "__main__":
    main()
