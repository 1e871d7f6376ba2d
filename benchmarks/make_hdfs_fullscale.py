"""A full-scale HDFS_v1-sized raw-log channel from the real 2 % sample, by repeating its blocks.

    .venv/bin/python -m benchmarks.make_hdfs_fullscale                  # 575,061 blocks, ~11.2M lines, plain
    .venv/bin/python -m benchmarks.make_hdfs_fullscale --gzip           # the same, HDFS.log.gz
    .venv/bin/python -m benchmarks.make_hdfs_fullscale --blocks 51456 --lines 1000000 --files 3 --out DIR

The full HDFS_v1 set has 11,175,629 lines and 575,061 blocks; ../shared/data/hdfs holds 165,563
real lines of 8,050 blocks. This writes copies of those blocks under new block ids:

- copy 0 keeps the real ids; copy k > 0 gives each block a new 64-bit id derived from (k, real id)
  with blake2b, so ids look like real ones (`blk_-4512...`, 18-19 digits) and never repeat;
- within a copy, lines stay in the real file's order, so the blocks' lines are interleaved as in
  the real log (timestamps are the real ones: each copy replays the same two days);
- to match both sizes of the full set (19.4 lines per block there, 20.6 in the sample), blocks are
  taken in order, copy after copy, skipping a block when taking it would put the running line count
  more than a block's worth ahead of lines/blocks of the target; so long blocks are repeated a
  little less often than short ones. The labels follow the blocks (anomaly_label.csv, in order of
  first appearance); the printed summary gives the resulting anomaly count.

Output: HDFS.log (or --files N parts HDFS.part-001.log ...; .gz with --gzip) and anomaly_label.csv
in --out (default .build/hdfs-fullscale[-gz]). A stamp file skips regeneration when nothing changed.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HDFS = REPO.parent / "shared" / "data" / "hdfs"
FULL_LINES = 11_175_629
FULL_BLOCKS = 575_061
BLOCK_ID = re.compile(r"blk_-?\d+")
STAMP = "fullscale.json"


def log(message: str) -> None:
    print(f"[make_hdfs_fullscale] {message}", file=sys.stderr, flush=True)


def read_sample(hdfs: Path = HDFS):
    """Real lines split around their block id, the blocks in order of first appearance, their labels."""
    with open(hdfs / "anomaly_label.csv") as handle:
        next(handle)
        labels = dict(line.strip().split(",") for line in handle if line.strip())
    index: dict[str, int] = {}
    lines = []  # (block index, [text pieces between the id's occurrences])
    with gzip.open(hdfs / "HDFS.log.gz", "rt") as handle:
        for number, line in enumerate(handle, start=1):
            ids = BLOCK_ID.findall(line)
            if len(set(ids)) != 1:
                raise SystemExit(f"HDFS.log.gz line {number} names {len(set(ids))} blocks; expected one")
            block = index.setdefault(ids[0], len(index))
            lines.append((block, line.split(ids[0])))
    blocks = list(index)
    missing = [b for b in blocks if b not in labels]
    if missing:
        raise SystemExit(f"{len(missing)} blocks have no label, e.g. {missing[:3]}")
    return lines, blocks, [labels[b] for b in blocks]


def choose_copies(lengths: list[int], blocks: int, lines: int) -> list[list[bool]]:
    """Which blocks each copy keeps so that `blocks` blocks carry about `lines` lines."""
    copies, taken, written = [], 0, 0
    slack = max(lengths)
    while taken < blocks:
        keep = []
        for length in lengths:
            fits = written + length <= lines * (taken + 1) / blocks + slack
            ok = taken < blocks and fits
            keep.append(ok)
            if ok:
                taken, written = taken + 1, written + length
        if not any(keep):
            raise SystemExit("no block fits the requested lines per block")
        copies.append(keep)
    return copies


def new_id(copy: int, real: str) -> str:
    if copy == 0:
        return real
    digest = hashlib.blake2b(f"{copy}:{real}".encode(), digest_size=8).digest()
    return f"blk_{int.from_bytes(digest, 'big', signed=True)}"


def generate(out: Path, blocks: int = FULL_BLOCKS, lines: int = FULL_LINES, files: int = 1,
             compress: bool = False, hdfs: Path = HDFS) -> dict:
    settings = {"blocks": blocks, "lines": lines, "files": files, "gzip": compress, "format": 1}
    stamp = out / STAMP
    if stamp.exists():
        summary = json.loads(stamp.read_text())
        if summary.get("settings") == settings and all((out / name).exists() for name in summary["files"]):
            log(f"{out} is up to date")
            return summary
    started = time.perf_counter()
    sample, real_blocks, real_labels = read_sample(hdfs)
    lengths = [0] * len(real_blocks)
    for block, _ in sample:
        lengths[block] += 1
    copies = choose_copies(lengths, blocks, lines)
    total_lines = sum(lengths[b] for keep in copies for b, k in enumerate(keep) if k)
    per_file = -(-total_lines // files)
    suffix = ".log.gz" if compress else ".log"
    names = ["HDFS" + suffix] if files == 1 else [f"HDFS.part-{i + 1:03d}{suffix}" for i in range(files)]
    out.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)

    def opener(path: Path):
        return gzip.open(path, "wt", compresslevel=6, newline="") if compress else open(path, "w", newline="")

    seen, written, anomalies = set(), 0, 0
    handle = opener(out / names[0])
    with open(out / "anomaly_label.csv", "w") as label_file:
        label_file.write("BlockId,Label\n")
        for copy, keep in enumerate(copies):
            ids = [new_id(copy, real) if k else None for real, k in zip(real_blocks, keep)]
            for block, block_id in enumerate(ids):
                if block_id is not None:
                    if block_id in seen:
                        raise SystemExit(f"block id {block_id} came out twice; change the id scheme")
                    seen.add(block_id)
                    label_file.write(f"{block_id},{real_labels[block]}\n")
                    anomalies += real_labels[block] == "Anomaly"
            buffer = []
            for block, pieces in sample:
                block_id = ids[block]
                if block_id is None:
                    continue
                buffer.append(block_id.join(pieces))
                written += 1
                if written % per_file == 0 and written < total_lines:
                    handle.write("".join(buffer))
                    buffer = []
                    handle.close()
                    handle = opener(out / names[written // per_file])
            handle.write("".join(buffer))
            if copy % 10 == 9:
                log(f"copy {copy + 1}/{len(copies)}: {written:,} lines")
    handle.close()
    summary = {"settings": settings, "files": names + ["anomaly_label.csv"], "lines": written,
               "blocks": len(seen), "anomalies": anomalies, "copies": len(copies),
               "bytes": sum((out / name).stat().st_size for name in names),
               "seconds": round(time.perf_counter() - started, 1)}
    stamp.write_text(json.dumps(summary, indent=2))
    log(f"wrote {written:,} lines of {len(seen):,} blocks ({anomalies:,} anomalies) in {len(copies)} copies "
        f"to {out} ({summary['bytes'] / 1e9:.2f} GB) in {summary['seconds']} s")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=FULL_BLOCKS, help="blocks to write (default: HDFS_v1's)")
    parser.add_argument("--lines", type=int, default=FULL_LINES, help="lines to aim for (default: HDFS_v1's)")
    parser.add_argument("--files", type=int, default=1, help="log files to spread the lines over, in order")
    parser.add_argument("--gzip", action="store_true", help="write gzip files (default: plain, as HDFS_v1)")
    parser.add_argument("--out", type=Path, help="output folder (default .build/hdfs-fullscale[-gz])")
    args = parser.parse_args(argv)
    out = args.out or REPO / ".build" / ("hdfs-fullscale-gz" if args.gzip else "hdfs-fullscale")
    generate(out, args.blocks, args.lines, args.files, args.gzip)
    return 0


if __name__ == "__main__":
    sys.exit(main())
