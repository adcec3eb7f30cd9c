"""Streamed image folders: lazily decoded, DataLoader workers, the same batches as the in-memory path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gancompress.data.batches import Sampler
from gancompress.data.images import load_real
from gancompress.data.stream import ImageFolder, open_real


def _folder(root: Path, n: int = 11) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = root / ("even" if i % 2 == 0 else "odd")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8)).save(sub / f"{i:03d}.png")
    return root


def test_a_folder_is_opened_lazily(tmp_path: Path) -> None:
    real = open_real(str(_folder(tmp_path)), size=8, channels=3)
    assert isinstance(real, ImageFolder) and len(real) == 11
    assert torch.equal(real[3], load_real(str(tmp_path), size=8, channels=3)[3])


def test_streamed_batches_with_workers_equal_the_in_memory_ones(tmp_path: Path) -> None:
    folder = str(_folder(tmp_path))
    memory = Sampler(5, 4, "noise", (3, 1, 1), load_real(folder, size=8, channels=3))
    streamed = Sampler(5, 4, "noise", (3, 1, 1), open_real(folder, size=8, channels=3), workers=2)
    cpu = torch.device("cpu")
    for step in [0, 1, 2, 3, 4, 7, 8, 2]:  # epochs wrap after 2 steps; 7 and 2 restart the loader (resume)
        a, b = memory.draw(step, cpu), streamed.draw(step, cpu)
        assert torch.equal(a.real, b.real) and torch.equal(a.x, b.x), step
    assert streamed.stream is not None and streamed.stream.workers == 2


def test_each_rank_streams_only_its_slice(tmp_path: Path) -> None:
    folder = str(_folder(tmp_path))
    memory = Sampler(1, 5, "noise", (3, 1, 1), load_real(folder, size=8, channels=3))
    whole = memory.draw(6, torch.device("cpu"))
    for bounds in ((0, 3), (3, 5)):
        rank = Sampler(1, 5, "noise", (3, 1, 1), open_real(folder, size=8, channels=3), workers=0)
        rank.place(torch.device("cpu"), bounds)
        part = rank.draw(6, torch.device("cpu"))
        assert part.sharded and torch.equal(part.real, whole.real[bounds[0]:bounds[1]])
        assert torch.equal(part.x, whole.x[bounds[0]:bounds[1]])


def test_workers_left_running_are_stopped_at_interpreter_exit(tmp_path: Path) -> None:
    """A stream drawn from after its run closed it (a caller's extra draw) would leave workers that
    multiprocessing kills at exit, failing the process: the exit handler stops them first."""
    import gancompress.data.stream as stream

    streamed = Sampler(5, 4, "noise", (3, 1, 1), open_real(str(_folder(tmp_path)), size=8, channels=3), workers=2)
    streamed.draw(0, torch.device("cpu"))
    workers = list(streamed.stream._it._workers)
    assert streamed.stream in stream._LIVE and all(w.is_alive() for w in workers)
    stream._close_live_streams()
    assert streamed.stream._it is None and streamed.stream not in stream._LIVE
    for w in workers:
        w.join(timeout=10)
    assert not any(w.is_alive() for w in workers)
    streamed.stream.close()  # closing twice is harmless


def test_workers_of_a_distributed_process_come_from_a_fork_server(tmp_path: Path, monkeypatch) -> None:
    """A process in a torch.distributed group has communication threads that a fork would copy mid-flight:
    its stream's workers start from the fork server (a clean process), and read the same batches."""
    import gancompress.data.stream as stream

    folder = str(_folder(tmp_path))
    memory = Sampler(5, 4, "noise", (3, 1, 1), load_real(folder, size=8, channels=3))
    streamed = Sampler(5, 4, "noise", (3, 1, 1), open_real(folder, size=8, channels=3), workers=2)
    cpu = torch.device("cpu")
    started = lambda: {type(w._popen).__module__.rsplit(".", 1)[-1] for w in streamed.stream._it._workers}
    streamed.draw(0, cpu)
    assert started() == {"popen_fork"}  # no group: the DataLoader's default
    monkeypatch.setattr(stream, "holds_process_group", lambda: True)  # (the real group: test_finetune_ddp)
    try:
        for step in [3, 4, 1]:  # 3 and 1 restart the loader, now under the group
            a, b = memory.draw(step, cpu), streamed.draw(step, cpu)
            assert torch.equal(a.real, b.real) and torch.equal(a.x, b.x), step
            assert started() == {"popen_forkserver"}
    finally:
        streamed.stream.close()
