"""The safetensors writers (``sparse``, ``dense``, ``shrunk``) of :mod:`.formats`.

Only the generator is exported, with its pruning masks applied (``torch.where``, so pruned
weights are ``+0.0``) and in eval-mode form (BatchNorm running statistics included).
Every safetensors export carries ``__metadata__`` with ``format`` (``gancompress-sparse`` or
``gancompress-dense``), ``format_version``, ``g_arch`` (the architecture spec, so
:func:`gancompress.api.load` rebuilds the module), ``dtype``, ``layout`` and, for sparse
files, the ``tensors`` table of non-dense encodings.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..archs import ArchSpec
from ..formats import sparse as sf
from ..formats.checkpoint import GanBundle
from ..formats.export_file import cast_state_dict, serialize, to_numpy
from ..formats.quantize import weight_axes
from ..io_utils import atomic_write
from .config import ExportConfig, ExportResult


def write_safetensors(bundle: GanBundle, config: ExportConfig) -> ExportResult:
    """The ``sparse``, ``dense`` and ``shrunk`` writers: the masked generator as one safetensors file."""
    model, spec, report, notes = bundle.masked_generator(share=True), bundle.g_spec, None, []  # only read
    if config.format == "shrunk":
        from .shrink import shrink_generator

        model, spec, shrink_report = shrink_generator(model, bundle.g_spec)
        report = asdict(shrink_report)
        notes = [] if shrink_report.removed else [nothing_removed(bundle)]
    state = cast_state_dict(model.state_dict(), config.dtype)
    result = write_state(state, spec, config, provenance(bundle), weight_axes(model))
    result.dense_float32_bytes = dense_float32_bytes(bundle.generator, bundle.g_spec, provenance(bundle))
    result.ratio = result.file_bytes / result.dense_float32_bytes
    result.shrink, result.notes = report, notes
    return result


def nothing_removed(bundle: GanBundle) -> str:
    """Why ``--format shrunk`` removed nothing, and which pruning would let it."""
    from ..prune import is_prunable, module_structure

    model = bundle.masked_generator()
    kinds = sorted({module_structure(m) for _, m in model.named_modules() if is_prunable(m)} - {"none"})
    zeros = f"its zeros are {', '.join(kinds)}-shaped" if kinds else "it has no zeros"
    return (f"--format shrunk removed nothing: no whole filter or channel is zero ({zeros}), so the file is as large "
            "as the dense one; prune with --granularity filter (add --coupled for residual networks) to shrink the "
            "network, or export --format sparse to store these zeros compactly")


def provenance(bundle: GanBundle) -> dict[str, Any]:
    info: dict[str, Any] = {"source": bundle.source}
    if "pruning" in bundle.meta:
        info["pruning"] = bundle.meta["pruning"]
    return info


def write_state(state: dict[str, torch.Tensor], spec: ArchSpec, config: ExportConfig,
                extra: dict[str, Any], axes: dict[str, int] | None = None) -> ExportResult:
    """Write ``state``; with ``config.quantize``, the weights named in ``axes`` (name -> output axis) go in 8 bits."""
    from ..formats.safetensors_file import save_safetensors

    layout = config.format
    quantize = (config.quantize, axes or {}) if config.quantize else None
    tensors, meta, counts = serialize(state, spec, layout, extra, quantize, config.encodings)
    path = atomic_write(Path(config.output), lambda tmp: save_safetensors(tmp, tensors, meta), force=config.force,
                        inputs=(Path(extra.get("source", "")),))
    size = path.stat().st_size
    weights = [v for v in state.values() if v.is_floating_point()]
    return ExportResult(
        path=str(path), format=layout, dtype=meta["dtype"], file_bytes=size, dense_float32_bytes=size, ratio=1.0,
        parameters=sum(v.numel() for v in weights), nonzeros=sum(sf.count_nonzero(to_numpy(v)) for v in weights),
        architecture=spec.name, encodings=counts, quantize=config.quantize,
    )


def dense_float32_bytes(model: nn.Module, spec: ArchSpec, extra: dict[str, Any]) -> int:
    """Size of the dense float32 export of ``model`` (the yardstick for ratios; from shapes alone, no copy)."""
    from ..formats.safetensors_file import serialized_size

    state = {k: torch.empty(v.shape, dtype=torch.float32 if v.is_floating_point() else v.dtype, device="meta")
             for k, v in model.state_dict().items()}
    tensors, meta, _ = serialize(state, spec, "dense", extra)
    return serialized_size(tensors, meta)
