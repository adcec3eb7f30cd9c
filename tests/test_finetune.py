"""The fine-tuning loop end to end on a tiny digits GAN (a few steps each)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from gancompress.archs import ArchSpec, build
from gancompress.formats.checkpoint import GanBundle, save_bundle
from gancompress.errors import InputError, NonFiniteLoss
from gancompress.finetune import FinetuneConfig, FinetuneInterrupted, RunPaths, run_finetune
from gancompress.loading import load_bundle
from gancompress.prune import PruneConfig, apply_masks, compute_masks

G_SPEC = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": 1})
D_SPEC = ArchSpec("digits-dcgan-d", {"ndf": 4, "nc": 1})


def make_project(tmp: Path, *, with_d: bool = True, images: int = 16) -> dict[str, Path]:
    """A dense tiny GAN, a 60%-pruned copy recording its dense source, and a PNG folder."""
    from PIL import Image

    torch.manual_seed(0)
    g, d = build(G_SPEC).eval(), build(D_SPEC).eval()
    dense = save_bundle(GanBundle(g, G_SPEC, d if with_d else None, D_SPEC if with_d else None), tmp / "dense.safetensors")
    masks = compute_masks(g, PruneConfig(0.6))
    apply_masks(g, masks)
    pruned = save_bundle(GanBundle(g, G_SPEC, d if with_d else None, D_SPEC if with_d else None, masks,
                                   {"pruning": {"source": str(dense), "sparsity": 0.6}}), tmp / "pruned.safetensors")
    folder = tmp / "images"
    folder.mkdir()
    gen = torch.Generator().manual_seed(1)
    for i in range(images):
        Image.fromarray((torch.rand(16, 16, generator=gen) * 255).to(torch.uint8).numpy()).save(folder / f"{i:02d}.png")
    return {"dense": dense, "pruned": pruned, "images": folder, "out": tmp / "out.safetensors"}


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def config(p, **kw) -> FinetuneConfig:
    base = dict(source=str(p["pruned"]), output=p["out"], data=str(p["images"]), method="hybrid", steps=4, batch_size=8,
                log_every=2, sample_every=0, save_every=0, device="cpu")
    return FinetuneConfig.from_options(**{**base, **kw})


def tensors(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}


def test_masks_stay_exactly_zero_and_adam_never_revives_them(project, monkeypatch):
    import gancompress.finetune.trainer as trainer_mod

    seen = {}
    original = trainer_mod.Trainer.step

    def spy(self, batch, **kw):
        seen["trainer"] = self
        return original(self, batch, **kw)

    monkeypatch.setattr(trainer_mod.Trainer, "step", spy)
    result = run_finetune(config(project, steps=5, lr_g=1e-2))
    out = load_bundle(str(result.output))
    assert out.masks and set(out.masks) == set(load_bundle(str(project["pruned"])).masks)
    trainer = seen["trainer"]
    for key, mask in out.masks.items():
        weight = out.generator.get_parameter(key)
        assert torch.all(weight[~mask] == 0)
        assert torch.any(weight[mask] != 0)
        for value in trainer.opt_g.state[trainer.student.get_parameter(key)].values():
            if value.shape == mask.shape:
                assert torch.all(value[~mask.to(value.device)] == 0)
    assert result.sparsity["all"] >= 0.6 - 0.5 / 4644  # 60% of all 4,644 weights, to the weight


def test_agp_reaches_target_at_half_the_steps_and_holds(project):
    seen = []
    result = run_finetune(config(project, source=str(project["dense"]), sparsity=0.8, steps=8, mask_every=1),
                          on_event=lambda e: seen.append((e.done, e.info["sparsity"])))
    values = [s for _, s in seen]
    assert values == sorted(values)
    assert all(s < 0.8 for k, s in seen if k < 4)
    assert all(s == pytest.approx(0.8) for k, s in seen if k >= 4)
    assert result.sparsity["all"] == pytest.approx(0.8, abs=1e-3)  # of ALL prunable weights, as prune
    meta = load_bundle(str(result.output)).meta
    assert meta["pruning"]["source"] == str(project["dense"]) and meta["finetune"]["completed"] is True


def test_lr_factor_holds_during_the_ramp_then_anneals_to_zero():
    from gancompress.finetune.trainer import lr_factor

    assert [lr_factor("constant", d, 10, 5) for d in (0, 5, 9)] == [1.0, 1.0, 1.0]
    assert [lr_factor("cosine", d, 10, 5) for d in range(5)] == [1.0] * 5
    tail = [lr_factor("cosine", d, 10, 5) for d in range(5, 11)]
    assert tail[0] == 1.0 and tail[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(tail, tail[1:]))
    assert lr_factor("cosine", 5, 10, 0) == pytest.approx(0.5)  # no ramp: the whole run anneals


def test_cosine_schedule_drives_the_generator_learning_rate(project, monkeypatch):
    import gancompress.finetune.trainer as trainer_mod

    lrs = []
    original = trainer_mod.Trainer.step

    def spy(self, batch, **kw):
        out = original(self, batch, **kw)
        lrs.append(self.opt_g.param_groups[0]["lr"])
        if self.opt_d is not None:
            assert self.opt_d.param_groups[0]["lr"] == 1e-3  # D's rate is never scheduled
        return out

    monkeypatch.setattr(trainer_mod.Trainer, "step", spy)
    run_finetune(config(project, source=str(project["dense"]), sparsity=0.5, steps=8, lr_g=0.01, lr_d=1e-3,
                        lr_schedule="cosine", lr_warmup=0))  # the warm-up's own test: test_lr_warmup_collapse.py
    assert lrs[:5] == [0.01] * 5  # held while AGP prunes (steps 1-4), annealing starts from it at step 5
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] < 0.002


@pytest.mark.parametrize("frozen", [False, True])
def test_discriminator_trains_unless_frozen(project, frozen):
    result = run_finetune(config(project, steps=2, freeze_discriminator=frozen))
    before, after = tensors(project["pruned"], "D."), tensors(result.output, "D.")
    same = all(torch.equal(before[k], after[k]) for k in before)
    assert same is frozen
    assert any("frozen" in n for n in result.notes) is frozen


def test_teacher_never_changes_and_comes_from_the_recorded_source(project, monkeypatch):
    import gancompress.finetune.setup as setup_mod

    captured = {}
    original = setup_mod.resolve_teacher

    def spy(bundle, cfg):
        teacher, source = original(bundle, cfg)
        captured["teacher"], captured["before"] = teacher, {k: v.clone() for k, v in teacher.state_dict().items()}
        return teacher, source

    monkeypatch.setattr(setup_mod, "resolve_teacher", spy)
    result = run_finetune(config(project, steps=3, method="self-supervised"))
    assert result.teacher == str(project["dense"])
    after = captured["teacher"].state_dict()
    assert all(torch.equal(captured["before"][k], after[k].cpu()) for k in after)
    assert not any(p.requires_grad for p in captured["teacher"].parameters())


def _stop_after(step):
    done = []

    def on_event(event):
        done.append(event.done)

    return on_event, lambda: done[-1] == step


def resume_round_trip(project, tmp_path, kw: dict, stop: int, changed: dict):
    """``kw`` run whole, then stopped after ``stop`` steps, refused a resume under the ``changed`` options, and
    resumed: (the whole run's result, the resumed one's, the saved resume state)."""
    full = run_finetune(config(project, output=tmp_path / "full.safetensors", **kw))
    with pytest.raises(FinetuneInterrupted):
        on_event, should_stop = _stop_after(stop)
        run_finetune(config(project, output=tmp_path / "part.safetensors", **kw), on_event=on_event,
                     should_stop=should_stop)
    state = torch.load(RunPaths.for_output(tmp_path / "part.safetensors").state, weights_only=True)
    with pytest.raises(InputError, match="options differ"):  # the changed option is part of what a resume must match
        run_finetune(config(project, output=tmp_path / "part.safetensors", resume=True, **{**kw, **changed}))
    resumed = run_finetune(config(project, output=tmp_path / "part.safetensors", resume=True, **kw))
    return full, resumed, state


def test_resume_after_ctrl_c_is_bit_identical(project, tmp_path):
    kw = dict(source=str(project["dense"]), sparsity=0.7, steps=6, mask_every=1, method="hybrid", log_every=1,
              lr_schedule="cosine")
    full = run_finetune(config(project, output=tmp_path / "full.safetensors", **kw))
    part = config(project, output=tmp_path / "part.safetensors", **kw)
    with pytest.raises(FinetuneInterrupted, match="--resume") as info:
        on_event, should_stop = _stop_after(3)
        run_finetune(part, on_event=on_event, should_stop=should_stop)
    assert info.value.exit_code == 130
    paths = RunPaths.for_output(part.output)
    assert paths.state.is_file() and part.output.is_file()
    assert load_bundle(str(part.output)).meta["finetune"]["step"] == 3
    with pytest.raises(InputError, match="--resume"):
        run_finetune(config(project, output=tmp_path / "part.safetensors", **kw))
    resumed = run_finetune(config(project, output=tmp_path / "part.safetensors", resume=True, **kw))
    assert resumed.steps == 6 and not paths.state.exists()
    a, b = tensors(full.output, ""), tensors(resumed.output, "")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert full.metrics == resumed.metrics
    assert len(paths.log.read_text().splitlines()) == 7  # start line + steps 1..6, no duplicates


def test_resume_after_a_crash_uses_the_periodic_checkpoint(project, tmp_path):
    kw = dict(steps=5, method="finetune", save_every=2, loss="hinge", r1_gamma=1.0, r1_every=2)
    full = run_finetune(config(project, output=tmp_path / "full.safetensors", **kw))

    def crash(event):
        if event.done == 3:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        run_finetune(config(project, output=tmp_path / "part.safetensors", **kw), on_event=crash)
    with pytest.raises(InputError, match="options differ"):
        run_finetune(config(project, output=tmp_path / "part.safetensors", resume=True, **{**kw, "lr_g": 1e-3}))
    resumed = run_finetune(config(project, output=tmp_path / "part.safetensors", resume=True, **kw))
    a, b = tensors(full.output, ""), tensors(resumed.output, "")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("edit", [{"config": "[1, 2]"}, {"config": "not json"}, {"step": None, "config": None},
                                  "drop student", [1, 2]])
def test_a_damaged_resume_state_is_one_clear_error(tmp_path, edit):
    from gancompress.finetune.state import STATE_VERSION, load_state

    data = {"version": STATE_VERSION, "step": 2, "student": {}, "discriminator": None, "opt_g": None, "opt_d": None,
            "masks": {}, "sparsity": 0.5, "config": "{}", "metrics": "{}"}
    if edit == "drop student":
        del data["student"]
    elif isinstance(edit, dict):
        data = {**data, **edit}
    else:
        data = edit  # not a record at all
    path = tmp_path / "out.resume.pt"
    torch.save(data, path)
    with pytest.raises(InputError, match="resume state") as err:
        load_state(path)
    assert "--force" in str(err.value)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(project, monkeypatch):
    import gancompress.finetune.step as step_mod

    calls = {"n": 0}
    original = step_mod.l1_to_teacher

    def poisoned(fake_c, fake_o):
        calls["n"] += 1
        value = original(fake_c, fake_o)
        return value * float("nan") if calls["n"] >= 3 else value

    monkeypatch.setattr(step_mod, "l1_to_teacher", poisoned)
    with pytest.raises(NonFiniteLoss, match=r"step 3: the loss l1 became nan.*step 2"):
        run_finetune(config(project, method="distill", save_every=2, steps=5))
    assert load_bundle(str(project["out"])).meta["finetune"]["step"] == 2


def test_huge_learning_rate_is_caught(project):
    with pytest.raises(NonFiniteLoss, match="step"):
        run_finetune(config(project, method="finetune", lr_g=1e30, lr_d=1e30, steps=6))
    assert not project["out"].exists()


def test_short_run_moves_the_student_towards_the_teacher(project, tmp_path):
    one_shot = run_finetune(config(project, source=str(project["dense"]), output=tmp_path / "p90.safetensors",
                                   method="none", sparsity=0.9, prune_first_last=True))
    seen = []
    run_finetune(config(project, source=str(one_shot.output), method="hybrid", steps=12, log_every=0),
                 on_event=lambda e: seen.append(e.info["l1"]))
    assert sum(seen[-3:]) / 3 < 0.85 * seen[0]


@pytest.mark.parametrize("method,loss", [("self-supervised", "wgan-gp"), ("finetune", "lsgan"), ("distill", None)])
def test_methods_and_losses_run(project, method, loss):
    result = run_finetune(config(project, method=method, loss=loss, steps=2, sample_every=2, amp=True))
    assert result.output.is_file() and (result.samples / "step_000002.png").is_file()
    assert any("--amp" in n for n in result.notes)
    assert result.loss == (loss or "ns")


def test_method_none_is_a_one_shot_prune(project):
    result = run_finetune(config(project, source=str(project["dense"]), method="none", sparsity=0.5))
    assert result.sparsity["all"] == pytest.approx(0.5, abs=1e-3)
    dense, out = load_bundle(str(project["dense"])), load_bundle(str(result.output))
    for key, value in out.generator.state_dict().items():
        if key not in out.masks:
            assert torch.equal(value, dense.generator.state_dict()[key])


def test_missing_discriminator_says_what_to_pass(tmp_path):
    p = make_project(tmp_path, with_d=False)
    with pytest.raises(InputError, match="--discriminator"):
        run_finetune(config(p, method="distill-adv"))
    assert not p["out"].exists()
    result = run_finetune(config(p, method="distill", data=None, steps=1))  # distill needs no D
    assert result.output.is_file()


def test_pruned_input_without_a_recorded_source_needs_teacher(project, tmp_path):
    bundle = load_bundle(str(project["pruned"]))
    bundle.meta = {}
    orphan = save_bundle(bundle, tmp_path / "orphan.safetensors")
    with pytest.raises(InputError, match="--teacher"):
        run_finetune(config(project, source=str(orphan)))
    assert run_finetune(config(project, source=str(orphan), teacher=str(project["dense"]), steps=1)).output.is_file()


@pytest.mark.parametrize("kw,match", [({"steps": 0}, "--steps"), ({"method": "magic"}, "unknown method"),
                                      ({"loss": "nope"}, "loss profile"), ({"lr_g": -1.0}, "--lr-g"),
                                      ({"device": "tpu"}, "--device"), ({"lr_schedule": "linear"}, "--lr-schedule")])
def test_config_validates_itself(project, kw, match):
    with pytest.raises(InputError, match=match):
        config(project, **kw)


def test_existing_output_needs_force(project):
    project["out"].write_bytes(b"x")
    with pytest.raises(InputError, match="--force"):
        run_finetune(config(project))
    assert run_finetune(config(project, force=True, steps=1)).output.is_file()


def test_gradual_nm_ramps_towards_the_pattern_and_ends_on_it(project):
    """``--sparsity 0.5 --granularity nm``: AGP toward 2:4 (no run of 4 input channels ever loses
    more than 2), ending on the exact pattern along the input channels."""
    from gancompress.prune import module_geometry
    from gancompress.prune.granularity import nm_rows

    seen = []
    result = run_finetune(config(project, source=str(project["dense"]), sparsity=0.5, granularity="nm",
                                 keep_dense="none", steps=6, mask_every=1, method="distill"),
                          on_event=lambda e: seen.append(e.info["sparsity"]) if "sparsity" in e.info else None)
    assert seen == sorted(seen) and seen[0] < 0.5 and seen[-1] == pytest.approx(0.5)
    out = load_bundle(str(result.output))
    for key, mask in out.masks.items():
        module = out.generator.get_submodule(key.rsplit(".", 1)[0])
        geo = module_geometry(module)
        from gancompress.prune import to_canonical
        runs = nm_rows(to_canonical(mask, geo), geo, "in")
        full = runs.shape[1] - runs.shape[1] % 4
        if full:
            assert bool((runs[:, :full].reshape(runs.shape[0], -1, 4).sum(-1) == 2).all()), key
    assert out.meta["pruning"]["nm_axis"] == "in" and result.sparsity["all"] == pytest.approx(0.5, abs=0.005)
