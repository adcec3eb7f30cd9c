"""benchmarks/zoo.py in --smoke mode on tiny members: the table's rows and ratios (FID; PSNR/SSIM to the held-out
ground truth for the SR member), the labels a class-conditional member sees, and a resumed re-run that does no work."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gancompress.archs import ArchSpec, build
from gancompress.errors import InputError
from gancompress.formats.checkpoint import GanBundle, save_bundle

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def _zoo():
    spec = importlib.util.spec_from_file_location("zoo_benchmark", REPO / "benchmarks" / "zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def members(tmp_path) -> Path:
    """A tiny built-in member, a tiny class-conditional and a tiny SR ``zoo_nets`` (custom --arch) member, each recording
    20 training steps; ``photos/train`` and ``photos/heldout`` beside them for the SR member."""
    zoo = _zoo()  # puts examples/zoo on the path
    import zoo_train
    import zoo_nets

    torch.manual_seed(0)
    g_spec, d_spec = ArchSpec("digits-dcgan-g", {"nz": 32, "ngf": 4, "nc": 1}), ArchSpec("digits-dcgan-d", {"ndf": 4, "nc": 1})
    meta = {"provenance": {"best_step": 20, "steps": 30}}
    folder = tmp_path / "members"
    save_bundle(GanBundle(build(g_spec).eval(), g_spec, build(d_spec).eval(), d_spec, meta=meta),
                folder / zoo.MEMBERS["narrow-dcgan"][0])
    g_kw, d_kw = {"nz": 32, "ngf": 4, "num_classes": 10}, {"ndf": 4, "num_classes": 10}
    save_bundle(GanBundle(zoo_nets.ConditionalGenerator(**g_kw).eval(), zoo_train.custom_spec("zoo_nets:ConditionalGenerator", g_kw),
                          zoo_nets.ProjectionDiscriminator(**d_kw).eval(),
                          zoo_train.custom_spec("zoo_nets:ProjectionDiscriminator", d_kw, "discriminator"), meta=meta),
                folder / zoo.MEMBERS["conditional"][0])
    g_kw, d_kw = {"nf": 8, "blocks": 1, "patch": 12}, {"ndf": 4}
    save_bundle(GanBundle(zoo_nets.SRGenerator(**g_kw).eval(), zoo_train.custom_spec("zoo_nets:SRGenerator", g_kw),
                          zoo_nets.SRDiscriminator(**d_kw).eval(),
                          zoo_train.custom_spec("zoo_nets:SRDiscriminator", d_kw, "discriminator"), meta=meta),
                folder / zoo.MEMBERS["sr-x2"].file)
    rng = np.random.default_rng(0)
    for part, sizes in (("train", [(40, 48), (48, 48), (56, 40)]), ("heldout", [(32, 48), (40, 36)])):
        (folder / "photos" / part).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):  # smooth images with some detail: bilinear upsampling does not solve them
            base = rng.uniform(0, 255, (h // 4, w // 4, 3))
            image = np.kron(base, np.ones((4, 4, 1))) + rng.normal(0, 12, (h, w, 3))
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / "photos" / part / f"{part}{i}.png")
    return folder


def test_zoo_smoke_table_and_resume(members, tmp_path, capsys):
    zoo, out = _zoo(), tmp_path / "zoo"
    argv = ["--smoke", "--members", "narrow-dcgan,conditional", "--members-dir", str(members), "--out", str(out),
            "--methods", "distill-adv,distill"]
    assert zoo.main(argv) == 0
    doc = json.loads((out / "zoo.json").read_text())
    assert doc["ran"] == 2 * 2 * 2  # members x (90% + dense control) x methods
    for run in doc["members"]:
        assert run["steps"] == 2 and run["trained_steps"] == 20  # --smoke: 2 steps
    rows = {(r["member"], r["granularity"], r["method"]): r for r in doc["rows"]}
    assert len(rows) == 8
    for member in ("narrow-dcgan", "conditional"):
        for method in ("distill-adv", "distill"):
            control, pruned = rows[member, "dense control", method], rows[member, "element", method]
            assert control["vs_control"] == pytest.approx(1.0) and control["achieved"] == 0.0
            assert pruned["metric"] == "fid" and pruned["vs_control"] == pytest.approx(pruned["value"] / control["value"])
            assert pruned["achieved"] == pytest.approx(0.9, abs=0.01)
        run = next(r for r in doc["members"] if r["member"] == member)
        # distill on the unpruned member starts at zero loss: its control is the teacher itself
        assert rows[member, "dense control", "distill"]["vs_teacher"] == pytest.approx(1.0, abs=1e-6)
        assert rows[member, "element", "distill"]["vs_teacher"] == pytest.approx(
            rows[member, "element", "distill"]["value"] / run["dense"]["fid"])
    table = (out / "zoo.md").read_text()
    assert table.count("| narrow-dcgan (") == 4 and table.count("dense control (0%)") == 4
    assert "64 samples" in table

    capsys.readouterr()
    assert zoo.main(argv) == 0  # everything is recorded: nothing runs again, the same table comes out
    assert json.loads((out / "zoo.json").read_text())["ran"] == 0
    assert (out / "zoo.md").read_text() == table
    assert zoo.main(argv[:-2] + ["--methods", "hybrid", "--report-only"]) == 0  # every recorded cell, nothing run
    assert (out / "zoo.md").read_text() == table and not (out / "narrow-dcgan" / "cells" / "s90-element-hybrid-seed0").exists()


def test_zoo_records_the_members_and_photographs_by_absolute_path(tmp_path, monkeypatch):
    """A folder filled from two directories (or with a relative and an absolute spelling) is one sweep."""
    monkeypatch.chdir(tmp_path)
    args = _zoo().arguments(["--photos", "photos", "--members-dir", "members", "--out", str(tmp_path / "out")])
    assert args.photos == tmp_path / "photos" and args.members_dir == tmp_path / "members"
    assert _zoo().arguments(["--out", str(tmp_path / "out")]).members_dir is None  # the default search stays


def test_zoo_budget_is_15_percent_of_the_members_training():
    zoo = _zoo()
    assert zoo.budget(7500) == 1125 and zoo.budget(20) == 3 and zoo.budget(3) == 1 and zoo.budget(7500, 40) == 40


def test_zoo_help_prints_every_option(capsys):
    with pytest.raises(SystemExit) as stop:
        _zoo().arguments(["--help"])
    assert stop.value.code == 0
    assert "recovery steps (default 15% of each member's training)" in " ".join(capsys.readouterr().out.split())


def test_zoo_refuses_an_untrained_member(tmp_path):
    with pytest.raises(SystemExit, match="train it with"):
        _zoo().main(["--smoke", "--members", "conditional", "--members-dir", str(tmp_path)])


def _heldout_psnr(member: Path, photos: Path) -> float:
    """PSNR (pooled over all pixels) of the member's outputs on the held-out photographs, computed here."""
    import zoo_nets

    from gancompress.data.pairs import Degradation
    from gancompress.loading import LoadOptions, load_bundle

    g = load_bundle(LoadOptions(arch="zoo_nets:SRGenerator", d_arch="zoo_nets:SRDiscriminator").for_source(str(member))).generator
    assert isinstance(g, zoo_nets.SRGenerator)
    sq = n = 0.0
    for path in sorted(photos.glob("*.png")):
        hr = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255).permute(2, 0, 1)[None]
        with torch.no_grad():
            out = g.eval()(Degradation(2)(hr, (0.0, 1.0))).clamp(0, 1)
        sq, n = sq + float(((out.double() - hr.double()) ** 2).sum()), n + hr.numel()
    return float(10 * np.log10(1 / (sq / n)))


def test_zoo_sr_member_is_scored_by_psnr_and_ssim_on_the_heldout_photos(members, tmp_path):
    zoo, out = _zoo(), tmp_path / "zoo"
    argv = ["--smoke", "--members", "sr-x2", "--members-dir", str(members), "--photos", str(members / "photos"),
            "--out", str(out), "--methods", "distill-adv,distill"]
    assert zoo.main(argv) == 0
    doc = json.loads((out / "zoo.json").read_text())
    (run,) = doc["members"]
    assert run["metric"] == "psnr_gt" and run["test_data"] == str(members / "photos" / "heldout")
    teacher = run["dense"]["psnr_gt"]
    assert teacher == pytest.approx(_heldout_psnr(members / "sr-x2.safetensors", members / "photos" / "heldout"), abs=1e-3)
    assert teacher != pytest.approx(_heldout_psnr(members / "sr-x2.safetensors", members / "photos" / "train"), abs=1e-3)
    assert run["dense"]["fid"] is None and 0 < run["dense"]["ssim_gt"] <= 1
    rows = {(r["granularity"], r["method"]): r for r in doc["rows"]}
    for method in ("distill-adv", "distill"):
        control, pruned = rows["dense control", method], rows["element", method]
        assert pruned["metric"] == "psnr_gt" and pruned["achieved"] == pytest.approx(0.9, abs=0.01)
        assert control["vs_control"] == 0.0  # a difference in dB, not a ratio
        assert pruned["vs_control"] == pytest.approx(pruned["value"] - control["value"])
        assert pruned["vs_teacher"] == pytest.approx(pruned["value"] - teacher)
        assert 0 < pruned["ssim_gt"] <= 1
    assert rows["dense control", "distill"]["value"] == pytest.approx(teacher, abs=1e-4)  # nothing to distil when dense
    table = (out / "zoo.md").read_text()
    assert "| sr-x2 (PSNR " in table and " dB |" in table and "held-out photographs" in table


def test_zoo_sr_member_needs_its_photographs(members, tmp_path):
    with pytest.raises(SystemExit, match="--write-photos"):
        _zoo().main(["--smoke", "--members", "sr-x2", "--members-dir", str(members), "--photos", str(tmp_path / "none")])


def test_zoo_conditional_member_gets_uniform_labels_the_same_for_every_model(members, tmp_path, monkeypatch):
    """Recovery: the student sees the labels the teacher sees; FID: uniform labels, the same for every model measured."""
    zoo = _zoo()
    import zoo_nets

    import gancompress.sweep as sweep_module

    calls: list[tuple[str, bool, torch.Tensor]] = []
    phase = {"now": "recover"}
    forward, measure = zoo_nets.ConditionalGenerator.forward, sweep_module.measure

    def spy(self, z, labels):
        calls.append((phase["now"], torch.is_grad_enabled(), labels.detach().long().clone()))
        return forward(self, z, labels)

    def measuring(*args, **kwargs):
        phase["now"] = f"measure {len(calls)}"
        try:
            return measure(*args, **kwargs)
        finally:
            phase["now"] = "recover"

    monkeypatch.setattr(zoo_nets.ConditionalGenerator, "forward", spy)
    monkeypatch.setattr(sweep_module, "measure", measuring)
    assert zoo.main(["--smoke", "--members", "conditional", "--members-dir", str(members), "--out", str(tmp_path / "zoo"),
                     "--methods", "distill", "--samples", "300"]) == 0
    student = [tuple(c[2].tolist()) for c in calls if c[0] == "recover" and c[1]]  # trained: with gradients
    teacher = {tuple(c[2].tolist()) for c in calls if c[0] == "recover" and not c[1]}
    assert student and all(labels in teacher for labels in student)
    measured: dict[str, list[torch.Tensor]] = {}
    for now, _, labels in calls:
        if now.startswith("measure") and len(labels) > 1:  # not the one-sample shape probe
            measured.setdefault(now, []).append(labels)
    assert len(measured) == 3  # the dense member, the dense control and the 90% cell
    fid_labels = [torch.cat(batches)[:300] for batches in measured.values()]  # the FID sampler comes first
    assert all(torch.equal(fid_labels[0], other) for other in fid_labels[1:])
    counts = torch.bincount(fid_labels[0], minlength=10)
    assert len(counts) == 10 and counts.min() >= 15 and counts.max() <= 45  # uniform over the 10 classes (30 each)


def test_zoo_allocation_shares_the_dense_control(members, tmp_path):
    zoo, out = _zoo(), tmp_path / "zoo"
    base = ["--smoke", "--members", "narrow-dcgan", "--members-dir", str(members), "--out", str(out), "--methods", "distill"]
    assert zoo.main(base) == 0
    assert zoo.main(base + ["--allocation", "lamp"]) == 0
    doc = json.loads((out / "zoo.json").read_text())
    assert doc["ran"] == 1  # only the lamp cell: the dense control is the uniform run's
    rows = {r["granularity"]: r for r in doc["rows"]}
    assert set(rows) == {"dense control", "element, lamp"}
    lamp = next(c for c in doc["members"][0]["cells"] if c["sparsity"] > 0)
    assert lamp["allocation"] == "lamp" and rows["element, lamp"]["achieved"] == pytest.approx(0.9, abs=0.01)
    assert rows["element, lamp"]["vs_control"] == pytest.approx(rows["element, lamp"]["value"] / rows["dense control"]["value"])


def test_zoo_recovery_options_reach_every_cell_and_its_record(members, tmp_path, monkeypatch):
    import gancompress.sweep as sweep_module

    zoo, out, seen = _zoo(), tmp_path / "zoo", []
    recover = sweep_module.prune_and_recover

    def spy(source, setting, *args, **kw):
        seen.append(setting)
        return recover(source, setting, *args, **kw)

    monkeypatch.setattr(sweep_module, "prune_and_recover", spy)
    options = ["--lr-g", "1e-3", "--lr-schedule", "constant", "--ramp-fraction", "0.25", "--keep-dense", "net.6,last",
               "--batch-size", "8", "--regrow", "--student-mode", "train", "--importance", "bn-scaled"]
    base = ["--smoke", "--members", "narrow-dcgan", "--members-dir", str(members), "--out", str(out), "--methods", "distill"]
    assert zoo.main(base + options) == 0
    assert len(seen) == 2  # the 90% cell and its dense control, both with the options
    for setting in seen:
        r = setting.recovery
        assert (r.rates.lr_g, r.rates.lr_schedule, r.schedule.ramp_fraction, r.batch_size) == (1e-3, "constant", 0.25, 8)
        assert r.schedule.regrow and r.student_mode == "train"
        assert setting.prune.keep_dense == ("net.6", "last") and setting.schedule == "agp"
        assert setting.prune.importance == "bn-scaled"
    recorded = json.loads((out / "narrow-dcgan" / "sweep.json").read_text())["config"]
    assert {k: recorded[k] for k in ("lr_g", "lr_schedule", "ramp_fraction", "keep_dense", "batch_size", "schedule",
                                     "regrow", "student_mode", "importance")} == {
        "lr_g": 1e-3, "lr_schedule": "constant", "ramp_fraction": 0.25, "keep_dense": "net.6,last", "batch_size": 8,
        "schedule": "agp", "regrow": True, "student_mode": "train", "importance": "bn-scaled"}
    pruned = next(c for c in json.loads((out / "zoo.json").read_text())["members"][0]["cells"] if c["sparsity"] > 0)
    assert pruned["achieved_sparsity"] == pytest.approx(0.9, abs=0.01)  # two layers dense, 90% of all still
    assert zoo.main(base + options) == 0 and json.loads((out / "zoo.json").read_text())["ran"] == 0  # resumed
    with pytest.raises(InputError, match="ramp_fraction: 0.25 -> 0.5"):  # the defaults would mix with these cells
        zoo.main(base)
    seen.clear()
    with pytest.raises(InputError, match="--regrow"):  # a one-shot schedule has no ramp to re-rank masks on
        zoo.main(base[:5] + ["--out", str(tmp_path / "oneshot"), "--methods", "distill", "--schedule", "oneshot", "--regrow"])
    assert zoo.main(base[:5] + ["--out", str(tmp_path / "oneshot"), "--methods", "distill", "--schedule", "oneshot"]) == 0
    assert [s.schedule for s in seen] == ["oneshot", "oneshot"]


def test_zoo_without_controls_runs_only_the_pruned_cells_and_distills_control_is_the_teacher(members, tmp_path):
    zoo, out = _zoo(), tmp_path / "zoo"
    base = ["--smoke", "--members", "narrow-dcgan", "--members-dir", str(members), "--methods", "distill", "--lr-g", "4e-3",
            "--lr-schedule", "constant"]
    assert zoo.main(base + ["--out", str(out), "--no-controls"]) == 0
    doc = json.loads((out / "zoo.json").read_text())
    assert doc["ran"] == 1 and [r["granularity"] for r in doc["rows"]] == ["element"]
    row = doc["rows"][0]  # no control ran: the teacher stands in for distill's, marked t
    assert row["per_seed"][0]["control_is_teacher"] and row["vs_control"] == row["vs_teacher"]
    assert f"| {row['vs_control']:.2f}t |" in (out / "zoo.md").read_text()
    assert zoo.main(base + ["--out", str(tmp_path / "with")]) == 0  # why distill may skip it: no change to the teacher
    control = next(r for r in json.loads((tmp_path / "with" / "zoo.json").read_text())["rows"] if r["sparsity"] == 0.0)
    assert control["vs_teacher"] == 1.0
def _cell(sparsity: float, method: str, seed: int, **score) -> dict:
    return {"granularity": "element", "sparsity": sparsity, "method": method, "seed": seed,
            "achieved_sparsity": sparsity, "seconds": 1.0, **score}


def test_zoo_compares_each_seed_with_its_own_control_and_leaves_diverged_controls_out():
    zoo = _zoo()
    controls = {0: 400.0, 1: 10.0, 2: 8.0}  # seed 0's control diverged (teacher 12): recovery broke the dense model
    cells = [_cell(0.0, "adv", s, fid=f) for s, f in controls.items()]
    cells += [_cell(0.9, "adv", s, fid=f) for s, f in ((0, 12.0), (1, 11.0), (2, 12.0), (3, 9.0))]  # seed 3: no control
    run = {"member": "m", "dense": {"fid": 12.0}, "metric": "fid", "trained_steps": 100, "steps": 15, "cells": cells}
    rows = {r["sparsity"]: r for r in zoo.rows(run)}
    pruned = rows[0.9]
    assert [s["vs_control"] for s in pruned["per_seed"]] == [None, pytest.approx(1.1), pytest.approx(1.5), None]
    assert [s["control_diverged"] for s in pruned["per_seed"]] == [True, False, False, False]
    assert pruned["vs_control"] == pytest.approx(1.3) and pruned["vs_control_worst"] == pytest.approx(1.5)
    assert pruned["value"] == pytest.approx(11.0)  # the score's mean still covers every seed
    # the ratio of means would have hidden the broken control: 11.0 / 139.3 = 0.08x
    table = zoo.markdown([run], 5000)
    assert "| control diverged (FID 400.00) / 1.10 / 1.50 / n/a (mean 1.30, worst 1.50 over 2 of 4 seeds) |" in table
    assert "| reference; seed 0 diverged (FID 400.00) |" in table
    short = zoo.summary([run]).splitlines()  # the README's table: the pruned cells only, each seed's score
    assert len(short) == 3 and short[2].startswith("| m (FID 12.00) | element 90% | adv | FID 12.00 / 11.00 / 12.00 / 9.00 | "
                                                   "control diverged (FID 400.00) / 1.10 / 1.50 / n/a (mean 1.30")


def test_zoo_worst_psnr_seed_is_the_largest_loss_in_db():
    zoo = _zoo()
    cells = [_cell(0.0, "distill", s, psnr_gt=30.0 + s, ssim_gt=0.9) for s in (0, 1)]
    cells += [_cell(0.9, "distill", 0, psnr_gt=29.9, ssim_gt=0.9), _cell(0.9, "distill", 1, psnr_gt=30.5, ssim_gt=0.9)]
    cells += [_cell(0.0, "adv", 0, psnr_gt=26.0, ssim_gt=0.5), _cell(0.9, "adv", 0, psnr_gt=29.0, ssim_gt=0.8)]
    run = {"member": "sr", "dense": {"psnr_gt": 30.0}, "metric": "psnr_gt", "trained_steps": 100, "steps": 15,
           "cells": cells}
    rows = {(r["sparsity"], r["method"]): r for r in zoo.rows(run)}
    pruned = rows[0.9, "distill"]
    assert pruned["vs_control"] == pytest.approx(-0.3) and pruned["vs_control_worst"] == pytest.approx(-0.5)
    assert rows[0.9, "adv"]["vs_control"] is None  # its control lost 4 dB: diverged
    table = zoo.markdown([run], 5000)
    assert "| -0.10 dB / -0.50 dB (mean -0.30 dB, worst -0.50 dB) |" in table
    assert "| control diverged (PSNR 26.00) |" in table


def test_zoo_passes_the_recovery_levers_to_every_cell_of_a_custom_member(members, tmp_path):
    from gancompress.errors import InputError

    zoo, out = _zoo(), tmp_path / "zoo"
    base = ["--smoke", "--members", "conditional", "--members-dir", str(members), "--out", str(out), "--methods", "distill"]
    assert zoo.main(base + ["--ema-decay", "0.9", "--feature-weight", "2"]) == 0
    record = json.loads((out / "conditional" / "sweep.json").read_text())["config"]
    assert record["ema_decay"] == 0.9 and record["feature_weight"] == 2.0
    assert json.loads((out / "zoo.json").read_text())["ran"] == 2  # the 90% cell and its dense control, both with the levers
    with pytest.raises(InputError, match="ema_decay"):  # cells made with the levers are not reused without them
        zoo.main(base)


def test_zoo_refuses_auto_as_a_method(tmp_path, capsys):
    """auto is a choice made per run (hybrid on every member); the zoo measures the methods it chooses between."""
    with pytest.raises(SystemExit) as stop:
        _zoo().main(["--smoke", "--methods", "distill,auto", "--members-dir", str(tmp_path)])
    assert stop.value.code == 2 and "list hybrid and/or distill" in capsys.readouterr().err


@pytest.mark.parametrize("option, value, message", [("--mu", "-1", "--mu must be a non-negative number"),
                                                    ("--adv-weight", "-2", "--adv-weight must be a non-negative"),
                                                    ("--lr-g", "-1", "--lr-g must be a positive number"),
                                                    ("--ema-decay", "2", "--ema-decay must be a number in (0, 1)"),
                                                    ("--batch-size", "0", "--batch-size must be a positive integer"),
                                                    ("--importance", "size", "unknown importance (--importance) 'size'"),
                                                    ("--no-controls --student-mode", "train",
                                                     "--no-controls with --student-mode train"),
                                                    ("--recalibrate-bn", "-1", "--recalibrate-bn is a number of batches"),
                                                    ("--student-mode train --recalibrate-bn", "4",
                                                     "--recalibrate-bn re-estimates the statistics")])
def test_zoo_refuses_a_bad_recovery_setting_in_one_line_before_any_work(tmp_path, capsys, option, value, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        _zoo().main(["--smoke", "--members", "narrow-dcgan", "--members-dir", str(tmp_path), "--out", str(out),
                     *option.split(), value])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not out.exists()


def test_zoo_command_refuses_a_setting_the_sweep_rejects_in_one_line(members, tmp_path):
    """A refusal raised inside the sweep (here --regrow with a one-shot schedule) reaches the command line as one
    error line and exit 2, and nothing is written."""
    import subprocess
    import sys

    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "zoo.py"), "--smoke", "--members", "narrow-dcgan",
                        "--members-dir", str(members), "--out", str(out), "--methods", "distill", "--schedule", "oneshot",
                        "--regrow"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and r.stderr.startswith("error: --regrow") and r.stderr.count("\n") == 1, r.stderr
    assert not out.exists()


def test_zoo_matrix_is_cell_by_member_with_the_mean_and_worst_over_the_fid_members():
    zoo = _zoo()
    a = {"member": "a", "dense": {"fid": 10.0}, "metric": "fid", "trained_steps": 100, "steps": 15,
         "cells": [_cell(0.9, "hybrid", s, fid=f) for s, f in ((0, 11.0), (1, 12.0), (2, 13.0))]
         + [_cell(0.8, "hybrid", 0, fid=10.5)]}
    b = {"member": "b", "dense": {"fid": 4.0}, "metric": "fid", "trained_steps": 100, "steps": 15,
         "cells": [_cell(0.9, "hybrid", s, fid=f) for s, f in ((0, 6.0), (1, 5.0), (2, 5.0))]}
    sr = {"member": "sr", "dense": {"psnr_gt": 30.0}, "metric": "psnr_gt", "trained_steps": 100, "steps": 15,
          "cells": [_cell(0.9, "hybrid", s, psnr_gt=p, ssim_gt=0.9) for s, p in ((0, 29.9), (1, 30.1), (2, 30.0))]}
    a["cells"].append(_cell(0.9, "distill", 0, fid=10.0))
    lines = zoo.matrix([a, b, sr]).splitlines()
    assert lines[0] == "**hybrid**"
    assert lines[2] == "| cell | a (FID 10.00) | b (FID 4.00) | sr (PSNR 30.00) | FID members: mean / worst |"
    # teacher stands in for hybrid's control: a 1.1/1.2/1.3, b 1.5/1.25/1.25; the SR member -0.1/+0.1/0 dB
    assert lines[4] == "| element 80% | 1.05 (1.05; 1 of 3 seeds) |  |  | 1.05 / 1.05 |"
    assert lines[5] == "| element 90% | 1.20 (1.30) | 1.33 (1.50) | +0.00 dB (-0.10 dB) | 1.27 / 1.50 |"
    assert "**distill**" in lines and lines[-1] == "| element 90% | 1.00 (1.00; 1 of 3 seeds) |  |  | 1.00 / 1.00 |"


def test_zoo_jobs_plans_one_unit_per_cell_method_and_seed_controls_last():
    zoo = _zoo()
    units = zoo.job_units(["narrow-dcgan", "sr-x2"], [("element", 0.9), ("filter", 0.5), ("element", 0.0)],
                          ("distill", "hybrid"), (0, 1), controls=True)
    assert len(units) == 2 * 2 * 2 * 2 + 2 * 2 * 2 and len({u.name for u in units}) == len(units)
    assert [u.cell for u in units[-8:]] == [""] * 8 and all(u.cell for u in units[:-8])  # 0% is a control, not a cell
    assert units[0] == zoo.Unit("narrow-dcgan", "element:0.9", "distill", 0) and units[0].name == "narrow-dcgan-element0.9-distill-seed0"
    assert len(zoo.job_units(["bundled"], [("element", 0.9)], ("distill",), (0,), controls=False)) == 1
    argv = ["--smoke", "--members=bundled,sr-x2", "--cells", "element:0.9", "--jobs", "4", "--no-controls", "--lr-g", "1e-3",
            "--methods", "distill,hybrid", "--seeds=0,1", "--out", "x"]
    assert zoo.unit_argv(argv, units[0]) == ["--smoke", "--lr-g", "1e-3", "--out", "x", "--unit", "--members", "narrow-dcgan",
                                             "--cells=element:0.9", "--methods", "distill", "--seeds", "0", "--no-controls"]
    assert zoo.unit_argv(argv, units[-1])[-8:] == ["--unit", "--members", "sr-x2", "--cells=", "--methods", "hybrid",
                                                   "--seeds", "1"]


def test_zoo_jobs_runs_each_cell_as_its_own_process_and_records_what_the_sequential_run_does(members, tmp_path, capsys):
    zoo = _zoo()
    base = ["--smoke", "--members", "narrow-dcgan", "--members-dir", str(members), "--methods", "distill",
            "--cells", "element:0.9,filter:0.5"]
    assert zoo.main(base + ["--out", str(tmp_path / "seq")]) == 0
    capsys.readouterr()
    assert zoo.main(base + ["--out", str(tmp_path / "jobs"), "--jobs", "2"]) == 0
    said = capsys.readouterr().err
    assert said.count("zoo: [") == 3 and "[3/3]" in said and "FAILED" not in said
    logs = sorted(p.name for p in (tmp_path / "jobs" / "logs").iterdir())
    assert logs == ["narrow-dcgan-control-distill-seed0.log", "narrow-dcgan-element0.9-distill-seed0.log",
                    "narrow-dcgan-filter0.5-distill-seed0.log"]
    seq, jobs = (json.loads((tmp_path / name / "zoo.json").read_text()) for name in ("seq", "jobs"))
    assert jobs["ran"] == seq["ran"] == 3

    def values(doc):
        return {(r["granularity"], r["method"]): (r["value"], r["vs_control"]) for r in doc["rows"]}
    assert values(jobs) == values(seq) and len(values(jobs)) == 3
    assert (tmp_path / "jobs" / "zoo.md").read_text() == (tmp_path / "seq" / "zoo.md").read_text()
    assert zoo.main(base + ["--out", str(tmp_path / "jobs"), "--jobs", "2"]) == 0  # all recorded: nothing runs again
    assert json.loads((tmp_path / "jobs" / "zoo.json").read_text())["ran"] == 0


def test_zoo_jobs_names_a_failed_cell_and_its_log(members, tmp_path, capsys):
    zoo = _zoo()
    out = tmp_path / "zoo"
    # a recovery setting only the sweep refuses (after the member loads): the unit's process exits 2
    argv = ["--smoke", "--members", "narrow-dcgan", "--members-dir", str(members), "--methods", "distill", "--no-controls",
            "--out", str(out), "--jobs", "2", "--schedule", "oneshot", "--regrow"]
    code = zoo.main(argv)
    err = capsys.readouterr().err
    assert code == 1 and "FAILED (exit 2" in err and "narrow-dcgan-element0.9-distill-seed0" in err
    assert "logs" in err and (out / "logs" / "narrow-dcgan-element0.9-distill-seed0.log").read_text().startswith("error: --regrow")
    assert not (out / "zoo.md").exists()


def test_zoo_budget_of_a_continued_member_counts_the_steps_before_the_continuation(tmp_path):
    zoo = _zoo()
    spec, d_spec = ArchSpec("digits-dcgan-g", {"nz": 32, "ngf": 4, "nc": 1}), ArchSpec("digits-dcgan-d", {"ndf": 4, "nc": 1})
    meta = {"provenance": {"best_step": 3000, "steps": 4000, "trained_steps": 14000}}
    save_bundle(GanBundle(build(spec), spec, build(d_spec), d_spec, meta=meta), tmp_path / "narrow-dcgan.safetensors")
    assert zoo.member_source("narrow-dcgan", tmp_path)[2] == 14000 and zoo.budget(14000) == 2100


def test_zoo_bundled_member_is_the_retrained_file_when_a_folder_holds_one_else_the_package_asset(tmp_path):
    zoo = _zoo()
    source, _, trained = zoo.member_source("bundled", tmp_path)
    assert source == "builtin:digits-dcgan" and trained > 0  # the asset records its own training steps
    spec, d_spec = ArchSpec("digits-dcgan-g", {"nz": 32, "ngf": 4, "nc": 1}), ArchSpec("digits-dcgan-d", {"ndf": 4, "nc": 1})
    save_bundle(GanBundle(build(spec), spec, build(d_spec), d_spec, meta={"provenance": {"best_step": 21000}}),
                tmp_path / "bundled.safetensors")
    assert zoo.member_source("bundled", tmp_path)[::2] == (str(tmp_path / "bundled.safetensors"), 21000)
    with pytest.raises(SystemExit, match="train it with `python examples/zoo/train_digits_member.py --member narrow-dcgan`"):
        zoo.member_source("narrow-dcgan", tmp_path)  # a member without a fallback still says how to train it


@pytest.mark.parametrize("extra", [["--jobs", "0"], ["--jobs", "2", "--shard", "0/2"]])
def test_zoo_refuses_a_bad_jobs_count_in_one_line_before_any_work(tmp_path, capsys, extra):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        _zoo().main(["--smoke", "--members", "narrow-dcgan", "--members-dir", str(tmp_path), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("error: --jobs takes a count") and err.count("\n") == 1
    assert not out.exists()
