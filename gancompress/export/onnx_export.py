"""``--format onnx`` (optional extra): ``torch.onnx.export`` of the masked generator.

Needs the ``onnx`` package (``pip install onnx``); when ``onnxruntime`` is installed the file is
run once and compared with the PyTorch output.
"""
from __future__ import annotations

from pathlib import Path
import torch
from torch import nn

from ..archs import ArchSpec
from ..errors import GanCompressError, InputError
from ..formats.checkpoint import GanBundle
from ..formats.export_file import DTYPES
from ..formats.onnx_file import add_digest
from ..io_utils import atomic_write
from .config import ExportConfig, ExportResult


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise InputError("--format onnx needs the onnx package: pip install onnx (and onnxruntime to check "
                         "the file); or use --format sparse/dense/shrunk") from None


def _check_with_runtime(path: Path, model: nn.Module, x: torch.Tensor) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        return
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    if got.shape != want.shape or float(abs(got - want).max()) > 1e-3:
        raise GanCompressError("the ONNX file's output differs from PyTorch's; please report this")


def write_onnx(bundle: GanBundle, config: ExportConfig) -> ExportResult:
    """The ``onnx`` writer: ``torch.onnx.export`` of the masked generator."""
    from .writer import dense_float32_bytes, provenance

    model = bundle.masked_generator()
    return export_onnx(model, bundle.g_spec, config, dense_float32_bytes(model, bundle.g_spec, provenance(bundle)))


def export_onnx(model: nn.Module, spec: ArchSpec, config: ExportConfig, dense_bytes: int) -> ExportResult:
    from .shrink import input_shape_of

    _require_onnx()
    x = torch.randn(1, *input_shape_of(spec))
    if config.dtype not in (None, "float32"):
        model, x = model.to(DTYPES[config.dtype]), x.to(DTYPES[config.dtype])

    def write(tmp: Path) -> None:
        torch.onnx.export(model, (x,), str(tmp), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False)
        add_digest(tmp, spec.to_json())

    path = atomic_write(Path(config.output), write, force=config.force)
    if config.dtype in (None, "float32"):
        _check_with_runtime(path, model, x)
    size = path.stat().st_size
    params = sum(p.numel() for p in model.parameters())
    nonzeros = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    return ExportResult(str(path), "onnx", config.dtype or "float32", size, dense_bytes, size / dense_bytes,
                        params, nonzeros, spec.name, {"onnx": 1})
