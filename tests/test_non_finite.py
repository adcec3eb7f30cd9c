"""Non-finite values never pass: options are refused before any work, and the NaN guard keeps only
a checkpoint whose generator produces finite outputs."""
from __future__ import annotations

import json

import pytest
import torch

from gancompress.api import load
from hostile_files import cli, one_error_line, tiny_checkpoint

BAD = ["inf", "-inf", "nan", "1e400"]


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("nonfinite") / "dense.safetensors", masks=False)


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("option", ["--lr-g", "--lr-d", "--mu", "--adv-weight", "--lambda", "--r1-gamma", "--sparsity",
                                    "--ramp-fraction", "--sr-blur", "--sr-noise"])
def test_finetune_refuses_non_finite_options(dense, tmp_path, option, value):
    out = tmp_path / "o.safetensors"
    r = cli("finetune", dense, "--method", "distill", "--steps", "1", "--batch-size", "2", option, value, "-o", out)
    line = one_error_line(r)
    assert option in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["prune", "-s", "nan"], ["prune", "-s", "inf"],
    ["evaluate", "--max-fid", "nan"], ["evaluate", "--max-fid-increase", "inf"], ["evaluate", "--min-psnr", "nan"],
    ["sweep", "--data", "builtin:digits", "--lr-g", "inf", "--sparsity", "0.5"],
    ["sweep", "--data", "builtin:digits", "--sparsity", "nan"],
])
def test_other_commands_refuse_non_finite_options(dense, tmp_path, args):
    command, *rest = args
    extra = {"prune": ["-o", tmp_path / "p.safetensors"], "evaluate": ["-n", "8"], "sweep": ["--out-dir", tmp_path / "sw"]}
    line = one_error_line(cli(command, dense, *rest, *extra[command]))
    assert rest[-1] in line or rest[-2] in line or "finite" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("lr", ["1e30", "1e12"])
def test_the_kept_checkpoint_produces_finite_outputs(dense, tmp_path, lr):
    """A learning rate that blows the weights up after the first step: whatever is kept must work."""
    out = tmp_path / "o.safetensors"
    r = cli("finetune", dense, "--method", "distill", "--sparsity", "0.5", "--steps", "6", "--batch-size", "4",
            "--save-every", "1", "--lr-g", lr, "-o", out)
    line = one_error_line(r, code=1)
    assert "--lr-g" in line
    if out.exists():
        assert "kept" in line and str(out) in line
        with torch.no_grad():
            assert torch.isfinite(load(out)(torch.randn(4, 8, 1, 1))).all()
    else:
        assert "not written" in line or "nothing" in line
    log = tmp_path / "o.log.jsonl"
    if log.exists():  # a log beside an output it says it did not write must be named
        assert str(log) in line
        assert all(json.loads(ln) for ln in log.read_text().splitlines())


def test_guard_checks_the_discriminator(dense, tmp_path):
    """D blows up (huge lr_d) while G's rate is sane: the run stops, and what is kept is finite."""
    out = tmp_path / "o.safetensors"
    r = cli("finetune", dense, "--method", "finetune", "--data", "builtin:digits", "--steps", "8", "--batch-size", "4",
            "--save-every", "1", "--lr-d", "1e30", "--r1-gamma", "0", "-o", out)
    line = one_error_line(r, code=1)
    assert "discriminator" in line or "d_loss" in line or "--lr-d" in line
    if out.exists():
        from safetensors.torch import load_file

        tensors = load_file(out)
        assert all(torch.isfinite(v.float()).all() for k, v in tensors.items() if k.startswith(("G.", "D.")))
