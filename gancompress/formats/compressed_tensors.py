"""Read state dicts stored in compressed-tensors' sparse-bitmask layout.

compressed-tensors (the vLLM project's format library; its ``sparse-bitmask`` compressor,
legacy since 0.15) stores each compressed weight ``<w>`` as four arrays:

* ``<w>.shape``: the dense shape (integers);
* ``<w>.compressed``: the non-zero values in row-major order;
* ``<w>.bitmask``: ``numpy.packbits(mask, axis=-1, bitorder="little")`` of the non-zero mask,
  so its shape is the dense shape with the last size ``s`` replaced by ``ceil(s / 8)``;
* ``<w>.row_offsets``: where each row's values start (informative; not needed to decode).

Other tensors are stored as they are. :func:`decode_state_dict` turns such a file's tensors
back into a plain state dict. Every size is checked against the bytes present before anything
is allocated: the bitmask's shape must follow from the declared shape, the number of values
must equal the number of set bits, and padding bits must be clear, so a damaged or edited
file is refused with an :class:`~gancompress.errors.InputError` instead of decoding to
other weights.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch

from ..errors import InputError

SUFFIXES = ("shape", "compressed", "bitmask", "row_offsets")
MAX_RANK = 8


def bitmask_names(keys: set[str] | list[str]) -> list[str]:
    """The weights stored in the sparse-bitmask layout: names with all four arrays present."""
    keys = set(keys)
    bases = {k[: -len(".bitmask")] for k in keys if k.endswith(".bitmask")}
    return sorted(b for b in bases if all(f"{b}.{s}" in keys for s in SUFFIXES))


def is_bitmask_layout(keys: set[str] | list[str]) -> bool:
    return bool(bitmask_names(keys))


def _damaged(name: str, what: str) -> InputError:
    return InputError(f"{name}: {what}; the compressed-tensors file is damaged or was edited "
                      "(re-save it with compressed-tensors)")


def _declared_shape(name: str, shape: torch.Tensor) -> tuple[int, ...]:
    if shape.dim() != 1 or shape.dtype.is_floating_point or shape.dtype == torch.bool or shape.numel() > MAX_RANK:
        raise _damaged(name, f"{name}.shape must be a short list of integer sizes, got {tuple(shape.shape)} {shape.dtype}")
    sizes = tuple(int(s) for s in shape.tolist())
    if not sizes or any(s < 0 for s in sizes):
        raise _damaged(name, f"declared shape {sizes} is not a list of sizes")
    return sizes


def _mask(name: str, shape: tuple[int, ...], bitmask: torch.Tensor) -> np.ndarray:
    expected = (*shape[:-1], math.ceil(shape[-1] / 8))
    if bitmask.dtype not in (torch.uint8, torch.int8) or tuple(bitmask.shape) != expected:
        raise _damaged(name, f"{name}.bitmask is {tuple(bitmask.shape)} {bitmask.dtype}, but the declared "
                             f"shape {shape} needs {expected} bytes of uint8")
    packed = bitmask.view(torch.uint8).numpy()
    full = np.unpackbits(packed, axis=-1, bitorder="little")
    if full[..., shape[-1]:].any():
        raise _damaged(name, "padding bits past the last column are set")
    return full[..., : shape[-1]].astype(bool)


def decode_weight(name: str, arrays: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The dense tensor ``name`` from its four arrays (validated before allocating)."""
    shape = _declared_shape(name, arrays["shape"])
    values = arrays["compressed"]
    if values.dim() != 1 or not (values.dtype.is_floating_point or values.dtype.is_complex):
        raise _damaged(name, f"{name}.compressed must be a 1-D float tensor, got {tuple(values.shape)} {values.dtype}")
    mask = _mask(name, shape, arrays["bitmask"])  # its size is bounded by the bitmask's bytes
    if int(mask.sum()) != values.numel():
        raise _damaged(name, f"the bitmask marks {int(mask.sum())} non-zeros but {values.numel()} values are stored")
    offsets = arrays["row_offsets"]
    if offsets.dtype.is_floating_point or tuple(offsets.shape) != shape[:-1]:
        raise _damaged(name, f"{name}.row_offsets is {tuple(offsets.shape)}, expected {shape[:-1]}")
    dense = torch.zeros(shape, dtype=values.dtype)
    dense[torch.from_numpy(mask)] = values
    return dense


def decode_state_dict(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A plain state dict from a file's tensors, with every sparse-bitmask weight decoded."""
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name in bitmask_names(list(tensors)):
        parts = {s: tensors[f"{name}.{s}"] for s in SUFFIXES}
        used.update(f"{name}.{s}" for s in SUFFIXES)
        out[name] = decode_weight(name, parts)
    for key, value in tensors.items():
        if key not in used:
            if key in out:
                raise _damaged(key, "stored both dense and compressed")
            out[key] = value
    return out
