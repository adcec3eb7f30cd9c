"""benchmarks/gpu_check: refuses clearly without CUDA; its table logic, run on the CPU at tiny sizes."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _driver():
    spec = importlib.util.spec_from_file_location("gpu_check", BENCH / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_ratios_are_to_the_same_variants_plain_step():
    lines = _driver().table({"amp none": {"plain GAN step": 20.0, "distill": 10.0},
                             "amp bf16": {"plain GAN step": 8.0, "distill": 10.0}})
    assert lines[2:] == ["| amp none | plain GAN step | 20.0 | 1.00x | 50.00 |",
                         "| amp none | distill | 10.0 | 0.50x | 100.00 |",
                         "| amp bf16 | plain GAN step | 8.0 | 1.00x | 125.00 |",
                         "| amp bf16 | distill | 10.0 | 1.25x | 100.00 |"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_without_cuda_the_script_fails_clearly():
    result = subprocess.run(["sh", str(BENCH / "gpu_check.sh")], capture_output=True, text=True)
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr and result.stdout == ""


def test_tiny_cpu_run_prints_every_variant_and_method(capsys, monkeypatch):
    driver = _driver()
    monkeypatch.setattr(torch, "compile", lambda m, **k: (_ for _ in ()).throw(RuntimeError("no compiler")))
    assert driver.main(["--device", "cpu", "--modes", "none,fp16", "--size", "32", "--batch-size", "2", "--ngf", "2",
                        "--ndf", "2", "--warmup", "0", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (amp [^|]+) \| ([^|]+) \| ([\d.]+) \| ([\d.]+)x \| ([\d.]+) \|$", out, re.M)
    variants = ["amp none", "amp fp16", "amp none + channels-last", "amp none + channels-last + compile"]
    assert [r[0].strip() for r in rows[::6]] == variants and len(rows) == 6 * len(variants)
    for variant in variants:
        mine = [r for r in rows if r[0].strip() == variant]
        assert mine[0][1].strip() == "plain GAN step" and mine[0][3] == "1.00"
        base = float(mine[0][2])
        for r in mine:  # the ratio is of the unrounded times: it lies where the printed ms (0.05 either way) allow
            ms, ratio = float(r[2]), float(r[3])
            low, high = (ms - 0.05) / (base + 0.05), (ms + 0.05) / max(base - 0.05, 1e-9)
            assert low - 0.005 <= ratio <= high + 0.005, (variant, r)
    assert "note: --compile: torch.compile failed" in out


def test_no_compile_leaves_out_the_compiled_row():
    names = [v[0] for v in _driver().variants(["none", "bf16"], compiled=False)]
    assert names == ["amp none", "amp bf16", "amp bf16 + channels-last"]
    assert _driver().variants(["none"])[-1] == ("amp none + channels-last + compile", "none", True, True)


def _stylegan2_bench():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("stylegan2_bench", BENCH / "stylegan2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shrunk_check_runs_in_full_float32_and_restores_the_flags():
    """On CUDA cuDNN rounds convolutions to TF32 by default (the shrunk StyleGAN2 read 6.7e-3 from the masked one
    on an H200): the equivalence check turns TF32 off for its forward passes, and back to what it was after."""
    bench = _stylegan2_bench()
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        with pytest.raises(RuntimeError), bench.full_float32():
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
            raise RuntimeError("a failing forward")
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
