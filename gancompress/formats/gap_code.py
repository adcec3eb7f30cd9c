"""Golomb-Rice codes of the kept positions of a sparse tensor (the sparse layout's ``rice`` encoding).

The kept positions ``p_0 < p_1 < ...`` of the flattened tensor are stored as gaps
``g_i = p_i - p_{i-1} - 1`` (``p_{-1} = -1``), each split at bit ``k`` into a quotient
``g >> k`` and its ``k`` low bits, kept in two separate bit streams (packed little):

* ``high``: for every gap, ``g >> k`` zero bits and then a one bit;
* ``low``: every gap's ``k`` low bits, least significant first.

Separate streams make decoding whole-array numpy work (no loop per weight): the ones of
``high`` close the gaps, so quotient ``i`` is the distance between the ``i``-th one and the one
before it, minus one; the low bits are fixed-width fields. With ``k`` near ``log2`` of the mean
gap, a kept position costs about ``k + 2`` bits: at 10% density 0.48 bit per weight (the
entropy of the mask is 0.47), against the bitmask's 1. The decoder checks every count and
bound against the bytes present before it allocates anything the size of the tensor.
"""
from __future__ import annotations

import math

import numpy as np

MAX_K = 32  # low bits per gap a reader accepts (a 2**32 mean gap is far beyond any weight)


def _ceil8(n: int) -> int:
    return (n + 7) // 8


def gaps_of(positions: np.ndarray) -> np.ndarray:
    """The gaps (skipped entries before each kept one) of sorted positions (a new array)."""
    gaps = np.diff(positions.astype(np.int64, copy=False), prepend=-1)
    gaps -= 1
    return gaps


def stream_bytes(gaps: np.ndarray, k: int) -> int:
    """Bytes of both streams for these gaps at parameter ``k``."""
    high = gaps.size + int((gaps >> k).sum())
    return _ceil8(high) + _ceil8(gaps.size * k)


def best_k(gaps: np.ndarray) -> int:
    """The ``k`` (near ``log2`` of the mean gap) that makes the streams smallest."""
    if gaps.size == 0:
        return 0
    k0 = min(int(math.log2(float(gaps.mean()) + 1.0)), MAX_K)
    tried = range(max(0, k0 - 2), min(MAX_K, k0 + 2) + 1)
    return min(tried, key=lambda k: (stream_bytes(gaps, k), k))


def encode_positions(positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(high, low)`` packed uint8 streams of sorted, distinct positions."""
    return encode_gaps(gaps_of(positions), k)


def encode_gaps(gaps: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The streams of ``gaps`` (int64; overwritten with their low bits: no temporaries of its size beyond one)."""
    ends = gaps >> k
    ends += 1
    np.cumsum(ends, out=ends)
    ends -= 1  # where each gap's closing one bit goes
    bits = np.zeros(int(ends[-1]) + 1 if ends.size else 0, dtype=np.uint8)
    bits[ends] = 1
    del ends
    gaps &= (1 << k) - 1
    return np.packbits(bits, bitorder="little"), _pack_low(gaps, k)


def _pack_low(low: np.ndarray, k: int) -> np.ndarray:
    if k == 0 or low.size == 0:
        return np.zeros(0, dtype=np.uint8)
    as_bytes = low.astype("<u8", copy=False).view(np.uint8).reshape(-1, 8)[:, :_ceil8(k)]
    bits = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :k]
    return np.packbits(bits.reshape(-1), bitorder="little")


def _unpack_low(low: np.ndarray, count: int, k: int) -> np.ndarray:
    if k == 0:
        return np.zeros(count, dtype=np.int64)
    bits = np.unpackbits(low, count=count * k, bitorder="little").reshape(count, k)
    fields = np.zeros((count, 8), dtype=np.uint8)
    fields[:, :_ceil8(k)] = np.packbits(bits, axis=1, bitorder="little")
    return fields.view("<u8").reshape(-1).astype(np.int64)


def _check_streams(high: np.ndarray, low: np.ndarray, count: int, k: int, size: int) -> None:
    """Dtypes and byte counts, before anything is unpacked."""
    for what, arr in (("gaps_high", high), ("gaps_low", low)):
        if arr.dtype != np.uint8 or arr.ndim != 1:
            raise ValueError(f"{what} must be a 1-D uint8 array, found {arr.dtype} {list(arr.shape)}")
    most = count + (max(size - count, 0) >> k)  # one closing bit per gap, plus every gap's quotient at most
    if high.size > _ceil8(most):
        raise ValueError(f"gaps_high holds {high.size} bytes, more than {count} gaps in {size} entries can need")


def _closing_bits(high: np.ndarray, count: int) -> np.ndarray:
    """Where each gap ends in ``high``: exactly ``count`` one bits, the stream no longer than the last one needs."""
    ends = np.flatnonzero(np.unpackbits(high, bitorder="little"))
    if ends.size != count:
        raise ValueError(f"gaps_high closes {ends.size} gaps but {count} values are stored")
    if high.size != (_ceil8(int(ends[-1]) + 1) if count else 0):
        raise ValueError("gaps_high has bytes after its last gap")
    return ends


def _checked_low(low: np.ndarray, count: int, k: int) -> np.ndarray:
    if low.size != _ceil8(count * k):
        raise ValueError(f"gaps_low holds {low.size} bytes but {count} gaps of {k} low bits need {_ceil8(count * k)}")
    if count * k % 8 and low[-1] >> (count * k % 8):
        raise ValueError("gaps_low has padding bits set after its last gap")
    return _unpack_low(low, count, k)


def decode_positions(high: np.ndarray, low: np.ndarray, count: int, k: int, size: int) -> np.ndarray:
    """The ``count`` sorted positions the streams encode, each checked to lie in ``[0, size)``;
    :class:`ValueError` naming the fault for streams a writer cannot have produced."""
    _check_streams(high, low, count, k, size)
    ends = _closing_bits(high, count)
    low_bits = _checked_low(low, count, k)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    positions = np.diff(ends, prepend=-1)  # the quotients, plus one
    del ends
    span = float(positions.sum() - count) * 2.0 ** k + float(low_bits.sum(dtype=np.float64)) + count  # float: no wrap
    if span > size + 1.0:
        raise ValueError(f"the gaps run past the tensor's {size} entries")
    positions -= 1
    positions <<= k
    positions += low_bits
    del low_bits
    positions += 1
    np.cumsum(positions, out=positions)
    positions -= 1
    if int(positions[-1]) >= size:
        raise ValueError(f"a kept position ({int(positions[-1])}) lies past the tensor's {size} entries")
    return positions
