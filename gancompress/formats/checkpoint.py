"""The project's own checkpoint format, and the in-memory bundle every command works on.

One ``.safetensors`` file holds the generator (``G.<key>``), the discriminator
(``D.<key>``), pruning masks packed 8 per byte (``M.<param>``, little bit order over the
flattened tensor, as ``numpy.packbits(..., bitorder="little")``), and ``__metadata__``:

- ``format``: ``gancompress-checkpoint``, ``format_version``: ``1``;
- ``g_arch`` / ``d_arch``: JSON :class:`~gancompress.archs.ArchSpec` (``{"name", "kwargs"}``);
- ``mask_shapes``: JSON ``{param: shape}``;
- ``pruning``, ``provenance``, ``finetune``: JSON documents written by the commands.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..version import __version__
from ..archs import ArchSpec, build_loaded, parse_spec
from ..errors import InputError
from ..io_utils import atomic_write

FORMAT_NAME = "gancompress-checkpoint"
FORMAT_VERSION = "1"


@dataclass
class GanBundle:
    """A generator, its discriminator (optional), pruning masks and metadata."""

    generator: nn.Module
    g_spec: ArchSpec | None
    discriminator: nn.Module | None = None
    d_spec: ArchSpec | None = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def arch_name(self) -> str:
        return self.g_spec.name if self.g_spec else "custom"

    def masked_generator(self, *, share: bool = False) -> nn.Module:
        """A copy of the generator with every mask applied (pruned weights are exactly +0.0).

        ``share``: tensors the masks leave as they are (unmasked, or already zero wherever pruned) are the
        bundle's own, not copies, so the copy costs only the weights that change (one layer at a time while
        checking); the caller must not modify the result's tensors in place."""
        memo: dict[int, Any] = {id(t): t for t in (*self.generator.parameters(), *self.generator.buffers())} if share else {}
        params = dict(self.generator.named_parameters())
        with torch.no_grad():
            for name, mask in self.masks.items():
                p = params[name]
                if share and _zero_where_masked(p, mask):  # already what the masks make it: no copy
                    continue
                value = torch.where(mask.to(p.device), p, torch.zeros((), dtype=p.dtype, device=p.device))
                memo[id(p)] = nn.Parameter(value, requires_grad=p.requires_grad)
                del value
        return copy.deepcopy(self.generator, memo).eval()


_SLAB = 1 << 22


def _zero_where_masked(p: torch.Tensor, mask: torch.Tensor) -> bool:
    """True when ``p`` is already 0 wherever ``mask`` prunes (read a slab at a time: no bool the size of ``p``)."""
    flat, keep = p.detach().reshape(-1), mask.to(device=p.device).reshape(-1)
    for i in range(0, flat.numel(), _SLAB):
        stray = flat[i:i + _SLAB] != 0
        if bool(stray.logical_and_(keep[i:i + _SLAB].logical_not()).any()):
            return False
    return True


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    bits = np.packbits(mask.detach().cpu().numpy().astype(bool, copy=False).reshape(-1), bitorder="little")
    return torch.from_numpy(bits)


def unpack_mask(packed: torch.Tensor, shape: list[int] | tuple[int, ...], name: str = "mask") -> torch.Tensor:
    """The boolean mask of ``shape`` from its packed bits; the byte count must match the shape exactly
    (a truncated or padded mask is damage, never read as "pruned") and the padding bits must be 0."""
    n = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    if packed.dtype != torch.uint8 or packed.ndim != 1 or packed.numel() != (n + 7) // 8:
        raise InputError(f"mask {name} holds {packed.numel()} {str(packed.dtype).removeprefix('torch.')} values in "
                         f"{packed.ndim} dimension(s) but its shape {list(shape)} needs {(n + 7) // 8} uint8 bytes; "
                         "the file is damaged or was edited, re-create it")
    raw = packed.numpy()
    if n % 8 and raw[-1] >> (n % 8):
        raise InputError(f"mask {name}: bits set past its {n} elements; the file is damaged or was edited, re-create it")
    bits = np.unpackbits(raw, count=n, bitorder="little")
    return torch.from_numpy(bits.astype(bool)).reshape(tuple(shape))


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def bundle_tensors_and_metadata(bundle: GanBundle) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if bundle.g_spec is None:
        raise InputError("a custom (--arch) generator cannot be saved without an architecture spec")
    tensors: dict[str, torch.Tensor] = {}
    for k, v in bundle.generator.state_dict().items():
        tensors[f"G.{k}"] = v.detach().cpu().contiguous()
    if bundle.discriminator is not None:
        for k, v in bundle.discriminator.state_dict().items():
            tensors[f"D.{k}"] = v.detach().cpu().contiguous()
    for k, m in bundle.masks.items():
        tensors[f"M.{k}"] = pack_mask(m)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "gancompress_version": __version__,
        "g_arch": bundle.g_spec.to_json(),
        "mask_shapes": _json({k: list(m.shape) for k, m in bundle.masks.items()}),
    }
    if bundle.d_spec is not None and bundle.discriminator is not None:
        meta["d_arch"] = bundle.d_spec.to_json()
    for key, value in bundle.meta.items():
        meta[key] = value if isinstance(value, str) else _json(value)
    return tensors, meta


def save_bundle(bundle: GanBundle, path: str | Path, *, force: bool = False) -> Path:
    """Write ``bundle`` in the project format, atomically; never overwrite without ``force``."""
    from .safetensors_file import save_safetensors

    tensors, meta = bundle_tensors_and_metadata(bundle)
    return atomic_write(Path(path), lambda tmp: save_safetensors(tmp, tensors, meta), force=force)


def is_project_file(metadata: dict[str, str] | None) -> bool:
    return bool(metadata) and metadata.get("format") == FORMAT_NAME


def _split(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    n = len(prefix)
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix)}


def _decode_meta(metadata: dict[str, str]) -> dict[str, Any]:
    skip = {"format", "format_version", "g_arch", "d_arch", "mask_shapes"}
    out: dict[str, Any] = {}
    for k, v in metadata.items():
        if k in skip:
            continue
        try:
            out[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            out[k] = v
    return out


def _mask_shapes(metadata: dict[str, str], source: str) -> dict[str, list[int]]:
    try:
        shapes = json.loads(metadata.get("mask_shapes", "{}"))
    except (json.JSONDecodeError, TypeError, RecursionError):
        shapes = None
    if not isinstance(shapes, dict) or not all(
            isinstance(v, list) and len(v) <= 8 and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v)
            for v in shapes.values()):
        raise InputError(f"{source}: damaged mask_shapes metadata (not a JSON object of shapes); re-create the file")
    return shapes


def _read_masks(packed: dict[str, torch.Tensor], shapes: dict[str, list[int]], generator: nn.Module,
                source: str) -> dict[str, torch.Tensor]:
    """Every mask checked against its parameter's shape and its byte count before it is unpacked."""
    if set(packed) != set(shapes):
        raise InputError(f"{source}: masks and their recorded shapes do not match; the file is damaged")
    params = dict(generator.named_parameters())
    masks = {}
    for k in sorted(packed):
        if k not in params or tuple(params[k].shape) != tuple(shapes[k]):
            raise InputError(f"{source}: mask {k} of shape {shapes[k]} does not fit the generator; the file is damaged")
        masks[k] = unpack_mask(packed[k], shapes[k], k)
    return masks


def bundle_from_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str], source: str) -> GanBundle:
    """Rebuild a :class:`GanBundle` from a project-format file's contents (every declared size checked first)."""
    if metadata.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{source}: project format version {metadata.get('format_version')!r} is not supported "
            f"by gancompress {__version__} (reads version {FORMAT_VERSION}); upgrade gancompress"
        )
    g_spec = parse_spec(metadata.get("g_arch"), source)
    d_spec = parse_spec(metadata["d_arch"], source, "d_arch") if "d_arch" in metadata else None
    mask_shapes = _mask_shapes(metadata, source)
    generator = build_loaded(g_spec, _split(tensors, "G."), f"generator {g_spec.name} in {source}")
    discriminator = None
    if d_spec is not None:
        discriminator = build_loaded(d_spec, _split(tensors, "D."), f"discriminator {d_spec.name} in {source}").eval()
    masks = _read_masks(_split(tensors, "M."), mask_shapes, generator, source)
    return GanBundle(generator.eval(), g_spec, discriminator, d_spec, masks, _decode_meta(metadata), source)
