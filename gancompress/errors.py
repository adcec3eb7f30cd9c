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


class GateFailed(GanCompressError):
    """A quality gate (``--max-fid`` and friends) failed: exit code 3."""

    exit_code = 3


class NonFiniteLoss(GanCompressError):
    """Training produced NaN/Inf; the last good checkpoint is kept."""

    exit_code = 1


class Interrupted(GanCompressError):
    """The caller's ``should_stop`` ended a run (the CLI: Ctrl-C or SIGTERM): exit code 130, like a shell's SIGINT."""

    exit_code = 130
