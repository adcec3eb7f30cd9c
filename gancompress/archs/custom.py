"""User-supplied architectures: ``--arch module:Callable`` with ``--arch-kwargs JSON``.

Importing a user's module runs its code, so a saved checkpoint that names one is only
rebuilt when the user passes the same ``--arch`` again (see :mod:`gancompress.loading`).
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import InputError, UserCodeError, note_user_code
from .base import Architecture, register_architecture


_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def check_arch_target(target: str, option: str = "--arch") -> tuple[str, str]:
    """``module.path:Callable`` split in two; a path, an empty part or a bad name is an :class:`InputError`."""
    if not isinstance(target, str):
        raise InputError(f"{option} {target!r} must be a string like mynets:Generator")
    module_name, _, attr = target.partition(":")
    if ("/" in target or "\\" in target or module_name.endswith(".py")) and target.count(":") <= 2:
        raise InputError(f"{option} {target!r}: give a module name, not a file path: run from the folder that holds "
                         f"mynets.py (or put it on PYTHONPATH) and pass {option} mynets:Generator")
    if target.count(":") != 1 or not _NAME.match(module_name) or not _NAME.match(attr):
        raise InputError(f"{option} {target!r} must look like module.path:Callable (e.g. mynets:Generator), "
                         "both parts Python names")
    return module_name, attr


def _import_user_module(target: str, module_name: str):
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise InputError(f"--arch {target}: cannot import {module_name} (no such module); run from its folder or add it to PYTHONPATH")
    note_user_code(spec.origin)
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - importing runs the user's code; any failure is theirs
        raise UserCodeError(f"--arch {target}: importing {module_name} failed: {type(exc).__name__}: "
                            f"{_first_line(exc)}; fix that module") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def import_callable(target: str):
    module_name, attr = check_arch_target(target)
    obj = _import_user_module(target, module_name)
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
        raise UserCodeError(f"--arch {target}: cannot build it with --arch-kwargs {kwargs or {}} ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - the user's constructor failed: report it as theirs
        raise UserCodeError(f"--arch {target}: your constructor raised {type(exc).__name__}: {_first_line(exc)}; "
                            "fix it or check --arch-kwargs") from exc
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
