"""What the tool reads from a user's own network (``--arch`` / ``--d-arch``): the contract.

A built-in architecture says what its generator eats and makes; a user's module says it
with attributes, on the class or the instance, or with keys of ``--arch-kwargs`` that the
constructor does not take (docs/custom_networks.md is the user-facing version):

generator
  ``input_shape``   per-sample input shape, e.g. ``(100,)`` or ``(100, 1, 1)`` or ``(3, 64, 64)``; required
  ``input_kind``    ``"noise"`` (default) or ``"image"``
  ``output_range``  ``(-1, 1)`` (default) or ``(0, 1)``
  ``output_shape``  ``(C, H, W)``: reshape a flat output (MLP generators); default: the output as it is
  ``num_classes``   an int: the generator is class-conditional, ``forward(z, labels)``
discriminator
  ``d_output``      ``"logits"`` (default) or ``"probs"`` (ends in a sigmoid)
  ``num_classes``   an int: the discriminator is class-conditional, ``forward(x, labels)``

:func:`apply_contract` checks every declared value once and stores it on the instance, so
the rest of the tool reads plain attributes from the module.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import torch
from torch import nn

from ..errors import InputError

GENERATOR_KEYS = ("input_shape", "input_kind", "output_range", "output_shape", "num_classes")
DISCRIMINATOR_KEYS = ("d_output", "num_classes")
CONTRACT_KEYS = tuple(dict.fromkeys(GENERATOR_KEYS + DISCRIMINATOR_KEYS))
INPUT_KINDS = ("noise", "image")
OUTPUT_RANGES = ((-1.0, 1.0), (0.0, 1.0))
D_OUTPUTS = ("logits", "probs")
DOC = "docs/custom_networks.md"


def split_kwargs(factory: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(constructor kwargs, contract values): a contract key goes to the constructor only when it names one
    of its parameters (or the constructor takes ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    contract = {k: v for k, v in kwargs.items() if k in CONTRACT_KEYS}
    build = {k: v for k, v in kwargs.items() if k not in contract or takes_any or k in params}
    return build, contract


def _shape(value: Any, name: str, where: str) -> tuple[int, ...]:
    if isinstance(value, torch.Size):
        value = tuple(value)
    if not isinstance(value, (tuple, list)) or not value or not all(isinstance(v, int) and not isinstance(v, bool)
                                                                     and v > 0 for v in value):
        raise InputError(f"{where}: {name} must be a tuple of positive ints (per sample, no batch dimension), got {value!r}")
    return tuple(value)


def _check(name: str, value: Any, where: str) -> Any:
    if name in ("input_shape", "output_shape"):
        return _shape(value, name, where)
    if name == "input_kind" and value not in INPUT_KINDS:
        raise InputError(f"{where}: input_kind must be one of {', '.join(INPUT_KINDS)}, got {value!r}")
    if name == "d_output" and value not in D_OUTPUTS:
        raise InputError(f"{where}: d_output must be 'logits' or 'probs' (ends in a sigmoid), got {value!r}")
    if name == "num_classes" and value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
        raise InputError(f"{where}: num_classes must be an int of at least 2 (or None: not conditional), got {value!r}")
    if name == "output_range":
        try:
            pair = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            pair = ()
        if pair not in OUTPUT_RANGES:
            raise InputError(f"{where}: output_range must be (-1, 1) or (0, 1), got {value!r}")
        return pair
    return value


def apply_contract(module: nn.Module, contract: dict[str, Any], role: str, where: str) -> nn.Module:
    """Check the contract values (``contract`` wins over the module's own attributes) and store them on
    the instance; a flat generator output is reshaped to ``output_shape`` by a forward hook."""
    keys = GENERATOR_KEYS if role == "generator" else DISCRIMINATOR_KEYS
    for name in keys:
        value = contract[name] if name in contract else getattr(module, name, None)
        if value is not None:
            _store(module, name, _check(name, value, where))
    if role == "generator" and getattr(module, "output_shape", None) is not None \
            and reshape_output not in module._forward_hooks.values():  # a copy of a module keeps its hooks
        module.register_forward_hook(reshape_output)
    if role == "generator" and getattr(module, "num_classes", None) \
            and unpack_labels not in module._forward_pre_hooks.values():
        required(module, "input_shape", where)
        module.register_forward_pre_hook(unpack_labels)
    return module


def unpack_labels(module: nn.Module, args: tuple) -> tuple | None:
    """Forward pre-hook of a class-conditional generator: one packed input ``(N, prod(input_shape) + 1)``
    (the latent, flattened, then the class label) is called as ``forward(z, labels)``. The tool passes
    packed inputs so the dense teacher and the student always get the same latents AND labels; calls
    with ``(z, labels)`` pass through. A ``None`` for the labels (a tracer filling in a default
    ``labels=None``) counts as not given."""
    if len(args) == 2 and args[1] is None:
        args = args[:1]
    if len(args) != 1:
        return None
    x, shape = args[0], tuple(module.input_shape)
    n = math.prod(shape)
    if x.dim() != 2 or x.shape[1] != n + 1:
        return None
    return x[:, :n].reshape(x.shape[0], *shape), x[:, n].round().long()


def _store(module: nn.Module, name: str, value: Any) -> None:
    try:
        setattr(module, name, value)
    except AttributeError:  # a read-only property: the class already answers
        pass


def reshape_output(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: a flat ``(N, C*H*W)`` output becomes ``(N, *module.output_shape)``."""
    shape = module.output_shape
    if output.dim() == 2 and output.shape[1] == int(torch.tensor(shape).prod()):
        return output.reshape(output.shape[0], *shape)
    return output


def required(module: nn.Module, name: str, where: str) -> Any:
    """A contract attribute the tool cannot guess: one error naming it and where to declare it."""
    value = getattr(module, name, None)
    if value is None:
        raise InputError(f"{where} does not say its {name}: give the class or instance an attribute `{name}`, or pass "
                         f"it in --arch-kwargs (e.g. '{{\"{name}\": {_EXAMPLES.get(name, '...')}}}'); see {DOC}")
    return value


_EXAMPLES = {"input_shape": "[100]", "output_shape": "[1, 28, 28]", "num_classes": "10"}


def num_classes(module: nn.Module | None) -> int | None:
    return getattr(module, "num_classes", None) if module is not None else None


def d_output(module: nn.Module | None, default: str = "logits") -> str:
    value = getattr(module, "d_output", None) if module is not None else None
    return value if value in D_OUTPUTS else default


def declared(module: nn.Module, role: str = "generator") -> dict[str, Any]:
    """The contract values ``module`` declares, JSON-ready (recorded with a shrunk export so the
    rebuilt network keeps its input kind, output range and output reshape without the user's code)."""
    keys = GENERATOR_KEYS if role == "generator" else DISCRIMINATOR_KEYS
    out = {}
    for name in keys:
        value = getattr(module, name, None)
        if value is not None:
            out[name] = list(value) if isinstance(value, (tuple, list, torch.Size)) else value
    return out
