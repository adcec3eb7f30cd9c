"""StyleGAN2: parity with the reference implementation, layout detection, loading."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import gancompress
from gancompress.archs import ARCHITECTURES, detect
from gancompress.archs.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator, config_f_channels
from gancompress.archs.stylegan2_ops import fir_kernel, upfirdn2d
from gancompress.loading import load_bundle

FIXTURE = Path(__file__).parent / "fixtures" / "stylegan2_parity.safetensors"
TOL = 1e-4


@pytest.fixture(scope="module")
def parity():
    return load_file(str(FIXTURE))


def _split(tensors, prefix):
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


@pytest.fixture()
def reference_checkpoint(parity, tmp_path):
    """The fixture's networks as the reference writes them: a torch file with g_ema, g, d, latent_avg."""
    g = _split(parity, "g_ema.")
    path = tmp_path / "stylegan2.pt"
    torch.save({"g_ema": g, "g": {k: v.clone() + 0.5 for k, v in g.items()}, "d": _split(parity, "d."),
                "latent_avg": torch.zeros(16)}, path)
    return path


def test_layout_inferred_from_every_width(parity):
    g_spec = detect(_split(parity, "g_ema."), "generator")
    d_spec = detect(_split(parity, "d."), "discriminator")
    assert g_spec.name == "stylegan2-g" and d_spec.name == "stylegan2-d"
    assert g_spec.kwargs == {"size": 32, "style_dim": 16, "n_mlp": 2, "channels": [16, 12, 8, 6], "rgb": 3}
    assert d_spec.kwargs == {"size": 32, "channels": [6, 8, 12, 16], "rgb": 3}


def test_generator_matches_reference(parity):
    g = StyleGAN2Generator(32, 16, 2, channels=[16, 12, 8, 6])
    g.load_state_dict(_split(parity, "g_ema."), strict=True)
    with torch.no_grad():
        images = g.eval()(parity["z"])
    assert images.shape == parity["images"].shape
    assert (images - parity["images"]).abs().max() < TOL


def test_discriminator_matches_reference(parity):
    d = StyleGAN2Discriminator(32, channels=[6, 8, 12, 16])
    d.load_state_dict(_split(parity, "d."), strict=True)
    with torch.no_grad():
        assert (d(parity["images"]) - parity["logits"]).abs().max() < TOL
        assert (d(parity["d_input"]) - parity["d_logits"]).abs().max() < TOL


def test_load_picks_g_ema_and_d(parity, reference_checkpoint):
    """gancompress.load: g_ema (not the training g) reproduces the reference images; D comes along."""
    g = gancompress.load(reference_checkpoint)
    with torch.no_grad():
        assert (g(parity["z"]) - parity["images"]).abs().max() < TOL
    bundle = load_bundle(str(reference_checkpoint))
    assert bundle.g_spec.name == "stylegan2-g" and bundle.d_spec.name == "stylegan2-d"
    with torch.no_grad():
        assert (bundle.discriminator(parity["images"]) - parity["logits"]).abs().max() < TOL


def test_config_f_state_dict_shapes():
    """Config F at 256 px: the reference's widths, keys and parameter counts (counted from its model.py)."""
    assert config_f_channels(256) == [512, 512, 512, 512, 512, 256, 128]
    with torch.device("meta"):
        g = StyleGAN2Generator(256)
        d = StyleGAN2Discriminator(256)
    assert g.state_dict()["convs.10.conv.weight"].shape == (1, 128, 256, 3, 3)
    assert sum(p.numel() for p in g.parameters()) == 30_034_338
    assert sum(p.numel() for p in d.parameters()) == 28_864_129
    assert ARCHITECTURES.get("stylegan2-g").infer(g.state_dict())["channels"] == config_f_channels(256)


def test_upfirdn2d_upsample_keeps_a_constant_image():
    """x2 upsampling with the [1, 3, 3, 1] filter (gain 4) maps a constant image to the same constant inside."""
    x = torch.full((1, 2, 6, 6), 3.0)
    y = upfirdn2d(x, fir_kernel((1, 3, 3, 1), 4.0), up=2, pad=(2, 1))
    assert y.shape == (1, 2, 12, 12)
    assert torch.allclose(y[..., 2:-2, 2:-2], torch.full_like(y[..., 2:-2, 2:-2], 3.0))


def test_noise_modes_and_truncation(parity):
    g = StyleGAN2Generator(32, 16, 2, channels=[16, 12, 8, 6]).eval()
    g.load_state_dict(_split(parity, "g_ema."))
    z = parity["z"]
    with torch.no_grad():
        const = g(z)
        assert torch.equal(g(z), const)
        g.noise_mode = "random"
        assert not torch.allclose(g(z), const)
        g.noise_mode = "const"
        g.set_truncation(0.0)
        flat = g(z)
    assert torch.allclose(flat, flat[:1].expand_as(flat), atol=1e-6)  # psi 0: every sample is w_avg's image
    g.set_truncation(1.0)
    with torch.no_grad():
        assert torch.equal(g(z), const)


def test_training_checkpoint_with_options_and_optimizers(parity, tmp_path):
    """train.py's checkpoints also hold Adam states, an argparse.Namespace of options and ada_aug_p."""
    import argparse

    g, d = _split(parity, "g_ema."), _split(parity, "d.")
    param = torch.nn.Parameter(torch.zeros(3))
    adam = torch.optim.Adam([param])
    param.grad = torch.ones(3)
    adam.step()
    path = tmp_path / "010000.pt"
    torch.save({"g": g, "d": d, "g_ema": g, "g_optim": adam.state_dict(), "d_optim": adam.state_dict(),
                "args": argparse.Namespace(size=32, r1=10.0, path_regularize=2.0), "ada_aug_p": 0.0}, path)
    bundle = load_bundle(str(path))
    assert bundle.g_spec.name == "stylegan2-g" and bundle.d_spec.name == "stylegan2-d"
    with torch.no_grad():
        assert (bundle.generator(parity["z"]) - parity["images"]).abs().max() < TOL


@pytest.mark.parametrize("pickled", [
    b"\x80\x03cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01}q\x02b.",  # TensorFlow StyleGAN2 (protocol 3)
    b"\x80\x04\x95\x30\x00\x00\x00\x00\x00\x00\x00\x8c\x17torch_utils.persistence\x94\x8c\x1c_reconstruct_persistent_obj\x94\x93\x94.",
])
@pytest.mark.parametrize("trust", [False, True])
def test_nvidia_pickles_are_never_unpickled(tmp_path, pickled, trust):
    from gancompress.errors import InputError
    from gancompress.sources import read_file

    path = tmp_path / "stylegan2-ffhq-config-f.pkl"
    path.write_bytes(pickled)
    with pytest.raises(InputError, match="convert_weight.py"):
        read_file(path, trust_pickle=trust)


def test_forged_layer_count_builds_nothing_big(parity):
    """40 fake styled convs would mean a 4M-pixel generator; without the noise maps such a size
    implies, the layout is not taken (nothing is built) and detection fails cleanly."""
    from gancompress.errors import InputError

    sd = _split(parity, "g_ema.")
    sd.update({f"convs.{i}.conv.weight": torch.zeros(1, 6, 6, 3, 3) for i in range(6, 40)})
    assert ARCHITECTURES.get("stylegan2-g").infer(sd) is None
    with pytest.raises(InputError, match="matches no built-in layout"):
        detect(sd, "generator")


def test_thinned_state_dict_is_detected_with_per_layer_widths(parity):
    """A filter-pruned and shrunk generator in the same layout: every styled conv's width is read back."""
    from gancompress.prune import PruneConfig, apply_masks, compute_masks

    g = StyleGAN2Generator(32, 16, 2, channels=[16, 12, 8, 6]).eval()
    g.load_state_dict(_split(parity, "g_ema."))
    apply_masks(g, compute_masks(g, PruneConfig(0.5, granularity="filter")))
    kwargs = {"size": 32, "style_dim": 16, "n_mlp": 2, "channels": [16, 12, 8, 6], "rgb": 3}
    small, new_kwargs, before, after = g.shrunk_copy(kwargs)
    assert before == [16, 12, 12, 8, 8, 6, 6] and after == [8, 6, 6, 4, 4, 3, 3]
    spec = detect(small.state_dict(), "generator")
    assert new_kwargs["conv_widths"] == after and spec.kwargs["conv_widths"] == after and spec.kwargs["size"] == 32
    with torch.no_grad():
        assert (small(parity["z"]) - g(parity["z"])).abs().max() < TOL
