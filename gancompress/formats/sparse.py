"""The ``gancompress-sparse`` safetensors layout (versions 1 and 2): encode and decode.

Every tensor of the generator's state dict is stored under its own name in one of seven
encodings, chosen per tensor as the smallest (see ``docs/sparse_format.md``):

* ``dense``   -- ``<name>`` as it is;
* ``bitmask`` -- compressed-tensors' sparse-bitmask layout over the 2-D view (rows = dim 0,
  columns = the other dims flattened row-major): ``<name>.shape`` (int64),
  ``<name>.compressed`` (non-zeros, row-major), ``<name>.bitmask`` (uint8,
  ``numpy.packbits(mask2d, axis=-1, bitorder="little")``), ``<name>.row_offsets`` (int64);
* ``slices``  -- whole slices along ``axis`` (filters/channels): ``<name>.shape``,
  ``<name>.compressed`` (kept slices stacked), ``<name>.slice_mask`` (packbits, little);
* ``blocks``  -- ``br x bc`` tiles of the ``axis`` view (rows = dim ``axis``, columns = the
  other dims in order): ``<name>.shape``, ``<name>.compressed`` (kept tiles,
  ``(k, br, bc)``, zero padded at the edges), ``<name>.block_mask`` (packbits of the
  row-major tile grid, little);
* ``nm``      -- at most ``n`` kept values in every group of ``m`` consecutive columns of the
  ``axis`` view: ``<name>.shape``, ``<name>.compressed`` (``(rows, groups * n)``),
  ``<name>.indices`` (each in-group index in ``ceil(log2 m)`` bits, little-endian, packed
  little). The groups run along the last dims (a conv's kernel width: the older N:M layout);
* ``nm_dim``  -- the same arrays, the groups running along dimension ``dim`` (the input
  channels: dim 1 of a conv or Linear weight, dim 0 of a transposed conv's): the view is
  ``moveaxis(a, dim, -1)`` flattened to ``(-1, shape[dim])``. 2:4 stores the kept half of the
  values plus 2 bits per value, against a bit per weight plus the values for ``bitmask``;
* ``rice``    -- the kept positions of the flattened tensor as Golomb-Rice coded gaps
  (:mod:`.gap_code`): ``<name>.shape``, ``<name>.compressed`` (non-zeros, row-major),
  ``<name>.gaps_high`` and ``<name>.gaps_low`` (packed bit streams), parameter ``k``. About
  ``k + 2`` bits per kept value: at 10% density half the bitmask's bit per weight. Format
  version 2: a file that uses it declares ``format_version`` 2, other files stay version 1.

"Non-zero" means a non-zero *bit pattern*, so ``-0.0`` and NaN survive and the dense
reconstruction is bit-identical. Decoding validates every array and raises
:class:`~gancompress.errors.InputError` for a damaged file, never returns garbage.
The codec works on numpy arrays; bfloat16 travels as its int16 bit pattern.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from . import gap_code

FORMAT_SPARSE = "gancompress-sparse"
FORMAT_DENSE = "gancompress-dense"
FORMAT_VERSION = "1"  # files that use only the version-1 encodings keep declaring it (older readers read them)
ENCODINGS = ("dense", "bitmask", "slices", "blocks", "nm", "nm_dim", "rice")
SPARSE_ENCODINGS = ENCODINGS[1:]  # what `export --encodings` may name (dense always applies)
SINCE_VERSION = {"rice": "2"}  # encodings newer than version 1, and the version a file using them declares
READ_VERSIONS = ("1", "2")
SUFFIXES = {
    "bitmask": ("shape", "compressed", "bitmask", "row_offsets"),
    "slices": ("shape", "compressed", "slice_mask"),
    "blocks": ("shape", "compressed", "block_mask"),
    "nm": ("shape", "compressed", "indices"),
    "nm_dim": ("shape", "compressed", "indices"),
    "rice": ("shape", "compressed", "gaps_high", "gaps_low"),
}
MAX_EXPANSION = 64  # decoded bytes per file byte a reader accepts (90% filter pruning: ~10x; 99% element: ~14x)
EXPANSION_FLOOR = 16 << 20  # plus this much, so tiny files with small dense tensors always load
ITEM_SIZES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "float8_e4m3fn": 1}  # int8/fp8: quantized codes
HEADER_COST = 96  # approximate safetensors header bytes per stored array (used to rank encodings)
BLOCKS = ((4, 4), (8, 8), (2, 2), (1, 4), (4, 1), (1, 8), (8, 1), (16, 16))
NM = ((2, 4), (1, 4), (4, 8))
RICE_MAX_MASK_FRACTION = 0.75  # the gap code is offered when its streams take at most this much of a bit per weight


@dataclass(frozen=True)
class Encoded:
    """One tensor's encoding: its arrays (suffix -> array; ``""`` for dense) and parameters."""

    encoding: str
    arrays: dict[str, np.ndarray]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))


@dataclass(frozen=True)
class Candidate:
    """An encoding the writer may pick, with its estimated size in bytes."""

    encoding: str
    size: int
    params: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers


def nonzero(a: np.ndarray) -> np.ndarray:
    """True where the *bit pattern* is non-zero (so -0.0 counts as a value to keep)."""
    if a.dtype.kind == "f":
        return a.view(np.dtype(f"u{a.dtype.itemsize}")) != 0
    if a.dtype.kind == "b":
        return a
    return a != 0


def count_nonzero(a: np.ndarray) -> int:
    """The number of :func:`nonzero` entries, without a bool array the size of ``a``."""
    return int(np.count_nonzero(a.view(np.dtype(f"u{a.dtype.itemsize}")) if a.dtype.kind == "f" else a))


def view2d(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """Rows = dim ``axis``, columns = the other dims flattened row-major (1-D: one row)."""
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(1, -1)
    moved = np.moveaxis(a, axis, 0)
    return np.ascontiguousarray(moved).reshape(moved.shape[0], -1)


def _from2d(mat: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    if len(shape) < 2:
        return mat.reshape(shape)
    moved = (shape[axis],) + tuple(s for i, s in enumerate(shape) if i != axis)
    return np.ascontiguousarray(np.moveaxis(mat.reshape(moved), 0, axis))


def _bits_of(m: int) -> int:
    return max(1, math.ceil(math.log2(m)))


def _ceil8(n: int) -> int:
    return (n + 7) // 8


def damaged(name: str, what: str) -> InputError:
    return InputError(f"tensor {name}: {what}; the file is damaged or was edited, export it again")


# ----------------------------------------------------------------------------- sizes


def candidates(a: np.ndarray, blocks: tuple[tuple[int, int], ...] = BLOCKS,
               nm: tuple[tuple[int, int], ...] = NM) -> list[Candidate]:
    """Every applicable encoding of ``a`` with its size; the writer takes the smallest."""
    it, h = a.dtype.itemsize, HEADER_COST
    out = [Candidate("dense", a.nbytes + h)]
    if a.ndim == 0 or a.size == 0 or a.dtype.kind not in "fiu":
        return out
    nz = nonzero(a)
    rows, cols = view2d(a).shape
    out.append(Candidate("bitmask", int(nz.sum()) * it + rows * (_ceil8(cols) + 8) + 8 * a.ndim + 4 * h))
    out += _rice_candidate(nz, it, a.ndim)
    for axis in ((0, 1) if a.ndim >= 2 else ()):
        out += _axis_candidates(nz, a, axis, blocks, nm)
    for dim in (range(a.ndim) if a.ndim >= 2 else ()):
        out += _nm_candidates(run_view(nz, dim), nm, a.ndim, it, {"dim": dim}, "nm_dim")
    return out


def _rice_candidate(nz: np.ndarray, it: int, ndim: int) -> list[Candidate]:
    """The gap code, offered where it saves at least a quarter of the bitmask's bit per weight: less
    sparse tensors keep the bitmask, which version-1 readers and compressed-tensors read (at ``k = 0``
    the gap stream *is* the bitmask; at 30% kept it saves a tenth)."""
    gaps = gap_code.gaps_of(np.flatnonzero(nz))
    k = gap_code.best_k(gaps)
    streams = gap_code.stream_bytes(gaps, k)
    if streams > RICE_MAX_MASK_FRACTION * nz.size / 8:
        return []
    return [Candidate("rice", gaps.size * it + streams + 8 * ndim + 4 * HEADER_COST, {"k": k})]


def _axis_candidates(nz: np.ndarray, a: np.ndarray, axis: int, blocks, nm) -> list[Candidate]:
    it, h = a.dtype.itemsize, HEADER_COST
    m2 = view2d(nz, axis)
    rows, cols = m2.shape
    kept = int(m2.any(1).sum())
    out = [Candidate("slices", kept * cols * it + _ceil8(rows) + 8 * a.ndim + 3 * h, {"axis": axis})]
    for br, bc in blocks:
        grid = _tiles(m2, br, bc).any(axis=(2, 3))
        size = int(grid.sum()) * br * bc * it + _ceil8(grid.size) + 8 * a.ndim + 3 * h
        out.append(Candidate("blocks", size, {"axis": axis, "block": [br, bc]}))
    return out + _nm_candidates(m2, nm, a.ndim, it, {"axis": axis}, "nm")


def _nm_candidates(m2: np.ndarray, nm, ndim: int, it: int, where: dict[str, int], encoding: str) -> list[Candidate]:
    """N:M encodings of a 2-D non-zero mask whose groups run along its columns."""
    rows, cols = m2.shape
    out = []
    for n, m in nm:
        # uint16 counts: two bytes per run, not eight (an int64 per run of 4 is half the float weight)
        if cols and cols % m == 0 and int(m2.reshape(rows, -1, m).sum(-1, dtype=np.uint16).max()) <= n:
            count = rows * (cols // m) * n
            out.append(Candidate(encoding, count * it + _ceil8(count * _bits_of(m)) + 8 * ndim + 3 * HEADER_COST,
                                 {**where, "n": n, "m": m}))
    return out


def run_view(a: np.ndarray, dim: int) -> np.ndarray:
    """``a`` with dimension ``dim`` last, flattened to ``(-1, shape[dim])``: N:M runs along its rows."""
    return np.ascontiguousarray(np.moveaxis(a, dim, -1)).reshape(-1, a.shape[dim])


def _from_run_view(mat: np.ndarray, shape: tuple[int, ...], dim: int) -> np.ndarray:
    moved = tuple(s for i, s in enumerate(shape) if i != dim) + (shape[dim],)
    return np.ascontiguousarray(np.moveaxis(mat.reshape(moved), -1, dim))


def choose(a: np.ndarray, allowed: tuple[str, ...] | None = None, **kwargs: Any) -> Candidate:
    """The smallest encoding of ``a`` (``allowed``: only these, besides ``dense``, which always applies)."""
    order = {e: i for i, e in enumerate(ENCODINGS)}
    offered = [c for c in candidates(a, **kwargs) if allowed is None or c.encoding == "dense" or c.encoding in allowed]
    return min(offered, key=lambda c: (c.size, order[c.encoding]))


def check_encodings(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` if every one is a sparse encoding (``dense`` is implied); an :class:`InputError` lists them."""
    known = SPARSE_ENCODINGS
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise InputError(f"--encodings {','.join(bad) or '(empty)'}: choose from {', '.join(known)} (comma-separated; "
                         "dense is always allowed; `--encodings bitmask` writes files compressed-tensors reads)")
    return tuple(names)


def _tiles(m2: np.ndarray, br: int, bc: int) -> np.ndarray:
    """``(tile rows, tile cols, br, bc)``: a view of ``m2`` when the tiles fit exactly, else of a zero-padded copy."""
    rows, cols = m2.shape
    nbr, nbc = -(-rows // br), -(-cols // bc)
    padded = m2
    if (nbr * br, nbc * bc) != (rows, cols):
        padded = np.zeros((nbr * br, nbc * bc), dtype=m2.dtype)
        padded[:rows, :cols] = m2
    return padded.reshape(nbr, br, nbc, bc).transpose(0, 2, 1, 3)


# ----------------------------------------------------------------------------- encoders


def _shape_array(a: np.ndarray) -> np.ndarray:
    return np.asarray(a.shape, dtype=np.int64)


def encode_bitmask(a: np.ndarray) -> Encoded:
    v = view2d(a)
    mask = nonzero(v)
    counts = mask.sum(1).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    # ``shape`` holds the 2-D view's shape, as compressed-tensors' decoder expects (the tensor's own
    # shape is in the file's table); files that stored the full shape still read
    arrays = {"shape": np.asarray(v.shape, dtype=np.int64), "compressed": v[mask],
              "bitmask": np.packbits(mask, axis=-1, bitorder="little"), "row_offsets": offsets}
    return Encoded("bitmask", arrays)


def encode_slices(a: np.ndarray, axis: int) -> Encoded:
    v = view2d(a, axis)
    keep = nonzero(v).any(1)
    moved = np.moveaxis(a, axis, 0)
    arrays = {"shape": _shape_array(a), "compressed": np.ascontiguousarray(moved[keep]),
              "slice_mask": np.packbits(keep, bitorder="little")}
    return Encoded("slices", arrays, {"axis": axis})


def encode_blocks(a: np.ndarray, axis: int, block: tuple[int, int]) -> Encoded:
    br, bc = block
    keep, kept = [], []
    for rows in _row_slabs(a, axis, br):  # the kept tiles in row-major tile order, a slab of tile rows at a time
        tiles = _tiles(rows, br, bc)
        keep.append(nonzero(tiles).any(axis=(2, 3)))
        kept.append(np.ascontiguousarray(tiles[keep[-1]]))
    keep_all = np.concatenate(keep)
    arrays = {"shape": _shape_array(a), "compressed": np.concatenate(kept),
              "block_mask": np.packbits(keep_all.reshape(-1), bitorder="little")}
    return Encoded("blocks", arrays, {"axis": axis, "block": [br, bc]})


SLAB = 1 << 23  # elements of the 2-D view moved into row order at once by the block encoder


def _row_slabs(a: np.ndarray, axis: int, align: int):
    """:func:`view2d` of ``a`` as slabs of whole multiples of ``align`` rows (only one slab's copy at a time)."""
    if a.ndim < 2:
        yield view2d(a, axis)
        return
    moved = np.moveaxis(a, axis, 0)
    cols = max(1, a.size // max(1, moved.shape[0]))
    step = max(align, SLAB // cols // align * align)
    for start in range(0, moved.shape[0], step):
        part = moved[start:start + step]
        yield np.ascontiguousarray(part).reshape(part.shape[0], -1)


def encode_nm(a: np.ndarray, axis: int, n: int, m: int) -> Encoded:
    return Encoded("nm", _nm_arrays(a, view2d(a, axis), n, m), {"axis": axis, "n": n, "m": m})


def encode_nm_dim(a: np.ndarray, dim: int, n: int, m: int) -> Encoded:
    return Encoded("nm_dim", _nm_arrays(a, run_view(a, dim), n, m), {"dim": dim, "n": n, "m": m})


def _nm_arrays(a: np.ndarray, v: np.ndarray, n: int, m: int) -> dict[str, np.ndarray]:
    """The ``n`` stored values of every run of ``m`` columns of ``v`` and their packed in-run indices."""
    groups = v.reshape(v.shape[0], -1, m)
    order = np.argsort(~nonzero(groups), axis=-1, kind="stable")  # kept positions first
    idx = np.sort(order[..., :n], axis=-1)
    values = np.take_along_axis(groups, idx, axis=-1).reshape(v.shape[0], -1)
    bits = (idx.reshape(-1, 1) >> np.arange(_bits_of(m))) & 1
    return {"shape": _shape_array(a), "compressed": np.ascontiguousarray(values),
            "indices": np.packbits(bits.reshape(-1).astype(np.uint8), bitorder="little")}


def encode_rice(a: np.ndarray, k: int) -> Encoded:
    flat = a.reshape(-1)
    positions = np.flatnonzero(nonzero(flat))
    values, gaps = flat[positions], gap_code.gaps_of(positions)
    del positions
    high, low = gap_code.encode_gaps(gaps, k)
    arrays = {"shape": _shape_array(a), "compressed": values, "gaps_high": high, "gaps_low": low}
    return Encoded("rice", arrays, {"k": k})


def encode(a: np.ndarray, candidate: Candidate | None = None) -> Encoded:
    """Encode ``a`` with ``candidate`` (default: the smallest applicable encoding)."""
    c = candidate or choose(a)
    p = c.params
    if c.encoding == "bitmask":
        return encode_bitmask(a)
    if c.encoding == "slices":
        return encode_slices(a, p["axis"])
    if c.encoding == "blocks":
        return encode_blocks(a, p["axis"], tuple(p["block"]))
    if c.encoding == "nm":
        return encode_nm(a, p["axis"], p["n"], p["m"])
    if c.encoding == "nm_dim":
        return encode_nm_dim(a, p["dim"], p["n"], p["m"])
    if c.encoding == "rice":
        return encode_rice(a, p["k"])
    return Encoded("dense", {"": np.ascontiguousarray(a)})


# ----------------------------------------------------------------------------- decoders


def check_declared_sizes(table: dict[str, dict[str, Any]], dense_bytes: int, file_bytes: int, source: str) -> int:
    """The dense bytes the table declares (checked to be sane sizes), refused above
    ``MAX_EXPANSION`` x the file's size: before anything is decoded or allocated."""
    total = dense_bytes
    for name, info in table.items():
        shape, dtype = info.get("shape"), info.get("dtype")
        _expect(isinstance(shape, list) and len(shape) <= 8
                and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape),
                name, f"recorded shape {shape!r} is not a list of sizes")
        _expect(dtype in ITEM_SIZES, name, f"recorded dtype {dtype!r} is not one of {', '.join(ITEM_SIZES)}")
        total += math.prod(shape) * ITEM_SIZES[dtype]
    if total > MAX_EXPANSION * file_bytes + EXPANSION_FLOOR:
        raise InputError(f"{source}: its tensors table declares {total / 2**20:,.1f} MiB of weights in a "
                         f"{file_bytes / 2**20:,.1f} MiB file (more than {MAX_EXPANSION}x); the file is damaged or "
                         "hostile, export it again")
    return total


def _expect(cond: bool, name: str, what: str) -> None:
    if not cond:
        raise damaged(name, what)


def _check_shape(name: str, info: dict[str, Any], arrays: dict[str, np.ndarray],
                 view: Callable[[list[int]], list[int]] | None = None) -> tuple[int, ...]:
    """The recorded shape, which ``<name>.shape`` must repeat (or give as ``view``, the 2-D view's shape)."""
    shape = info.get("shape")
    _expect(isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape) and len(shape) <= 8,
            name, f"recorded shape {shape!r} is not a list of sizes")
    stored = arrays["shape"]
    allowed = [shape] if view is None else [shape, view(shape)]
    _expect(stored.ndim == 1 and stored.dtype.kind in "iu" and stored.tolist() in allowed, name,
            f"{name}.shape {stored.tolist()} does not match the recorded shape {shape}")
    return tuple(shape)


def _view2d_shape(shape: list[int]) -> list[int]:
    return list(_rows_cols(tuple(shape), 0))


def _check_axis(name: str, info: dict[str, Any], shape: tuple[int, ...]) -> int:
    axis = info.get("axis", 0)
    _expect(isinstance(axis, int) and 0 <= axis < max(1, len(shape)) and (axis == 0 or len(shape) >= 2),
            name, f"axis {axis!r} does not fit shape {list(shape)}")
    return axis


def _rows_cols(shape: tuple[int, ...], axis: int) -> tuple[int, int]:
    if len(shape) < 2:
        return 1, int(np.prod(shape, dtype=np.int64)) if shape else 1
    rows = shape[axis]
    return rows, int(np.prod(shape, dtype=np.int64)) // max(rows, 1) if rows else 0


def _unpack(name: str, packed: np.ndarray, count: int, what: str) -> np.ndarray:
    _expect(packed.dtype == np.uint8 and packed.ndim == 1 and packed.size == _ceil8(count), name,
            f"{what} holds {packed.size} bytes but {count} bits need {_ceil8(count)}")
    return np.unpackbits(packed, count=count, bitorder="little").astype(bool)


def decode_bitmask(name: str, info: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    shape = _check_shape(name, info, arrays, _view2d_shape)
    rows, cols = _rows_cols(shape, 0)
    bitmask, values, offsets = arrays["bitmask"], arrays["compressed"], arrays["row_offsets"]
    _expect(bitmask.dtype == np.uint8 and bitmask.shape == (rows, _ceil8(cols)), name,
            f"bitmask shape {list(bitmask.shape)} does not fit {rows} rows x {cols} columns")
    mask = np.unpackbits(bitmask, axis=-1, count=cols, bitorder="little").astype(bool)
    counts = mask.sum(1)
    _expect(values.ndim == 1 and values.size == int(counts.sum()), name,
            f"the mask has {int(counts.sum())} set bits but {values.size} values are stored")
    expected = np.concatenate([[0], np.cumsum(counts)[:-1]]) if rows else np.zeros(0)
    _expect(offsets.ndim == 1 and offsets.dtype.kind in "iu" and offsets.shape == (rows,)
            and np.array_equal(offsets, expected), name, "row_offsets are out of range or do not match the mask")
    out = np.zeros((rows, cols), dtype=values.dtype)
    out[mask] = values
    return out.reshape(shape)


def decode_slices(name: str, info: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    shape = _check_shape(name, info, arrays)
    axis = _check_axis(name, info, shape)
    _expect(len(shape) >= 1, name, "a slice encoding needs at least one dimension")
    keep = _unpack(name, arrays["slice_mask"], shape[axis], "slice_mask")
    rest = tuple(s for i, s in enumerate(shape) if i != axis)
    values = arrays["compressed"]
    _expect(values.shape == (int(keep.sum()),) + rest, name,
            f"{int(keep.sum())} kept slices of {list(rest)} need compressed shape "
            f"{[int(keep.sum()), *rest]}, found {list(values.shape)}")
    out = np.zeros((shape[axis],) + rest, dtype=values.dtype)
    out[keep] = values
    return np.ascontiguousarray(np.moveaxis(out, 0, axis))


def decode_blocks(name: str, info: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    shape = _check_shape(name, info, arrays)
    axis = _check_axis(name, info, shape)
    block = info.get("block")
    _expect(isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block),
            name, f"block {block!r} is not two positive sizes")
    br, bc = block
    rows, cols = _rows_cols(shape, axis)
    nbr, nbc = -(-rows // br), -(-cols // bc)
    keep = _unpack(name, arrays["block_mask"], nbr * nbc, "block_mask").reshape(nbr, nbc)
    values = arrays["compressed"]
    _expect(values.shape == (int(keep.sum()), br, bc), name,
            f"{int(keep.sum())} kept {br}x{bc} blocks do not match compressed shape {list(values.shape)}")
    tiles = np.zeros((nbr, nbc, br, bc), dtype=values.dtype)
    tiles[keep] = values
    mat = tiles.transpose(0, 2, 1, 3).reshape(nbr * br, nbc * bc)[:rows, :cols]
    return _from2d(np.ascontiguousarray(mat), shape, axis)


def decode_nm(name: str, info: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    shape = _check_shape(name, info, arrays)
    axis = _check_axis(name, info, shape)
    return _from2d(_nm_groups(name, info, arrays, *_rows_cols(shape, axis)), shape, axis)


def decode_nm_dim(name: str, info: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    shape = _check_shape(name, info, arrays)
    dim = info.get("dim")
    _expect(isinstance(dim, int) and not isinstance(dim, bool) and len(shape) >= 2 and 0 <= dim < len(shape),
            name, f"dim {dim!r} does not fit shape {list(shape)}")
    cols = shape[dim]
    rows = math.prod(shape) // cols if cols else 0
    return _from_run_view(_nm_groups(name, info, arrays, rows, cols), shape, dim)


def _nm_groups(name: str, info: dict[str, Any], arrays: dict[str, np.ndarray], rows: int, cols: int) -> np.ndarray:
    """The ``(rows, cols)`` matrix of an N:M encoding, every array checked."""
    n, m = info.get("n"), info.get("m")
    _expect(isinstance(n, int) and isinstance(m, int) and 1 <= n <= m <= 256, name, f"bad n:m {n}:{m}")
    _expect(cols % m == 0, name, f"{cols} columns are not a multiple of m={m}")
    values = arrays["compressed"]
    _expect(values.shape == (rows, cols // m * n), name,
            f"compressed shape {list(values.shape)} should be {[rows, cols // m * n]}")
    bits = _bits_of(m)
    flat = _unpack(name, arrays["indices"], values.size * bits, "indices").reshape(-1, bits)
    idx = (flat.astype(np.int64) << np.arange(bits)).sum(1).reshape(rows, cols // m, n)
    _expect(bool((idx < m).all()) and bool((np.diff(idx, axis=-1) > 0).all()), name,
            "n:m indices are out of range or repeat inside a group")
    groups = np.zeros((rows, cols // m, m), dtype=values.dtype)
    np.put_along_axis(groups, idx, values.reshape(rows, cols // m, n), axis=-1)
    return groups.reshape(rows, cols)


def decode_rice(name: str, info: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    shape = _check_shape(name, info, arrays)
    size, k, values = math.prod(shape), info.get("k"), arrays["compressed"]
    _expect(isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= gap_code.MAX_K, name,
            f"rice parameter k={k!r} is not an integer from 0 to {gap_code.MAX_K}")
    _expect(values.ndim == 1 and values.size <= size, name,
            f"{list(values.shape)} stored values do not fit a tensor of {size} entries")
    try:
        positions = gap_code.decode_positions(arrays["gaps_high"], arrays["gaps_low"], values.size, k, size)
    except ValueError as exc:
        raise damaged(name, str(exc)) from None
    out = np.zeros(size, dtype=values.dtype)
    out[positions] = values
    return out.reshape(shape)


def decode_dense(name: str, info: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    return arrays[""]


DECODERS: dict[str, Callable[[str, dict[str, Any], dict[str, np.ndarray]], np.ndarray]] = {
    "dense": decode_dense, "bitmask": decode_bitmask, "slices": decode_slices,
    "blocks": decode_blocks, "nm": decode_nm, "nm_dim": decode_nm_dim, "rice": decode_rice,
}


def format_version(table: dict[str, dict[str, Any]]) -> str:
    """The version a file with this ``tensors`` table declares: the oldest whose readers know its encodings."""
    return max([FORMAT_VERSION, *(SINCE_VERSION.get(info.get("encoding"), FORMAT_VERSION) for info in table.values())],
               key=int)


def check_version(version: Any, table: dict[str, dict[str, Any]], source: str) -> None:
    """Refuse versions this code does not read, and encodings newer than the version the file declares."""
    if version not in READ_VERSIONS:
        raise InputError(f"{source}: export format version {version!r} is not supported (this gancompress reads "
                         f"versions {', '.join(READ_VERSIONS)}); upgrade gancompress")
    newer = sorted(n for n, info in table.items() if info.get("encoding") in SINCE_VERSION
                   and int(SINCE_VERSION[info["encoding"]]) > int(version))
    if newer:
        raise InputError(f"{source}: tensor {newer[0]} uses encoding {table[newer[0]]['encoding']!r}, which format "
                         f"version {version} does not have; the file is damaged or was edited, export it again")


def decode(name: str, info: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Rebuild the dense array of tensor ``name`` from its stored arrays (validated)."""
    encoding = info.get("encoding", "dense")
    if encoding not in DECODERS:
        raise damaged(name, f"unknown encoding {encoding!r} (this gancompress reads {', '.join(ENCODINGS)})")
    wanted = ("",) if encoding == "dense" else SUFFIXES[encoding]
    missing = [f"{name}.{s}" if s else name for s in wanted if s not in arrays]
    if missing:
        raise damaged(name, f"missing arrays {', '.join(missing)}")
    try:
        return DECODERS[encoding](name, info, arrays)
    except (ValueError, IndexError, TypeError, OverflowError) as exc:
        raise damaged(name, f"cannot be decoded ({exc})") from None
