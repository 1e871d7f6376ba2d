"""What checkpoints cost xgboost-hdfs training: the same boosting with no checkpoint folder (the
reference) and with checkpoints every N rounds, in one run on this machine, side by side.

    .venv/bin/python -m benchmarks.checkpoints                  # 3000 rounds; frequencies 100 and 10
    .venv/bin/python -m benchmarks.checkpoints --rounds 300 --frequency 10

Real data: the HDFS event-count features of examples/opt_ml.py hdfs-csv, one thread, eta 0.05.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "core"), str(REPO / "containers" / "xgboost-hdfs"), str(REPO / "examples")]

import numpy as np  # noqa: E402
import xgboost as xgb  # noqa: E402

import opt_ml  # noqa: E402
from byoc.training import TrainingEnv  # noqa: E402
from xgboost_hdfs import checkpoints  # noqa: E402
from xgboost_hdfs.distributed import Cluster  # noqa: E402

PARAMS = {"objective": "binary:logistic", "tree_method": "hist", "seed": 7, "eta": 0.05, "nthread": 1,
          "eval_metric": ["logloss", "auc"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--frequency", type=int, action="append", help="checkpoint_frequency (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        opt_ml.hdfs_csv(work)
        train, valid = (np.loadtxt(work / "input" / "data" / name / "features.csv", delimiter=",")
                        for name in ("train", "validation"))
        dtrain, dvalid = xgb.DMatrix(train[:, 1:], train[:, 0]), xgb.DMatrix(valid[:, 1:], valid[:, 0])
        cluster = Cluster(TrainingEnv(root=work), timeout=60)
        print(f"| checkpoint_frequency | seconds for {args.rounds} rounds | checkpoints written | last checkpoint |")
        print("|---|---|---|---|")
        for frequency in [None, *(args.frequency or [100, 10])]:
            folder = work / f"checkpoints-{frequency}" if frequency else None
            started = time.perf_counter()
            checkpoints.train(PARAMS, dtrain, args.rounds, [(dtrain, "train"), (dvalid, "validation")],
                              folder=folder, frequency=frequency or 1, early_stopping_rounds=None,
                              cluster=cluster, callbacks=[])
            seconds = time.perf_counter() - started
            written = -(-args.rounds // frequency) if frequency else 0
            last = checkpoints.listed(folder)[0][1].stat().st_size / 1e6 if frequency else 0
            print(f"| {frequency or 'none (reference)'} | {seconds:.2f} | {written} | "
                  f"{f'{last:.1f} MB' if frequency else '-'} |", flush=True)


if __name__ == "__main__":
    main()
