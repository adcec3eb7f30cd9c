"""Real images streamed from a folder: decoded lazily, a step's batch at a time, by DataLoader workers
(image-to-image crops use the same :class:`StepStream`, see :class:`~.pairs.CropSampler`).

:class:`ImageFolder` decodes one image per ``__getitem__`` (nothing reads the whole folder into
memory). :class:`StepStream` feeds a ``torch.utils.data.DataLoader`` a batch sampler whose batch
for step ``k`` is ``order(k)``, the indices the in-memory path draws from ``(seed, k)`` alone, cut
to this process's slice ``bounds`` under torchrun (the ``DistributedSampler`` role: each rank
decodes only its own images). Workers prefetch the following steps; a step out of sequence
(``--resume``) restarts the loader there. Streamed batches equal the in-memory ones exactly.
"""
from __future__ import annotations

import atexit
import multiprocessing
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data import Sampler as TorchSampler

from .images import data_folder, fit, image_files, load_real, read_image, to_range
from ..errors import GanCompressError

DEFAULT_WORKERS = 2
# Streams with live workers: closed at interpreter exit, before multiprocessing's own exit handler
# (registered earlier, so it runs later) would kill the workers and fail the process.
_LIVE: "weakref.WeakSet[StepStream]" = weakref.WeakSet()


def holds_process_group() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def worker_context():
    """How a stream's workers start: forked (the DataLoader's default on Linux), except in two cases where
    they come from a fork server (a clean process started once, torch and the datasets' modules imported
    in it beforehand, whose children end with ``os._exit``):

    - the process holds a ``torch.distributed`` group: a fork would copy its communication threads
      mid-flight;
    - the process's own default is ``spawn`` (a child of ``torch.multiprocessing.spawn``, macOS): each
      worker would import torch afresh at every (re)start of the loader (seconds each) and run the
      interpreter's full shutdown on exit, where a worker stopped early was seen to abort (CI, gloo).

    Like ``spawn``, a fork server imports the ``__main__`` script again in each worker: a script that
    calls the library under ``torchrun`` keeps its work under ``if __name__ == "__main__":``.
    """
    wanted = holds_process_group() or multiprocessing.get_start_method(allow_none=True) == "spawn"
    if not wanted or "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", __name__, f"{__package__}.pairs"])  # before it starts
    return context


@atexit.register
def _close_live_streams() -> None:
    for stream in list(_LIVE):
        stream.close()


class ImageFolder(Dataset):
    """The images of a folder (see :func:`.images.image_files`) at ``size`` px, scaled to ``value_range``."""

    def __init__(self, folder: Path, *, size: int, channels: int, value_range: tuple[float, float]) -> None:
        self.files = image_files(folder)
        self.size, self.channels, self.value_range = size, channels, tuple(value_range)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = fit(to_range(read_image(self.files[i], self.channels), (0.0, 1.0)), self.size)
        return to_range(image, self.value_range)


class _StepBatches(TorchSampler):
    """Index lists for steps ``start, start + 1, ...`` (endless), each cut to ``bounds``."""

    def __init__(self, order: Callable[[int], Sequence], start: int, bounds: tuple[int, int] | None) -> None:
        self.order, self.start, self.bounds = order, start, bounds

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while True:
            idx = self.order(step)
            if self.bounds is not None:
                idx = idx[self.bounds[0]:self.bounds[1]]
            yield idx.tolist() if torch.is_tensor(idx) else list(idx)
            step += 1


class StepStream:
    """``batch(step)``: the items ``order(step)`` (this rank's slice), read from ``dataset`` by ``workers``
    processes and put together by ``collate`` (the DataLoader's default: stacked)."""

    def __init__(self, dataset: Dataset, order: Callable[[int], Sequence], *, workers: int = DEFAULT_WORKERS,
                 pin_memory: bool = False, bounds: tuple[int, int] | None = None,
                 collate: Callable[[list], Any] | None = None) -> None:
        self.dataset, self.order, self.workers, self.pin_memory, self.bounds = dataset, order, workers, pin_memory, bounds
        self.collate = collate
        self._next, self._it = None, None

    def _start(self, step: int) -> None:
        self.close()
        loader = DataLoader(self.dataset, batch_sampler=_StepBatches(self.order, step, self.bounds),
                            num_workers=self.workers, pin_memory=self.pin_memory, collate_fn=self.collate,
                            persistent_workers=False, prefetch_factor=2 if self.workers else None,
                            multiprocessing_context=worker_context() if self.workers else None)
        self._it, self._next = iter(loader), step
        if self.workers:
            _LIVE.add(self)

    def batch(self, step: int) -> Any:
        if self._next != step:
            self._start(step)
        self._next += 1
        try:
            return next(self._it)
        except GanCompressError as exc:  # a worker's error comes back wrapped in its traceback text
            self.close()
            raise type(exc)(_worker_message(str(exc))) from None

    def close(self) -> None:
        """Stop the worker processes now (not when the iterator happens to be collected)."""
        it, self._it, self._next = self._it, None, None
        _LIVE.discard(self)
        shutdown = getattr(it, "_shutdown_workers", None)  # the multi-process iterator's own clean stop
        if shutdown is not None:
            shutdown()


def open_real(spec: str, *, size: int, channels: int, value_range: tuple[float, float] = (-1.0, 1.0)):
    """``spec``'s real images without decoding a folder: a lazy :class:`ImageFolder` for a folder
    (streamed), the tensor of a builtin set (small, in memory)."""
    if spec.startswith("builtin:"):
        return load_real(spec, size=size, channels=channels, value_range=value_range)
    return ImageFolder(data_folder(spec), size=size, channels=channels, value_range=value_range)


def _worker_message(text: str) -> str:
    """The original one-line message of an error re-raised from a DataLoader worker ("Caught X in DataLoader
    worker process N. Original Traceback ... X: message"); unchanged when it is not such a text."""
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return text
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    return last.split(": ", 1)[1] if ": " in last and last.split(": ", 1)[0].rsplit(".", 1)[-1].endswith("Error") else last
