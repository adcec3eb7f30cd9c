"""Weight quantization next to pruning: the ``int8`` and ``fp8`` schemes, their scales and codes.

A quantized weight is stored as 8-bit *codes* and float32 *scales*; its value is
``float32(code) * scale`` (computed in float32, so every reader gets the same bits):

* ``int8`` -- symmetric, ``code = round_half_even(w / scale)`` clamped to [-127, 127];
* ``fp8``  -- e4m3 (``torch.float8_e4m3fn``), ``code = fp8(w / scale)`` (round to nearest even),
  ``w / scale`` clamped to [-448, 448].

Scales come per output channel (``channel``: ``scale = max|w| / qmax`` over the channel, the
weight layer's output axis from :mod:`gancompress.layer_table`) or, for a block-sparse weight
stored in the sparse ``blocks`` encoding, one per stored tile (``block``). A channel or tile
whose scale would be 0 (all zero, pruned, or so small that ``max|w| / qmax`` underflows) gets
scale 1.0: its codes are 0 and it decodes to exact zeros. Zeros stay zeros (``+0.0`` codes to 0),
so pruning masks survive quantization. The layout on disk: ``docs/sparse_format.md``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..layer_table import weight_layer
from ..registry import Registry
from . import sparse as sf

TINY = torch.finfo(torch.float32).tiny  # a scale below this (or 0) becomes 1.0: the channel codes to zeros
SCALE_KINDS = ("channel", "block")


@dataclass(frozen=True)
class QuantScheme:
    """One 8-bit scheme: its code dtype and largest code magnitude."""

    name: str
    code_dtype: torch.dtype
    qmax: float
    help: str = ""

    def to_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Codes of ``x`` (already divided by its scale)."""
        x = x.clamp(-self.qmax, self.qmax)
        return torch.round(x).to(self.code_dtype) if self.code_dtype == torch.int8 else x.to(self.code_dtype)

    @property
    def code_dtype_name(self) -> str:
        return str(self.code_dtype).removeprefix("torch.")


SCHEMES: Registry[QuantScheme] = Registry("quantization scheme")
SCHEMES.add("int8", QuantScheme("int8", torch.int8, 127.0, "symmetric int8, a scale per output channel (per tile for block-sparse weights)"))
SCHEMES.add("fp8", QuantScheme("fp8", torch.float8_e4m3fn, 448.0, "float8 e4m3 with per-channel (per-tile) scales"))


def names() -> list[str]:
    return SCHEMES.names()


@dataclass(frozen=True)
class QuantPlan:
    """Where a weight's scales run: ``channel`` along ``axis``, or ``block`` (``block`` tiles of the axis view)."""

    scales: str
    axis: int
    block: tuple[int, int] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scales": self.scales, "axis": self.axis}
        if self.block is not None:
            out["block"] = list(self.block)
        return out


# ----------------------------------------------------------------------------- which weights


def weight_axes(model: nn.Module) -> dict[str, int]:
    """``{state-dict name: output axis}`` of every conv / transposed-conv / linear weight in ``model``."""
    out = {}
    for name, module in model.named_modules():
        entry = weight_layer(module)
        weight = getattr(module, "weight", None)
        if entry is not None and isinstance(weight, torch.Tensor) and weight.dim() > entry.out_dim:
            out[f"{name}.weight" if name else "weight"] = entry.out_dim
    return out


def plan_for(weight: torch.Tensor, axis: int, *, blocks: bool, allowed: tuple[str, ...] | None = None) -> QuantPlan:
    """Per-tile scales when ``blocks`` and the sparse codec stores ``weight`` as tiles (of the ``allowed``
    encodings); else per channel."""
    if blocks and weight.dim() >= 2:
        choice = sf.choose(weight.detach().cpu().float().numpy(), allowed)
        if choice.encoding == "blocks":
            return QuantPlan("block", choice.params["axis"], tuple(choice.params["block"]))
    return QuantPlan("channel", axis)


# ----------------------------------------------------------------------------- scales and codes


def safe_scales(amax: torch.Tensor, qmax: float) -> torch.Tensor:
    """``amax / qmax`` in float32, with 1.0 where that is 0 or subnormal (such channels code to zeros)."""
    scale = amax.to(torch.float32) / qmax
    return torch.where(scale >= TINY, scale, torch.ones((), dtype=torch.float32, device=scale.device))


def _check_finite(weight: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(weight).all()):
        raise InputError(f"weight {name} holds NaN or infinite values, which cannot be quantized; "
                         "export without --quantize or repair the checkpoint")


def _moved(weight: torch.Tensor, axis: int) -> torch.Tensor:
    """Rows = dim ``axis``, columns = the other dims in order (as :func:`sparse.view2d`)."""
    if weight.dim() < 2:
        return weight.reshape(1, -1)
    return weight.movedim(axis, 0).reshape(weight.shape[axis], -1)


def channel_scale_tensor(scale: torch.Tensor, shape: torch.Size | tuple[int, ...], axis: int) -> torch.Tensor:
    """``scale`` (one per slice along ``axis``) shaped to broadcast against a tensor of ``shape``."""
    view = [1] * len(shape)
    view[axis] = -1
    return scale.reshape(view)


def block_scale_tensor(grid: torch.Tensor, shape: tuple[int, ...], axis: int, block: tuple[int, int]) -> torch.Tensor:
    """The full-size tensor holding each tile's scale of ``grid`` (``(tile rows, tile cols)``)."""
    br, bc = block
    rows = shape[axis]
    cols = math.prod(shape) // rows if rows else 0
    full = grid.repeat_interleave(br, 0).repeat_interleave(bc, 1)[:rows, :cols]
    moved = (rows,) + tuple(s for i, s in enumerate(shape) if i != axis)
    return full.reshape(moved).movedim(0, axis)


def _tile_amax(weight: torch.Tensor, axis: int, block: tuple[int, int]) -> torch.Tensor:
    br, bc = block
    mat = _moved(weight.abs(), axis)
    rows, cols = mat.shape
    nbr, nbc = -(-rows // br), -(-cols // bc)
    padded = torch.zeros((nbr * br, nbc * bc), dtype=mat.dtype, device=mat.device)
    padded[:rows, :cols] = mat
    return padded.reshape(nbr, br, nbc, bc).amax(dim=(1, 3))


def scale_tensor(weight: torch.Tensor, scheme: QuantScheme, plan: QuantPlan) -> torch.Tensor:
    """The full-size float32 tensor of scales ``weight`` is divided by (per channel or per tile)."""
    w = weight.detach()
    if plan.scales == "channel":
        amax = _moved(w.abs(), plan.axis).amax(1) if w.numel() else torch.zeros(w.shape[plan.axis] if w.dim() else 1)
        return channel_scale_tensor(safe_scales(amax, scheme.qmax), w.shape, plan.axis if w.dim() else 0)
    assert plan.block is not None
    grid = safe_scales(_tile_amax(w, plan.axis, plan.block), scheme.qmax)
    return block_scale_tensor(grid, tuple(w.shape), plan.axis, plan.block)


def fake_quantize(weight: torch.Tensor, scheme: QuantScheme, plan: QuantPlan) -> torch.Tensor:
    """``dequantize(quantize(weight))`` in float32, with a straight-through gradient (identity)."""
    scale = scale_tensor(weight, scheme, plan)
    values = scheme.to_codes(weight.detach().float() / scale).to(torch.float32) * scale
    return weight + (values.to(weight.dtype) - weight).detach()


def quantize(weight: torch.Tensor, scheme: QuantScheme, plan: QuantPlan, name: str = "weight") -> tuple[torch.Tensor, torch.Tensor]:
    """``(codes, stored scales)``: scales per channel ``(C,)``, or per non-zero tile in the sparse
    ``blocks`` order (row-major over the tile grid, only tiles whose codes are not all zero)."""
    w = weight.detach().cpu().float()
    _check_finite(w, name)
    scale = scale_tensor(w, scheme, plan)
    codes = scheme.to_codes(w / scale)
    if plan.scales == "channel":
        return codes, scale.reshape(-1).clone() if w.dim() < 2 else _moved(scale, plan.axis)[:, 0].contiguous()
    return codes, stored_tile_scales(codes, scale, plan)


def stored_tile_scales(codes: torch.Tensor, scale: torch.Tensor, plan: QuantPlan) -> torch.Tensor:
    """One scale per tile whose codes are not all zero (the tiles the ``blocks`` encoding keeps)."""
    assert plan.block is not None
    br, bc = plan.block
    keep = sf.nonzero(sf._tiles(sf.view2d(as_numpy(codes), plan.axis), br, bc)).any(axis=(2, 3))
    first = _moved(scale, plan.axis)[::br, ::bc]  # the scale at each tile's top-left corner
    return first[torch.from_numpy(keep)].contiguous()


# ----------------------------------------------------------------------------- decoding (numpy)


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A numpy view of ``t`` (fp8 codes as their uint8 bit patterns)."""
    t = t.detach().cpu().contiguous()
    return t.view(torch.uint8).numpy() if t.dtype == torch.float8_e4m3fn else t.numpy()


def code_values(codes: np.ndarray, scheme: QuantScheme) -> np.ndarray:
    """float32 values of stored codes (fp8 codes travel as their uint8 bit patterns)."""
    if scheme.code_dtype == torch.int8:
        return codes.astype(np.float32)
    return FP8_VALUES[codes.view(np.uint8)]


def _fp8_values() -> np.ndarray:
    return torch.arange(256, dtype=torch.int32).to(torch.uint8).view(torch.float8_e4m3fn).to(torch.float32).numpy()


FP8_VALUES = _fp8_values()
