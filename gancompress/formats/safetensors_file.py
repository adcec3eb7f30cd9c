"""Every safetensors file gancompress writes and reads: deterministic bytes and an integrity digest.

Writing: tensors in a fixed order (larger items first so every tensor stays aligned, then by name),
``__metadata__`` first with its keys sorted, so the same command writes byte-identical files; the
metadata gets ``digest``: ``sha256:<hex>`` over the tensors and the metadata that decides the weights.

The digest (a numpy-only reader can recompute it, see ``docs/sparse_format.md``) is SHA-256 over,
in this order: for each key of :data:`DIGEST_KEYS` present in the metadata, sorted, the UTF-8 bytes of
``json.dumps([key, value])`` and a newline; then for each tensor, sorted by name, the UTF-8 bytes of
``json.dumps([name, dtype, shape])`` (``dtype`` as the safetensors header spells it, e.g. ``"F32"``)
and a newline, followed by the tensor's raw little-endian bytes.

Reading: a file that records a digest must match it (an edited or damaged file never loads as
something else); files written before digests existed still load, with the structural checks only.
"""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Iterable

import torch

from ..errors import InputError

DIGEST_KEY = "digest"
DIGEST_KEYS = ("d_arch", "dtype", "format", "format_version", "g_arch", "layout", "mask_shapes", "quantization", "tensors")
ST_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3",
}


def _raw(t: torch.Tensor) -> memoryview:
    flat = t.detach().cpu().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


def _st_dtype(t: torch.Tensor, name: str) -> str:
    if t.dtype not in ST_DTYPES:
        raise InputError(f"tensor {name} has dtype {t.dtype}, which gancompress does not write; convert it first")
    return ST_DTYPES[t.dtype]


def digest(metadata: dict[str, str], entries: Iterable[tuple[str, str, list[int], bytes | memoryview]]) -> str:
    """``sha256:<hex>`` of the metadata keys in :data:`DIGEST_KEYS` and ``(name, dtype, shape, bytes)`` entries."""
    h = hashlib.sha256()
    for key in sorted(k for k in DIGEST_KEYS if k in metadata):
        h.update(json.dumps([key, metadata[key]]).encode() + b"\n")
    for name, dtype, shape, raw in sorted(entries, key=lambda e: e[0]):
        h.update(json.dumps([name, dtype, list(shape)]).encode() + b"\n")
        h.update(raw)
    return "sha256:" + h.hexdigest()


def tensors_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    return digest(metadata, ((k, _st_dtype(v, k), list(v.shape), _raw(v)) for k, v in tensors.items()))


def _layout(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> tuple[bytes, list[str]]:
    names = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    offset = 0
    for name in names:
        t = tensors[name]
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": _st_dtype(t, name), "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, names


def with_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> dict[str, str]:
    meta = {k: v for k, v in metadata.items() if k != DIGEST_KEY}
    meta[DIGEST_KEY] = tensors_digest(tensors, meta)
    return meta


def save_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file (any reader loads it) with sorted metadata and the digest added."""
    head, names = _layout(tensors, with_digest(tensors, metadata))
    with open(path, "wb") as fh:
        fh.write(head)
        for name in names:
            fh.write(_raw(tensors[name]))


def serialized_size(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> int:
    """The size in bytes :func:`save_safetensors` would write (shapes and dtypes only: ``tensors`` may be on the
    meta device; the digest has a fixed length, so a placeholder stands in for it)."""
    meta = {k: v for k, v in metadata.items() if k != DIGEST_KEY}
    meta[DIGEST_KEY] = "sha256:" + "0" * 64
    head, _ = _layout(tensors, meta)
    return len(head) + sum(t.numel() * t.element_size() for t in tensors.values())


def verify(tensors: dict[str, torch.Tensor], metadata: dict[str, str], source: str) -> None:
    """Refuse a gancompress file whose recorded digest does not match its tensors and metadata
    (no digest, or another tool's file: nothing to check)."""
    recorded = metadata.get(DIGEST_KEY)
    if recorded is None or not str(metadata.get("format", "")).startswith("gancompress-"):
        return
    meta = {k: v for k, v in metadata.items() if k != DIGEST_KEY}
    if tensors_digest(tensors, meta) != recorded:
        raise InputError(f"{source}: the integrity digest does not match its tensors and metadata: the file is "
                         "damaged or was edited after gancompress wrote it; export or save it again (or re-download it)")


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the metadata of a safetensors file, digest verified; any damage is an :class:`InputError`."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for truncated/garbled files
        raise InputError(f"{path}: not a valid safetensors file ({str(exc).strip() or type(exc).__name__}); "
                         "it is truncated or damaged, re-create or re-download it") from None
    verify(tensors, metadata, str(path))
    return tensors, metadata
