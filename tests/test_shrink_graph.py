"""``--format shrunk`` on generators with skips: pix2pix ResNet / U-Net and RRDBNet (torch.fx graph path)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from mask_helpers import random_filter_masks

from gancompress.api import load
from gancompress.archs import ArchSpec, build
from gancompress.archs.base import ARCHITECTURES, Architecture, register_architecture
from gancompress.formats.checkpoint import GanBundle
from gancompress.errors import GanCompressError, InputError
from gancompress.export import ExportConfig, export_bundle
from gancompress.channels import filter_groups
from gancompress.export.shrink import build_graph, shrink_graph, verify
from gancompress.formats.shrunk import ShrunkGraph, graph_digest


def resnet(n_blocks: int, norm: str, dropout: bool = False) -> ArchSpec:
    return ArchSpec("pix2pix-resnet-g", {"input_nc": 3, "output_nc": 3, "ngf": 4, "n_blocks": n_blocks,
                                         "norm": norm, "use_dropout": dropout})


UNET = ArchSpec("pix2pix-unet-g", {"input_nc": 3, "output_nc": 3, "num_downs": 7, "ngf": 2, "norm": "batch",
                                   "use_dropout": False})


def rrdb(scale: int) -> ArchSpec:
    return ArchSpec("rrdbnet-g", {"num_in_ch": 3, "num_out_ch": 3, "scale": scale, "num_feat": 8,
                                  "num_block": 1, "num_grow_ch": 4})


CASES = {
    "resnet6-instance": resnet(6, "instance"),
    "resnet9-batch": resnet(9, "batch", dropout=True),
    "resnet6-batch": resnet(6, "batch"),
    "resnet9-instance": resnet(9, "instance"),
    "unet128-batch": UNET,
    "rrdb-x2": rrdb(2),
    "rrdb-x4": rrdb(4),
}


def _generator(spec: ArchSpec, seed: int) -> nn.Module:
    """Random weights with non-trivial constants: BN statistics/affine and conv biases."""
    torch.manual_seed(seed)
    g = build(spec).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
                m.bias.normal_(0.0, 0.3)
    return g




def _export(bundle: GanBundle, path: Path, fmt: str = "shrunk"):
    return export_bundle(bundle, ExportConfig(source="test", output=path, format=fmt))


def _input(spec: ArchSpec, batch: int = 2) -> torch.Tensor:
    shape = ARCHITECTURES.get(spec.name).input_shape(spec.kwargs)
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------------------- exactness


SMALL = {"pix2pix-resnet-g": (3, 48, 48), "pix2pix-unet-g": (3, 128, 128), "rrdbnet-g": (3, 24, 24)}


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("case", list(CASES))
def test_shrunk_equals_masked(case, sparsity):
    """The export's shrink step (trace, cut, rebuild from the spec, verify) at a small input size."""
    spec = CASES[case]
    g = _generator(spec, seed=int(sparsity * 4))
    masked = (GanBundle(g, spec, masks=random_filter_masks(g, sparsity))).masked_generator()
    shape = SMALL[spec.name]
    graph, report = shrink_graph(masked, shape, fixed_size=False)
    small, _ = build_graph(graph, shape)
    assert report.removed > 0
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in g.parameters())
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = masked(x), small(x)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-5
    assert verify(masked, small, shape, fixed=False) <= 1e-5  # also at a second input size


@pytest.mark.parametrize("case", ["resnet6-instance", "resnet9-batch", "unet128-batch", "rrdb-x2"])
def test_shrunk_file_is_smaller_and_loads_without_flags(tmp_path, case):
    spec = CASES[case]
    g = _generator(spec, seed=2)
    bundle = GanBundle(g, spec, masks=random_filter_masks(g, 0.5))
    r = _export(bundle, tmp_path / "s.safetensors")
    small = load(tmp_path / "s.safetensors")
    assert small.training is False and isinstance(small, ShrunkGraph)
    assert r.architecture == f"shrunk:{spec.name}" and r.shrink["removed"] > 0
    assert r.file_bytes < r.dense_float32_bytes
    x = _input(spec, 1)
    with torch.no_grad():
        want, got = bundle.masked_generator()(x), small(x)
    assert float((got - want).abs().max()) <= 1e-5


def test_unet_with_instance_norm_and_the_library_pruner(tmp_path):
    from gancompress.prune import PruneConfig, apply_masks, compute_masks

    spec = ArchSpec("pix2pix-unet-g", {**UNET.kwargs, "norm": "instance", "use_dropout": True, "num_downs": 7})
    g = _generator(spec, seed=3)
    masks = compute_masks(g, PruneConfig(0.5, granularity="filter"))
    apply_masks(g, masks)
    bundle = GanBundle(g, spec, masks=masks)
    r = _export(bundle, tmp_path / "u.safetensors")
    small = load(tmp_path / "u.safetensors")
    x = _input(spec)
    with torch.no_grad():
        assert float((small(x) - bundle.masked_generator()(x)).abs().max()) <= 1e-5
    assert r.ratio < 0.75


def test_other_input_sizes_stay_exact():
    spec = resnet(6, "batch")
    g = _generator(spec, seed=5)
    bundle = GanBundle(g, spec, masks=random_filter_masks(g, 0.5))
    masked = bundle.masked_generator()
    graph, report = shrink_graph(masked, (3, 64, 64), fixed_size=False)
    small, _ = build_graph(graph, (3, 64, 64))
    assert report.ones_channels > 0  # BN constants into zero-padded / transposed convs
    for size in (32, 48, 96):
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            assert float((small(x) - masked(x)).abs().max()) <= 1e-5, size


def test_fixed_size_graph_path_matches_the_sequential_walk():
    spec = ArchSpec("dcgan-g", {"widths": [16, 32, 16, 8, 3]})
    g = _generator(spec, seed=0)
    masked = (GanBundle(g, spec, masks=random_filter_masks(g, 0.5))).masked_generator()
    graph, report = shrink_graph(masked, (16, 1, 1), fixed_size=True)
    small, _ = build_graph(graph, (16, 1, 1))
    z = torch.randn(4, 16, 1, 1)
    with torch.no_grad():
        assert float((small(z) - masked(z)).abs().max()) <= 1e-5
    assert report.widths_after == [16, 8, 4, 3]


# ----------------------------------------------------------------------------- structure


def test_residual_filters_are_grouped():
    spec = resnet(6, "instance")
    groups = filter_groups(build(spec).eval(), (3, 64, 64))
    stream = [grp for grp in groups if len(grp) > 1]
    assert len(stream) == 16  # ngf * 4 residual channels
    layers = {name for name, _ in stream[0]}
    assert layers == {"model.7"} | {f"model.{10 + b}.conv_block.5" for b in range(6)}
    assert sum(len(grp) for grp in groups) == sum(m.out_channels for m in build(spec).modules()
                                                   if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def test_residual_channels_go_when_pruned_together():
    spec = resnet(6, "instance")
    g = _generator(spec, seed=2)
    masks = random_filter_masks(g, 0.5)
    shape = (3, 48, 48)
    gone = [grp for grp in filter_groups(g, shape) if len(grp) > 1][:6]
    for grp in gone:  # prune 6 whole residual channels across every producer of the stream
        for name, c in grp:
            masks[f"{name}.weight"][c] = False
    masked = (GanBundle(g, spec, masks=masks)).masked_generator()
    graph, report = shrink_graph(masked, shape, fixed_size=False)
    assert 16 - 6 in report.widths_after
    small, _ = build_graph(graph, shape)
    assert verify(masked, small, shape, fixed=False) <= 1e-5


def test_state_dict_keeps_the_original_names(tmp_path):
    spec = rrdb(2)
    g = _generator(spec, seed=1)
    _export(GanBundle(g, spec, masks=random_filter_masks(g, 0.5)), tmp_path / "r.safetensors")
    small = load(tmp_path / "r.safetensors")
    keys = set(small.state_dict())
    assert "body.0.rdb1.conv1.weight" in keys and "conv_last.bias" in keys
    assert small.get_submodule("body.0.rdb1.conv1").out_channels == 2


# ----------------------------------------------------------------------------- refusals, damage


class _GroupNormGenerator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.out = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        h = self.norm(self.conv(x))
        return self.out(h + h)


def test_unsupported_layers_are_refused_and_nothing_is_written(tmp_path):
    name = "test-groupnorm-g"
    if name not in ARCHITECTURES:
        register_architecture(Architecture(name=name, role="generator", build=_GroupNormGenerator,
                                           infer=lambda sd: None, input_kind="image",
                                           input_shape=lambda kw: (3, 16, 16)))
    g = _GroupNormGenerator().eval()
    with pytest.raises(InputError, match=r"GroupNorm.*--format dense"):
        _export(GanBundle(g, ArchSpec(name, {})), tmp_path / "g.safetensors")
    assert not (tmp_path / "g.safetensors").exists()


def test_a_wrong_result_is_refused_with_the_dense_advice():
    a, b = build(resnet(6, "instance")).eval(), build(resnet(6, "instance")).eval()
    with pytest.raises(GanCompressError, match="--format dense"):
        verify(a, b, (3, 32, 32), fixed=False)


@pytest.fixture(scope="module")
def shrunk_file(tmp_path_factory) -> Path:
    spec = rrdb(2)
    g = _generator(spec, seed=0)
    path = tmp_path_factory.mktemp("shrunk") / "g.safetensors"
    _export(GanBundle(g, spec, masks=random_filter_masks(g, 0.5)), path)
    return path


def _edit_graph(path: Path, tmp: Path, edit, redigest: bool) -> Path:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    arch = json.loads(meta["g_arch"])
    edit(arch["kwargs"]["graph"])
    if redigest:
        body = {k: v for k, v in arch["kwargs"]["graph"].items() if k != "digest"}
        arch["kwargs"]["graph"]["digest"] = graph_digest(body)
    meta["g_arch"] = json.dumps(arch)
    meta.pop("digest", None)  # the file's integrity digest would catch any edit: test the graph's own checks
    out = tmp / "edited.safetensors"
    save_file(load_file(path), str(out), metadata=meta)
    return out


def _first_conv(graph):
    return next(d for d in graph["modules"] if d["type"] == "Conv2d")


TAMPER = {
    "width": (lambda g: _first_conv(g)["args"].__setitem__("out_channels", 5), False),
    "width-redigested": (lambda g: _first_conv(g)["args"].__setitem__("out_channels", 5), True),
    "scalar": (lambda g: next(n for n in g["nodes"] if "scalar" in n).__setitem__("scalar", 0.3), False),
    "op": (lambda g: g["nodes"][1].__setitem__("op", "exec"), True),
    "forward-ref": (lambda g: g["nodes"][2].__setitem__("in", [5]), True),
    "layer-type": (lambda g: _first_conv(g).__setitem__("type", "Flatten"), True),
    "huge": (lambda g: _first_conv(g)["args"].__setitem__("out_channels", 10**9), True),
    "version": (lambda g: g.__setitem__("version", 99), True),
}


@pytest.mark.parametrize("tamper", list(TAMPER))
def test_a_tampered_structure_fails_with_a_clear_error(shrunk_file, tmp_path, tamper):
    edit, redigest = TAMPER[tamper]
    path = _edit_graph(shrunk_file, tmp_path, edit, redigest)
    with pytest.raises(InputError, match=r"damaged or was edited|version|do(es)? not fit|export"):
        load(path)


def test_the_untampered_file_still_loads(shrunk_file, tmp_path):
    path = _edit_graph(shrunk_file, tmp_path, lambda g: None, False)
    assert isinstance(load(path), ShrunkGraph)


def _conditional_spec() -> dict:
    """A tiny class-conditional graph: a label table times the latent, a Linear, a per-sample reshape."""
    from gancompress.formats.shrunk import Graph, LabelTable, graph_spec

    nodes = [{"op": "input"}, {"op": "labels"}, {"op": "module", "name": "label_t", "in": [1]},
             {"op": "mul", "in": [0, 2]}, {"op": "module", "name": "fc", "in": [3]},
             {"op": "reshape", "in": [4], "shape": [2, 2, 2]}, {"op": "unsqueeze", "in": [5], "dim": -1},
             {"op": "output", "in": [6]}]
    return graph_spec(Graph(nodes, {"label_t": LabelTable(3, [4]), "fc": torch.nn.Linear(4, 8)}), (4,))


def _redigested(spec: dict, edit) -> dict:
    spec = json.loads(json.dumps(spec))
    edit(spec)
    spec["digest"] = graph_digest({k: v for k, v in spec.items() if k != "digest"})
    return spec


COND_TAMPER = {
    "labels-not-second": lambda g: g["nodes"].insert(1, g["nodes"].pop(2)),
    "reshape-two-unknowns": lambda g: g["nodes"][5].__setitem__("shape", [-1, -1, 2]),
    "reshape-zero": lambda g: g["nodes"][5].__setitem__("shape", [0, 8]),
    "unsqueeze-batch": lambda g: g["nodes"][6].__setitem__("dim", 0),
    "table-shape": lambda g: g["modules"][0]["args"].__setitem__("shape", []),
    "table-huge": lambda g: g["modules"][0]["args"].__setitem__("num_classes", 10**9),
}


def test_a_conditional_graph_runs_with_labels_and_refuses_edits():
    spec = _conditional_spec()
    g = ShrunkGraph(spec, [4])
    g.label_t.value.copy_(torch.arange(12.0).reshape(3, 4))
    z = torch.ones(2, 4)
    out = g(z, torch.tensor([2, 0]))
    assert out.shape == (2, 2, 2, 2, 1)
    assert torch.allclose(out[0].flatten(), g.fc(torch.arange(8.0, 12.0)), atol=1e-6)  # label 2: the table row 8..11
    with pytest.raises(InputError, match="class-conditional"):
        g(z)
    with pytest.raises(InputError, match="1-d integer tensor"):
        g(z, torch.tensor([0.0, 1.0]))
    for name, edit in COND_TAMPER.items():
        with pytest.raises(InputError, match="damaged or was edited|do(es)? not fit"):
            ShrunkGraph(_redigested(spec, edit), [4])
            pytest.fail(name)


@pytest.mark.parametrize("dims", [(0, 1), (1, 0)])
@pytest.mark.parametrize("slice_", [1, 7, 1 << 22])
def test_cut_weight_equals_two_index_selects(dims, slice_, monkeypatch):
    from gancompress.export import shrink

    monkeypatch.setattr(shrink, "_CUT_SLICE", slice_)
    w = torch.randn(6, 5, 3, 2)
    out_dim, in_dim = dims
    keep_out = torch.tensor([0, 2, 3, 5]) if out_dim == 0 else torch.tensor([1, 4])
    keep_in = torch.tensor([1, 4]) if out_dim == 0 else torch.tensor([0, 2, 3, 5])
    want = w.index_select(out_dim, keep_out).index_select(in_dim, keep_in)
    assert torch.equal(shrink.cut_weight(w, out_dim, keep_out, in_dim, keep_in), want)
