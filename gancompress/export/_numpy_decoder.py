# The numpy-only decoder of docs/sparse_format.md ("Decoding with numpy alone"), kept
# byte-identical to the documented snippet (tests/test_hub_push.py checks it). The model card
# that `gancompress export --push-to-hub` writes embeds everything below the marker line.
# --- snippet ---
import hashlib
import json
import struct

import numpy as np

ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
             "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?", "F8_E4M3": "u1"}


DIGEST_KEYS = ("d_arch", "dtype", "format", "format_version", "g_arch", "layout", "mask_shapes", "quantization",
               "tensors")


def file_digest(header, data, meta):
    """sha256 over the metadata that decides the weights, then every tensor by name."""
    h = hashlib.sha256()
    for key in sorted(k for k in DIGEST_KEYS if k in meta):
        h.update(json.dumps([key, meta[key]]).encode() + b"\n")
    for name in sorted(header):
        start, end = header[name]["data_offsets"]
        h.update(json.dumps([name, header[name]["dtype"], header[name]["shape"]]).encode() + b"\n")
        h.update(data[start:end])
    return "sha256:" + h.hexdigest()


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    if "digest" in meta and file_digest(header, data, meta) != meta["digest"]:
        raise ValueError(f"{path}: the integrity digest does not match; the file was damaged or edited")
    arrays = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[start:end], dtype=ST_DTYPES[info["dtype"]])
        arrays[name] = arr.reshape(info["shape"])
    return arrays, meta


def axis_view_shape(shape, axis):
    return [shape[axis]] + [s for i, s in enumerate(shape) if i != axis]


def from_axis_view(mat, shape, axis):
    return np.moveaxis(mat.reshape(axis_view_shape(shape, axis)), 0, axis)


def unpack(packed, count):
    return np.unpackbits(packed, count=count, bitorder="little").astype(bool)


def nm_groups(packed, vals, n, m, rows, cols):
    """The (rows, cols) matrix of an N:M encoding: n values and their in-run indices per run of m."""
    bits = max(1, int(np.ceil(np.log2(m))))
    flat = unpack(packed, vals.size * bits).reshape(-1, bits)
    idx = (flat.astype(np.int64) << np.arange(bits)).sum(1).reshape(rows, cols // m, n)
    groups = np.zeros((rows, cols // m, m), vals.dtype)
    np.put_along_axis(groups, idx, vals.reshape(rows, cols // m, n), axis=-1)
    return groups.reshape(rows, cols)


def rice_positions(high, low, count, k):
    """Sorted kept positions from the two Golomb-Rice gap streams (parameter k)."""
    ends = np.flatnonzero(np.unpackbits(high, bitorder="little"))  # each gap's closing one bit
    bits = np.unpackbits(low, count=count * k, bitorder="little").reshape(count, k)
    lows = (bits.astype(np.int64) << np.arange(k)).sum(1)
    quotients = np.diff(ends, prepend=-1) - 1
    return np.cumsum((quotients << k) + lows + 1) - 1


def decode_tensor(name, info, a):
    shape, axis, enc = info["shape"], info.get("axis", 0), info["encoding"]
    vals = a[name + ".compressed"]
    size = int(np.prod(shape))
    if enc == "bitmask":
        rows = shape[0] if len(shape) > 1 else 1
        cols = size // rows
        mask = np.unpackbits(a[name + ".bitmask"], axis=-1, count=cols, bitorder="little").astype(bool)
        out = np.zeros((rows, cols), vals.dtype)
        out[mask] = vals
        return out.reshape(shape)
    if enc == "rice":  # the kept positions of the flattened tensor as coded gaps
        out = np.zeros(size, vals.dtype)
        out[rice_positions(a[name + ".gaps_high"], a[name + ".gaps_low"], vals.size, info["k"])] = vals
        return out.reshape(shape)
    if enc == "nm_dim":  # N:M runs along dimension dim (the input channels)
        dim = info["dim"]
        moved = [s for i, s in enumerate(shape) if i != dim] + [shape[dim]]
        mat = nm_groups(a[name + ".indices"], vals, info["n"], info["m"], size // shape[dim], shape[dim])
        return np.moveaxis(mat.reshape(moved), -1, dim)
    if enc == "slices":
        out = np.zeros(axis_view_shape(shape, axis), vals.dtype)
        out[unpack(a[name + ".slice_mask"], shape[axis])] = vals
        return np.moveaxis(out, 0, axis)
    rows = shape[axis]
    cols = size // rows
    if enc == "blocks":
        br, bc = info["block"]
        nbr, nbc = -(-rows // br), -(-cols // bc)
        tiles = np.zeros((nbr * nbc, br, bc), vals.dtype)
        tiles[unpack(a[name + ".block_mask"], nbr * nbc)] = vals
        mat = tiles.reshape(nbr, nbc, br, bc).transpose(0, 2, 1, 3).reshape(nbr * br, nbc * bc)
        return from_axis_view(mat[:rows, :cols], shape, axis)
    if enc == "nm":  # N:M runs along the columns of the axis view (the older kernel layout)
        mat = nm_groups(a[name + ".indices"], vals, info["n"], info["m"], rows, cols)
        return from_axis_view(mat, shape, axis)
    raise ValueError(f"unknown encoding {enc}")


def fp8_e4m3_values():
    """The float32 value of each of the 256 float8 e4m3fn bit patterns (0x7f and 0xff are NaN)."""
    bits = np.arange(256)
    exp, man = (bits >> 3) & 0xF, bits & 0x7
    mag = np.where(exp == 0, man / 8 * 2.0 ** -6, (1 + man / 8) * 2.0 ** (exp - 7))
    mag[(bits & 0x7F) == 0x7F] = np.nan
    return (np.where(bits & 0x80, -1.0, 1.0) * mag).astype(np.float32)


def dequantize(name, plan, scheme, codes, arrays):
    """float32(code) * scale: per channel along plan["axis"], or one scale per stored tile."""
    values = fp8_e4m3_values()[codes.view(np.uint8)] if scheme == "fp8" else codes.astype(np.float32)
    scale, shape, axis = arrays[name + ".scale"], list(codes.shape), plan["axis"]
    if plan["scales"] == "channel":
        view = [1] * len(shape)
        view[axis] = -1
        return values * scale.reshape(view)
    br, bc = plan["block"]
    rows = shape[axis]
    cols = codes.size // rows
    nbr, nbc = -(-rows // br), -(-cols // bc)
    grid = np.ones(nbr * nbc, np.float32)
    grid[unpack(arrays[name + ".block_mask"], nbr * nbc)] = scale
    full = np.repeat(np.repeat(grid.reshape(nbr, nbc), br, 0), bc, 1)[:rows, :cols]
    return values * from_axis_view(full, shape, axis)


def load_state(path):
    """{name: numpy array} of a gancompress-sparse (or -dense) file."""
    arrays, meta = read_safetensors(path)
    assert meta["format"] in ("gancompress-sparse", "gancompress-dense"), meta.get("format")
    assert meta["format_version"] in ("1", "2"), meta["format_version"]
    table = json.loads(meta.get("tensors", "{}"))
    quant = json.loads(meta.get("quantization", '{"tensors": {}}'))  # 8-bit weights (export --quantize)
    state = {name: decode_tensor(name, info, arrays) for name, info in table.items()}
    stored = {f"{name}.{s}" for name in {*table, *quant["tensors"]} for s in (
        "shape", "compressed", "bitmask", "row_offsets", "slice_mask", "block_mask", "indices", "gaps_high",
        "gaps_low", "scale")}
    state.update({k: v for k, v in arrays.items() if k not in stored})
    for name, plan in quant["tensors"].items():
        state[name] = dequantize(name, plan, quant["scheme"], state[name], arrays)
    return state
