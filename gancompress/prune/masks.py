"""Pruning configuration, mask computation over a model, reports and structure detection.

Masks are ``dict[param_name, BoolTensor]`` (True = keep) keyed by the full parameter name
(``"net.0.weight"``; ``"...weight_orig"`` / ``"...parametrizations.weight.original"`` for
spectral-/weight-normed layers, see :func:`.layers.weight_name`).

The sparsity is the fraction of ALL prunable weights that are zero afterwards: :mod:`.target`
settles which layers are pruned (the ``keep_dense`` policy of :mod:`.keep_dense`) and refuses
targets out of reach; :mod:`.allocation` spreads the zeros over the pruned layers.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..devices import cpu_copy
from ..errors import InputError
from .allocation import ALLOCATIONS, PlanAllocation, rank_layer
from .config import PruneConfig
from .granularity import GRANULARITIES, Granularity, nm_rows
from .importance import following_norms, norm_scale, scaled_weight, share_trace
from .layers import (CONV, Geometry, canonical_rows, geometry, is_prunable, layer_kind, module_geometry, param_key,
                     to_canonical, zero_rows)
from .whole_units import count_live


@dataclass
class _Entry:
    key: str
    weight: torch.Tensor
    geo: Geometry
    previous: torch.Tensor | None


def compute_masks(model: nn.Module, config: PruneConfig, previous: dict[str, torch.Tensor] | None = None, *,
                  final: bool = True, plan=None) -> dict[str, torch.Tensor]:
    """Bool keep-masks (True = keep) making ``config.sparsity`` of all prunable weights zero.

    Layers the ``keep_dense`` policy keeps dense get no new mask (their ``previous`` masks are
    carried unchanged); ``config.allocation`` spreads the zeros over the others; old zeros
    stay. ``final=False`` (a step of a gradual schedule) lets ``nm`` stop short of the full
    pattern. Raises :class:`InputError` when the target is out of reach (see :mod:`.target`;
    ``plan``: a :class:`~.target.TargetPlan` the caller already settled for these arguments).
    ``config.coupled`` (filter granularity) prunes filter groups joined by residual additions
    together, ranked globally; see :mod:`.coupled`.
    """
    from .target import plan_target

    device = _weights_device(model)
    if device.type != "cpu":
        return _computed_on_cpu(model, config, previous, final, device)
    plan = plan or plan_target(model, config, previous, final=final)
    carried = {k: v.to(torch.bool) for k, v in (previous or {}).items()}
    if config.granularity == "filter" and hasattr(model, "channel_readers"):
        # a model that declares its channel readers (StyleGAN2): removed filters also mask the readers'
        # inputs (:mod:`.readers`), which already couples whatever must go together: no trace needed
        from .readers import mask_readers

        return mask_readers(model, _ranked_masks(model, dataclasses.replace(config, coupled=False), previous, plan,
                                                 carried))
    if config.coupled:
        from .coupled import coupled_masks

        masks = coupled_masks(model, dataclasses.replace(config, sparsity=plan.layer_share()), previous,
                              layers=plan.pruned)
        return {**{k: v for k, v in carried.items() if k not in masks}, **masks}
    return _ranked_masks(model, config, previous, plan, carried)


def _weights_device(model: nn.Module) -> torch.device:
    """Where the model's weights live (the CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _computed_on_cpu(model: nn.Module, config: PruneConfig, previous: dict[str, torch.Tensor] | None, final: bool,
                     device: torch.device) -> dict[str, torch.Tensor]:
    """:func:`compute_masks` of a model on an accelerator: ranked on a CPU copy (the exact selection and its
    bounded temporaries are CPU code), the masks handed back on ``device``, the model itself untouched. A
    ``bn-scaled`` ranking traces the model itself, once (cached), not every copy."""
    cpu_model = cpu_copy(model)
    if config.importance == "bn-scaled":
        following_norms(model)
        share_trace(model, cpu_model)
    cpu_previous = {k: v.to("cpu") for k, v in previous.items()} if previous is not None else None
    masks = compute_masks(cpu_model, config, cpu_previous, final=final)
    return {k: v.to(device) for k, v in masks.items()}


def _ranked_masks(model: nn.Module, config: PruneConfig, previous: dict[str, torch.Tensor] | None, plan,
                  carried: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each pruned layer's units ranked, the allocation's share of the zeros dropped from each."""
    gran, alloc = GRANULARITIES.get(config.granularity), ALLOCATIONS.get(config.allocation)
    if config.plan is not None:
        alloc = PlanAllocation({param_key(n, m): config.plan[n] for n, m in plan.pruned})
    ranked = []
    for e in _entries(model, plan.pruned, previous, config.importance):
        ranked.append((e, *rank_layer(e.key, e.weight, e.geo, e.previous, gran, config.options, alloc.values)))
    counts = alloc.drops([r for _, r, _ in ranked], plan.target - plan.dense_zeros)
    masks = {e.key: _layer_mask(e, r, shape, k, gran, config.options) for (e, r, shape), k in zip(ranked, counts)}
    return {**{k: v for k, v in carried.items() if k not in masks}, **masks}


def _layer_mask(e: _Entry, r, units_shape: tuple[int, ...], k: int, gran: Granularity, opts: dict) -> torch.Tensor:
    """The layer's mask after dropping its ``k`` weakest units (element layers: written a slab at a time)."""
    if getattr(r, "streamed", None) is not None:
        return r.streamed(k)
    return gran.to_mask(r.keep_units(k, units_shape), e.geo, e.previous, opts)


def _entries(model: nn.Module, layers: list[tuple[str, nn.Module]], previous: dict | None,
             importance: str = "magnitude") -> list[_Entry]:
    """Each pruned layer's weight as it is ranked (``bn-scaled``: a scaled copy, see :mod:`.importance`)."""
    norms = following_norms(model) if importance == "bn-scaled" else {}
    out = []
    for name, module in layers:
        key = param_key(name, module)
        weight = model.get_parameter(key)
        prev = (previous or {}).get(key)
        if prev is not None and tuple(prev.shape) != tuple(weight.shape):
            raise InputError(
                f"previous mask for {key!r} has shape {tuple(prev.shape)} but the weight is "
                f"{tuple(weight.shape)}; the masks belong to another model"
            )
        geo = module_geometry(module)
        if name in norms:
            weight = scaled_weight(weight, geo, norm_scale(norms[name]))
        out.append(_Entry(key, weight, geo, prev))
    return out


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights in place (no autograd)."""
    with torch.no_grad():
        for key, mask in masks.items():
            param = model.get_parameter(key)
            if tuple(mask.shape) != tuple(param.shape):
                raise InputError(f"mask for {key!r} has shape {tuple(mask.shape)}, weight is {tuple(param.shape)}")
            _masked_zero(param, mask.to(device=param.device))


_SLAB = 1 << 22


def _masked_zero(param: torch.Tensor, mask: torch.Tensor) -> None:
    """``param[~mask] = 0`` a slab at a time where both are contiguous (no inverted mask the size of the weight)."""
    if not (param.is_contiguous() and mask.is_contiguous()):
        param.masked_fill_(~mask.to(torch.bool), 0)
        return
    flat, keep = param.view(-1), mask.view(-1)
    for i in range(0, flat.numel(), _SLAB):
        flat[i:i + _SLAB].masked_fill_(~keep[i:i + _SLAB].to(torch.bool), 0)


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """``weight != 0`` for every prunable weight: the masks an already-pruned model implies."""
    return {param_key(n, m): model.get_parameter(param_key(n, m)).detach() != 0
            for n, m in model.named_modules() if is_prunable(m)}


def _zeros(weight: torch.Tensor, mask: torch.Tensor | None) -> int:
    """Weights that are zero or masked (counted a slab at a time: no copy of the weight)."""
    return weight.numel() - count_live(weight, mask)


def layer_report(model: nn.Module, masks: dict[str, torch.Tensor],
                 dense: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per prunable layer: name, param, type, shape, params, zeros, pruned, dense, achieved.

    ``achieved`` is the zero fraction the weight has once ``masks`` are applied; ``dense`` is why
    the layer stayed dense (from ``dense``, the plan's reasons), or None for a pruned layer.
    """
    rows = []
    for name, module in model.named_modules():
        if not is_prunable(module):
            continue
        key = param_key(name, module)
        weight, pruned = model.get_parameter(key), key in masks and name not in (dense or {})
        zeros = _zeros(weight, masks.get(key))
        rows.append({"name": name, "param": key, "type": type(module).__name__,
                     "shape": list(weight.shape), "params": weight.numel(), "zeros": zeros, "pruned": pruned,
                     "dense": None if pruned else (dense or {}).get(name, "not pruned"),
                     "achieved": zeros / max(weight.numel(), 1)})
    return rows


def achieved_sparsity(model: nn.Module, masks: dict[str, torch.Tensor] | None = None, *,
                      rows: list[dict[str, Any]] | None = None) -> dict[str, float]:
    """Zero fraction over ALL conv/linear weights (``all``) and over the masked ones (``pruned``);
    ``rows``: the :func:`layer_report` of the same model and masks when the caller has it."""
    masks = masks or {}
    rows = rows if rows is not None else layer_report(model, masks)
    pruned = [r for r in rows if r["param"] in masks]
    total, p_total = sum(r["params"] for r in rows), sum(r["params"] for r in pruned)
    zeros, p_zeros = sum(r["zeros"] for r in rows), sum(r["zeros"] for r in pruned)
    return {"all": zeros / total if total else 0.0, "pruned": p_zeros / p_total if p_total else 0.0}


# --------------------------------------------------------------------------- detection
_BLOCKS = ((8, 8), (4, 8), (8, 4), (4, 4), (2, 8), (8, 2), (2, 4), (4, 2), (2, 2),
           (1, 8), (8, 1), (1, 4), (4, 1), (1, 2), (2, 1))
_NMS = ((1, 4), (2, 4), (4, 8))
_SAMPLE_ROWS = 64
_BAND = 8  # every block height divides it
_STRAY = 1e-3  # fraction of the zeros allowed outside the structure
_CHUNK = 1 << 23  # elements per slice of rows in the full-tensor checks


def _stray(gran: Granularity, zero: torch.Tensor, geo: Geometry, opts: dict) -> int:
    """Number of zeros lying outside the fully-zero units of ``gran``."""
    full = ~gran.unit_reduce(~zero, geo, opts, "any")
    return int(torch.count_nonzero(zero & ~gran.expand(full, geo, opts)))


def _sample(gran: Granularity, zero: torch.Tensor, geo: Geometry) -> tuple[torch.Tensor, Geometry] | None:
    """A slice holding whole units (top rows; leading in-slots for channel), or None."""
    if gran.name == "channel":
        slots = 8
        return (zero[:, : slots * geo.ksize], dataclasses.replace(geo, slots=slots)) if geo.slots > slots else None
    rows = _SAMPLE_ROWS  # a multiple of every block height, so tiles stay aligned
    return (zero[:rows], dataclasses.replace(geo, out=rows, groups=1)) if geo.out > rows else None


def _uniform(gran: Granularity, zero: torch.Tensor, geo: Geometry, opts: dict, zeros: int) -> bool:
    """Units are all-zero or zero-free, allowing ``_STRAY`` of the ``zeros`` elsewhere (exact
    zeros of dense weights, fp16/bf16 underflow). A slice is checked first to reject fast."""
    allowed = _STRAY * zeros
    sample = _sample(gran, zero, geo)
    if sample is not None and _stray(gran, sample[0], sample[1], opts) > allowed:
        return False
    if gran.name == "channel":  # a unit spans every row
        return _stray(gran, zero, geo, opts) <= allowed
    stray = 0
    for rows, part_geo in _row_chunks(zero, geo, _BAND):  # every other unit lies inside an aligned band of rows
        stray += _stray(gran, rows, part_geo, opts)
        if stray > allowed:
            return False
    return True


def _row_chunks(mat: torch.Tensor, geo: Geometry, align: int):
    """``(rows, geometry)`` slices of a canonical matrix of about ``_CHUNK`` elements, each a whole
    number of ``align`` rows, so that detection's temporaries stay a small part of the layer."""
    step = max(align, _CHUNK // max(1, geo.cols) // align * align)
    if step >= geo.out:
        yield mat, geo
        return
    for start in range(0, geo.out, step):
        part = mat[start:start + step]
        yield part, dataclasses.replace(geo, out=part.shape[0], groups=1)


def _nm_possible(geo: Geometry, axis: str, n: int, m: int, zeros: int) -> bool:
    """At most ``n`` kept of every full run of ``m`` needs at least ``m - n`` zeros per run."""
    runs = (geo.slots if axis == "in" else geo.cols) // m
    return runs > 0 and zeros >= (m - n) * runs * geo.out * (geo.ksize if axis == "in" else 1)


def _is_nm(zero: torch.Tensor, geo: Geometry, axis: str, n: int, m: int) -> bool:
    """At most ``n`` nonzeros in every full run of ``m`` along ``axis`` (see :func:`nm_rows`) and, up
    to ``_STRAY``, exactly ``n`` on average (a ragged last run counts ``ceil(n*L/m)``). Counted
    a slice of rows at a time."""
    cols = geo.slots if axis == "in" else geo.cols
    runs, rest = divmod(cols, m)
    if runs == 0:
        return False
    rows = geo.out * (geo.ksize if axis == "in" else 1)
    ragged_n = -(-n * rest // m)
    kept = 0
    for part, part_geo in _row_chunks(zero, geo, 1):
        nonzero = ~nm_rows(part, part_geo, axis)
        counts = nonzero[:, : runs * m].reshape(-1, runs, m).sum(-1, dtype=torch.int32)
        ragged = nonzero[:, runs * m:].sum(-1, dtype=torch.int32)
        if bool((counts > n).any()) or bool((ragged > ragged_n).any()):
            return False
        kept += int(counts.sum()) + int(ragged.sum())
    return kept >= (1 - _STRAY) * rows * (runs * n + ragged_n)


def _candidates(geo: Geometry) -> list[tuple[int, str, str, dict]]:
    """(weights per unit, label, granularity, opts), biggest units first; size-1 units skipped."""
    units = [(geo.cols, "filter", "filter", {}), (geo.out // geo.groups * geo.ksize, "channel", "channel", {}),
             (geo.ksize, "kernel", "kernel", {}), (geo.kw, "vector", "vector", {})]
    units += [(br * bc, f"block {br}x{bc}", "block", {"block": (br, bc)}) for br, bc in _BLOCKS
              if br <= geo.out and bc <= geo.cols]
    return sorted((u for u in units if u[0] > 1), key=lambda u: -u[0])  # stable: ties keep order


def detect_structure(weight: torch.Tensor, kind: str = CONV, groups: int = 1, *, zeros: int | None = None) -> str:
    """Coarsest structure of ``weight``'s zeros: ``none``, ``filter``, ``channel``, ``kernel``,
    ``vector``, ``block RxC`` (R, C in 1, 2, 4, 8), ``N:M`` (1:4, 2:4, 4:8) or ``element``.

    A structure fits when its units are all zero or free of zeros, with at most 0.1% of the
    zeros elsewhere (stray exact zeros of dense weights); among those that fit, the one with
    the most weights per unit wins (ties: the order above), e.g. a 2x4 block pattern on
    4-wide kernel rows is also vector-shaped but reads ``block 2x4``. N:M needs at most N
    nonzeros in every run and N in all but 0.1% of the cases, so N:M applied over older
    scattered zeros reads ``element``. ``kind``/``groups`` give the layer's layout
    (``conv``, ``conv_transpose``, ``linear``); ``zeros``: its count of exact zeros, when known.
    """
    geo, weight = geometry(weight.shape, kind, groups), weight.detach()
    if zeros is None:
        zeros = weight.numel() - int(torch.count_nonzero(weight))  # no temporary: dense weights stop here
    if not zeros:
        return "none"
    banded, band_geo = _zero_bands(weight, geo, zeros)
    whole: list[torch.Tensor] = []  # the canonical zeros of the whole weight, made only if a check needs them

    def zero() -> torch.Tensor:
        if not whole:
            whole.append(banded if band_geo is geo else to_canonical(weight == 0, geo))
        return whole[0]

    for size, label, name, opts in _candidates(geo):
        if name == "channel" and zeros < size:  # not one whole channel of zeros: every zero is a stray
            continue
        mat, mat_geo = (zero(), geo) if name == "channel" else (banded, band_geo)  # a channel spans every row
        if _uniform(GRANULARITIES.get(name), mat, mat_geo, opts, zeros):
            return label
    for axis, suffix in (("in", ""), ("kernel", " kernel-axis")):
        for n, m in _NMS:
            if _nm_possible(geo, axis, n, m, zeros) and _is_nm(zero(), geo, axis, n, m):
                return f"{n}:{m}{suffix}"
    return "element"


def _zero_bands(weight: torch.Tensor, geo: Geometry, zeros: int) -> tuple[torch.Tensor, Geometry]:
    """The canonical zeros of only the aligned bands of ``_BAND`` rows that hold a zero (with a layout of one
    group): the units of every granularity but ``channel`` lie inside such a band (block heights divide it),
    so counting stray zeros there gives the same answer as on the whole tensor, at the cost of the zeros'
    rows only; the whole canonical zeros (and ``geo`` itself) when every band holds one."""
    bands = -(-geo.out // _BAND)
    padded = torch.nn.functional.pad(zero_rows(weight, geo, zeros), (0, bands * _BAND - geo.out))
    keep = padded.reshape(bands, _BAND).any(1).repeat_interleave(_BAND)[: geo.out]
    if bool(keep.all()):
        return to_canonical(weight == 0, geo), geo
    sub = canonical_rows(weight, geo, keep.nonzero().flatten()) == 0
    return sub, dataclasses.replace(geo, out=sub.shape[0], groups=1)


def module_structure(module: nn.Module, zeros: int | None = None) -> str:
    """:func:`detect_structure` of a prunable module's weight, with its true layout."""
    kind, groups = layer_kind(module)
    return detect_structure(module.get_parameter(param_key("", module)), kind, groups, zeros=zeros)


__all__ = ["compute_masks", "apply_masks", "current_masks", "layer_report", "achieved_sparsity", "detect_structure",
           "module_structure"]
