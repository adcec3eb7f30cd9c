"""What the tool knows about a network family: how to recognise, build and feed it.

State dicts do not say which network they belong to. Each registered
:class:`Architecture` can ``infer`` its constructor keyword arguments from key names and
shapes (returning ``None`` when the state dict is not one of its own) and ``build`` the
module from them. :func:`detect` confirms a guess the way PyTorch would use it: the
candidate is built on the meta device (no memory for a wrong guess), loaded with
``load_state_dict(strict=True)`` and run once at its plausible input size; only a candidate
whose output has the expected shape is accepted (:mod:`gancompress.archs.detection`).
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
    native resolution). Outputs are images in ``output_range`` (``(-1, 1)`` unless declared),
    of shape ``output_shape(kwargs)`` per sample for an input of ``input_shape(kwargs)``.
    Discriminators say whether they return logits or probabilities (``d_output``) and, for
    conditional ones (pix2pix), that they take ``concat(input, output)``; ``probe_shape(kwargs)``
    is an input size they accept, used to confirm a detection by running them.
    ``detectable`` is False for names that are never guessed from a state dict (``custom``).
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
    output_range: tuple[float, float] = (-1.0, 1.0)
    output_shape: Callable[[dict[str, Any]], tuple[int, ...]] | None = None
    probe_shape: Callable[[dict[str, Any]], tuple[int, ...]] | None = None
    detectable: bool = True


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
    """(missing, unexpected, wrong-shape) keys of ``state_dict`` against ``module``.

    A missing BatchNorm ``num_batches_tracked`` is not counted: PyTorch's own loader fills
    it in for checkpoints written before it existed, and so do we.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith(TOLERATED_MISSING)]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    return missing, unexpected, wrong


TOLERATED_MISSING = ".num_batches_tracked"


def describe_mismatch(missing: list[str], unexpected: list[str], wrong: list[str], limit: int = 5) -> str:
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
            parts.append(f"{label}: {', '.join(keys[:limit])}{more}")
    return "; ".join(parts)


def load_into(module: nn.Module, state_dict: StateDict, what: str = "network") -> nn.Module:
    """Load as ``module.load_state_dict(strict=True)`` does, with a readable key/shape diff on failure."""
    try:
        module.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        detail = describe_mismatch(*shape_mismatches(module, state_dict)) or str(exc).splitlines()[0]
        raise InputError(f"the checkpoint does not fit the {what}: {detail}") from None
    return module


def build_detected(spec: ArchSpec, state_dict: StateDict, role: str) -> nn.Module:
    """A detected ``spec`` built, with ``state_dict`` (normalised for its layout) loaded strictly, in eval mode."""
    arch = ARCHITECTURES.get(spec.name)
    return load_into(build(spec), prepare(arch, state_dict), f"{role} {spec.name}").eval()
