"""Networks written as popular public GAN code writes them (tests/thirdparty_nets.py), saved as such code
saves them, through inspect -> prune -> finetune (distill-adv, against their D) -> evaluate --samples -> export
sparse/shrunk/onnx -> load with only the flags docs/custom_networks.md documents.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

import thirdparty_nets as tp
from gancompress.archs.custom import build_custom
from img2img_fixtures import ab_folders
from test_custom_networks import _exports_match, _images, _labelled, _run

pytestmark = pytest.mark.usefixtures("one_thread")

MOD = "thirdparty_nets"

# name: (G, G kwargs, D, D kwargs, image size, channels, checkpoint layout)
CASES = {
    "mlp-gan-bn1d-eps": ("MLPGenerator", {"input_shape": [8]}, "MLPDiscriminator", {"d_output": "probs"},
                         8, 1, "generator/discriminator"),
    "dcgan-linear-stem-upsample": ("DCGANGenerator", {"input_shape": [8]}, "DCGANDiscriminator",
                                   {"d_output": "probs"}, 16, 1, "G/D"),
    "wgan-gp-critic-logits": ("DCGANGenerator", {"input_shape": [8]}, "DCGANDiscriminator", {"sigmoid": False},
                              16, 1, "module-prefix"),
    "cgan-embedding-concat": ("CGANGenerator", {"input_shape": [8], "num_classes": 3}, "CGANDiscriminator",
                              {"num_classes": 3}, 8, 1, "generator/discriminator"),
    "acgan-tuple-d": ("ACGANGenerator", {"input_shape": [8], "num_classes": 3}, "ACGANDiscriminator",
                      {"d_output": "probs"}, 16, 1, "G/D"),
    "srgan-prelu-pixelshuffle": ("SRResNet", {"input_shape": [3, 4, 4], "input_kind": "image"},
                                 "PatchDiscriminator", {}, 16, 3, "state_dict"),
    "pix2pix-unet": ("GeneratorUNet", {"input_shape": [3, 16, 16], "input_kind": "image"}, "PatchDiscriminator", {},
                     16, 3, "params_ema"),
    "pix2pix-unet-two-argument-d": ("GeneratorUNet", {"input_shape": [3, 16, 16], "input_kind": "image"},
                                    "Pix2PixDiscriminator", {"d_input": "image_input"}, 16, 3, "G/D"),
    "sngan-spectral-norm-hooks": ("SNGenerator", {"input_shape": [8]}, "SNDiscriminator", {}, 16, 1, "G/D"),
    "sngan-spectral-norm-parametrized": ("SNGenerator", {"input_shape": [8], "parametrized": True}, "SNDiscriminator",
                                         {}, 16, 1, "G/D"),
    "pytorch-examples-ngpu-branch": ("ExamplesGenerator", {"input_shape": [8, 1, 1]}, "ExamplesDiscriminator",
                                     {"d_output": "probs"}, 16, 1, "state_dict"),
}


def _flags(g: str, g_kw: dict, d: str, d_kw: dict) -> list[str]:
    flags = ["--arch", f"{MOD}:{g}", "--arch-kwargs", json.dumps(g_kw), "--d-arch", f"{MOD}:{d}"]
    return flags + (["--d-arch-kwargs", json.dumps(d_kw)] if d_kw else [])


def _adam_state(sd: dict) -> dict:
    """An Adam optimizer's state_dict() as training scripts save it beside the weights (one step taken)."""
    params = [torch.nn.Parameter(v.clone()) for v in sd.values() if v.is_floating_point()]
    optimizer = torch.optim.Adam(params)
    sum(p.sum() for p in params).backward()
    optimizer.step()
    return optimizer.state_dict()


def _save(layout: str, g_sd: dict, d_sd: dict, folder: Path) -> tuple[Path, list[str]]:
    """The checkpoint as the project's training script would save it, and the extra flags that need."""
    ckpt = folder / "gan.pth"
    if layout == "generator/discriminator":
        torch.save({"generator": g_sd, "discriminator": d_sd, "epoch": 3, "optimizer_G": _adam_state(g_sd),
                    "optimizer_D": _adam_state(d_sd)}, ckpt)
    elif layout == "G/D":
        torch.save({"G": g_sd, "D": d_sd}, ckpt)
    elif layout == "module-prefix":  # trained under nn.DataParallel, G and D in files of their own
        torch.save(tp.data_parallel_keys(g_sd), ckpt)
        torch.save(tp.data_parallel_keys(d_sd), folder / "netD.pth")
        return ckpt, ["--discriminator", str(folder / "netD.pth")]
    elif layout == "state_dict":
        torch.save({"state_dict": g_sd}, ckpt)
        torch.save({"state_dict": d_sd}, folder / "netD.pth")
        return ckpt, ["--discriminator", str(folder / "netD.pth")]
    else:  # BasicSR-style: the generator's EMA weights under params_ema, D in its own file
        torch.save({"params_ema": g_sd}, ckpt)
        torch.save({"params": d_sd}, folder / "netD.pth")
        return ckpt, ["--discriminator", str(folder / "netD.pth")]
    return ckpt, []


@pytest.mark.parametrize("case", list(CASES))
def test_thirdparty_chain(case: str, tmp_path: Path, monkeypatch) -> None:
    g, g_kw, d, d_kw, size, channels, layout = CASES[case]
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)  # the networks as the user's code builds them, the contract applied
    gen, disc = build_custom(f"{MOD}:{g}", g_kw, "generator"), build_custom(f"{MOD}:{d}", d_kw, "discriminator")
    ckpt, d_file = _save(layout, gen.state_dict(), disc.state_dict(), tmp_path)
    conditional = "num_classes" in g_kw
    data = _labelled(tmp_path / "real", 3, size) if conditional else _images(tmp_path / "real", 6, size, channels)
    image_input = g_kw.get("input_kind") == "image"
    extra = ["--inputs", str(_images(tmp_path / "inputs", 6, size, channels, 1))] if g == "GeneratorUNet" else []
    if "d_input" in d_kw:  # a D that judges (input, output) pairs trains on paired A/ B/ folders
        data, extra = ab_folders(tmp_path / "pairs", n=6, size=size), []
    flags = _flags(g, g_kw, d, d_kw)

    report = json.loads(_run("inspect", ckpt, "--json", *flags))
    assert report["generator"]["parameters"] == sum(p.numel() for p in gen.parameters())
    assert report["has_discriminator"] == (not d_file)

    pruned = _run("prune", ckpt, "-s", "0.5", "-g", "filter", "-o", tmp_path / "p.safetensors", *flags)
    tuned = _run("finetune", pruned, "--data", data, *extra, *d_file, "--steps", "2", "--batch-size", "3",
                 "--method", "distill-adv",
                 "--sample-every", "0", "-o", tmp_path / "f.safetensors", *flags)
    grid = tmp_path / "grid.png"
    pairs = ["--pairs", str(data)] if image_input else []  # an SR generator's: HR images, downscaled as inputs
    _run("evaluate", tuned, "-r", ckpt, "--samples", grid, *extra, *pairs, *flags)
    assert Image.open(grid).size[0] > size or image_input
    if image_input:  # measured against the ground truth: HR images downscaled for an SR generator, else pairs
        measured = json.loads(_run("evaluate", tuned, *extra, *pairs, "--json", *flags))
        assert measured["settings"]["pairs_kind"] == ("sr" if g == "SRResNet" else "paired")
        assert math.isfinite(measured["rows"][0]["psnr_gt"])
    _exports_match(tuned, tmp_path, flags, f"{MOD}:{g}", f"{MOD}:{d}", (channels, size, size))


def test_two_argument_d_without_d_input_says_what_to_set(tmp_path: Path, monkeypatch) -> None:
    """pix2pix code's D(img_A, img_B) given without d_input: one line naming num_classes and d_input, no file."""
    from typer.testing import CliRunner

    from gancompress.cli.main import app

    monkeypatch.chdir(tmp_path)
    torch.save({"G": tp.GeneratorUNet().state_dict(), "D": tp.Pix2PixDiscriminator().state_dict()}, tmp_path / "g.pth")
    g_kw = json.dumps({"input_shape": [3, 16, 16], "input_kind": "image"})
    base = ["--arch", f"{MOD}:GeneratorUNet", "--arch-kwargs", g_kw, "--d-arch", f"{MOD}:Pix2PixDiscriminator"]
    r = CliRunner().invoke(app, ["prune", str(tmp_path / "g.pth"), "-s", "0.5", "-o", str(tmp_path / "p.safetensors"), *base])
    assert r.exit_code == 2 and r.output.startswith("error: ") and "Traceback" not in r.output
    assert "img_A, img_B" in r.output and "d_input" in r.output and "num_classes" in r.output
    assert not (tmp_path / "p.safetensors").exists()
    r = CliRunner().invoke(app, ["inspect", str(tmp_path / "g.pth"), *base, "--d-arch-kwargs", '{"d_input": "both"}'])
    assert r.exit_code == 2 and "d_input must be one of image, concat, input_image, image_input" in r.output


def test_tuple_output_index_is_checked() -> None:
    """The score is element d_output_index of a tuple output; an index past its end names the attribute."""
    from gancompress.archs.contract import apply_contract
    from gancompress.errors import InputError

    d = apply_contract(tp.ACGANDiscriminator().eval(), {}, "discriminator", "test D")
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        validity, classes = tp.ACGANDiscriminator.forward(d, x)
        assert torch.equal(d(x), validity)
        d.d_output_index = 1
        assert torch.equal(d(x), classes)
        d.d_output_index = 2
        with pytest.raises(InputError, match="returned 2 outputs but d_output_index is 2"):
            d(x)


def test_wrapper_prefixes_are_read_off() -> None:
    """DataParallel's module. and torch.compile's _orig_mod. (nested) come off when every key has them; a
    prefix only some keys carry stays."""
    from gancompress.loading import state_dicts

    sd = tp.MLPGenerator().state_dict()
    nested = {f"module._orig_mod.{k}": v for k, v in sd.items()}
    assert list(state_dicts(nested)["model"]) == list(sd)
    partial = {**sd, "module.extra": torch.zeros(1)}
    assert set(state_dicts(partial)["model"]) == set(partial)


def test_whole_pickled_generator_with_arch(tmp_path: Path, monkeypatch) -> None:
    """``torch.save(G)`` (a whole module, read only with --trust-pickle) and --arch: the module's weights go
    into the user's class, so the results record an architecture and export like a state dict's."""
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    gen = tp.DCGANGenerator().eval()
    torch.save(gen, tmp_path / "G.pth")
    flags = ["--trust-pickle", "--arch", f"{MOD}:DCGANGenerator", "--arch-kwargs", '{"input_shape": [8]}']
    pruned = _run("prune", tmp_path / "G.pth", "-s", "0.5", "-g", "filter", "-o", tmp_path / "p.safetensors", *flags)
    small = _run("export", pruned, "--format", "shrunk", "-o", tmp_path / "s.safetensors", *flags[1:])
    import gancompress

    dense, shrunk = gancompress.load(pruned, arch=f"{MOD}:DCGANGenerator"), gancompress.load(small)
    assert sum(p.numel() for p in shrunk.parameters()) < sum(p.numel() for p in gen.parameters())
    z = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.allclose(dense(z), shrunk(z), atol=1e-5)
