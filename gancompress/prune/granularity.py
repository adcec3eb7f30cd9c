"""Pruning granularities: which weights form one prunable *unit* and how a unit is scored.

All granularities work on the canonical ``(out, slots*ksize)`` view of :mod:`.layers`
(rows = output units, columns = ``(in_slot, *kernel)`` row-major). Units and scores:

``element``  one weight; score ``|w|``.
``vector``   one line of the last kernel axis, ``w[o, i, r, :]`` (``kw`` weights); L2 norm.
             Linear and 1x1 convs have ``kw == 1``: a vector is one weight (= ``element``);
             Conv1d: a vector is the whole kernel (= ``kernel``).
``kernel``   ``w[o, i, ...]``: all kernel taps of one (output, input) pair; L2 norm.
             Linear: one weight (= ``element``).
``filter``   one output channel / output feature (a canonical row; dim 1 of a transposed
             conv weight); L2 norm.
``channel``  one *true* input channel across every output that reads it: with groups,
             input channel ``c`` of group ``g`` is the in-slot ``c % (in/g)`` of the outputs of
             group ``g`` only (depthwise: one kernel). groups=1: a column-slot over all rows.
``block``    an ``R x C`` tile of the canonical view, ragged edge tiles allowed; score is
             the *mean of squares* of the tile so smaller edge tiles are not penalised.
``nm``       N:M: in each run of M consecutive input channels (``nm_axis`` ``in``: for one output
             and one kernel tap; the GEMM reduction dimension sparse tensor cores need) keep
             the N largest ``|w|``; a ragged last run of ``L < M`` keeps ``ceil(N*L/M)``.
             ``nm_axis`` ``kernel`` runs along the canonical columns instead (kernel width
             fastest: the layout of files written before the ``in`` axis existed).

Selection: a layer with ``u`` units loses exactly ``min(round(s*u), u-1)`` units (round half
up; at least one unit is always kept), those with the smallest score. Ties keep the lower
flat unit index. Scores are float32; the threshold is found by an exact radix select over
the float bits (no sort, no index tensors), so memory stays small on huge layers.

``previous`` masks: pruned weights are zero when scoring; a unit whose weights are *all*
previously pruned scores -1 (below any live unit) and the returned mask is ``new & previous``,
so old zeros always stay. When the new granularity is coarser than the old scattered zeros,
partially-pruned units simply score lower; their old zeros survive inside kept units, so
the achieved weight sparsity can exceed the target (and the structure is then mixed).
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import torch

from ..errors import InputError
from ..registry import Registry
from .layers import CONV, CONV_TRANSPOSE, Geometry, canonical_rows, from_canonical, geometry, to_canonical

_HALF = 1 << 15
_BINS = 1 << 16
_PIECE = 1 << 22  # elements per chunk in the radix passes
_GATHER_MAX = 1 << 20  # a crowded bucket is resolved by a low-bits histogram instead


# --------------------------------------------------------------------------- parsing
def parse_block(value: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``"4x4"`` or ``(4, 4)`` -> ``(rows, cols)``; both positive integers."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
        pair = (int(m.group(1)), int(m.group(2))) if m else None
    else:
        pair = tuple(value) if isinstance(value, (tuple, list)) and len(value) == 2 else None
    if pair is None or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair):
        raise InputError(f"invalid block {value!r}: give ROWSxCOLS with positive integers, e.g. 4x4")
    return pair  # type: ignore[return-value]


def parse_nm(value: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``"2:4"`` or ``(2, 4)`` -> ``(n, m)`` with ``1 <= n < m`` (keep n of every m)."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", value)
        pair = (int(m.group(1)), int(m.group(2))) if m else None
    else:
        pair = tuple(value) if isinstance(value, (tuple, list)) and len(value) == 2 else None
    ok = pair is not None and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
    if not ok or not 1 <= pair[0] < pair[1]:
        raise InputError(f"invalid N:M {value!r}: keep N of every M weights with 1 <= N < M, e.g. 2:4")
    return pair  # type: ignore[return-value]


NM_AXES = ("in", "kernel")


def parse_nm_axis(value: Any) -> str:
    """``in`` (N:M runs along the input channels, what sparse tensor cores use) or ``kernel``
    (runs along canonical columns, the layout of files written before the ``in`` axis)."""
    if value not in NM_AXES:
        raise InputError(f"unknown N:M axis {value!r}; choose one of: {', '.join(NM_AXES)} (in: along the input "
                         "channels, the layout sparse tensor cores use; kernel: the older layout)")
    return value


def check_sparsity(value: Any) -> float:
    """A sparsity as float in ``[0, 1)``; numeric strings are accepted."""
    try:
        s = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        s = math.nan
    if not 0.0 <= s < 1.0:
        raise InputError(
            f"invalid sparsity {value!r}: give the fraction of weights to remove, a number in "
            "[0, 1) such as 0.5 (1.0 would delete the whole layer)"
        )
    return s


def prune_count(units: int, sparsity: float) -> int:
    """Units to remove: ``round(sparsity*units)`` (half up), capped to keep one unit."""
    return max(0, min(int(math.floor(sparsity * units + 0.5)), units - 1))


# --------------------------------------------------------------------------- selection
def _bits_to_float(bits: int, nan_as: float) -> float:
    v = torch.tensor([bits], dtype=torch.int32).view(torch.float32).item()
    return nan_as if math.isnan(v) else v


def _pieces(chunks: list):
    """Flat float32 pieces of ``chunks``: tensors, or re-iterable sources that yield flat pieces
    (scores computed again on every pass, e.g. :class:`.element_scores.ElementScores`)."""
    for c in chunks:
        yield from c.reshape(-1).split(_PIECE) if isinstance(c, torch.Tensor) else c


def count_where(chunks: list, test) -> int:
    """How many values of ``chunks`` (as :func:`_pieces` reads them) pass ``test``, a piece at a time."""
    return sum(int(torch.count_nonzero(test(p))) for p in _pieces(chunks))


def check_finite(scores: torch.Tensor, layer: str) -> None:
    """:class:`InputError` when ``scores`` hold a NaN or Inf (they propagate to the max)."""
    if scores.numel() and not math.isfinite(float(scores.amax())):
        raise InputError(f"layer {layer!r} has NaN/Inf weights; fix or re-export the checkpoint")


def _histogram(chunks: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Counts per bucket of the top 16 float bits in ascending float order, and the number
    of -0.0 values (moved from the bucket of tiny negatives to that of +0.0)."""
    raw = torch.zeros(_BINS, dtype=torch.int64)
    for p in _pieces(chunks):
        top = p.view(torch.int32) >> 16
        raw += torch.bincount(top.add_(_HALF), minlength=_BINS)
    hist = torch.cat([raw[:_HALF].flip(0), raw[_HALF:]])  # negative floats sort reversed
    neg0 = 0
    if hist[_HALF - 1]:
        neg0 = sum(int(torch.count_nonzero(p.view(torch.int32) == -(1 << 31))) for p in _pieces(chunks))
        hist[_HALF - 1] -= neg0
        hist[_HALF] += neg0
    return hist, neg0


def _top_bits(bucket: int) -> int:
    """The signed top-16-bit pattern of the floats in ordered ``bucket``."""
    return bucket - _HALF if bucket >= _HALF else -1 - bucket


def _gather_select(chunks: list[torch.Tensor], bucket: int, rank: int) -> float:
    """Gather ``bucket``'s values (float compares) and take the ``rank``-th with kthvalue."""
    base = _top_bits(bucket) << 16
    lo, hi = (base, base | 0xFFFF) if bucket >= _HALF else (base | 0xFFFF, base)
    lo, hi = _bits_to_float(lo, -math.inf), _bits_to_float(hi, math.inf)
    # The bucket below zero ends at -0.0, so ``<= hi`` also admits zeros; they sort after
    # its true members and ``rank`` lies among those, so the answer is unchanged.
    members = torch.cat([p[(p <= hi).logical_and_(p >= lo)] for p in _pieces(chunks)])
    return torch.kthvalue(members, rank + 1).values.item()


def _lowbits_select(chunks: list[torch.Tensor], bucket: int, rank: int, neg0: int) -> float:
    """The ``rank``-th value of ``bucket`` from a histogram of its low 16 bits (no gather)."""
    top = _top_bits(bucket)
    low = torch.zeros(_BINS + 1, dtype=torch.int64)
    for p in _pieces(chunks):
        bits = p.view(torch.int32)
        low += torch.bincount(torch.where((bits >> 16) == top, bits & 0xFFFF, _BINS), minlength=_BINS + 1)
    low = low[:_BINS]
    low[0] += neg0 if bucket == _HALF else (-neg0 if bucket == _HALF - 1 else 0)
    pos = int(torch.searchsorted((low if top >= 0 else low.flip(0)).cumsum(0), torch.tensor(rank), right=True))
    return _bits_to_float((top << 16) | (pos if top >= 0 else 0xFFFF - pos), math.nan)


def kth_smallest(chunks: list, d: int) -> float:
    """Value at 0-based position ``d`` of the sorted concatenation of float32 ``chunks`` (tensors, or
    re-iterable sources of flat pieces: see :func:`_pieces`).

    Exact radix select: one bincount pass over the top 16 float bits picks the bucket; a
    second pass gathers that bucket for ``kthvalue`` or, for a crowded bucket, histograms
    its low 16 bits. NaN-free input only; ``-0.0 == 0.0``. Temporaries are bounded by the
    chunk size (plus a bucket of at most ``_GATHER_MAX`` values): no sort, no index tensor.
    """
    hist, neg0 = _histogram(chunks)
    cum = hist.cumsum(0)
    bucket = int(torch.searchsorted(cum, torch.tensor(d), right=True))
    rank = d - (int(cum[bucket - 1]) if bucket else 0)
    if int(hist[bucket]) > _GATHER_MAX:
        return _lowbits_select(chunks, bucket, rank, neg0)
    return _gather_select(chunks, bucket, rank)


def _drop_last_ties(masks: list[torch.Tensor], scores: list[torch.Tensor], t: float, excess: int) -> None:
    """Un-keep the ``excess`` highest-index values equal to ``t`` (scanning from the end)."""
    for s, m in zip(reversed(scores), reversed(masks)):
        if excess <= 0:
            return
        ties = torch.nonzero((s == t).reshape(-1)).squeeze(1)
        drop = ties[max(0, ties.numel() - excess):]
        m.view(-1)[drop] = False
        excess -= drop.numel()


def select_top(scores: list[torch.Tensor], keep: int) -> list[torch.Tensor]:
    """Bool masks (shaped like ``scores``) keeping the ``keep`` largest values overall.

    Ties at the threshold keep the lowest index, ``scores`` taken in list then flat order.
    """
    scores = [s.float().contiguous() for s in scores]
    n = sum(s.numel() for s in scores)
    if keep >= n or keep <= 0:
        return [torch.full_like(s, keep > 0, dtype=torch.bool) for s in scores]
    t = kth_smallest(scores, n - keep)
    masks = [s >= t for s in scores]
    _drop_last_ties(masks, scores, t, sum(int(torch.count_nonzero(m)) for m in masks) - keep)
    return masks


# --------------------------------------------------------------------------- granularities
class Granularity:
    """A unit structure on the canonical view; subclasses define ``grid``."""

    name = "element"
    single = False  # every unit is one weight scored by ``|w|`` (what the global allocation compares)

    def grid(self, mat: torch.Tensor, geo: Geometry, opts: dict) -> tuple[torch.Tensor, tuple[int, ...]]:
        """``(view, dims)``: reducing ``view`` over ``dims`` yields one value per unit."""
        return mat, ()

    def validate(self, geo: Geometry, opts: dict, layer: str) -> None:
        """Raise :class:`InputError` when the layer cannot take this granularity."""

    def unit_reduce(self, mat: torch.Tensor, geo: Geometry, opts: dict, op: str = "sum") -> torch.Tensor:
        """Reduce a canonical-shaped tensor per unit with ``sum``, ``any`` or ``l2``."""
        view, dims = self.grid(mat, geo, opts)
        if not dims:
            return view.abs() if op == "l2" else view
        if op == "l2":
            return torch.linalg.vector_norm(view, dim=dims)
        if op == "any":
            return view.any(dim=dims)
        if view.dtype.is_floating_point:
            return view.sum(dim=dims)
        return _sliced_sum(view, dims)

    def expand(self, units: torch.Tensor, geo: Geometry, opts: dict) -> torch.Tensor:
        """Broadcast one value per unit back to the canonical ``(out, cols)`` shape."""
        shape, dims = self.grid_shape(geo, opts)
        if not dims:
            return units.reshape(geo.out, geo.cols)
        full = units.reshape([1 if i in dims else s for i, s in enumerate(shape)]).expand(shape)
        rows = math.prod(shape) // self.padded_cols(geo, opts)
        return full.reshape(rows, -1)[: geo.out, : geo.cols]

    def grid_shape(self, geo: Geometry, opts: dict) -> tuple[tuple[int, ...], tuple[int, ...]]:
        view, dims = self.grid(torch.empty(geo.out, geo.cols, device="meta"), geo, opts)
        return tuple(view.shape), dims

    def padded_cols(self, geo: Geometry, opts: dict) -> int:
        return geo.cols

    def unit_size(self, geo: Geometry, opts: dict) -> int:
        """Weights in the largest unit (a whole tile for ``block``), from the shapes alone."""
        shape, dims = self.grid_shape(geo, opts)
        return math.prod(shape[d] for d in dims)

    def scores(self, mat: torch.Tensor, geo: Geometry, opts: dict) -> torch.Tensor:
        """Unit scores (float32) of a canonical weight matrix."""
        return self.unit_reduce(mat.float(), geo, opts, "l2")

    def unit_scores(self, weight: torch.Tensor, geo: Geometry, previous: torch.Tensor | None,
                    layer: str, opts: dict) -> torch.Tensor:
        """Scores per unit; units fully pruned in ``previous`` score -1."""
        self.validate(geo, opts, layer)
        prev = None if previous is None else to_canonical(previous.to(torch.bool), geo)
        if self.name != "channel":  # a channel spans every row; other units lie in a few rows
            s = self._slab_scores(weight.detach(), prev, geo, opts)
        else:
            mat = to_canonical(weight.detach(), geo)
            s = self.scores(mat if prev is None else mat * prev, geo, opts)
        check_finite(s, layer)
        return s if prev is None else s.masked_fill_(~self.unit_reduce(prev, geo, opts, "any"), -1.0)

    def row_slabs(self, geo: Geometry, opts: dict) -> list[slice]:
        """Slices of canonical rows that hold whole units (whole rows of tiles for ``block``), ``_SLICE``
        weights or so each; not for ``channel``, whose units span every row."""
        align = opts["block"][0] if self.name == "block" else 1
        step = max(align, _SLICE // max(1, geo.cols) // align * align)
        return [slice(start, start + step) for start in range(0, geo.out, step)]

    def _slab_scores(self, weight: torch.Tensor, prev: torch.Tensor | None, geo: Geometry, opts: dict) -> torch.Tensor:
        """:meth:`scores` (of the weight times the canonical ``prev``) a slab of whole units' rows at a time, so
        neither a transposed conv's reordered copy nor scoring's float temporaries span the whole weight."""
        parts = []
        for rows in self.row_slabs(geo, opts):
            mat = canonical_rows(weight, geo, rows)
            mat = mat if prev is None else mat * prev[rows]
            parts.append(self.scores(mat, dataclasses.replace(geo, out=mat.shape[0], groups=1), opts))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def live_units(self, weight: torch.Tensor, geo: Geometry, previous: torch.Tensor | None, opts: dict) -> torch.Tensor:
        """Weights left per unit (nonzero and not masked before), counted a slab of rows at a time where the
        units allow (no bool, or canonical copy of one, the size of the weight)."""
        if self.name == "channel":
            live = to_canonical(weight.detach() != 0, geo)
            if previous is not None:
                live = live & to_canonical(previous.to(torch.bool), geo)
            return self.unit_reduce(live.to(torch.uint8), geo, opts, "sum")
        parts = []
        for rows in self.row_slabs(geo, opts):
            live = canonical_rows(weight.detach(), geo, rows) != 0
            if previous is not None:
                live &= canonical_rows(previous, geo, rows).to(torch.bool)
            part_geo = dataclasses.replace(geo, out=live.shape[0], groups=1)
            parts.append(self.unit_reduce(live if self.single else live.to(torch.uint8), part_geo, opts, "sum"))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def always_kept(self, scores: torch.Tensor, geo: Geometry, opts: dict) -> torch.Tensor:
        """Bool per unit (shaped like ``scores``): the units no sparsity removes; here the best
        one (ties: the lowest index), so a layer is never emptied."""
        keep = torch.zeros(scores.numel(), dtype=torch.bool)
        if scores.numel():
            keep[int(scores.reshape(-1).argmax())] = True
        return keep.reshape(scores.shape)

    def to_mask(self, keep_units: torch.Tensor, geo: Geometry, previous: torch.Tensor | None,
                opts: dict) -> torch.Tensor:
        """Raw-shaped bool weight mask from a per-unit keep mask (and'ed with ``previous``)."""
        if self.name == "channel" or (geo.kind == CONV_TRANSPOSE and geo.groups != 1):  # a channel spans every row
            m = from_canonical(self.expand(keep_units, geo, opts), geo).contiguous()
        else:
            m = self._slab_mask(keep_units, geo, opts)
        return m if previous is None else m.logical_and_(previous.to(torch.bool))

    def _slab_mask(self, keep_units: torch.Tensor, geo: Geometry, opts: dict) -> torch.Tensor:
        """:meth:`to_mask` written a slab of rows at a time straight into the raw layout (no whole
        canonical mask next to the result); the first axis of ``keep_units`` runs over rows (of tiles)."""
        align = opts["block"][0] if self.name == "block" else 1
        step = max(align, _SLICE // max(1, geo.cols) // align * align)
        mask = torch.empty(geo.shape, dtype=torch.bool)
        rows = (mask.reshape(geo.slots, geo.out, geo.ksize).permute(1, 0, 2) if geo.kind == CONV_TRANSPOSE
                else mask.reshape(geo.out, geo.slots, geo.ksize))  # the canonical rows, as a view of ``mask``
        for start in range(0, geo.out, step):
            stop = min(geo.out, start + step)
            part = self.expand(keep_units[start // align: -(-stop // align)],
                               dataclasses.replace(geo, out=stop - start, groups=1), opts)
            rows[start:stop] = part.reshape(stop - start, geo.slots, geo.ksize)
        return mask

    def mask(self, weight: torch.Tensor, sparsity: float, kind: str = CONV, *, groups: int = 1,
             previous: torch.Tensor | None = None, layer: str = "weight", **opts: Any) -> torch.Tensor:
        """Bool mask (True = keep) removing ``min(round(sparsity*units), units-1)`` units."""
        sparsity = check_sparsity(sparsity)
        opts = normalize_opts(opts)
        geo = geometry(weight.shape, kind, groups)
        s = self.unit_scores(weight, geo, previous, layer, opts)
        keep = s.numel() - prune_count(s.numel(), sparsity)
        return self.to_mask(select_top([s], keep)[0], geo, previous, opts)


_SLICE = 1 << 21  # elements scored or summed at once: an integer sum casts its input to int64 (8 bytes per weight)


def _sliced_sum(view: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``view.sum(dims)`` for bool/integer views, a slice of the longest kept dimension at a time,
    so the cast to int64 that the sum makes is never bigger than ``_SLICE`` elements."""
    kept = [d for d in range(view.dim()) if d not in dims]
    d = max(kept, key=lambda i: view.shape[i])
    size = view.shape[d]
    step = max(1, _SLICE * size // max(1, view.numel()))
    if step >= size:
        return view.sum(dim=dims)
    out_dim = d - sum(1 for r in dims if r < d)
    return torch.cat([view.narrow(d, s, min(step, size - s)).sum(dim=dims) for s in range(0, size, step)], out_dim)


def normalize_opts(opts: dict) -> dict:
    """Parse ``block``/``nm``/``nm_axis`` options (strings or pairs), filling defaults."""
    extra = set(opts) - {"block", "nm", "nm_axis"}
    if extra:
        raise TypeError(f"unknown granularity options {sorted(extra)}")
    return {"block": parse_block(opts.get("block", (4, 4))), "nm": parse_nm(opts.get("nm", (2, 4))),
            "nm_axis": parse_nm_axis(opts.get("nm_axis", "in"))}


GRANULARITIES: Registry[Granularity] = Registry("granularity")


def _register(cls: type[Granularity]) -> type[Granularity]:
    GRANULARITIES.add(cls.name, cls())
    return cls


@_register
class Element(Granularity):
    name = "element"
    single = True


@_register
class Vector(Granularity):
    name = "vector"

    def grid(self, mat, geo, opts):
        return mat.reshape(geo.out, geo.slots, geo.ksize // geo.kw, geo.kw), (3,)


@_register
class Kernel(Granularity):
    name = "kernel"

    def grid(self, mat, geo, opts):
        return mat.reshape(geo.out, geo.slots, geo.ksize), (2,)


@_register
class Filter(Granularity):
    name = "filter"

    def grid(self, mat, geo, opts):
        return mat, (1,)


@_register
class Channel(Granularity):
    name = "channel"

    def grid(self, mat, geo, opts):
        g = geo.groups
        return mat.reshape(g, geo.out // g, geo.slots, geo.ksize), (1, 3)


@_register
class Block(Granularity):
    name = "block"

    def validate(self, geo, opts, layer):
        br, bc = opts["block"]
        if br > geo.out or bc > geo.cols:
            raise InputError(
                f"block {br}x{bc} is larger than layer {layer!r}, whose weight is {geo.out}x{geo.cols} "
                "as (out, in*kernel); choose a smaller --block or --exclude that layer"
            )

    def grid(self, mat, geo, opts):
        br, bc = opts["block"]
        pr, pc = -geo.out % br, -geo.cols % bc
        if pr or pc:
            mat = torch.nn.functional.pad(mat, (0, pc, 0, pr))
        return mat.reshape(mat.shape[0] // br, br, mat.shape[1] // bc, bc), (1, 3)

    def padded_cols(self, geo, opts):
        return geo.cols + (-geo.cols % opts["block"][1])

    def scores(self, mat, geo, opts):
        """Mean of squares per tile; ``ceil_mode`` pooling averages ragged tiles over their size."""
        block = opts["block"]
        sq = mat.float().square()[None]
        return torch.nn.functional.avg_pool2d(sq, block, block, ceil_mode=True)[0]


@_register
class NM(Granularity):
    """N:M: keep N of every M weights along the input channels (``nm_axis`` ``in``) or along
    the canonical columns (``kernel``). Units are single weights; the N largest of every run
    are always kept, so a layer's sparsity can grow up to the pattern's and no further."""

    name = "nm"
    single = True

    def always_kept(self, scores: torch.Tensor, geo: Geometry, opts: dict) -> torch.Tensor:
        """Bool per unit (canonical shape): the N largest of every run of M."""
        axis = opts["nm_axis"]
        return nm_unrows(nm_keep(nm_rows(scores, geo, axis), *opts["nm"]), geo, axis)

    def mask(self, weight, sparsity=None, kind=CONV, *, groups=1, previous=None, layer="weight", **opts):
        """The full N:M pattern of one weight; ``sparsity`` is ignored."""
        opts = normalize_opts(opts)
        geo = geometry(weight.shape, kind, groups)
        s = Element().unit_scores(weight, geo, previous, layer, opts)
        m = from_canonical(self.always_kept(s, geo, opts), geo).contiguous()
        return m if previous is None else m & previous.to(torch.bool)


def nm_rows(mat: torch.Tensor, geo: Geometry, axis: str) -> torch.Tensor:
    """A canonical ``(out, slots*ksize)`` matrix as rows whose consecutive entries form N:M runs:
    ``in``: one row per (output, kernel tap) running over the input slots (the GEMM reduction
    dimension; a transposed conv's dim 0); ``kernel``: the canonical rows themselves."""
    if axis == "kernel":
        return mat
    return mat.reshape(geo.out, geo.slots, geo.ksize).transpose(1, 2).reshape(geo.out * geo.ksize, geo.slots)


def nm_unrows(rows: torch.Tensor, geo: Geometry, axis: str) -> torch.Tensor:
    """Inverse of :func:`nm_rows`."""
    if axis == "kernel":
        return rows
    return rows.reshape(geo.out, geo.ksize, geo.slots).transpose(1, 2).reshape(geo.out, geo.cols)


def nm_for_sparsity(sparsity: float, runs: int = 4, longest: int = 64) -> tuple[int, int]:
    """The N:M pattern whose own sparsity ``1 - N/M`` is ``sparsity``, with runs of ``runs`` or the
    shortest longer runs that fit (0.5 -> 2:4, 0.75 -> 1:4, 0.9 -> 1:10)."""
    for m in range(max(2, runs), longest + 1):
        n = (1.0 - sparsity) * m
        if abs(n - round(n)) < 1e-6 and 1 <= round(n) < m:
            return int(round(n)), m
    raise InputError(f"no N:M pattern with runs of {runs} to {longest} weights gives sparsity {sparsity:g}; "
                     "choose a sparsity such as 0.5 (2:4), 0.75 (1:4) or 0.875 (1:8)")


def nm_pattern_zeros(geo: Geometry, nm: tuple[int, int], axis: str) -> int:
    """Zeros of a full N:M pattern on a weight of ``geo`` (a ragged run of L keeps ceil(N*L/M))."""
    n, m = nm
    length = geo.slots if axis == "in" else geo.cols
    rows = geo.out * (geo.ksize if axis == "in" else 1)
    full, rest = divmod(length, m)
    return rows * (full * (m - n) + rest - (-(-n * rest // m)))


def implied_sparsity(nm: tuple[int, int]) -> float:
    """Sparsity of an N:M pattern: ``1 - N/M``."""
    return 1.0 - nm[0] / nm[1]


def nm_keep(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Per row of a 2-D ``scores``, keep the ``n`` largest of each ``m`` consecutive columns.

    A ragged last run of ``L`` columns keeps ``ceil(n*L/m)``. Ties keep the lower column.
    """
    rows, cols = scores.shape
    full = cols - cols % m
    out = torch.empty(rows, cols, dtype=torch.bool)
    out[:, :full] = _rank_keep(scores[:, :full].reshape(rows, -1, m), n).reshape(rows, full)
    if full < cols:
        out[:, full:] = _rank_keep(scores[:, full:], -(-n * (cols - full) // m))
    return out


def _rank_keep(s: torch.Tensor, n: int) -> torch.Tensor:
    """Keep the ``n`` largest along the last (short) axis; M(M-1)/2 vectorised comparisons."""
    m = s.shape[-1]
    cols = s.reshape(-1, m).t().contiguous()  # one contiguous row per position in the run
    rank = torch.zeros(cols.shape, dtype=torch.int16 if m < 1 << 15 else torch.int32)
    for j in range(m):
        for i in range(j):
            beats = cols[i] >= cols[j]  # the earlier position wins ties
            rank[j] += beats
            rank[i] += beats.logical_not_()
    return (rank < n).t().reshape(s.shape)


def granularity_mask(name: str, weight: torch.Tensor, sparsity: float, kind: str = CONV,
                     **kwargs: Any) -> torch.Tensor:
    """Convenience: ``GRANULARITIES.get(name).mask(...)``."""
    return GRANULARITIES.get(name).mask(weight, sparsity, kind, **kwargs)
