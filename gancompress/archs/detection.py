"""Which built-in architecture a state dict is, confirmed by using it; and why none fitted.

A state dict's key names and shapes can be shared by networks that are wired differently
(a 28 px DCGAN discriminator has the same keys as the 32 px one; only the strides differ).
:func:`try_architecture` therefore accepts a candidate only when, built on the meta device
(shapes without memory), it loads the state dict as ``load_state_dict(strict=True)`` does
and one forward pass at a plausible input gives an output of the expected shape: an image
of ``output_shape`` for a generator, one score (or a score map) per sample for a
discriminator, at the size its generator makes when that is known (:func:`discriminator_probes`).
:func:`detect` tries every detectable architecture of a role; when none fits, its message names
the layouts tried, the nearest miss and why (or that no key overlaps any), and what to do.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import InputError, NetworkMismatch
from .base import (ARCHITECTURES, Architecture, ArchSpec, Role, StateDict, describe_mismatch, prepare,
                   shape_mismatches)

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Trial:
    """What trying one architecture on a state dict gave: a spec, or why not."""

    arch: Architecture
    spec: ArchSpec | None = None
    output_shape: Shape | None = None
    reason: str = ""           # empty when the layout's keys were not its own at all
    inferred: bool = False     # infer() recognised the keys


def try_architecture(arch: Architecture, state_dict: StateDict, probe_inputs: list[Shape] | None = None) -> Trial:
    try:
        kwargs = arch.infer(state_dict)
    except Exception:  # noqa: BLE001 - keys that are not this layout's may break its reader anywhere
        kwargs = None
    if kwargs is None:
        return Trial(arch)
    module = _build_meta(arch, kwargs)
    if module is None:
        return Trial(arch, reason=f"its shapes give {kwargs}, which does not build", inferred=True)
    problem = _load_problem(module, prepare(arch, state_dict))
    if problem:
        return Trial(arch, reason=problem, inferred=True)
    inputs = probe_inputs or _own_inputs(arch, kwargs)
    if not inputs:
        return Trial(arch, ArchSpec(arch.name, kwargs), None, inferred=True)
    outcomes = [_run(arch, module, kwargs, shape) for shape in inputs]
    for out, problem in outcomes:
        if not problem:
            return Trial(arch, ArchSpec(arch.name, kwargs), out, inferred=True)
    return Trial(arch, reason=outcomes[0][1], inferred=True)


def _build_meta(arch: Architecture, kwargs: dict[str, Any]) -> nn.Module | None:
    try:
        with torch.device("meta"):
            return arch.build(**kwargs).eval()
    except Exception:  # noqa: BLE001 - a wrong guess may build nothing sensible
        return None


def _load_problem(module: nn.Module, state_dict: dict[str, torch.Tensor]) -> str:
    try:
        with warnings.catch_warnings():  # PyTorch fills an old BatchNorm's num_batches_tracked with a CPU 0
            warnings.simplefilter("ignore")
            module.load_state_dict({k: v.to("meta") for k, v in state_dict.items()}, strict=True)
    except RuntimeError as exc:
        detail = describe_mismatch(*shape_mismatches(module, state_dict), limit=3)
        return f"keys do not load ({detail or str(exc).splitlines()[0]})"
    return ""


def _own_inputs(arch: Architecture, kwargs: dict[str, Any]) -> list[Shape]:
    shape_of = arch.input_shape if arch.role == "generator" else arch.probe_shape
    return [tuple(shape_of(kwargs))] if shape_of is not None else []


@torch.no_grad()
def _run(arch: Architecture, module: nn.Module, kwargs: dict[str, Any], shape: Shape) -> tuple[Shape | None, str]:
    """(per-sample output shape, "") when ``module`` runs on ``shape`` as ``arch`` should, else (None, why)."""
    label = "x".join(map(str, shape))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = module(torch.zeros(1, *shape, device="meta"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not this network"
        return None, f"it does not run on {label} inputs ({str(exc).splitlines()[0][:120]})"
    if not isinstance(out, torch.Tensor):
        return None, f"it returns {type(out).__name__} on {label} inputs, not a tensor"
    if arch.role == "discriminator":
        return _score_problem(out, label)
    expected = arch.output_shape_of(kwargs) if arch.output_shape is not None else None
    got = tuple(out.shape[1:])
    if out.ndim != 4 or out.shape[0] != 1 or (expected is not None and got != expected):
        want = "x".join(map(str, expected)) if expected else "an image (C x H x W)"
        return None, f"on {label} inputs it gives {'x'.join(map(str, out.shape))}, not 1x{want}"
    return got, ""


def _score_problem(out: torch.Tensor, label: str) -> tuple[Shape | None, str]:
    """A discriminator gives one score or one score map per sample."""
    per_sample = tuple(out.shape[1:])
    if out.ndim >= 1 and out.shape[0] == 1 and (out.ndim == 1 or per_sample[0] == 1):
        return per_sample, ""
    return None, f"on one {label} image it gives {'x'.join(map(str, out.shape))}, not one score (map)"


def matches(arch: Architecture, state_dict: StateDict, probe_inputs: list[tuple[int, ...]] | None = None) -> ArchSpec | None:
    """The spec of ``arch`` that loads ``state_dict`` strictly and runs, or None."""
    return try_architecture(arch, state_dict, probe_inputs).spec


def detect(state_dict: StateDict, role: Role | None = None, probe_inputs: list[tuple[int, ...]] | None = None) -> ArchSpec:
    """Find the built-in architecture that loads ``state_dict`` exactly and runs as it should.

    ``probe_inputs`` (per-sample shapes) replace a discriminator's own probe size, e.g. the
    generator's output. Raises :class:`InputError` saying what was tried when none fits.
    """
    candidates = [a for _, a in ARCHITECTURES.items() if a.detectable and (role is None or a.role == role)]
    trials = []
    for arch in candidates:
        trial = try_architecture(arch, state_dict, probe_inputs)
        if trial.spec is not None:
            return trial.spec
        trials.append(trial)
    raise NetworkMismatch(no_match_message(state_dict, role, trials))


# --------------------------------------------------------------------------- the message


def _closeness(arch: Architecture, keys: set[str]) -> float:
    try:
        with torch.device("meta"):  # shapes only: no memory for big default models
            expected = set(arch.build(**arch.default_kwargs).state_dict())
    except Exception:  # noqa: BLE001
        return 0.0
    return len(expected & keys) / max(1, len(expected | keys))


def no_match_message(state_dict: StateDict, role: Role | None, trials: list[Trial]) -> str:
    """What was tried, the nearest miss (or that no key overlaps), and what to do."""
    keys = set(state_dict)
    what = role or "network"
    example = ", ".join(sorted(keys)[:2])
    head = (f"the {what} state dict ({len(keys)} keys, e.g. {example}) matches no built-in layout "
            f"(tried {', '.join(t.arch.name for t in trials)})")
    near = [t for t in trials if t.inferred]
    if near:
        detail = "; ".join(f"{t.arch.name}: {t.reason}" for t in near[:3])
    else:
        scored = sorted(((_closeness(t.arch, keys), t.arch.name) for t in trials), reverse=True)
        shared = [f"{name} ({score:.0%} of keys shared)" for score, name in scored[:3] if score > 0]
        detail = f"closest: {', '.join(shared)}" if shared else "none of its keys occur in any of them"
    return (f"{head}; {detail}. For your own network pass --arch module:Callable (and --arch-kwargs JSON); "
            "see docs/custom_networks.md")


# --------------------------------------------------------------------------- pairs


def discriminator_probes(g_in: Shape, g_out: Shape, input_kind: str) -> list[Shape]:
    """What a discriminator paired with this generator must judge: its output, or
    ``concat(input, output)`` for a conditional (pix2pix-style) one."""
    probes = [tuple(g_out)]
    if input_kind == "image" and len(g_in) == len(g_out) == 3 and tuple(g_in[1:]) == tuple(g_out[1:]):
        probes.append((g_in[0] + g_out[0], *g_out[1:]))
    return probes


@torch.no_grad()
def output_shape_of(module: nn.Module, input_shape: Shape) -> Shape | None:
    """Per-sample output shape of ``module`` on ``input_shape``, from a meta copy (no compute), or None."""
    try:
        meta = copy.deepcopy(module).to("meta").eval()
        out = meta(torch.zeros(1, *input_shape, device="meta"))
    except Exception:  # noqa: BLE001 - a user's module may not run on meta tensors
        return None
    return tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else None
