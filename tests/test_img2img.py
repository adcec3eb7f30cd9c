"""pix2pix, CycleGAN and Real-ESRGAN checkpoints (public layouts, random tiny weights) end to end:
fine-tuning with their loss profiles on small scikit-image sets, evaluate, and bad input."""
from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from gancompress.cli.main import app
from gancompress.errors import InputError
from gancompress.finetune import FinetuneConfig, run_finetune
from gancompress.loading import LoadOptions, load_bundle, load_with_partner
from gancompress.losses import VGGFeatures, make_loss
from img2img_fixtures import (UNET, ab_folders, cyclegan_dir, esrgan_dir, hr_folder, pix2pix_dir, side_by_side)
from test_metrics import register_tiny

register_tiny()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANCOMPRESS_CACHE", str(tmp_path / "cache"))


def cfg(tmp_path, source, data, **kw) -> FinetuneConfig:
    base = dict(source=str(source), output=tmp_path / "out.safetensors",
                data=None if data is None else str(data), steps=2, batch_size=2,
                crop=32, method="self-supervised", log_every=1, sample_every=0, save_every=0, device="cpu")
    return FinetuneConfig.from_options(**{**base, **kw})


def run(tmp_path, source, data, **kw):
    seen = []
    result = run_finetune(cfg(tmp_path, source, data, **kw), on_event=lambda e: seen.append(e.info))
    return result, seen


# ------------------------------------------------------------------ loss profiles


def test_pix2pix_profile_has_adversarial_and_weighted_l1_terms():
    p = make_loss("pix2pix")
    fake, target = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    terms = p.g_terms(torch.zeros(2, 1, 2, 2), fake=fake, target=target)
    assert set(terms) == {"adv", "l1"}
    assert math.isclose(terms["l1"].item(), 50.0) and math.isclose(terms["adv"].item(), math.log(2), rel_tol=1e-6)
    assert set(p.g_terms(torch.zeros(2))) == {"adv"}  # no ground truth: adversarial only
    d = p.d_terms(torch.zeros(2), torch.zeros(2))
    assert math.isclose(d["real"].item(), 0.5 * math.log(2), rel_tol=1e-6)


def test_cyclegan_profile_cycle_and_identity_use_the_partner():
    p = make_loss("cyclegan")
    a, b = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    g = lambda x: x * 0.5  # noqa: E731
    assert set(p.g_terms(torch.ones(2), fake=g(a), target=b, inputs=a, generator=g)) == {"adv", "idt"}
    p.partner = lambda x: x * 2.0
    terms = p.g_terms(torch.ones(2), fake=g(a), target=b, inputs=a, generator=g)
    assert set(terms) == {"adv", "cycle_a", "cycle_b", "idt"}
    assert terms["cycle_a"].item() == pytest.approx(0.0, abs=1e-6) and terms["cycle_b"].item() == pytest.approx(0.0, abs=1e-6)
    assert terms["idt"].item() == pytest.approx(5.0 * (b * 0.5).mean().item(), rel=1e-5)


def test_sr_profile_pixel_adv_and_perceptual(tmp_path):
    from gancompress.losses import load_vgg19

    p = make_loss("sr")
    fake, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    terms = p.g_terms(torch.zeros(1, 1, 16, 16), fake=fake, target=target)
    assert set(terms) == {"adv", "pixel"} and math.isclose(terms["adv"].item(), 0.1 * math.log(2), rel_tol=1e-5)
    torch.manual_seed(0)
    path = tmp_path / "vgg19.pth"
    torch.save({k: v for k, v in VGGFeatures().state_dict().items() if k.startswith("features.")}, path)
    p.vgg = load_vgg19(str(path))
    assert "perceptual" in p.g_terms(torch.zeros(1), fake=fake, target=target)
    with pytest.raises(InputError, match="no such file"):
        load_vgg19(str(tmp_path / "missing.pth"))


# ------------------------------------------------------------------ fine-tuning per profile


@pytest.mark.parametrize("layout", ["resnet_side_by_side", "unet_ab"])
def test_pix2pix_finetunes_on_paired_crops(tmp_path, layout):
    if layout == "unet_ab":
        src, data = pix2pix_dir(tmp_path / "ckpt", UNET), ab_folders(tmp_path / "data")
    else:
        src, data = pix2pix_dir(tmp_path / "ckpt"), side_by_side(tmp_path / "data")
    result, seen = run(tmp_path, src, data, sparsity=0.5, sample_every=2)
    assert result.loss == "pix2pix" and result.sparsity["pruned"] == pytest.approx(0.5, abs=0.02)
    assert "L_GC" in seen[-1] and (result.samples / "step_000002.png").is_file()
    out = load_bundle(str(result.output))
    assert out.g_spec.name == load_bundle(str(src)).g_spec.name and out.masks


def test_short_self_supervised_run_lowers_l_gc(tmp_path):
    src, data = pix2pix_dir(tmp_path / "ckpt"), side_by_side(tmp_path / "data")
    pruned, _ = run(tmp_path, src, data, method="none", sparsity=0.6, output=tmp_path / "p60.safetensors")
    _, seen = run(tmp_path, pruned.output, data, steps=10, lr_g=5e-3, lr_d=1e-5, teacher=str(src))
    l_gc = [m["L_GC"] for m in seen]
    assert sum(l_gc[-3:]) / 3 < 0.8 * sum(l_gc[:3]) / 3, l_gc


def test_cyclegan_uses_the_frozen_opposite_generator(tmp_path, monkeypatch):
    import gancompress.finetune.setup as setup_mod

    src, data = cyclegan_dir(tmp_path / "ckpt"), ab_folders(tmp_path / "data", n=4, n_b=3)
    bundle, partner = load_with_partner(str(src))
    assert partner is not None and bundle.d_spec.kwargs["input_nc"] == 3
    captured = {}
    original = setup_mod.build_setup

    def spy(config):
        captured["setup"] = original(config)
        return captured["setup"]

    monkeypatch.setattr("gancompress.finetune.loop.build_setup", spy)
    result, _ = run(tmp_path, src, data, sparsity=0.5)
    profile = captured["setup"].profile
    assert result.loss == "cyclegan" and profile.partner is not None and not result.notes
    before = {k: v.clone() for k, v in partner.state_dict().items()}
    assert all(torch.equal(before[k], v) for k, v in profile.partner.state_dict().items())
    assert not any(p.requires_grad for p in profile.partner.parameters())
    batch = captured["setup"].sampler.draw(0, torch.device("cpu"))
    fake = captured["setup"].student(batch.x)
    terms = profile.g_terms(torch.zeros(1), fake=fake, target=batch.real, inputs=batch.x,
                            generator=captured["setup"].student)
    assert set(terms) == {"adv", "cycle_a", "cycle_b", "idt"}


def test_cyclegan_b_to_a_loads_g_b_and_d_b(tmp_path):
    src = cyclegan_dir(tmp_path / "ckpt")
    a_to_b, partner_ab = load_with_partner(str(src))
    b_to_a, partner_ba = load_with_partner(str(src), LoadOptions(direction="BtoA"))
    sd = lambda m: m.state_dict()  # noqa: E731
    assert all(torch.equal(v, sd(partner_ab)[k]) for k, v in sd(b_to_a.generator).items())
    assert all(torch.equal(v, sd(a_to_b.generator)[k]) for k, v in sd(partner_ba).items())
    d_b = torch.load(src / "latest_net_D_B.pth")
    assert all(torch.equal(v, d_b[k]) for k, v in sd(b_to_a.discriminator).items())
    result, _ = run(tmp_path, src, ab_folders(tmp_path / "data", n=3, n_b=4), direction="BtoA")
    assert result.loss == "cyclegan"


def test_cyclegan_without_opposite_generator_warns(tmp_path):
    src = cyclegan_dir(tmp_path / "ckpt", partner=False)
    result, _ = run(tmp_path, src, ab_folders(tmp_path / "data", n=3, n_b=3))
    assert result.loss == "cyclegan"
    assert sum("cycle-consistency terms are disabled" in n for n in result.notes) == 1


def test_real_esrgan_finetunes_with_pixel_and_perceptual_terms(tmp_path):
    torch.manual_seed(0)
    vgg = tmp_path / "vgg19.pth"
    torch.save({k: v for k, v in VGGFeatures().state_dict().items() if k.startswith("features.")}, vgg)
    src, data = esrgan_dir(tmp_path / "ckpt"), hr_folder(tmp_path / "hr")
    result, seen = run(tmp_path, src, data, sparsity=0.5, perceptual_weights=str(vgg), sr_blur=0.5, sr_noise=0.01)
    assert result.loss == "sr" and math.isfinite(seen[-1]["L_GC"])
    out = load_bundle(str(result.output))
    assert out.g_spec.name == "rrdbnet-g" and out.d_spec.name == "unet-sn-d"


def test_finetune_method_uses_the_ground_truth_terms(tmp_path):
    src, data = pix2pix_dir(tmp_path / "ckpt"), side_by_side(tmp_path / "data")
    _, seen = run(tmp_path, src, data, method="finetune", steps=1)
    assert seen[-1]["g_loss"] > 5  # 100 * L1 to a target that random weights do not produce


def test_distill_adv_adds_the_profiles_full_g_loss_to_the_l1(tmp_path):
    src, data = pix2pix_dir(tmp_path / "ckpt"), side_by_side(tmp_path / "data")
    _, seen = run(tmp_path, src, data, method="distill-adv", adv_weight=0.5, steps=1)
    last = seen[-1]
    assert last["adv"] > 5  # the pix2pix G loss, ground-truth L1 term included
    assert last["g_loss"] == pytest.approx(last["l1"] + 0.5 * last["adv"], rel=1e-5)


# ------------------------------------------------------------------ bad input


def test_bad_image_inputs_give_clear_errors(tmp_path):
    src = pix2pix_dir(tmp_path / "ckpt")
    with pytest.raises(InputError, match="side-by-side"):
        run(tmp_path, src, hr_folder(tmp_path / "square"))
    ab = ab_folders(tmp_path / "ab")
    (ab / "B" / "001.png").rename(ab / "B" / "other.png")
    with pytest.raises(InputError, match="do not match"):
        run(tmp_path, src, ab)
    with pytest.raises(InputError, match="smaller than --crop 128"):
        run(tmp_path, src, side_by_side(tmp_path / "sbs"), crop=128)
    with pytest.raises(InputError, match="multiple of 32"):
        run(tmp_path, pix2pix_dir(tmp_path / "unet", UNET), side_by_side(tmp_path / "sbs"), crop=48)
    with pytest.raises(InputError, match="--data"):
        run(tmp_path, src, None, method="distill")
    assert not (tmp_path / "out.safetensors").exists()


def test_grayscale_data_for_an_rgb_model_is_converted_with_one_notice(tmp_path):
    result, _ = run(tmp_path, pix2pix_dir(tmp_path / "ckpt"), side_by_side(tmp_path / "gray", gray=True), steps=1)
    assert sum("grayscale" in n for n in result.notes) == 1


# ------------------------------------------------------------------ CLI: finetune then evaluate


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("kind", ["pix2pix", "cyclegan", "sr"])
def test_cli_finetune_then_evaluate(tmp_path, kind):
    if kind == "pix2pix":
        src, data = pix2pix_dir(tmp_path / "ckpt"), side_by_side(tmp_path / "data")
    elif kind == "cyclegan":
        src, data = cyclegan_dir(tmp_path / "ckpt"), ab_folders(tmp_path / "data", n=4, n_b=3)
    else:
        src, data = esrgan_dir(tmp_path / "ckpt"), hr_folder(tmp_path / "data")
    out = tmp_path / "small.safetensors"
    r = cli("finetune", src, "--data", data, "--crop", "32", "--steps", "2", "--batch-size", "2", "--sparsity", "0.5",
            "-o", out, "--device", "cpu", "-q")
    assert r.exit_code == 0, r.stderr
    grid = tmp_path / "grid.png"
    latency = ["--latency"] if kind != "sr" else []  # x4 to 512x512 is slow on a shared CPU
    data_option = "--pairs" if kind == "sr" else "--data"  # --data, and its older spelling still works
    r = cli("evaluate", out, data_option, data, "--fid", "--extractor", "tiny", *latency, "--samples", grid,
            "--batch-size", "2", "--device", "cpu", "--json", "-q")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    row = doc["rows"][0]
    assert row["fid"] is not None and row["similarity_to"] == str(src)
    assert (row["latency_ms"] is not None) is (kind != "sr")
    assert doc["settings"]["pairs_kind"] == {"pix2pix": "paired", "cyclegan": "unpaired", "sr": "sr"}[kind]
    assert (row.get("psnr_gt") is not None) is (kind != "cyclegan")
    from PIL import Image

    with Image.open(grid) as im:
        rows = 4 if kind != "cyclegan" else 3  # input | dense | compressed (| target)
        assert im.height > rows * 64


def test_evaluate_image_model_fid_without_pairs_is_a_usage_error(tmp_path):
    r = cli("evaluate", pix2pix_dir(tmp_path / "ckpt"), "--fid", "--extractor", "tiny", "--device", "cpu", "-q")
    assert r.exit_code == 2 and "--data FOLDER" in r.stderr
