"""Peak memory of `mrivision train --stream` on a Parquet data set of N copies of train/ (issue 24).

Writes N copies of the training slices' JPEG bytes (label, and a group column: the copy and 32
consecutive files of a class, a stand-in, since train/ names no scans) as row groups of
`--row-group` rows into a temporary folder outside the repository, trains a tiny model on it for
one epoch through the real command (`balance: none`: every training row is read, decoded and
trained on), prints the child's peak RSS, and deletes the data. Run under `nice`; minutes.

    python scripts/stream_memory.py --copies 10
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mrivision.bench.system import children_peak_rss_mb  # noqa: E402
from mrivision.inputs.datasets import load_dataset  # noqa: E402
from mrivision.model.card import ModelCard  # noqa: E402

TRAIN = ROOT.parent / "shared" / "data" / "alzheimer-4class" / "train"
TINY = {"input_size": [32, 32], "extra": {"widths": [8, 16, 16, 32]}, "head_dropout": 0.0, "framing": "letterbox"}


def write_copies(out: Path, copies: int, row_group: int) -> tuple[int, int]:
    """N copies of train/ as one Parquet file (row groups of `row_group` rows); (rows, bytes)."""
    samples = load_dataset(TRAIN)
    blobs = [Path(s.source).read_bytes() for s in samples]
    labels = [s.name.split("/")[0] for s in samples]
    schema = pa.schema([("image", pa.binary()), ("label", pa.string()), ("group", pa.string())])
    with pq.ParquetWriter(out, schema) as writer:
        for c in range(copies):
            groups = [f"copy{c}/{lab}/{i // 32}" for i, lab in enumerate(labels)]
            writer.write_table(pa.table({"image": blobs, "label": labels, "group": groups}, schema=schema),
                               row_group_size=row_group)
    return copies * len(samples), out.stat().st_size


READER = """
import sys
import numpy as np
from mrivision.inputs.streaming import ParquetStream

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

stream = ParquetStream(sys.argv[1])
before, most, n = rss(), 0.0, 0
for n, _ in enumerate(stream.rows(range(len(stream.row_groups)), buffer=int(sys.argv[2]), rng=np.random.default_rng(0)), 1):
    if n % 100 == 0:
        most = max(most, rss())
print(n, before, most)
"""


def reader_alone(data: Path, buffer: int) -> tuple[int, float, float]:
    """(rows read, RSS after opening, the most RSS while reading every row) of the bare reader, in MiB."""
    out = subprocess.run([sys.executable, "-c", READER, str(data), str(buffer)], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    return int(out[0]), float(out[1]), float(out[2])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--row-group", type=int, default=1000)
    ap.add_argument("--buffer", type=int, default=4, help="stream_buffer: row groups shuffled together")
    ap.add_argument("--reader-only", action="store_true", help="measure the bare reader, skip the training run")
    ap.add_argument("--workdir", default=None, help="where the temporary data goes (default: the system temp dir)")
    args = ap.parse_args()
    if not TRAIN.is_dir():
        print(f"needs the training data at {TRAIN}")
        return 1
    work = Path(tempfile.mkdtemp(prefix="stream_memory_", dir=args.workdir))
    try:
        data = work / "train_x.parquet"
        rows, size = write_copies(data, args.copies, args.row_group)
        cfg = {"model": "altzcnn", "name": "stream_memory", "spec": TINY, "data": str(data), "test_data": None,
               "external_data": None, "epochs": 1, "batch_size": 32, "augment": False, "balance": "none",
               "stream": True, "stream_buffer": args.buffer, "threads": 1, "out_dir": str(work / "weights"),
               "run_dir": str(work / "runs")}
        (work / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        if args.reader_only:
            n_read, opened, read_all = reader_alone(data, args.buffer)
            print(f"{n_read} rows; RSS {opened:.0f} MiB after opening, at most {read_all:.0f} MiB while reading "
                  f"(+{read_all - opened:.0f} MiB; stream_buffer {args.buffer}, row groups of {args.row_group})")
            return 0
        t0 = time.time()
        done = subprocess.run([sys.executable, "-m", "mrivision", "train", "--config", str(work / "cfg.yaml")],
                              cwd=ROOT, capture_output=True, text=True)
        seconds = time.time() - t0
        if done.returncode:
            print(done.stdout[-2000:], done.stderr[-3000:])
            return done.returncode
        peak = children_peak_rss_mb()
        n_read, opened, read_all = reader_alone(data, args.buffer)
        training = ModelCard.read(work / "weights" / "stream_memory.json").training
        print(f"data: {args.copies} x train/ = {rows} rows, {size / 2**20:.0f} MiB Parquet, row groups of "
              f"{args.row_group}, stream_buffer {args.buffer}")
        print(f"one epoch streamed: {training.n_train} training + {training.n_val} validation rows, {seconds:.0f} s")
        print(f"peak RSS of the training process: {peak:.0f} MiB (card, before shipping: {training.peak_rss_mb} MiB)")
        print(f"the reader alone, every row of every row group: {n_read} rows; RSS {opened:.0f} MiB after opening "
              f"(imports, footers), at most {read_all:.0f} MiB while reading (+{read_all - opened:.0f} MiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
