"""Which layers are prunable, and the true axes of their weights.

Every prunable weight is viewed as a canonical 2-D matrix so each granularity is written
once:

* rows are the layer's *output units* (output channels / output features);
* columns are ``in_slot * k1 * k2 ...`` in row-major order of ``(in_slot, *kernel)``, where
  ``in_slot`` runs over the ``in_channels // groups`` input channels one output sees.

Raw layouts: ``Conv{1,2,3}d`` weight is ``(out, in/groups, *k)`` (a plain reshape);
``ConvTranspose{1,2,3}d`` weight is ``(in, out/groups, *k)``: output channels are dim 1 and,
with groups, output channel ``g*(out/g)+j`` reads input channels ``g*(in/g) ... (g+1)*(in/g)-1``
(a permute, so the canonical view of a transposed conv is a copy); ``Linear`` is ``(out, in)``.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError
from ..layer_table import CONV, CONV_TRANSPOSE, KINDS, MODULATED_CONV, weight_layer

# Where a module keeps the tensor to prune, most specific first: spectral_norm (old API) keeps
# ``weight_orig``, parametrize keeps ``parametrizations.weight.original`` (weight_norm: ``original1``
# is the direction ``v``), old weight_norm keeps ``weight_v``. Zeros in any of these stay zeros.
_WEIGHT_NAMES = (
    "parametrizations.weight.original1",
    "parametrizations.weight.original",
    "weight_orig",
    "weight_v",
    "weight",
)


@dataclass(frozen=True)
class Geometry:
    """Shape facts of one weight: ``out`` rows, ``slots`` inputs per group, kernel size."""

    kind: str
    shape: tuple[int, ...]
    groups: int
    out: int
    slots: int
    ksize: int  # prod(kernel), 1 for Linear
    kw: int  # last kernel dim (a "vector" is one such line), 1 for Linear

    @property
    def cols(self) -> int:
        return self.slots * self.ksize

    @property
    def in_channels(self) -> int:
        return self.slots * self.groups


def geometry(shape: tuple[int, ...] | torch.Size, kind: str = CONV, groups: int = 1) -> Geometry:
    """Derive :class:`Geometry` from a raw weight shape of a layer of ``kind``."""
    shape = tuple(int(s) for s in shape)
    if kind not in KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; expected one of {KINDS}")
    if kind == MODULATED_CONV:
        if len(shape) < 4 or shape[0] != 1:
            raise ValueError(f"a modulated conv weight is (1, out, in, *kernel), not {shape}")
        return dataclasses.replace(geometry(shape[1:], CONV, groups), kind=kind, shape=shape)
    if len(shape) < 2 or groups < 1:
        raise ValueError(f"not a prunable weight shape {shape} (groups={groups})")
    kernel = shape[2:]
    ksize, kw = math.prod(kernel), (kernel[-1] if kernel else 1)
    if kind == CONV_TRANSPOSE:
        if shape[0] % groups:
            raise ValueError(f"in channels {shape[0]} not divisible by groups {groups}")
        return Geometry(kind, shape, groups, shape[1] * groups, shape[0] // groups, ksize, kw)
    if shape[0] % groups:
        raise ValueError(f"out channels {shape[0]} not divisible by groups {groups}")
    return Geometry(kind, shape, groups, shape[0], shape[1], ksize, kw)


def to_canonical(weight: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """View ``weight`` as ``(out, slots*ksize)``; a view except for transposed convs."""
    if geo.kind != CONV_TRANSPOSE:
        return weight.reshape(geo.out, geo.cols)
    g = geo.groups
    w = weight.reshape(g, geo.slots, geo.out // g, geo.ksize)
    return w.permute(0, 2, 1, 3).reshape(geo.out, geo.cols)


def canonical_rows(weight: torch.Tensor, geo: Geometry, rows: torch.Tensor | slice) -> torch.Tensor:
    """Rows ``rows`` (indices or a slice) of :func:`to_canonical`, copying only those rows: a
    transposed conv's weight is not reordered whole."""
    if geo.kind != CONV_TRANSPOSE:
        return to_canonical(weight, geo)[rows]
    index = torch.arange(geo.out)[rows] if isinstance(rows, slice) else rows
    per_group = geo.out // geo.groups
    grouped = weight.reshape(geo.groups, geo.slots, per_group, geo.ksize)
    return grouped[index // per_group, :, index % per_group].reshape(len(index), geo.cols)


def put_canonical_rows(target: torch.Tensor, geo: Geometry, rows: slice, values: torch.Tensor) -> None:
    """Write ``values`` as the canonical rows ``rows`` of the contiguous raw-layout ``target`` (the inverse
    of :func:`canonical_rows`: a transposed conv's rows are scattered, nothing whole is reordered)."""
    if geo.kind != CONV_TRANSPOSE:
        target.view(geo.out, geo.cols)[rows] = values
        return
    index = torch.arange(geo.out)[rows]
    per_group = geo.out // geo.groups
    grouped = target.view(geo.groups, geo.slots, per_group, geo.ksize)
    grouped[index // per_group, :, index % per_group] = values.reshape(len(index), geo.slots, geo.ksize)


def zero_rows(weight: torch.Tensor, geo: Geometry, zeros: int | None = None) -> torch.Tensor:
    """Bool per canonical row: it holds an exact zero (one pass over the weight in its own order; from
    the zeros' positions when ``zeros``, their count, is a small share of the weight)."""
    zero = (weight == 0).reshape(-1)
    per_group = geo.out // geo.groups
    if zeros is not None and zeros <= weight.numel() // 64:  # their int64 indices stay small
        index = zero.nonzero().flatten()
        if geo.kind == CONV_TRANSPOSE:
            index = index // (geo.slots * per_group * geo.ksize) * per_group + index // geo.ksize % per_group
        else:
            index = index // geo.cols
        rows = torch.zeros(geo.out, dtype=torch.bool)
        rows[index] = True
        return rows
    if geo.kind != CONV_TRANSPOSE:
        return zero.reshape(geo.out, -1).any(1)
    return zero.reshape(geo.groups, geo.slots, per_group, geo.ksize).any(3).any(1).reshape(geo.out)


def from_canonical(mat: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """Inverse of :func:`to_canonical`: a ``(out, cols)`` matrix back to the raw shape."""
    if geo.kind != CONV_TRANSPOSE:
        return mat.reshape(geo.shape)
    g = geo.groups
    m = mat.reshape(g, geo.out // g, geo.slots, geo.ksize)
    return m.permute(0, 2, 1, 3).reshape(geo.shape)


def is_prunable(module: nn.Module) -> bool:
    """Conv, transposed conv and Linear modules (or modules declaring ``weight_kind``) that hold a weight."""
    return weight_layer(module) is not None and weight_name(module) is not None


def layer_kind(module: nn.Module) -> tuple[str, int]:
    """``(kind, groups)`` of a prunable module."""
    entry = weight_layer(module)
    if entry is None:
        raise TypeError(f"{type(module).__name__} is not a prunable layer")
    return entry.kind, int(getattr(module, "groups", 1))


def weight_name(module: nn.Module) -> str | None:
    """Local name of the parameter holding the weight to prune (see ``_WEIGHT_NAMES``)."""
    params = dict(module.named_parameters(recurse=True))
    for name in _WEIGHT_NAMES:
        if name in params and params[name].dim() >= 2:
            return name
    return None


def module_geometry(module: nn.Module) -> Geometry:
    """Geometry of a prunable module's weight."""
    kind, groups = layer_kind(module)
    param = module.get_parameter(weight_name(module))
    return geometry(param.shape, kind, groups)


def param_key(module_name: str, module: nn.Module) -> str:
    """Full parameter name (``"net.0.weight"``) of a module's prunable weight."""
    local = weight_name(module)
    return f"{module_name}.{local}" if module_name else local


def _matches(name: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


def _selected(name: str, module: nn.Module, include: tuple[str, ...]) -> bool:
    if include:
        return _matches(name, include)
    return getattr(module, "prune_by_default", True)


def _warn_unmatched(names: list[str], globs: tuple[str, ...], option: str) -> None:
    for g in globs:
        if not any(fnmatch.fnmatchcase(n, g) for n in names):
            warnings.warn(
                f"--{option} {g!r} matches no prunable layer; prunable layers are: "
                f"{', '.join(names[:12])}{' ...' if len(names) > 12 else ''}",
                stacklevel=3,
            )


def prunable_layers(
    model: nn.Module,
    include: tuple[str, ...] | list[str] = (),
    exclude: tuple[str, ...] | list[str] = (),
    prune_first_last: bool = False,
) -> list[tuple[str, nn.Module]]:
    """Selected ``(module_name, module)`` pairs, in ``named_modules`` order.

    Conv/transposed-conv/Linear weights only. The first and last prunable layers stay dense
    unless ``prune_first_last``. ``include``/``exclude`` are ``fnmatch`` globs on module names;
    a glob matching nothing warns; an empty selection raises :class:`InputError`. A layer whose
    module says ``prune_by_default = False`` (StyleGAN2's mapping, style affines and ToRGB) is
    pruned only when an ``include`` glob names it.
    """
    include, exclude = tuple(include), tuple(exclude)
    layers = [(n, m) for n, m in model.named_modules() if is_prunable(m)]
    if not layers:
        raise InputError("the model has no Conv/ConvTranspose/Linear layer to prune")
    names = [n for n, _ in layers]
    _warn_unmatched(names, include, "include")
    _warn_unmatched(names, exclude, "exclude")
    chosen = layers if prune_first_last else layers[1:-1]
    chosen = [(n, m) for n, m in chosen if _selected(n, m, include) and not _matches(n, exclude)]
    if not chosen:
        kept = "" if prune_first_last else (
            f"; the first and last layers ({names[0]}, {names[-1]}) are kept dense, pass "
            "--prune-first-last to prune them"
        )
        raise InputError(
            f"no layer left to prune among {len(names)} prunable layers "
            f"(include={list(include)}, exclude={list(exclude)}){kept}; relax --include/--exclude"
        )
    return chosen
