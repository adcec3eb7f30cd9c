"""Cut unused channels out of a filter-pruned StyleGAN2 generator (``export --format shrunk``).

A styled conv's output channel can go when every weight that reads it (the next styled conv
and the ToRGB at that resolution, see ``StyleGAN2Generator.channel_readers``) is zero there:
then neither the convolution nor the reader's demodulation sees it, whatever the channel holds
(a pruned filter still emits ``lrelu(noise + bias)``). Filter pruning masks those readers
(:mod:`gancompress.prune.readers`), so the cut is exact. Removing output channel ``c`` of a layer
removes its filter, its activation bias ``c``, and the reader's input ``c`` with the matching
style-affine (modulation) row; the reader's weight is rescaled by ``sqrt(new fan-in / old fan-in)``
because equalized learning rate scales it by ``1/sqrt(fan-in)`` at run time. The 4x4 constant
input keeps its width. Every layer keeps at
least one channel. The result is an ordinary ``stylegan2-g`` with per-layer ``conv_widths``.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def read_channels(g: nn.Module) -> list[torch.Tensor]:
    """Per styled conv: bool per output channel, True where some reader uses it."""
    keeps = []
    for key, (axis, readers) in g.channel_readers().items():
        used = torch.zeros(g.get_parameter(key).shape[axis], dtype=torch.bool)
        for reader, in_axis in readers:
            used |= g.get_parameter(reader).detach().movedim(in_axis, 0).flatten(1).ne(0).any(1).cpu()
        if not used.any():
            used[0] = True  # nothing reads this layer: one channel stands in (its readers are zero)
        keeps.append(used)
    return keeps


def _layer_slices(g: nn.Module, keeps: list[torch.Tensor]) -> dict[str, list[tuple[int, torch.Tensor]]]:
    """Tensor key -> (axis, kept indices) for every tensor that changes width."""
    const = torch.ones(g.input.input.shape[1], dtype=torch.bool)
    names, rgbs = g.conv_names()
    cuts: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for j, name in enumerate(names):
        inputs = const if j == 0 else keeps[j - 1]
        cuts[f"{name}.conv.weight"] = [(1, keeps[j]), (2, inputs)]
        cuts[f"{name}.conv.modulation.weight"] = [(0, inputs)]
        cuts[f"{name}.conv.modulation.bias"] = [(0, inputs)]
        cuts[f"{name}.activate.bias"] = [(0, keeps[j])]
        if j in rgbs:
            cuts[f"{rgbs[j]}.conv.weight"] = [(2, keeps[j])]
            cuts[f"{rgbs[j]}.conv.modulation.weight"] = [(0, keeps[j])]
            cuts[f"{rgbs[j]}.conv.modulation.bias"] = [(0, keeps[j])]
    return cuts


def shrink(g: nn.Module, kwargs: dict) -> tuple[nn.Module, dict, list[int], list[int]]:
    """(thin generator, its constructor kwargs, widths before, widths after) for a
    ``StyleGAN2Generator`` ``g`` built from ``kwargs``."""
    keeps = read_channels(g)
    before = [int(k.numel()) for k in keeps]
    after = [int(k.sum()) for k in keeps]
    new_kwargs = {**kwargs, "conv_widths": after}
    small = type(g)(**new_kwargs)
    cuts = _layer_slices(g, keeps)
    state = {}
    for key, value in g.state_dict().items():
        for axis, keep in cuts.get(key, []):
            if axis == 2:  # equalized learning rate: the run-time scale is 1/sqrt(fan_in); keep scale * weight
                value = value * math.sqrt(int(keep.sum()) / keep.numel())
            value = value.index_select(axis, keep.nonzero().flatten().to(value.device))
        state[key] = value
    small.load_state_dict(state, strict=True)
    small.noise_mode, small.truncation = g.noise_mode, g.truncation
    small.latent_avg.copy_(g.latent_avg)
    small.w_avg_source = g.w_avg_source
    return small.to(g.latent_avg.device).train(g.training), new_kwargs, before, after
