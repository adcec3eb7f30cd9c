"""One place that turns exceptions into a one-line message and an exit code."""
from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable

import typer

from ..errors import GanCompressError, from_user_code
from ..io_utils import input_scope


def debug_enabled() -> bool:
    return os.environ.get("GANCOMPRESS_DEBUG", "") not in ("", "0")


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command: project errors -> ``error: ...`` + exit code; others -> exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
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
