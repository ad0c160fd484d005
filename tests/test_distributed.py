"""Scale-out through the real code: `mrivision train` under torchrun with 2 CPU processes (gloo)
trains like one process, a run whose rank 1 is killed resumes, and Parquet streaming reads every
row exactly once, each process its own row groups."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from conftest import TINY_SPEC, tiny_config
from synthetic import make_slice

from mrivision.constants import CLASS_NAMES
from mrivision.inputs.datasets import encode_png
from mrivision.inputs.streaming import ParquetStream
from mrivision.model.card import ModelCard
from mrivision.training.distributed import Dist
from mrivision.training.train import train

CONFIG = dict(model="altzcnn", name="tiny", spec=TINY_SPEC, batch_size=16, lr=3e-3, label_smoothing=0.0,
              augment=False, patience=1000, monitor="accuracy", val_fraction=0.2, seed=0, test_data=None,
              external_data=None)


def torchrun(root: Path, *args: str) -> subprocess.Popen:
    """`mrivision train` on 2 gloo processes (started in its own session, so it can be killed)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "mrivision",
           "train", "--config", str(root / "tiny.yaml"), "--out-dir", str(root / "weights"),
           "--run-dir", str(root / "runs"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def worker_of_rank(launcher: int, rank: int) -> int | None:
    """The pid of the torchrun worker with `RANK=rank` (a child of the launcher)."""
    children = [pid for task in Path(f"/proc/{launcher}/task").iterdir()
                for pid in (task / "children").read_text().split()]
    for pid in children:
        try:
            if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return int(pid)
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory, synthetic_data):
    """A 2-process run killed (its rank 1) after its first checkpoint, then resumed for 2 more epochs."""
    if not Path("/proc/self/environ").exists():
        pytest.skip("finding a torchrun worker by rank needs /proc (Linux)")
    root = tmp_path_factory.mktemp("ddp")
    (root / "tiny.yaml").write_text(yaml.safe_dump({**CONFIG, "data": str(synthetic_data["train"]), "epochs": 400}))
    run = torchrun(root)
    ckpt = root / "runs" / "tiny" / "last.pt"
    deadline = time.time() + 120
    while not ckpt.is_file() and run.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    victim = worker_of_rank(run.pid, 1)
    assert victim is not None and ckpt.is_file(), run.communicate()[0][-3000:]
    os.kill(victim, signal.SIGKILL)
    try:
        run.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert run.returncode != 0  # the run died
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["state"]
    epochs = saved["epoch"] + 2
    assert saved["epoch"] < 400
    resumed = torchrun(root, "--resume", "--epochs", str(epochs))
    out = resumed.communicate(timeout=240)[0]
    assert resumed.returncode == 0, out[-3000:]
    return root, saved, epochs, out


def test_two_processes_train_like_one_and_a_killed_run_resumes(killed_and_resumed, synthetic_data, tmp_path):
    root, saved, epochs, out = killed_and_resumed
    assert "resumed from" in out and f"after epoch {saved['epoch']}" in out
    two = ModelCard.read(root / "weights" / "tiny.json").training
    assert (two.world_size, two.backend, two.per_process_batch_size) == (2, "gloo", 8)
    assert two.epochs_run == epochs and len(two.history) == epochs
    for before, after in zip(saved["history"], two.history):  # the epochs before the kill are kept as they were
        assert after["train_loss"] == pytest.approx(before["train_loss"])

    torch.set_num_threads(1)
    one = train(tiny_config(synthetic_data["train"], None, tmp_path, **{**CONFIG, "epochs": epochs}),
                log=lambda _: None).training
    assert (one.world_size, one.backend, one.per_process_batch_size) == (1, "none", 16)
    # same seed and global batch: the same batches, gradients averaged, batch norm over the global batch
    assert abs(one.best_val["val_accuracy"] - two.best_val["val_accuracy"]) <= 0.1
    for a, b in zip(one.history, two.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=0.02)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """A folder of 2 Parquet shards, 100 rows in row groups of 8: 25 scans of 4 slices."""
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    labels = [k % 4 for k in range(100)]
    table = pa.table({"image": [encode_png(make_slice(y, rng)) for y in labels],
                      "label": [CLASS_NAMES[y] for y in labels],
                      "group": [f"scan{k // 4}" for k in range(100)]})
    pq.write_table(table.slice(0, 60), root / "part0.parquet", row_group_size=8)
    pq.write_table(table.slice(60), root / "part1.parquet", row_group_size=8)
    return root


def test_row_group_shards_are_disjoint_and_complete(shards):
    stream = ParquetStream(shards)
    assert stream.num_rows == 100 and len(stream.row_groups) == 8 + 5
    assert stream.groups()[:5] == ["scan0"] * 4 + ["scan1"]
    assert list(stream.labels(CLASS_NAMES)[:4]) == [0, 1, 2, 3]
    for world in (1, 2, 3, 4):
        order = np.random.default_rng(world).permutation(len(stream.row_groups))
        seen = [[i for i, _ in stream.rows(stream.shard(r, world, order), buffer=2)] for r in range(world)]
        rows = [i for s in seen for i in s]
        assert sorted(rows) == list(range(100))  # complete, and no row twice
    wanted = np.zeros(100, bool)
    wanted[[3, 50, 99]] = True
    got = dict(stream.rows(range(len(stream.row_groups)), wanted))
    assert sorted(got) == [3, 50, 99] and got[50] == pq.read_table(shards / "part0.parquet")["image"][50].as_py()


def test_streamed_data_needs_a_group_column(tmp_path, shards):
    pq.write_table(pq.read_table(shards / "part0.parquet").drop(["group"]), tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="needs a 'group' column"):
        ParquetStream(tmp_path / "x.parquet").groups()


def test_streaming_training_gives_each_process_its_own_rows(shards, tmp_path):
    from mrivision.model.zoo import create_model
    from mrivision.training.streaming import StreamSource

    cfg = tiny_config(shards, None, tmp_path, stream=True, balance="none", batch_size=8, stream_buffer=2)
    model = create_model("altzcnn", **{**TINY_SPEC, "input_size": tuple(TINY_SPEC["input_size"])})
    labels = ParquetStream(shards).labels(CLASS_NAMES)
    tr_idx = np.flatnonzero(np.arange(100) % 5 != 0)
    read: dict[int, list[int]] = {}
    for rank in (0, 1):
        stream = ParquetStream(shards)
        rows, read[rank] = stream.rows, []

        def recording(*args, _rows=rows, _log=read[rank], **kw):
            for i, blob in _rows(*args, **kw):
                _log.append(i)
                yield i, blob

        stream.rows = recording
        dist = Dist(rank=rank, world_size=2)  # no collectives are needed to draw an epoch's batches
        steps, batches = StreamSource(model, stream, cfg, dist).train_batches(tr_idx, labels, epoch=1, dist=dist)
        for x, y, _ in batches:
            assert x.shape[0] == 4 and y.shape == (4,)  # each process: half the global batch
        assert len(read[rank]) == 4 * steps > 0
    assert not set(read[0]) & set(read[1])  # disjoint row groups
    assert set(read[0]) | set(read[1]) <= set(tr_idx.tolist())  # training rows only


def test_streaming_train_ships_a_model(shards, tmp_path):
    torch.set_num_threads(1)
    cfg = tiny_config(shards, None, tmp_path, stream=True, epochs=3, batch_size=8, external_data=None)
    card = train(cfg, log=lambda _: None)
    assert card.training.split.endswith("streamed") and card.training.n_train + card.training.n_val == 100
    assert card.training.world_size == 1 and len(card.training.history) == 3
    assert (tmp_path / "weights" / "tiny.safetensors").is_file()
