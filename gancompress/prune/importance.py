"""What a weight's rank is measured by (``--importance``): its magnitude, or its magnitude as the next
BatchNorm scales it.

``magnitude`` ranks ``|w|``. ``bn-scaled`` ranks ``|w| * |gamma_c| / sqrt(running_var_c + eps)``, with
``c`` the weight's output channel and the BatchNorm the one that normalises the layer's output: in
eval mode a BatchNorm multiplies channel ``c`` by that factor, so it is the weight's size in the
normalised output, which plain magnitude compares across channels as if every factor were 1 (in
trained generators they spread 2-3x within a layer). Layers with no such BatchNorm rank by magnitude.

The BatchNorm of a layer is the module registered right after it (its own submodules, such as a
spectral-norm parametrization, skipped) when that is a BatchNorm with running statistics over as
many channels as the layer has outputs: ``Sequential(conv, BatchNorm2d(...), ReLU)`` and the same
written as attributes in that order, which is how generators are built. A BatchNorm used elsewhere
in ``forward`` than its registration suggests would give a different ranking, never wrong masks.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import unknown_choice
from .layers import CONV_TRANSPOSE, Geometry, is_prunable, module_geometry

IMPORTANCES = ("magnitude", "bn-scaled")


def check_importance(name: object) -> str:
    if name not in IMPORTANCES:
        raise unknown_choice("importance (--importance)", name, IMPORTANCES)
    return str(name)


def following_norms(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """{prunable module name: the BatchNorm that normalises its output} (see the module doc)."""
    found: dict[str, nn.modules.batchnorm._BatchNorm] = {}
    pending: tuple[str, int] | None = None  # the last prunable layer, and its output channels
    for name, module in model.named_modules():
        if pending is not None and name.startswith(pending[0] + "."):
            continue  # inside the layer (its parametrizations)
        if is_prunable(module):
            pending = (name, module_geometry(module).out)
            continue
        if list(module.children()):
            continue  # a container: its children come next
        if (pending is not None and isinstance(module, nn.modules.batchnorm._BatchNorm)
                and module.running_var is not None and module.num_features == pending[1]):
            found[pending[0]] = module
        pending = None
    return found


def norm_scale(norm: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """Each channel's eval-mode multiplier ``|gamma| / sqrt(running_var + eps)`` (gamma 1 without affine)."""
    scale = torch.rsqrt(norm.running_var.detach().float() + norm.eps)
    return scale * norm.weight.detach().float().abs() if norm.affine else scale


def scaled_weight(weight: torch.Tensor, geo: Geometry, scale: torch.Tensor) -> torch.Tensor:
    """A copy of ``weight`` (raw layout) with output channel ``c`` multiplied by ``scale[c]``; a product
    past the dtype's range is held at its largest value (a finite weight never ranks as non-finite)."""
    w = weight.detach()
    s = scale.to(device=w.device)
    if geo.kind == CONV_TRANSPOSE:  # (in, out / groups, *kernel): outputs in groups along dim 1
        per_group = geo.out // geo.groups
        grouped = w.reshape(geo.groups, geo.slots, per_group, geo.ksize)
        out = (grouped * s.reshape(geo.groups, 1, per_group, 1).to(w.dtype)).reshape(w.shape)
    else:
        out = (w.reshape(geo.out, -1) * s.reshape(geo.out, 1).to(w.dtype)).reshape(w.shape)
    big = torch.finfo(out.dtype).max
    return out.clamp_(-big, big) if out.is_floating_point() else out
