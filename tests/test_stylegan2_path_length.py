"""StyleGAN2's path-length regulariser during recovery (--pl-weight): its value against finite
differences, off by default, lazy every 4 steps, and its running mean kept across --resume."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import gancompress.finetune.step as step_mod
from gancompress.data.batches import StepData
from gancompress.errors import InputError
from gancompress.finetune import FinetuneConfig, FinetuneInterrupted, RunPaths, run_finetune
from gancompress.finetune.config import LossWeights
from gancompress.finetune.state import load_state
from gancompress.finetune.step import StepOptions, compute_losses
from gancompress.losses import PL_DECAY, make_loss, path_length_penalty, path_lengths
from stylegan2_fixtures import reference_file, tiny_networks



@pytest.fixture(scope="module")
def g():
    return tiny_networks()[0]


def _noise(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) / math.sqrt(shape[-2] * shape[-1])


def test_path_lengths_are_the_norm_of_j_transpose_y_by_finite_differences(g):
    """||J_l^T y|| from central differences of the synthesis network in float64 (no autograd), per
    layer l, against path_lengths' autograd: sqrt(mean_l ||J_l^T y||^2)."""
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ws = g.layer_w(g.style(z))
    y = _noise((2, 3, 32, 32), 1)
    leaf = ws.clone().requires_grad_(True)
    got = path_lengths(g.synthesis(leaf), leaf, y).detach()
    g64, eps = copy.deepcopy(g).double(), 1e-6  # small: leaky-ReLU kinks bias wider steps
    layers, dim = ws.shape[1], ws.shape[2]
    expected = []
    for i in range(2):
        basis = torch.eye(layers * dim, dtype=torch.float64).view(-1, layers, dim)
        w0 = ws[i].double()
        with torch.no_grad():
            diff = g64.synthesis(w0 + eps * basis) - g64.synthesis(w0 - eps * basis)
        jty = (diff / (2 * eps) * y[i].double()).flatten(1).sum(1).view(layers, dim)  # J^T y, one row per layer
        expected.append(jty.pow(2).sum(1).mean().sqrt())
    expected = torch.stack(expected)
    assert expected.min() > 1e-3 and torch.allclose(got.double(), expected, rtol=1e-4)


def test_penalty_and_running_mean():
    lengths = torch.tensor([1.0, 2.0, 4.0])
    penalty, mean = path_length_penalty(lengths, lengths.mean(), None)  # first step: the batch's own mean
    assert torch.isclose(mean, torch.tensor(7 / 3)) and torch.isclose(penalty, lengths.var(unbiased=False))
    penalty, mean = path_length_penalty(lengths, lengths.mean(), torch.tensor(1.0))
    target = 1.0 + PL_DECAY * (7 / 3 - 1.0)
    assert torch.isclose(mean, torch.tensor(target)) and torch.isclose(penalty, (lengths - target).pow(2).mean())


def _losses(g, step: int, pl_weight: float, pl_mean=None):
    student = copy.deepcopy(g).requires_grad_(True)
    opts = StepOptions("distill", 0.5, 1.0, False, pl_weight=pl_weight, pl_every=4)
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(7)  # the regulariser's y comes from torch's global RNG (the loop seeds it per step)
    losses = compute_losses(g, student, None, StepData(z), make_loss("stylegan2"), opts, step, pl_mean=pl_mean)
    return losses, z, student


def test_the_step_adds_weight_times_every_times_the_penalty_every_4_steps(g):
    off, z, _ = _losses(g, 4, 0.0)
    on, _, student = _losses(g, 4, 2.0, pl_mean=torch.tensor(0.5))
    torch.manual_seed(7)
    y = torch.randn(3, 3, 32, 32) / 32.0
    with torch.no_grad():
        ws = g.layer_w(g.style(z))
    leaf = ws.clone().requires_grad_(True)
    lengths = path_lengths(g.synthesis(leaf), leaf, y).detach()
    penalty, mean = path_length_penalty(lengths, lengths.mean(), torch.tensor(0.5))
    assert float(penalty) > 1e-6
    assert torch.allclose(on.g_loss.detach() - off.g_loss.detach(), 2.0 * 4 * penalty, rtol=1e-4, atol=1e-7)
    assert torch.allclose(on.pl_mean, mean) and torch.allclose(on.metrics["pl"].detach(), penalty, rtol=1e-4)
    grads = torch.autograd.grad(on.metrics["pl"], list(student.style.parameters()))  # the penalty trains G_C
    assert any(float(gr.abs().max()) > 0 for gr in grads)
    lazy = _losses(g, 5, 2.0, pl_mean=torch.tensor(0.5))[0]  # not a path-length step
    assert lazy.pl_mean is None and "pl" not in lazy.metrics
    assert torch.equal(lazy.g_loss.detach(), _losses(g, 5, 0.0)[0].g_loss.detach())


def test_off_by_default_and_nothing_is_computed(g, monkeypatch):
    assert LossWeights().pl_weight == 0.0 and StepOptions("distill", 0.5, 1.0, False).pl_weight == 0.0

    def boom(*args, **kwargs):
        raise AssertionError("path lengths computed with the regulariser off")

    monkeypatch.setattr(step_mod, "path_lengths", boom)
    student = copy.deepcopy(g)
    losses = compute_losses(g, student, None, StepData(torch.randn(2, 16)), make_loss("stylegan2"),
                            StepOptions("distill", 0.5, 1.0, False), 0)
    assert losses.pl_mean is None and "pl" not in losses.metrics and not student.layer_w._forward_hooks


def _config(source: str, output: Path, **kw) -> FinetuneConfig:
    base = dict(source=source, output=output, method="distill", steps=10, batch_size=2, pl_weight=2.0,
                device="cpu", log_every=0, sample_every=0, save_every=0, lr_g=1e-3)
    return FinetuneConfig.from_options(**{**base, **kw})


@pytest.fixture(scope="module")
def sg2_file(tmp_path_factory) -> str:
    return reference_file(tmp_path_factory.mktemp("pl") / "sg2.pt", with_d=False)


def test_resume_keeps_the_running_mean_of_path_lengths(sg2_file, tmp_path):
    full = run_finetune(_config(sg2_file, tmp_path / "full.safetensors"))
    part = _config(sg2_file, tmp_path / "part.safetensors")
    seen = []
    with pytest.raises(FinetuneInterrupted):
        run_finetune(part, on_event=lambda e: seen.append(e.done), should_stop=lambda: seen[-1] == 6)
    state = load_state(RunPaths.for_output(part.output).state)
    assert state.step == 6 and state.pl_mean is not None and state.pl_mean > 0  # measured at (0-based) steps 0 and 4
    resumed = run_finetune(_config(sg2_file, tmp_path / "part.safetensors", resume=True))
    a, b = load_file(str(full.output)), load_file(str(resumed.output))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert full.metrics == resumed.metrics  # step 9 (0-based 8) is a path-length step after the resume


def test_a_generator_without_per_layer_latents_is_refused(tmp_path):
    with pytest.raises(InputError, match="--pl-weight needs a generator with a mapping network"):
        run_finetune(_config("builtin:digits-dcgan", tmp_path / "x.safetensors", steps=1))
    assert not (tmp_path / "x.safetensors").exists()


def test_cli_pl_weight_logs_the_penalty_and_refuses_a_negative_weight(sg2_file, tmp_path):
    import json

    from typer.testing import CliRunner

    from gancompress.cli.main import app

    out = tmp_path / "cli.safetensors"
    args = ["finetune", sg2_file, "--method", "distill", "--steps", "1", "--batch-size", "2", "-o", str(out),
            "--device", "cpu", "-q", "--sample-every", "0", "--log-every", "1"]
    result = CliRunner().invoke(app, [*args, "--pl-weight", "2"])
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in RunPaths.for_output(out).log.read_text().splitlines()]
    assert rows[0]["config"]["recovery"]["weights"]["pl_weight"] == 2.0 and rows[1]["pl"] >= 0 and rows[1]["pl_mean"] > 0
    bad = CliRunner().invoke(app, [*args, "--pl-weight", "-1", "--force"])
    assert bad.exit_code == 2 and "--pl-weight must be a non-negative number" in bad.stderr
