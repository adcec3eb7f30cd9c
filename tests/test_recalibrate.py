"""--recalibrate-bn: after each mask update the student's BatchNorm statistics are re-estimated on its own inputs."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from gancompress.cli.main import app
from gancompress.data.batches import Sampler
from gancompress.errors import InputError
from gancompress.finetune import run_finetune
from gancompress.prune.recalibrate import recalibrate_norms
from gancompress.loading import load_bundle
from test_finetune import config, make_project, resume_round_trip, tensors

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.ReLU(), nn.Dropout(0.5), nn.Conv2d(3, 1, 1))


def test_statistics_become_the_plain_average_over_the_batches():
    net = _net().eval()
    with torch.no_grad():
        net[1].running_mean.fill_(7.0)
        net[1].running_var.fill_(9.0)
    before = {k: v.clone() for k, v in net.named_parameters()}
    batches = [torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(i)) * (i + 1) for i in range(3)]
    assert recalibrate_norms(net, iter(batches)) == 1
    outs = [net[0](x).detach() for x in batches]
    means = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs])
    variances = torch.stack([o.transpose(0, 1).reshape(3, -1).var(dim=1) for o in outs])  # unbiased, as BatchNorm keeps
    assert torch.allclose(net[1].running_mean, means.mean(0), atol=1e-6)
    assert torch.allclose(net[1].running_var, variances.mean(0), atol=1e-5)
    assert not net.training and not any(m.training for m in net.modules()) and net[1].momentum == 0.1
    assert all(torch.equal(before[k], v) for k, v in net.named_parameters())  # statistics only


def test_no_batchnorm_draws_no_input_and_a_failing_forward_restores_the_modes():
    def never():
        raise AssertionError("drew an input")
        yield

    assert recalibrate_norms(nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU()), never()) == 0
    net = _net().eval()
    with pytest.raises(RuntimeError):
        recalibrate_norms(net, iter([torch.randn(2, 5, 3, 3)]))  # wrong channels
    assert not net[1].training and net[1].momentum == 0.1


def test_generator_inputs_are_a_stream_of_their_own():
    s = Sampler(0, 6, "noise", (5,), num_classes=3, packed=True)
    a, b = s.generator_inputs(0, torch.device("cpu")), s.generator_inputs(1, torch.device("cpu"))
    assert a.shape == (6, 5) and torch.equal(a, s.generator_inputs(0, torch.device("cpu"))) and not torch.equal(a, b)
    assert set(a[:, -1].tolist()) <= {0.0, 1.0, 2.0}  # packed labels in the last column
    assert not torch.equal(a, s.draw(0, torch.device("cpu")).x)  # not the training step's latents


def _norm_stats(path) -> dict[str, torch.Tensor]:
    g = load_bundle(str(path)).generator
    return {k: v for k, v in g.state_dict().items() if "running_" in k}


@pytest.mark.parametrize("sparsity", [0.7, None])  # on the AGP ramp, and an input pruned before (recalibrated once)
def test_the_student_ends_with_statistics_of_its_own_weights(project, sparsity):
    source = str(project["dense"] if sparsity else project["pruned"])
    kw = dict(source=source, sparsity=sparsity, steps=4, mask_every=1, method="distill")
    teacher = _norm_stats(project["dense"])
    plain = _norm_stats(run_finetune(config(project, **kw)).output)
    assert all(torch.equal(teacher[k], plain[k]) for k in teacher)  # eval-mode student: the teacher's statistics
    recal = _norm_stats(run_finetune(config(project, output=project["out"].with_name("r.safetensors"),
                                            recalibrate_bn=2, **kw)).output)
    assert all(not torch.allclose(teacher[k], recal[k]) for k in teacher if k.endswith("running_var"))


def test_an_unpruned_run_is_left_alone(project):
    out = run_finetune(config(project, source=str(project["dense"]), steps=2, method="distill", recalibrate_bn=2)).output
    teacher, got = _norm_stats(project["dense"]), _norm_stats(out)
    assert all(torch.equal(teacher[k], got[k]) for k in teacher)


def test_resume_keeps_the_recalibrated_statistics(project, tmp_path):
    kw = dict(source=str(project["dense"]), sparsity=0.7, steps=6, mask_every=1, method="distill", log_every=1,
              recalibrate_bn=2)
    full, resumed, _ = resume_round_trip(project, tmp_path, kw, 2, {"recalibrate_bn": 3})
    a, b = tensors(full.output, ""), tensors(resumed.output, "")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "recalibrate_bn" not in config(project).resume_key()["recovery"]["schedule"]  # off: older states match


@pytest.mark.parametrize("value", [-1, True, 1.5])
def test_bad_values_are_refused(project, value):
    with pytest.raises(InputError, match="--recalibrate-bn"):
        config(project, recalibrate_bn=value)


def test_cli_refuses_it_with_a_train_mode_student(project, tmp_path):
    r = CliRunner().invoke(app, ["finetune", str(project["pruned"]), "--data", str(project["images"]), "--steps", "2",
                                 "--recalibrate-bn", "2", "--student-mode", "train", "-o", str(tmp_path / "x.safetensors")])
    assert r.exit_code == 2 and "--recalibrate-bn" in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.safetensors").exists()


def _prune(tmp_path, name: str, *extra: str):
    out = tmp_path / f"{name}.safetensors"
    r = CliRunner().invoke(app, ["prune", "builtin:digits-dcgan", "-s", "0.9", "-o", str(out), "-q", *extra])
    assert r.exit_code == 0, r.output
    return load_bundle(str(out))


def _distance_to_dense(generator: nn.Module) -> float:
    from gancompress.generation import noise

    dense = load_bundle("builtin:digits-dcgan").generator.eval()
    z = noise(256, (32, 1, 1), seed=7)
    with torch.no_grad():
        return float((generator.eval()(z) - dense(z)).pow(2).mean())


def test_prune_recalibrates_one_shot_and_brings_the_outputs_closer_to_the_dense_model(tmp_path):
    plain, recal = _prune(tmp_path, "plain", "--recalibrate-bn", "0"), _prune(tmp_path, "recal", "--recalibrate-bn", "8",
                                                                              "--seed", "3")
    assert plain.masks.keys() == recal.masks.keys() and all(torch.equal(plain.masks[k], recal.masks[k]) for k in plain.masks)
    assert _distance_to_dense(recal.generator) < 0.7 * _distance_to_dense(plain.generator)  # measured: 0.076 vs 0.160
    assert recal.meta["pruning"]["recalibrate_bn"] == {"batches": 8, "batch_size": 64, "seed": 3, "norms": 3}
    assert "recalibrate_bn" not in plain.meta["pruning"]
    again = _prune(tmp_path, "again", "--recalibrate-bn", "8", "--seed", "3")
    stats = {k: v for k, v in recal.generator.state_dict().items() if "running_" in k}
    assert all(torch.equal(v, again.generator.state_dict()[k]) for k, v in stats.items())  # the seed fixes them


def test_prune_recalibrates_a_noise_input_generator_with_batchnorms_by_default(tmp_path):
    default = _prune(tmp_path, "default")
    assert default.meta["pruning"]["recalibrate_bn"] == {"batches": 10, "batch_size": 64, "seed": 0, "norms": 3}
    r = CliRunner().invoke(app, ["prune", "builtin:digits-dcgan", "-s", "0.9", "-o", str(tmp_path / "t.safetensors")])
    assert "BatchNorm statistics of 3 layer(s) re-estimated on 10 batches" in r.stderr


def test_prune_leaves_an_image_to_image_generator_alone_unless_told_and_then_refuses(tmp_path):
    from gancompress.archs import ArchSpec, build
    from gancompress.formats.checkpoint import GanBundle, save_bundle

    from gancompress.archs import ARCHITECTURES

    spec = ArchSpec("srgan-g", dict(ARCHITECTURES.get("srgan-g").default_kwargs))
    g = build(spec).eval()
    source = save_bundle(GanBundle(g, spec), tmp_path / "srgan.safetensors")
    out = tmp_path / "x.safetensors"
    r = CliRunner().invoke(app, ["prune", str(source), "-s", "0.5", "--recalibrate-bn", "2", "-o", str(out)])
    assert r.exit_code == 2 and "translates images" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
    r = CliRunner().invoke(app, ["prune", str(source), "-s", "0.5", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    pruned = load_bundle(str(out))
    assert "recalibrate_bn" not in pruned.meta["pruning"]
    assert all(torch.equal(v, g.state_dict()[k]) for k, v in pruned.generator.state_dict().items() if "running_" in k)


def test_auto_recalibration_never_costs_a_prune_that_works_without_it(tmp_path, monkeypatch):
    import gancompress.generation as generation

    def cannot_run(bundle):
        raise RuntimeError("the generator failed on a dummy input")

    monkeypatch.setattr(generation, "generator_info", cannot_run)
    out = tmp_path / "x.safetensors"
    r = CliRunner().invoke(app, ["prune", "builtin:digits-dcgan", "-s", "0.5", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "warning: BatchNorm statistics kept: the generator did not run" in r.stderr
    assert "recalibrate_bn" not in load_bundle(str(out)).meta["pruning"]


def test_a_bundle_recorded_without_its_kwargs_takes_the_architectures_defaults(tmp_path):
    """``ArchSpec("srgan-g", {})`` builds with the defaults; its input shape is read with them too (was a KeyError)."""
    from gancompress.archs import ARCHITECTURES, ArchSpec, build
    from gancompress.formats.checkpoint import GanBundle, save_bundle
    from gancompress.generation import generator_info

    spec = ArchSpec("srgan-g", {})
    source = save_bundle(GanBundle(build(spec).eval(), spec), tmp_path / "bare.safetensors")
    defaults = ARCHITECTURES.get("srgan-g").default_kwargs
    assert generator_info(load_bundle(str(source))).input_shape == (defaults["num_in_ch"], 64, 64)
    r = CliRunner().invoke(app, ["evaluate", str(source)])
    assert r.exit_code == 0, r.output


def test_a_shape_kwarg_missing_from_the_record_and_the_defaults_is_one_clear_error():
    from gancompress.archs.base import Architecture

    arch = Architecture(name="toy", role="generator", build=lambda **kw: None, infer=lambda sd: None,
                        default_kwargs={"size": 8}, input_shape=lambda kw: (kw["channels"], kw["size"], kw["size"]))
    assert arch.input_shape_of({"channels": 3}) == (3, 8, 8)
    with pytest.raises(InputError, match="lack 'channels'.*re-save the checkpoint with complete --arch-kwargs"):
        arch.input_shape_of({})


@pytest.mark.parametrize("value", ["-1", "two"])
def test_prune_refuses_a_bad_batch_count_in_one_line_and_writes_nothing(tmp_path, value):
    out = tmp_path / "x.safetensors"
    r = CliRunner().invoke(app, ["prune", "builtin:digits-dcgan", "-s", "0.9", "--recalibrate-bn", value, "-o", str(out)])
    assert r.exit_code == 2 and "--recalibrate-bn" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.output and not out.exists()
