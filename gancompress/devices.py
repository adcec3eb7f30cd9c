"""Devices and GPU speed settings shared by fine-tuning and evaluation.

``--device``: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``/``cuda:N`` or ``mps``
(Apple silicon), each checked to exist here. ``--amp``: ``none``, ``bf16`` or ``fp16`` autocast
(fp16 with a ``torch.amp.GradScaler``, for GPUs without bf16). ``--channels-last`` stores
activations NHWC; ``--compile`` wraps networks in ``torch.compile`` and falls back to eager
execution, with one note, when compiling fails. TF32 matmuls are turned on for CUDA runs.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Callable, ContextManager, Iterable, Iterator

import torch
from torch import nn

from .errors import InputError

AMP_MODES = ("none", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda[:N]`` and ``mps`` must exist here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: no CUDA device is available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise InputError(f"--device {name}: Apple's Metal (MPS) backend is not available here (it needs macOS "
                             "on Apple silicon and a torch built with MPS); use --device cpu")
    elif device.type != "cpu":
        raise InputError(f"--device {name}: unsupported device type {device.type!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def check_amp(mode: str) -> str:
    if mode not in AMP_MODES:
        raise InputError(f"--amp {mode!r}: choose one of {', '.join(AMP_MODES)}")
    return mode


def autocast(mode: str, device: torch.device) -> Callable[[], ContextManager]:
    """A factory of autocast contexts for ``mode`` on ``device`` (a no-op for ``none``)."""
    if check_amp(mode) == "none":
        return nullcontext
    return partial(torch.autocast, device_type=device.type, dtype=_DTYPES[mode])


@contextmanager
def autocast_forward(modules: Iterable[nn.Module], mode: str, device: torch.device) -> Iterator[None]:
    """Run each module's ``forward`` under ``mode`` autocast, tensor outputs back in float32 (``evaluate
    --amp``: generation only; metric extractors and the modules' structure are untouched)."""
    run_in = autocast(mode, device)
    patched = []
    if mode != "none":
        for module in dict.fromkeys(m for m in modules if m is not None):
            own = module.__dict__.get("forward")
            original = module.forward

            def forward(*args, _original=original, **kwargs):
                with run_in():
                    out = _original(*args, **kwargs)
                return out.float() if torch.is_tensor(out) else out

            module.forward = forward
            patched.append((module, own))
    try:
        yield
    finally:
        for module, own in patched:
            if own is None:
                del module.forward
            else:
                module.forward = own


def grad_scaler(mode: str, device: torch.device):
    """A ``torch.amp.GradScaler`` for fp16 (gradients that would underflow are scaled up), else None."""
    return torch.amp.GradScaler(device.type) if check_amp(mode) == "fp16" else None


def enable_tf32(device: torch.device) -> None:
    """TF32 matmuls and convolutions on CUDA (Ampere and newer; ignored by older GPUs)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


class CompiledOrEager(nn.Module):
    """``torch.compile(module)``, or ``module`` itself from the first call on which compiling fails.

    The wrapped module is the same object (its parameters and state dict are shared); ``notes``
    gets one line when the fallback happens.
    """

    def __init__(self, module: nn.Module, name: str, notes: list[str]) -> None:
        super().__init__()
        self.module, self.name, self.notes = module, name, notes
        try:
            self.compiled = torch.compile(module)
        except Exception as exc:  # noqa: BLE001 - any failure means: run eagerly
            self._fallback(exc)

    def _fallback(self, exc: BaseException) -> None:
        self.compiled = None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        self.notes.append(f"--compile: torch.compile failed for {self.name} ({type(exc).__name__}: {first}); "
                          "running it eagerly")

    def forward(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                self._fallback(exc)
        return self.module(*args, **kwargs)


def maybe_compile(module: nn.Module | None, name: str, enabled: bool, notes: list[str]) -> nn.Module | None:
    return CompiledOrEager(module, name, notes) if enabled and module is not None else module


def to_channels_last(module: nn.Module | None, enabled: bool) -> nn.Module | None:
    return module.to(memory_format=torch.channels_last) if enabled and module is not None else module


def batch_channels_last(x: torch.Tensor | None, enabled: bool) -> torch.Tensor | None:
    return x.contiguous(memory_format=torch.channels_last) if enabled and x is not None and x.dim() == 4 else x


def cpu_copy(model: nn.Module) -> nn.Module:
    """An independent copy of ``model`` on the CPU, made without a second copy of its weights on their device:
    every parameter and buffer is copied straight to the CPU and handed to ``copy.deepcopy`` through its memo,
    so only the module objects are deep-copied (a plain ``deepcopy(model).cpu()`` of a GPU model first doubles
    its GPU memory). Shared (tied) tensors stay shared; ``requires_grad`` is kept."""
    memo: dict[int, torch.Tensor] = {}
    for tensor in (*model.parameters(), *model.buffers()):
        if id(tensor) in memo:
            continue
        moved = tensor.detach().to("cpu", copy=True)
        memo[id(tensor)] = nn.Parameter(moved, requires_grad=tensor.requires_grad) \
            if isinstance(tensor, nn.Parameter) else moved
    return copy.deepcopy(model, memo)
