"""``--format onnx`` (optional extra): ``torch.onnx.export`` of the masked generator.

Needs the ``onnx`` package (``pip install onnx``); when ``onnxruntime`` is installed the file is
run once and compared with the PyTorch output.
"""
from __future__ import annotations

import json
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


def _check_with_runtime(path: Path, model: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        return
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)})[0]
    with torch.no_grad():
        want = model(*args).numpy()
    if got.shape != want.shape or float(abs(got - want).max()) > 1e-3:
        raise GanCompressError("the ONNX file's output differs from PyTorch's; please report this")


def write_onnx(bundle: GanBundle, config: ExportConfig) -> ExportResult:
    """The ``onnx`` writer: ``torch.onnx.export`` of the shrunk generator when whole filters are zero
    (``config.shrink``), else of the masked generator."""
    from .writer import dense_float32_bytes, provenance

    from .shrink import bake_weight_norms

    model = bake_weight_norms(bundle.masked_generator())  # ONNX has no power iteration (vdot) to export
    dense_bytes = dense_float32_bytes(model, bundle.g_spec, provenance(bundle))
    small, report, notes = _shrunk(model, bundle, config) if config.shrink else (None, None, [])
    result = export_onnx(small if small is not None else model, bundle.g_spec, config, dense_bytes)
    result.shrink, result.notes = report, notes
    return result


def _shrunk(model: nn.Module, bundle: GanBundle, config: ExportConfig):
    """``(shrunk model or None, its report, notes)``: the network without its zero filters."""
    from dataclasses import asdict

    from .shrink import shrink_generator

    try:
        small, _, report = shrink_generator(model, bundle.g_spec)
    except InputError as exc:
        return None, None, [f"exported the masked dense graph: the network could not be shrunk ({exc})"]
    if not report.removed:
        return None, None, []
    return small, asdict(report), [f"exported the shrunk network ({report.removed} zero filters/channels removed); "
                                   "--no-shrink exports the masked dense graph"]


def _described(model: nn.Module, spec: ArchSpec) -> dict[str, str]:
    """What a reader of the file needs besides the graph (:mod:`gancompress.formats.onnx` reads it back)."""
    from ..archs import ARCHITECTURES
    from ..generation import generator_input

    arch = ARCHITECTURES.get(spec.name) if spec.name in ARCHITECTURES else None
    value_range = getattr(model, "output_range", None) or (arch.output_range if arch is not None else None)
    out = {"gancompress.input_kind": generator_input(model, spec)[0]}
    if value_range is not None:
        out["gancompress.output_range"] = json.dumps([float(v) for v in value_range])
    if getattr(model, "num_classes", None):
        out["gancompress.num_classes"] = str(int(model.num_classes))
    return out


def export_onnx(model: nn.Module, spec: ArchSpec, config: ExportConfig, dense_bytes: int) -> ExportResult:
    from ..generation import generator_input

    _require_onnx()
    x = torch.randn(2, *generator_input(model, spec)[1])
    classes = getattr(model, "num_classes", None)
    if config.dtype not in (None, "float32"):
        model, x = model.to(DTYPES[config.dtype]), x.to(DTYPES[config.dtype])
    if config.quantize:
        from .onnx_quantize import fake_quantized_copy

        model = fake_quantized_copy(model, config.quantize)
    args = (x, torch.arange(2) % classes) if classes else (x,)  # class-conditional: a second input, the labels
    names = ["input", "labels"][:len(args)]

    def write(tmp: Path) -> None:
        torch.onnx.export(model, args, str(tmp), input_names=names, output_names=["output"],
                          dynamic_axes={n: {0: "batch"} for n in [*names, "output"]}, dynamo=False)
        if config.quantize:
            from .onnx_quantize import fold_weight_quantizers

            fold_weight_quantizers(tmp, config.quantize)
        add_digest(tmp, spec.to_json(), _described(model, spec))

    path = atomic_write(Path(config.output), write, force=config.force)
    if config.dtype in (None, "float32"):
        _check_with_runtime(path, model, args)
    size = path.stat().st_size
    params = sum(p.numel() for p in model.parameters())
    nonzeros = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    return ExportResult(str(path), "onnx", config.dtype or "float32", size, dense_bytes, size / dense_bytes,
                        params, nonzeros, spec.name, {"onnx": 1}, quantize=config.quantize)
