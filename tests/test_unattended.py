"""Runs nobody watches: SIGTERM from a scheduler saves a resumable state; --resume continues bit for bit."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from test_finetune import make_project, tensors

ROOT = Path(__file__).resolve().parents[1]
STEPS = "60"


def _finetune(p: dict[str, Path], out: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "gancompress", "finetune", str(p["pruned"]), "--data", str(p["images"]), "-o", str(out),
            "--steps", STEPS, "--batch-size", "8", "--device", "cpu", "--sample-every", "0", "--log-every", "1",
            "--workers", "1", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_steps(log: Path, proc: subprocess.Popen, count: int, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) > count:  # the start line + ``count`` steps
            return
        time.sleep(0.01)
    raise AssertionError(f"the run did not reach step {count} (exit {proc.poll()})")


def test_sigterm_saves_like_ctrl_c_and_resume_is_bit_identical(tmp_path: Path) -> None:
    p = make_project(tmp_path)
    part = tmp_path / "part.safetensors"
    proc = _finetune(p, part)
    _wait_for_steps(part.with_suffix(".log.jsonl"), proc, 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: interrupted after step") and "--resume" in lines[0]
    state = tmp_path / "part.resume.pt"
    assert state.is_file() and part.is_file()

    resumed = _finetune(p, part, "--resume")
    full = _finetune(p, tmp_path / "full.safetensors")
    for run in (resumed, full):
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
    a, b = tensors(tmp_path / "full.safetensors", ""), tensors(part, "")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not state.exists()  # the state is removed once the run completes
