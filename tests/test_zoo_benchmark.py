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
