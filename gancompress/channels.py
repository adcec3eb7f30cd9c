"""Which channels of a generator go together, and which are constant: the torch.fx analysis
behind ``prune --coupled`` (:func:`filter_groups`) and ``--format shrunk`` (:mod:`gancompress.export.shrink`).

The generator is traced with ``torch.fx`` into a small whitelisted graph
(:class:`~gancompress.formats.shrunk.Graph`): modules (convs, norms, activations, paddings,
pixel (un)shuffle, ...) and functions (``+ - * /`` with a tensor or a number, ``torch.cat`` on
channels, ``interpolate``, pixel (un)shuffle, a few activations). In-place activations are
rewritten so later readers of their input read their output (what actually happens at run
time, e.g. the U-Net skip sees LeakyReLU's output).

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
"""
from __future__ import annotations

import copy
import operator
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from .formats.shrunk import (ARITH, LAYER_TYPES, INTERP_KEYS, RESHAPES, SITE_BOUND, Graph, LabelTable, apply_node,
                             is_number, last_uses, node_kind)
from .traced_inputs import ADVICE, Inputs, is_size, label_tables, module_reshape, refuse, regroup, reshape_node, \
    split_inputs

UNIFORM_RTOL = 1e-6  # a constant map whose spread is below this (relative) is one number


# ----------------------------------------------------------------------------- tracing


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m) in LAYER_TYPES or super().is_leaf_module(m, qualname)


def _trace(model: nn.Module) -> fx.Graph:
    try:
        return _Tracer().trace(model)
    except Exception as exc:  # data-dependent control flow and friends
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise refuse(f"torch.fx cannot trace {type(model).__name__} ({msg[:200]})") from None


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


def _json_value(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_json_value(x) for x in v]
    if v is None or isinstance(v, (bool, str)) or is_number(v):
        return v
    raise refuse(f"an argument {v!r} that is not a plain number")


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
        raise refuse(f"operation {label!r} is not supported")
    args, kwargs = list(fxn.args), {k: v for k, v in fxn.kwargs.items() if k != "inplace"}

    def ref(v: Any) -> int:
        if not isinstance(v, fx.Node):
            raise refuse(f"{label} takes {v!r} where a tensor is expected")
        return index[v]

    if name in ARITH:
        if kwargs or len(args) != 2:
            raise refuse(f"{label} with arguments {fxn.args} {fxn.kwargs}")
        a, b = args
        if isinstance(a, fx.Node) and isinstance(b, fx.Node):
            return {"op": name, "in": [ref(a), ref(b)]}
        if isinstance(a, fx.Node) and is_number(b):
            return {"op": name, "in": [ref(a)], "scalar": float(b)}
        if isinstance(b, fx.Node) and is_number(a):
            return {"op": name, "in": [ref(b)], "scalar": float(a), "reverse": True}
        raise refuse(f"{label} of {a!r} and {b!r}")
    if name == "cat":
        tensors = args[0] if args else kwargs.pop("tensors", None)
        dim = args[1] if len(args) > 1 else kwargs.pop("dim", 0)
        if kwargs or not isinstance(tensors, (list, tuple)) or not tensors or not isinstance(dim, int):
            raise refuse(f"torch.cat with arguments {fxn.args} {fxn.kwargs}")
        return {"op": "cat", "in": [ref(t) for t in tensors], "dim": dim}
    if name in ("pixel_shuffle", "pixel_unshuffle"):
        key = "upscale_factor" if name == "pixel_shuffle" else "downscale_factor"
        factor = args[1] if len(args) > 1 else kwargs.pop(key, None)
        if not isinstance(factor, int) or factor < 1 or len(args) > 2 or kwargs:
            raise refuse(f"{name} with arguments {fxn.args} {fxn.kwargs}")
        return {"op": name, "in": [ref(args[0])], "factor": factor}
    if name == "interpolate":
        params = dict(zip(INTERP_KEYS, args[1:]))
        if len(args) > 1 + len(INTERP_KEYS) or set(kwargs) - set(INTERP_KEYS) or set(kwargs) & set(params):
            raise refuse(f"interpolate with arguments {fxn.args} {fxn.kwargs}")
        params.update(kwargs)
        return {"op": "interpolate", "in": [ref(args[0])], **{k: _json_value(v) for k, v in params.items()}}
    if name == "leaky_relu":
        slope = args[1] if len(args) > 1 else kwargs.pop("negative_slope", 0.01)
        if not is_number(slope) or kwargs or len(args) > 3 or any(not isinstance(a, bool) for a in args[2:]):
            raise refuse(f"leaky_relu with arguments {fxn.args} {fxn.kwargs}")
        return {"op": "leaky_relu", "in": [ref(args[0])], "negative_slope": float(slope)}
    if not args or any(not isinstance(a, bool) for a in args[1:]) or kwargs:  # F.relu(x, True): in place
        raise refuse(f"{label} with arguments {fxn.args} {fxn.kwargs}")
    return {"op": name, "in": [ref(args[0])]}


def _check_module(name: str, m: nn.Module) -> None:
    if type(m) not in LAYER_TYPES:
        raise refuse(f"layer {name} ({type(m).__name__}) is not supported")
    if getattr(m, "groups", 1) != 1:
        raise refuse(f"layer {name} is a grouped convolution")
    if list(getattr(m, "parametrizations", {})) or m._forward_pre_hooks or m._forward_hooks:
        raise refuse(f"layer {name} is parametrized or hooked (spectral/weight norm)")
    if isinstance(m, nn.ConvTranspose2d) and m.padding_mode != "zeros":
        raise refuse(f"layer {name} pads a transposed convolution with {m.padding_mode!r}")


def graph_of(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> Graph:
    """The whitelisted graph of ``model`` (modules copied, in eval mode, not in place; their parameters and
    buffers are the model's own tensors, which nothing here writes). A class-conditional generator
    (``num_classes``, ``forward(z, labels)``) needs ``input_shape``: its label branch is tabulated."""
    traced = _trace(model)
    classes = getattr(model, "num_classes", None)
    inputs = split_inputs(traced, classes)
    tables = label_tables(model, traced, inputs.frontier, tuple(input_shape or ()), classes, dtype_of(model)) \
        if inputs.frontier else {}
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
            if fxn is inputs.z or (fxn is inputs.labels and tables):
                nodes.append({"op": "input" if fxn is inputs.z else "labels"})
        elif fxn in tables:
            name = _table_name(fxn.name, model, modules)
            modules[name] = _table(tables[fxn])
            nodes.append({"op": "module", "name": name, "in": [1]})
        elif fxn in inputs.skip or is_size(fxn):
            continue
        elif fxn.op == "output":
            out = fxn.args[0]
            if not isinstance(out, fx.Node):
                raise refuse("it returns more than one tensor")
            nodes.append({"op": "output", "in": [index[out]]})
        elif fxn.op == "call_module":
            nodes.append(_module_node(fxn, model, modules, uses, index))
        elif fxn.op in ("call_function", "call_method"):
            nodes.append(reshape_node(fxn, index) or _call_node(fxn, index))
        else:
            raise refuse(f"it reads tensor {fxn.target!r} directly ({fxn.op})")
        index[fxn] = len(nodes) - 1
    if not nodes or nodes[0]["op"] != "input" or nodes[-1]["op"] != "output":
        raise refuse("its traced graph has no single input and output")
    return Graph(nodes, modules)


def _table(value: torch.Tensor) -> LabelTable:
    table = LabelTable(value.shape[0], list(value.shape[1:]))
    table.value.copy_(value)
    return table.eval()


def _table_name(node_name: str, model: nn.Module, modules: dict[str, nn.Module]) -> str:
    """A layer name for a label table that no layer of ``model`` (or of the graph) uses or nests under."""
    taken = {n for n, _ in model.named_modules()} | set(modules)
    base = "label_" + "".join(c if c.isalnum() else "_" for c in node_name)
    out, k = base, 1
    while out in taken or any(t.startswith(out + ".") for t in taken):
        k += 1
        out = f"{base}{k}"
    return out


def _module_node(fxn: fx.Node, model: nn.Module, modules: dict[str, nn.Module], uses: dict[str, int],
                 index: dict[fx.Node, int]) -> dict[str, Any]:
    m = model.get_submodule(fxn.target)
    if len(fxn.args) != 1 or fxn.kwargs or not isinstance(fxn.args[0], fx.Node):
        raise refuse(f"layer {fxn.target} is called with {len(fxn.args)} arguments")
    reshaped = module_reshape(fxn.target, m, index[fxn.args[0]])
    if reshaped is not None:
        return reshaped
    _check_module(fxn.target, m)
    uses[fxn.target] = uses.get(fxn.target, 0) + 1
    if uses[fxn.target] > 1 and isinstance(m, SITE_BOUND):
        raise refuse(f"layer {fxn.target} ({type(m).__name__}) is used more than once")
    if fxn.target not in modules:
        shared = {id(t): t for t in (*m.parameters(), *m.buffers())}  # read only: no second copy of the weights
        modules[fxn.target] = copy.deepcopy(m, shared).eval()
        if hasattr(modules[fxn.target], "inplace"):
            modules[fxn.target].inplace = False
    return {"op": "module", "name": fxn.target, "in": [index[fxn.args[0]]]}


# ----------------------------------------------------------------------------- running


# ----------------------------------------------------------------------------- analysis


@dataclass
class Channels:
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
    lt = LAYER_TYPES[type(m)]
    w = m.weight.detach()
    nz = (w.movedim(lt.out_dim, 0).movedim(lt.in_dim if lt.in_dim > lt.out_dim else lt.in_dim + 1, 1)
          .reshape(w.shape[lt.out_dim], w.shape[lt.in_dim], -1) != 0).any(-1)
    return ~(nz & ~const_in[None, :]).any(1)


def _const_of(node: dict[str, Any], graph: Graph, infos: list[Channels | None], width: int) -> torch.Tensor:
    op = node["op"]
    if op in ("input", "labels"):
        return torch.zeros(width, dtype=torch.bool)
    ins = [infos[j].const for j in node["in"]]
    if op in RESHAPES:
        src, dst = regroup(len(ins[0]), width)  # an output channel is constant when all it takes from is
        const = torch.ones(width, dtype=torch.int8)
        return const.scatter_reduce_(0, dst, ins[0][src].to(torch.int8), "amin").bool()
    if op == "module":
        m = graph.modules[node["name"]]
        kind = node_kind(m)
        if kind == "source":  # a label table: depends on the labels
            return torch.zeros(width, dtype=torch.bool)
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
    if op in ARITH and len(ins) == 2:
        return ins[0] & ins[1]
    return ins[0].clone()


def _check_shapes(node: dict[str, Any], graph: Graph, xs: list[torch.Tensor]) -> None:
    op = node["op"]
    if op == "module" and node_kind(graph.modules[node["name"]]) == "source":
        return  # a label table reads the labels
    if any(not torch.is_tensor(x) or x.ndim < 2 or not x.is_floating_point() for x in xs):
        raise refuse(f"a {op} node reads something that is not a floating (N, C, ...) tensor")
    if op in ARITH and len(xs) == 2 and xs[0].shape != xs[1].shape:
        raise refuse(f"a broadcasting {op} of shapes {tuple(xs[0].shape)} and {tuple(xs[1].shape)}")
    if op == "cat":
        ndim = xs[0].ndim
        if node["dim"] not in (1, 1 - ndim) or any(x.ndim != ndim for x in xs):
            raise refuse(f"a concatenation along dim {node['dim']} (only channels are supported)")
        node["dim"] = 1
    if op == "module":
        m = graph.modules[node["name"]]
        want = {nn.Linear: 2, nn.Conv2d: 4, nn.ConvTranspose2d: 4, nn.BatchNorm2d: 4, nn.InstanceNorm2d: 4}.get(type(m))
        if want is not None and xs[0].ndim != want:
            raise refuse(f"layer {node['name']} ({type(m).__name__}) gets a {xs[0].ndim}-d input")


def _settle(node: dict[str, Any], graph: Graph, infos: list[Channels | None], y: torch.Tensor,
            const: torch.Tensor) -> tuple[torch.Tensor, Channels]:
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
    return y, Channels(tuple(y.shape), const, uniform, value, maps)


def analyse(graph: Graph, input_shape: tuple[int, ...], dtype: torch.dtype) -> list[Channels | None]:
    free = last_uses(graph.nodes)
    x = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    vals: dict[int, torch.Tensor] = {}
    infos: list[Channels | None] = []
    with torch.no_grad():
        for i, node in enumerate(graph.nodes):
            if node["op"] == "output":
                infos.append(None)
                continue
            if node["op"] == "labels":  # the class labels: no channels (read by label tables only)
                vals[i] = torch.zeros(1, dtype=torch.long)
                empty = torch.zeros(0, dtype=torch.bool)
                infos.append(Channels((1,), empty, empty, torch.zeros(0, dtype=dtype), {}))
                continue
            if node["op"] == "input":
                y = x
            else:
                xs = [vals[j] for j in node["in"]]
                _check_shapes(node, graph, xs)
                try:
                    y = apply_node(node, graph.modules.get(node.get("name", "")), xs)
                except Exception as exc:
                    raise refuse(f"{node['op']} {node.get('name', '')} fails at input "
                                  f"{tuple(input_shape)} ({exc})") from None
            if not torch.is_tensor(y) or y.ndim < 2:
                raise refuse(f"a {node['op']} node does not produce an (N, C, ...) tensor")
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


def link(graph: Graph, widths: list[int]) -> tuple[torch.Tensor, list[int], torch.Tensor]:
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
        kind = node_kind(m) if m is not None else op
        if kind in ("producer", "source", "labels"):
            continue
        if kind in RESHAPES:
            src, dst = regroup(widths[ins[0]], widths[i])
            for a, b in zip(src.tolist(), dst.tolist()):
                tie(ins[0], a, i, b)
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


# ----------------------------------------------------------------------------- cutting


# ----------------------------------------------------------------------------- the spec


# ----------------------------------------------------------------------------- entry points


def dtype_of(model: nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def filter_groups(model: nn.Module, input_shape: tuple[int, ...]) -> list[list[tuple[str, int]]]:
    """Output filters that must be pruned together to be removable, as ``(layer name, index)`` lists.

    Filters joined by an addition (residual streams) share a group; every other filter is
    alone. A group-aware pruner that prunes whole groups lets ``--format shrunk`` remove them.
    """
    if getattr(model, "num_classes", None) and getattr(model, "input_shape", None) is not None:
        input_shape = tuple(model.input_shape)  # traced at its latent's shape (the tool's packed input adds the label)
    graph = graph_of(model.eval(), input_shape)
    infos = analyse(graph, input_shape, dtype_of(model))
    widths = [len(info.const) if info is not None else 0 for info in infos]
    roots, offsets, _ = link(graph, widths)
    groups: dict[int, list[tuple[str, int]]] = {}
    for i, node in enumerate(graph.nodes):
        if node["op"] == "module" and node_kind(graph.modules[node["name"]]) == "producer":
            for c in range(widths[i]):
                groups.setdefault(int(roots[offsets[i] + c]), []).append((node["name"], c))
    return list(groups.values())
