"""``finetune --quantize-aware int8``: G_C trains through fake quantization (straight-through),
keeps its masks, and ``export --quantize int8`` ships exactly the weights the run computed with."""
from __future__ import annotations

import json

import pytest
import torch

from gancompress.api import load
from gancompress.errors import InputError
from gancompress.export import ExportConfig, export
from gancompress.finetune import run_finetune
from gancompress.finetune.quant_aware import QuantAware
from gancompress.formats.quantize import weight_axes
from gancompress.loading import load_bundle
from hostile_files import read_raw
from test_finetune import config, make_project


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def _spy_trainer(monkeypatch) -> dict:
    import gancompress.finetune.trainer as trainer_mod

    seen: dict = {}
    original = trainer_mod.Trainer.step

    def spy(self, batch, **kw):
        seen["trainer"] = self
        return original(self, batch, **kw)

    monkeypatch.setattr(trainer_mod.Trainer, "step", spy)
    return seen


@pytest.mark.parametrize("granularity", ["element", "block"])
def test_quantization_aware_recovery_keeps_masks_trains_and_exports_its_own_weights(project, tmp_path, monkeypatch,
                                                                                   granularity):
    seen = _spy_trainer(monkeypatch)
    losses: list[float] = []
    one_shot = run_finetune(config(project, source=str(project["dense"]), output=tmp_path / "p.safetensors", method="none",
                                   sparsity=0.85 if granularity == "element" else 0.6, granularity=granularity,
                                   block="2x2", prune_first_last=granularity == "element"))
    result = run_finetune(config(project, source=str(one_shot.output), method="hybrid", steps=12, log_every=0,
                                 quantize_aware="int8"), on_event=lambda e: losses.append(e.info["l1"]))
    trainer = seen["trainer"]
    assert isinstance(trainer.student_net, QuantAware)
    out = load_bundle(str(result.output))
    for key, mask in out.masks.items():  # masks hold on the stored float weights
        assert torch.all(out.generator.get_parameter(key)[~mask] == 0)
    assert sum(losses[-3:]) / 3 < 0.85 * losses[0], losses  # it trains through the fake quantization
    quantized = trainer.student_net.quantized()  # the weights the last forward pass used (final float weights)
    assert set(quantized) == set(weight_axes(trainer.student))
    for key, mask in out.masks.items():
        assert torch.all(quantized[key][~mask.to(quantized[key].device)] == 0)
    path = export(ExportConfig(str(result.output), tmp_path / "g.int8.safetensors", quantize="int8")).path
    shipped = load(path).state_dict()
    plans = json.loads(read_raw(path)[0]["__metadata__"]["quantization"])["tensors"]
    assert any(p["scales"] == "block" for p in plans.values()) == (granularity == "block")  # per-tile scales trained too
    for name, value in quantized.items():
        assert torch.equal(shipped[name], value.detach().cpu()), name
    floats = out.generator.state_dict()
    assert any(not torch.equal(floats[n], quantized[n].detach().cpu()) for n in quantized)  # the float weights are not the codes


def test_gradients_pass_straight_through_to_the_float_weights():
    from torch import nn

    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ConvTranspose2d(3, 2, 2))
    qat = QuantAware(net, "int8", net)
    x = torch.randn(2, 2, 5, 5)
    qat(x).square().sum().backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    with torch.no_grad():
        weights = {n: p.clone() for n, p in net.named_parameters()}
        for name, value in qat.quantized().items():
            net.get_parameter(name).copy_(value)
    net(x).square().sum().backward()  # the gradient at the quantized weights, applied to the float ones
    for name, p in net.named_parameters():
        assert torch.allclose(grads[name], p.grad, atol=1e-6), name
    assert any(not torch.equal(weights[n], qat.quantized()[n]) for n in ("0.weight", "1.weight"))


def test_unknown_scheme_is_refused(project):
    with pytest.raises(InputError, match="unknown quantization scheme 'int4'"):
        config(project, quantize_aware="int4")
