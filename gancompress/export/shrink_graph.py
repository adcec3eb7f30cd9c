"""``--format shrunk`` for generators with skip connections (ResNet, U-Net, RRDBNet).

The generator is traced with ``torch.fx`` into a small whitelisted graph: modules (convs,
norms, activations, paddings, pixel (un)shuffle, ...) and functions (``+ - * /`` with a
tensor or a number, ``torch.cat`` on channels, ``interpolate``, pixel (un)shuffle, a few
activations). In-place activations are rewritten so later readers of their input read their
output (what actually happens at run time, e.g. the U-Net skip sees LeakyReLU's output).

Channels. Every (tensor, channel) pair is a node of a union-find: per-channel ops link their
input and output channel, an addition (or any tensor-tensor op) links the channel of both
operands and of the result, a concatenation links each input channel to its offset in the
output, pixel (un)shuffle link a channel to its ``r*r`` sub-channels. Convs/linears are the
boundaries. A *class* of linked channels is removed as a whole, or kept as a whole.

Constants. A producer's output channel is *constant* when its filter is zero on every
non-constant input (a pruned filter: it outputs its bias); per-channel ops keep constants
constant, a sum is constant when all its addends are. One batch-1 run at the traced size
records each constant channel's value (a number when spatially uniform, else a map). A
norm that uses instance (or batch) statistics maps a uniform channel to exactly its shift
(0 without affine): it is set so, not to the rounding noise ``x - mean(x)`` amplifies.

A class can go when every member is constant, none is the graph's input or output, and
every consumer can absorb what the removed channels contributed, exactly:

* all-zero values contribute nothing (the usual case after InstanceNorm + ReLU);
* uniform values contribute ``conv(ones, sum_c v_c W[:, c])``: folded into the consumer's
  bias when that is spatially uniform, else kept as ONE extra input channel of ones
  (:class:`OnesChannel`) carrying that summed weight, which is exact at every input size,
  for zero padding, strides and transposed convolutions alike;
* non-uniform values: folded when their contribution is uniform; noise-input generators
  (fixed feature sizes) add it as a :class:`~.shrink.ConstantMap`; otherwise the class stays.

Every node keeps at least one channel. The result is rebuilt from its spec alone, like
``load()`` does, and checked against the masked model at the traced size and (image
inputs) at a second size; a difference beyond tolerance refuses the export.

The spec (``shrunk:<base>`` with a ``graph``) is JSON: nodes (op, inputs, numbers), module
descriptions (type name + constructor arguments from a fixed table) and a SHA-256 digest of
both. No pickles, no code. Modules keep their original names, so the state-dict keys are the
original ones with smaller shapes.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import operator
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from ..errors import GanCompressError, InputError
from .shrink import LAYER_TYPES, ConstantMap, LayerType, ShrinkReport, _attrs, per_channel

GRAPH_VERSION = 1
TOLERANCE = 1e-5  # refuse a shrunk network whose output differs more than this (times max(1, |output|))
UNIFORM_RTOL = 1e-6  # a constant map whose spread is below this (relative) is one number
_ADVICE = "use --format dense (or sparse): both export the pruned generator exactly"


class OnesChannel(nn.Module):
    """Appends one channel of ones: the exact stand-in for removed uniform constant channels.

    The next conv's weight for it is ``sum_c v_c W[:, c]`` over the removed channels ``c`` of
    value ``v_c``, so zero padding, strides and transposed convs see what they saw before.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.ones_like(x[:, :1])], 1)


GRAPH_TYPES: dict[type, LayerType] = {
    **LAYER_TYPES,
    nn.Upsample: LayerType(_attrs("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor")),
    nn.PixelShuffle: LayerType(_attrs("upscale_factor")),
    nn.PixelUnshuffle: LayerType(_attrs("downscale_factor")),
    nn.ReLU6: LayerType(lambda m: {}),
    nn.ELU: LayerType(_attrs("alpha")),
    nn.SiLU: LayerType(lambda m: {}),
    nn.GELU: LayerType(_attrs("approximate")),
    OnesChannel: LayerType(lambda m: {}),
}
GRAPH_TYPES_BY_NAME = {t.__name__: t for t in GRAPH_TYPES}
_SITE_BOUND = tuple(t for t, lt in GRAPH_TYPES.items()  # modules whose state or widths belong to one call site
                    if lt.out_dim is not None or lt.channel_params or lt.width_args)

_ARITH = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}
_UNARY = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
_INTERP_KEYS = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")
OPS = ("input", "output", "module", "cat", "pixel_shuffle", "pixel_unshuffle", "interpolate", "leaky_relu",
       *_ARITH, *_UNARY)
_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")


def _refuse(what: str) -> InputError:
    return InputError(f"--format shrunk cannot shrink this generator: {what}; {_ADVICE}")


def _kind(m: nn.Module) -> str:
    if isinstance(m, OnesChannel):
        return "ones"
    if isinstance(m, nn.PixelShuffle):
        return "shuffle"
    if isinstance(m, nn.PixelUnshuffle):
        return "unshuffle"
    return "producer" if GRAPH_TYPES[type(m)].out_dim is not None else "channel"


def describe(m: nn.Module) -> dict[str, Any]:
    args = GRAPH_TYPES[type(m)].args(m)
    return {"type": type(m).__name__, "args": {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}}


def construct(desc: dict[str, Any]) -> nn.Module:
    kind = GRAPH_TYPES_BY_NAME.get(desc.get("type", "")) if isinstance(desc.get("type"), str) else None
    if kind is None:
        raise _damaged(f"unknown layer type {desc.get('type')!r}")
    args = desc.get("args", {})
    if not isinstance(args, dict):
        raise _damaged(f"arguments of {desc.get('type')} are not a table")
    args = {k: tuple(v) if isinstance(v, list) and k != "shape" else v for k, v in args.items()}
    try:
        return kind(**args)
    except Exception as exc:  # a wrong argument may fail anywhere in a constructor
        raise _damaged(f"cannot build {desc['type']} from {args}: {exc}") from None


# ----------------------------------------------------------------------------- tracing


@dataclass
class Graph:
    """Whitelisted nodes (JSON-ready dicts; ``in`` holds earlier node indices) and modules by name."""

    nodes: list[dict[str, Any]]
    modules: dict[str, nn.Module]


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m) in GRAPH_TYPES or super().is_leaf_module(m, qualname)


def _trace(model: nn.Module) -> fx.Graph:
    try:
        return _Tracer().trace(model)
    except Exception as exc:  # data-dependent control flow and friends
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _refuse(f"torch.fx cannot trace {type(model).__name__} ({msg[:200]})") from None


def _inplace(node: fx.Node, model: nn.Module) -> bool:
    if node.op == "call_module":
        return bool(getattr(model.get_submodule(node.target), "inplace", False))
    if node.op == "call_method":
        return node.target.endswith("_") and not node.target.startswith("_")
    if node.op == "call_function":
        flag = node.kwargs.get("inplace", False)
        if node.target in (F.relu, torch.relu) and len(node.args) > 1:
            flag = node.args[1]
        if node.target is F.leaky_relu and len(node.args) > 2:
            flag = node.args[2]
        return flag is True
    return False


def _undo_inplace(graph: fx.Graph, model: nn.Module) -> None:
    """Readers of an in-place op's input that run after it read its output instead."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    for node in list(graph.nodes):
        if not _inplace(node, model) or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        src = node.args[0]
        for user in list(src.users):
            if user is not node and order[user] > order[node]:
                user.replace_input_with(src, node)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _json_value(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_json_value(x) for x in v]
    if v is None or isinstance(v, (bool, str)) or _number(v):
        return v
    raise _refuse(f"an argument {v!r} that is not a plain number")


_FUNCTIONS: dict[Any, str] = {
    operator.add: "add", torch.add: "add", operator.sub: "sub", torch.sub: "sub", operator.mul: "mul",
    torch.mul: "mul", operator.truediv: "div", torch.div: "div", torch.cat: "cat", torch.concat: "cat",
    torch.pixel_shuffle: "pixel_shuffle", torch.pixel_unshuffle: "pixel_unshuffle", F.interpolate: "interpolate",
    F.relu: "relu", torch.relu: "relu", F.leaky_relu: "leaky_relu", torch.tanh: "tanh", F.tanh: "tanh",
    torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
}
_METHODS = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "relu": "relu", "tanh": "tanh",
            "sigmoid": "sigmoid", "add_": "add", "mul_": "mul", "relu_": "relu"}


def _call_node(fxn: fx.Node, index: dict[fx.Node, int]) -> dict[str, Any]:
    """One whitelisted function/method call as a node dict."""
    name = (_FUNCTIONS.get(fxn.target) if fxn.op == "call_function" else _METHODS.get(fxn.target))
    label = getattr(fxn.target, "__name__", str(fxn.target))
    if name is None:
        raise _refuse(f"operation {label!r} is not supported")
    args, kwargs = list(fxn.args), {k: v for k, v in fxn.kwargs.items() if k != "inplace"}

    def ref(v: Any) -> int:
        if not isinstance(v, fx.Node):
            raise _refuse(f"{label} takes {v!r} where a tensor is expected")
        return index[v]

    if name in _ARITH:
        if kwargs or len(args) != 2:
            raise _refuse(f"{label} with arguments {fxn.args} {fxn.kwargs}")
        a, b = args
        if isinstance(a, fx.Node) and isinstance(b, fx.Node):
            return {"op": name, "in": [ref(a), ref(b)]}
        if isinstance(a, fx.Node) and _number(b):
            return {"op": name, "in": [ref(a)], "scalar": float(b)}
        if isinstance(b, fx.Node) and _number(a):
            return {"op": name, "in": [ref(b)], "scalar": float(a), "reverse": True}
        raise _refuse(f"{label} of {a!r} and {b!r}")
    if name == "cat":
        tensors = args[0] if args else kwargs.pop("tensors", None)
        dim = args[1] if len(args) > 1 else kwargs.pop("dim", 0)
        if kwargs or not isinstance(tensors, (list, tuple)) or not tensors or not isinstance(dim, int):
            raise _refuse(f"torch.cat with arguments {fxn.args} {fxn.kwargs}")
        return {"op": "cat", "in": [ref(t) for t in tensors], "dim": dim}
    if name in ("pixel_shuffle", "pixel_unshuffle"):
        key = "upscale_factor" if name == "pixel_shuffle" else "downscale_factor"
        factor = args[1] if len(args) > 1 else kwargs.pop(key, None)
        if not isinstance(factor, int) or factor < 1 or len(args) > 2 or kwargs:
            raise _refuse(f"{name} with arguments {fxn.args} {fxn.kwargs}")
        return {"op": name, "in": [ref(args[0])], "factor": factor}
    if name == "interpolate":
        params = dict(zip(_INTERP_KEYS, args[1:]))
        if len(args) > 1 + len(_INTERP_KEYS) or set(kwargs) - set(_INTERP_KEYS) or set(kwargs) & set(params):
            raise _refuse(f"interpolate with arguments {fxn.args} {fxn.kwargs}")
        params.update(kwargs)
        return {"op": "interpolate", "in": [ref(args[0])], **{k: _json_value(v) for k, v in params.items()}}
    if name == "leaky_relu":
        slope = args[1] if len(args) > 1 else kwargs.pop("negative_slope", 0.01)
        if not _number(slope) or kwargs or len(args) > 3 or any(not isinstance(a, bool) for a in args[2:]):
            raise _refuse(f"leaky_relu with arguments {fxn.args} {fxn.kwargs}")
        return {"op": "leaky_relu", "in": [ref(args[0])], "negative_slope": float(slope)}
    if not args or any(not isinstance(a, bool) for a in args[1:]) or kwargs:  # F.relu(x, True): in place
        raise _refuse(f"{label} with arguments {fxn.args} {fxn.kwargs}")
    return {"op": name, "in": [ref(args[0])]}


def _check_module(name: str, m: nn.Module) -> None:
    if type(m) not in GRAPH_TYPES:
        raise _refuse(f"layer {name} ({type(m).__name__}) is not supported")
    if getattr(m, "groups", 1) != 1:
        raise _refuse(f"layer {name} is a grouped convolution")
    if list(getattr(m, "parametrizations", {})) or m._forward_pre_hooks or m._forward_hooks:
        raise _refuse(f"layer {name} is parametrized or hooked (spectral/weight norm)")
    if isinstance(m, nn.ConvTranspose2d) and m.padding_mode != "zeros":
        raise _refuse(f"layer {name} pads a transposed convolution with {m.padding_mode!r}")


def graph_of(model: nn.Module) -> Graph:
    """The whitelisted graph of ``model`` (modules deep-copied, in eval mode, not in place)."""
    traced = _trace(model)
    _undo_inplace(traced, model)
    for fxn in reversed(list(traced.nodes)):  # drop results nobody reads
        if fxn.op not in ("placeholder", "output") and not fxn.users:
            traced.erase_node(fxn)
    nodes: list[dict[str, Any]] = []
    modules: dict[str, nn.Module] = {}
    uses: dict[str, int] = {}
    index: dict[fx.Node, int] = {}
    for fxn in traced.nodes:
        if fxn.op == "placeholder":
            if nodes:
                raise _refuse("it takes more than one input")
            nodes.append({"op": "input"})
        elif fxn.op == "output":
            out = fxn.args[0]
            if not isinstance(out, fx.Node):
                raise _refuse("it returns more than one tensor")
            nodes.append({"op": "output", "in": [index[out]]})
        elif fxn.op == "call_module":
            m = model.get_submodule(fxn.target)
            _check_module(fxn.target, m)
            if len(fxn.args) != 1 or fxn.kwargs or not isinstance(fxn.args[0], fx.Node):
                raise _refuse(f"layer {fxn.target} is called with {len(fxn.args)} arguments")
            uses[fxn.target] = uses.get(fxn.target, 0) + 1
            if uses[fxn.target] > 1 and isinstance(m, _SITE_BOUND):
                raise _refuse(f"layer {fxn.target} ({type(m).__name__}) is used more than once")
            if fxn.target not in modules:
                modules[fxn.target] = copy.deepcopy(m).eval()
                if hasattr(modules[fxn.target], "inplace"):
                    modules[fxn.target].inplace = False
            nodes.append({"op": "module", "name": fxn.target, "in": [index[fxn.args[0]]]})
        elif fxn.op in ("call_function", "call_method"):
            nodes.append(_call_node(fxn, index))
        else:
            raise _refuse(f"it reads tensor {fxn.target!r} directly ({fxn.op})")
        index[fxn] = len(nodes) - 1
    if not nodes or nodes[0]["op"] != "input" or nodes[-1]["op"] != "output":
        raise _refuse("its traced graph has no single input and output")
    return Graph(nodes, modules)


# ----------------------------------------------------------------------------- running


def _apply(node: dict[str, Any], module: nn.Module | None, xs: list[torch.Tensor]) -> torch.Tensor:
    """Evaluate one (non input/output) node."""
    op = node["op"]
    if op == "module":
        return module(xs[0])
    if op in _ARITH:
        if len(xs) == 2:
            return _ARITH[op](xs[0], xs[1])
        s = node["scalar"]
        return _ARITH[op](s, xs[0]) if node.get("reverse") else _ARITH[op](xs[0], s)
    if op == "cat":
        return torch.cat(xs, node.get("dim", 1))
    if op == "pixel_shuffle":
        return F.pixel_shuffle(xs[0], node["factor"])
    if op == "pixel_unshuffle":
        return F.pixel_unshuffle(xs[0], node["factor"])
    if op == "interpolate":
        return F.interpolate(xs[0], **{k: tuple(v) if isinstance(v, list) else v
                                       for k, v in node.items() if k in _INTERP_KEYS})
    if op == "leaky_relu":
        return F.leaky_relu(xs[0], node["negative_slope"])
    return _UNARY[op](xs[0])


def _last_uses(nodes: list[dict[str, Any]]) -> dict[int, list[int]]:
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
              free: dict[int, list[int]]) -> torch.Tensor:
    vals: list[torch.Tensor | None] = [None] * len(nodes)
    vals[0] = x
    for i in range(1, len(nodes)):
        node = nodes[i]
        if node["op"] == "output":
            return vals[node["in"][0]]
        vals[i] = _apply(node, mods[i], [vals[j] for j in node["in"]])
        for j in free.get(i, ()):
            vals[j] = None
    raise InputError("the shrunk graph has no output node")


# ----------------------------------------------------------------------------- analysis


@dataclass
class _Channels:
    """What the batch-1 analysis run learned about one node's output channels."""

    shape: tuple[int, ...]
    const: torch.Tensor  # bool [C]: input-independent
    uniform: torch.Tensor  # bool [C]: constant and spatially uniform
    value: torch.Tensor  # [C]: the value of uniform channels
    maps: dict[int, torch.Tensor]  # non-uniform constant channels: their map


def _uses_batch_stats(m: nn.Module) -> bool:
    if isinstance(m, nn.InstanceNorm2d):
        return not (m.track_running_stats and m.running_mean is not None)
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return m.running_mean is None
    return False


def _producer_const(m: nn.Module, const_in: torch.Tensor) -> torch.Tensor:
    lt = GRAPH_TYPES[type(m)]
    w = m.weight.detach()
    nz = (w.movedim(lt.out_dim, 0).movedim(lt.in_dim if lt.in_dim > lt.out_dim else lt.in_dim + 1, 1)
          .reshape(w.shape[lt.out_dim], w.shape[lt.in_dim], -1) != 0).any(-1)
    return ~(nz & ~const_in[None, :]).any(1)


def _const_of(node: dict[str, Any], graph: Graph, infos: list[_Channels | None], width: int) -> torch.Tensor:
    op = node["op"]
    if op == "input":
        return torch.zeros(width, dtype=torch.bool)
    ins = [infos[j].const for j in node["in"]]
    if op == "module":
        m = graph.modules[node["name"]]
        kind = _kind(m)
        if kind == "producer":
            return _producer_const(m, ins[0])
        if kind == "ones":
            return torch.cat([ins[0], torch.zeros(1, dtype=torch.bool)])
        if kind == "shuffle":
            return ins[0].view(-1, m.upscale_factor ** 2).all(1)
        if kind == "unshuffle":
            return ins[0].repeat_interleave(m.downscale_factor ** 2)
        return ins[0].clone()
    if op == "cat":
        return torch.cat(ins)
    if op == "pixel_shuffle":
        return ins[0].view(-1, node["factor"] ** 2).all(1)
    if op == "pixel_unshuffle":
        return ins[0].repeat_interleave(node["factor"] ** 2)
    if op in _ARITH and len(ins) == 2:
        return ins[0] & ins[1]
    return ins[0].clone()


def _check_shapes(node: dict[str, Any], graph: Graph, xs: list[torch.Tensor]) -> None:
    op = node["op"]
    if any(not torch.is_tensor(x) or x.ndim < 2 or not x.is_floating_point() for x in xs):
        raise _refuse(f"a {op} node reads something that is not a floating (N, C, ...) tensor")
    if op in _ARITH and len(xs) == 2 and xs[0].shape != xs[1].shape:
        raise _refuse(f"a broadcasting {op} of shapes {tuple(xs[0].shape)} and {tuple(xs[1].shape)}")
    if op == "cat":
        ndim = xs[0].ndim
        if node["dim"] not in (1, 1 - ndim) or any(x.ndim != ndim for x in xs):
            raise _refuse(f"a concatenation along dim {node['dim']} (only channels are supported)")
        node["dim"] = 1
    if op == "module":
        m = graph.modules[node["name"]]
        want = {nn.Linear: 2, nn.Conv2d: 4, nn.ConvTranspose2d: 4, nn.BatchNorm2d: 4, nn.InstanceNorm2d: 4}.get(type(m))
        if want is not None and xs[0].ndim != want:
            raise _refuse(f"layer {node['name']} ({type(m).__name__}) gets a {xs[0].ndim}-d input")


def _settle(node: dict[str, Any], graph: Graph, infos: list[_Channels | None], y: torch.Tensor,
            const: torch.Tensor) -> tuple[torch.Tensor, _Channels]:
    """Record the constant channels of ``y``; make near-uniform ones exactly uniform."""
    width = y.shape[1]
    flat = y[0].reshape(width, -1)
    uniform = torch.zeros(width, dtype=torch.bool)
    value = torch.zeros(width, dtype=y.dtype)
    maps: dict[int, torch.Tensor] = {}
    if bool(const.any()) and flat.shape[1] > 0:
        idx = const.nonzero().flatten()
        lo, hi = torch.aminmax(flat, dim=1)
        lo, hi = lo[idx], hi[idx]
        exact = hi == lo
        near = exact | ((hi - lo) <= UNIFORM_RTOL * (1 + hi.abs() + lo.abs()))
        uniform[idx] = near
        value[idx] = hi
        rough = near & ~exact  # near-uniform: made exactly uniform at its mean
        if bool(rough.any()):
            value[idx[rough]] = flat[idx[rough]].double().mean(1).to(y.dtype)
        fix = torch.zeros(width, dtype=torch.bool)
        fix[idx[rough]] = True
        m = graph.modules.get(node.get("name", "")) if node["op"] == "module" else None
        if m is not None and _uses_batch_stats(m):
            snap = const & infos[node["in"][0]].uniform  # (v - mean(v)) * w + b with v uniform is exactly b
            shift = m.bias.detach().to(y.dtype) if m.bias is not None else torch.zeros(width, dtype=y.dtype)
            fix |= snap & ~(uniform & (value == shift))
            value = torch.where(snap, shift, value)
            uniform = uniform | snap
        value = torch.where(uniform, value, torch.zeros_like(value))
        for c in (const & ~uniform).nonzero().flatten().tolist():
            maps[c] = flat[c].clone().view(y.shape[2:])
        if bool(fix.any()):
            fidx = fix.nonzero().flatten()
            y = y.clone()
            y[0, fidx] = value[fidx].view(-1, *[1] * (y.ndim - 2)).expand(-1, *y.shape[2:])
    elif flat.shape[1] == 0:
        uniform = const.clone()
    return y, _Channels(tuple(y.shape), const, uniform, value, maps)


def _analyse(graph: Graph, input_shape: tuple[int, ...], dtype: torch.dtype) -> list[_Channels | None]:
    free = _last_uses(graph.nodes)
    x = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    vals: dict[int, torch.Tensor] = {}
    infos: list[_Channels | None] = []
    with torch.no_grad():
        for i, node in enumerate(graph.nodes):
            if node["op"] == "output":
                infos.append(None)
                continue
            if node["op"] == "input":
                y = x
            else:
                xs = [vals[j] for j in node["in"]]
                _check_shapes(node, graph, xs)
                try:
                    y = _apply(node, graph.modules.get(node.get("name", "")), xs)
                except Exception as exc:
                    raise _refuse(f"{node['op']} {node.get('name', '')} fails at input "
                                  f"{tuple(input_shape)} ({exc})") from None
            if not torch.is_tensor(y) or y.ndim < 2:
                raise _refuse(f"a {node['op']} node does not produce an (N, C, ...) tensor")
            y, info = _settle(node, graph, infos, y, _const_of(node, graph, infos, y.shape[1]))
            infos.append(info)
            vals[i] = y
            for j in free.get(i, ()):
                vals.pop(j, None)
    return infos


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        p = self.parent
        while p[a] != a:
            p[a] = p[p[a]]
            a = p[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _link(graph: Graph, widths: list[int]) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """Channel classes: (root of every (node, channel) element, node offsets, pinned elements)."""
    offsets = [0]
    for w in widths:
        offsets.append(offsets[-1] + w)
    uf = _UnionFind(offsets[-1])
    pinned = torch.zeros(offsets[-1], dtype=torch.bool)

    def tie(a: int, ca: int, b: int, cb: int) -> None:
        uf.union(offsets[a] + ca, offsets[b] + cb)

    for i, node in enumerate(graph.nodes):
        op, ins = node["op"], node.get("in", [])
        if op == "input":
            pinned[offsets[i]:offsets[i + 1]] = True
            continue
        if op == "output":
            pinned[offsets[ins[0]]:offsets[ins[0] + 1]] = True
            continue
        m = graph.modules[node["name"]] if op == "module" else None
        kind = _kind(m) if m is not None else op
        if kind == "producer":
            continue
        if kind == "cat":
            off = 0
            for j in ins:
                for c in range(widths[j]):
                    tie(j, c, i, off + c)
                off += widths[j]
        elif kind in ("shuffle", "pixel_shuffle", "unshuffle", "pixel_unshuffle"):
            r2 = (m.upscale_factor ** 2 if kind == "shuffle" else m.downscale_factor ** 2 if kind == "unshuffle"
                  else node["factor"] ** 2)
            small, big = (i, ins[0]) if kind in ("shuffle", "pixel_shuffle") else (ins[0], i)
            for c in range(widths[small]):
                for k in range(r2):
                    tie(small, c, big, c * r2 + k)
        else:  # per-channel ops, tensor-tensor arithmetic, OnesChannel (its extra channel stays alone)
            for j in ins:
                for c in range(widths[j]):
                    tie(j, c, i, c)
            if kind == "ones":
                pinned[offsets[i + 1] - 1] = True
    roots = torch.tensor([uf.find(e) for e in range(offsets[-1])], dtype=torch.long)
    return roots, offsets, pinned


def _conv_of(m: nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """What producer ``m`` computes from ``x`` with weight ``w`` and no bias."""
    if isinstance(m, nn.Conv2d):
        return m._conv_forward(x, w, None)
    if isinstance(m, nn.ConvTranspose2d):
        return F.conv_transpose2d(x, w, None, m.stride, m.padding, m.output_padding, m.groups, m.dilation)
    return F.linear(x, w)


def _spread_ok(t: torch.Tensor) -> torch.Tensor:
    """Per channel of a (1, C, ...) tensor: spatially uniform within tolerance."""
    flat = t[0].reshape(t.shape[1], -1)
    if flat.shape[1] == 0:
        return torch.ones(t.shape[1], dtype=torch.bool)
    hi, lo = flat.max(1).values, flat.min(1).values
    return (hi - lo) <= UNIFORM_RTOL * (1 + hi.abs() + lo.abs())


def _map_input(info: _Channels, chans: list[int]) -> torch.Tensor:
    """(1, len(chans), *spatial) values of constant channels ``chans``."""
    out = torch.empty(1, len(chans), *info.shape[2:], dtype=info.value.dtype)
    for k, c in enumerate(chans):
        out[0, k] = info.maps[c] if c in info.maps else info.value[c]
    return out


@dataclass
class _Plan:
    keep: list[torch.Tensor | None]  # kept channel indices per node
    drop: list[torch.Tensor | None]  # bool [C] removed channels per node
    kept_for_exactness: int


def _plan(graph: Graph, infos: list[_Channels | None], fixed: bool) -> _Plan:
    widths = [len(info.const) if info is not None else 0 for info in infos]
    roots, offsets, pinned = _link(graph, widths)
    const = torch.cat([torch.zeros(0, dtype=torch.bool)] + [info.const for info in infos if info is not None])
    bad = torch.zeros(offsets[-1], dtype=torch.bool)
    bad[roots[~const | pinned]] = True
    # classes with non-uniform constant values: their contribution must fold (or be a map at fixed sizes)
    for q, node in enumerate(graph.nodes):
        if fixed or node["op"] != "module" or _kind(graph.modules[node["name"]]) != "producer":
            continue
        src = node["in"][0]
        info, r = infos[src], roots[offsets[src]:offsets[src + 1]]
        odd = ~bad[r] & ~info.uniform
        m = graph.modules[node["name"]]
        lt = GRAPH_TYPES[type(m)]
        for root in r[odd].unique().tolist():
            chans = (r == root).nonzero().flatten()
            chans = chans[~info.uniform[chans]].tolist()
            with torch.no_grad():
                contrib = _conv_of(m, _map_input(info, chans), m.weight.detach().index_select(
                    lt.in_dim, torch.tensor(chans)))
            if not bool(_spread_ok(contrib).all()):
                bad[root] = True
    for i, w in enumerate(widths):  # every node keeps at least one channel
        r = roots[offsets[i]:offsets[i + 1]]
        if w and not bool(bad[r].any()):
            bad[r[0]] = True
    keep: list[torch.Tensor | None] = [None] * len(widths)
    drop: list[torch.Tensor | None] = [None] * len(widths)
    kept_const = 0
    for i, info in enumerate(infos):
        if info is None:
            continue
        drop[i] = ~bad[roots[offsets[i]:offsets[i + 1]]]
        keep[i] = (~drop[i]).nonzero().flatten()
        node = graph.nodes[i]
        if node["op"] == "module" and _kind(graph.modules[node["name"]]) == "producer":
            kept_const += int((info.const & ~drop[i]).sum())
    return _Plan(keep, drop, kept_const)


# ----------------------------------------------------------------------------- cutting


def _rebuild(m: nn.Module, changes: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    desc = describe(m)
    desc["args"].update(changes)
    new = construct(desc)
    new.load_state_dict(state)
    return new.eval()


def _cut_channels(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    params, widths = per_channel(m, GRAPH_TYPES[type(m)])
    sd = m.state_dict()
    for name in params:
        if name in sd:
            sd[name] = sd[name].index_select(0, keep)
    changes: dict[str, Any] = {k: len(keep) for k in widths}
    if isinstance(m, ConstantMap):
        changes["shape"] = [len(keep)] + list(m.value.shape[1:])
    return _rebuild(m, changes, sd)


@dataclass
class _Cut:
    module: nn.Module
    ones: bool
    cmap: torch.Tensor | None
    folded: bool


def _cut_producer(m: nn.Module, info: _Channels, keep_in: torch.Tensor, drop_in: torch.Tensor,
                  keep_out: torch.Tensor, fixed: bool) -> _Cut:
    lt = GRAPH_TYPES[type(m)]
    w = m.weight.detach()
    dropped = drop_in.nonzero().flatten()
    uni = [c for c in dropped.tolist() if bool(info.uniform[c]) and float(info.value[c]) != 0.0]
    odd = [c for c in dropped.tolist() if not bool(info.uniform[c])]
    delta = torch.zeros(w.shape[lt.out_dim], dtype=w.dtype)
    ones_w, cmap = None, None
    with torch.no_grad():
        if uni:
            idx = torch.tensor(uni)
            shape = [1] * w.ndim
            shape[lt.in_dim] = len(uni)
            summed = (w.index_select(lt.in_dim, idx) * info.value[idx].view(shape)).sum(lt.in_dim, keepdim=True)
            if isinstance(m, nn.Linear):
                delta += summed[:, 0]
            else:
                contrib = _conv_of(m, torch.ones(1, 1, *info.shape[2:], dtype=w.dtype), summed)
                if bool(_spread_ok(contrib.index_select(1, keep_out)).all()):
                    delta += contrib[0].reshape(contrib.shape[1], -1).mean(1)
                else:
                    ones_w = summed
        if odd:
            contrib = _conv_of(m, _map_input(info, odd), w.index_select(lt.in_dim, torch.tensor(odd)))
            if bool(_spread_ok(contrib.index_select(1, keep_out)).all()):
                delta += contrib[0].reshape(contrib.shape[1], -1).mean(1)
            else:  # fixed sizes (or caught by the check at a second size)
                cmap = contrib[0].index_select(0, keep_out)
    sd = {"weight": w.index_select(lt.out_dim, keep_out).index_select(lt.in_dim, keep_in)}
    if ones_w is not None:
        sd["weight"] = torch.cat([sd["weight"], ones_w.index_select(lt.out_dim, keep_out)], lt.in_dim)
    delta = delta.index_select(0, keep_out)
    folded = bool((delta != 0).any())
    if m.bias is not None or folded:
        base = m.bias.detach().index_select(0, keep_out) if m.bias is not None else torch.zeros_like(delta)
        sd["bias"] = base + delta
    side = "features" if isinstance(m, nn.Linear) else "channels"
    changes = {f"in_{side}": len(keep_in) + (ones_w is not None), f"out_{side}": len(keep_out), "bias": "bias" in sd}
    return _Cut(_rebuild(m, changes, sd), ones_w is not None, cmap, folded)


def _fresh(name: str, taken: set[str]) -> str:
    out, k = name, 1
    while out in taken or any(t.startswith(out + ".") for t in taken):
        k += 1
        out = f"{name}{k}"
    return out


def _cut(graph: Graph, infos: list[_Channels | None], plan: _Plan, fixed: bool,
         report: ShrinkReport) -> Graph:
    nodes: list[dict[str, Any]] = []
    modules: dict[str, nn.Module] = {}
    taken = set(graph.modules)
    ones_name: str | None = None
    remap: dict[int, int] = {}
    for i, node in enumerate(graph.nodes):
        ins = [remap[j] for j in node.get("in", [])]
        new = {**node, **({"in": ins} if "in" in node else {})}
        if node["op"] == "module":
            name = node["name"]
            m = graph.modules[name]
            kind = _kind(m)
            if kind == "producer":
                src = node["in"][0]
                cut = _cut_producer(m, infos[src], plan.keep[src], plan.drop[src], plan.keep[i], fixed)
                report.removed += int(plan.drop[i].sum())
                if cut.ones:
                    if ones_name is None:
                        ones_name = _fresh("ones", taken)
                        taken.add(ones_name)
                        modules[ones_name] = OnesChannel()
                    nodes.append({"op": "module", "name": ones_name, "in": ins})
                    new["in"] = [len(nodes) - 1]
                    report.ones_channels += 1
                report.folded_into_bias += int(cut.folded)
                modules[name] = cut.module
                if cut.cmap is not None:
                    nodes.append(new)
                    cname = _fresh(name + "_const", taken)
                    taken.add(cname)
                    cmap = ConstantMap(list(cut.cmap.shape))
                    cmap.value.copy_(cut.cmap)
                    modules[cname] = cmap
                    new = {"op": "module", "name": cname, "in": [len(nodes) - 1]}
                    report.constant_maps += 1
            elif name not in modules:
                modules[name] = _cut_channels(m, plan.keep[i]) if kind == "channel" else _rebuild(m, {}, m.state_dict())
        nodes.append(new)
        remap[i] = len(nodes) - 1
    return Graph(nodes, modules)


# ----------------------------------------------------------------------------- the spec


def _damaged(why: str) -> InputError:
    return InputError(f"the shrunk architecture spec is damaged or was edited ({why}); export the generator again")


def _digest(body: dict[str, Any]) -> str:
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
    return {**body, "digest": _digest(body)}


def _check_ints(value: Any, where: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or abs(value) > 2**20:
            raise _damaged(f"{where} holds {value!r}")
        return
    if isinstance(value, list):
        for v in value:
            _check_ints(v, where)
        return
    raise _damaged(f"{where} holds {value!r}")


def _check_node(i: int, node: Any, names: set[str]) -> None:
    if not isinstance(node, dict) or node.get("op") not in OPS:
        raise _damaged(f"node {i} is {node!r:.80}")
    op, ins = node["op"], node.get("in", [])
    if op == "input":
        if i != 0 or set(node) != {"op"}:
            raise _damaged(f"node {i} is an input")
        return
    if i == 0 or not isinstance(ins, list) or not all(isinstance(j, int) and not isinstance(j, bool) and 0 <= j < i
                                                       for j in ins):
        raise _damaged(f"node {i} ({op}) reads {ins!r}")
    arity = {"cat": None, **{k: (1, 2) for k in _ARITH}}.get(op, (1,))
    if (arity is None and not ins) or (arity is not None and len(ins) not in arity):
        raise _damaged(f"node {i} ({op}) has {len(ins)} inputs")
    allowed = {"op", "in"}
    if op == "module":
        allowed.add("name")
        if node.get("name") not in names:
            raise _damaged(f"node {i} uses an unknown layer {node.get('name')!r}")
    elif op in _ARITH:
        allowed |= {"scalar", "reverse"}
        if (len(ins) == 1) != _number(node.get("scalar")) or not isinstance(node.get("reverse", False), bool):
            raise _damaged(f"node {i} ({op}) has operands {node!r:.120}")
    elif op == "cat":
        allowed.add("dim")
        if node.get("dim", 1) != 1:
            raise _damaged(f"node {i} concatenates along {node.get('dim')!r}")
    elif op in ("pixel_shuffle", "pixel_unshuffle"):
        allowed.add("factor")
        f = node.get("factor")
        if not isinstance(f, int) or isinstance(f, bool) or not 1 <= f <= 64:
            raise _damaged(f"node {i} ({op}) has factor {f!r}")
    elif op == "interpolate":
        allowed |= set(_INTERP_KEYS)
        _check_ints([v for k, v in node.items() if k in _INTERP_KEYS and not isinstance(v, str)], f"node {i}")
    elif op == "leaky_relu":
        allowed.add("negative_slope")
        if not _number(node.get("negative_slope")):
            raise _damaged(f"node {i} has slope {node.get('negative_slope')!r}")
    if set(node) - allowed:
        raise _damaged(f"node {i} ({op}) has unknown fields {sorted(set(node) - allowed)}")


def _place(root: nn.Module, name: str, module: nn.Module) -> None:
    *path, leaf = name.split(".")
    holder = root
    for part in path:
        child = holder._modules.get(part)
        if child is None:
            child = nn.Module()
            holder.add_module(part, child)
        elif type(child) is not nn.Module:
            raise _damaged(f"layer {name} sits inside layer {part}")
        holder = child
    if leaf in holder._modules:
        raise _damaged(f"layer {name} is declared twice or holds other layers")
    holder.add_module(leaf, module)


def validate_graph(graph: Any, input_shape: Any = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int]]:
    """Structural checks of a spec's ``graph`` (raises :class:`InputError`); nodes, modules, input shape."""
    if not isinstance(graph, dict):
        raise _damaged("the graph is not a table")
    if graph.get("version") != GRAPH_VERSION:
        raise InputError(f"shrunk graph version {graph.get('version')!r} is not supported (this gancompress reads "
                         f"version {GRAPH_VERSION}); upgrade gancompress")
    body = {k: v for k, v in graph.items() if k != "digest"}
    try:
        digest = _digest(body)
    except (TypeError, ValueError) as exc:
        raise _damaged(f"not plain JSON: {exc}") from None
    if graph.get("digest") != digest:
        raise _damaged("its digest does not match its structure")
    nodes, descs, shape = graph.get("nodes"), graph.get("modules"), graph.get("input_shape")
    if set(body) != {"version", "input_shape", "nodes", "modules"}:
        raise _damaged(f"unexpected fields {sorted(body)}")
    if not isinstance(shape, list) or not shape or not all(isinstance(s, int) and 0 < s <= 2**16 for s in shape):
        raise _damaged(f"input shape {shape!r}")
    if input_shape is not None and list(input_shape) != shape:
        raise _damaged(f"input shape {input_shape!r} differs from the graph's {shape!r}")
    if not isinstance(descs, list) or not all(isinstance(d, dict) and set(d) == {"name", "type", "args"}
                                              for d in descs):
        raise _damaged("the layer table")
    names = [d["name"] for d in descs]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and _NAME.fullmatch(n) for n in names):
        raise _damaged("layer names")
    for d in descs:
        _check_ints(list(d["args"].values()) if isinstance(d["args"], dict) else d["args"], f"layer {d['name']}")
    if not isinstance(nodes, list) or len(nodes) < 2:
        raise _damaged("the node list")
    for i, node in enumerate(nodes):
        _check_node(i, node, set(names))
    if nodes[-1]["op"] != "output" or any(n["op"] == "output" for n in nodes[:-1]):
        raise _damaged("the graph must end with its one output")
    uses: dict[str, int] = {}
    for node in nodes:
        if node["op"] == "module":
            uses[node["name"]] = uses.get(node["name"], 0) + 1
    for d in descs:
        kind = GRAPH_TYPES_BY_NAME.get(d["type"]) if isinstance(d["type"], str) else None
        if kind is None:
            raise _damaged(f"unknown layer type {d['type']!r}")
        if uses.get(d["name"], 0) == 0 or (uses[d["name"]] > 1 and issubclass(kind, _SITE_BOUND)):
            raise _damaged(f"layer {d['name']} is used {uses.get(d['name'], 0)} times")
    return nodes, descs, shape


def _width_after(node: dict[str, Any], m: nn.Module | None, ws: list[int]) -> int:
    """Channels out of one node given its inputs' channels; raises ValueError when they do not fit."""
    op = node["op"]
    if op in _ARITH and len(ws) == 2 and ws[0] != ws[1]:
        raise ValueError(f"{op} of {ws[0]} and {ws[1]} channels")
    if op == "cat":
        return sum(ws)
    factor = node.get("factor")
    if m is not None:
        kind = _kind(m)
        lt = GRAPH_TYPES[type(m)]
        if kind == "producer":
            side = "features" if isinstance(m, nn.Linear) else "channels"
            if getattr(m, f"in_{side}") != ws[0]:
                raise ValueError(f"{node['name']} takes {getattr(m, f'in_{side}')} channels, gets {ws[0]}")
            return getattr(m, f"out_{side}")
        if kind == "ones":
            return ws[0] + 1
        op, factor = kind, getattr(m, "upscale_factor", getattr(m, "downscale_factor", None))
        declared = [getattr(m, a) for a in per_channel(m, lt)[1]] + ([m.value.shape[0]] if isinstance(m, ConstantMap) else [])
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
    widths = [shape[0]]
    for i, node in enumerate(nodes[1:-1], start=1):
        try:
            widths.append(_width_after(node, mods.get(node.get("name", "")), [widths[j] for j in node["in"]]))
        except ValueError as exc:
            raise _damaged(f"node {i}: {exc}") from None


class ShrunkGraph(nn.Module):
    """A shrunk generator rebuilt from the ``graph`` of its ``shrunk:`` spec (validated)."""

    def __init__(self, graph: dict[str, Any], input_shape: list[int] | None = None) -> None:
        super().__init__()
        nodes, descs, shape = validate_graph(graph, input_shape)
        with torch.device("meta"):  # shapes and sizes first, nothing allocated
            meta = {d["name"]: construct(d) for d in descs}
        numel = sum(t.numel() for m in meta.values() for t in [*m.parameters(), *m.buffers()])
        if numel > 2**31:
            raise _damaged(f"{numel:,} weights")
        _check_widths(nodes, meta, shape)
        free = _last_uses(nodes)
        for d in descs:
            _place(self, d["name"], construct(d))
        self._nodes = nodes
        self._free = free
        self._mods = [self.get_submodule(n["name"]) if n["op"] == "module" else None for n in nodes]
        self.input_shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_graph(self._nodes, self._mods, x, self._free)


# ----------------------------------------------------------------------------- entry points


def _dtype(model: nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def shrink_graph(model: nn.Module, input_shape: tuple[int, ...], fixed_size: bool) -> tuple[Graph, ShrinkReport]:
    """The shrunk graph of a masked, eval-mode generator and what was done."""
    graph = graph_of(model)
    infos = _analyse(graph, input_shape, _dtype(model))
    plan = _plan(graph, infos, fixed_size)
    report = ShrinkReport()
    producers = [i for i, n in enumerate(graph.nodes)
                 if n["op"] == "module" and _kind(graph.modules[n["name"]]) == "producer"]
    report.widths_before = [len(infos[i].const) for i in producers]
    report.widths_after = [len(plan.keep[i]) for i in producers]
    report.kept_for_exactness = plan.kept_for_exactness
    return _cut(graph, infos, plan, fixed_size, report), report


def build_graph(graph: Graph, input_shape: tuple[int, ...]) -> tuple[nn.Module, dict[str, Any]]:
    """The module exactly as ``load()`` rebuilds it from the spec, weights loaded; and the spec's graph."""
    spec = graph_spec(graph, input_shape)
    small = ShrunkGraph(json.loads(json.dumps(spec)), list(input_shape))
    state = {f"{name}.{k}": v for name, m in graph.modules.items() for k, v in m.state_dict().items()}
    small.load_state_dict(state, strict=True)
    return small.eval(), spec


def _second_shape(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    if len(shape) < 3:
        return []
    return [(shape[0], *[max(1, s // 2) for s in shape[1:]]), (shape[0], *[2 * s for s in shape[1:]])]


def verify(model: nn.Module, small: nn.Module, shape: tuple[int, ...], fixed: bool) -> float:
    """Max difference of ``small`` vs ``model`` on random inputs; refuses beyond tolerance."""
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    candidates = [shape] + ([] if fixed else _second_shape(shape))
    checked_other = False
    dtype = _dtype(model)
    for s in candidates:
        if s is not shape and checked_other:
            break
        x = torch.randn(1, *s, generator=gen).to(dtype)
        with torch.no_grad():
            try:
                a = model(x.clone())
            except Exception:  # a size the architecture does not take: try the next one
                if s is shape:
                    raise
                continue
            b = small(x.clone())
        checked_other = s is not shape
        err = float((a - b).abs().max()) if a.shape == b.shape else math.inf
        scale = max(1.0, float(a.abs().max()))
        if not err <= TOLERANCE * scale:
            raise GanCompressError(
                f"the shrunk generator differs from the pruned one by {err:.2e} at input {tuple(s)} "
                f"(tolerance {TOLERANCE * scale:.1e}); nothing was written; {_ADVICE}")
        worst = max(worst, err)
    return worst


def filter_groups(model: nn.Module, input_shape: tuple[int, ...]) -> list[list[tuple[str, int]]]:
    """Output filters that must be pruned together to be removable, as ``(layer name, index)`` lists.

    Filters joined by an addition (residual streams) share a group; every other filter is
    alone. A group-aware pruner that prunes whole groups lets ``--format shrunk`` remove them.
    """
    graph = graph_of(model.eval())
    infos = _analyse(graph, input_shape, _dtype(model))
    widths = [len(info.const) if info is not None else 0 for info in infos]
    roots, offsets, _ = _link(graph, widths)
    groups: dict[int, list[tuple[str, int]]] = {}
    for i, node in enumerate(graph.nodes):
        if node["op"] == "module" and _kind(graph.modules[node["name"]]) == "producer":
            for c in range(widths[i]):
                groups.setdefault(int(roots[offsets[i] + c]), []).append((node["name"], c))
    return list(groups.values())
