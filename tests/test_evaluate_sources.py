"""`evaluate` side by side and against standard references: several positional sources with
labels, statistics files (--save-stats / --data FILE.npz), registered data set names, sample-count
notices, refused extractors, latency per backend, LPIPS reported as unavailable, Markdown numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gancompress.cli.main import app
from test_evaluate_cli import one_line_error
from test_metrics import register_tiny

register_tiny()
pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--extractor", "tiny", "-n", "40", "--batch-size", "20", "--device", "cpu", "-q"]


def run(*args: str):
    return CliRunner().invoke(app, ["evaluate", *args])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from gancompress.archs import ArchSpec, build
    from gancompress.formats.checkpoint import GanBundle, save_bundle

    folder = tmp_path_factory.mktemp("sources")
    paths = {}
    for name, seed, nc in (("dense", 0, 1), ("pruned", 1, 1), ("rgb", 2, 3)):
        torch.manual_seed(seed)
        spec = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": nc})
        sub = folder / name
        sub.mkdir()
        paths[name] = str(save_bundle(GanBundle(build(spec).eval(), spec), sub / "generator.safetensors"))
    return paths


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("GANCOMPRESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GANCOMPRESS_OFFLINE", "1")


def test_positional_sources_first_is_the_reference_and_labels_are_kept(models):
    long = "recovered with distill-adv at 90 percent sparsity, run 2"
    r = run(models["dense"], models["pruned"], models["pruned"], "--label", "dense", "--label", "pruned",
            "--label", long, "--fid", "--data", "builtin:digits", "--json", *TINY)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [row["label"] for row in doc["rows"]] == ["dense", "pruned", long]
    assert [row["role"] for row in doc["rows"]] == ["reference", "model", "model"]
    assert doc["rows"][0]["psnr"] is None and doc["rows"][2]["psnr"] == doc["rows"][1]["psnr"] > 0  # same file
    assert doc["rows"][1]["similarity_to"] == models["dense"]
    fid = {row["label"]: row["fid"] for row in doc["rows"]}
    delta = doc["deltas"]["pruned"]["fid"]
    assert delta["reference"] == fid["dense"] and delta["value"] == fid["pruned"]
    table = run(models["dense"], models["pruned"], "--label", "dense", "--label", long, *TINY)
    assert table.exit_code == 0 and long in table.stdout + table.stderr


def test_default_labels_tell_equal_file_names_apart(models):
    r = run(models["dense"], models["pruned"], "--json", *TINY)
    assert [row["label"] for row in json.loads(r.stdout)["rows"]] == ["dense/generator", "pruned/generator"]


def test_reference_option_and_label_errors(models):
    r = run(models["pruned"], "--reference", models["dense"], "--json", *TINY)
    rows = json.loads(r.stdout)["rows"]
    assert [row["role"] for row in rows] == ["model", "reference"] and rows[0]["similarity_to"] == models["dense"]
    assert "--label" in one_line_error(run(models["dense"], "--label", "a", "--label", "b", *TINY), 2)
    assert "twice" in one_line_error(run(models["dense"], models["pruned"], "--label", "x", "--label", "x", *TINY), 2)


def test_gates_apply_to_every_compared_model(models):
    r = run(models["dense"], models["dense"], models["pruned"], "--label", "d", "--label", "same", "--label", "other",
            "--min-psnr", "1000", *TINY)
    assert r.exit_code == 3
    assert "other" in r.stderr.strip().splitlines()[-1] and "same:" not in r.stderr.strip().splitlines()[-1]


def test_save_stats_then_data_file_gives_the_same_fid(models, tmp_path):
    stats = tmp_path / "digits-tiny.npz"
    first = run(models["pruned"], "--fid", "--data", "builtin:digits", "--save-stats", str(stats), "--json", *TINY)
    assert first.exit_code == 0, first.output
    with np.load(stats) as f:
        assert f["mu"].shape == (8,) and f["sigma"].shape == (8, 8)
    again = run(models["pruned"], "--fid", "--data", str(stats), "--json", *TINY)
    assert again.exit_code == 0, again.output
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert b["rows"][0]["fid"] == pytest.approx(a["rows"][0]["fid"], rel=1e-5)
    assert b["settings"]["real"] == str(stats)
    assert "--extractor tiny" in one_line_error(run(models["pruned"], "--fid", "--data", str(stats), "--extractor",
                                                    "digits", "-n", "40", "-q"), 2)
    assert "--kid" in one_line_error(run(models["pruned"], "--kid", "--data", str(stats), *TINY), 2)
    assert "exists" in one_line_error(run(models["pruned"], "--fid", "--data", "builtin:digits", "--save-stats",
                                          str(stats), *TINY), 2)


def test_registered_dataset_name_offline_is_one_line(models):
    line = one_line_error(run(models["rgb"], "--fid", "--data", "cifar10-train", *TINY), 2)
    assert "cifar10-train" in line and "fidelity_datasets" in line
    line = one_line_error(run(models["rgb"], "--fid", "--data", "cifar-10-train", *TINY), 2)
    assert "cifar10-train" in line  # the valid names are listed


def test_digits_extractor_is_refused_on_other_images(models):
    line = one_line_error(run(models["rgb"], "--fid", "--extractor", "digits", "--data", "builtin:digits", "-q"), 2)
    assert "--extractor inception" in line and "3x16x16" in line


def test_sample_count_defaults_and_notes(models):
    r = run(models["dense"], "--fid", "--extractor", "digits", "--json", "-q", "--device", "cpu")
    doc = json.loads(r.stdout)
    assert doc["settings"]["num_samples"] == 2000
    assert any("not comparable with published" in n for n in doc["notes"])


def test_latency_per_backend_names_the_runtime(models):
    r = run(models["dense"], "--latency", "--batch-size", "1,4", "--backend", "eager,onnxruntime", "--json",
            "--device", "cpu", "-q")
    assert r.exit_code == 0, r.output
    lat = json.loads(r.stdout)["rows"][0]["latency"]
    assert [(x["backend"], x["batch_size"]) for x in lat] == [("eager", 1), ("eager", 4), ("onnxruntime", 1),
                                                              ("onnxruntime", 4)]
    assert lat[0]["runtime"].startswith("torch") and lat[2]["runtime"].startswith("onnxruntime")
    assert "--backend" in one_line_error(run(models["dense"], "--latency", "--backend", "tensorrt", *TINY), 2)


def test_lpips_without_weights_is_reported_not_faked(models):
    r = run(models["dense"], models["pruned"], "--lpips", "--json", *TINY)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["rows"][1]["lpips"] is None
    assert any("LPIPS" in n and "weights-vgg16-lpips.pth" in n for n in doc["notes"])


def test_markdown_numbers_are_written_like_people_write_them(models, tmp_path):
    md = tmp_path / "report.md"
    r = run(models["dense"], models["pruned"], "--fid", "--data", "builtin:digits", "--markdown", str(md), *TINY)
    assert r.exit_code == 0, r.output
    text = md.read_text()
    assert "e+" not in text and "e-0" not in text
    assert "| dense/generator | reference |" in text
