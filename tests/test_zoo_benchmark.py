"""benchmarks/zoo.py in --smoke mode on tiny members: the table's rows and ratios, and a resumed re-run that does no work."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

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
    """A tiny built-in member and a tiny class-conditional ``zoo_nets`` (custom --arch) member, each recording 20 training steps."""
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
            assert control["x_control"] == pytest.approx(1.0) and control["achieved"] == 0.0
            assert pruned["x_control"] == pytest.approx(pruned["fid"] / control["fid"])
            assert pruned["achieved"] == pytest.approx(0.9, abs=0.01)
        run = next(r for r in doc["members"] if r["member"] == member)
        # distill on the unpruned member starts at zero loss: its control is the teacher itself
        assert rows[member, "dense control", "distill"]["x_teacher"] == pytest.approx(1.0, abs=1e-6)
        assert rows[member, "element", "distill"]["x_teacher"] == pytest.approx(
            rows[member, "element", "distill"]["fid"] / run["dense"]["fid"])
    table = (out / "zoo.md").read_text()
    assert table.count("| narrow-dcgan (") == 4 and table.count("dense control (0%)") == 4
    assert "64 samples" in table

    capsys.readouterr()
    assert zoo.main(argv) == 0  # everything is recorded: nothing runs again, the same table comes out
    assert json.loads((out / "zoo.json").read_text())["ran"] == 0
    assert (out / "zoo.md").read_text() == table


def test_zoo_budget_is_15_percent_of_the_members_training():
    zoo = _zoo()
    assert zoo.budget(7500) == 1125 and zoo.budget(20) == 3 and zoo.budget(3) == 1 and zoo.budget(7500, 40) == 40


def test_zoo_refuses_an_untrained_member(tmp_path):
    with pytest.raises(SystemExit, match="train it with"):
        _zoo().main(["--smoke", "--members", "conditional", "--members-dir", str(tmp_path)])
