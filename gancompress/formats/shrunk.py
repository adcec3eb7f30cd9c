"""The ``shrunk:<base>`` architecture spec: the JSON graph, its validator and its runner.

A shrunk export records its generator as a ``graph`` (``--format shrunk``, written by
:mod:`gancompress.export.shrink`): nodes (op, inputs, numbers), module descriptions (type
name + constructor arguments from the fixed table :data:`LAYER_TYPES`) and a SHA-256 digest
of both. No pickles, no code. :class:`ShrunkGraph` validates the spec structurally (types,
arities, widths, sizes) before it builds anything, then runs the nodes in order.

Files written by gancompress before the graph path existed describe a sequential generator
as a ``layers`` list instead; :func:`build_shrunk` still reads them (:class:`ShrunkGenerator`).
"""
from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..archs import ARCHITECTURES
from ..archs.base import Architecture, register_architecture
from ..errors import InputError
from ..layer_table import WEIGHT_LAYERS

GRAPH_VERSION = 1


class ConstantMap(nn.Module):
    """Adds a fixed ``(C, H, W)`` map: the exact contribution of removed constant channels."""

    def __init__(self, shape: list[int]) -> None:
        super().__init__()
        self.register_buffer("value", torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.value


class LabelTable(nn.Module):
    """What a class-conditional generator computes from the label alone (its embedding, reshaped,
    projected, ...), tabulated for every class: ``forward(labels)`` is ``value[labels]``."""

    def __init__(self, num_classes: int, shape: list[int]) -> None:
        super().__init__()
        self.register_buffer("value", torch.zeros(num_classes, *shape))

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.dtype not in (torch.int64, torch.int32) or labels.dim() != 1:
            raise InputError(f"class labels must be a 1-d integer tensor (one label per sample), got "
                             f"{tuple(labels.shape)} {labels.dtype}")
        return self.value.index_select(0, labels.long())


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


class OnesChannel(nn.Module):
    """Appends one channel of ones: the exact stand-in for removed uniform constant channels.

    The next conv's weight for it is ``sum_c v_c W[:, c]`` over the removed channels ``c`` of
    value ``v_c``, so zero padding, strides and transposed convs see what they saw before.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.ones_like(x[:, :1])], 1)


def _axes(cls: type[nn.Module]) -> tuple[int, int]:
    """(out_dim, in_dim) of a producer, from the weight-layer table."""
    return WEIGHT_LAYERS[cls].out_dim, WEIGHT_LAYERS[cls].in_dim


_NORM_PARAMS = ("weight", "bias", "running_mean", "running_var")


LAYER_TYPES: dict[type, LayerType] = {
    nn.Conv2d: LayerType(_conv, *_axes(nn.Conv2d)),
    nn.ConvTranspose2d: LayerType(_conv, *_axes(nn.ConvTranspose2d)),
    nn.Linear: LayerType(lambda m: {"in_features": m.in_features, "out_features": m.out_features,
                                    "bias": m.bias is not None}, *_axes(nn.Linear)),
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
    nn.Upsample: LayerType(_attrs("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor")),
    nn.PixelShuffle: LayerType(_attrs("upscale_factor")),
    nn.PixelUnshuffle: LayerType(_attrs("downscale_factor")),
    nn.ReLU6: LayerType(lambda m: {}),
    nn.ELU: LayerType(_attrs("alpha")),
    nn.SiLU: LayerType(lambda m: {}),
    nn.GELU: LayerType(_attrs("approximate")),
    OnesChannel: LayerType(lambda m: {}),
    nn.PReLU: LayerType(_attrs("num_parameters"), channel_params=("weight",), width_args=("num_parameters",)),
    LabelTable: LayerType(lambda m: {"num_classes": m.value.shape[0], "shape": list(m.value.shape[1:])}),
}
TYPES_BY_NAME = {t.__name__: t for t in LAYER_TYPES}


def per_channel(m: nn.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(channel_params, width_args) of ``m``: none for a PReLU whose one slope serves every channel."""
    if isinstance(m, nn.PReLU) and m.num_parameters == 1:
        return (), ()
    lt = LAYER_TYPES[type(m)]
    return lt.channel_params, lt.width_args


SITE_BOUND = tuple(t for t, lt in LAYER_TYPES.items()  # modules whose state or widths belong to one call site
                    if lt.out_dim is not None or lt.channel_params or lt.width_args)
ARITH = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}
_UNARY = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
INTERP_KEYS = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")
RESHAPES = ("reshape", "unsqueeze")  # per-sample reshapes; the batch dimension stays first
OPS = ("input", "labels", "output", "module", "cat", "pixel_shuffle", "pixel_unshuffle", "interpolate", "leaky_relu",
       *RESHAPES, *ARITH, *_UNARY)
_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")


def node_kind(m: nn.Module) -> str:
    if isinstance(m, LabelTable):
        return "source"
    if isinstance(m, OnesChannel):
        return "ones"
    if isinstance(m, nn.PixelShuffle):
        return "shuffle"
    if isinstance(m, nn.PixelUnshuffle):
        return "unshuffle"
    return "producer" if LAYER_TYPES[type(m)].out_dim is not None else "channel"


def describe(m: nn.Module) -> dict[str, Any]:
    args = LAYER_TYPES[type(m)].args(m)
    return {"type": type(m).__name__, "args": {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}}


def construct(desc: dict[str, Any]) -> nn.Module:
    kind = TYPES_BY_NAME.get(desc.get("type", "")) if isinstance(desc.get("type"), str) else None
    if kind is None:
        raise damaged(f"unknown layer type {desc.get('type')!r}")
    args = desc.get("args", {})
    if not isinstance(args, dict):
        raise damaged(f"arguments of {desc.get('type')} are not a table")
    args = {k: tuple(v) if isinstance(v, list) and k != "shape" else v for k, v in args.items()}
    if kind is LabelTable and not (isinstance(args.get("shape"), list) and 0 < len(args["shape"]) <= 4):
        raise damaged(f"a label table of shape {args.get('shape')!r}")
    try:
        return kind(**args)
    except Exception as exc:  # a wrong argument may fail anywhere in a constructor
        raise damaged(f"cannot build {desc['type']} from {args}: {exc}") from None


@dataclass
class Graph:
    """Whitelisted nodes (JSON-ready dicts; ``in`` holds earlier node indices) and modules by name."""

    nodes: list[dict[str, Any]]
    modules: dict[str, nn.Module]


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def apply_node(node: dict[str, Any], module: nn.Module | None, xs: list[torch.Tensor]) -> torch.Tensor:
    """Evaluate one (non input/output) node."""
    op = node["op"]
    if op == "module":
        return module(xs[0])
    if op in ARITH:
        if len(xs) == 2:
            return ARITH[op](xs[0], xs[1])
        s = node["scalar"]
        return ARITH[op](s, xs[0]) if node.get("reverse") else ARITH[op](xs[0], s)
    if op == "cat":
        return torch.cat(xs, node.get("dim", 1))
    if op == "pixel_shuffle":
        return F.pixel_shuffle(xs[0], node["factor"])
    if op == "pixel_unshuffle":
        return F.pixel_unshuffle(xs[0], node["factor"])
    if op == "interpolate":
        return F.interpolate(xs[0], **{k: tuple(v) if isinstance(v, list) else v
                                       for k, v in node.items() if k in INTERP_KEYS})
    if op == "leaky_relu":
        return F.leaky_relu(xs[0], node["negative_slope"])
    if op == "reshape":
        return xs[0].reshape(xs[0].shape[0], *node["shape"])
    if op == "unsqueeze":
        return xs[0].unsqueeze(node["dim"])
    return _UNARY[op](xs[0])


def last_uses(nodes: list[dict[str, Any]]) -> dict[int, list[int]]:
    """Node index -> the values that can be freed after it ran."""
    last: dict[int, int] = {}
    for i, node in enumerate(nodes):
        for j in node.get("in", []):
            last[j] = i
    free: dict[int, list[int]] = {}
    for j, i in last.items():
        free.setdefault(i, []).append(j)
    return free


def run_graph(nodes: list[dict[str, Any]], mods: list[nn.Module | None], x: torch.Tensor,
              free: dict[int, list[int]], labels: torch.Tensor | None = None) -> torch.Tensor:
    vals: list[torch.Tensor | None] = [None] * len(nodes)
    vals[0] = x
    for i in range(1, len(nodes)):
        node = nodes[i]
        if node["op"] == "output":
            return vals[node["in"][0]]
        if node["op"] == "labels":
            vals[i] = labels
            continue
        vals[i] = apply_node(node, mods[i], [vals[j] for j in node["in"]])
        for j in free.get(i, ()):
            vals[j] = None
    raise InputError("the shrunk graph has no output node")


def damaged(why: str) -> InputError:
    return InputError(f"the shrunk architecture spec is damaged or was edited ({why}); export the generator again")


def graph_digest(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def graph_spec(graph: Graph, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """The JSON-ready ``graph`` of a ``shrunk:`` spec (nodes, module descriptions, digest)."""
    order: list[str] = []
    for node in graph.nodes:
        if node["op"] == "module" and node["name"] not in order:
            order.append(node["name"])
    body = {"version": GRAPH_VERSION, "input_shape": list(input_shape), "nodes": graph.nodes,
            "modules": [{"name": n, **describe(graph.modules[n])} for n in order]}
    return {**body, "digest": graph_digest(body)}


def _check_ints(value: Any, where: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or abs(value) > 2**20:
            raise damaged(f"{where} holds {value!r}")
        return
    if isinstance(value, list):
        for v in value:
            _check_ints(v, where)
        return
    raise damaged(f"{where} holds {value!r}")


def _check_node(i: int, node: Any, names: set[str]) -> None:
    if not isinstance(node, dict) or node.get("op") not in OPS:
        raise damaged(f"node {i} is {node!r:.80}")
    op, ins = node["op"], node.get("in", [])
    if op in ("input", "labels"):
        if i != ("input", "labels").index(op) or set(node) != {"op"}:
            raise damaged(f"node {i} is an input")
        return
    if i == 0 or not isinstance(ins, list) or not all(isinstance(j, int) and not isinstance(j, bool) and 0 <= j < i
                                                       for j in ins):
        raise damaged(f"node {i} ({op}) reads {ins!r}")
    arity = {"cat": None, **{k: (1, 2) for k in ARITH}}.get(op, (1,))
    if (arity is None and not ins) or (arity is not None and len(ins) not in arity):
        raise damaged(f"node {i} ({op}) has {len(ins)} inputs")
    allowed = {"op", "in"}
    if op == "module":
        allowed.add("name")
        if node.get("name") not in names:
            raise damaged(f"node {i} uses an unknown layer {node.get('name')!r}")
    elif op in ARITH:
        allowed |= {"scalar", "reverse"}
        if (len(ins) == 1) != is_number(node.get("scalar")) or not isinstance(node.get("reverse", False), bool):
            raise damaged(f"node {i} ({op}) has operands {node!r:.120}")
    elif op == "cat":
        allowed.add("dim")
        if node.get("dim", 1) != 1:
            raise damaged(f"node {i} concatenates along {node.get('dim')!r}")
    elif op in ("pixel_shuffle", "pixel_unshuffle"):
        allowed.add("factor")
        f = node.get("factor")
        if not isinstance(f, int) or isinstance(f, bool) or not 1 <= f <= 64:
            raise damaged(f"node {i} ({op}) has factor {f!r}")
    elif op == "interpolate":
        allowed |= set(INTERP_KEYS)
        _check_ints([v for k, v in node.items() if k in INTERP_KEYS and not isinstance(v, str)], f"node {i}")
    elif op in RESHAPES:
        _check_reshape(i, node, allowed)
    elif op == "leaky_relu":
        allowed.add("negative_slope")
        if not is_number(node.get("negative_slope")):
            raise damaged(f"node {i} has slope {node.get('negative_slope')!r}")
    if set(node) - allowed:
        raise damaged(f"node {i} ({op}) has unknown fields {sorted(set(node) - allowed)}")


def _check_reshape(i: int, node: dict[str, Any], allowed: set[str]) -> None:
    if node["op"] == "unsqueeze":
        allowed.add("dim")
        dim = node.get("dim")
        if not isinstance(dim, int) or isinstance(dim, bool) or not -6 <= dim <= 6 or dim == 0:
            raise damaged(f"node {i} unsqueezes dimension {dim!r}")
        return
    allowed.add("shape")
    shape = node.get("shape")
    if not isinstance(shape, list) or not 0 < len(shape) <= 5 or shape.count(-1) > 1 or not all(
            isinstance(s, int) and not isinstance(s, bool) and (s == -1 or 0 < s <= 2**24) for s in shape):
        raise damaged(f"node {i} reshapes to {shape!r}")


def _place(root: nn.Module, name: str, module: nn.Module) -> None:
    *path, leaf = name.split(".")
    holder = root
    for part in path:
        child = holder._modules.get(part)
        if child is None:
            child = nn.Module()
            holder.add_module(part, child)
        elif type(child) is not nn.Module:
            raise damaged(f"layer {name} sits inside layer {part}")
        holder = child
    if leaf in holder._modules:
        raise damaged(f"layer {name} is declared twice or holds other layers")
    holder.add_module(leaf, module)


def validate_graph(graph: Any, input_shape: Any = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int]]:
    """Structural checks of a spec's ``graph`` (raises :class:`InputError`); nodes, modules, input shape."""
    if not isinstance(graph, dict):
        raise damaged("the graph is not a table")
    if graph.get("version") != GRAPH_VERSION:
        raise InputError(f"shrunk graph version {graph.get('version')!r} is not supported (this gancompress reads "
                         f"version {GRAPH_VERSION}); upgrade gancompress")
    body = {k: v for k, v in graph.items() if k != "digest"}
    try:
        digest = graph_digest(body)
    except (TypeError, ValueError) as exc:
        raise damaged(f"not plain JSON: {exc}") from None
    if graph.get("digest") != digest:
        raise damaged("its digest does not match its structure")
    nodes, descs, shape = graph.get("nodes"), graph.get("modules"), graph.get("input_shape")
    if set(body) != {"version", "input_shape", "nodes", "modules"}:
        raise damaged(f"unexpected fields {sorted(body)}")
    if not isinstance(shape, list) or not shape or not all(isinstance(s, int) and 0 < s <= 2**16 for s in shape):
        raise damaged(f"input shape {shape!r}")
    if input_shape is not None and list(input_shape) != shape:
        raise damaged(f"input shape {input_shape!r} differs from the graph's {shape!r}")
    if not isinstance(descs, list) or not all(isinstance(d, dict) and set(d) == {"name", "type", "args"}
                                              for d in descs):
        raise damaged("the layer table")
    names = [d["name"] for d in descs]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and _NAME.fullmatch(n) for n in names):
        raise damaged("layer names")
    for d in descs:
        _check_ints(list(d["args"].values()) if isinstance(d["args"], dict) else d["args"], f"layer {d['name']}")
    if not isinstance(nodes, list) or len(nodes) < 2:
        raise damaged("the node list")
    for i, node in enumerate(nodes):
        _check_node(i, node, set(names))
    if nodes[-1]["op"] != "output" or any(n["op"] == "output" for n in nodes[:-1]):
        raise damaged("the graph must end with its one output")
    uses: dict[str, int] = {}
    for node in nodes:
        if node["op"] == "module":
            uses[node["name"]] = uses.get(node["name"], 0) + 1
    for d in descs:
        kind = TYPES_BY_NAME.get(d["type"]) if isinstance(d["type"], str) else None
        if kind is None:
            raise damaged(f"unknown layer type {d['type']!r}")
        if uses.get(d["name"], 0) == 0 or (uses[d["name"]] > 1 and issubclass(kind, SITE_BOUND)):
            raise damaged(f"layer {d['name']} is used {uses.get(d['name'], 0)} times")
    return nodes, descs, shape


def _width_after(node: dict[str, Any], m: nn.Module | None, ws: list[int | None]) -> int | None:
    """Channels out of one node given its inputs' channels (None: not known before the graph runs, after
    a reshape); raises ValueError when they do not fit."""
    op = node["op"]
    if op == "labels":
        return 0
    if op == "reshape":
        return node["shape"][0] if node["shape"][0] > 0 else None
    if op == "unsqueeze" or (m is not None and node_kind(m) == "source"):
        return None
    if op == "cat":
        return None if None in ws else sum(ws)
    if None in ws:
        return getattr(m, WEIGHT_LAYERS[type(m)].out_attr) if m is not None and node_kind(m) == "producer" else None
    if op in ARITH and len(ws) == 2 and ws[0] != ws[1]:
        raise ValueError(f"{op} of {ws[0]} and {ws[1]} channels")
    factor = node.get("factor")
    if m is not None:
        kind = node_kind(m)
        if kind == "producer":
            wl = WEIGHT_LAYERS[type(m)]
            if getattr(m, wl.in_attr) != ws[0]:
                raise ValueError(f"{node['name']} takes {getattr(m, wl.in_attr)} channels, gets {ws[0]}")
            return getattr(m, wl.out_attr)
        if kind == "ones":
            return ws[0] + 1
        op, factor = kind, getattr(m, "upscale_factor", getattr(m, "downscale_factor", None))
        declared = [getattr(m, a) for a in per_channel(m)[1]] + ([m.value.shape[0]] if isinstance(m, ConstantMap) else [])
        if any(d != ws[0] for d in declared):
            raise ValueError(f"{node['name']} is {declared[0]} channels wide, gets {ws[0]}")
    if op in ("shuffle", "pixel_shuffle"):
        if ws[0] % factor**2:
            raise ValueError(f"pixel shuffle by {factor} of {ws[0]} channels")
        return ws[0] // factor**2
    if op in ("unshuffle", "pixel_unshuffle"):
        return ws[0] * factor**2
    return ws[0]


def _check_widths(nodes: list[dict[str, Any]], mods: dict[str, nn.Module], shape: list[int]) -> None:
    widths: list[int | None] = [shape[0]]
    for i, node in enumerate(nodes[1:-1], start=1):
        try:
            widths.append(_width_after(node, mods.get(node.get("name", "")), [widths[j] for j in node.get("in", [])]))
        except ValueError as exc:
            raise damaged(f"node {i}: {exc}") from None


class ShrunkGraph(nn.Module):
    """A shrunk generator rebuilt from the ``graph`` of its ``shrunk:`` spec (validated)."""

    def __init__(self, graph: dict[str, Any], input_shape: list[int] | None = None) -> None:
        super().__init__()
        nodes, descs, shape = validate_graph(graph, input_shape)
        with torch.device("meta"):  # shapes and sizes first, nothing allocated
            meta = {d["name"]: construct(d) for d in descs}
        numel = sum(t.numel() for m in meta.values() for t in [*m.parameters(), *m.buffers()])
        if numel > 2**31:
            raise damaged(f"{numel:,} weights")
        _check_widths(nodes, meta, shape)
        free = last_uses(nodes)
        for d in descs:
            _place(self, d["name"], construct(d))
        self._nodes = nodes
        self._free = free
        self._mods = [self.get_submodule(n["name"]) if n["op"] == "module" else None for n in nodes]
        self.input_shape = tuple(shape)
        self.conditional = any(n["op"] == "labels" for n in nodes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional and labels is None:
            raise InputError("this shrunk generator is class-conditional: call it as model(z, labels) with one "
                             "integer label per sample")
        return run_graph(self._nodes, self._mods, x, self._free, labels)


# ----------------------------------------------------------------------------- the architecture


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
    """Build a shrunk generator from its ``graph`` (or, in files from before the graph path, its layer list);
    ``contract``: what a user's network declared (docs/custom_networks.md), applied to the rebuilt one."""
    from ..archs.contract import apply_contract

    if graph is not None:
        module: nn.Module = ShrunkGraph(graph, input_shape)
    elif not isinstance(layers, list) or not isinstance(container, str):
        raise InputError("the shrunk architecture spec has neither a layer list nor a graph; it is damaged, "
                         "export the generator again")
    else:
        modules = [construct(d) for d in layers]
        module = ShrunkGenerator(container, modules) if container else nn.Sequential(*modules)
    if contract is not None and not isinstance(contract, dict):
        raise damaged("its contract is not a JSON object")
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
