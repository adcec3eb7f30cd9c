"""Physically smaller generators for filter (output-channel) pruning: ``--format shrunk``.

This module walks sequential generators (one ``nn.Sequential`` doing the whole forward, e.g.
the DCGAN and digits generators); everything else (residual additions, U-Net and dense-block
concatenations, pixel (un)shuffle, interpolation: pix2pix ResNet/U-Net, RRDBNet) goes through
the torch.fx channel-dependency graph of :mod:`.shrink_graph`, whose spec is a ``graph``.

A per-layer-type table says how to cut a layer's outputs
(producers: convolutions, linear), its inputs, or its per-channel parameters (norms;
activations and paddings have none). The walk goes producer by producer: the output
channels whose filter is all zero are removed there, in every per-channel layer after it
and in the next producer's inputs.

Exactness: a zeroed filter still outputs a constant map (its bias, then BatchNorm's shift,
then the activation). Its contribution to the next producer is computed exactly at the
traced feature size; when it is spatially uniform it is folded into the next layer's bias
(adding one if needed); when it is not (zero padding, transposed convs), noise-input
generators get a :class:`ConstantMap` after that layer (their feature sizes are fixed), and
image-input generators keep those channels. The result is checked against the masked model.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..archs import ARCHITECTURES, ArchSpec
from ..archs.base import Architecture, register_architecture
from ..errors import GanCompressError, InputError

TOLERANCE = 1e-4  # refuse a shrunk network whose output differs more than this (should be ~1e-6)


class ConstantMap(nn.Module):
    """Adds a fixed ``(C, H, W)`` map: the exact contribution of removed constant channels."""

    def __init__(self, shape: list[int]) -> None:
        super().__init__()
        self.register_buffer("value", torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.value


@dataclass(frozen=True)
class LayerType:
    """How one module type is described, rebuilt and cut. ``out_dim``/``in_dim``: producers."""

    args: Callable[[nn.Module], dict[str, Any]]
    out_dim: int | None = None
    in_dim: int | None = None
    channel_params: tuple[str, ...] = ()
    width_args: tuple[str, ...] = ()  # per-channel layers: constructor args holding the width


def _conv(m: nn.Module) -> dict[str, Any]:
    args = {k: getattr(m, k) for k in ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                                       "dilation", "groups", "padding_mode")}
    if isinstance(m, nn.ConvTranspose2d):
        args["output_padding"] = m.output_padding
    return {**args, "bias": m.bias is not None}


def _norm(m: nn.Module) -> dict[str, Any]:
    return {k: getattr(m, k) for k in ("num_features", "eps", "momentum", "affine", "track_running_stats")}


def _attrs(*names: str) -> Callable[[nn.Module], dict[str, Any]]:
    return lambda m: {k: getattr(m, k) for k in names}


_NORM_PARAMS = ("weight", "bias", "running_mean", "running_var")
LAYER_TYPES: dict[type, LayerType] = {
    nn.Conv2d: LayerType(_conv, out_dim=0, in_dim=1),
    nn.ConvTranspose2d: LayerType(_conv, out_dim=1, in_dim=0),
    nn.Linear: LayerType(lambda m: {"in_features": m.in_features, "out_features": m.out_features,
                                    "bias": m.bias is not None}, out_dim=0, in_dim=1),
    nn.BatchNorm2d: LayerType(_norm, channel_params=_NORM_PARAMS, width_args=("num_features",)),
    nn.BatchNorm1d: LayerType(_norm, channel_params=_NORM_PARAMS, width_args=("num_features",)),
    nn.InstanceNorm2d: LayerType(_norm, channel_params=_NORM_PARAMS, width_args=("num_features",)),
    ConstantMap: LayerType(lambda m: {"shape": list(m.value.shape)}, channel_params=("value",)),
    nn.ReLU: LayerType(lambda m: {}),
    nn.LeakyReLU: LayerType(_attrs("negative_slope")),
    nn.Tanh: LayerType(lambda m: {}),
    nn.Sigmoid: LayerType(lambda m: {}),
    nn.Identity: LayerType(lambda m: {}),
    nn.Dropout: LayerType(_attrs("p")),
    nn.ReflectionPad2d: LayerType(_attrs("padding")),
    nn.ReplicationPad2d: LayerType(_attrs("padding")),
    nn.ZeroPad2d: LayerType(_attrs("padding")),
    nn.Upsample: LayerType(_attrs("size", "scale_factor", "mode")),
}
TYPES_BY_NAME = {t.__name__: t for t in LAYER_TYPES}


def describe(m: nn.Module) -> dict[str, Any]:
    """JSON-ready ``{"type", "args"}`` of a supported layer."""
    args = LAYER_TYPES[type(m)].args(m)
    return {"type": type(m).__name__, "args": {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}}


def construct(desc: dict[str, Any]) -> nn.Module:
    kind = TYPES_BY_NAME.get(desc.get("type", ""))
    if kind is None:
        raise InputError(f"unknown layer type {desc.get('type')!r} in a shrunk architecture; the file is damaged")
    args = {k: tuple(v) if isinstance(v, list) and k != "shape" else v for k, v in desc.get("args", {}).items()}
    return kind(**args)


# ----------------------------------------------------------------------------- cutting


def _rebuild(m: nn.Module, changes: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    desc = describe(m)
    desc["args"].update(changes)
    new = construct(desc)
    new.load_state_dict(state)
    return new.eval()


def _width_key(m: nn.Module, side: str) -> str:
    return f"{side}_features" if isinstance(m, nn.Linear) else f"{side}_channels"


def cut_out(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    """Keep only output units ``keep`` of a producer (weight and bias)."""
    sd = m.state_dict()
    sd["weight"] = sd["weight"].index_select(LAYER_TYPES[type(m)].out_dim, keep)
    if "bias" in sd:
        sd["bias"] = sd["bias"].index_select(0, keep)
    return _rebuild(m, {_width_key(m, "out"): len(keep)}, sd)


def cut_in(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    """Keep only input channels ``keep`` of a producer."""
    sd = m.state_dict()
    sd["weight"] = sd["weight"].index_select(LAYER_TYPES[type(m)].in_dim, keep)
    return _rebuild(m, {_width_key(m, "in"): len(keep)}, sd)


def cut_channels(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    """Keep channels ``keep`` of a per-channel layer (norm parameters, running stats, maps)."""
    lt = LAYER_TYPES[type(m)]
    if not lt.channel_params:
        return m
    sd = m.state_dict()
    for name in lt.channel_params:
        if name in sd and sd[name] is not None:
            sd[name] = sd[name].index_select(0, keep)
    changes: dict[str, Any] = {k: len(keep) for k in lt.width_args}
    if isinstance(m, ConstantMap):
        changes["shape"] = [len(keep)] + list(m.value.shape[1:])
    return _rebuild(m, changes, sd)


def add_bias(m: nn.Module, delta: torch.Tensor) -> nn.Module:
    """``m`` with ``delta`` added to its bias (creating the bias when it has none)."""
    sd = m.state_dict()
    sd["bias"] = sd["bias"] + delta if "bias" in sd else delta.clone()
    return _rebuild(m, {"bias": True}, sd)


# ----------------------------------------------------------------------------- the walk


@dataclass
class ShrinkReport:
    """What the walk did: widths before/after, channels removed, kept for exactness, folds."""

    widths_before: list[int] = field(default_factory=list)
    widths_after: list[int] = field(default_factory=list)
    removed: int = 0
    kept_for_exactness: int = 0
    folded_into_bias: int = 0
    constant_maps: int = 0
    ones_channels: int = 0  # graph shrinking: consumers given one channel of ones for removed uniform constants


def sequential_chain(model: nn.Module) -> tuple[str, nn.Sequential]:
    """The one ``nn.Sequential`` that is the whole generator, or a clear refusal."""
    if isinstance(model, nn.Sequential):
        name, seq = "", model
    else:
        children = list(model.named_children())
        if len(children) != 1 or not isinstance(children[0][1], nn.Sequential):
            raise InputError(f"--format shrunk supports sequential generators (one nn.Sequential); "
                             f"{type(model).__name__} is not one. Use --format sparse or dense")
        name, seq = children[0]
    for i, m in enumerate(seq):
        if type(m) not in LAYER_TYPES:
            raise InputError(f"--format shrunk cannot shrink layer {name}.{i} ({type(m).__name__}: skip connections "
                             "and nested blocks are not supported yet); use --format sparse or dense")
        if getattr(m, "groups", 1) != 1 or list(getattr(m, "parametrizations", {})):
            raise InputError(f"--format shrunk cannot shrink layer {name}.{i} (grouped or parametrized); use --format sparse")
    return name, seq


def _producers(layers: list[nn.Module]) -> list[int]:
    return [i for i, m in enumerate(layers) if LAYER_TYPES[type(m)].out_dim is not None]


def _zero_filters(m: nn.Module) -> torch.Tensor:
    w = m.weight.detach()
    dim = LAYER_TYPES[type(m)].out_dim
    return (w.transpose(0, dim).reshape(w.shape[dim], -1) == 0).all(1)


def _zero_filter_output(m: nn.Module, extra: torch.Tensor | None, shape: torch.Size) -> torch.Tensor:
    """What a producer outputs from an all-zero filter: its bias plus any constant map."""
    out = torch.zeros(shape)
    if m.bias is not None:
        out = out + m.bias.detach().view(1, -1, *([1] * (len(shape) - 2)))
    return out + extra if extra is not None else out


def _contribution(cons: nn.Module, x: torch.Tensor, removed: torch.Tensor) -> torch.Tensor | None:
    """Exact output of consumer ``cons`` from the removed (constant) channels ``x[:, removed]``."""
    xr = x[:, removed]
    if bool((xr == 0).all()):
        return None
    w = cons.weight.detach().index_select(LAYER_TYPES[type(cons)].in_dim, removed.nonzero().flatten())
    if isinstance(cons, nn.Conv2d):
        return cons._conv_forward(xr, w, None)
    if isinstance(cons, nn.ConvTranspose2d):
        return F.conv_transpose2d(xr, w, None, cons.stride, cons.padding, cons.output_padding, 1, cons.dilation)
    return F.linear(xr, w)


def _uniform(contrib: torch.Tensor) -> bool:
    if contrib.ndim <= 2:
        return True
    flat = contrib.flatten(2)
    return float((flat - flat[..., :1]).abs().max()) <= 1e-6 * (1.0 + float(flat.abs().max()))


@dataclass
class _Walk:
    layers: list[nn.Module]
    shapes: list[torch.Size]
    fixed_size: bool
    extras: dict[int, torch.Tensor] = field(default_factory=dict)
    report: ShrinkReport = field(default_factory=ShrinkReport)


def _removal_plan(walk: _Walk, p: int, q: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Channels of producer ``p`` to remove, and their exact contribution to consumer ``q``."""
    layers = walk.layers
    removed = _zero_filters(layers[p])
    if bool(removed.all()):
        removed[0] = False  # a layer keeps at least one channel
    if not bool(removed.any()):
        return removed, None
    with torch.no_grad():
        x = _zero_filter_output(layers[p], walk.extras.get(p), walk.shapes[p])
        for m in layers[p + 1:q]:
            x = m(x)
        contrib = _contribution(layers[q], x, removed)
    if contrib is None or _uniform(contrib) or walk.fixed_size:
        return removed, contrib
    free = removed & (x.reshape(1, x.shape[1], -1) == 0).all(-1)[0]
    walk.report.kept_for_exactness += int(removed.sum() - free.sum())
    return free, None


def _shrink_pair(walk: _Walk, p: int, q: int) -> None:
    layers = walk.layers
    for i in range(p + 1, q):
        if LAYER_TYPES[type(layers[i])].out_dim is not None:
            raise InputError(f"layer {i} is not per-channel; cannot shrink")
    removed, contrib = _removal_plan(walk, p, q)
    if not bool(removed.any()):
        return
    keep = (~removed).nonzero().flatten()
    walk.report.removed += int(removed.sum())
    layers[p] = cut_out(layers[p], keep)
    if p in walk.extras:
        walk.extras[p] = walk.extras[p].index_select(0, keep)
    for i in range(p + 1, q):
        layers[i] = cut_channels(layers[i], keep)
    layers[q] = cut_in(layers[q], keep)
    if contrib is None:
        return
    if _uniform(contrib):
        layers[q] = add_bias(layers[q], contrib.flatten(2).mean(-1)[0] if contrib.ndim > 2 else contrib[0])
        walk.report.folded_into_bias += 1
    else:
        walk.extras[q] = walk.extras.get(q, torch.zeros(contrib.shape[1:])) + contrib[0]
        walk.report.constant_maps += 1


def _assemble(walk: _Walk) -> list[nn.Module]:
    out: list[nn.Module] = []
    for i, m in enumerate(walk.layers):
        out.append(m)
        if i in walk.extras:
            cmap = ConstantMap(list(walk.extras[i].shape))
            cmap.value.copy_(walk.extras[i])
            out.append(cmap)
    return out


def _trace_shapes(seq: nn.Sequential, input_shape: tuple[int, ...]) -> list[torch.Size]:
    shapes, x = [], torch.zeros(1, *input_shape)
    with torch.no_grad():
        for m in seq:
            x = m(x)
            shapes.append(x.shape)
    return shapes


def shrink_sequential(model: nn.Module, input_shape: tuple[int, ...], fixed_size: bool) -> tuple[str, list[nn.Module], ShrinkReport]:
    """Remove all-zero filters of a (masked, eval-mode) sequential generator, exactly.

    Returns the container attribute name, the new layers and a report.
    """
    name, seq = sequential_chain(model)
    walk = _Walk([copy.deepcopy(m).eval() for m in seq], _trace_shapes(seq.eval(), input_shape), fixed_size)
    prods = _producers(walk.layers)
    walk.report.widths_before = [_out_width(walk.layers[i]) for i in prods]
    for p, q in zip(prods, prods[1:]):
        _shrink_pair(walk, p, q)
    walk.report.widths_after = [_out_width(walk.layers[i]) for i in prods]
    return name, _assemble(walk), walk.report


def _out_width(m: nn.Module) -> int:
    return int(m.weight.shape[LAYER_TYPES[type(m)].out_dim])


# ----------------------------------------------------------------------------- architecture


class ShrunkGenerator(nn.Module):
    """A sequential generator rebuilt layer by layer from a ``shrunk:<base>`` spec."""

    def __init__(self, container: str, layers: list[nn.Module]) -> None:
        super().__init__()
        self.chain_name = container
        setattr(self, container, nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.chain_name)(x)


def build_shrunk(layers: list[dict[str, Any]] | None = None, container: str = "net",
                 graph: dict[str, Any] | None = None, input_shape: list[int] | None = None,
                 contract: dict[str, Any] | None = None, **_: Any) -> nn.Module:
    """Build a shrunk generator from its layer list (``describe`` documents) or its ``graph``; ``contract``:
    what a user's network declared (docs/custom_networks.md), applied to the rebuilt one."""
    from ..archs.contract import apply_contract

    if graph is not None:
        from .shrink_graph import ShrunkGraph

        return apply_contract(ShrunkGraph(graph, input_shape), contract or {}, "generator", "the shrunk generator")
    if not isinstance(layers, list) or not isinstance(container, str):
        raise InputError("the shrunk architecture spec has neither a layer list nor a graph; it is damaged, "
                         "export the generator again")
    modules = [construct(d) for d in layers]
    module = ShrunkGenerator(container, modules) if container else nn.Sequential(*modules)
    return apply_contract(module, contract or {}, "generator", "the shrunk generator")


def ensure_shrunk_arch(name: str) -> None:
    """Register ``shrunk:<base>`` (same input kind and loss as ``<base>``) if it is not yet."""
    if name in ARCHITECTURES:
        return
    if not name.startswith("shrunk:"):
        raise InputError(f"{name!r} is not a shrunk architecture name")
    base = ARCHITECTURES.get(name.split(":", 1)[1]) if name.split(":", 1)[1] in ARCHITECTURES else None
    register_architecture(Architecture(
        name=name, role="generator", build=build_shrunk, infer=lambda sd: None,
        input_kind=base.input_kind if base else "noise",
        input_shape=lambda kw: tuple(kw["input_shape"]),
        loss=base.loss if base else "ns",
        output_range=base.output_range if base else (-1.0, 1.0),
        detectable=False,
        description=f"filter-pruned {name.split(':', 1)[1]} with the pruned channels removed",
    ))


def input_shape_of(spec: ArchSpec | None, model: nn.Module | None = None) -> tuple[int, ...]:
    """The per-sample input shape: the module's own ``input_shape`` (docs/custom_networks.md), else the registry's."""
    own = getattr(model, "input_shape", None) if model is not None else None
    if own is not None:
        return tuple(own)
    arch = ARCHITECTURES.get(spec.name) if spec is not None else None
    if arch is None or arch.input_shape is None or arch.name == "custom":
        raise InputError("this export needs the generator's input shape and its architecture does not declare one; "
                         "give your module an attribute `input_shape` (or pass it in --arch-kwargs), see docs/custom_networks.md")
    return tuple(arch.input_shape(spec.kwargs))


def _input_kind(model: nn.Module, spec: ArchSpec) -> str:
    return getattr(model, "input_kind", None) or ARCHITECTURES.get(spec.name).input_kind


def shrink_generator(model: nn.Module, spec: ArchSpec | None) -> tuple[nn.Module, ArchSpec, ShrinkReport]:
    """A smaller generator equal (to ~1e-6) to the masked ``model``, and its ``shrunk:`` spec."""
    from ..archs.contract import declared

    if getattr(model, "num_classes", None):
        raise InputError("--format shrunk does not take class-conditional generators (forward(z, labels)) yet; "
                         "use --format sparse or dense")
    shape = input_shape_of(spec, model)
    base = spec.name.split(":", 1)[-1] if spec.name.startswith("shrunk:") else spec.name
    fixed = _input_kind(model, spec) == "noise"
    contract = declared(model)
    if not is_sequential(model):
        return _shrink_graph_generator(model.eval(), spec, shape, base, fixed, contract)
    container, layers, report = shrink_sequential(model.eval(), shape, fixed)
    kwargs = {"container": container, "layers": [describe(m) for m in layers], "input_shape": list(shape),
              "base": base, "base_kwargs": spec.kwargs.get("base_kwargs", spec.kwargs), "contract": contract}
    new_spec = ArchSpec(f"shrunk:{base}", kwargs)
    ensure_shrunk_arch(new_spec.name)
    small = build_shrunk(kwargs["layers"], container, contract=contract)
    holder = ShrunkGenerator(container, layers) if container else nn.Sequential(*layers)
    small.load_state_dict(holder.state_dict())  # rebuilt from the spec alone, as load() will
    _verify(model, small.eval(), shape)
    return small, new_spec, report


def is_sequential(model: nn.Module) -> bool:
    """Whether the sequential walk handles ``model`` (else the graph path does)."""
    try:
        sequential_chain(model)
    except InputError:
        return False
    return True


def _shrink_graph_generator(model: nn.Module, spec: ArchSpec, shape: tuple[int, ...], base: str,
                            fixed: bool, contract: dict[str, Any]) -> tuple[nn.Module, ArchSpec, ShrinkReport]:
    from ..archs.contract import apply_contract
    from .shrink_graph import build_graph, shrink_graph, verify

    graph, report = shrink_graph(model, shape, fixed)
    small, gspec = build_graph(graph, shape)  # rebuilt from the spec alone, as load() will
    apply_contract(small, contract, "generator", "the shrunk generator")
    verify(model, small, shape, fixed)
    kwargs = {"graph": gspec, "input_shape": list(shape), "base": base,
              "base_kwargs": spec.kwargs.get("base_kwargs", spec.kwargs), "contract": contract}
    new_spec = ArchSpec(f"shrunk:{base}", kwargs)
    ensure_shrunk_arch(new_spec.name)
    return small, new_spec, report


def _verify(model: nn.Module, small: nn.Module, shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, *shape, generator=gen)
    with torch.no_grad():
        a, b = model(x), small(x)
    err = float((a - b).abs().max())
    if a.shape != b.shape or not err <= TOLERANCE * (1.0 + float(a.abs().max())):
        raise GanCompressError(f"the shrunk generator differs from the pruned one (max error {err:.2e}); "
                               "please report this; --format sparse is exact")
