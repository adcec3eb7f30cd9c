"""Pruning with feedback (--regrow): pruned weights keep training in a dense copy while AGP ramps."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from gancompress.cli.main import app
from gancompress.finetune import run_finetune
from gancompress.finetune.regrow import DenseShadow
from gancompress.finetune.step import StepLosses, backward_and_step
from gancompress.loading import load_bundle
from test_finetune import config, make_project, resume_round_trip, tensors

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def _record_masks(monkeypatch) -> list:
    """Each step's (trainer, masks after the step)."""
    import gancompress.finetune.trainer as trainer_mod

    seen: list = []
    original = trainer_mod.Trainer.step

    def spy(self, batch, **kw):
        out = original(self, batch, **kw)
        seen.append((self, {k: v.clone() for k, v in self.masks.items()}))
        return out

    monkeypatch.setattr(trainer_mod.Trainer, "step", spy)
    return seen


def _revived(history: list) -> int:
    """Weights zeroed by some mask update and kept by the last one."""
    final = history[-1][1]
    return sum(int(torch.count_nonzero(final[k] & ~masks[k])) for _, masks in history[:-1] for k in final)


@pytest.mark.parametrize("regrow", [False, True])
def test_regrow_lets_pruned_weights_return_and_still_ends_with_exact_zeros(project, monkeypatch, regrow):
    history = _record_masks(monkeypatch)
    result = run_finetune(config(project, source=str(project["dense"]), sparsity=0.7, steps=10, mask_every=1,
                                 method="distill", lr_g=2e-2, regrow=regrow))
    trainer = history[-1][0]
    if regrow:
        assert _revived(history) > 0  # weights pruned on the ramp came back
    else:
        assert _revived(history) == 0  # AGP without feedback: once pruned, always pruned
    assert trainer.shadow is None  # the dense copies are dropped when the ramp ends
    out = load_bundle(str(result.output))
    for key, mask in out.masks.items():
        weight = out.generator.get_parameter(key)
        assert torch.all(weight[~mask] == 0) and torch.any(weight[mask] != 0)
        for value in trainer.opt_g.state[trainer.student.get_parameter(key)].values():
            if torch.is_tensor(value) and value.shape == mask.shape:
                assert torch.all(value[~mask] == 0)  # Adam's moments cleared where the final masks prune
    assert result.sparsity["all"] == pytest.approx(0.7, abs=1e-3)


def test_the_shadow_steps_with_the_gradient_taken_at_the_masked_weights():
    torch.manual_seed(0)
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    mask = torch.tensor([[False, True, True, True]])
    shadow = DenseShadow.of(model, ["weight"])
    model.weight.data.mul_(mask)
    x = torch.ones(1, 4)
    loss = (model(x) - 0.0).pow(2).sum()  # forward on the masked weights: 2 + 3 + 4 = 9
    assert float(loss.detach()) == 81.0
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    backward_and_step(StepLosses(g_loss=loss, d_loss=None, metrics={}), model, None, opt, None, {"weight": mask},
                      shadow=shadow, grad_masks={})
    # d loss / d w_i = 2 * 9 * x_i = 18 for every weight, the pruned one included; only the copy takes the pruned step
    assert torch.allclose(shadow.dense["weight"], torch.tensor([[1.0, 2.0, 3.0, 4.0]]) - 0.18)
    assert torch.allclose(model.weight, (torch.tensor([[1.0, 2.0, 3.0, 4.0]]) - 0.18) * mask)


def test_resume_on_the_ramp_restores_the_dense_copies_bit_identically(project, tmp_path):
    kw = dict(source=str(project["dense"]), sparsity=0.7, steps=8, mask_every=1, method="distill", log_every=1,
              lr_g=2e-2, regrow=True)
    full, resumed, state = resume_round_trip(project, tmp_path, kw, 2, {"regrow": False})
    assert "shadow" in state["extras"]
    a, b = tensors(full.output, ""), tensors(resumed.output, "")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_resume_state_saved_before_regrow_and_importance_existed_still_matches(project):
    key = config(project).resume_key()
    assert "regrow" not in key["recovery"]["schedule"]  # off: absent, as in older states
    pruning = config(project, source=str(project["dense"]), sparsity=0.5, importance="magnitude").resume_key()["prune"]
    assert "importance" not in pruning  # those states ranked by magnitude: they resume with --importance magnitude
    assert config(project, source=str(project["dense"]), sparsity=0.5).resume_key()["prune"]["importance"] == "bn-scaled"
    assert config(project, source=str(project["dense"]), sparsity=0.5, regrow=True).resume_key()["recovery"]["schedule"]["regrow"]


@pytest.mark.parametrize("command, extra", [
    ("finetune", []),  # an already-pruned input and no --sparsity: nothing ramps
    ("sweep", ["--schedule", "oneshot"]),
])
def test_regrow_without_a_ramp_is_refused_in_one_line(project, tmp_path, command, extra):
    if command == "finetune":
        args = ["finetune", str(project["pruned"]), "--method", "distill", "-o", str(project["out"]), "--steps", "2",
                "--regrow", "--device", "cpu"]
        out = project["out"]
    else:
        out = tmp_path / "sweep"
        args = ["sweep", str(project["dense"]), "--method", "distill", "--sparsity", "0.5", "--steps", "2", "--regrow",
                "--out-dir", str(out), "--device", "cpu", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--regrow" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
