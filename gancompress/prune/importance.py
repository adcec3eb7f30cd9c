"""What a weight's rank is measured by (``--importance``): its magnitude, or its magnitude as the next
BatchNorm scales it.

``magnitude`` ranks ``|w|``. ``bn-scaled`` ranks ``|w| * |gamma_c| / sqrt(running_var_c + eps)``, with
``c`` the weight's output channel and the BatchNorm the one that normalises the layer's output: in
eval mode a BatchNorm multiplies channel ``c`` by that factor, so it is the weight's size in the
normalised output, which plain magnitude compares across channels as if every factor were 1 (in
trained generators they spread 2-3x within a layer). Layers with no such BatchNorm rank by magnitude.

Which BatchNorm normalises a layer is read off one forward pass when the model says its per-sample
input (``input_shape``, as every user network does, docs/custom_networks.md; ``num_classes`` adds
labels): a BatchNorm with running statistics over as many channels whose input is the layer's output
tensor itself, not changed in place since (an in-place ReLU between them does change it). That holds
however ``__init__`` registers the modules (convolutions in one ``ModuleList``, BatchNorms in another).
A model that does not say its input, or whose forward fails on a random one, falls back to the order of
registration: the module registered right after the layer (its own submodules, such as a spectral-norm
parametrization, skipped), which is how the built-in architectures are written. Either way a wrong
match would change the ranking, never the masks' validity.
"""
from __future__ import annotations

import weakref

import torch
from torch import nn

from ..registry import unknown_choice
from .layers import CONV_TRANSPOSE, Geometry, is_prunable, module_geometry
from .recalibrate import has_running_stats

IMPORTANCES = ("magnitude", "bn-scaled")


def check_importance(name: object) -> str:
    if name not in IMPORTANCES:
        raise unknown_choice("importance (--importance)", name, IMPORTANCES)
    return str(name)


def following_norms(model: nn.Module, input_shape: tuple[int, ...] | None = None
                    ) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """{prunable module name: the BatchNorm that normalises its output} (see the module doc); ``input_shape``
    (per sample, as ``forward`` takes it) defaults to the model's own ``input_shape`` attribute."""
    if not any(has_running_stats(m) for m in model.modules()):
        return {}
    shape = input_shape or getattr(model, "input_shape", None)
    traced = _traced_norms(model, tuple(shape)) if _is_shape(shape) else None
    return traced if traced is not None else registered_norms(model)


def _is_shape(value: object) -> bool:
    return isinstance(value, (tuple, list, torch.Size)) and len(value) > 0 and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


def registered_norms(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """The fallback rule: each prunable layer's BatchNorm is the leaf module registered right after it."""
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
        if pending is not None and has_running_stats(module) and module.num_features == pending[1]:
            found[pending[0]] = module
        pending = None
    return found


# model -> (its modules' identities, {layer name: norm name}): the trainer re-ranks every mask update, and one
# forward pass per model is enough while its modules stay the same objects
_TRACED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _traced_norms(model: nn.Module, shape: tuple[int, ...]) -> dict[str, nn.modules.batchnorm._BatchNorm] | None:
    """Which BatchNorm reads each prunable layer's output unchanged, on one forward pass of a random input
    (every module's train/eval mode restored, nothing updated); None when the forward pass fails."""
    modules = dict(model.named_modules())
    identity = tuple(id(m) for m in modules.values())
    cached = _TRACED.get(model)
    if cached is None or cached[0] != identity:
        names = _trace_norm_names(model, modules, shape)
        if names is None:
            return None
        cached = (identity, names)
        _TRACED[model] = cached
    return {layer: modules[norm] for layer, norm in cached[1].items()}


def share_trace(source: nn.Module, copy: nn.Module) -> None:
    """Let ``copy`` (a deep copy of ``source``: the same module names) use the trace recorded for ``source``, so
    ranking a fresh copy at every mask update (an accelerator's model is ranked on the CPU) does not trace again."""
    cached = _TRACED.get(source)
    if cached is not None:
        _TRACED[copy] = (tuple(id(m) for _, m in copy.named_modules()), cached[1])


def _trace_norm_names(model: nn.Module, modules: dict[str, nn.Module], shape: tuple[int, ...]) -> dict[str, str] | None:
    names = {m: n for n, m in modules.items()}
    made: dict[int, tuple[str, torch.Tensor, int]] = {}  # id(output) -> (layer, the output kept alive, its version)
    found: dict[str, str] = {}

    def after_layer(module: nn.Module, _args, out) -> None:
        if isinstance(out, torch.Tensor):
            made[id(out)] = (names[module], out, out._version)

    def before_norm(module: nn.Module, args) -> None:
        x = args[0] if args else None
        hit = made.get(id(x)) if isinstance(x, torch.Tensor) else None
        if hit is not None and hit[1] is x and x._version == hit[2] \
                and module.num_features == module_geometry(modules[hit[0]]).out:
            found.setdefault(hit[0], names[module])

    hooks = [m.register_forward_hook(after_layer) for m in modules.values() if is_prunable(m)]
    hooks += [m.register_forward_pre_hook(before_norm) for m in modules.values() if has_running_stats(m)]
    modes = [(m, m.training) for m in modules.values()]
    try:
        model.eval()
        with torch.no_grad():
            model(*_random_input(model, shape))
    except Exception:  # noqa: BLE001 - the user's forward on an input it may not take: use the fallback rule
        return None
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return found


def _random_input(model: nn.Module, shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """One random sample of ``shape`` on the model's device and dtype, and a label 0 when it is class-conditional."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)
    if getattr(model, "num_classes", None):
        return x, torch.zeros(1, dtype=torch.long, device=device)
    return (x,)


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
