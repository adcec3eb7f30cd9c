"""Ranking without a sort where every unit is whole: all of its weights left, or none.

:func:`.allocation.rank_sorted` sorts every unit of a layer, which costs ``O(n log n)`` time and
several index tensors per unit. The sort is not needed to know what dropping the ``k`` weakest
units gains when every unit holds either all of its ``size`` weights or none (a dense weight at
any granularity but ragged ``block`` tiles; a re-prune at the granularity of the old masks): the
empty units score at or below zero and every other one above it, so the empty ones come first
and dropping ``k`` units adds ``size * max(0, k - dead)`` zeros. The units themselves are found
when the mask is made, by the exact threshold select of :func:`.granularity.select_top` (ties
drop the higher index first, as the sort does), from scores computed again then, so no per-unit
tensor is held between ranking and masking. Element layers never hold their scores at all: they
are counted, selected and masked a slab of rows at a time (:mod:`.element_scores`).

A layer is ranked here only where this is exact: :func:`rank_whole` returns None when a unit is
part-empty, or nonempty but scores zero (float64 weights under float32's range), and, for the
global allocation, unless units are single weights whose magnitude is what the sorted path
compares (``sqrt(w**2) == |w|`` in float32); the caller then sorts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .element_scores import ElementScores, element_mask
from .granularity import Granularity, count_where, kth_smallest, select_top
from .layers import Geometry

# Inside [2**-63, 2**63] a float32 square is a normal float, and the correctly rounded square root
# of the correctly rounded square of a binary float is the float itself.
_RMS_EXACT = (2.0 ** -63, 2.0 ** 63)


@dataclass
class WholeRanked:
    """One pruned layer of whole units of ``size`` weights, ranked weakest first without sorting.

    ``droppable`` units may be dropped (the granularity's always-kept ones may not), ``dead``
    of them are empty already; ``score()`` recomputes the unit scores with the always-kept
    units at ``+inf``. Same interface as :class:`.allocation.Ranked` (``resorted()`` gives that).
    """

    key: str
    shape: tuple[int, ...]
    weights: int
    zeros: int
    size: int
    droppable: int
    dead: int
    score: Callable[[], torch.Tensor | ElementScores]
    resorted: Callable[[], object]
    streamed: Callable[[int], torch.Tensor] | None = None  # the raw-layout mask after dropping k units (element)

    def zeros_after(self, k: int) -> int:
        return self.zeros + self.size * max(0, k - self.dead)

    @property
    def most(self) -> int:
        return self.zeros_after(self.droppable)

    def fit(self, room: int) -> int:
        """Most units this layer can drop while adding at most ``room`` zeros."""
        return min(self.droppable, self.dead + room // self.size) if room >= 0 else 0

    def keep_units(self, k: int, units_shape: tuple[int, ...]) -> torch.Tensor:
        s = self.score()
        s = s if isinstance(s, torch.Tensor) else s.full()
        return select_top([s], s.numel() - k)[0].reshape(units_shape)


def rank_whole(key: str, weight: torch.Tensor, geo: Geometry, previous: torch.Tensor | None, gran: Granularity,
               opts: dict, rms: bool, resorted: Callable[[], object]) -> tuple[WholeRanked, tuple[int, ...]] | None:
    """:class:`WholeRanked` for one layer, or None where the shortcut would not be exact
    (``rms``: the global allocation will compare the units' root mean squares)."""

    def score() -> torch.Tensor:
        s = gran.unit_scores(weight, geo, previous, key, opts).contiguous()
        return s.masked_fill_(gran.always_kept(s, geo, opts), math.inf)

    if rms and not gran.single:
        return None
    if gran.name == "element":
        return _element_ranked(key, weight, geo, previous, rms, resorted)
    raw = gran.unit_scores(weight, geo, previous, key, opts)
    size, live = gran.unit_size(geo, opts), gran.live_units(weight, geo, previous, opts)
    positive = raw > 0
    whole = bool(((live == 0) | (live == size)).all()) and bool(((live > 0) == positive).all())
    if not whole or (rms and not _rms_exact(raw, positive)):
        return None
    zeros = weight.numel() - size * int(torch.count_nonzero(positive))
    del positive, live
    droppable = gran.always_kept(raw, geo, opts).logical_not_()
    dead = int(torch.count_nonzero((raw <= 0).logical_and_(droppable)))
    units_shape = tuple(raw.shape)
    return WholeRanked(key, tuple(weight.shape), weight.numel(), zeros, size, int(torch.count_nonzero(droppable)), dead,
                       score, resorted), units_shape


def _element_ranked(key: str, weight: torch.Tensor, geo: Geometry, previous: torch.Tensor | None, rms: bool,
                    resorted: Callable[[], object]) -> tuple[WholeRanked, tuple[int, ...]] | None:
    """:func:`rank_whole` for single weights, counted a slab at a time from :class:`.element_scores.ElementScores`
    (no score, no bool the size of the layer): a weight scores above zero only when it is nonzero and not
    masked before, so the units are whole when as many score above zero as are live; the one always kept
    is the best (``argmax``). The masks are made by :func:`.element_scores.element_mask`."""
    scores, n = ElementScores(weight, geo, previous, key), weight.numel()
    positive = count_where([scores], lambda part: part > 0)
    live = count_live(weight, previous)
    if positive != live or (rms and not _rms_exact_pieces(scores)):
        return None
    dead = n - positive - (1 if n and positive == 0 else 0)  # the kept best unit is dead only when all are
    return WholeRanked(key, tuple(weight.shape), n, n - positive, 1, max(0, n - 1), dead,
                       lambda: ElementScores(weight, geo, previous, key).set_best(), resorted,
                       lambda k: element_mask(weight, geo, previous, key, k)), (geo.out, geo.cols)


_SLAB = 1 << 22


def count_live(weight: torch.Tensor, mask: torch.Tensor | None = None) -> int:
    """Weights that are nonzero (and kept by ``mask``), counted a slab at a time: no bool the size of the weight."""
    flat = weight.detach().reshape(-1)
    flat_mask = None if mask is None else mask.reshape(-1)
    if flat_mask is None:
        return sum(int(torch.count_nonzero(flat[i:i + _SLAB])) for i in range(0, flat.numel(), _SLAB))
    return sum(int(torch.count_nonzero((flat[i:i + _SLAB] != 0) & flat_mask[i:i + _SLAB].to(torch.bool)))
               for i in range(0, flat.numel(), _SLAB))


def _rms_exact_pieces(scores: ElementScores) -> bool:
    """:func:`_rms_exact` a slab at a time (single weights: a unit's root mean square is its score)."""
    low, high = math.inf, -math.inf
    for p in scores:
        low = min(low, float(torch.where(p > 0, p, math.inf).amin())) if p.numel() else low
        high = max(high, float(p.amax())) if p.numel() else high
    return low == math.inf or (_RMS_EXACT[0] <= low and high <= _RMS_EXACT[1])


def _rms_exact(raw: torch.Tensor, positive: torch.Tensor) -> bool:
    if not bool(positive.any()):
        return True
    low = float(torch.where(positive, raw, torch.full((), math.inf)).amin())
    return _RMS_EXACT[0] <= low and float(raw.amax()) <= _RMS_EXACT[1]


def global_whole_drops(layers: list[WholeRanked], need: int) -> list[int]:
    """The global magnitude allocation over single weights: every empty one and the weakest
    live ones until ``need`` zeros, by one threshold over all layers (ties: the earlier layer
    first, within a layer the higher index first, as the stable sort of the sorted path)."""
    room = need - sum(r.zeros for r in layers)
    if room <= 0 or not any(r.droppable for r in layers):
        return [0] * len(layers)
    if room >= sum(r.droppable - r.dead for r in layers):
        return [r.droppable for r in layers]
    scores = [r.score() for r in layers]
    drop = sum(r.dead for r in layers) + room
    t = kth_smallest(scores, drop - 1)
    below = [count_where([s], lambda p: p < t) for s in scores]
    extra, counts = drop - sum(below), []
    for s, b in zip(scores, below):
        take = min(extra, count_where([s], lambda p: p == t))
        counts.append(b + take)
        extra -= take
    return counts


__all__ = ["WholeRanked", "count_live", "global_whole_drops", "rank_whole"]
