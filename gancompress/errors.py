"""The project's exception types.

Every error a user can cause is a :class:`GanCompressError` whose message says what is
wrong and what to do. The CLI maps ``exit_code`` to the process exit status.
"""
from __future__ import annotations


class GanCompressError(Exception):
    """Base of all gancompress errors: a runtime failure (exit code 1)."""

    exit_code = 1


class InputError(GanCompressError):
    """Bad usage or bad input (a file, an option, a checkpoint): exit code 2."""

    exit_code = 2


class NetworkMismatch(InputError):
    """The checkpoint's weights do not fit the network named or recorded for them: no built-in layout
    matches, a different ``--arch``/``--d-arch`` is needed, or keys/shapes differ (exit code 2). Its
    message names the loader's options; a caller that picks the networks another way (a script's own
    flag) can catch this type and give its own advice."""


class GateFailed(GanCompressError):
    """A quality gate (``--max-fid`` and friends) failed: exit code 3."""

    exit_code = 3


class NonFiniteLoss(GanCompressError):
    """Training produced NaN/Inf; the last good checkpoint is kept."""

    exit_code = 1


class Interrupted(GanCompressError):
    """The caller's ``should_stop`` ended a run (the CLI: Ctrl-C or SIGTERM): exit code 130, like a shell's SIGINT."""

    exit_code = 130


class UserCodeError(InputError):
    """The user's own code (``--arch module:Callable``) raised: exit code 2, with its message."""


_USER_CODE_FILES: set[str] = set()


def note_user_code(filename: str | None) -> None:
    """Remember a source file of the user's ``--arch`` module (see :func:`from_user_code`)."""
    if filename:
        _USER_CODE_FILES.add(filename)


def from_user_code(exc: BaseException) -> UserCodeError | None:
    """``exc`` as a :class:`UserCodeError` when its traceback ends in a user's ``--arch`` module, else None."""
    import os
    import traceback

    if not _USER_CODE_FILES or exc.__traceback__ is None:
        return None
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in _USER_CODE_FILES]
    if not frames:
        return None
    where = frames[-1]
    first = (str(exc).strip().splitlines() or [""])[0]
    return UserCodeError(f"your --arch code failed at {os.path.basename(where.filename)}:{where.lineno} in {where.name}: "
                         f"{type(exc).__name__}: {first}; fix your network code (rerun with --debug for the traceback)")
