"""Every file gancompress writes is a valid `evaluate` and `inspect` input: float16/bfloat16,
shrunk, sparse and ONNX exports give the dense model's outputs (PSNR to it) and their own counts."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from gancompress.archs import ArchSpec, build
from gancompress.formats.checkpoint import GanBundle, save_bundle
from gancompress.cli.main import app
from test_metrics import register_tiny

register_tiny()
pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["--extractor", "tiny", "--real", "builtin:digits", "-n", "40", "--batch-size", "20", "--device", "cpu", "-q"]

# (format, dtype, lowest PSNR to the pruned model in dB)
EXPORTS = [("sparse", None, 100.0), ("shrunk", "float16", 35.0), ("shrunk", "bfloat16", 20.0),
           ("sparse", "float16", 35.0), ("dense", "bfloat16", 20.0), ("onnx", None, 60.0),
           ("onnx", "float16", 35.0), ("sparse", "int8", 30.0), ("shrunk", "fp8", 20.0), ("dense", "int8", 30.0),
           ("onnx", "int8", 30.0), ("onnx", "fp8", 20.0)]
QUANTIZE = ("int8", "fp8")  # in the dtype slot: --quantize SCHEME (the values are float32)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    torch.manual_seed(0)
    spec = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 8, "nc": 1})
    dense = save_bundle(GanBundle(build(spec).eval(), spec), folder / "dense.safetensors")
    pruned = folder / "pruned.safetensors"
    r = invoke("prune", str(dense), "-s", "0.5", "-g", "filter", "-o", str(pruned), "-q")
    assert r.exit_code == 0, r.output
    out = {"pruned": str(pruned)}
    for fmt, dtype, _ in EXPORTS:
        name = f"{fmt}-{dtype or 'same'}" + (".onnx" if fmt == "onnx" else ".safetensors")
        args = ["export", str(pruned), "--format", fmt, "-o", str(folder / name)] + (["--quantize" if dtype in QUANTIZE else "--dtype", dtype] if dtype else [])
        r = invoke(*args)
        assert r.exit_code == 0, r.output
        out[(fmt, dtype)] = str(folder / name)
    return out


@pytest.mark.parametrize("fmt,dtype,min_psnr", EXPORTS)
def test_export_evaluates_like_the_model_it_came_from(files, fmt, dtype, min_psnr, monkeypatch, tmp_path):
    monkeypatch.setenv("GANCOMPRESS_CACHE", str(tmp_path / "cache"))
    r = invoke("evaluate", files[(fmt, dtype)], "--reference", files["pruned"], "--fid", "--latency", "--json", *FAST)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    row, ref = doc["rows"]
    assert row["psnr"] == "inf" or row["psnr"] >= min_psnr
    assert row["fid"] == pytest.approx(ref["fid"], rel=0.05, abs=0.5)
    assert row["macs_effective"] is not None and row["macs_effective"] <= ref["macs_dense"]
    assert row["latency_ms"] > 0
    if fmt == "shrunk":  # the removed filters are gone, not zero
        assert row["parameters"] < ref["parameters"] * 0.7


@pytest.mark.parametrize("fmt,dtype", [(f, d) for f, d, _ in EXPORTS])
def test_export_inspects(files, fmt, dtype):
    r = invoke("inspect", files[(fmt, dtype)], "--json")
    assert r.exit_code == 0, r.output
    g = json.loads(r.stdout)["generator"]
    assert g["input_shape"] == [8, 1, 1] and g["output_shape"] == [1, 16, 16]
    assert g["macs_per_sample"] and g["parameters"] > 0 and g["layers"]
    assert g["dtype"] == ((dtype if dtype not in QUANTIZE else None) or "float32")


def test_unreadable_onnx_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    r = invoke("inspect", str(bad))
    assert r.exit_code == 2 and r.stderr.strip().startswith("error:") and "ONNX" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
