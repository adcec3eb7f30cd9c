"""Data-parallel fine-tuning over ``torch.distributed`` (``torchrun --nproc_per_node N``).

Design (every rank runs the same loop):

- ``--batch-size`` is the GLOBAL batch. Every rank draws the whole step's batch from
  ``(seed, step)`` (see :mod:`.batches`) and keeps its contiguous slice (:func:`shard`), so the
  samples are exactly the single-process run's.
- G_C and a trained D are wrapped in ``DistributedDataParallel``; the frozen teacher (and a
  frozen D) are plain replicas. Masks and the AGP schedule are computed from identical weights
  on every rank, so they agree without communication.
- The losses are functions of *batch means* (each profile term, the normalised L1, R1 and the
  gradient penalty are means over samples), and the consistency losses are non-linear in them
  (``|t_k - s_k| / |t_k|``). Averaging per-rank losses would therefore NOT be the
  single-process loss. Instead every batch mean is made global before it is used:
  :func:`global_means` all-reduces ``n_local * mean_local`` (and ``n_local``) with the
  autograd-aware :func:`all_reduce_sum` (whose backward all-reduces the gradients, like the
  deprecated ``torch.distributed.nn.functional.all_reduce``). Every rank then holds the
  single-process loss value; its backward (an all-reduce SUM of the identical upstream
  gradients) gives each rank ``world_size x`` its samples' share of the gradient, and DDP's
  gradient *average* turns that into exactly the single-process gradient (up to float
  rounding). Uneven slices are exact too.
- Rank 0 writes the output, checkpoints, log and samples and reports progress. A Ctrl-C (or an
  interrupting progress callback) on any rank is agreed on by an all-reduce once per step, so
  every rank stops after the same step; rank 0 saves the resumable state.

Normalisation layers: a D in train mode with BatchNorm normalises each rank's slice with that
slice's statistics on the CPU (gloo): ``SyncBatchNorm`` only runs on GPUs. On CUDA, BatchNorm
layers of a trained D (and of G_C with ``--student-mode train``) are converted to
``SyncBatchNorm``, so batch statistics are over the global batch as in one process. Running
statistics (BN buffers) follow rank 0 (DDP broadcasts buffers at each forward). Randomness
drawn from torch's global RNG inside a step (WGAN-GP interpolation weights, dropout) is drawn
per rank, so those runs match one process in distribution, not bit for bit. Discriminators
without BatchNorm (the bundled digits D) give the single-process result up to float rounding
with ``ns``/``hinge``/``lsgan`` losses.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..errors import InputError

_ACTIVE: "World | None" = None


@dataclass
class World:
    rank: int
    size: int
    local_rank: int
    owns_group: bool = False  # run_finetune initialised the process group (and destroys it)
    group: Any = None  # a second group for the loss all-reduces, independent of DDP's gradient buckets

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def is_main_process() -> bool:
    """Rank 0, or not distributed (for the CLI: only rank 0 prints)."""
    try:
        return int(os.environ.get("RANK", "0")) == 0
    except ValueError:
        return True


def init_world(device_name: str) -> World | None:
    """The process group of a ``torchrun`` launch (initialised here when the caller did not), else None."""
    import torch.distributed as dist

    initialised = dist.is_available() and dist.is_initialized()
    if not initialised and env_world_size() <= 1:
        return None
    if not dist.is_available():
        raise InputError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    owns = False
    if not initialised:
        _init_group(device_name)
        owns = True
    if dist.get_world_size() <= 1:
        if owns:
            dist.destroy_process_group()
        return None
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return World(dist.get_rank(), dist.get_world_size(), local, owns, dist.new_group())


def _init_group(device_name: str) -> None:
    import torch.distributed as dist

    cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=30))


def from_rank0(read: Callable[[], str], device_name: str) -> str:
    """``read()`` on rank 0 only and its result (or its :class:`InputError`) on every rank of a
    torchrun launch, so that only rank 0 consumes stdin; ``read()`` itself when not distributed.

    Starts the process group when needed (the run then uses it; it is closed at exit).
    """
    if env_world_size() <= 1:
        return read()
    import atexit

    import torch.distributed as dist

    if not dist.is_initialized():
        _init_group(device_name)
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    box: list = [None, None]
    if dist.get_rank() == 0:
        try:
            box = [read(), None]
        except InputError as exc:
            box = [None, str(exc)]
    dist.broadcast_object_list(box, src=0, group=dist.new_group(backend="gloo"))
    if box[1] is not None:
        raise InputError(box[1])
    return box[0]


def device_for(world: World | None, device: torch.device) -> torch.device:
    """``cuda`` (no index) means this rank's GPU (``LOCAL_RANK``) in a distributed run, else the current one.

    The index is always filled in: ``torch.cuda.set_device`` refuses an index-less device in some torch
    releases (2.11 raised ``ValueError`` for ``finetune --device cuda`` on an H200).
    """
    if device.type == "cuda" and device.index is None:
        index = world.local_rank % max(1, torch.cuda.device_count()) if world is not None else torch.cuda.current_device()
        device = torch.device("cuda", index)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


@contextmanager
def activated(world: World | None) -> Iterator[World | None]:
    """Make the step functions reduce their batch means over ``world`` for the duration."""
    global _ACTIVE
    previous, _ACTIVE = _ACTIVE, world
    try:
        yield world
    finally:
        _ACTIVE = previous
        if world is not None and world.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def active() -> World | None:
    return _ACTIVE


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (SUM): the backward all-reduces the incoming gradients."""

    @staticmethod
    def forward(ctx, tensor: Tensor, group: Any) -> Tensor:  # type: ignore[override]
        import torch.distributed as dist

        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return _AllReduceSum.apply(grad.contiguous(), ctx.group), None


def all_reduce_sum(tensor: Tensor, group: Any = None) -> Tensor:
    return _AllReduceSum.apply(tensor, group)


def global_means(values: Sequence[Tensor], n: int) -> list[Tensor]:
    """Batch means over the global batch from this rank's means over its ``n`` samples.

    One autograd-aware all-reduce for all ``values`` (scalars); the identity when not distributed.
    """
    if _ACTIVE is None or not values:
        return list(values)
    local = torch.stack([v.float().reshape(()) * n for v in values])
    count = torch.full((1,), float(n), device=local.device)
    total = all_reduce_sum(torch.cat([local, count]), _ACTIVE.group)
    return list((total[:-1] / total[-1].detach()).unbind())


def global_terms(*groups: dict[str, Tensor], n: int) -> list[dict[str, Tensor]]:
    """:func:`global_means` over several ``{name: mean}`` dicts in one all-reduce."""
    if _ACTIVE is None:
        return list(groups)
    flat = [v for g in groups for v in g.values()]
    reduced = iter(global_means(flat, n))
    return [{k: next(reduced) for k in g} for g in groups]


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (a collective: all ranks must call it)."""
    if _ACTIVE is None:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_ACTIVE.group)
    return bool(t.item() > 0)


def barrier() -> None:
    if _ACTIVE is not None:
        import torch.distributed as dist

        dist.barrier()


def shard_bounds(n: int, world: World | None) -> tuple[int, int]:
    """This rank's contiguous slice of ``n`` samples (sizes differ by at most one)."""
    if world is None:
        return 0, n
    base, extra = divmod(n, world.size)
    start = world.rank * base + min(world.rank, extra)
    return start, start + base + (1 if world.rank < extra else 0)


def global_randn_like(x: Tensor) -> Tensor:
    """``torch.randn_like(x)`` for this rank's slice of the global batch: the values one process draws
    for the whole batch (every rank's global RNG is seeded alike), so the noise does not depend on
    the number of processes. One all-reduce (the global batch size) in a multi-process run."""
    if _ACTIVE is None:
        return torch.randn_like(x)
    count = all_reduce_sum(torch.tensor([float(x.shape[0])], device=x.device), _ACTIVE.group)
    n = int(count.item())
    lo, hi = shard_bounds(n, _ACTIVE)
    return torch.randn((n, *x.shape[1:]), device=x.device, dtype=x.dtype)[lo:hi]


def shard(batch, world: World | None):
    """This rank's slice of a global :class:`~.batches.StepData`."""
    if world is None or getattr(batch, "sharded", False):
        return batch
    n = batch.x.shape[0]
    lo, hi = shard_bounds(n, world)
    cut = (lambda t: None if t is None else t[lo:hi])
    # every per-sample field shares the batch dimension (the samplers draw the same count of each):
    # the generator inputs, the real images, their paired inputs and both label sets
    return replace(batch, x=cut(batch.x), real=cut(batch.real), real_x=cut(batch.real_x),
                   labels=cut(batch.labels), real_labels=cut(batch.real_labels))


def wrap(module: nn.Module, world: World | None, device: torch.device, *, sync_bn: bool) -> nn.Module:
    """``DistributedDataParallel(module)`` for a trained module (SyncBatchNorm on CUDA when ``sync_bn``)."""
    if world is None or not any(p.requires_grad for p in module.parameters()):
        return module
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn and device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, output_device=device.index if ids else None)


def unwrap(module: nn.Module | None) -> nn.Module | None:
    """The plain module inside ``DistributedDataParallel``, ``--compile``'s and ``--quantize-aware``'s wrappers."""
    from torch.nn.parallel import DistributedDataParallel

    from ..devices import CompiledOrEager

    while isinstance(module, (DistributedDataParallel, CompiledOrEager)) or getattr(module, "unwraps_to_module", False):
        module = module.module
    return module


def has_batchnorm(module: nn.Module | None) -> bool:
    return module is not None and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
