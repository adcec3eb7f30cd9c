"""The one table of weight-layer types: convolutions, transposed convolutions and linear layers.

Inspect (which rows get a structure), cost (which MACs scale with density), prune (which
weights are prunable and how their axes lie) and shrink (which layers are producers and
which weight axis holds their outputs) all read it. A subclass of a listed type (e.g.
``LazyConv2d``) is that type.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

CONV = "conv"
CONV_TRANSPOSE = "conv_transpose"
LINEAR = "linear"
MODULATED_CONV = "modulated_conv"  # StyleGAN2: a conv weight stored as (1, out, in, *k)
KINDS = (CONV, CONV_TRANSPOSE, LINEAR, MODULATED_CONV)


@dataclass(frozen=True)
class WeightLayer:
    """How one weight-layer type lays out its weight (for ``groups=1``)."""

    kind: str
    out_dim: int  # weight axis of the output units
    in_dim: int  # weight axis of the input units
    in_attr: str  # constructor argument / attribute holding the input width
    out_attr: str


_CONV = WeightLayer(CONV, 0, 1, "in_channels", "out_channels")
_CONV_T = WeightLayer(CONV_TRANSPOSE, 1, 0, "in_channels", "out_channels")
_LINEAR = WeightLayer(LINEAR, 0, 1, "in_features", "out_features")
_MODULATED = WeightLayer(MODULATED_CONV, 1, 2, "in_channels", "out_channels")
# custom layers (StyleGAN2's equalized-learning-rate and modulated convs) declare their layout
# with a ``weight_kind`` class attribute instead of subclassing a torch layer
DECLARED: dict[str, WeightLayer] = {CONV: _CONV, LINEAR: _LINEAR, MODULATED_CONV: _MODULATED}

WEIGHT_LAYERS: dict[type[nn.Module], WeightLayer] = {
    nn.Conv1d: _CONV, nn.Conv2d: _CONV, nn.Conv3d: _CONV,
    nn.ConvTranspose1d: _CONV_T, nn.ConvTranspose2d: _CONV_T, nn.ConvTranspose3d: _CONV_T,
    nn.Linear: _LINEAR,
}


def weight_layer(module: nn.Module) -> WeightLayer | None:
    """The table entry of ``module``'s type (or of the nearest listed base class, or the layout it
    declares with ``weight_kind``), else None."""
    declared = getattr(type(module), "weight_kind", None)
    if declared in DECLARED:
        return DECLARED[declared]
    for cls in type(module).__mro__:
        entry = WEIGHT_LAYERS.get(cls)
        if entry is not None:
            return entry
    return None


def is_weight_layer(module: nn.Module) -> bool:
    return weight_layer(module) is not None
