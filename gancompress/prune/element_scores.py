"""Element pruning of one layer a slab of canonical rows at a time: the masks of the whole-tensor
selection exactly, without a float score the size of the layer.

An element's score is ``|w|`` in float32, -1 where an earlier mask removed it (what
:meth:`.granularity.Granularity.unit_scores` computes for ``element``). :class:`ElementScores`
computes those scores a slab of canonical rows at a time, in flat canonical order, again on
every pass, so the radix select of :func:`.granularity.kth_smallest` reads them without anyone
holding them: a layer's pruning holds its weight, its bool mask, and one slab of scores.
:func:`element_mask` keeps the best weight (the first largest score, the one
:meth:`~.granularity.Granularity.always_kept` keeps) and the largest of the others, ties at the
threshold the lower canonical index first: what :func:`.granularity.select_top` keeps.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from .granularity import check_finite, count_where, kth_smallest
from .layers import Geometry, canonical_rows, put_canonical_rows

_SLAB = 1 << 20  # weights scored at once (their temporaries: a few bytes each)


class ElementScores:
    """The element scores of one layer, computed again on each iteration (a re-iterable of flat
    float32 pieces for :func:`.granularity.kth_smallest`); ``best``, a flat canonical index, scores
    ``+inf`` (the weight no sparsity removes) once it is set."""

    def __init__(self, weight: torch.Tensor, geo: Geometry, previous: torch.Tensor | None, layer: str) -> None:
        self.weight, self.geo, self.previous, self.layer = weight.detach(), geo, previous, layer
        self.step = max(1, _SLAB // max(1, geo.cols))  # canonical rows per slab
        self.best: int | None = None

    def numel(self) -> int:
        return self.weight.numel()

    def slabs(self) -> Iterator[tuple[int, torch.Tensor]]:
        """``(first row, scores)`` for each slab of canonical rows, ``scores`` shaped ``(rows, cols)``."""
        for start in range(0, self.geo.out, self.step):
            rows = slice(start, start + self.step)
            w = canonical_rows(self.weight, self.geo, rows)
            prev = None if self.previous is None else canonical_rows(self.previous, self.geo, rows).to(torch.bool)
            s = (w if prev is None else w * prev).float().abs()
            del w  # a transposed conv's rows are a copy: not held while the scores are read
            check_finite(s, self.layer)
            if prev is not None:
                s.masked_fill_(~prev, -1.0)  # prev may be a view of the caller's mask: not in place
            first = start * self.geo.cols
            if self.best is not None and first <= self.best < first + s.numel():
                s.view(-1)[self.best - first] = math.inf
            yield start, s

    def __iter__(self) -> Iterator[torch.Tensor]:
        for _, s in self.slabs():
            yield s.view(-1)

    def full(self) -> torch.Tensor:
        """All scores as one ``(out, cols)`` tensor (for tests and small layers)."""
        return torch.cat([s for _, s in self.slabs()]) if self.geo.out else torch.empty(0, self.geo.cols)

    def set_best(self) -> ElementScores:
        """Mark the first largest score (``argmax`` of the whole tensor) as the one always kept."""
        self.best, value = None, -math.inf
        for start, s in self.slabs():
            top = float(s.amax()) if s.numel() else -math.inf
            if top > value:
                self.best, value = start * self.geo.cols + int(s.view(-1).argmax()), top
        return self


def element_mask(weight: torch.Tensor, geo: Geometry, previous: torch.Tensor | None, layer: str,
                 drop: int) -> torch.Tensor:
    """Raw-layout bool mask (True = keep, and'ed with ``previous``) dropping the ``drop`` weakest weights
    of one layer, never its best one: the mask of ``select_top`` on the whole score tensor."""
    n = weight.numel()
    keep = n - min(drop, max(0, n - 1))
    if keep >= n:
        mask = torch.ones(geo.shape, dtype=torch.bool)
    else:
        scores = ElementScores(weight, geo, previous, layer).set_best()
        t = kth_smallest([scores], n - keep)
        mask = _threshold_mask(scores, t, keep - count_where([scores], lambda p: p > t))
    return mask if previous is None else mask.logical_and_(previous.to(torch.bool))


def _threshold_mask(scores: ElementScores, t: float, ties: int) -> torch.Tensor:
    """Keep every score above ``t`` and the first ``ties`` equal to it (flat canonical order)."""
    mask = torch.empty(scores.geo.shape, dtype=torch.bool)
    for start, s in scores.slabs():
        part = s > t
        if ties > 0:
            equal = (s == t).view(-1)
            found = int(torch.count_nonzero(equal))
            if found > ties:
                equal[equal.nonzero().squeeze(1)[ties:]] = False
            ties -= min(found, ties)
            part.view(-1).logical_or_(equal)
        put_canonical_rows(mask, scores.geo, slice(start, start + s.shape[0]), part)
    return mask


__all__ = ["ElementScores", "element_mask"]
