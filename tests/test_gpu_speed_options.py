"""--amp fp16 (with a gradient scaler), --channels-last, --compile's fallback and --device mps, on the CPU."""
from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from gancompress.cli.main import app
from gancompress.devices import resolve_device
from gancompress.errors import InputError
from gancompress.finetune import run_finetune
from test_finetune import config, make_project, tensors


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
