"""--importance: weights ranked by magnitude, or by magnitude times the next BatchNorm's eval-mode scale."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from gancompress.cli.main import app
from gancompress.errors import InputError
from gancompress.prune import PruneConfig, compute_masks
from gancompress.prune.importance import following_norms, norm_scale, registered_norms, scaled_weight
from gancompress.prune.layers import module_geometry

pytestmark = pytest.mark.usefixtures("one_thread")


def _set_norm(norm: nn.BatchNorm2d, var: list[float], gamma: list[float] | None = None) -> None:
    with torch.no_grad():
        norm.running_var.copy_(torch.tensor(var))
        if gamma is not None:
            norm.weight.copy_(torch.tensor(gamma))


def test_each_layer_finds_the_batchnorm_registered_right_after_it():
    net = nn.Sequential(
        nn.ConvTranspose2d(4, 6, 3), nn.BatchNorm2d(6), nn.ReLU(),        # 0 -> 1
        nn.utils.parametrizations.spectral_norm(nn.Conv2d(6, 5, 3)),      # 3 -> 4, past its parametrization
        nn.BatchNorm2d(5, affine=False),
        nn.Conv2d(5, 5, 1), nn.ReLU(), nn.BatchNorm2d(5),                  # 5: a ReLU between: not its norm
        nn.Conv2d(5, 3, 1), nn.BatchNorm2d(4),                             # 8: channels differ
        nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3, track_running_stats=False),  # 10: no running statistics
    )
    assert {k: v for k, v in following_norms(net).items()} == {"0": net[1], "3": net[4]}


class _SplitLists(nn.Module):
    """Convolutions registered in one list, BatchNorms in another: registration order says nothing of the flow."""

    input_shape = (4, 3, 3)

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(4, 4, 1) for _ in range(4))
        self.norms = nn.ModuleList(nn.BatchNorm2d(4) for _ in range(3))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norms[0](self.convs[0](x))           # conv 0 -> norm 0
        x = self.norms[1](self.act(self.convs[1](x)))  # an in-place ReLU between: the norm reads a changed tensor
        x = self.norms[2](self.convs[2](x))            # conv 2 -> norm 2
        return self.convs[3](x)


class _Conditional(nn.Module):
    input_shape = (3,)
    num_classes = 5

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 6)
        self.norm = nn.BatchNorm1d(6)   # registered before its layer
        self.fc = nn.Linear(3, 6)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc(z)) * self.embed(labels)


def test_a_model_that_says_its_input_is_matched_by_data_flow_not_registration():
    net = _SplitLists().train()
    assert following_norms(net) == {"convs.0": net.norms[0], "convs.2": net.norms[2]}
    assert registered_norms(net) == {"convs.3": net.norms[0]}  # what the fallback rule would have guessed
    assert all(m.training for m in net.modules())  # modes restored, statistics untouched
    assert all(int(n.num_batches_tracked) == 0 for n in net.norms)
    cond = _Conditional()
    assert following_norms(cond) == {"fc": cond.norm} and registered_norms(cond) == {}


def test_a_forward_that_fails_on_a_random_input_falls_back_to_registration_order():
    class Picky(_SplitLists):
        def forward(self, x):
            raise ValueError("wants real data")

    net = Picky()
    assert following_norms(net) == registered_norms(net) == {"convs.3": net.norms[0]}
    net.input_shape = "not a shape"
    assert following_norms(net) == {"convs.3": net.norms[0]}


def test_data_flow_masks_scale_each_layer_by_its_own_norm():
    torch.manual_seed(0)
    net = _SplitLists()
    _set_norm(net.norms[0], [1e4, 1e4, 1.0, 1.0])  # conv 0's first two filters are divided by 100
    scaled = compute_masks(net, PruneConfig(0.5, keep_dense="none", importance="bn-scaled"))  # 50% of every layer
    by_size = compute_masks(net, PruneConfig(0.5, keep_dense="none"))
    assert scaled["convs.0.weight"][:2].sum() == 0 and scaled["convs.0.weight"][2:].all()
    assert not torch.equal(scaled["convs.0.weight"], by_size["convs.0.weight"])
    for name in ("convs.1.weight", "convs.3.weight"):  # no norm reads them unchanged: ranked by magnitude
        assert torch.equal(scaled[name], by_size[name])


@pytest.mark.parametrize("name", ["dcgan-g", "digits-dcgan-g", "pix2pix-unet-g", "srgan-g"])
def test_builtin_architectures_are_written_in_data_flow_order(name):
    """The built-in generators do not declare ``input_shape``, so they use the registration rule: it must agree."""
    from gancompress.archs import ARCHITECTURES

    arch = ARCHITECTURES.get(name)
    model = arch.build(**arch.default_kwargs)
    traced = following_norms(model, arch.input_shape(arch.default_kwargs))
    assert traced and traced == registered_norms(model) == following_norms(model)


def test_norm_scale_is_the_eval_mode_multiplier():
    norm = nn.BatchNorm2d(2, eps=0.0)
    _set_norm(norm, [4.0, 0.25], [-3.0, 1.0])
    assert torch.allclose(norm_scale(norm), torch.tensor([1.5, 2.0]))
    plain = nn.BatchNorm2d(2, affine=False, eps=0.0)
    _set_norm(plain, [4.0, 0.25])
    assert torch.allclose(norm_scale(plain), torch.tensor([0.5, 2.0]))


@pytest.mark.parametrize("layer", [nn.Conv2d(4, 6, 3, groups=2), nn.ConvTranspose2d(4, 6, 3, groups=2), nn.Linear(5, 6)])
def test_scaled_weight_multiplies_each_output_channel(layer):
    scale = torch.arange(1.0, 7.0)
    out = scaled_weight(layer.weight, module_geometry(layer), scale)
    w = layer.weight.detach()
    if isinstance(layer, nn.ConvTranspose2d):  # (in, out/groups, k, k); output channel c = group * 3 + j
        expected = w.clone()
        for c in range(6):
            group, j = divmod(c, 3)
            expected[group * 2:(group + 1) * 2, j] *= scale[c]
    else:
        expected = w * scale.reshape(6, *([1] * (w.dim() - 1)))
    assert torch.allclose(out, expected) and torch.equal(layer.weight.detach(), w)  # a copy: the layer is untouched


def test_a_scaled_weight_past_the_float_range_still_ranks_as_finite():
    layer = nn.Conv2d(1, 2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([3e38, 1.0]).reshape(2, 1, 1, 1))
    out = scaled_weight(layer.weight, module_geometry(layer), torch.tensor([10.0, 1.0]))
    assert torch.isfinite(out).all() and out.flatten().tolist() == [torch.finfo(torch.float32).max, 1.0]


def test_bn_scaled_importance_keeps_the_weights_the_norm_makes_large():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 2, 1, bias=False), nn.BatchNorm2d(2, eps=0.0), nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.9], [0.2, 0.1]]).reshape(2, 2, 1, 1))
    _set_norm(net[1], [100.0, 1.0])  # channel 0 is divided by 10: its weights count 0.1 and 0.09
    by_size = compute_masks(net, PruneConfig(0.5, keep_dense="none"))["0.weight"].flatten().tolist()
    by_scale = compute_masks(net, PruneConfig(0.5, keep_dense="none", importance="bn-scaled"))["0.weight"].flatten()
    assert by_size == [True, True, False, False]
    assert by_scale.tolist() == [True, False, True, False]  # 0.1, 0.09 vs 0.2, 0.1: the ties go to the lower index
    assert torch.equal(net[0].weight.detach().flatten(), torch.tensor([1.0, 0.9, 0.2, 0.1]))


def test_bad_importance_and_coupled_are_refused():
    with pytest.raises(InputError, match="unknown importance"):
        PruneConfig(0.5, importance="taylor")
    with pytest.raises(InputError, match="--importance"):
        PruneConfig(0.5, granularity="filter", coupled=True, importance="bn-scaled")


def test_prune_cli_ranks_by_the_norm_scale(tmp_path):
    from gancompress.loading import load_bundle

    runner = CliRunner()
    outs = {}
    for importance in ("magnitude", "bn-scaled"):
        out = tmp_path / f"{importance}.safetensors"
        result = runner.invoke(app, ["prune", "builtin:digits-dcgan", "-s", "0.9", "--importance", importance,
                                     "-o", str(out), "--quiet"])
        assert result.exit_code == 0, result.stderr
        outs[importance] = load_bundle(str(out)).masks
    shared = outs["magnitude"].keys() & outs["bn-scaled"].keys()
    changed = [k for k in shared if not torch.equal(outs["magnitude"][k], outs["bn-scaled"][k])]
    assert set(changed) == {"net.0.weight", "net.3.weight", "net.6.weight"}  # the layers a BatchNorm follows
    bad = runner.invoke(app, ["prune", "builtin:digits-dcgan", "-s", "0.9", "--importance", "size",
                              "-o", str(tmp_path / "bad.safetensors")])
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--importance" in bad.stderr
    assert not (tmp_path / "bad.safetensors").exists()


def test_recovery_prunes_bn_scaled_by_default_and_prune_by_magnitude(tmp_path):
    import json

    from gancompress.finetune.config import FinetuneConfig
    from gancompress.sweep import STATE_FILE, SweepConfig, _load_state

    def finetune(**kw):
        return FinetuneConfig.from_options(source="builtin:digits-dcgan", output=tmp_path / "o.safetensors", **kw).prune

    assert finetune(sparsity=0.5).importance == "bn-scaled"  # the zoo's pick for pruning during recovery
    assert finetune(sparsity=0.5, importance="magnitude").importance == "magnitude"
    assert finetune(sparsity=0.5, granularity="filter", coupled=True).importance == "magnitude"  # groups: by magnitude
    assert PruneConfig(0.5).importance == "magnitude"  # `prune` on its own

    def sweep(**kw):
        return SweepConfig.from_options(source="builtin:digits-dcgan", out_dir=tmp_path / "s", sparsities=(0.5,), **kw)

    assert sweep().importance == "bn-scaled" and sweep().record()["importance"] == "bn-scaled"
    old = sweep().record()
    del old["importance"]  # recorded before --importance existed: its cells were ranked by magnitude
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / STATE_FILE).write_text(json.dumps({"config": old, "dense": {"fid": 1.0}, "cells": {}}))
    with pytest.raises(InputError, match="importance"):
        _load_state(sweep())
    assert _load_state(sweep(importance="magnitude"))["dense"] == {"fid": 1.0}


def test_prune_cli_ranks_by_magnitude_unless_told(tmp_path):
    from gancompress.loading import load_bundle

    paths = {}
    for extra in ([], ["--importance", "magnitude"]):
        out = tmp_path / f"p{len(extra)}.safetensors"
        result = CliRunner().invoke(app, ["prune", "builtin:digits-dcgan", "-s", "0.8", "-o", str(out), "--quiet", *extra])
        assert result.exit_code == 0, result.stderr
        paths[len(extra)] = load_bundle(str(out)).masks
    assert all(torch.equal(paths[0][k], paths[2][k]) for k in paths[0])
