"""Encode and decode a deployable export (``gancompress-sparse`` / ``gancompress-dense`` safetensors).

Every export carries ``__metadata__`` with ``format``, ``format_version``, ``g_arch`` (the
architecture spec, so the module can be rebuilt), ``dtype``, ``layout`` and, for sparse files,
the ``tensors`` table of non-dense encodings (the layout: ``docs/sparse_format.md``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..archs import ArchSpec, build_loaded, parse_spec
from ..errors import InputError
from ..version import __version__
from . import sparse as sf
from .quantize import QuantPlan
from .quantized_file import (QUANT_KEY, Quantization, dequantize_state, dequantized_extra_bytes, quantize_state,
                             read_quantization)
from .safetensors_file import read_safetensors

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
EXPORT_FORMATS = (sf.FORMAT_SPARSE, sf.FORMAT_DENSE)


def cast_state_dict(state: dict[str, torch.Tensor], dtype: str | None) -> dict[str, torch.Tensor]:
    """Detached CPU copies; floating tensors cast to ``dtype`` when given."""
    target = DTYPES[dtype] if dtype else None
    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        out[k] = (v.to(target) if target is not None and v.is_floating_point() else v).contiguous()
    return out


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A numpy view of ``t``; bfloat16 travels as its int16 bit pattern."""
    t = t.detach().cpu().contiguous()
    if t.dtype in _BIT_PATTERNS:
        return t.view(_BIT_PATTERNS[t.dtype]).numpy()
    return t.numpy()


def to_torch(a: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.view(dtype) if dtype in _BIT_PATTERNS and t.dtype == _BIT_PATTERNS[dtype] else t


# dtypes numpy lacks travel as the integer bit patterns of their width
_BIT_PATTERNS = {torch.bfloat16: torch.int16, torch.float8_e4m3fn: torch.uint8}


def encode_state_dict(state: dict[str, torch.Tensor], quant: Quantization | None = None,
                      encodings: tuple[str, ...] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Stored arrays and the ``tensors`` table (non-dense entries only) of a sparse file
    (quantized weights: their codes, per-tile scales forcing the ``blocks`` encoding they were made for;
    ``encodings``: only these, besides dense)."""
    tensors: dict[str, torch.Tensor] = {}
    table: dict[str, Any] = {}
    plans = quant.plans if quant is not None else {}
    for name, value in state.items():
        enc = _encode(value, plans.get(name), encodings)
        if enc.encoding == "dense":
            tensors[name] = value.contiguous()
            continue
        table[name] = {"encoding": enc.encoding, "shape": list(value.shape), "dtype": dtype_name(value.dtype),
                       **enc.params}
        for suffix, arr in enc.arrays.items():
            tensors[f"{name}.{suffix}"] = to_torch(arr, value.dtype if suffix == "compressed" else None)
    return tensors, table


def _encode(value: torch.Tensor, plan: QuantPlan | None, encodings: tuple[str, ...] | None) -> sf.Encoded:
    if plan is not None and plan.scales == "block":
        return sf.encode(to_numpy(value), sf.Candidate("blocks", 0, {"axis": plan.axis, "block": list(plan.block)}))
    if value.is_floating_point() or plan is not None:
        a = to_numpy(value)
        return sf.encode(a, sf.choose(a, encodings))
    return sf.Encoded("dense", {"": to_numpy(value)})


def file_metadata(fmt: str, spec: ArchSpec, state: dict[str, torch.Tensor], layout: str,
                  extra: dict[str, Any]) -> dict[str, str]:
    floats = {dtype_name(v.dtype) for v in state.values() if v.is_floating_point()}
    return {
        "format": fmt,
        "format_version": sf.FORMAT_VERSION,
        "gancompress_version": __version__,
        "g_arch": spec.to_json(),
        "dtype": ",".join(sorted(floats)) or "none",
        "layout": layout,
        "provenance": json.dumps(extra, sort_keys=True, default=str),
    }


def serialize(state: dict[str, torch.Tensor], spec: ArchSpec, layout: str, extra: dict[str, Any],
              quantize: tuple[str, dict[str, int]] | None = None, encodings: tuple[str, ...] | None = None
              ) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, int]]:
    """Tensors, metadata and encoding counts of an export (``layout``: sparse, dense, shrunk);
    ``quantize``: ``(scheme, {weight name: output axis})`` stores those weights as 8-bit codes and scales;
    ``encodings``: the sparse layout uses only these (and dense; None: the smallest of all)."""
    quant, scales, meta_state = None, {}, state
    if quantize is not None:
        state, scales, quant = quantize_state(state, quantize[1], quantize[0], blocks=layout == "sparse",
                                              allowed=encodings)
    if layout == "sparse":
        tensors, table = encode_state_dict(state, quant, encodings)
        meta = file_metadata(sf.FORMAT_SPARSE, spec, meta_state, layout, extra)
        meta["tensors"] = json.dumps(table, sort_keys=True, separators=(",", ":"))
        meta["format_version"] = sf.format_version(table)
        counts = {e: sum(1 for t in table.values() if t["encoding"] == e) for e in sf.ENCODINGS[1:]}
        counts["dense"] = len(state) - len(table)
        counts = {k: v for k, v in counts.items() if v}
    else:
        tensors = {k: v.contiguous() for k, v in state.items()}
        meta, counts = file_metadata(sf.FORMAT_DENSE, spec, meta_state, layout, extra), {"dense": len(state)}
    if quant is not None:
        tensors.update(scales)
        meta[QUANT_KEY] = quant.to_json()
        counts[quant.scheme.name] = len(quant.plans)
    return tensors, meta, counts


@dataclass
class ExportedGenerator:
    """A decoded export: the dense state dict, the architecture spec and the file's metadata."""

    state_dict: dict[str, torch.Tensor]
    spec: ArchSpec
    metadata: dict[str, str]


def export_metadata(path: str | Path) -> dict[str, str] | None:
    """The metadata of a gancompress export, None when ``path`` is another kind of file."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
    except Exception as exc:
        raise InputError(f"{path}: not a readable safetensors file ({str(exc).strip() or type(exc).__name__}); "
                         "it is truncated or damaged, export it again") from None
    return metadata if metadata.get("format") in EXPORT_FORMATS else None


def _table(metadata: dict[str, str], source: str) -> dict[str, dict[str, Any]]:
    try:
        table = json.loads(metadata.get("tensors", "{}"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: damaged 'tensors' metadata ({exc.msg}); export it again") from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise InputError(f"{source}: damaged 'tensors' metadata; export it again")
    return table


def decode_tensors(tensors: dict[str, torch.Tensor], table: dict[str, dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Dense tensors from a file's stored arrays and its ``tensors`` table (validated)."""
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, info in table.items():
        suffixes = sf.SUFFIXES.get(info.get("encoding"), ())
        arrays = {s: to_numpy(tensors[f"{name}.{s}"]) for s in suffixes if f"{name}.{s}" in tensors}
        used.update(f"{name}.{s}" for s in suffixes)
        dtype = _stored_dtype(name, info, tensors)
        out[name] = to_torch(sf.decode(name, info, arrays), dtype)
    for key, value in tensors.items():
        if key not in used:
            out[key] = value
    return out


def _stored_dtype(name: str, info: dict[str, Any], tensors: dict[str, torch.Tensor]) -> torch.dtype:
    values = tensors.get(f"{name}.compressed")
    if values is None:
        raise sf.damaged(name, f"missing array {name}.compressed")
    recorded = info.get("dtype")
    if str(values.dtype).removeprefix("torch.") != recorded:
        raise sf.damaged(name, f"values are {values.dtype} but the table records {recorded!r}")
    return values.dtype


def read_export(path: str | Path) -> ExportedGenerator:
    """Read and decode a ``gancompress-sparse`` / ``gancompress-dense`` file."""
    path = Path(path)
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") not in EXPORT_FORMATS:
        raise InputError(f"{path}: not a gancompress export (format {metadata.get('format')!r})")
    table = _table(metadata, str(path))
    sf.check_version(metadata.get("format_version"), table, str(path))
    spec = parse_spec(metadata.get("g_arch"), str(path))
    quant = read_quantization(metadata, str(path))
    stored = {f"{name}.{s}" for name, info in table.items() for s in sf.SUFFIXES.get(info.get("encoding"), ())}
    dense = sum(t.numel() * t.element_size() for k, t in tensors.items() if k not in stored)
    dense += dequantized_extra_bytes(quant, table, tensors)
    sf.check_declared_sizes(table, dense, path.stat().st_size, str(path))  # before anything is decoded
    state = decode_tensors(tensors, table)
    if quant is not None:
        state = dequantize_state(state, quant, table, tensors)
    return ExportedGenerator(state, spec, metadata)


def build_exported(exported: ExportedGenerator, source: str, arch: str | None = None) -> nn.Module:
    """The generator module of a decoded export, weights loaded, in eval mode."""
    spec = exported.spec
    if spec.name.startswith("shrunk:"):
        from .shrunk import ensure_shrunk_arch

        ensure_shrunk_arch(spec.name)
    target = spec.kwargs.get("target") if spec.name == "custom" else None
    if target and arch != target:
        raise InputError(f"{source} uses your own architecture {target}; pass arch={target!r} to load it")
    module = build_loaded(spec, exported.state_dict, f"generator {spec.name} in {source}")
    floats = {v.dtype for v in exported.state_dict.values() if v.is_floating_point()}
    if len(floats) == 1:
        module = module.to(next(iter(floats)))
        module.load_state_dict(exported.state_dict)  # exact in the file's own dtype
    return module.eval()
