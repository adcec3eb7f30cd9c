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

from ..errors import InputError, NetworkMismatch
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

    def input_shape_of(self, kwargs: Mapping[str, Any]) -> tuple[int, ...]:
        """``input_shape`` of ``kwargs`` completed by ``default_kwargs`` (what ``build`` falls back to)."""
        return self._shape(self.input_shape, kwargs, "input")

    def output_shape_of(self, kwargs: Mapping[str, Any]) -> tuple[int, ...]:
        """``output_shape`` of ``kwargs`` completed by ``default_kwargs``."""
        return self._shape(self.output_shape, kwargs, "output")

    def _shape(self, shape: Callable[[dict[str, Any]], tuple[int, ...]], kwargs: Mapping[str, Any], what: str):
        try:
            return tuple(shape({**self.default_kwargs, **kwargs}))
        except KeyError as exc:
            raise InputError(f"the recorded kwargs of architecture {self.name!r} lack {exc.args[0]!r}, so its {what} "
                             f"shape is unknown; re-save the checkpoint with complete --arch-kwargs") from None


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def register_architecture(arch: Architecture) -> Architecture:
    ARCHITECTURES.add(arch.name, arch)
    return arch


def parse_spec(text: Any, source: str, key: str = "g_arch") -> ArchSpec:
    """The :class:`ArchSpec` recorded under ``key`` in a file's metadata; anything else is an :class:`InputError`."""
    if text is None:
        raise InputError(f"{source}: the architecture metadata ({key}) is missing; re-create the file with gancompress")
    try:
        data = json.loads(text) if isinstance(text, str) else text
    except (json.JSONDecodeError, TypeError, RecursionError):
        raise InputError(f"{source}: the architecture metadata ({key}) is not JSON; re-create the file") from None
    if not (isinstance(data, dict) and isinstance(data.get("name"), str) and data["name"]
            and isinstance(data.get("kwargs", {}), dict)):
        raise InputError(f'{source}: the architecture metadata ({key}) is not {{"name": ..., "kwargs": {{...}}}}; '
                         "re-create the file")
    if data["name"] not in ARCHITECTURES and not data["name"].startswith("shrunk:"):
        raise InputError(f"{source}: unknown architecture {data['name']!r} in {key}; "
                         f"this gancompress knows {', '.join(ARCHITECTURES.names())}")
    return ArchSpec(data["name"], dict(data.get("kwargs", {})))


_BAD_KWARGS = (TypeError, ValueError, OverflowError, RuntimeError, MemoryError, IndexError, KeyError, ZeroDivisionError,
               AttributeError, NotImplementedError)


def build(spec: ArchSpec, *, device: str | torch.device | None = None) -> nn.Module:
    """The module of ``spec`` (on ``device``; ``"meta"`` costs no memory). Bad kwargs: :class:`InputError`."""
    arch = ARCHITECTURES.get(spec.name)
    try:
        if device is None:
            return arch.build(**spec.kwargs)
        with torch.device(device):
            return arch.build(**spec.kwargs)
    except InputError:
        raise
    except _BAD_KWARGS as exc:
        raise InputError(f"cannot build {spec.name} from {spec.kwargs}: {type(exc).__name__}: {exc}") from None


def build_loaded(spec: ArchSpec, state_dict: StateDict, what: str) -> nn.Module:
    """Build ``spec`` and load ``state_dict`` strictly. The kwargs (a file may declare anything) are first
    checked against the tensors' own keys, shapes and dtypes on the meta device, so a spec that disagrees
    with the bytes behind it never allocates a network."""
    try:
        skeleton = build(spec, device="meta")
    except InputError:
        if spec.name != "custom":  # the user's own constructor may not support meta tensors: build it for real
            raise
        skeleton = None
    if skeleton is None:
        return load_into(build(spec), state_dict, what)
    check_fits(skeleton, state_dict, what)
    return _assigned(skeleton, state_dict) or load_into(build(spec), state_dict, what)


def _assigned(skeleton: nn.Module, state_dict: StateDict) -> nn.Module | None:
    """The meta-device ``skeleton`` holding the state dict's tensors themselves (cast where the network's dtype
    differs), so loading costs no second copy and no random initialisation; None when the module keeps state
    the dict does not hold (a non-persistent buffer would stay on the meta device)."""
    expected = skeleton.state_dict()
    tensors = {k: v if v.dtype == expected[k].dtype else v.to(expected[k].dtype) for k, v in state_dict.items()}
    skeleton.load_state_dict(tensors, strict=True, assign=True)
    if any(t.is_meta for t in (*skeleton.parameters(), *skeleton.buffers())):
        return None
    return skeleton


@torch.no_grad()
def meta_forward(module: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor | None:
    """``module`` applied to one zero sample with every parameter and buffer stood in for by a meta tensor: the
    output's shape (and the FLOPs a counter sees) without reading the weights or allocating activations; None
    when the forward cannot run on the meta device (data-dependent branches, tensors made on the CPU)."""
    from torch.func import functional_call

    state = {k: torch.empty_like(v, device="meta") for k, v in (*module.named_parameters(), *module.named_buffers())}
    try:
        return functional_call(module, state, (torch.zeros(1, *input_shape, device="meta"),))
    except Exception:  # noqa: BLE001 - any failure means: run it for real
        return None


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


def check_fits(module: nn.Module, state_dict: StateDict, what: str = "network") -> None:
    """Same keys and shapes, and no integer or boolean tensor where the network holds floating point
    (an int8 checkpoint is never silently cast)."""
    missing, unexpected, wrong = shape_mismatches(module, state_dict)
    if missing or unexpected or wrong:
        raise NetworkMismatch(
            f"the checkpoint does not fit the {what}: {describe_mismatch(missing, unexpected, wrong)}"
        )
    for key, target in module.state_dict().items():
        given = state_dict.get(key)
        if given is not None and target.is_floating_point() and (not given.is_floating_point() or given.is_complex()):
            raise InputError(
                f"the {what}'s tensor {key} is {str(given.dtype).removeprefix('torch.')} but the network holds "
                f"{str(target.dtype).removeprefix('torch.')}; gancompress does not dequantize integer checkpoints: "
                "convert the weights to floating point first"
            )


def load_into(module: nn.Module, state_dict: StateDict, what: str = "network") -> nn.Module:
    """Load as ``module.load_state_dict(strict=True)`` does, with a readable key/shape/dtype diff on failure."""
    check_fits(module, state_dict, what)
    try:
        module.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        detail = describe_mismatch(*shape_mismatches(module, state_dict)) or str(exc).splitlines()[0]
        raise NetworkMismatch(f"the checkpoint does not fit the {what}: {detail}") from None
    return module


def build_detected(spec: ArchSpec, state_dict: StateDict, role: str) -> nn.Module:
    """A detected ``spec`` built, with ``state_dict`` (normalised for its layout) loaded strictly, in eval mode."""
    arch = ARCHITECTURES.get(spec.name)
    return build_loaded(spec, prepare(arch, state_dict), f"{role} {spec.name}").eval()
