"""Multi-process runs under ``torchrun``: the process group, devices, shards and gathers.

Plain PyTorch only: ``torch.distributed`` for the process group and collectives, and
``DistributedDataParallel`` for training. One process (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``)
never touches ``torch.distributed``: every helper here is then the identity.

* The group is joined from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``MASTER_ADDR``/``MASTER_PORT``): NCCL on CUDA, gloo on the CPU. Every process uses
  ``cuda:LOCAL_RANK``.
* Every collective has a timeout (``WMRBENCH_DIST_TIMEOUT`` seconds, default 1800): a process
  whose peer died or hangs fails with an error instead of waiting forever, and torchrun then
  stops the remaining processes and exits non-zero.
* Only rank 0 writes files and shows progress; :func:`is_main_process` says which one that is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from wmrbench.core import runtime
from wmrbench.core.errors import WmrbenchError, first_line, setting

TIMEOUT_ENV = "WMRBENCH_DIST_TIMEOUT"
# Long enough for the longest legitimate wait: rank 0 writing a checkpoint, or a rank with one
# batch fewer to attack waiting for the others at the final gather.
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among world_size processes."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise WmrbenchError(f"environment variable {name}={value!r} is not an integer") from None


def env_world_size() -> int:
    """The number of processes torchrun started (1 when not under torchrun)."""
    return max(1, _env_int("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that writes results and prints."""
    return _env_int("RANK", 0) == 0


def context() -> Context:
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size())
    return Context()


def timeout_seconds() -> float:
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise WmrbenchError(f"{TIMEOUT_ENV}={text!r}: give the collective timeout in seconds (> 0)")
    return value


def resolve_device(device: str) -> torch.device:
    """The device this process runs on: ``runtime.parse_device``, and under torchrun
    ``auto``/``cuda`` mean ``cuda:LOCAL_RANK``."""
    resolved = runtime.parse_device(device)
    if env_world_size() == 1 or resolved.type != "cuda":
        return resolved
    if device not in ("auto", "cuda"):
        raise WmrbenchError(
            f"{setting('device', device)} names one GPU, but torchrun started {env_world_size()} processes: "
            f"use {setting('device')} cuda (each process takes cuda:LOCAL_RANK)"
        )
    local_rank = _env_int("LOCAL_RANK", 0)
    visible = torch.cuda.device_count()
    if local_rank >= visible:
        raise WmrbenchError(
            f"process with LOCAL_RANK {local_rank} has no GPU: only {visible} visible on this node; "
            f"use --nproc-per-node {visible} or fewer"
        )
    return torch.device("cuda", local_rank)


def setup(device: torch.device) -> Context:
    """Join the process group torchrun describes (once per process); a no-op for one process."""
    if env_world_size() == 1 or dist.is_initialized():
        return context()
    timeout = timedelta(seconds=timeout_seconds())
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=timeout)
    return context()


def _is_comm_failure(exc: BaseException) -> bool:
    # NCCL raises DistError subclasses; gloo raises a plain RuntimeError naming itself.
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        mark in text for mark in ("gloo", "NCCL", "Connection closed by peer", "Connection reset by peer")
    )


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Around one command: a lost peer becomes one line; the group is left cleanly on success.

    A collective that fails (a peer died, or hung past the timeout) ends this process with a
    WmrbenchError naming the cause instead of a C++ traceback; torchrun then stops the rest.
    On an exception the group is not torn down: that could wait on peers that are themselves
    stuck, and the process is about to exit anyway.
    """
    try:
        yield
    except RuntimeError as exc:
        ctx = context()
        if not (ctx.enabled and _is_comm_failure(exc)):
            raise
        first = first_line(exc)
        raise WmrbenchError(
            f"lost contact with the other processes (one died, or did not answer within "
            f"{timeout_seconds():g}s, {TIMEOUT_ENV}): {first}"
        ) from None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_divides(batch_size: int, world_size: int) -> int:
    """The per-process batch: the global batch split evenly, or one line saying why not."""
    if batch_size % world_size:
        raise WmrbenchError(
            f"batch size {batch_size} does not split evenly over {world_size} processes: "
            f"use a {setting('batch_size')} that is a multiple of {world_size} (the global batch) or another --nproc-per-node"
        )
    return batch_size // world_size


def check_enough(n: int, world_size: int, what: str) -> None:
    if n < world_size:
        raise WmrbenchError(
            f"{world_size} processes but only {n} {what}: every process needs at least one; "
            f"use --nproc-per-node {max(n, 1)} or fewer"
        )


def epoch_shard(order: Tensor, rank: int, world_size: int) -> Tensor:
    """This rank's part of an epoch's global permutation, as DistributedSampler cuts it.

    The order is padded by wrapping around to a multiple of world_size (so every rank takes the
    same number of steps, which DDP needs), then rank r takes positions r, r + W, r + 2W, ...
    With per-rank batches of B / W, step k of all ranks together covers exactly positions
    [k * B, (k + 1) * B) of the padded order: the global batch of one process with batch B.
    """
    if world_size == 1:
        return order
    n = order.numel()
    padded = -(-n // world_size) * world_size
    if padded > n:
        order = torch.cat([order, order[: padded - n]])
    return order[rank::world_size]


def eval_batches(n: int, batch_size: int, rank: int, world_size: int) -> range:
    """The global numbers of this rank's batches: batch b holds examples [b * batch_size,
    (b + 1) * batch_size), whatever the number of processes (a batch's number is its identity:
    resumed evaluations key their saved batches on it). Computed on the host, so the caller
    never reads a device tensor to know where it is."""
    n_batches = -(-n // batch_size)
    mine = torch.tensor_split(torch.arange(n_batches), world_size)[rank]
    return range(int(mine[0]), int(mine[-1]) + 1) if mine.numel() else range(0)


def eval_shard(
    n: int, batch_size: int, rank: int, world_size: int, device: torch.device | str = "cpu"
) -> Tensor:
    """Indices of this rank's examples: a contiguous run of whole batches of ``batch_size``.

    Whole batches, so that each example is attacked in the same batch whatever the number of
    processes; contiguous, so that rank order is index order. With fewer batches than
    processes, the last ranks get none.
    """
    mine = eval_batches(n, batch_size, rank, world_size)
    if not mine:
        return torch.arange(0, device=device)
    return torch.arange(mine.start * batch_size, min(n, mine.stop * batch_size), device=device)


def barrier() -> None:
    """Wait for every process (a no-op for one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum over processes, in place (identity for one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_columns(columns: dict[str, Tensor] | None) -> dict[str, Tensor]:
    """Every rank's per-example columns (CPU tensors), concatenated in rank order, on every rank.

    A rank without examples passes None. One process: the columns themselves. The shards are
    contiguous and in rank order (:func:`eval_shard`), so the result is in index order.
    ``all_gather_object`` copes with shards of any size; the columns are small (a few numbers
    per example), so pickling them costs nothing next to the attacks.
    """
    ctx = context()
    if not ctx.enabled:
        if columns is None:
            raise ValueError("no columns to gather")
        return columns
    gathered: list[dict[str, Tensor] | None] = [None] * ctx.world_size
    dist.all_gather_object(gathered, columns)
    present = [g for g in gathered if g is not None]
    return {key: torch.cat([g[key] for g in present]) for key in present[0]}


def check_same_weights(model: nn.Module) -> None:
    """Fail loudly if this rank's parameters are not those of rank 0 (no-op for one process).

    DDP keeps replicas identical by averaging gradients; this once-per-epoch check (two
    numbers per rank) makes sure nothing broke that, so rank 0's checkpoint speaks for all.
    """
    ctx = context()
    if not ctx.enabled:
        return
    with torch.no_grad():
        params = [p.detach().double() for p in model.parameters()]
        fingerprint = torch.stack([sum(p.sum() for p in params), sum(p.square().sum() for p in params)])
    reference = fingerprint.clone()
    dist.broadcast(reference, src=0)
    if not torch.equal(fingerprint, reference):
        raise RuntimeError(f"rank {ctx.rank}'s weights differ from rank 0's: DDP did not keep the replicas in sync")


def prepare_for_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm policy for multi-process training: SyncBatchNorm on CUDA.

    Why SyncBatchNorm: a preset's batch size (128 in the paper) is the GLOBAL batch, and the
    batch statistics of the training forward passes should be those of that batch, as on one
    GPU; with per-rank statistics, 8 GPUs would normalise over 16 examples each. The running
    statistics then also agree on every rank, so the attack (eval mode, running statistics)
    attacks the same function everywhere. The cost is small: only the two train-mode forward
    passes per step synchronise; the attack's many forward passes are in eval mode, where
    SyncBatchNorm is plain BatchNorm and communicates nothing.
    On the CPU (gloo), PyTorch has no SyncBatchNorm: statistics stay per rank there, and DDP's
    buffer broadcast keeps the running statistics those of rank 0.
    The modules are converted in place and keep their Parameter objects and state_dict keys,
    so an optimizer built before still holds the right tensors and checkpoints load anywhere.
    """
    if context().enabled and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """The module the training forward passes go through: DDP for several processes.

    The attack never goes through this wrapper: it runs on ``model`` itself (eval mode, frozen
    parameters), so its many forward and backward passes trigger no DDP hooks or all-reduces.
    """
    if not context().enabled:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
