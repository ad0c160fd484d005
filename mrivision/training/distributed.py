"""Process groups for `torchrun`: who am I, which backend, and the few collectives training needs.

Under `torchrun` (the `RANK`, `WORLD_SIZE`, `MASTER_ADDR` variables it sets) `process_group()`
joins the group: `nccl` with one GPU per process when CUDA is available, `gloo` on CPU otherwise.
Outside torchrun it yields `SINGLE`, a group of one that makes every collective a no-op, so a
single-process run takes exactly the code path it always did.

Rank 0 alone writes files; the others wait at a barrier and read what it wrote, so `run_dir`
must be on a file system every node sees (as on any SLURM cluster).
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as tdist
from torch import nn

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
TIMEOUT = datetime.timedelta(minutes=60)  # ranks wait this long for rank 0 (feature cache, test evaluation)


@dataclass(frozen=True)
class Dist:
    """This process's place in the group (`SINGLE`: one process, no group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "none"  # "gloo" | "nccl" | "none"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.backend != "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, value: float) -> float:
        """The mean of a number over the ranks."""
        return float(sum(self.all_gather(float(value))) / self.world_size)

    def check_same(self, what: str, value: Any) -> None:
        """Refuse to go on when ranks disagree on `value` (e.g. the subject split)."""
        digest = hashlib.sha256(pickle.dumps(value)).hexdigest()
        digests = self.all_gather(digest)
        differ = [i for i, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise RuntimeError(f"the processes disagree on {what} (ranks {differ} differ from rank 0); "
                               f"is the data the same on every node?")

    def wrap(self, module: nn.Module) -> nn.Module:
        """The module behind DistributedDataParallel (gradients averaged over ranks, batch-norm
        statistics of the global batch: `GlobalBatchNorm2d`), or as it is; `unwrap` undoes it."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        for m in module.modules():
            if type(m) is nn.BatchNorm2d:
                m.__class__ = GlobalBatchNorm2d  # the same state; only its training forward differs
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def unwrap(self, module: nn.Module) -> None:
        """Plain batch norm again in `module` (after `wrap`)."""
        for m in module.modules():
            if type(m) is GlobalBatchNorm2d:
                m.__class__ = nn.BatchNorm2d

    def per_process(self, global_batch: int) -> int:
        """This process's share of a global batch (which must split evenly)."""
        if global_batch % self.world_size:
            raise ValueError(f"batch_size {global_batch} does not split evenly over {self.world_size} processes; "
                             f"choose a multiple of {self.world_size}")
        return global_batch // self.world_size


SINGLE = Dist()


class SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over the processes; its gradient is the sum of theirs."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        tdist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        tdist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that normalises a training batch by the statistics of the global batch (every
    process's share), so N processes train as one process with the whole batch would; works with
    gloo on CPU, where `nn.SyncBatchNorm` does not. Evaluation is plain batch norm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.track_running_stats:
            return super().forward(x)
        c = x.shape[1]
        count = torch.full((1,), x.numel() / c, dtype=x.dtype, device=x.device)
        tdist.all_reduce(count)
        mean = SumOverRanks.apply(x.sum((0, 2, 3))) / count
        var = SumOverRanks.apply(((x - mean[None, :, None, None]) ** 2).sum((0, 2, 3))) / count
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(m * mean)
            self.running_var.mul_(1 - m).add_(m * var * count / (count - 1))
        y = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None] if self.affine else y


def quiet(_: str) -> None:
    """The log of every rank but 0."""


def under_torchrun() -> bool:
    return all(v in os.environ for v in TORCHRUN_VARS)


def join() -> Dist:
    """Join (or, when already joined, describe) the process group torchrun set up."""
    rank, world, local = (int(os.environ[v]) for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    cuda = torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend, timeout=TIMEOUT, **({"device_id": device} if cuda else {}))
    return Dist(rank, world, local, tdist.get_backend(), device)


@contextlib.contextmanager
def process_group() -> Iterator[Dist]:
    """The group torchrun set up (left when done if this call joined it), or `SINGLE` outside torchrun."""
    if not under_torchrun():
        yield SINGLE
        return
    joined_here = not tdist.is_initialized()
    dist = join()
    try:
        yield dist
    finally:
        if joined_here and tdist.is_initialized():
            tdist.destroy_process_group()


def save_atomic(obj: Any, path: Path) -> None:
    """`torch.save` to a temporary file, then rename: a reader (or a resumed run) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def shared_file(dist: Dist, path: Path, make: Callable[[], Any]) -> Any:
    """`make()` on rank 0, saved at `path` (unless there already); the other ranks load it after a barrier."""
    if dist.is_main:
        if path.is_file():
            obj = torch.load(path, map_location="cpu", weights_only=True)
        else:
            obj = make()
            path.parent.mkdir(parents=True, exist_ok=True)
            save_atomic(obj, path)
    dist.barrier()
    if not dist.is_main:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    dist.barrier()
    return obj
