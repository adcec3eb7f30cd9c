"""The export formats, a registry: what ``--format NAME`` writes. Torch-free (``names()`` feeds ``--help``).

A format's ``write(bundle, config)`` exports the bundle's masked generator to ``config.output``
and returns an :class:`~gancompress.export.config.ExportResult`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..registry import Registry


@dataclass(frozen=True)
class ExportFormat:
    name: str
    write: Callable[[Any, Any], Any]  # (GanBundle, ExportConfig) -> ExportResult
    help: str = ""


EXPORT_FORMATS: Registry[ExportFormat] = Registry("export format")


def register_format(fmt: ExportFormat) -> ExportFormat:
    EXPORT_FORMATS.add(fmt.name, fmt)
    return fmt


def _safetensors(bundle: Any, config: Any) -> Any:
    from .writer import write_safetensors

    return write_safetensors(bundle, config)


def _onnx(bundle: Any, config: Any) -> Any:
    from .onnx_export import write_onnx

    return write_onnx(bundle, config)


for _f in (
    ExportFormat("sparse", _safetensors, "bit-mask safetensors (docs/sparse_format.md): zeros cost one bit"),
    ExportFormat("dense", _safetensors, "a plain safetensors state dict with the zeros stored"),
    ExportFormat("shrunk", _safetensors, "pruned filters physically removed: a smaller, faster dense network"),
    ExportFormat("onnx", _onnx, "an ONNX graph of the masked generator (needs the onnx package)"),
):
    register_format(_f)


def names() -> list[str]:
    return EXPORT_FORMATS.names()
