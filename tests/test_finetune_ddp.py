"""Data-parallel fine-tuning (torch.distributed, gloo, 2 CPU processes) equals one process.

The tiny digits D has no BatchNorm, so two processes that each take half of the global batch
must reproduce the single-process run with the same global batch up to float rounding: the
consistency losses are formed from all-reduced batch means, not averaged per rank.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from gancompress.finetune import RunPaths, run_finetune
from test_finetune import config, make_project, tensors

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="this torch build has no torch.distributed")

WORLD = 2
# (method, extra options): the pruned input with an uneven global batch (7 = 4 + 3); and a dense
# input pruned by AGP during the run, with the R1 penalty on D every second step; distill-adv
# (L1 to the teacher + the GAN loss) with the uneven batch.
RUNS = {
    "self-supervised": dict(method="self-supervised", batch_size=7),
    "hybrid": dict(method="hybrid", sparsity=0.7, mask_every=1, r1_gamma=1.0, r1_every=2),
    "distill-adv": dict(method="distill-adv", batch_size=7, adv_weight=0.5),
}


def _options(p: dict, name: str, output: Path) -> dict:
    kw = dict(RUNS[name], steps=3, log_every=1, save_every=2, output=output)
    if "sparsity" in kw:
        kw["source"] = str(p["dense"])
    return kw


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _grads(trainer, step: int) -> dict[str, list[torch.Tensor]]:
    """G_C's and D's gradients (after DDP's averaging) for ``step``'s batch at the current weights."""
    from gancompress.data.batches import seed_global
    from gancompress.finetune.distributed import activated, shard
    from gancompress.finetune.step import compute_losses

    with activated(trainer.world):  # the run's group stays (run_finetune did not create it)
        seed_global(trainer.config.run.seed, step)
        batch = shard(trainer.setup.sampler.draw(step, trainer.device), trainer.world)
        if getattr(trainer.setup.sampler, "stream", None) is not None:  # the draw restarted the run's workers
            trainer.setup.sampler.stream.close()
        losses = compute_losses(trainer.teacher, trainer.student_net, trainer.d_net, batch, trainer.setup.profile,
                                trainer.options, step)
        g, d = list(trainer.student.parameters()), list(trainer.d.parameters())
        for param in g + d:
            param.grad = None
        losses.d_loss.backward(inputs=d, retain_graph=True)
        losses.g_loss.backward(inputs=g)
    return {"g": [q.grad.clone() for q in g], "d": [q.grad.clone() for q in d]}


def _spy(loop, seen: dict):
    class Spy(loop.Trainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen["trainer"] = self

    return Spy


def _worker(rank: int, port: int, root: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import gancompress.finetune.loop as loop

    seen: dict = {}
    loop.Trainer = _spy(loop, seen)
    p = {k: Path(v) for k, v in torch.load(Path(root) / "project.pt").items()}
    # the group is made here once: run_finetune uses it (and leaves it to us)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, init_method=f"tcp://127.0.0.1:{port}")
    try:
        for name in RUNS:
            result = run_finetune(config(p, **_options(p, name, Path(root) / f"ddp-{name}.safetensors")))
            t = seen["trainer"]
            torch.save({"student": t.student.state_dict(), "d": t.d.state_dict(), "metrics": result.metrics,
                        "notes": result.notes, "grads": _grads(t, 3)}, Path(root) / f"rank{rank}-{name}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path, monkeypatch):
    import torch.multiprocessing as mp

    import gancompress.finetune.loop as loop

    p = make_project(tmp_path)
    torch.save({k: str(v) for k, v in p.items()}, tmp_path / "project.pt")
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threads only contend on a shared machine
    seen: dict = {}
    monkeypatch.setattr(loop, "Trainer", _spy(loop, seen))
    singles, grads = {}, {}
    try:
        for name in RUNS:
            singles[name] = run_finetune(config(p, **_options(p, name, tmp_path / f"one-{name}.safetensors")))
            grads[name] = _grads(seen["trainer"], 3)
    finally:
        torch.set_num_threads(threads)
    for name, single in singles.items():
        one, ddp = tensors(single.output, ""), tensors(tmp_path / f"ddp-{name}.safetensors", "")
        assert one.keys() == ddp.keys()
        for key in one:
            assert torch.allclose(one[key].float(), ddp[key].float(), atol=1e-5, rtol=0), (name, key)
        ranks = [torch.load(tmp_path / f"rank{r}-{name}.pt", weights_only=False) for r in range(WORLD)]
        for part in ("student", "d"):  # the replicas agree
            for key, value in ranks[0][part].items():
                assert torch.equal(value, ranks[1][part][key]), (name, part, key)
        assert ranks[0]["metrics"] == ranks[1]["metrics"]  # every rank computes the global losses
        assert ranks[0]["metrics"].keys() == single.metrics.keys()
        for key, value in single.metrics.items():
            assert ranks[0]["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), (name, key)
        assert any("2 processes" in n for n in ranks[0]["notes"])
        # the gradients themselves (Adam's first steps would hide a wrongly scaled gradient)
        for part in ("g", "d"):
            for a, b in zip(grads[name][part], ranks[0]["grads"][part]):
                assert torch.allclose(a, b, rtol=1e-3, atol=1e-7), (name, part, (a - b).abs().max())
        assert not RunPaths.for_output(tmp_path / f"ddp-{name}.safetensors").state.exists()


def test_shard_keeps_the_class_labels_of_its_slice():
    """A conditional in-memory batch: each rank's slice keeps the labels of ITS fakes and real images."""
    from gancompress.data.batches import StepData
    from gancompress.finetune.distributed import World, shard

    x = torch.arange(7.0).reshape(7, 1)
    batch = StepData(x, real=torch.arange(7.0).reshape(7, 1, 1, 1) + 10, labels=torch.arange(7) % 3,
                     real_labels=torch.tensor([2, 2, 1, 0, 1, 0, 2]))
    parts = [shard(batch, World(rank, 2, rank)) for rank in range(2)]
    assert [p.x.shape[0] for p in parts] == [4, 3]
    for part, (lo, hi) in zip(parts, [(0, 4), (4, 7)]):
        assert torch.equal(part.labels, batch.labels[lo:hi]) and torch.equal(part.real_labels, batch.real_labels[lo:hi])
        assert torch.equal(part.x, batch.x[lo:hi]) and torch.equal(part.real, batch.real[lo:hi]) and part.real_x is None
    assert shard(batch, None) is batch


def test_device_for_always_names_the_gpu(monkeypatch):
    """``--device cuda`` reaches ``torch.cuda.set_device`` with an index (torch 2.11 refuses one without)."""
    from gancompress.finetune.distributed import World, device_for

    chosen = []

    def strict_set_device(device):
        if isinstance(device, torch.device) and device.index is None:
            raise ValueError("Expected a torch.device with a specified index")
        chosen.append(device)

    monkeypatch.setattr(torch.cuda, "set_device", strict_set_device)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_for(None, torch.device("cuda")) == torch.device("cuda", 3)
    assert device_for(None, torch.device("cuda", 1)) == torch.device("cuda", 1)
    world = World(rank=1, local_rank=3, size=2)
    assert device_for(world, torch.device("cuda")) == torch.device("cuda", 1)
    assert device_for(None, torch.device("cpu")) == torch.device("cpu")
    assert chosen == [torch.device("cuda", 3), torch.device("cuda", 1), torch.device("cuda", 1)]
