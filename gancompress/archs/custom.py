"""User-supplied architectures: ``--arch module:Callable`` with ``--arch-kwargs JSON``.

Importing a user's module runs its code, so a saved checkpoint that names one is only
rebuilt when the user passes the same ``--arch`` again (see :mod:`gancompress.loading`).
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import InputError
from .base import Architecture, register_architecture


def import_callable(target: str):
    if target.count(":") != 1 or not all(target.split(":")):
        raise InputError(f"--arch {target!r} must look like module.path:Callable (e.g. mynets:Generator)")
    module_name, attr = target.split(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"--arch {target}: cannot import {module_name} ({exc}); check PYTHONPATH") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"--arch {target}: {module_name} has no attribute {attr}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(f"--arch {target}: {attr} is not callable")
    return obj


def build_custom(target: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    factory = import_callable(target)
    try:
        module = factory(**(kwargs or {}))
    except TypeError as exc:
        raise InputError(f"--arch {target}: cannot build it with --arch-kwargs {kwargs or {}} ({exc})") from None
    if not isinstance(module, nn.Module):
        raise InputError(f"--arch {target} returned {type(module).__name__}, not a torch.nn.Module")
    return module


register_architecture(
    Architecture(
        name="custom",
        role="generator",
        build=build_custom,
        infer=lambda sd: None,  # never auto-detected
        input_kind="noise",
        detectable=False,
        description="your own network: --arch module:Callable --arch-kwargs JSON",
    )
)
