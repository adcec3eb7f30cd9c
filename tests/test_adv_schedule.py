"""The levers around the discriminator in recovery: the adversarial weight's schedule (``--adv-schedule``), the
discriminator's warm-up (``--d-warmup``), and the recovery loss as a sweep setting (``--loss``; the zoo's ``own``)."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from gancompress.cli.main import app
from gancompress.data.batches import StepData
from gancompress.errors import InputError
from gancompress.finetune import run_finetune
from gancompress.finetune.step import StepOptions, compute_losses
from gancompress.losses import LOSSES
from gancompress.sweep import sweep
from test_distill_adv import _nets
from test_finetune import config, project  # noqa: F401 (project: a fixture)
from test_sweep import config as sweep_config, dense  # noqa: F401 (dense: a fixture)
from test_zoo_benchmark import _zoo, members  # noqa: F401 (members: a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

# 8 steps, ramp_fraction 0.5: the AGP ramp ends after step 4 (the input is already pruned: no masks move)
EXPECTED = {
    ("constant", 0): [1, 1, 1, 1, 1, 1, 1, 1],
    ("ramp", 0): [0, 0.25, 0.5, 0.75, 1, 1, 1, 1],
    ("decay", 0): [1, 1, 1, 1, 1, 0.75, 0.5, 0.25],
    ("constant", 3): [0, 0, 0, 1, 1, 1, 1, 1],
    ("ramp", 2): [0, 0, 0, 0.5, 1, 1, 1, 1],
}


@pytest.mark.parametrize("schedule,warmup", sorted(EXPECTED))
def test_each_step_uses_the_scheduled_adversarial_weight(project, schedule, warmup):
    """The multiplier every step of a run used (its log), and the G loss it entered: l1 + w x multiplier x adv."""
    run = run_finetune(config(project, method="distill-adv", steps=8, log_every=1, adv_weight=0.5,
                              adv_schedule=schedule, d_warmup=warmup))
    records = [json.loads(line) for line in run.log.read_text().splitlines()][1:]
    assert [r["adv_scale"] for r in records] == pytest.approx(EXPECTED[schedule, warmup])
    for r in records:  # the logged adv is the scaled term that entered G_C's loss
        assert r["g_loss"] == pytest.approx(r["l1"] + 0.5 * r["adv"], rel=1e-5)


def _student_grad(method: str, scale: float):
    teacher, student, d = _nets()
    torch.manual_seed(1)
    batch = StepData(torch.randn(5, 4), torch.randn(5, 6))
    out = compute_losses(teacher, student, d, batch, LOSSES.get("ns")(),
                         StepOptions(method, 0.5, 10.0, True, adv_weight=2.0, adv_scale=scale), step=1)
    out.g_loss.backward(inputs=list(student.parameters()))
    return out, student[0].weight.grad.clone(), d, student(batch.x)


def test_the_multiplier_scales_only_the_adversarial_term():
    out, _, d, fake_c = _student_grad("distill-adv", 0.25)
    l1 = out.metrics["l1"]
    adv = F.softplus(-d(fake_c)).mean()
    assert out.g_loss.item() == pytest.approx((l1 + 2.0 * 0.25 * adv).item(), rel=1e-6)


def test_warm_up_steps_leave_the_students_adversarial_gradient_zero():
    warm, grad, *_ = _student_grad("distill-adv", 0.0)
    _, distill_grad, *_ = _student_grad("distill", 0.0)
    _, full_grad, *_ = _student_grad("distill-adv", 1.0)
    assert torch.equal(grad, distill_grad) and not torch.allclose(grad, full_grad)
    assert warm.d_loss is not None and warm.d_loss.requires_grad  # D still learns real vs G_C's fakes
    _, finetune_grad, *_ = _student_grad("finetune", 0.0)
    assert torch.count_nonzero(finetune_grad) == 0


def test_finetune_warm_up_trains_d_alone(project, monkeypatch):
    """--method finetune --d-warmup 2: G_C does not move in the first two steps, D does; then G_C moves."""
    import gancompress.finetune.trainer as trainer_mod

    seen: list[tuple[dict, dict]] = []
    step = trainer_mod.Trainer.step

    def spy(self, batch, **kw):
        metrics = step(self, batch, **kw)
        seen.append(({k: v.clone() for k, v in self.student.state_dict().items()},
                     {k: v.clone() for k, v in self.d.state_dict().items()}))
        return metrics

    monkeypatch.setattr(trainer_mod.Trainer, "step", spy)
    run_finetune(config(project, method="finetune", steps=3, d_warmup=2))
    from gancompress.loading import load_bundle

    start = load_bundle(str(project["pruned"]))
    g0, d0 = start.generator.state_dict(), start.discriminator.state_dict()
    for k in (0, 1):
        assert all(torch.equal(seen[k][0][name], g0[name]) for name in g0)
        assert not all(torch.equal(seen[k][1][name], d0[name]) for name in d0)
    assert not all(torch.equal(seen[2][0][name], g0[name]) for name in g0)


def test_a_method_without_an_adversarial_term_notes_that_the_levers_did_nothing(project):
    notes = run_finetune(config(project, method="distill", steps=2, d_warmup=1, adv_schedule="ramp")).notes
    assert any("changed nothing" in n and "method distill" in n for n in notes)
    assert not any("changed nothing" in n for n in run_finetune(config(project, method="distill", steps=2, force=True)).notes)


def test_bad_schedule_or_warm_up_is_refused_in_one_line(project):
    base = ["finetune", str(project["pruned"]), "--data", str(project["images"]), "-o", str(project["out"]),
            "--steps", "2", "--method", "distill-adv", "--device", "cpu"]
    for extra, needle in ((["--adv-schedule", "cosine"], "--adv-schedule"), (["--d-warmup", "-1"], "--d-warmup"),
                          (["--d-warmup", "2"], "fewer warm-up steps than --steps")):
        result = CliRunner().invoke(app, base + extra)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert not project["out"].exists()


def test_an_old_sweep_record_resumes_at_the_former_settings(dense, tmp_path):
    """A record made before --loss/--adv-schedule/--d-warmup ran at the profile's loss, constant, no warm-up."""
    out = tmp_path / "sweep"
    cheap = dict(methods=("distill",), granularities=("element",), steps=2, num_samples=32)
    assert sweep(sweep_config(dense, out, **cheap)).ran == 1
    state = json.loads((out / "sweep.json").read_text())
    assert (state["config"]["loss"], state["config"]["adv_schedule"], state["config"]["d_warmup"]) == (None, "constant", 0)
    for key in ("loss", "adv_schedule", "d_warmup"):
        del state["config"][key]
    (out / "sweep.json").write_text(json.dumps(state))
    again = sweep(sweep_config(dense, out, **cheap))
    assert again.ran == 0 and again.skipped == 1
    for changed, needle in (({"loss": "hinge"}, "loss: None -> 'hinge'"), ({"adv_schedule": "ramp"}, "adv_schedule"),
                            ({"d_warmup": 1}, "d_warmup")):
        with pytest.raises(InputError, match=needle):
            sweep(sweep_config(dense, out, **cheap, **changed))


def _with_loop_loss(members, loss: str | None):
    """Rewrite the tiny narrow-dcgan member so its provenance records ``loop.loss`` (or no loop at all)."""
    from gancompress.formats.checkpoint import save_bundle
    from gancompress.loading import load_bundle

    path = members / "narrow-dcgan.safetensors"
    bundle = load_bundle(str(path))
    prov = {"best_step": 20, "steps": 30, **({"loop": {"loss": loss, "lr_d": 4e-4}} if loss else {})}
    bundle.meta = {**bundle.meta, "provenance": prov}
    save_bundle(bundle, path, force=True)


@pytest.mark.parametrize("recorded,used", [("hinge", "hinge"), (None, "ns")])
def test_zoo_loss_own_is_each_members_training_loss(members, tmp_path, monkeypatch, recorded, used):
    import gancompress.finetune.resolve as resolve

    _with_loop_loss(members, recorded)
    names: list[str] = []
    make_loss = resolve.make_loss
    monkeypatch.setattr(resolve, "make_loss", lambda name, **kw: names.append(name) or make_loss(name, **kw))
    out = tmp_path / "zoo"
    assert _zoo().main(["--smoke", "--members", "narrow-dcgan", "--members-dir", str(members), "--out", str(out),
                        "--loss", "own", "--samples", "32"]) == 0
    assert names and set(names) == {used}  # the 90% cell and its dense control
    assert json.loads((out / "narrow-dcgan" / "sweep.json").read_text())["config"]["loss"] == recorded


@pytest.mark.parametrize("extra,needle", [(["--loss", "bogus"], "choose own"), (["--adv-schedule", "up"], "--adv-schedule"),
                                          (["--d-warmup", "-2"], "--d-warmup"), (["--lr-d", "0"], "--lr-d")])
def test_zoo_refuses_a_bad_lever_in_one_line_before_any_work(members, tmp_path, capsys, extra, needle):
    with pytest.raises(SystemExit) as stop:
        _zoo().main(["--smoke", "--members", "narrow-dcgan", "--members-dir", str(members), "--out", str(tmp_path / "z"),
                     *extra])
    lines = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert not (tmp_path / "z").exists()
