"""``export(config)``: write the deployable generator as sparse, dense, shrunk or ONNX.

Only the generator is exported, with its pruning masks applied (``torch.where``, so pruned
weights are ``+0.0``) and in eval-mode form (BatchNorm running statistics included).
Every safetensors export carries ``__metadata__`` with ``format`` (``gancompress-sparse`` or
``gancompress-dense``), ``format_version``, ``g_arch`` (the architecture spec, so
:func:`gancompress.api.load` rebuilds the module), ``dtype``, ``layout`` and, for sparse
files, the ``tensors`` table of non-dense encodings.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..archs import ArchSpec
from ..loading import LoadOptions
from ..checkpoint import GanBundle
from ..errors import InputError
from ..io_utils import atomic_write
from . import sparse_format as sf

FORMATS = ("sparse", "dense", "shrunk", "onnx")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class ExportConfig:
    """What to export, where, and how."""

    source: str
    output: Path
    format: str = "sparse"
    dtype: str | None = None  # None keeps the checkpoint's dtype
    force: bool = False
    trust_pickle: bool = False
    arch: str | None = None
    arch_kwargs: dict[str, Any] | None = None
    load: LoadOptions | None = None  # wins over trust_pickle/arch/arch_kwargs when given (--d-arch too)


@dataclass
class ExportResult:
    """The file written and how it compares with the dense float32 file."""

    path: str
    format: str
    dtype: str
    file_bytes: int
    dense_float32_bytes: int
    ratio: float
    parameters: int
    nonzeros: int
    architecture: str
    encodings: dict[str, int] = field(default_factory=dict)
    shrink: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_config(config: ExportConfig) -> None:
    if config.format not in FORMATS:
        raise InputError(f"unknown export format {config.format!r}; choose one of {', '.join(FORMATS)}")
    if config.dtype is not None and config.dtype not in DTYPES:
        raise InputError(f"unknown dtype {config.dtype!r}; choose one of {', '.join(DTYPES)}")


def export(config: ExportConfig) -> ExportResult:
    """Load ``config.source`` and export its generator (the CLI's one library call)."""
    from ..io_utils import check_writable
    from ..loading import load_bundle

    check_config(config)
    check_writable(Path(config.output), force=config.force)
    options = config.load or LoadOptions(trust_pickle=config.trust_pickle, arch=config.arch, arch_kwargs=config.arch_kwargs)
    return export_bundle(load_bundle(config.source, options), config)


def export_bundle(bundle: GanBundle, config: ExportConfig) -> ExportResult:
    """Export an in-memory bundle's generator as ``config.format``."""
    check_config(config)
    if bundle.g_spec is None:
        raise InputError("this generator has no architecture spec (a whole pickled module); "
                         "export needs one: load it from a state dict or pass --arch")
    model = masked_generator(bundle)
    if config.format == "onnx":
        from .onnx_export import export_onnx

        return export_onnx(model, bundle.g_spec, config, dense_float32_bytes(model, bundle.g_spec, provenance(bundle)))
    spec, report = bundle.g_spec, None
    if config.format == "shrunk":
        from .shrink import shrink_generator

        model, spec, shrink_report = shrink_generator(model, bundle.g_spec)
        report = asdict(shrink_report)
    state = cast_state_dict(model.state_dict(), config.dtype)
    result = write_state(state, spec, config, provenance(bundle))
    result.dense_float32_bytes = dense_float32_bytes(masked_generator(bundle), bundle.g_spec, provenance(bundle))
    result.ratio = result.file_bytes / result.dense_float32_bytes
    result.shrink = report
    return result


def masked_generator(bundle: GanBundle) -> nn.Module:
    """A copy of the generator with every mask applied (pruned weights are exactly +0.0)."""
    model = copy.deepcopy(bundle.generator).eval()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in bundle.masks.items():
            p = params[name]
            p.copy_(torch.where(mask.to(p.device), p, torch.zeros((), dtype=p.dtype, device=p.device)))
    return model


def cast_state_dict(state: dict[str, torch.Tensor], dtype: str | None) -> dict[str, torch.Tensor]:
    """Detached CPU copies; floating tensors cast to ``dtype`` when given."""
    target = DTYPES[dtype] if dtype else None
    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        out[k] = (v.to(target) if target is not None and v.is_floating_point() else v).contiguous()
    return out


def provenance(bundle: GanBundle) -> dict[str, Any]:
    info: dict[str, Any] = {"source": bundle.source}
    if "pruning" in bundle.meta:
        info["pruning"] = bundle.meta["pruning"]
    return info


# ----------------------------------------------------------------------------- tensors <-> numpy


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A numpy view of ``t``; bfloat16 travels as its int16 bit pattern."""
    t = t.detach().cpu().contiguous()
    return t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()


def to_torch(a: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.view(torch.bfloat16) if dtype == torch.bfloat16 and t.dtype == torch.int16 else t


# ----------------------------------------------------------------------------- writing


def encode_state_dict(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Stored arrays and the ``tensors`` table (non-dense entries only) of a sparse file."""
    tensors: dict[str, torch.Tensor] = {}
    table: dict[str, Any] = {}
    for name, value in state.items():
        enc = sf.encode(to_numpy(value)) if value.is_floating_point() else sf.Encoded("dense", {"": to_numpy(value)})
        if enc.encoding == "dense":
            tensors[name] = value.contiguous()
            continue
        table[name] = {"encoding": enc.encoding, "shape": list(value.shape), "dtype": dtype_name(value.dtype),
                       **enc.params}
        for suffix, arr in enc.arrays.items():
            tensors[f"{name}.{suffix}"] = to_torch(arr, value.dtype if suffix == "compressed" else None)
    return tensors, table


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


def serialize(state: dict[str, torch.Tensor], spec: ArchSpec, layout: str,
              extra: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, int]]:
    """Tensors, metadata and encoding counts of an export (``layout``: sparse, dense, shrunk)."""
    if layout == "sparse":
        tensors, table = encode_state_dict(state)
        meta = file_metadata(sf.FORMAT_SPARSE, spec, state, layout, extra)
        meta["tensors"] = json.dumps(table, sort_keys=True, separators=(",", ":"))
        counts = {e: sum(1 for t in table.values() if t["encoding"] == e) for e in sf.ENCODINGS[1:]}
        counts["dense"] = len(state) - len(table)
        return tensors, meta, {k: v for k, v in counts.items() if v}
    tensors = {k: v.contiguous() for k, v in state.items()}
    return tensors, file_metadata(sf.FORMAT_DENSE, spec, state, layout, extra), {"dense": len(state)}


def write_state(state: dict[str, torch.Tensor], spec: ArchSpec, config: ExportConfig,
                extra: dict[str, Any]) -> ExportResult:
    from safetensors.torch import save_file

    layout = config.format
    tensors, meta, counts = serialize(state, spec, layout, extra)
    path = atomic_write(Path(config.output), lambda tmp: save_file(tensors, str(tmp), metadata=meta), force=config.force)
    size = path.stat().st_size
    weights = [v for v in state.values() if v.is_floating_point()]
    return ExportResult(
        path=str(path), format=layout, dtype=meta["dtype"], file_bytes=size, dense_float32_bytes=size, ratio=1.0,
        parameters=sum(v.numel() for v in weights), nonzeros=sum(int(sf.nonzero(to_numpy(v)).sum()) for v in weights),
        architecture=spec.name, encodings=counts,
    )


def dense_float32_bytes(model: nn.Module, spec: ArchSpec, extra: dict[str, Any]) -> int:
    """Size of the dense float32 export of ``model`` (the yardstick for ratios)."""
    from safetensors.torch import save

    state = cast_state_dict(model.state_dict(), "float32")
    tensors, meta, _ = serialize(state, spec, "dense", extra)
    return len(save(tensors, metadata=meta))
