"""--amp fp16 (with a gradient scaler), --channels-last, --compile's fallback and --device mps, on the CPU."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from gancompress.cli.main import app
from gancompress.devices import resolve_device
from gancompress.errors import InputError
from gancompress.finetune import run_finetune
from gancompress.finetune import FinetuneInterrupted, RunPaths
from gancompress.finetune.state import load_state
from test_finetune import _stop_after, config, make_project, tensors


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def _weights(result) -> dict[str, torch.Tensor]:
    return tensors(result.output, "G.")


def test_fp16_steps_go_through_the_gradient_scaler(project, tmp_path, monkeypatch):
    calls = []
    original = torch.amp.GradScaler.step

    def spy(self, optimizer, *args, **kwargs):
        calls.append(self.get_scale())
        return original(self, optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "step", spy)
    plain = run_finetune(config(project, output=tmp_path / "plain.safetensors", steps=3, method="hybrid"))
    assert not calls
    half = run_finetune(config(project, output=tmp_path / "half.safetensors", steps=3, method="hybrid", amp="fp16"))
    assert len(calls) == 6 and calls[0] == 65536.0  # G and D each step, at the scaler's initial scale
    a, b = _weights(plain), _weights(half)
    assert all(torch.isfinite(v).all() for v in b.values())
    assert any(not torch.equal(a[k], b[k]) for k in a)  # autocast really ran in float16
    assert any("--amp fp16 on the CPU" in n for n in half.notes)


def test_fp16_resume_continues_with_the_saved_scale(project, tmp_path, monkeypatch):
    """On the CPU the first fp16 steps overflow and halve the scale (65536 -> 32768 -> ...), skipping their
    updates; a resume that restarted at 65536 would skip more steps than the uninterrupted run."""
    import gancompress.finetune.trainer as trainer_mod

    # mu 10: at mu 30 the larger L1 term overflows float16 in every one of the 10 steps on this tiny model, so
    # no step updates and the control below could not differ
    kw = dict(steps=10, method="hybrid", amp="fp16", log_every=1, mu=10.0)
    full = run_finetune(config(project, output=tmp_path / "full.safetensors", **kw))
    part = config(project, output=tmp_path / "part.safetensors", **kw)
    with pytest.raises(FinetuneInterrupted):
        run_finetune(part, *_stop_after(3))
    saved = load_state(RunPaths.for_output(part.output).state).scaler
    assert saved is not None and saved["scale"] < 65536.0  # the run backed off before the interruption
    resumed = run_finetune(config(project, output=part.output, resume=True, **kw))
    a, b = tensors(full.output, "G."), tensors(resumed.output, "G.")
    assert all(torch.equal(a[k], b[k]) for k in a) and full.metrics == resumed.metrics

    with pytest.raises(FinetuneInterrupted):  # control: the same resume without the saved scale differs
        run_finetune(config(project, output=tmp_path / "fresh.safetensors", **kw), *_stop_after(3))
    original = trainer_mod.Trainer.load
    monkeypatch.setattr(trainer_mod.Trainer, "load", lambda self, state: original(self, replace(state, scaler=None)))
    fresh = run_finetune(config(project, output=tmp_path / "fresh.safetensors", resume=True, **kw))
    c = tensors(fresh.output, "G.")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_channels_last_learns_the_same_weights(project, tmp_path):
    plain = run_finetune(config(project, output=tmp_path / "plain.safetensors", steps=2))
    nhwc = run_finetune(config(project, output=tmp_path / "nhwc.safetensors", steps=2, channels_last=True))
    a, b = _weights(plain), _weights(nhwc)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_compile_failure_falls_back_to_eager_with_one_note(project, tmp_path, monkeypatch):
    def broken(module, *args, **kwargs):
        def run(*a, **k):
            raise RuntimeError("no C++ compiler found\nlong details")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    plain = run_finetune(config(project, output=tmp_path / "plain.safetensors", steps=2))
    compiled = run_finetune(config(project, output=tmp_path / "compiled.safetensors", steps=2, compile=True))
    notes = [n for n in compiled.notes if n.startswith("--compile")]
    assert len(notes) == 3 and {n.split(" for ")[1].split(" ")[0] for n in notes} == {"G_O", "G_C", "D"}
    assert "RuntimeError: no C++ compiler found)" in notes[0]
    a, b = _weights(plain), _weights(compiled)
    assert all(torch.equal(a[k], b[k]) for k in a)  # eager fallback: the very same run


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_is_refused_cleanly_where_it_is_missing(project):
    with pytest.raises(InputError, match="MPS"):
        resolve_device("mps")
    result = CliRunner().invoke(app, ["finetune", str(project["pruned"]), "--data", str(project["images"]), "-o",
                                      str(project["out"]), "--steps", "1", "--device", "mps"])
    assert result.exit_code == 2 and result.stderr.startswith("error: --device mps:")
    assert len(result.stderr.strip().splitlines()) == 1 and not project["out"].exists()


def test_amp_modes_are_checked(project):
    result = CliRunner().invoke(app, ["finetune", str(project["pruned"]), "--data", str(project["images"]), "-o",
                                      str(project["out"]), "--steps", "1", "--amp", "fp8"])
    assert result.exit_code == 2 and "--amp 'fp8'" in result.stderr and "bf16" in result.stderr


def test_autocast_forward_runs_generation_in_half_precision_and_restores_it():
    from gancompress.devices import autocast_forward

    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 64)
    x = torch.randn(8, 64)
    exact = layer(x)
    with autocast_forward([layer, layer], "bf16", torch.device("cpu")):
        half = layer(x)
    assert half.dtype == torch.float32 and not torch.equal(half, exact)
    assert torch.allclose(half, exact, atol=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(half, layer(x).float())
    assert torch.equal(layer(x), exact) and "forward" not in layer.__dict__  # restored


def test_evaluate_amp_is_recorded_and_checked(project, tmp_path):
    import json

    args = ["evaluate", str(project["pruned"]), "--reference", str(project["dense"]), "-n", "8", "--batch-size", "4",
            "--device", "cpu", "--json"]
    result = CliRunner().invoke(app, [*args, "--amp", "bf16"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["settings"]["amp"] == "bf16"
    result = CliRunner().invoke(app, [*args, "--amp", "fp8"])
    assert result.exit_code == 2 and "--amp 'fp8'" in result.stderr


def test_cpu_copy_moves_every_tensor_without_deep_copying_it_where_it_lives(monkeypatch):
    """The CPU detour of mask ranking and latency: no Parameter or buffer is deep-copied on its own device (on a
    GPU that would double the model's memory); the copy is independent, tied weights stay tied."""
    from torch import nn

    from gancompress.devices import cpu_copy

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 4)).eval()
    model[2].weight = model[0].weight  # tied
    model[0].bias.requires_grad_(False)

    def refuse(self, memo):
        raise AssertionError("a tensor was deep-copied where it lives")
    monkeypatch.setattr(nn.Parameter, "__deepcopy__", refuse)
    monkeypatch.setattr(torch.Tensor, "__deepcopy__", refuse)
    copied = cpu_copy(model)
    monkeypatch.undo()
    x = torch.randn(3, 4)
    assert torch.equal(copied(x), model(x))
    assert copied[2].weight is copied[0].weight and copied[0].weight is not model[0].weight
    assert not copied[0].bias.requires_grad and copied[2].bias.requires_grad
    assert isinstance(copied[0].weight, nn.Parameter) and not isinstance(copied[1].running_mean, nn.Parameter)
    with torch.no_grad():
        copied[0].weight.zero_()
        copied[1].running_mean.fill_(5.0)
    assert model[0].weight.abs().sum() > 0 and model[1].running_mean.abs().sum() < 5
