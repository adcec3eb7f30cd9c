"""Recognise StyleGAN2 state dicts (see :mod:`.stylegan2`) and register both networks.

Everything is read off key names and shapes: the resolution from the number of styled
convs (generator) or residual blocks (discriminator), ``style_dim`` and the mapping depth
from ``style.*``, and the width of every resolution from the conv weights, so custom
channel tables load, not only config F's ``channel_multiplier``. Not recoverable from a state
dict: the mapping's learning-rate multiplier (0.01 in every released model) and the blur
filter's taps (the stored ``kernel`` buffers hold the values; we require the usual 4 taps).
The reference's ``latent_avg`` sits beside the state dicts (the loader hands it to the generator,
:meth:`~.stylegan2.StyleGAN2Generator.use_latent_avg`); files we write hold it as the
generator's ``latent_avg`` entry.
"""
from __future__ import annotations

import re

from .base import Architecture, StateDict, register_architecture
from .stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator, layer_widths

_STYLE = re.compile(r"style\.(\d+)\.weight$")
_G_CONV = re.compile(r"convs\.(\d+)\.conv\.weight$")
_D_BLOCK = re.compile(r"convs\.(\d+)\.conv1\.0\.weight$")


def _count(sd: StateDict, pattern: re.Pattern) -> list[int]:
    return sorted(int(m.group(1)) for k in sd if (m := pattern.match(k)))


def _blur_ok(sd: StateDict, keys: list[str]) -> bool:
    return all(k not in sd or tuple(sd[k].shape) == (4, 4) for k in keys)


def _noise_maps_present(sd: StateDict, n_layers: int) -> bool:
    """Every stored noise map at its resolution: the file itself holds tensors as large as the
    buffers the generator would allocate, so a forged key count cannot make us build a giant."""
    for j in range(n_layers):
        side = 2 ** ((j + 5) // 2)
        value = sd.get(f"noises.noise_{j}")
        if value is None or tuple(value.shape) != (1, 1, side, side):
            return False
    return True


def infer_generator(sd: StateDict) -> dict | None:
    if not {"input.input", "conv1.conv.weight", "to_rgb1.conv.weight", "style.1.weight"} <= set(sd):
        return None
    mlp, convs = _count(sd, _STYLE), _count(sd, _G_CONV)
    if mlp != list(range(1, len(mlp) + 1)) or convs != list(range(len(convs))) or len(convs) % 2:
        return None
    if not _noise_maps_present(sd, len(convs) + 1):
        return None
    channels = [int(sd["input.input"].shape[1])]
    channels += [int(sd[f"convs.{i}.conv.weight"].shape[1]) for i in range(0, len(convs), 2)]
    if not _blur_ok(sd, [f"convs.{i}.conv.blur.kernel" for i in range(0, len(convs), 2)]):
        return None
    kwargs = {
        "size": 4 * 2 ** (len(convs) // 2),
        "style_dim": int(sd["style.1.weight"].shape[1]),
        "n_mlp": len(mlp),
        "channels": channels,
        "rgb": int(sd["to_rgb1.conv.weight"].shape[1]),
    }
    widths = [int(sd["conv1.conv.weight"].shape[1])] + [int(sd[f"convs.{i}.conv.weight"].shape[1]) for i in convs]
    if widths != layer_widths(channels):  # a thinned (filter-pruned and shrunk) generator
        kwargs["conv_widths"] = widths
    if "latent_avg" in sd:  # our own files keep the checkpoint's mean w in the generator's state dict
        kwargs["latent_avg"] = True
    return kwargs


def infer_discriminator(sd: StateDict) -> dict | None:
    if not {"convs.0.0.weight", "final_conv.0.weight", "final_linear.1.weight"} <= set(sd):
        return None
    blocks = _count(sd, _D_BLOCK)
    if blocks != list(range(1, len(blocks) + 1)) or not blocks:
        return None
    first = sd["convs.0.0.weight"]
    channels = [int(first.shape[0])] + [int(sd[f"convs.{i}.conv2.1.weight"].shape[0]) for i in blocks]
    if not _blur_ok(sd, [f"convs.{i}.conv2.0.kernel" for i in blocks]):
        return None
    return {"size": 4 * 2 ** len(blocks), "channels": channels, "rgb": int(first.shape[1])}


register_architecture(
    Architecture(
        name="stylegan2-g",
        role="generator",
        build=StyleGAN2Generator,
        infer=infer_generator,
        default_kwargs={"size": 256, "style_dim": 512, "n_mlp": 8},
        input_kind="noise",
        input_shape=lambda kw: (kw["style_dim"],),
        loss="stylegan2",
        description="StyleGAN2 config E/F generator (rosinality/stylegan2-pytorch layout, g_ema)",
    )
)
register_architecture(
    Architecture(
        name="stylegan2-d",
        role="discriminator",
        build=StyleGAN2Discriminator,
        infer=infer_discriminator,
        default_kwargs={"size": 256},
        loss="stylegan2",
        d_output="logits",
        description="StyleGAN2 residual discriminator with minibatch stddev (logits)",
    )
)
