"""Per-layer allocation of an overall sparsity: how many units each pruned layer loses.

The target is a count of zero weights over ALL prunable weights. Each pruned layer's units are
ranked weakest first by its granularity's score (:class:`Ranked`, by a sort; where every unit is
whole, :class:`.whole_units.WholeRanked`, the same ranking by counting and one threshold select);
an allocation decides how long a prefix of that ranking each layer drops:

``uniform``  every pruned layer reaches the same weight sparsity, as near as its units allow.
``global``   one magnitude threshold over all pruned layers; a unit is compared by the root mean
             square of its weights (``|w|`` for single weights), so big and small units compete
             on the same footing.
``lamp``     one threshold over LAMP scores (Lee et al., "Layer-adaptive sparsity for the
             magnitude-based pruning", ICLR 2021): a unit's mean square divided by the sum of
             the mean squares of the units ranked at or above it in its own layer.
``erk``      Erdos-Renyi-Kernel (Evci et al., "Rigging the lottery", ICML 2020): a layer's
             density is proportional to ``sum(shape) / prod(shape)``, capped at 1, scaled to
             the target.

Exactness: the zeros reached differ from the target by at most half of the largest unit that
was weighed (one weight for ``element``, one filter for ``filter``), plus what a layer's own
limits forbid (it always keeps one unit; N:M keeps N of every M; old zeros stay).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import InputError
from ..registry import Registry
from .granularity import Granularity
from .layers import Geometry, to_canonical
from .whole_units import WholeRanked, global_whole_drops, rank_whole

_BISECT = 60


@dataclass
class Ranked:
    """One pruned layer's units, weakest first.

    ``order`` holds the unit indices that may be dropped (the granularity's always-kept units
    are left out); dropping ``order[:k]`` adds ``gain[k-1]`` zeros to the ``zeros`` the weight
    already has (exact zeros and earlier masks). ``values`` are the cross-layer scores of
    ``order`` (nondecreasing), set only for threshold allocations.
    """

    key: str
    shape: tuple[int, ...]
    weights: int
    zeros: int
    order: torch.Tensor
    gain: torch.Tensor
    values: torch.Tensor | None = None

    def zeros_after(self, k: int) -> int:
        return self.zeros + (int(self.gain[k - 1]) if k else 0)

    @property
    def most(self) -> int:
        return self.zeros_after(len(self.order))

    @property
    def droppable(self) -> int:
        return len(self.order)

    def fit(self, room: int) -> int:
        """Most units this layer can drop while adding at most ``room`` zeros."""
        return int(torch.searchsorted(self.gain, torch.tensor(room), right=True)) if room >= 0 and len(self.gain) else 0

    def keep_units(self, k: int, units_shape: tuple[int, ...]) -> torch.Tensor:
        keep = torch.ones(math.prod(units_shape), dtype=torch.bool)
        keep[self.order[:k]] = False
        return keep.reshape(units_shape)


def rank_layer(key: str, weight: torch.Tensor, geo: Geometry, previous: torch.Tensor | None,
               gran: Granularity, opts: dict, values: str | None = None) -> tuple[Ranked | WholeRanked, tuple[int, ...]]:
    """Rank one layer's units; ``values`` ``"rms"`` or ``"lamp"`` adds cross-layer scores.
    Also returns the per-unit shape (for :meth:`Ranked.keep_units`). Layers whose units are
    whole (all weights left, or none) are ranked without a sort: the same masks (:mod:`.whole_units`)."""
    def resorted() -> Ranked:
        return rank_sorted(key, weight, geo, previous, gran, opts, values)[0]

    if values in (None, "rms"):
        fast = rank_whole(key, weight, geo, previous, gran, opts, values == "rms", resorted)
        if fast is not None:
            return fast
    return rank_sorted(key, weight, geo, previous, gran, opts, values)


def rank_sorted(key: str, weight: torch.Tensor, geo: Geometry, previous: torch.Tensor | None,
                gran: Granularity, opts: dict, values: str | None = None) -> tuple[Ranked, tuple[int, ...]]:
    """:func:`rank_layer` by sorting every unit (the reference the shortcut must agree with)."""
    scores = gran.unit_scores(weight, geo, previous, key, opts)
    units_shape = tuple(scores.shape)
    live_units = gran.live_units(weight, geo, previous, opts).reshape(-1)  # a slab at a time
    zeros = weight.numel() - int(live_units.sum())
    full = torch.sort(scores.reshape(-1), descending=True, stable=True).indices.flip(0)  # ties: high index first
    droppable = ~gran.always_kept(scores, geo, opts).reshape(-1)[full]
    del scores
    order = full[droppable]
    ranked = Ranked(key, tuple(weight.shape), weight.numel(), zeros, order,
                    live_units[order].cumsum(0, dtype=torch.int64))
    if values is not None:
        live = to_canonical(weight.detach() != 0, geo)
        if previous is not None:
            live &= to_canonical(previous.to(torch.bool), geo)
        mat = to_canonical(weight.detach(), geo)
        size = gran.unit_reduce(torch.ones(mat.shape), geo, opts, "sum").reshape(-1)
        ms = (gran.unit_reduce(mat.float().square() * live, geo, opts, "sum").reshape(-1) / size)[full]
        dead = live_units[full] == 0
        v = lamp_scores(ms.masked_fill(dead, 0.0)) if values == "lamp" else ms.sqrt()
        v = v.masked_fill(dead, -1.0)  # units already empty go first
        ranked.values = torch.cummax(v, 0).values[droppable]  # rounding must not break the order
    return ranked, units_shape


def lamp_scores(ms: torch.Tensor) -> torch.Tensor:
    """LAMP score of each unit of one layer, given their mean squares in ascending order:
    ``ms[i] / sum(ms[i:])`` (0 where that sum is 0)."""
    suffix = ms.double().flip(0).cumsum(0).flip(0)
    return torch.where(suffix > 0, ms.double() / suffix.clamp(min=1e-300), torch.zeros((), dtype=torch.float64))


# --------------------------------------------------------------------------- allocations
class Allocation:
    """Chooses how many units each pruned layer drops to reach ``need`` zeros in all of them."""

    name = ""
    values: str | None = None  # the cross-layer score :func:`rank_layer` must compute

    def refuse(self, granularity: str) -> str | None:
        """Why this allocation is not defined for ``granularity`` (None when it is)."""
        if granularity == "nm":
            return (f"--allocation {self.name} moves sparsity between layers, but N:M fixes every pruned layer "
                    "at the same pattern; use --allocation uniform with --granularity nm")
        return None

    def drops(self, layers: list[Ranked], need: int) -> list[int]:
        raise NotImplementedError


ALLOCATIONS: Registry[Allocation] = Registry("allocation")


def _register(cls: type[Allocation]) -> type[Allocation]:
    ALLOCATIONS.add(cls.name, cls())
    return cls


class RateAllocation(Allocation):
    """Layer targets ``budget(layer, lam)``, nondecreasing in ``lam`` from 0 (dense) to 1 (all)."""

    def budgets(self, layers: list[Ranked]) -> Callable[[Ranked, float], float]:
        raise NotImplementedError

    def drops(self, layers, need):
        budget = self.budgets(layers)

        def counts(lam: float) -> list[int]:
            return [_fit(r, budget(r, lam)) for r in layers]

        lo, hi = 0.0, 1.0
        if _total(layers, counts(hi)) <= need:
            return counts(hi)
        for _ in range(_BISECT):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _total(layers, counts(mid)) <= need else (lo, mid)
        return _settle(layers, counts(lo), counts(hi), need)


def _fit(r: Ranked, target: float) -> int:
    """Most units ``r`` can drop while its zeros stay at or below ``target``."""
    return r.fit(math.floor(target) - r.zeros)


def _total(layers: list[Ranked], ks: list[int]) -> int:
    return sum(r.zeros_after(k) for r, k in zip(layers, ks))


def _settle(layers: list[Ranked], low: list[int], high: list[int], need: int) -> list[int]:
    """From ``low`` (at or under ``need``), add the units up to ``high`` one at a time while each
    brings the total nearer to ``need``."""
    ks, total = list(low), _total(layers, low)
    for i, r in enumerate(layers):
        while ks[i] < high[i]:
            step = r.zeros_after(ks[i] + 1) - r.zeros_after(ks[i])
            if total + step - need >= need - total and step:
                break
            ks[i], total = ks[i] + 1, total + step
    return ks


@_register
class Uniform(RateAllocation):
    name = "uniform"

    def refuse(self, granularity):
        return None

    def budgets(self, layers):
        return lambda r, lam: lam * r.weights


@_register
class ErdosRenyiKernel(RateAllocation):
    name = "erk"

    def budgets(self, layers):
        raw = {r.key: sum(r.shape) / math.prod(r.shape) for r in layers}
        low = min(raw.values())
        return lambda r, lam: r.weights * (1.0 - min(1.0, (1.0 - lam) * raw[r.key] / low))


class PlanAllocation(RateAllocation):
    """A per-layer plan (``{param key: sparsity}``) scaled together: ``lam`` 0.5 is the plan itself."""

    name = "plan"

    def __init__(self, plan: dict[str, float]) -> None:
        self.plan = plan

    def budgets(self, layers):
        return lambda r, lam: r.weights * min(1.0, self.plan[r.key] * lam / max(1.0 - lam, 1e-12))


class ThresholdAllocation(Allocation):
    """One threshold on ``values`` over all pruned layers."""

    def drops(self, layers, need):
        layers = [r.resorted() if isinstance(r, WholeRanked) else r for r in layers]
        room = need - sum(r.zeros for r in layers)
        if room <= 0 or not any(len(r.order) for r in layers):
            return [0] * len(layers)
        values = torch.cat([r.values for r in layers])
        owner = torch.cat([torch.full((len(r.order),), i, dtype=torch.long) for i, r in enumerate(layers)])
        step = torch.cat([torch.diff(r.gain, prepend=r.gain.new_zeros(1)) for r in layers])
        order = torch.sort(values, stable=True).indices
        cum = step[order].cumsum(0)
        k = int(torch.searchsorted(cum, torch.tensor(room), right=True))
        under = int(cum[k - 1]) if k else 0
        if k < len(cum) and int(cum[k]) - room < room - under:
            k += 1
        return torch.bincount(owner[order[:k]], minlength=len(layers)).tolist()


@_register
class GlobalMagnitude(ThresholdAllocation):
    name = "global"
    values = "rms"

    def drops(self, layers, need):
        if all(isinstance(r, WholeRanked) for r in layers):
            return global_whole_drops(layers, need)
        return super().drops(layers, need)


@_register
class Lamp(ThresholdAllocation):
    name = "lamp"
    values = "lamp"


def check_allocation(name: str, granularity: str) -> Allocation:
    """The registered allocation ``name``; :class:`InputError` when it is unknown or undefined
    for ``granularity``."""
    if not isinstance(name, str):
        raise InputError(f"allocation must be a name, got {name!r}")
    alloc = ALLOCATIONS.get(name)
    why = alloc.refuse(granularity)
    if why:
        raise InputError(why)
    return alloc


__all__ = ["ALLOCATIONS", "Allocation", "PlanAllocation", "Ranked", "check_allocation", "lamp_scores", "rank_layer",
           "rank_sorted"]
