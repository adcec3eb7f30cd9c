"""``--coupled`` filter pruning: whole residual groups go, so ``--format shrunk`` can remove them."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from gancompress.api import load
from gancompress.archs import ArchSpec, build
from gancompress.formats.checkpoint import GanBundle, save_bundle
from gancompress.cli.main import app
from gancompress.errors import InputError
from gancompress.export import ExportConfig, export_bundle
from gancompress.channels import filter_groups
from gancompress.export.shrink import build_graph, shrink_graph, verify
from gancompress.loading import load_bundle
from gancompress.prune import (GRANULARITIES, PruneConfig, apply_masks, compute_masks, module_geometry,
                               param_key, plan_target, prunable_layers, to_canonical)

SPEC = ArchSpec("pix2pix-resnet-g", {"input_nc": 3, "output_nc": 3, "ngf": 4, "n_blocks": 2, "norm": "instance",
                                     "use_dropout": False})
SHAPE = (3, 48, 48)
STREAM = "model.7"  # the last downsampling conv: it opens the residual stream


def _model(seed: int = 0, spec: ArchSpec = SPEC) -> nn.Module:
    torch.manual_seed(seed)
    return build(spec)


def _kept_filters(model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per selected layer name: bool per output filter, True when any weight of it is kept."""
    out = {}
    for name, module in model.named_modules():
        key = param_key(name, module) if hasattr(module, "weight") else None
        if key in masks:
            geo = module_geometry(module)
            out[name] = to_canonical(masks[key], geo).any(dim=1)
    return out


def _config(sparsity: float, **kw) -> PruneConfig:
    return PruneConfig(sparsity, granularity="filter", coupled=True, input_shape=SHAPE, keep_dense="first,last", **kw)


def _coupled(model: nn.Module, sparsity: float, **kw) -> dict[str, torch.Tensor]:
    return compute_masks(model, _config(sparsity, **kw))


def _filter_share(model: nn.Module, sparsity: float) -> float:
    """The share of the pruned layers' filters that makes ``sparsity`` of ALL weights zero."""
    return plan_target(model, _config(sparsity)).layer_share()


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.7])
def test_coupled_prunes_whole_groups_close_to_target(sparsity):
    model = _model()
    masks = _coupled(model, sparsity)
    assert model.training  # tracing the groups leaves the train/eval mode alone
    kept = _kept_filters(model, masks)
    selected = {n for n, _ in prunable_layers(model)}
    assert set(kept) == selected
    groups = filter_groups(model, SHAPE)
    assert any(len(g) > 1 for g in groups)
    for group in groups:
        states = {bool(kept[n][c]) if n in kept else True for n, c in group}
        assert len(states) == 1, group  # all members pruned or none
        if any(n not in selected for n, _ in group):
            assert states == {True}  # a member in a dense layer keeps the whole group
    total = sum(k.numel() for k in kept.values())
    pruned = sum(int((~k).sum()) for k in kept.values())
    biggest = max(len(g) for g in groups)
    assert abs(pruned - round(_filter_share(model, sparsity) * total)) <= biggest // 2 + 1
    assert all(bool(k.any()) for k in kept.values())  # every layer keeps a filter


def test_coupled_shrinks_the_residual_stream_and_stays_exact():
    dense = _model(seed=3)
    widths, params = {}, {}
    for coupled in (False, True):
        model = _model(seed=3)
        config = PruneConfig(0.5, granularity="filter", coupled=coupled, input_shape=SHAPE, keep_dense="first,last")
        masks = compute_masks(model, config)
        masked = (GanBundle(model, SPEC, masks=masks)).masked_generator()
        graph, report = shrink_graph(masked, SHAPE, fixed_size=False)
        small, _ = build_graph(graph, SHAPE)
        assert verify(masked, small, SHAPE, fixed=False) <= 1e-5  # equal at two input sizes
        widths[coupled] = small.get_submodule(STREAM).out_channels
        params[coupled] = sum(p.numel() for p in small.parameters())
    stream = dense.get_submodule(STREAM).out_channels
    assert widths[True] < widths[False] <= stream
    assert widths[True] <= stream // 2 + 1
    assert params[True] < params[False]


def test_coupled_export_shrunk_matches_the_masked_model(tmp_path):
    model = _model(seed=1)
    masks = _coupled(model, 0.5)
    bundle = GanBundle(model, SPEC, masks=masks)
    r = export_bundle(bundle, ExportConfig(source="test", output=tmp_path / "s.safetensors", format="shrunk"))
    assert r.architecture == "shrunk:pix2pix-resnet-g" and r.shrink["removed"] > 0  # the exporter verified it


def test_coupled_reprune_keeps_old_zeros_and_groups():
    model = _model(seed=2)
    first = _coupled(model, 0.25)
    apply_masks(model, first)
    second = compute_masks(model, _config(0.6), previous=first)
    for key in first:
        assert not torch.any(second[key] & ~first[key])  # nothing resurrected
    kept = _kept_filters(model, second)
    for group in filter_groups(model, SHAPE):
        assert len({bool(kept[n][c]) if n in kept else True for n, c in group}) == 1
    total = sum(k.numel() for k in kept.values())
    assert abs(sum(int((~k).sum()) for k in kept.values()) / total - _filter_share(model, 0.6)) < 0.05


def test_coupled_respects_exclude():
    model = _model()
    masks = _coupled(model, 0.5, exclude=("model.10.conv_block.5",))
    kept = _kept_filters(model, masks)
    assert "model.10.conv_block.5" not in kept
    assert bool(kept[STREAM].all()) and bool(kept["model.11.conv_block.5"].all())  # stream groups locked
    assert not bool(kept["model.10.conv_block.1"].all())  # other layers still pruned


@pytest.mark.parametrize("granularity", ["element", "block", "channel", "nm"])
def test_coupled_needs_filter_granularity(granularity):
    with pytest.raises(InputError, match="--granularity filter"):
        PruneConfig(0.5 if granularity != "nm" else None, granularity=granularity, coupled=True)


def test_coupled_needs_an_input_shape():
    with pytest.raises(InputError, match="input shape"):
        compute_masks(_model(), PruneConfig(0.5, granularity="filter", coupled=True))
    with pytest.raises(InputError, match="input_shape"):
        PruneConfig(0.5, granularity="filter", coupled=True, input_shape=(3, 0, 4))


def test_coupled_untraceable_model_is_an_input_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 3, 3)

        def forward(self, x):
            y = self.b(self.a(x))
            return self.c(y if y.sum() > 0 else -y)  # data-dependent control flow

    with pytest.raises(InputError, match="--coupled"):
        compute_masks(Branchy(), PruneConfig(0.5, granularity="filter", coupled=True, input_shape=(3, 16, 16)))


def test_filter_granularity_without_coupled_prunes_each_layers_weakest_filters():
    model = _model()
    plain = compute_masks(model, PruneConfig(0.5, granularity="filter", keep_dense="first,last"))
    for name, module in prunable_layers(model):
        key = param_key(name, module)
        geo = module_geometry(module)
        norms = to_canonical(model.get_parameter(key).detach(), geo).norm(dim=1)
        kept = to_canonical(plain[key], geo).any(dim=1)
        assert bool(kept.any()) and (kept.all() or float(norms[kept].min()) >= float(norms[~kept].max()))


def test_cli_coupled(tmp_path):
    runner = CliRunner()
    src, out, plain = tmp_path / "g.safetensors", tmp_path / "c.safetensors", tmp_path / "p.safetensors"
    save_bundle(GanBundle(_model(seed=4).eval(), SPEC), src)
    r = runner.invoke(app, ["prune", str(src), "-s", "0.5", "-g", "filter", "--coupled", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["config"]["coupled"] is True and report["config"]["input_shape"] == [3, 256, 256]
    r = runner.invoke(app, ["prune", str(src), "-s", "0.5", "-g", "filter", "-o", str(plain)])
    assert r.exit_code == 0, r.output
    widths = {}
    for path in (out, plain):
        bundle = load_bundle(str(path))
        assert bundle.meta["pruning"]["coupled"] is (path == out)
        res = export_bundle(bundle, ExportConfig(source=str(path), output=tmp_path / f"{path.stem}.s.safetensors",
                                                 format="shrunk"))
        assert res.architecture == "shrunk:pix2pix-resnet-g"
        widths[path] = load(tmp_path / f"{path.stem}.s.safetensors").get_submodule(STREAM).out_channels
    assert widths[out] < widths[plain]
    r = runner.invoke(app, ["prune", str(src), "-s", "0.5", "--coupled", "-o", str(tmp_path / "x.safetensors")])
    assert r.exit_code != 0 and "--granularity filter" in r.output
    assert not (tmp_path / "x.safetensors").exists()


def test_finetune_coupled_agp_keeps_groups_whole_so_export_can_shrink(tmp_path, monkeypatch):
    """``finetune --sparsity --granularity filter --coupled``: every AGP mask update prunes whole
    residual groups, so the recovered model shrinks further than a per-layer filter run."""
    from img2img_fixtures import pix2pix_dir, side_by_side

    from gancompress.finetune import FinetuneConfig, run_finetune

    monkeypatch.setenv("GANCOMPRESS_CACHE", str(tmp_path / "cache"))
    src, data = pix2pix_dir(tmp_path / "ckpt", SPEC), side_by_side(tmp_path / "data")
    widths = {}
    for coupled in (True, False):
        out = tmp_path / f"ft-{coupled}.safetensors"
        result = run_finetune(FinetuneConfig.from_options(
            source=str(src), output=out, data=str(data), method="distill", steps=4, batch_size=2, crop=32,
            sparsity=0.5, granularity="filter", coupled=coupled, mask_every=1, log_every=0, sample_every=0,
            save_every=0, device="cpu"))
        assert result.sparsity["pruned"] == pytest.approx(0.5, abs=0.1)
        bundle = load_bundle(str(out))
        if coupled:
            kept = _kept_filters(bundle.generator, bundle.masks)
            for group in filter_groups(bundle.generator, SHAPE):
                states = {bool(kept[n][c]) if n in kept else True for n, c in group}
                assert len(states) == 1, group  # all members pruned or none
        res = export_bundle(bundle, ExportConfig(source=str(out), output=tmp_path / f"s-{coupled}.safetensors",
                                                 format="shrunk"))
        assert res.shrink["removed"] > 0  # the exporter verified the shrunk model against the masked one
        widths[coupled] = load(tmp_path / f"s-{coupled}.safetensors").get_submodule(STREAM).out_channels
    assert widths[True] < widths[False]
