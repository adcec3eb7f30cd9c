"""Latency per runtime: the same generator timed in torch eager, ``torch.compile`` and onnxruntime.

Each backend turns a generator into a callable, or says why it cannot
(:class:`BackendUnavailable`: ``torch.compile`` without a working compiler, onnxruntime not
installed, an ONNX file that only onnxruntime can run). Every result names the runtime that
measured it (``torch 2.x eager on cpu``, ``onnxruntime 1.x (CPUExecutionProvider)``), the batch
size, the median milliseconds per call and the samples per second. Inputs are seeded normal
tensors; ``warmup`` calls are untimed (``torch.compile`` compiles during them).
"""
from __future__ import annotations

import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import InputError
from ..registry import Registry
from .cost import timed_calls

Runner = Callable[[torch.Tensor], Any]
AUTO = "auto"


class BackendUnavailable(Exception):
    """This backend cannot run this model here; the message says why (shown in the report)."""


@dataclass
class LatencyResult:
    backend: str
    runtime: str
    batch_size: int
    median_ms: float | None = None  # per call of batch_size samples
    throughput: float | None = None  # samples per second
    note: str | None = None  # why it was not measured

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


BACKENDS: Registry[Callable[[nn.Module, tuple[int, ...], torch.device], tuple[Runner, str]]] = Registry("latency backend")


def _is_onnx(model: nn.Module) -> bool:
    return getattr(model, "traceable", True) is False and hasattr(model, "session")


def _torch_runtime(kind: str, device: torch.device) -> str:
    return f"torch {torch.__version__.split('+')[0]} {kind} on {device}"


@BACKENDS.register("eager")
def _eager(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> tuple[Runner, str]:
    if _is_onnx(model):
        raise BackendUnavailable("an ONNX file runs in onnxruntime only")
    return model, _torch_runtime("eager", device)


@BACKENDS.register("compile")
def _compiled(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> tuple[Runner, str]:
    if _is_onnx(model):
        raise BackendUnavailable("an ONNX file runs in onnxruntime only")
    compiled = torch.compile(model)
    try:
        with torch.no_grad():
            compiled(torch.zeros(1, *input_shape, device=device))
    except Exception as exc:  # noqa: BLE001 - no compiler, unsupported op...: report it, keep going
        raise BackendUnavailable(f"torch.compile failed: {_first_line(exc)}") from None
    return compiled, _torch_runtime("torch.compile (inductor)", device)


@BACKENDS.register("onnxruntime")
def _onnxruntime(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> tuple[Runner, str]:
    if _is_onnx(model):
        return model, model.runtime
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed (pip install 'gancompress[onnx]')") from None
    session = _session_of(model, input_shape, ort)
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> Any:
        return session.run(None, {name: x.detach().float().cpu().numpy()})

    return run, f"onnxruntime {ort.__version__} ({session.get_providers()[0]})"


def _session_of(model: nn.Module, input_shape: tuple[int, ...], ort) -> Any:
    """Export ``model`` (a CPU copy, in its own dtype) to a temporary ONNX file and open it with as many
    threads as torch uses, so the runtimes are compared on the same cores."""
    from ..devices import cpu_copy

    cpu = cpu_copy(model).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            torch.onnx.export(cpu, (torch.zeros(1, *input_shape),), str(path), input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              dynamo=False)
            return ort.InferenceSession(str(path), session_options(ort), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - an op ONNX cannot express
            raise BackendUnavailable(f"ONNX export failed: {_first_line(exc)}") from None


def session_options(ort) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return options


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def check_backends(names: list[str]) -> list[str]:
    """Validate backend names (``all``: every registered one; ``auto``: the model's own runtime, eager for
    a torch module and onnxruntime for an ONNX file); an :class:`InputError` lists the valid ones."""
    if names == ["all"]:
        return BACKENDS.names()
    for name in names:
        if name == AUTO:
            continue
        try:
            BACKENDS.get(name)
        except InputError as exc:
            raise InputError(f"--backend: {exc} (or auto, all)") from None
    if len(set(names)) != len(names):
        raise InputError(f"--backend lists a backend twice: {','.join(names)}")
    return names


@torch.no_grad()
def measure_backends(model: nn.Module, input_shape: tuple[int, ...], device: torch.device, backends: list[str],
                     batch_sizes: list[int], *, warmup: int = 3, repeats: int = 20, seed: int = 0,
                     num_classes: int | None = None) -> list[LatencyResult]:
    """One :class:`LatencyResult` per backend and batch size (unavailable backends: one row with a note)."""
    from ..generation import draw_latents

    model = model.eval()
    results: list[LatencyResult] = []
    resolved = [("onnxruntime" if _is_onnx(model) else "eager") if b == AUTO else b for b in check_backends(backends)]
    for backend in dict.fromkeys(resolved):  # "auto,onnxruntime" on an ONNX file times it once
        try:
            run, runtime = BACKENDS.get(backend)(model, input_shape, device)
        except BackendUnavailable as exc:
            results.append(LatencyResult(backend, "-", batch_sizes[0], note=str(exc)))
            continue
        for batch in batch_sizes:
            x = draw_latents(batch, input_shape, torch.Generator().manual_seed(seed), num_classes).to(device)
            timed_calls(run, x, warmup)
            median = statistics.median(timed_calls(run, x, repeats if batch == 1 else max(3, repeats // 4)))
            results.append(LatencyResult(backend, runtime, batch, median * 1000.0, batch / median))
    return results
