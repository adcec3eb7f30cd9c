"""Quantized weights in an export file: the ``quantization`` metadata, the ``<name>.scale`` arrays,
and their validated decoding (the layout: ``docs/sparse_format.md``, "Quantized weights").

Writing: :func:`quantize_state` turns the chosen weights of a state dict into codes and returns
the scale arrays and the metadata. Reading: :func:`read_quantization` parses and checks the
metadata, :func:`dequantize_state` replaces every code tensor by ``float32(code) * scale`` after
checking the scales' shapes (per channel, or one per stored tile), that they are finite and
positive, and that the codes are in range; a damaged file raises :class:`InputError`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from . import sparse as sf
from .quantize import SCHEMES, QuantPlan, QuantScheme, as_numpy, block_scale_tensor, code_values, plan_for, quantize

QUANT_KEY = "quantization"
SCALE_SUFFIX = "scale"


@dataclass(frozen=True)
class Quantization:
    """A file's quantization: the scheme and each quantized tensor's plan."""

    scheme: QuantScheme
    plans: dict[str, QuantPlan]

    def to_json(self) -> str:
        doc = {"scheme": self.scheme.name, "tensors": {k: p.to_json() for k, p in sorted(self.plans.items())}}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    def describe(self, name: str) -> str | None:
        """``int8 per-channel``, ``fp8 per-block 4x4`` ...: how weight ``name`` is stored (None: float)."""
        plan = self.plans.get(name)
        if plan is None:
            return None
        tile = f" {plan.block[0]}x{plan.block[1]}" if plan.block else ""
        return f"{self.scheme.name} per-{plan.scales}{tile}"

    def summary(self) -> dict[str, Any]:
        """The scheme and how many weights have each kind of scales (for ``inspect``)."""
        kinds = sorted({p.scales for p in self.plans.values()})
        return {"scheme": self.scheme.name, "weights": len(self.plans),
                "scales": {f"per-{k}": sum(p.scales == k for p in self.plans.values()) for k in kinds}}


def quantize_state(state: dict[str, torch.Tensor], axes: dict[str, int], scheme_name: str, *,
                   blocks: bool, allowed: tuple[str, ...] | None = None
                   ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Quantization]:
    """``(state with codes in place of the float weights named in axes, scale arrays, quantization)``.
    ``blocks``: block-sparse weights get a scale per tile (for the sparse layout's ``blocks`` encoding)."""
    scheme = SCHEMES.get(scheme_name)
    out, scales, plans = dict(state), {}, {}
    for name, axis in axes.items():
        weight = state.get(name)
        if weight is None or not weight.is_floating_point():
            continue
        plan = plan_for(weight, axis, blocks=blocks, allowed=allowed)
        out[name], scales[f"{name}.{SCALE_SUFFIX}"] = quantize(weight, scheme, plan, name)
        plans[name] = plan
    return out, scales, Quantization(scheme, plans)


# ----------------------------------------------------------------------------- reading


def _damaged(source: str, what: str) -> InputError:
    return InputError(f"{source}: damaged 'quantization' metadata ({what}); export it again")


def read_quantization(metadata: dict[str, str], source: str) -> Quantization | None:
    """The file's quantization (None when it has none), every field checked."""
    text = metadata.get(QUANT_KEY)
    if text is None:
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _damaged(source, exc.msg) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tensors"), dict):
        raise _damaged(source, "not an object with 'scheme' and 'tensors'")
    if doc.get("scheme") not in SCHEMES:
        raise _damaged(source, f"unknown scheme {doc.get('scheme')!r}; this gancompress reads {', '.join(SCHEMES.names())}")
    return Quantization(SCHEMES.get(doc["scheme"]), {k: _plan(k, v, source) for k, v in doc["tensors"].items()})


def _plan(name: str, doc: Any, source: str) -> QuantPlan:
    ok = isinstance(doc, dict) and doc.get("scales") in ("channel", "block") and _small_int(doc.get("axis"), 8)
    block = doc.get("block") if ok else None
    if ok and doc["scales"] == "block":
        ok = isinstance(block, list) and len(block) == 2 and all(_small_int(b, 1 << 16) and b > 0 for b in block)
    if not ok:
        raise _damaged(source, f"tensor {name}: {doc!r} is not a scale plan")
    return QuantPlan(doc["scales"], doc["axis"], tuple(block) if doc["scales"] == "block" else None)


def _small_int(x: Any, limit: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < limit


def dequantized_extra_bytes(quant: Quantization | None, table: dict[str, dict[str, Any]],
                            tensors: dict[str, torch.Tensor]) -> int:
    """Bytes dequantizing adds (float32 values for 1-byte codes), from the declared shapes: for the size check."""
    if quant is None:
        return 0
    total = 0
    for name in quant.plans:
        shape = table.get(name, {}).get("shape") if name in table else (list(tensors[name].shape) if name in tensors else [])
        if isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape):
            total += 3 * math.prod(shape)
    return total


def dequantize_state(state: dict[str, torch.Tensor], quant: Quantization, table: dict[str, dict[str, Any]],
                     tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with every quantized tensor as float32 values and the scale arrays consumed."""
    out = dict(state)
    for name, plan in quant.plans.items():
        codes, scale = out.get(name), out.pop(f"{name}.{SCALE_SUFFIX}", None)
        if codes is None or scale is None:
            raise sf.damaged(name, f"quantized but {name if codes is None else name + '.scale'} is missing")
        if codes.dtype != quant.scheme.code_dtype:
            raise sf.damaged(name, f"codes are {codes.dtype}, the {quant.scheme.name} scheme stores "
                                   f"{quant.scheme.code_dtype_name}")
        scale_full = _full_scales(name, plan, tuple(codes.shape), as_numpy(scale), table, tensors)
        values = _checked_codes(name, as_numpy(codes), quant.scheme)
        out[name] = torch.from_numpy(np.ascontiguousarray(values * scale_full))
    return out


def _checked_codes(name: str, codes: np.ndarray, scheme: QuantScheme) -> np.ndarray:
    values = code_values(codes, scheme)
    if not np.isfinite(values).all() or np.abs(values).max(initial=0.0) > scheme.qmax:
        raise sf.damaged(name, f"codes outside the {scheme.name} range (|code| <= {scheme.qmax:g}, finite)")
    return values


def _full_scales(name: str, plan: QuantPlan, shape: tuple[int, ...], scale: np.ndarray,
                 table: dict[str, dict[str, Any]], tensors: dict[str, torch.Tensor]) -> np.ndarray:
    """The scales, validated, as an array that broadcasts against the weight."""
    if scale.dtype != np.float32 or scale.ndim != 1:
        raise sf.damaged(name, f"{name}.scale must be a 1-D float32 array, found {scale.dtype} {list(scale.shape)}")
    if not (np.isfinite(scale).all() and (scale > 0).all()):
        raise sf.damaged(name, f"{name}.scale holds a zero, negative or non-finite scale")
    if plan.axis >= max(len(shape), 1):
        raise sf.damaged(name, f"scale axis {plan.axis} does not fit shape {list(shape)}")
    if plan.scales == "channel":
        want = shape[plan.axis] if shape else 1
        if scale.shape != (want,):
            raise sf.damaged(name, f"{name}.scale has {scale.size} channel scales, shape {list(shape)} needs {want}")
        view = [1] * len(shape)
        view[plan.axis] = -1
        return scale.reshape(view) if shape else scale.reshape(())
    return _block_scales(name, plan, shape, scale, table, tensors)


def _block_scales(name: str, plan: QuantPlan, shape: tuple[int, ...], scale: np.ndarray,
                  table: dict[str, dict[str, Any]], tensors: dict[str, torch.Tensor]) -> np.ndarray:
    info = table.get(name, {})
    if info.get("encoding") != "blocks" or info.get("axis", 0) != plan.axis or info.get("block") != list(plan.block or ()):
        raise sf.damaged(name, "per-tile scales need the blocks encoding with the same axis and tile size")
    br, bc = plan.block
    rows = shape[plan.axis]
    cols = math.prod(shape) // rows if rows else 0
    nbr, nbc = -(-rows // br), -(-cols // bc)
    keep = np.unpackbits(as_numpy(tensors[f"{name}.block_mask"]), count=nbr * nbc, bitorder="little").astype(bool)
    if scale.shape != (int(keep.sum()),):
        raise sf.damaged(name, f"{name}.scale has {scale.size} tile scales for {int(keep.sum())} stored tiles")
    grid = np.ones(nbr * nbc, dtype=np.float32)
    grid[keep] = scale
    return block_scale_tensor(torch.from_numpy(grid.reshape(nbr, nbc)), shape, plan.axis, plan.block).numpy()
