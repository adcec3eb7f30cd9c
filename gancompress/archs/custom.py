"""User-supplied architectures: ``--arch module:Callable`` with ``--arch-kwargs JSON`` (``--d-arch`` for D).

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

OPTION = {"generator": "--arch", "discriminator": "--d-arch"}
_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_USER_FILES: dict[str, str] = {}  # source file of an imported user module -> the target that named it


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


def import_callable(target: str, option: str = "--arch"):
    """The callable ``module.path:Name`` names; importing the module runs its code."""
    module_name, attr = check_arch_target(target, option)
    module = _import(module_name, target, option)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n)))
            raise InputError(f"{option} {target}: module {module_name} has no attribute {attr} "
                             f"(it defines: {', '.join(names[:12]) or 'nothing callable'})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(f"{option} {target}: {attr} in module {module_name} is not callable")
    return obj


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _import(module_name: str, target: str, option: str):
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    if module_name in sys.modules:  # already imported (the running script's __main__, a module of the caller's)
        return _noted(sys.modules[module_name], module_name, target)
    try:
        spec = importlib.util.find_spec(module_name)
    except ModuleNotFoundError:
        spec = None
    except Exception as exc:  # noqa: BLE001 - a parent package's import ran the user's code
        raise UserCodeError(f"{option} {target}: importing module {module_name} failed ({type(exc).__name__}: "
                            f"{_first_line(exc)}); fix that module") from exc
    if spec is None:
        raise InputError(f"{option} {target}: cannot import {module_name}: no module of that name on the path (run from "
                         "the folder that holds it, or add that folder to PYTHONPATH)")
    if not module_name.startswith("gancompress."):
        note_user_code(spec.origin)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - importing runs the user's code; any failure is theirs
        raise UserCodeError(f"{option} {target}: importing module {module_name} failed ({type(exc).__name__}: "
                            f"{_first_line(exc)}); fix that module") from exc
    return _noted(module, module_name, target)


def _noted(module, module_name: str, target: str):
    """``module``, its source file remembered as the user's code (the Python API's own live architecture is not)."""
    path = getattr(module, "__file__", None)
    if path and not module_name.startswith("gancompress."):
        note_user_code(path)
        _USER_FILES[str(Path(path).resolve())] = target
    return module


def build_custom(target: str, kwargs: dict[str, Any] | None = None, role: str = "generator") -> nn.Module:
    """Build ``target(**kwargs)``; contract keys it does not take become attributes (see ``contract``)."""
    from .contract import apply_contract, split_kwargs

    option = OPTION.get(role, "--arch")
    factory = import_callable(target, option)
    build_kwargs, contract = split_kwargs(factory, dict(kwargs or {}))
    try:
        module = factory(**build_kwargs)
    except TypeError as exc:
        if _raised_in_user_code(exc):
            raise UserCodeError(f"{option} {target}: your code failed while building it "
                                f"(TypeError: {exc}); check {option}-kwargs {build_kwargs}") from None
        raise InputError(f"{option} {target}: cannot build it with {option}-kwargs {build_kwargs} ({exc})") from None
    except Exception as exc:
        raise UserCodeError(f"{option} {target}: your code failed while building it ({type(exc).__name__}: {exc})") from None
    if not isinstance(module, nn.Module):
        raise InputError(f"{option} {target} returned {type(module).__name__}, not a torch.nn.Module")
    return apply_contract(module, contract, role, f"{option} {target}")


def _raised_in_user_code(exc: BaseException) -> str | None:
    """The target whose module raised ``exc`` (a frame of its traceback is in a user module), else None."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        name = str(Path(tb.tb_frame.f_code.co_filename).resolve()) if tb.tb_frame.f_code.co_filename else ""
        if name in _USER_FILES:
            found = f"{_USER_FILES[name]} ({Path(name).name}:{tb.tb_lineno})"
        tb = tb.tb_next
    return found


def user_code_error(exc: BaseException) -> UserCodeError | None:
    """``exc`` as the user's code failing, when it was raised inside a module named by --arch/--d-arch."""
    where = _raised_in_user_code(exc)
    if where is None:
        return None
    first = (str(exc).strip().splitlines() or [""])[0]
    return UserCodeError(f"your code {where} failed: {type(exc).__name__}: {first}. Check that it follows the "
                         "contract in docs/custom_networks.md (input_shape, num_classes, output_shape)")


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
