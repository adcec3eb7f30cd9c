"""Under torchrun only rank 0 reads a SOURCE from stdin; the other ranks get it from rank 0 (2 gloo processes)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from test_finetune import make_project

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="this torch build has no torch.distributed")
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(p: dict, stdins: list[str], out: Path) -> list[subprocess.CompletedProcess]:
    port = _free_port()
    procs = []
    for rank, text in enumerate(stdins):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(len(stdins)), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        args = [sys.executable, "-m", "gancompress", "finetune", "--data", str(p["images"]), "-o", str(out),
                "--steps", "1", "--batch-size", "4", "--device", "cpu", "--sample-every", "0", "--workers", "0"]
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        procs.append((proc, text))
    results = []
    for proc, text in procs:
        out_text, err = proc.communicate(text, timeout=600)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out_text, err))
    return results


def test_only_rank_0_reads_stdin(tmp_path: Path) -> None:
    p = make_project(tmp_path)
    out = tmp_path / "ddp.safetensors"
    # rank 1's stdin holds something that is not a checkpoint: reading it would fail the run
    first, second = _launch(p, [f"{p['pruned']}\n", "not a checkpoint path\n"], out)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stdout.strip().splitlines()[-1] == str(out) and second.stdout == "" and out.is_file()


def test_a_bad_stdin_on_rank_0_fails_every_rank_the_same_way(tmp_path: Path) -> None:
    p = make_project(tmp_path)
    results = _launch(p, ["no/such/file.safetensors\n", f"{p['pruned']}\n"], tmp_path / "x.safetensors")
    for r in results:
        assert r.returncode == 2 and r.stderr.startswith("error: stdin held 'no/such/file.safetensors'"), r.stderr
