"""`gancompress export`: exit codes, messages, --force, --json, no half-written files."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from gancompress.api import load
from gancompress.archs import ArchSpec, build
from gancompress.formats.checkpoint import GanBundle, save_bundle
from gancompress.cli.main import app

SPEC = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": 1})


@pytest.fixture()
def checkpoint(tmp_path):
    torch.manual_seed(0)
    g = build(SPEC).eval()
    masks = {n: torch.rand(p.shape) > 0.9 for n, p in g.named_parameters() if p.ndim == 4}
    path = tmp_path / "pruned.safetensors"
    save_bundle(GanBundle(g, SPEC, masks=masks), path)
    return path


def _run(*args: str):
    return CliRunner().invoke(app, ["export", *args])


def test_export_json_and_overwrite_rules(tmp_path, checkpoint):
    out = tmp_path / "g.safetensors"
    r = _run(str(checkpoint), "-o", str(out), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["path"] == str(out) and doc["format"] == "sparse" and doc["ratio"] < 0.5
    assert doc["file_bytes"] == out.stat().st_size
    before = out.read_bytes()
    r = _run(str(checkpoint), "-o", str(out), "--format", "dense")
    assert r.exit_code == 2 and "already exists" in r.stderr and "--force" in r.stderr
    assert out.read_bytes() == before
    r = _run(str(checkpoint), "-o", str(out), "--format", "dense", "--force")
    assert r.exit_code == 0 and "wrote" in r.output and "dense float32" in r.output
    assert not list(tmp_path.glob(".*.tmp"))
    load(out)


@pytest.mark.parametrize("fmt", ["shrunk", "sparse"])
def test_export_formats_and_dtype(tmp_path, checkpoint, fmt):
    out = tmp_path / f"{fmt}.safetensors"
    r = _run(str(checkpoint), "-o", str(out), "--format", fmt, "--dtype", "float16", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["dtype"] == "float16"
    assert next(load(out).parameters()).dtype == torch.float16


@pytest.mark.parametrize("args, message", [
    (["--format", "zip"], "unknown export format"),
    (["--dtype", "int8"], "unknown dtype"),
])
def test_bad_options_exit_2(tmp_path, checkpoint, args, message):
    out = tmp_path / "g.safetensors"
    r = _run(str(checkpoint), "-o", str(out), *args)
    assert r.exit_code == 2 and message in r.stderr
    assert not out.exists()


def test_missing_source_and_help(tmp_path):
    r = _run(str(tmp_path / "nope.pt"), "-o", str(tmp_path / "g.safetensors"))
    assert r.exit_code == 2 and "no such file" in r.stderr
    r = _run("--help")
    assert r.exit_code == 0 and "Example: gancompress export" in r.stdout


def test_onnx_is_clear_about_its_extra(tmp_path, checkpoint):
    out = tmp_path / "g.onnx"
    r = _run(str(checkpoint), "-o", str(out), "--format", "onnx")
    try:
        import onnx  # noqa: F401
    except ImportError:
        assert r.exit_code == 2 and "pip install onnx" in r.stderr and not out.exists()
    else:
        assert r.exit_code == 0 and out.stat().st_size > 0


def test_onnx_file_runs_in_onnxruntime_like_the_masked_generator(tmp_path, checkpoint):
    """The exported graph, at a batch size other than the traced one, computes what PyTorch does."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "g.onnx"
    r = _run(str(checkpoint), "-o", str(out), "--format", "onnx", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["format"] == "onnx"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    z = torch.randn(3, 8, 1, 1, generator=torch.Generator().manual_seed(5))
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: z.numpy()})[0])
    model = load(str(checkpoint)).eval()
    with torch.no_grad():
        want = model(z)
    assert got.shape == want.shape == (3, 1, 16, 16)
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got[0], got[1])  # the batch axis is dynamic: each input has its own output


def _pruned(tmp_path, granularity: str, sparsity: str):
    dense, out = tmp_path / "dense.safetensors", tmp_path / f"{granularity}.safetensors"
    if not dense.exists():
        torch.manual_seed(0)
        save_bundle(GanBundle(build(SPEC).eval(), SPEC), dense)
    r = CliRunner().invoke(app, ["prune", str(dense), "-s", sparsity, "-g", granularity, "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    return out


def test_shrunk_export_without_zero_filters_says_what_would_shrink_it(tmp_path):
    pruned = _pruned(tmp_path, "element", "0.8")
    r = _run(str(pruned), "-o", str(tmp_path / "s.safetensors"), "--format", "shrunk", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["shrink"]["removed"] == 0 and doc["ratio"] > 0.95
    assert "removed nothing" in r.stderr and "--granularity filter" in r.stderr and "element" in r.stderr
    assert doc["notes"] and "--format sparse" in doc["notes"][0]
    filt = _pruned(tmp_path, "filter", "0.5")
    r = _run(str(filt), "-o", str(tmp_path / "f.safetensors"), "--format", "shrunk", "--json")
    assert r.exit_code == 0 and "removed nothing" not in r.stderr and json.loads(r.stdout)["notes"] == []


def test_onnx_of_a_filter_pruned_model_is_the_shrunk_network(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pruned = _pruned(tmp_path, "filter", "0.5")
    small, full = tmp_path / "small.onnx", tmp_path / "full.onnx"
    r = _run(str(pruned), "-o", str(small), "--format", "onnx", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["shrink"]["removed"] > 0 and "--no-shrink" in r.stderr
    r = _run(str(pruned), "-o", str(full), "--format", "onnx", "--no-shrink", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["shrink"] is None
    assert small.stat().st_size < 0.75 * full.stat().st_size
    z = torch.randn(2, 8, 1, 1, generator=torch.Generator().manual_seed(1))
    outs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": z.numpy()})[0]
            for p in (small, full)]
    assert torch.allclose(torch.from_numpy(outs[0]), torch.from_numpy(outs[1]), atol=1e-4)  # the same function
