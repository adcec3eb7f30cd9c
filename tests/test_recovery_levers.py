"""The recovery levers: an EMA of the student (--ema-decay) and feature distillation (--feature-weight)."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from typer.testing import CliRunner

from gancompress.cli.main import app
from gancompress.errors import InputError
from gancompress.finetune import run_finetune
from gancompress.finetune.ema import decay_at
from gancompress.finetune.features import FeatureDistiller, tap_names
from gancompress.loading import load_bundle
from test_finetune import config, make_project, resume_round_trip, tensors

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def _spy_trainer(monkeypatch, check=None) -> dict:
    """Record the run's Trainer; ``check(trainer)`` runs after every step."""
    import gancompress.finetune.trainer as trainer_mod

    seen: dict = {}
    original = trainer_mod.Trainer.step

    def spy(self, batch, **kw):
        seen["trainer"] = self
        out = original(self, batch, **kw)
        if check is not None:
            check(self)
        return out

    monkeypatch.setattr(trainer_mod.Trainer, "step", spy)
    return seen


def test_ema_is_saved_and_its_masks_hold_while_agp_raises_sparsity(project, monkeypatch):
    sparsities = []

    def masks_hold(trainer):
        sparsities.append(trainer.sparsity)
        for key, mask in trainer.masks.items():
            assert torch.all(trainer.ema.model.get_parameter(key)[~mask] == 0)

    seen = _spy_trainer(monkeypatch, masks_hold)
    result = run_finetune(config(project, source=str(project["dense"]), sparsity=0.7, steps=6, mask_every=1,
                                 method="distill", lr_g=1e-2, ema_decay=0.9))
    assert len(set(sparsities)) > 2  # the masks changed during the run, each time checked on the EMA
    trainer = seen["trainer"]
    saved = tensors(result.output, "generator.")
    ema = {f"generator.{k}": v for k, v in trainer.ema.model.state_dict().items()}
    raw = {f"generator.{k}": v for k, v in trainer.student.state_dict().items()}
    assert all(torch.equal(saved[k], ema[k]) for k in saved if k in ema)
    assert any(not torch.equal(ema[k], raw[k]) for k in ema if k.endswith("weight"))  # the EMA is not the student
    out = load_bundle(str(result.output))
    for key, mask in out.masks.items():
        assert torch.all(out.generator.get_parameter(key)[~mask] == 0)
    assert result.sparsity["all"] == pytest.approx(0.7, abs=1e-3)


def test_ema_warm_up_follows_early_weights_then_caps_at_the_decay():
    assert decay_at(0.999, 0) == pytest.approx(0.1)
    assert decay_at(0.999, 90) == pytest.approx(0.91)
    assert decay_at(0.5, 90) == 0.5


def test_resume_restores_the_ema_and_the_adapters_bit_identically(project, tmp_path):
    kw = dict(source=str(project["dense"]), sparsity=0.7, steps=6, mask_every=1, method="hybrid", log_every=1,
              ema_decay=0.8, feature_weight=1.0, lr_g=1e-2)
    full, resumed, state = resume_round_trip(project, tmp_path, kw, 3, {"ema_decay": 0.9})
    assert set(state["extras"]) == {"ema", "adapters"} and int(state["extras"]["ema"]["__ema_updates__"]) == 3
    a, b = tensors(full.output, ""), tensors(resumed.output, "")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert full.metrics == resumed.metrics and full.metrics["feature"] > 0


def _tiny_generator():
    from gancompress.archs import ArchSpec, build

    torch.manual_seed(0)
    return build(ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": 1})).eval()


def test_feature_loss_is_zero_for_identical_networks_and_positive_otherwise():
    teacher = _tiny_generator()
    student = copy.deepcopy(teacher)
    distiller = FeatureDistiller(teacher, student, 1.0, torch.device("cpu"))
    assert distiller.names and all(n in dict(teacher.named_modules()) for n in distiller.names)
    z = torch.randn(4, 8, 1, 1)
    with distiller.capture() as (f_o, f_c):
        teacher(z), student(z)
    assert distiller.loss(f_o, f_c).item() == 0.0
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(0.5)
    with distiller.capture() as (f_o, f_c):
        with torch.no_grad():
            teacher(z)
        student(z)
    loss = distiller.loss(f_o, f_c)
    assert loss.item() > 0
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in distiller.adapters.parameters())
    tapped = [student.get_submodule(n).weight for n in distiller.names]
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in tapped)  # the loss reaches the student too


def test_taps_are_evenly_spaced_convolutions_before_the_output_of_a_custom_network():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "zoo"))
    from zoo_nets import UpsampleGenerator

    g = UpsampleGenerator()
    assert tap_names(g) == ["body.1", "body.5"]  # the Linear stem and the output conv are not tapped
    assert tap_names(_tiny_generator(), 2) == ["net.0", "net.6"]


@pytest.mark.parametrize("granularity", ["element", "filter"])
def test_feature_distillation_trains_adapters_that_are_not_exported(project, tmp_path, monkeypatch, granularity):
    seen = _spy_trainer(monkeypatch)
    kw = dict(source=str(project["dense"]), sparsity=0.5, granularity=granularity, steps=3, method="distill")
    plain = run_finetune(config(project, output=tmp_path / "plain.safetensors", **kw))
    result = run_finetune(config(project, feature_weight=1.0, **kw))
    adapters = seen["trainer"].features.adapters
    assert any(not torch.equal(a.weight, torch.eye(*a.weight.shape)) for a in adapters)  # trained by opt_g
    assert tensors(result.output, "").keys() == tensors(plain.output, "").keys()  # nothing of the adapters saved
    assert result.metrics["feature"] > 0


def test_feature_distillation_on_the_super_resolution_path(tmp_path):
    from img2img_fixtures import esrgan_dir, hr_folder
    from gancompress.finetune import FinetuneConfig

    src, data = esrgan_dir(tmp_path / "ckpt"), hr_folder(tmp_path / "hr")
    cfg = FinetuneConfig.from_options(source=str(src), output=tmp_path / "sr.safetensors", data=str(data), steps=2,
                                      batch_size=2, crop=32, method="distill", sparsity=0.5, feature_weight=1.0,
                                      ema_decay=0.9, log_every=1, sample_every=0, save_every=0, device="cpu")
    result = run_finetune(cfg)
    assert result.metrics["feature"] > 0 and load_bundle(str(result.output)).g_spec.name == "rrdbnet-g"


@pytest.mark.parametrize("extra, needle", [
    (["--method", "finetune", "--feature-weight", "1"], "--feature-weight"),
    (["--feature-weight", "-1"], "--feature-weight"),
    (["--ema-decay", "1.5"], "--ema-decay"),
    (["--method", "none", "--ema-decay", "0.9"], "--ema-decay"),
])
def test_bad_lever_flags_are_refused_in_one_line(project, extra, needle):
    args = ["finetune", str(project["pruned"]), "--data", str(project["images"]), "-o", str(project["out"]),
            "--steps", "2", "--device", "cpu", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not project["out"].exists()


def test_sweep_refuses_feature_weight_for_a_method_without_the_teacher(tmp_path):
    from gancompress.sweep import SweepConfig

    with pytest.raises(InputError, match="--feature-weight"):
        SweepConfig.from_options(source="builtin:digits-dcgan", data="builtin:digits", out_dir=tmp_path / "s",
                                 methods=("distill", "finetune"), feature_weight=1.0)


def test_an_old_sweep_record_without_the_lever_keys_resumes_only_with_them_off(tmp_path):
    from gancompress.sweep import STATE_FILE, SweepConfig, _load_state

    def cfg(**kw):
        return SweepConfig.from_options(source="builtin:digits-dcgan", out_dir=tmp_path, sparsities=(0.5,), **kw)

    old = cfg().record()
    del old["ema_decay"], old["feature_weight"]
    (tmp_path / STATE_FILE).write_text(json.dumps({"config": old, "dense": {"fid": 1.0}, "cells": {}}))
    assert _load_state(cfg())["dense"] == {"fid": 1.0}
    for lever in ({"ema_decay": 0.999}, {"feature_weight": 1.0}):
        with pytest.raises(InputError, match=next(iter(lever))):
            _load_state(cfg(**lever))
