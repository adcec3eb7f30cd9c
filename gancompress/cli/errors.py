"""One place that turns exceptions into a one-line message and an exit code."""
from __future__ import annotations

import functools
import math
import os
import sys
from typing import Any, Callable

import typer

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as _click_errors

from ..errors import GanCompressError, InputError, from_user_code
from ..io_utils import input_scope


def debug_enabled() -> bool:
    return os.environ.get("GANCOMPRESS_DEBUG", "") not in ("", "0")


def _fail(message: str, code: int) -> None:
    raise typer.Exit(_report(message, code))


def _option_name(func: Callable[..., Any], name: str) -> str:
    """The long option a parameter of ``func`` is spelled as (from its ``Annotated`` typer metadata)."""
    hint = getattr(func, "__annotations__", {}).get(name)
    try:
        hint = eval(hint, getattr(func, "__globals__", {})) if isinstance(hint, str) else hint  # noqa: S307 - our own annotations
    except Exception:  # noqa: BLE001 - only for a nicer message
        hint = None
    for meta in getattr(hint, "__metadata__", ()):
        decls = (getattr(meta, "default", None), *(getattr(meta, "param_decls", None) or ()))  # Annotated: default holds the first
        longs = [d for d in decls if isinstance(d, str) and d.startswith("--")]
        if longs:
            return longs[0]
    return "--" + name.replace("_", "-")


def refuse_non_finite(func: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Every float option (``--lr-g inf``, ``--max-fid nan``, ...) must be finite: refused before any work."""
    for name, value in kwargs.items():
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, float) and not math.isfinite(v):
                raise InputError(f"{_option_name(func, name)} {v}: give a finite number")


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command: project errors -> ``error: ...`` + exit code; others -> exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            refuse_non_finite(func, kwargs)
            with input_scope():  # files the command reads can never be its outputs
                return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except GanCompressError as exc:
            if debug_enabled():
                raise
            _fail(str(exc), exc.exit_code)
        except BrokenPipeError:
            sys.stderr.write("error: the reading end of the pipe closed before all output was written\n")
            os._exit(1)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - last line of defence for users
            if debug_enabled():
                raise
            user = from_user_code(exc)
            if user is not None:
                _fail(str(user), user.exit_code)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            _fail(f"internal error ({type(exc).__name__}: {first}); rerun with --debug for the traceback and report it", 1)

    return wrapper


def usage_message(exc: Exception) -> str:
    """Click's usage errors in the project's wording: one line, and where to read the options."""
    if isinstance(exc, _click_errors.NoSuchOption):
        hint = f" (did you mean {' or '.join(exc.possibilities)}?)" if exc.possibilities else ""
        text = f"unknown option {exc.option_name}{hint}"
    else:
        text = " ".join(exc.format_message().split()).rstrip(".")
        text = ": ".join(part[:1].lower() + part[1:] for part in text.split(": "))
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, _click_errors.UsageError) and ctx is not None:
        text += f"; see '{ctx.command_path} --help'"
    return text


def run_main(main: Callable[..., Any], standalone_mode: bool, *args: Any, **kwargs: Any) -> Any:
    """Run click's ``main`` so that usage errors, like every other error, print ``error: ...`` (no box)."""
    try:
        code = main(*args, standalone_mode=False, **kwargs)
    except getattr(_click_errors, "NoArgsIsHelpError", ()) as exc:
        if not standalone_mode:
            raise
        exc.show()
        code = exc.exit_code
    except _click_errors.ClickException as exc:
        if not standalone_mode:
            raise
        code = _report(usage_message(exc), 2 if isinstance(exc, _click_errors.UsageError) else exc.exit_code)
    except GanCompressError as exc:  # raised by an option callback, while parsing
        if not standalone_mode or debug_enabled():
            raise
        code = _report(str(exc), exc.exit_code)
    except (getattr(_click_errors, "Abort", typer.Abort), typer.Abort):
        if not standalone_mode:
            raise
        code = _report("aborted", 1)
    if not standalone_mode:
        return code
    sys.exit(code if isinstance(code, int) else 0)


def _report(message: str, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    return code
