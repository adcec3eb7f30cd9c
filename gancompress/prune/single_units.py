"""Ranking without a sort for granularities whose units are single weights (``element``, ``nm``).

:func:`.allocation.rank_sorted` sorts every unit of a layer, which costs ``O(n log n)`` time and
several index tensors per weight. When a unit is one weight, the sort is not needed to know what
dropping the ``k`` weakest units gains: every unit with its weight left scores above zero and every
empty one (exact zero, or masked earlier) at or below zero, so the empty ones come first in the
ranking and dropping ``k`` units adds ``max(0, k - dead)`` zeros. The units themselves are found
when the mask is made, by the exact threshold select of :func:`.granularity.select_top` (ties drop
the higher index first, as the sort does), from scores computed again then, so no per-weight
tensor is held between ranking and masking.

A layer is ranked here only when the shortcut is exact: :func:`rank_single` returns None when a
weight is nonzero but scores zero (float64 weights under float32's range), and, for the global
allocation, when a score is too small or too large for ``sqrt(w**2) == |w|`` in float32 (the root
mean square the sorted path compares); the caller then sorts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .granularity import Granularity, kth_smallest, select_top
from .layers import Geometry

# Inside [2**-63, 2**63] a float32 square is a normal float, and the correctly rounded square root
# of the correctly rounded square of a binary float is the float itself.
_RMS_EXACT = (2.0 ** -63, 2.0 ** 63)


@dataclass
class SingleRanked:
    """One pruned layer of single-weight units, ranked weakest first without sorting.

    ``droppable`` units may be dropped (the granularity's always-kept ones may not), ``dead``
    of them are empty already; ``score()`` recomputes the unit scores with the always-kept
    units at ``+inf``. Same interface as :class:`.allocation.Ranked` (``resorted()`` gives that).
    """

    key: str
    shape: tuple[int, ...]
    weights: int
    zeros: int
    droppable: int
    dead: int
    score: Callable[[], torch.Tensor]
    resorted: Callable[[], object]

    def zeros_after(self, k: int) -> int:
        return self.zeros + max(0, k - self.dead)

    @property
    def most(self) -> int:
        return self.zeros_after(self.droppable)

    def fit(self, room: int) -> int:
        """Most units this layer can drop while adding at most ``room`` zeros."""
        return min(self.droppable, self.dead + room) if room >= 0 else 0

    def keep_units(self, k: int, units_shape: tuple[int, ...]) -> torch.Tensor:
        s = self.score()
        return select_top([s], s.numel() - k)[0].reshape(units_shape)


def rank_single(key: str, weight: torch.Tensor, geo: Geometry, previous: torch.Tensor | None, gran: Granularity,
                opts: dict, rms: bool, resorted: Callable[[], object]) -> tuple[SingleRanked, tuple[int, ...]] | None:
    """:class:`SingleRanked` for one layer, or None where the shortcut would not be exact
    (``rms``: the global allocation will compare the units' root mean squares)."""

    def score() -> torch.Tensor:
        s = gran.unit_scores(weight, geo, previous, key, opts).contiguous()
        return s.masked_fill_(gran.always_kept(s, geo, opts), math.inf)

    raw = gran.unit_scores(weight, geo, previous, key, opts)
    positive = raw > 0
    live = _live(weight, previous)
    if live != int(torch.count_nonzero(positive)) or (rms and not _rms_exact(raw, positive)):
        return None
    del positive
    droppable = gran.always_kept(raw, geo, opts).logical_not_()
    dead = int(torch.count_nonzero((raw <= 0).logical_and_(droppable)))
    units_shape = tuple(raw.shape)
    del raw
    zeros = weight.numel() - live
    return SingleRanked(key, tuple(weight.shape), weight.numel(), zeros, int(torch.count_nonzero(droppable)), dead, score,
                        resorted), units_shape


def _live(weight: torch.Tensor, previous: torch.Tensor | None) -> int:
    live = weight.detach() != 0
    if previous is not None:
        live &= previous.to(torch.bool)
    return int(torch.count_nonzero(live))


def _rms_exact(raw: torch.Tensor, positive: torch.Tensor) -> bool:
    if not bool(positive.any()):
        return True
    low = float(torch.where(positive, raw, torch.full((), math.inf)).amin())
    return _RMS_EXACT[0] <= low and float(raw.amax()) <= _RMS_EXACT[1]


def global_single_drops(layers: list[SingleRanked], need: int) -> list[int]:
    """The global magnitude allocation over single-weight units: every empty unit and the
    weakest live ones until ``need`` zeros, by one threshold over all layers (ties: the earlier
    layer first, within a layer the higher index first, as the stable sort of the sorted path)."""
    room = need - sum(r.zeros for r in layers)
    if room <= 0 or not any(r.droppable for r in layers):
        return [0] * len(layers)
    if room >= sum(r.droppable - r.dead for r in layers):
        return [r.droppable for r in layers]
    scores = [r.score() for r in layers]
    drop = sum(r.dead for r in layers) + room
    t = kth_smallest(scores, drop - 1)
    below = [int(torch.count_nonzero(s < t)) for s in scores]
    extra, counts = drop - sum(below), []
    for s, b in zip(scores, below):
        take = min(extra, int(torch.count_nonzero(s == t)))
        counts.append(b + take)
        extra -= take
    return counts


__all__ = ["SingleRanked", "global_single_drops", "rank_single"]
