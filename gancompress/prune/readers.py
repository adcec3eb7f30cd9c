"""Filter pruning through declared channel readers (StyleGAN2's modulated convolutions).

In a network where every conv's output is read only by known weights, a removed output
filter can be cut out of the network exactly when its readers ignore that channel too. A
model that says who reads what (``channel_readers() -> {weight key: (output axis, [(reader
key, input axis), ...])}``) gets, with filter pruning, the readers' input slices of every
removed filter masked as well. That is what makes ``export --format shrunk`` exact for
StyleGAN2: a pruned filter there still emits ``lrelu(noise + bias)`` (the noise input is added
after the conv), and the next layer's weight demodulation sums over all its input channels.
"""
from __future__ import annotations

import torch
from torch import nn


def dead_filters(mask: torch.Tensor, axis: int) -> torch.Tensor:
    """Bool per output channel along ``axis``: True where the whole filter is masked out."""
    return ~mask.movedim(axis, 0).flatten(1).any(dim=1)


def mask_readers(model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``masks`` plus, for every masked producer, its readers' input slices of its dead filters."""
    links = getattr(model, "channel_readers", None)
    if links is None:
        return masks
    out = dict(masks)
    for key, (axis, readers) in links().items():
        if key not in masks:
            continue
        dead = dead_filters(masks[key].to(torch.bool), axis)
        if not dead.any():
            continue
        for reader, in_axis in readers:
            weight = model.get_parameter(reader)
            keep = out.get(reader, torch.ones(weight.shape, dtype=torch.bool, device=dead.device)).clone()
            keep.movedim(in_axis, 0)[dead] = False
            out[reader] = keep
    return out
