"""Lay out a SageMaker /opt/ml tree from the real data in ../shared/data, for local runs and tests.

    python3 examples/opt_ml.py hdfs-raw  DEST   # raw HDFS logs + anomaly_label.csv per channel
    python3 examples/opt_ml.py hdfs-csv  DEST   # event-count features, label first, no header
    python3 examples/opt_ml.py prtg-raw  DEST   # the raw PRTG sensor parquet as the train channel
    python3 examples/opt_ml.py prtg-csv  DEST   # minutes,hour,day_of_week,target CSVs (DataFrame.to_csv)

The HDFS layouts use the same chronological split: blocks ordered by first appearance, the earliest
80 % train and the latest 20 % validation (never a random split: many blocks share an
identical event-count vector, so random splits leak).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HDFS = SHARED / "hdfs"
PRTG = next((SHARED / "prtg").glob("snmpcpu_*.parquet"), SHARED / "prtg" / "missing.parquet")
TRAIN_FRACTION = 0.8
_BLOCK = re.compile(r"blk_-?\d+")


def hdfs_split(fraction: float = TRAIN_FRACTION) -> tuple[set[str], set[str]]:
    order: dict[str, None] = {}
    with gzip.open(HDFS / "HDFS.log.gz", "rt") as logs:
        for line in logs:
            for block in _BLOCK.findall(line):
                order.setdefault(block)
    blocks = list(order)
    cut = int(len(blocks) * fraction)
    return set(blocks[:cut]), set(blocks[cut:])


def _labels() -> dict[str, str]:
    with open(HDFS / "anomaly_label.csv") as handle:
        return {row["BlockId"]: row["Label"] for row in csv.DictReader(handle)}


def write_config(root: Path, hyperparameters: dict | None = None, content_types: dict | None = None,
                 channels=("train", "validation")) -> None:
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in (hyperparameters or {}).items()}))
    (config / "inputdataconfig.json").write_text(json.dumps(
        {c: ({"ContentType": content_types[c]} if content_types and c in content_types else {}) for c in channels}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for sub in ("model", "output/data"):
        (root / sub).mkdir(parents=True, exist_ok=True)


def write_job(root: Path, files: dict, content_types: dict, hyperparameters: dict | None = None) -> Path:
    """A training tree from {channel: (file name, bytes or text)}, with the channels' ContentTypes."""
    for name, (filename, data) in files.items():
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / filename).write_bytes(data if isinstance(data, bytes) else data.encode())
    write_config(root, hyperparameters, content_types, channels=tuple(files))
    return root


def hdfs_raw(root: Path, fraction: float = TRAIN_FRACTION) -> None:
    """Each channel gets its blocks' log lines (gzip) and their labels; a line naming blocks on
    both sides of the split keeps only each side's block ids."""
    train, validation = hdfs_split(fraction)
    labels = _labels()
    for name, blocks in (("train", train), ("validation", validation)):
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        seen: dict[str, None] = {}
        with gzip.open(HDFS / "HDFS.log.gz", "rt") as logs, gzip.open(folder / "HDFS.log.gz", "wt") as out:
            for line in logs:
                named = _BLOCK.findall(line)
                mine = [b for b in named if b in blocks]
                if not mine:
                    continue
                for other in set(named) - set(mine):
                    line = re.sub(rf"\s*\b{other}\b", "", line)
                out.write(line)
                seen.update(dict.fromkeys(mine))
        with open(folder / "anomaly_label.csv", "w") as out:
            out.write("BlockId,Label\n")
            out.writelines(f"{b},{labels[b]}\n" for b in seen)
    write_config(root)


def hdfs_csv(root: Path, fraction: float = TRAIN_FRACTION) -> None:
    sys.path[:0] = [str(REPO / "core"), str(REPO / "containers" / "xgboost-hdfs")]
    from xgboost_hdfs.logparse import TemplateMatcher, count_events, numbered

    with gzip.open(HDFS / "HDFS.log.gz", "rt") as logs:
        counts = count_events(numbered("HDFS.log.gz", logs), TemplateMatcher())
    labels = _labels()
    blocks = list(counts.counts)
    cut = int(len(blocks) * fraction)
    for name, part in (("train", blocks[:cut]), ("validation", blocks[cut:])):
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "features.csv", "w") as out:
            for block in part:
                label = int(labels[block] == "Anomaly")
                out.write(",".join([str(label), *map(str, counts.counts[block].tolist())]) + "\n")
    write_config(root, content_types={"train": "text/csv", "validation": "text/csv"})


def hdfs_csv_rows(root: Path) -> dict:
    """hdfs_csv's train and validation files, read back: {channel: float32 rows, label first}."""
    import numpy as np

    hdfs_csv(root)
    return {name: np.loadtxt(root / "input" / "data" / name / "features.csv", delimiter=",", dtype=np.float32)
            for name in ("train", "validation")}


def prtg_raw(root: Path, fraction: float = TRAIN_FRACTION) -> None:
    """The sensor file as it is: the image builds features and holds out the latest 25 %."""
    folder = root / "input" / "data" / "train"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PRTG.name).write_bytes(PRTG.read_bytes())
    write_config(root, channels=("train",))


def prtg_csv(root: Path, fraction: float = 0.75) -> None:
    """What users of this data start with: time features and the target, split 75/25 in time,
    written by DataFrame.to_csv (with its unnamed index column)."""
    import pandas as pd

    raw = pd.read_parquet(PRTG).sort_values("ts")
    table = pd.DataFrame({"minutes": raw.ts.dt.minute, "hour": raw.ts.dt.hour,
                          "day_of_week": raw.ts.dt.day_of_week, "snmpcpu_processor_1": raw.snmpcpu_processor_1})
    cut = int(len(table) * fraction)
    for name, part in (("train", table.iloc[:cut]), ("test", table.iloc[cut:])):
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        part.to_csv(folder / f"{name}.csv")
    write_config(root, channels=("train", "test"))


def prtg_load_table(rows: int = 5000):
    """The sensor's total CPU load (column `label`) beside its two processors, the hour and the two
    loads before: a regression table for the xgboost-hdfs objectives other than binary."""
    import pandas as pd

    raw = pd.read_parquet(PRTG).iloc[:rows]
    total = raw["snmpcpu_total"].astype("float32")
    return pd.DataFrame({"label": total, "processor_1": raw["snmpcpu_processor_1"].astype("float32"),
                         "processor_2": raw["snmpcpu_processor_2"].astype("float32"),
                         "hour": raw["ts"].dt.hour.astype("float32"),
                         "before": total.shift(1).fillna(total.iloc[0]),
                         "before_2": total.shift(2).fillna(total.iloc[0])}).reset_index(drop=True)


def prtg_load(root: Path, hyperparameters: dict, table=None, fmt: str = "parquet", fraction: float = 0.8) -> Path:
    """prtg_load_table() (or `table`) split in time into train and validation, as parquet or CSV (label first)."""
    table = prtg_load_table() if table is None else table
    cut = int(len(table) * fraction)
    for name, part in (("train", table.iloc[:cut]), ("validation", table.iloc[cut:])):
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            part.to_parquet(folder / "part.parquet", engine="fastparquet")
        else:
            part.to_csv(folder / "part.csv", header=False, index=False)
    write_config(root, hyperparameters)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("layout", choices=sorted(LAYOUTS))
    parser.add_argument("dest", type=Path)
    args = parser.parse_args()
    LAYOUTS[args.layout](args.dest)
    print(f"wrote {args.layout} /opt/ml tree to {args.dest}")


LAYOUTS = {"hdfs-raw": hdfs_raw, "hdfs-csv": hdfs_csv, "prtg-raw": prtg_raw, "prtg-csv": prtg_csv}

if __name__ == "__main__":
    main()
