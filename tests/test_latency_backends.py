"""Latency per backend: torch eager, torch.compile (or why not), onnxruntime; each row names its runtime."""
from __future__ import annotations

import pytest
import torch

from gancompress.errors import InputError
from gancompress.metrics.latency import BACKENDS, check_backends, measure_backends
from test_metrics import tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")


def test_eager_and_onnxruntime_at_each_batch_size():
    g = tiny_generator(0)
    rows = measure_backends(g, (8, 1, 1), torch.device("cpu"), ["eager", "onnxruntime"], [1, 4], warmup=1, repeats=3)
    assert [(r.backend, r.batch_size) for r in rows] == [("eager", 1), ("eager", 4), ("onnxruntime", 1), ("onnxruntime", 4)]
    assert rows[0].runtime.startswith("torch ") and "eager on cpu" in rows[0].runtime
    assert rows[2].runtime.startswith("onnxruntime ") and "CPUExecutionProvider" in rows[2].runtime
    for r in rows:
        assert r.note is None and r.median_ms > 0
        assert r.throughput == pytest.approx(r.batch_size / (r.median_ms / 1000.0))


def test_a_failing_compiler_is_reported_not_fatal(monkeypatch):
    def broken(model):
        def run(x):
            raise RuntimeError("no C++ compiler found\nmore detail")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    rows = measure_backends(tiny_generator(0), (8, 1, 1), torch.device("cpu"), ["compile", "eager"], [2], repeats=1)
    assert rows[0].backend == "compile" and rows[0].median_ms is None
    assert rows[0].note == "torch.compile failed: no C++ compiler found"
    assert rows[1].backend == "eager" and rows[1].median_ms > 0


def test_backend_names_come_from_the_registry():
    assert check_backends(["all"]) == BACKENDS.names() == ["eager", "compile", "onnxruntime"]
    with pytest.raises(InputError, match="did you mean onnxruntime"):
        check_backends(["onnxruntim"])
    with pytest.raises(InputError, match="twice"):
        check_backends(["eager", "eager"])


def test_a_float16_model_is_timed_in_float16_by_every_runtime():
    from gancompress.formats.precision import run_in_weight_dtype

    g = run_in_weight_dtype(tiny_generator(0).half())
    rows = measure_backends(g, (8, 1, 1), torch.device("cpu"), ["eager", "onnxruntime"], [2], warmup=1, repeats=2)
    assert all(r.note is None and r.median_ms > 0 for r in rows), [r.note for r in rows]


def test_auto_is_the_models_own_runtime_and_never_timed_twice(tmp_path):
    from gancompress.formats.onnx import load_onnx_bundle

    g = tiny_generator(0)
    path = tmp_path / "g.onnx"
    torch.onnx.export(g, (torch.zeros(1, 8, 1, 1),), str(path), input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False)
    onnx_g = load_onnx_bundle(path, str(path)).generator
    rows = measure_backends(onnx_g, (8, 1, 1), torch.device("cpu"), ["auto", "onnxruntime"], [1], repeats=2)
    assert [r.backend for r in rows] == ["onnxruntime"] and rows[0].runtime.startswith("onnxruntime")
    rows = measure_backends(g, (8, 1, 1), torch.device("cpu"), ["auto"], [1], repeats=2)
    assert [r.backend for r in rows] == ["eager"]
