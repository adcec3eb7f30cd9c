"""`gancompress evaluate` end to end through Typer's CliRunner: gates, errors, report, grid."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from gancompress.cli.main import app
from gancompress.metrics.extractors import INCEPTION_ENV, INCEPTION_FILE
from test_metrics import register_tiny

register_tiny()
FAST = ["--extractor", "tiny", "--data", "builtin:digits", "-n", "40", "--batch-size", "20", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Project-format files: two random tiny digits generators, one all-white, one RGB."""
    from gancompress.archs import ArchSpec, build
    from gancompress.formats.checkpoint import GanBundle, save_bundle

    folder = tmp_path_factory.mktemp("models")
    spec = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": 1})
    paths = {}
    for name, seed in (("a", 0), ("b", 1), ("flat", 0), ("rgb", 2)):
        torch.manual_seed(seed)
        s = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": 3}) if name == "rgb" else spec
        g = build(s).eval()
        if name == "flat":
            torch.nn.init.zeros_(g.net[9].weight)
            torch.nn.init.constant_(g.net[9].bias, 3.0)  # tanh(3): white images, far from the digits
        paths[name] = str(save_bundle(GanBundle(g, s, source=name), folder / f"{name}.safetensors"))
    return paths


@pytest.fixture(autouse=True)
def _env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GANCOMPRESS_CACHE", str(tmp_path_factory.getbasetemp() / "evaluate-cache"))
    monkeypatch.delenv(INCEPTION_ENV, raising=False)


def run(*args: str):
    return CliRunner().invoke(app, ["evaluate", *args])


def one_line_error(result, code: int) -> str:
    """Usage errors: stderr is exactly one ``error:`` line."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def gate_error(result) -> str:
    """Gate failures: exit 3, the report table on stdout, then one error line on stderr."""
    assert result.exit_code == 3, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: quality gate failed: ") and sum(l.startswith("error:") for l in lines) == 1
    json_report = result.stdout.lstrip().startswith("{")
    assert ('"passed": false' if json_report else "FAILED") in result.stdout  # the report (table or JSON): stdout
    return lines[-1]


def test_json_report_and_max_fid_gate(models):
    ok = run(models["a"], "--fid", "--json", "--max-fid", "1e9", *FAST)
    assert ok.exit_code == 0, ok.stderr
    doc = json.loads(ok.stdout)
    fid = doc["rows"][0]["fid"]
    assert fid > 0 and doc["passed"] and doc["settings"]["extractor"] == "tiny"
    assert doc["rows"][0]["parameters"] > doc["rows"][0]["nonzeros"] - 1 > 0
    bad = run(models["a"], "--fid", "--max-fid", "0", *FAST)
    line = gate_error(bad)
    assert f"FID {fid:.4g} > --max-fid 0" in line


def test_max_fid_increase_gate(models):
    same = run(models["a"], "--reference", models["a"], "--fid", "--max-fid-increase", "5", *FAST)
    assert same.exit_code == 0, same.stderr
    worse = run(models["flat"], "--reference", models["a"], "--fid", "--max-fid-increase", "5", "--json", *FAST)
    line = gate_error(worse)
    doc = json.loads(worse.stdout)
    pct = doc["deltas"]["flat"]["fid"]["pct"]  # keyed by label
    assert pct > 5 and f"{pct:+.2f}%" in line and "--max-fid-increase 5" in line


def test_min_psnr_gate_and_inf_in_json(models):
    same = run(models["a"], "--reference", models["a"], "--min-psnr", "100", "--json", *FAST)
    assert same.exit_code == 0, same.stderr
    assert json.loads(same.stdout)["rows"][0]["psnr"] == "inf"
    other = run(models["a"], "--reference", models["b"], "--min-psnr", "1000", "--json", *FAST)
    line = gate_error(other)
    psnr = json.loads(other.stdout)["rows"][0]["psnr"]
    assert 0 < psnr < 1000 and f"PSNR {psnr:.4g} dB < --min-psnr 1000 dB" in line


def test_min_psnr_without_dense_model_is_usage_error(models):
    line = one_line_error(run(models["a"], "--min-psnr", "20", *FAST), 2)
    assert "--reference" in line


def test_missing_inception_weights_fails_first_naming_the_file(models, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    # the source does not exist either: the weights are checked before anything is loaded
    line = one_line_error(run(str(tmp_path / "missing.safetensors"), "--fid", "--extractor", "inception",
                              "--real", "builtin:digits"), 2)
    assert INCEPTION_FILE in line and str(tmp_path / "torch") in line and "--inception-weights" in line
    line = one_line_error(run(models["a"], "--fid", "--extractor", "inception", "--inception-weights",
                              str(tmp_path / "nope.pth")), 2)
    assert "nope.pth" in line and INCEPTION_FILE in line


@pytest.mark.parametrize("args, needle", [
    (["--fid", "--extractor", "vgg", "--real", "builtin:digits"], "unknown feature extractor"),
    (["--fid", "-n", "0"], "--num-samples"),
    (["--max-fid", "3"], "--max-fid needs --fid"),
    (["--fid", "--real", "builtin:faces", "--extractor", "tiny"], "builtin:faces"),
])
def test_bad_inputs_exit_2_one_line(models, args, needle):
    assert needle in one_line_error(run(models["a"], *args), 2)


def test_fid_without_real_for_non_digits_model(models):
    line = one_line_error(run(models["rgb"], "--fid", "--extractor", "tiny", "-n", "8"), 2)
    assert "--data" in line


def test_existing_output_needs_force(models, tmp_path):
    out = tmp_path / "report.json"
    out.write_text("{}")
    assert "--force" in one_line_error(run(models["a"], "--out", str(out), *FAST), 2)
    done = run(models["a"], "--out", str(out), "--force", *FAST)
    assert done.exit_code == 0, done.stderr
    assert json.loads(out.read_text())["rows"][0]["source"] == models["a"]


def test_all_metrics_grid_table_and_latency(models, tmp_path):
    from PIL import Image

    grid = tmp_path / "grid.png"
    result = run(models["a"], "-r", models["b"], "--fid", "--kid", "--isc", "--prc", "--latency",
                 "--samples", str(grid), *FAST)
    assert result.exit_code == 0, result.stderr
    for header in ("FID", "KID", "ISC", "precision", "PSNR dB", "eff. MACs", "latency ms", "vs reference"):
        assert header in result.stdout  # the table is the result: stdout, also when it is not a terminal
    with Image.open(grid) as im:
        assert im.size[1] == 2 * (64 + 2) + 2 and im.size[0] > 8 * 66


def test_help_has_an_example():
    result = CliRunner().invoke(app, ["evaluate", "--help"])
    assert result.exit_code == 0 and "Example: gancompress evaluate" in result.stdout


def test_teacher_from_checkpoint_metadata_is_the_dense_model(models, tmp_path):
    from gancompress.formats.checkpoint import save_bundle
    from gancompress.loading import load_bundle

    bundle = load_bundle(models["b"])
    bundle.meta["pruning"] = {"source": models["a"]}
    student = str(save_bundle(bundle, tmp_path / "student.safetensors"))
    doc = json.loads(run(student, "--json", *FAST).stdout)
    assert doc["rows"][0]["similarity_to"] == models["a"] and 0 < doc["rows"][0]["psnr"] < 100
    bundle.meta["pruning"] = {"source": str(tmp_path / "gone.safetensors")}
    orphan = str(save_bundle(bundle, tmp_path / "orphan.safetensors"))
    doc = json.loads(run(orphan, "--json", *FAST).stdout)
    assert doc["rows"][0]["psnr"] is None and "could not be used" in doc["notes"][0]


def test_default_names_stay_distinct_as_labels():
    from gancompress.evaluate.models import default_labels

    names = ["/runs/digits-dcgan-very-long-experiment-name.block90.safetensors",
             "/runs/digits-dcgan-very-long-experiment-name.block90.ft.safetensors",
             "/runs/digits-dcgan-very-long-experiment-name.block90.ft.sparse.safetensors"]
    labels = default_labels(names)  # never cut (issue 18): the full file name without .safetensors
    assert labels == [n.rsplit("/", 1)[1].removesuffix(".safetensors") for n in names]
    assert default_labels(["/a/m.block50.safetensors", "/b/m.block50.safetensors"]) == ["a/m.block50", "b/m.block50"]
