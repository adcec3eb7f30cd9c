"""How commands print: JSON or tables, progress bars only on a terminal, errors one line."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from ..io_utils import human_size  # noqa: F401  (re-exported for the commands)


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _console(stream) -> Console:
    """A console that is a terminal only when the stream is one: pipes and files never get ANSI codes
    (even with FORCE_COLOR set); NO_COLOR turns colours off on a terminal too."""
    return Console(file=stream, force_terminal=_isatty(stream), no_color=_no_color(), highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    return _console(sys.stdout)


def stderr_console() -> Console:
    return _console(sys.stderr)


def human_console() -> Console:
    """For a command that writes a file: its tables go to stdout on a terminal, to stderr when stdout is a
    pipe or file (where the written path is the only stdout line)."""
    return stdout_console() if _isatty(sys.stdout) else stderr_console()


def report_console() -> Console:
    """For a command whose result IS the table (inspect, evaluate without --json): always stdout, so
    ``gancompress inspect X | grep net.3`` works; wide enough in a pipe that rows are not wrapped."""
    console = stdout_console()
    if not console.is_terminal:
        console.width = max(console.width, 200)
    return console


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def notice(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        stderr_console().print(message, markup=False)


def table(title: str, columns: list[str], rows: list[list[Any]], *, justify_numbers: bool = True) -> Table:
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col, justify="right" if justify_numbers and col not in (columns[0],) else "left")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t
