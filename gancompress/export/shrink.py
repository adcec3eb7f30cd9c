"""Physically smaller generators for filter (output-channel) pruning: ``--format shrunk``.

The generator is traced into the whitelisted graph of :mod:`gancompress.channels`, which
also finds the channel classes that must go together and the constant ones. A class can go
when every member is constant, none is the graph's input or output, and every consumer can
absorb what the removed channels contributed, exactly:

* all-zero values contribute nothing (the usual case after InstanceNorm + ReLU);
* uniform values contribute ``conv(ones, sum_c v_c W[:, c])``: folded into the consumer's
  bias when that is spatially uniform, else kept as ONE extra input channel of ones
  (:class:`~gancompress.formats.shrunk.OnesChannel`) carrying that summed weight, which is
  exact at every input size, for zero padding, strides and transposed convolutions alike;
* non-uniform values: folded when their contribution is uniform; noise-input generators
  (fixed feature sizes) add it as a :class:`~gancompress.formats.shrunk.ConstantMap`;
  otherwise the class stays.

Every node keeps at least one channel. The result is rebuilt from its spec alone, like
``load()`` does, and checked against the masked model at the traced size and (image
inputs) at a second size; a difference beyond tolerance refuses the export. Modules keep
their original names, so the state-dict keys are the original ones with smaller shapes.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..archs import ArchSpec
from ..channels import ADVICE, UNIFORM_RTOL, Channels, analyse, dtype_of, graph_of, link
from ..errors import GanCompressError, InputError
from ..generation import generator_input
from ..layer_table import weight_layer
from ..formats.shrunk import (LAYER_TYPES, ConstantMap, Graph, OnesChannel, ShrunkGraph, construct, describe,
                              ensure_shrunk_arch, graph_spec, node_kind, per_channel)

TOLERANCE = 1e-5  # refuse a shrunk network whose output differs more than this (times max(1, |output|))
VERIFY_BATCH = 3  # class-conditional: samples of distinct labels compared (a label branch that mixes the batch is caught)


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


def _normed(m: nn.Module) -> bool:
    from torch.nn.utils import parametrize
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    return parametrize.is_parametrized(m) or any(isinstance(h, (SpectralNorm, WeightNorm)) for h in m._forward_pre_hooks.values())


def bake_weight_norms(model: nn.Module) -> nn.Module:
    """``model`` with spectral and weight norms (hooks or parametrizations, as SN-GAN/SAGAN/BigGAN generators use
    them) folded into plain weights: the weights they give in eval mode (no power iteration), so the result
    computes what ``model.eval()`` computes. A copy when there is any; ``model`` itself when there is none."""
    from torch.nn.utils import parametrize, remove_spectral_norm, remove_weight_norm
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    if not any(_normed(m) for m in model.modules()):
        return model
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        for m in model.modules():
            if parametrize.is_parametrized(m):
                for name in list(m.parametrizations):
                    parametrize.remove_parametrizations(m, name, leave_parametrized=True)
            for hook in list(m._forward_pre_hooks.values()):
                if isinstance(hook, (SpectralNorm, WeightNorm)):
                    (remove_spectral_norm if isinstance(hook, SpectralNorm) else remove_weight_norm)(m, hook.name)
    return model


def shrink_generator(model: nn.Module, spec: ArchSpec | None) -> tuple[nn.Module, ArchSpec, ShrinkReport]:
    """A smaller generator equal (to ~1e-6) to the masked ``model``, and its ``shrunk:`` spec.

    What a user's network declares (docs/custom_networks.md) is recorded as ``contract`` and
    applied to the rebuilt network, which needs none of the user's code. A class-conditional
    generator's label branch becomes label tables (:mod:`gancompress.traced_inputs`). The forwards
    that trace and check it run on PyTorch's own kernels when a weight is large (see :func:`_large`)."""
    with torch.backends.mkldnn.flags(enabled=not _large(model)):
        return _shrink(model, spec)


def _shrink(model: nn.Module, spec: ArchSpec | None) -> tuple[nn.Module, ArchSpec, ShrinkReport]:
    from ..archs.contract import apply_contract, declared

    kind, shape = generator_input(model, spec)
    if hasattr(model, "shrunk_copy"):  # an architecture with its own exact channel surgery (StyleGAN2)
        return _own_rule(model.eval(), spec, shape)
    base = spec.name.split(":", 1)[-1] if spec.name.startswith("shrunk:") else spec.name
    fixed = kind == "noise"
    contract = declared(model)
    model = bake_weight_norms(model.eval())
    graph, report = shrink_graph(model, shape, fixed)
    small, gspec = build_graph(graph, shape)  # rebuilt from the spec alone, as load() will
    apply_contract(small, contract, "generator", "the shrunk generator")
    verify(model, small, shape, fixed)
    kwargs = {"graph": gspec, "input_shape": list(shape), "base": base,
              "base_kwargs": spec.kwargs.get("base_kwargs", spec.kwargs), "contract": contract}
    new_spec = ArchSpec(f"shrunk:{base}", kwargs)
    ensure_shrunk_arch(new_spec.name)
    return small, new_spec, report


def _own_rule(model: nn.Module, spec: ArchSpec, shape: tuple[int, ...]) -> tuple[nn.Module, ArchSpec, ShrinkReport]:
    """``model.shrunk_copy(kwargs) -> (small, kwargs, widths before, widths after)``: the same
    architecture, thinner; checked against the masked model like every shrunk export."""
    small, kwargs, before, after = model.shrunk_copy(dict(spec.kwargs))
    verify(model, small.eval(), shape, fixed=True)
    report = ShrinkReport(widths_before=before, widths_after=after, removed=sum(before) - sum(after))
    return small, ArchSpec(spec.name, kwargs), report


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


def _map_input(info: Channels, chans: list[int]) -> torch.Tensor:
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


def _plan(graph: Graph, infos: list[Channels | None], fixed: bool) -> _Plan:
    widths = [len(info.const) if info is not None else 0 for info in infos]
    roots, offsets, pinned = link(graph, widths)
    const = torch.cat([torch.zeros(0, dtype=torch.bool)] + [info.const for info in infos if info is not None])
    bad = torch.zeros(offsets[-1], dtype=torch.bool)
    bad[roots[~const | pinned]] = True
    # classes with non-uniform constant values: their contribution must fold (or be a map at fixed sizes)
    for q, node in enumerate(graph.nodes):
        if fixed or node["op"] != "module" or node_kind(graph.modules[node["name"]]) != "producer":
            continue
        src = node["in"][0]
        info, r = infos[src], roots[offsets[src]:offsets[src + 1]]
        odd = ~bad[r] & ~info.uniform
        m = graph.modules[node["name"]]
        lt = LAYER_TYPES[type(m)]
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
        if node["op"] == "module" and node_kind(graph.modules[node["name"]]) == "producer":
            kept_const += int((info.const & ~drop[i]).sum())
    return _Plan(keep, drop, kept_const)


def _rebuild(m: nn.Module, changes: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    desc = describe(m)
    desc["args"].update(changes)
    return _built_with(lambda: construct(desc), state).eval()


def _built_with(build, state: dict[str, torch.Tensor]) -> nn.Module:
    """``build()`` holding ``state``'s tensors as its own: built on the meta device and assigned, so
    no random initialisation and no second copy of the weights (a tensor whose dtype differs from
    the built one is cast, as ``load_state_dict`` would). Built for real when something it holds
    is not in ``state`` (a non-persistent buffer)."""
    with torch.device("meta"):
        module = build()
    own = module.state_dict()
    state = {k: v.to(own[k].dtype) if k in own and v.dtype != own[k].dtype else v for k, v in state.items()}
    module.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in (*module.parameters(), *module.buffers())):
        module = build()
        module.load_state_dict(state, strict=True)
    return module


def _cut_channels(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    params, widths = per_channel(m)
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


def _cut_producer(m: nn.Module, info: Channels, keep_in: torch.Tensor, drop_in: torch.Tensor,
                  keep_out: torch.Tensor, fixed: bool) -> _Cut:
    lt = LAYER_TYPES[type(m)]
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
    sd = {"weight": cut_weight(w, lt.out_dim, keep_out, lt.in_dim, keep_in)}
    if ones_w is not None:
        sd["weight"] = torch.cat([sd["weight"], ones_w.index_select(lt.out_dim, keep_out)], lt.in_dim)
    delta = delta.index_select(0, keep_out)
    folded = bool((delta != 0).any())
    if m.bias is not None or folded:
        base = m.bias.detach().index_select(0, keep_out) if m.bias is not None else torch.zeros_like(delta)
        sd["bias"] = base + delta
    wl = weight_layer(m)
    changes = {wl.in_attr: len(keep_in) + (ones_w is not None), wl.out_attr: len(keep_out), "bias": "bias" in sd}
    return _Cut(_rebuild(m, changes, sd), ones_w is not None, cmap, folded)


_CUT_SLICE = 1 << 22  # weights read at once while cutting


def cut_weight(w: torch.Tensor, out_dim: int, keep_out: torch.Tensor, in_dim: int, keep_in: torch.Tensor) -> torch.Tensor:
    """``w.index_select(out_dim, keep_out).index_select(in_dim, keep_in)``, a few output channels at a time: no
    intermediate holding the kept outputs' every input (half the largest layer at 50% filter pruning)."""
    shape = list(w.shape)
    shape[out_dim], shape[in_dim] = len(keep_out), len(keep_in)
    out = torch.empty(shape, dtype=w.dtype)
    step = max(1, _CUT_SLICE * w.shape[out_dim] // max(1, w.numel()))
    for start in range(0, len(keep_out), step):
        part = keep_out[start:start + step]
        out.narrow(out_dim, start, len(part)).copy_(w.index_select(out_dim, part).index_select(in_dim, keep_in))
    return out


def _fresh(name: str, taken: set[str]) -> str:
    out, k = name, 1
    while out in taken or any(t.startswith(out + ".") for t in taken):
        k += 1
        out = f"{name}{k}"
    return out


def _cut(graph: Graph, infos: list[Channels | None], plan: _Plan, fixed: bool,
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
            kind = node_kind(m)
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
        if node["op"] == "reshape" and node["shape"][0] > 0:  # an explicit channel count: the kept ones
            new["shape"] = [len(plan.keep[i]), *node["shape"][1:]]
        nodes.append(new)
        remap[i] = len(nodes) - 1
    return Graph(nodes, modules)


def shrink_graph(model: nn.Module, input_shape: tuple[int, ...], fixed_size: bool) -> tuple[Graph, ShrinkReport]:
    """The shrunk graph of a masked, eval-mode generator and what was done."""
    graph = graph_of(model, input_shape)
    infos = analyse(graph, input_shape, dtype_of(model))
    plan = _plan(graph, infos, fixed_size)
    report = ShrinkReport()
    producers = [i for i, n in enumerate(graph.nodes)
                 if n["op"] == "module" and node_kind(graph.modules[n["name"]]) == "producer"]
    report.widths_before = [len(infos[i].const) for i in producers]
    report.widths_after = [len(plan.keep[i]) for i in producers]
    report.kept_for_exactness = plan.kept_for_exactness
    return _cut(graph, infos, plan, fixed_size, report), report


def build_graph(graph: Graph, input_shape: tuple[int, ...]) -> tuple[nn.Module, dict[str, Any]]:
    """The module exactly as ``load()`` rebuilds it from the spec, weights loaded; and the spec's graph."""
    spec = graph_spec(graph, input_shape)
    state = {f"{name}.{k}": v for name, m in graph.modules.items() for k, v in m.state_dict().items()}
    small = _built_with(lambda: ShrunkGraph(json.loads(json.dumps(spec)), list(input_shape)), state)
    return small.eval(), spec


def _second_shape(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    if len(shape) < 3:
        return []
    return [(shape[0], *[max(1, s // 2) for s in shape[1:]]), (shape[0], *[2 * s for s in shape[1:]])]


def _labels(model: nn.Module, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Class-conditional: one batch of distinct labels (the batch of inputs is as long); else none."""
    classes = getattr(model, "num_classes", None)
    return (torch.randperm(classes, generator=gen)[:VERIFY_BATCH],) if classes else ()


def verify(model: nn.Module, small: nn.Module, shape: tuple[int, ...], fixed: bool) -> float:
    """Max difference of ``small`` vs ``model`` on a batch of random inputs (of distinct labels for a
    class-conditional generator); refuses beyond tolerance."""
    gen = torch.Generator().manual_seed(0)
    labels = _labels(model, gen)
    batch = len(labels[0]) if labels else 1
    worst = 0.0
    candidates = [shape] + ([] if fixed else _second_shape(shape))
    checked_other = False
    dtype = dtype_of(model)
    for s in candidates:
        if s is not shape and checked_other:
            break
        x = torch.randn(batch, *s, generator=gen).to(dtype)
        with torch.no_grad():
            try:
                a = model(x.clone(), *labels)
            except Exception:  # a size the architecture does not take: try the next one
                if s is shape:
                    raise
                continue
            b = small(x.clone(), *labels)
        checked_other = s is not shape
        err = float((a - b).abs().max()) if a.shape == b.shape else math.inf
        scale = max(1.0, float(a.abs().max()))
        if not err <= TOLERANCE * scale:
            raise GanCompressError(
                f"the shrunk generator differs from the pruned one by {err:.2e} at input {tuple(s)} "
                f"(tolerance {TOLERANCE * scale:.1e}); nothing was written; {ADVICE}")
        worst = max(worst, err)
    return worst


def _large(model: nn.Module) -> bool:
    """A weight over 2**24 elements: oneDNN would copy it into its blocked layout on each forward (a
    second copy of the biggest layer), so the check runs on PyTorch's own kernels instead."""
    return any(p.numel() > 2**24 for p in model.parameters())
