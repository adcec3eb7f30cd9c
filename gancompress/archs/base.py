"""What the tool knows about a network family: how to recognise, build and feed it.

State dicts do not say which network they belong to. Each registered
:class:`Architecture` can ``infer`` its constructor keyword arguments from key names and
shapes (returning ``None`` when the state dict is not one of its own) and ``build`` the
module from them. :func:`detect` tries every architecture of a role and verifies the match
strictly (same keys, same shapes) by building the candidate.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

import torch
from torch import nn

from ..errors import InputError
from ..registry import Registry

Role = Literal["generator", "discriminator"]
StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class ArchSpec:
    """A built-in architecture name plus the keyword arguments that build it."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "kwargs": self.kwargs}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict) -> "ArchSpec":
        data = json.loads(text) if isinstance(text, str) else text
        return cls(name=data["name"], kwargs=dict(data.get("kwargs", {})))


@dataclass(frozen=True)
class Architecture:
    """One registered network family.

    ``infer(state_dict) -> kwargs | None``; ``build(**kwargs) -> nn.Module``.
    Generators say what they eat: ``input_kind`` is ``"noise"`` (a latent of
    ``input_shape(kwargs)`` per sample) or ``"image"`` (an image of that shape at the
    native resolution). Outputs are images in ``[-1, 1]``.
    Discriminators say whether they return logits or probabilities (``d_output``) and, for
    conditional ones (pix2pix), that they take ``concat(input, output)``.
    """

    name: str
    role: Role
    build: Callable[..., nn.Module]
    infer: Callable[[StateDict], dict[str, Any] | None]
    default_kwargs: dict[str, Any] = field(default_factory=dict)
    input_kind: Literal["noise", "image"] = "noise"
    input_shape: Callable[[dict[str, Any]], tuple[int, ...]] | None = None
    loss: str = "ns"
    d_output: Literal["logits", "probs"] = "logits"
    conditional: bool = False
    prepare_state_dict: Callable[[StateDict], dict[str, torch.Tensor]] | None = None
    description: str = ""


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def register_architecture(arch: Architecture) -> Architecture:
    ARCHITECTURES.add(arch.name, arch)
    return arch


def build(spec: ArchSpec) -> nn.Module:
    arch = ARCHITECTURES.get(spec.name)
    try:
        return arch.build(**spec.kwargs)
    except TypeError as exc:
        raise InputError(f"cannot build {spec.name} from {spec.kwargs}: {exc}") from None


def prepare(arch: Architecture, state_dict: StateDict) -> dict[str, torch.Tensor]:
    if arch.prepare_state_dict is None:
        return dict(state_dict)
    return arch.prepare_state_dict(state_dict)


def shape_mismatches(module: nn.Module, state_dict: StateDict) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, wrong-shape) keys of ``state_dict`` against ``module``."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    return missing, unexpected, wrong


def describe_mismatch(missing: list[str], unexpected: list[str], wrong: list[str], limit: int = 5) -> str:
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
            parts.append(f"{label}: {', '.join(keys[:limit])}{more}")
    return "; ".join(parts)


def matches(arch: Architecture, state_dict: StateDict) -> ArchSpec | None:
    """The spec of ``arch`` that loads ``state_dict`` strictly, or None."""
    try:
        kwargs = arch.infer(state_dict)
    except (KeyError, IndexError, ValueError, TypeError):
        return None
    if kwargs is None:
        return None
    try:
        module = arch.build(**kwargs)
    except Exception:  # a wrong guess may build nothing sensible
        return None
    missing, unexpected, wrong = shape_mismatches(module, prepare(arch, state_dict))
    if missing or unexpected or wrong:
        return None
    return ArchSpec(arch.name, kwargs)


def _closeness(arch: Architecture, keys: set[str]) -> float:
    try:
        with torch.device("meta"):  # shapes only: no memory for big default models
            expected = set(arch.build(**arch.default_kwargs).state_dict())
    except Exception:
        return 0.0
    return len(expected & keys) / max(1, len(expected | keys))


def detect(state_dict: StateDict, role: Role | None = None) -> ArchSpec:
    """Find the built-in architecture that loads ``state_dict`` exactly.

    Raises :class:`InputError` naming the closest candidates when none does.
    """
    candidates = [a for _, a in ARCHITECTURES.items() if role is None or a.role == role]
    for arch in candidates:
        spec = matches(arch, state_dict)
        if spec is not None:
            return spec
    keys = set(state_dict)
    ranked = sorted(candidates, key=lambda a: _closeness(a, keys), reverse=True)[:3]
    close = ", ".join(f"{a.name} ({_closeness(a, keys):.0%} of keys shared)" for a in ranked)
    what = role or "network"
    raise InputError(
        f"the {what} state dict ({len(keys)} keys) matches no built-in architecture; "
        f"closest: {close}. Pass --arch module:Callable (and --arch-kwargs JSON) for your own network"
    )


def load_into(module: nn.Module, state_dict: StateDict, what: str = "network") -> nn.Module:
    """Load strictly, reporting a readable key/shape diff instead of a traceback."""
    missing, unexpected, wrong = shape_mismatches(module, state_dict)
    if missing or unexpected or wrong:
        raise InputError(
            f"the checkpoint does not fit the {what}: {describe_mismatch(missing, unexpected, wrong)}"
        )
    module.load_state_dict(dict(state_dict), strict=True)
    return module
