"""`gancompress sensitivity` and per-layer plans (`prune --plan`, `finetune --plan`)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from gancompress.archs import ArchSpec, build
from gancompress.cli.main import app
from gancompress.errors import InputError
from gancompress.formats.checkpoint import GanBundle, save_bundle
from gancompress.loading import load_bundle
from gancompress.prune import PruneConfig, achieved_sparsity, apply_masks, compute_masks, layer_report
from gancompress.prune.plan import read_plan
from gancompress.sensitivity import SensitivityConfig, plan_from_rows, sensitivity

SPEC = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": 1})


@pytest.fixture()
def dense(tmp_path):
    torch.manual_seed(0)
    return save_bundle(GanBundle(build(SPEC).eval(), SPEC), tmp_path / "dense.safetensors")


def test_sensitivity_measures_each_layer_alone(dense):
    result = sensitivity(SensitivityConfig(str(dense), (0.5, 0.9), num_samples=16, min_psnr=25.0))
    layers = ["net.0", "net.3", "net.6", "net.9"]
    assert [(r["layer"], r["sparsity"]) for r in result.rows] == [(n, s) for n in layers for s in (0.5, 0.9)]
    for name in layers:  # pruning a layer harder changes the output more
        low, high = (r["psnr"] for r in result.rows if r["layer"] == name)
        assert low > high
    assert result.plan == plan_from_rows(result.rows, 25.0) and set(result.plan) == set(layers)


def test_plan_takes_the_highest_probe_above_the_threshold():
    rows = [{"layer": "a", "sparsity": 0.5, "psnr": 40.0}, {"layer": "a", "sparsity": 0.9, "psnr": 31.0},
            {"layer": "b", "sparsity": 0.5, "psnr": 20.0}, {"layer": "b", "sparsity": 0.9, "psnr": 10.0}]
    assert plan_from_rows(rows, 30.0) == {"a": 0.9, "b": 0.0}


def test_cli_writes_a_plan_that_prune_applies(dense, tmp_path):
    plan, pruned, scaled = tmp_path / "g.plan.json", tmp_path / "p.safetensors", tmp_path / "s.safetensors"
    runner = CliRunner()
    r = runner.invoke(app, ["sensitivity", str(dense), "-s", "0.5,0.8", "-n", "8", "--min-psnr", "20", "-o", str(plan)])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().splitlines()[-1] == str(plan) and plan.with_suffix(".png").is_file()
    layers = read_plan(plan)
    assert json.loads(plan.read_text())["format"] == "gancompress-sparsity-plan"
    assert runner.invoke(app, ["prune", str(dense), "--plan", str(plan), "-o", str(pruned), "-q"]).exit_code == 0
    bundle = load_bundle(str(pruned))
    rows = {r["name"]: r for r in layer_report(bundle.generator, bundle.masks)}
    for name, s in layers.items():  # as planned, to the weight
        assert abs(rows[name]["zeros"] - s * rows[name]["params"]) <= 1, name
    r = runner.invoke(app, ["prune", str(dense), "--plan", str(plan), "-s", "0.6", "-o", str(scaled), "-q"])
    assert r.exit_code == 0, r.output
    scaled_bundle = load_bundle(str(scaled))
    assert abs(achieved_sparsity(scaled_bundle.generator, scaled_bundle.masks)["all"] - 0.6) < 1e-3


def test_plan_scaled_keeps_its_proportions_and_omitted_layers_dense():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 64), nn.Linear(64, 64), nn.Linear(64, 32), nn.Linear(32, 4))
    masks = compute_masks(m, PruneConfig(0.4, plan={"0": 0.2, "1": 0.8, "2": 0.4}))
    apply_masks(m, masks)
    rows = {r["name"]: r for r in layer_report(m, masks)}
    assert rows["3"]["zeros"] == 0
    assert rows["0"]["achieved"] < rows["2"]["achieved"] < rows["1"]["achieved"]
    assert rows["1"]["achieved"] / rows["0"]["achieved"] == pytest.approx(4, rel=0.05)


@pytest.mark.parametrize("plan,needle", [({"net.7": 0.5}, "does not have"), ({"0": 1.5}, "[0, 1)"),
                                         ({"0": 0.0}, "prunes no layer")])
def test_bad_plans_are_refused(plan, needle):
    m = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    with pytest.raises(InputError, match=needle.replace("[", r"\[").replace(")", r"\)")):
        compute_masks(m, PruneConfig(None, plan=plan))


def test_plan_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"layers": {"a": 0.5}}')
    with pytest.raises(InputError, match="gancompress-sparsity-plan"):
        read_plan(bad)
    with pytest.raises(InputError, match="no such file"):
        read_plan(tmp_path / "missing.json")


def test_finetune_applies_a_plan_like_prune(dense, tmp_path):
    from gancompress.finetune import FinetuneConfig, run_finetune

    plan = {"net.0": 0.3, "net.3": 0.8, "net.6": 0.6}
    result = run_finetune(FinetuneConfig.from_options(source=str(dense), output=tmp_path / "f.safetensors", method="none", plan=plan,
                                         device="cpu", log_every=0, sample_every=0, save_every=0))
    out = load_bundle(str(result.output))
    by_prune = compute_masks(load_bundle(str(dense)).generator, PruneConfig(None, plan=plan))
    assert set(out.masks) == set(by_prune) and all(torch.equal(out.masks[k], by_prune[k]) for k in by_prune)


def test_sensitivity_with_data_measures_fid(dense):
    result = sensitivity(SensitivityConfig(str(dense), (0.9,), num_samples=8, data="builtin:digits", fid_samples=64))
    assert result.dense_fid is not None and all(r["fid"] is not None and r["fid"] > 0 for r in result.rows)
