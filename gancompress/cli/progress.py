"""The CLI's one progress adapter: library :class:`~gancompress.progress.Event` s to rich bars, and
Ctrl-C / SIGTERM to the library's ``should_stop``.

The library installs no signal handlers; :func:`stop_signals` does, for one command: the first
SIGINT or SIGTERM sets a flag the library polls between steps (fine-tuning then saves its
resumable state and exits 130); a second SIGINT interrupts at once.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from ..progress import Event
from .output import notice, stderr_console

InfoText = Callable[[Event], str]


@contextmanager
def stop_signals() -> Iterator[Callable[[], bool]]:
    """A ``should_stop`` that turns true after SIGINT or SIGTERM (handlers restored on exit)."""
    flag = {"hit": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: flag["hit"]
        return

    def handler(signum, frame):  # noqa: ARG001
        if flag["hit"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["hit"] = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: flag["hit"]
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class EventBars:
    """One rich bar per stage on a terminal (stderr), a line per new stage when ``lines``; silent when quiet.

    ``labels`` maps a stage to the text before its bar; ``info`` renders an event's details.
    """

    def __init__(self, *, quiet: bool = False, lines: bool = False, labels: dict[str, str] | None = None,
                 info: InfoText | None = None) -> None:
        self.quiet, self.lines, self.labels, self.info = quiet, lines, labels or {}, info
        self.bar, self.tasks = None, {}

    def __enter__(self) -> EventBars:
        console = stderr_console()
        if not self.quiet and console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
                                transient=True)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        label = self.labels.get(event.stage, event.stage)
        if event.stage not in self.tasks:
            self.tasks[event.stage] = self.bar.add_task(label, total=event.total, info="") if self.bar else None
            if self.bar is None and self.lines:
                notice(f"{label}...")
        if self.bar is not None:
            text = self.info(event) if self.info else ""
            self.bar.update(self.tasks[event.stage], completed=event.done, total=event.total, info=text)
