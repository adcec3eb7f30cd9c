"""`gancompress sweep` on a tiny GAN: two cells, a few steps, and a resumed re-run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gancompress.archs import ArchSpec, build
from gancompress.formats.checkpoint import GanBundle, save_bundle
from gancompress.errors import InputError
from gancompress.recipe import setting_prune_config
from gancompress.sweep import SweepConfig, cell_key, summarise, sweep

G_SPEC = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": 1})
D_SPEC = ArchSpec("digits-dcgan-d", {"ndf": 4, "nc": 1})


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def dense(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_bundle(GanBundle(build(G_SPEC).eval(), G_SPEC, build(D_SPEC).eval(), D_SPEC), tmp_path / "dense.safetensors")


def config(dense: Path, out: Path, **kw) -> SweepConfig:
    base = dict(source=str(dense), out_dir=out, data="builtin:digits", sparsities=(0.5,),
                granularities=("element", "nm"), methods=("hybrid",), steps=3, batch_size=8,
                num_samples=64, device="cpu", grid_columns=4)
    return SweepConfig.from_options(**{**base, **kw})


def test_sweep_runs_cells_writes_outputs_and_resumes(dense, tmp_path, monkeypatch):
    from gancompress.finetune.trainer import Trainer

    out = tmp_path / "sweep"
    events, ramps = [], {}
    set_sparsity = Trainer.set_sparsity

    def spy(trainer, sparsity):  # the masks the recovery ramps through, per granularity
        ramps.setdefault(trainer.schedule.prune.granularity, []).append(sparsity)
        set_sparsity(trainer, sparsity)

    monkeypatch.setattr(Trainer, "set_sparsity", spy)
    result = sweep(config(dense, out), on_event=lambda e: events.append((e.info.get("event"), e.info.get("cell"))))
    nm_ramp = ramps["nm"]  # gradual N:M in sweep: AGP toward the pattern, ending on it along the input channels
    assert nm_ramp == sorted(nm_ramp) and nm_ramp[0] < 0.5 and nm_ramp[-1] == pytest.approx(0.5) and len(nm_ramp) > 2
    assert_input_channel_nm(next(c for c in result.cells if c["granularity"] == "nm")["model"], 2, 4)
    assert result.ran == 2 and result.skipped == 0
    for name in ("state", "markdown", "json", "plot"):
        assert Path(result.files[name]).is_file(), name
    md = Path(result.files["markdown"]).read_text()
    assert "| element | uniform | hybrid | 50% |" in md and "| nm | uniform | hybrid | 50% |" in md and "| dense |" in md
    for cell in result.cells:  # -g element,nm: every cell runs, each at 50% of ALL prunable weights
        assert Path(cell["samples"]).is_file()
        assert cell["fid"] is not None and cell["psnr"] is not None
        assert abs(cell["achieved_sparsity"] - 0.5) < 0.005
    state = json.loads((out / "sweep.json").read_text())
    assert set(state["cells"]) == {"s50-element-hybrid-seed0", "s50-nm-hybrid-seed0"}
    assert ("cell-start", "s50-element-hybrid-seed0") in events

    # a re-run with one more cell reuses the two finished ones
    again = sweep(config(dense, out, sparsities=(0.5, 0.75), granularities=("element",)),
                  on_event=lambda e: events.append((e.info.get("event"), e.info.get("cell"))))
    assert again.ran == 1 and again.skipped == 1
    assert ("cell-skip", "s50-element-hybrid-seed0") in events
    assert json.loads((out / "sweep.json").read_text())["cells"]["s50-element-hybrid-seed0"] == state["cells"]["s50-element-hybrid-seed0"]
    assert len(json.loads((out / "sweep.json").read_text())["cells"]) == 3

    # other settings in the same folder are refused instead of mixing results
    with pytest.raises(InputError, match="other settings"):
        sweep(config(dense, out, steps=4))
    with pytest.raises(InputError, match="adv_weight"):
        sweep(config(dense, out, adv_weight=config(dense, out).recovery.weights.adv_weight + 0.5))

    # a record from before adv_weight existed is still reused, and records it from then on
    state = json.loads((out / "sweep.json").read_text())
    del state["config"]["adv_weight"]
    (out / "sweep.json").write_text(json.dumps(state))
    again = sweep(config(dense, out, sparsities=(0.5, 0.25), granularities=("element",)))
    assert again.skipped == 1 and again.ran == 1
    assert json.loads((out / "sweep.json").read_text())["config"]["adv_weight"] == config(dense, out).recovery.weights.adv_weight


def test_sweep_cli_resumes(dense, tmp_path):
    from typer.testing import CliRunner

    from gancompress.cli.main import app

    out = tmp_path / "cli"
    args = ["sweep", str(dense), "--data", "builtin:digits", "--sparsity", "0.5", "--granularity", "element",
            "--method", "distill,none", "--steps", "2", "--num-samples", "32", "--batch-size", "8",
            "--ramp-fraction", "0.25", "--out-dir", str(out), "--device", "cpu"]
    first = CliRunner().invoke(app, args + ["--progress-interval", "0"])
    assert first.exit_code == 0, first.output
    assert first.stdout.strip().splitlines()[-1] == str(out)
    plain = [line.split(" | ")[0] for line in first.stderr.splitlines() if line.startswith("finetune ")]
    assert plain == ["finetune 0/2 (0%)", "finetune 1/2 (50%)", "finetune 2/2 (100%)"]  # no terminal: plain lines
    second = CliRunner().invoke(app, args + ["--json"])
    assert second.exit_code == 0, second.output
    doc = json.loads(second.stdout)
    assert doc["ran"] == 0 and doc["skipped"] == 2
    assert json.loads((out / "sweep.json").read_text())["config"]["ramp_fraction"] == 0.25
    bad = CliRunner().invoke(app, args[:-4] + ["--ramp-fraction", "1.5", "--out-dir", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "--ramp-fraction" in bad.stderr and not (tmp_path / "r").exists()
    bad = CliRunner().invoke(app, ["sweep", str(dense), "--method", "hybrid", "--out-dir", str(tmp_path / "x")])
    assert bad.exit_code == 2  # hybrid needs --data
    bad = CliRunner().invoke(app, args[:-4] + ["--lr-schedule", "step", "--out-dir", str(tmp_path / "y")])
    assert bad.exit_code == 2 and "--lr-schedule" in bad.stderr and not (tmp_path / "y").exists()
    bad = CliRunner().invoke(app, args[:-4] + ["--adv-weight", "-1", "--out-dir", str(tmp_path / "z")])
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--adv-weight" in bad.stderr
    assert not (tmp_path / "z").exists()
    bad = CliRunner().invoke(app, args[:-4] + ["--test-data", str(tmp_path / "missing"), "--out-dir", str(tmp_path / "v")])
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--test-data" in bad.stderr
    assert not (tmp_path / "v").exists()
    bad = CliRunner().invoke(app, args[:-4] + ["-g", "filter", "-s", "0.999", "--out-dir", str(tmp_path / "w")])
    assert bad.exit_code == 2 and "out of reach" in bad.stderr and not (tmp_path / "w" / "cells").exists()


def assert_input_channel_nm(path: str, n: int, m: int) -> None:
    """Every pruned layer of the checkpoint at ``path`` keeps exactly ``n`` of every full run of ``m``
    input channels (per output and kernel tap)."""
    from gancompress.loading import load_bundle
    from gancompress.prune import module_geometry, to_canonical
    from gancompress.prune.granularity import nm_rows

    bundle = load_bundle(path)
    assert bundle.masks
    for key, mask in bundle.masks.items():
        geo = module_geometry(bundle.generator.get_submodule(key.rsplit(".", 1)[0]))
        runs = nm_rows(to_canonical(mask, geo), geo, "in")
        full = runs.shape[1] - runs.shape[1] % m
        assert full and bool((runs[:, :full].reshape(runs.shape[0], -1, m).sum(-1) == n).all()), key


def test_setting_prune_config_hits_the_overall_target():
    from gancompress.prune import achieved_sparsity, apply_masks, compute_masks, plan_target

    g = build(ArchSpec("digits-dcgan-g", {"nz": 32, "ngf": 8, "nc": 1}))
    cfg = setting_prune_config(0.9)
    assert cfg.sparsity == 0.9 and cfg.keep_dense == ("auto",)
    assert list(plan_target(g, cfg).dense) == ["net.9"]  # the tiny output conv stays dense
    masks = compute_masks(g, cfg)
    apply_masks(g, masks)
    assert abs(achieved_sparsity(g, masks)["all"] - 0.9) < 1e-4
    assert "net.9.weight" not in masks
    assert [setting_prune_config(s, "nm").nm for s in (0.25, 0.5, 0.75, 0.9)] == [(3, 4), (2, 4), (1, 4), (1, 10)]


def test_summarise_mean_and_spread():
    cells = [{"granularity": "element", "method": "hybrid", "sparsity": 0.9, "seed": s, "fid": f, "psnr": 20.0,
              "achieved_sparsity": 0.9, "nonzeros": 10} for s, f in ((0, 20.0), (1, 22.0))]
    (row,) = summarise(cells, {"fid": 10.0})
    assert row["fid"] == 21.0 and abs(row["fid_std"] - 2 ** 0.5) < 1e-9 and row["fid_ratio"] == 2.1
    assert cell_key(cells[0]) == "s90-element-hybrid-seed0"


def test_sweep_quantize_axis_measures_8_bit_exports_of_each_recovered_model(dense, tmp_path):
    result = sweep(config(dense, tmp_path / "q", granularities=("element",), quantize=("int8", "fp8"),
                          keep_checkpoints=False))
    (cell,) = result.cells
    assert set(cell["quantized"]) == {"int8", "fp8"}
    for scheme, q in cell["quantized"].items():
        assert q["file_bytes"] < cell["file_bytes"] and q["fid"] is not None and q["psnr"] > 15, scheme
    assert not list((tmp_path / "q").rglob("model.*.safetensors"))  # no checkpoints kept, no exports either
    rows = {r["quantize"]: r for r in result.table}
    assert set(rows) == {None, "int8", "fp8"}
    assert rows["int8"]["fid_vs_float"] == pytest.approx(cell["quantized"]["int8"]["fid"] / cell["fid"])
    md = Path(result.files["markdown"]).read_text()
    assert "| element | uniform | hybrid + int8 | 50% |" in md and "x float FID" in md


def test_sweep_refuses_an_unknown_scheme(dense, tmp_path):
    with pytest.raises(InputError, match="unknown quantization scheme 'int4'"):
        config(dense, tmp_path / "q", quantize=("int4",))


def test_sweep_cli_measures_an_sr_model_on_its_test_images(tmp_path, monkeypatch):
    """--test-data: every model's PSNR/SSIM to the held-out ground truth (not the training --data), no FID;
    a record made without it is not reused."""
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from gancompress.cli.main import app

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "examples" / "zoo"))
    import zoo_nets
    import zoo_train

    torch.manual_seed(0)
    g_kw, d_kw = {"nf": 8, "blocks": 1, "patch": 12}, {"ndf": 4}
    src = save_bundle(GanBundle(zoo_nets.SRGenerator(**g_kw).eval(), zoo_train.custom_spec("zoo_nets:SRGenerator", g_kw),
                                zoo_nets.SRDiscriminator(**d_kw).eval(),
                                zoo_train.custom_spec("zoo_nets:SRDiscriminator", d_kw, "discriminator")),
                      tmp_path / "sr.safetensors")
    rng = np.random.default_rng(0)
    for part, count in (("train", 2), ("heldout", 2)):
        (tmp_path / part).mkdir()
        for i in range(count):
            image = np.kron(rng.uniform(0, 255, (10, 12, 3)), np.ones((4, 4, 1))).astype(np.uint8)
            Image.fromarray(image).save(tmp_path / part / f"{i}.png")
    out = tmp_path / "out"
    args = ["sweep", str(src), "--arch", "zoo_nets:SRGenerator", "--d-arch", "zoo_nets:SRDiscriminator",
            "--data", str(tmp_path / "train"), "--sparsity", "0.5", "--method", "distill", "--steps", "1",
            "--batch-size", "2", "--device", "cpu", "--json"]
    result = CliRunner().invoke(app, args + ["--test-data", str(tmp_path / "heldout"), "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (cell,) = doc["cells"]
    assert cell["fid"] is None and doc["dense"]["fid"] is None
    assert 0 < cell["ssim_gt"] <= 1 and cell["psnr_gt"] > 0 and doc["dense"]["psnr_gt"] > 0
    assert "PSNR to GT" in (out / "results.md").read_text()
    on_train = CliRunner().invoke(app, args + ["--test-data", str(tmp_path / "train"), "--out-dir", str(tmp_path / "t")])
    assert json.loads(on_train.stdout)["dense"]["psnr_gt"] != pytest.approx(doc["dense"]["psnr_gt"])  # measured where told
    again = CliRunner().invoke(app, args + ["--out-dir", str(out)])
    assert again.exit_code == 2 and "test_data" in again.stderr


def test_a_record_from_before_ramp_fraction_resumes_only_at_the_default(dense, tmp_path):
    from gancompress.finetune.defaults import DEFAULT_RAMP_FRACTION
    from gancompress.sweep import STATE_FILE, _load_state

    out = tmp_path / "old"
    old = config(dense, out).record()
    del old["ramp_fraction"]  # written before the sweep recorded it: every cell ramped over the default fraction
    out.mkdir()
    (out / STATE_FILE).write_text(json.dumps({"config": old, "dense": None, "cells": {}}))
    assert _load_state(config(dense, out))["config"]["ramp_fraction"] == DEFAULT_RAMP_FRACTION
    assert config(dense, out, ramp_fraction=0.25).recovery.schedule.ramp_fraction == 0.25
    with pytest.raises(InputError, match=r"ramp_fraction: 0.5 -> 0.25"):
        _load_state(config(dense, out, ramp_fraction=0.25))


def test_freeze_discriminator_keeps_d_pretrained_in_every_cell_and_is_a_resume_key(dense, tmp_path):
    """--freeze-discriminator reaches each cell's recovery: D leaves it as it came (trained, it moves), the
    record names the setting, and a re-run without it in the same folder is refused, not mixed."""
    from typer.testing import CliRunner

    from gancompress.cli.main import app
    from gancompress.loading import load_bundle

    args = ["sweep", str(dense), "--data", "builtin:digits", "--sparsity", "0.5", "--method", "hybrid", "--steps", "2",
            "--num-samples", "32", "--batch-size", "8", "--device", "cpu", "--json"]
    d0 = load_bundle(str(dense)).discriminator.state_dict()
    moved = {}
    for frozen in (True, False):
        out = tmp_path / f"frozen-{frozen}"
        run = CliRunner().invoke(app, args + ["--out-dir", str(out)] + (["--freeze-discriminator"] if frozen else []))
        assert run.exit_code == 0, run.output
        assert json.loads((out / "sweep.json").read_text())["config"]["freeze_discriminator"] is frozen
        (cell,) = json.loads(run.stdout)["cells"]
        d = load_bundle(cell["model"]).discriminator.state_dict()
        moved[frozen] = max((d[k].float() - v.float()).abs().max().item() for k, v in d0.items())
    assert moved[True] == 0.0 and moved[False] > 0.0
    again = CliRunner().invoke(app, args + ["--out-dir", str(tmp_path / "frozen-True")])
    assert again.exit_code == 2 and "freeze_discriminator" in again.stderr


def test_the_record_names_the_d_rate_each_method_ran_at(dense, tmp_path):
    """lr_d None in the record means "each method's own"; lr_d_by_method spells the rates out, and --lr-d sets all."""
    from gancompress.finetune.defaults import DEFAULT_LR_D, DEFAULT_LR_D_HYBRID

    own = config(dense, tmp_path / "own", methods=("hybrid", "distill-adv")).record()
    assert own["lr_d"] is None
    assert own["lr_d_by_method"] == {"hybrid": DEFAULT_LR_D_HYBRID, "distill-adv": DEFAULT_LR_D}
    assert DEFAULT_LR_D_HYBRID != DEFAULT_LR_D
    given = config(dense, tmp_path / "given", methods=("hybrid", "distill-adv"), lr_d=3e-4).record()
    assert given["lr_d_by_method"] == {"hybrid": 3e-4, "distill-adv": 3e-4}
