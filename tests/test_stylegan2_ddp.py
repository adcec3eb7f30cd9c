"""The path-length regulariser (--pl-weight) in a data-parallel run (gloo, 2 CPU processes) equals one
process with the same global batch: its batch mean and penalty are all-reduced, and the per-layer
latents are captured inside the DistributedDataParallel wrapper's forward."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from gancompress.finetune import FinetuneConfig, run_finetune
from stylegan2_fixtures import reference_file
from test_finetune import tensors
from test_finetune_ddp import _free_port

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="this torch build has no torch.distributed")

WORLD = 2


def _config(source: str, output: Path) -> FinetuneConfig:
    # 5 steps: path-length steps 0 and 4 (the last, which uses the running mean), batch 6 = 3 + 3
    return FinetuneConfig.from_options(source=source, output=output, method="distill", steps=5, batch_size=6,
                                       pl_weight=2.0, device="cpu", log_every=0, sample_every=0, save_every=0,
                                       lr_g=1e-3)


def _worker(rank: int, port: int, root: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, init_method=f"tcp://127.0.0.1:{port}")
    try:
        result = run_finetune(_config(str(Path(root) / "sg2.pt"), Path(root) / "ddp.safetensors"))
        torch.save({"metrics": result.metrics}, Path(root) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_path_length_in_two_processes_equals_one(tmp_path):
    import torch.multiprocessing as mp

    source = reference_file(tmp_path / "sg2.pt", with_d=False)
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = run_finetune(_config(source, tmp_path / "one.safetensors"))
    finally:
        torch.set_num_threads(threads)
    one, ddp = tensors(single.output, ""), tensors(tmp_path / "ddp.safetensors", "")
    assert one.keys() == ddp.keys()
    # the mapping's weights are stored scaled by 1/lr_mul (100): compare relative too. atol 1e-4: summation order
    # differs between CPUs (2.3e-5 seen on an AMD EPYC after 5 steps); a wrong reduction moves Adam's steps by ~lr_g 1e-3
    for key in one:
        gap = float((one[key].float() - ddp[key].float()).abs().max())
        assert torch.allclose(one[key].float(), ddp[key].float(), atol=1e-4, rtol=1e-5), (key, gap)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False)["metrics"] for r in range(WORLD)]
    assert ranks[0] == ranks[1] and {"pl", "pl_mean"} <= ranks[0].keys()
    for key, value in single.metrics.items():
        assert ranks[0][key] == pytest.approx(value, rel=1e-3, abs=1e-6), key  # l1: 4.4e-4 apart on an AMD EPYC
