"""Pruning configuration, mask computation over a model, reports and structure detection.

Masks are ``dict[param_name, BoolTensor]`` (True = keep) keyed by the full parameter name
(``"net.0.weight"``; ``"...weight_orig"`` / ``"...parametrizations.weight.original"`` for
spectral-/weight-normed layers, see :func:`.layers.weight_name`).

Global scope: each layer's unit scores are divided by the mean of its live unit scores
(so layers of different scale and unit size compete on "how weak relative to its layer"),
each layer's best unit is forced kept, and one exact threshold over all selected layers
removes ``min(round(s * total_units), total_units - n_layers)`` units. Units are counted,
not weights: with structured granularities a layer of big units weighs as much per unit as
one of small units. ``nm`` ignores scope (its sparsity is fixed per layer).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from .config import PruneConfig
from .granularity import (GRANULARITIES, Granularity, prune_count, select_top)
from .layers import (CONV, Geometry, geometry, is_prunable, layer_kind, module_geometry, param_key,
                     prunable_layers, to_canonical)



@dataclass
class _Entry:
    key: str
    weight: torch.Tensor
    geo: Geometry
    previous: torch.Tensor | None


def _entries(model: nn.Module, config: PruneConfig, previous: dict | None) -> list[_Entry]:
    out = []
    for name, module in prunable_layers(model, config.include, config.exclude, config.prune_first_last):
        key = param_key(name, module)
        weight = model.get_parameter(key)
        prev = (previous or {}).get(key)
        if prev is not None and tuple(prev.shape) != tuple(weight.shape):
            raise InputError(
                f"previous mask for {key!r} has shape {tuple(prev.shape)} but the weight is "
                f"{tuple(weight.shape)}; the masks belong to another model"
            )
        out.append(_Entry(key, weight, module_geometry(module), prev))
    return out


def compute_masks(model: nn.Module, config: PruneConfig,
                  previous: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Bool keep-masks for the selected layers (plus unselected ``previous`` masks, unchanged).

    ``config.coupled`` (filter granularity) prunes filter groups joined by residual additions
    together, ranked globally; it traces the model at ``config.input_shape`` (or the model's
    ``input_shape`` attribute); see :mod:`.coupled`. Filter pruning of a model that declares
    its channel readers (StyleGAN2) also masks the readers' inputs of removed filters
    (:mod:`.readers`); that already couples whatever must go together, so ``coupled`` adds
    nothing there and its trace is skipped.
    """
    readers = config.granularity == "filter" and hasattr(model, "channel_readers")
    if config.coupled and not readers:
        from .coupled import coupled_masks

        masks = coupled_masks(model, config, previous)
        return {**{k: v.to(torch.bool) for k, v in (previous or {}).items() if k not in masks}, **masks}
    if readers:
        from .readers import mask_readers

        return mask_readers(model, _masks(model, config, previous))
    return _masks(model, config, previous)


def _masks(model: nn.Module, config: PruneConfig, previous: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    entries = _entries(model, config, previous)
    gran = GRANULARITIES.get(config.granularity)
    if config.scope == "global" and config.granularity != "nm":
        masks = _global_masks(entries, gran, config)
    else:
        masks = {e.key: gran.mask(e.weight, config.sparsity, e.geo.kind, groups=e.geo.groups,
                                  previous=e.previous, layer=e.key, **config.options) for e in entries}
    return {**{k: v.to(torch.bool) for k, v in (previous or {}).items() if k not in masks}, **masks}


def _normalise_(scores: torch.Tensor) -> torch.Tensor:
    """Divide live scores (>= 0) by their mean; dead units (-1) stay -1; best unit -> +inf."""
    dead = scores < 0
    live = int((~dead).sum())
    mean = float(scores.clamp(min=0).sum()) / live if live else 0.0
    if mean > 0:
        scores.div_(mean).masked_fill_(dead, -1.0)
    scores.view(-1)[int(scores.argmax())] = math.inf
    return scores


def _global_masks(entries: list[_Entry], gran: Granularity, config: PruneConfig) -> dict[str, torch.Tensor]:
    opts = config.options
    scores = [_normalise_(gran.unit_scores(e.weight, e.geo, e.previous, e.key, opts).contiguous())
              for e in entries]
    total = sum(s.numel() for s in scores)
    drop = min(prune_count(total, config.sparsity), total - len(scores))
    keeps = select_top(scores, total - drop)
    return {e.key: gran.to_mask(k, e.geo, e.previous, opts) for e, k in zip(entries, keeps)}


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights in place (no autograd)."""
    with torch.no_grad():
        for key, mask in masks.items():
            param = model.get_parameter(key)
            if tuple(mask.shape) != tuple(param.shape):
                raise InputError(f"mask for {key!r} has shape {tuple(mask.shape)}, weight is {tuple(param.shape)}")
            param.masked_fill_(~mask.to(device=param.device, dtype=torch.bool), 0)


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """``weight != 0`` for every prunable weight: the masks an already-pruned model implies."""
    return {param_key(n, m): model.get_parameter(param_key(n, m)).detach() != 0
            for n, m in model.named_modules() if is_prunable(m)}


def _zeros(weight: torch.Tensor, mask: torch.Tensor | None) -> int:
    zero = weight.detach() == 0
    return int(torch.count_nonzero(zero | ~mask.to(torch.bool)) if mask is not None else torch.count_nonzero(zero))


def layer_report(model: nn.Module, masks: dict[str, torch.Tensor],
                 config: PruneConfig | None = None) -> list[dict[str, Any]]:
    """One row per prunable layer: name, param, type, shape, params, zeros, pruned, target, achieved.

    ``achieved`` is the zero fraction the weight has once ``masks`` are applied; ``target``
    is the config's sparsity for pruned layers (None without a config), 0.0 for dense ones.
    """
    rows = []
    for name, module in model.named_modules():
        if not is_prunable(module):
            continue
        key = param_key(name, module)
        weight, pruned = model.get_parameter(key), key in masks
        target = (config.sparsity if config else None) if pruned else 0.0
        zeros = _zeros(weight, masks.get(key))
        rows.append({"name": name, "param": key, "type": type(module).__name__,
                     "shape": list(weight.shape), "params": weight.numel(), "zeros": zeros, "pruned": pruned,
                     "target": target, "achieved": zeros / max(weight.numel(), 1)})
    return rows


def achieved_sparsity(model: nn.Module, masks: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """Zero fraction over ALL conv/linear weights (``all``) and over the masked ones (``pruned``)."""
    rows = layer_report(model, masks or {})
    pruned = [r for r in rows if r["pruned"]]
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
    return _stray(gran, zero, geo, opts) <= allowed


def _is_nm(zero: torch.Tensor, n: int, m: int) -> bool:
    """At most ``n`` nonzeros in every full run of ``m`` canonical columns and, up to
    ``_STRAY``, exactly ``n`` on average (a ragged last run counts ``ceil(n*L/m)``)."""
    rows, cols = zero.shape
    full = cols - cols % m
    if full == 0:
        return False
    counts = (~zero[:, :full]).reshape(rows, -1, m).sum(-1)
    ragged = (~zero[:, full:]).sum(-1)
    expected = counts.numel() * n + rows * -(-n * (cols - full) // m)
    at_most = bool((counts <= n).all() and (ragged <= -(-n * (cols - full) // m)).all())
    return at_most and int(counts.sum() + ragged.sum()) >= (1 - _STRAY) * expected


def _candidates(geo: Geometry) -> list[tuple[int, str, str, dict]]:
    """(weights per unit, label, granularity, opts), biggest units first; size-1 units skipped."""
    units = [(geo.cols, "filter", "filter", {}), (geo.out // geo.groups * geo.ksize, "channel", "channel", {}),
             (geo.ksize, "kernel", "kernel", {}), (geo.kw, "vector", "vector", {})]
    units += [(br * bc, f"block {br}x{bc}", "block", {"block": (br, bc)}) for br, bc in _BLOCKS
              if br <= geo.out and bc <= geo.cols]
    return sorted((u for u in units if u[0] > 1), key=lambda u: -u[0])  # stable: ties keep order


def detect_structure(weight: torch.Tensor, kind: str = CONV, groups: int = 1) -> str:
    """Coarsest structure of ``weight``'s zeros: ``none``, ``filter``, ``channel``, ``kernel``,
    ``vector``, ``block RxC`` (R, C in 1, 2, 4, 8), ``N:M`` (1:4, 2:4, 4:8) or ``element``.

    A structure fits when its units are all zero or free of zeros, with at most 0.1% of the
    zeros elsewhere (stray exact zeros of dense weights); among those that fit, the one with
    the most weights per unit wins (ties: the order above), e.g. a 2x4 block pattern on
    4-wide kernel rows is also vector-shaped but reads ``block 2x4``. N:M needs at most N
    nonzeros in every run and N in all but 0.1% of the cases, so N:M applied over older
    scattered zeros reads ``element``. ``kind``/``groups`` give the layer's layout
    (``conv``, ``conv_transpose``, ``linear``).
    """
    geo = geometry(weight.shape, kind, groups)
    zero = to_canonical(weight.detach() == 0, geo)
    zeros = int(torch.count_nonzero(zero))
    if not zeros:
        return "none"
    banded, band_geo = _zero_bands(zero, geo)
    for size, label, name, opts in _candidates(geo):
        if name == "channel":  # units span every row: whole tensor; a unit bigger than all zeros cannot be all-zero
            if zeros >= size and _uniform(GRANULARITIES.get(name), zero, geo, opts, zeros):
                return label
        elif _uniform(GRANULARITIES.get(name), banded, band_geo, opts, zeros):
            return label
    for n, m in _NMS:
        if zeros >= (m - n) * geo.out * (geo.cols // m) and _is_nm(zero, n, m):  # every full run needs m-n zeros
            return f"{n}:{m}"
    return "element"


def _zero_bands(zero: torch.Tensor, geo: Geometry) -> tuple[torch.Tensor, Geometry]:
    """Only the aligned bands of ``_BAND`` rows that hold a zero (with a layout of one group): the units of
    every granularity but ``channel`` lie inside such a band (block heights divide it), so counting stray
    zeros there gives the same answer as on the whole tensor, at the cost of the zeros' rows only."""
    bands = -(-geo.out // _BAND)
    padded = torch.nn.functional.pad(zero.any(1), (0, bands * _BAND - geo.out))
    keep = padded.reshape(bands, _BAND).any(1).repeat_interleave(_BAND)[: geo.out]
    if bool(keep.all()):
        return zero, geo
    sub = zero[keep]
    return sub, dataclasses.replace(geo, out=sub.shape[0], groups=1)


def module_structure(module: nn.Module) -> str:
    """:func:`detect_structure` of a prunable module's weight, with its true layout."""
    kind, groups = layer_kind(module)
    return detect_structure(module.get_parameter(param_key("", module)), kind, groups)


__all__ = ["compute_masks", "apply_masks", "current_masks", "layer_report", "achieved_sparsity", "detect_structure",
           "module_structure"]
