"""The CLI's one progress adapter: library :class:`~gancompress.progress.Event` s to rich bars, and
Ctrl-C / SIGTERM to the library's ``should_stop``.

The library installs no signal handlers; :func:`stop_signals` does, for one command: the first
SIGINT or SIGTERM sets a flag the library polls between steps (fine-tuning then saves its
resumable state and exits 130); a second SIGINT interrupts at once.
"""
from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from ..progress import Event
from .output import notice, stderr_console

InfoText = Callable[[Event], str]
DEFAULT_INTERVAL = 30.0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class PlainLines:
    """Progress for logs without a terminal: one plain line per stage every ``interval`` seconds and
    when a stage ends: ``label done/total (pct) | details | rate/s | ETA``."""

    def __init__(self, interval: float = DEFAULT_INTERVAL, labels: dict[str, str] | None = None,
                 info: InfoText | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.labels, self.info, self.clock = interval, labels or {}, info, clock
        self.stages: dict[str, list[float]] = {}  # stage -> [start time, done at start, last line time, last done]

    def __call__(self, event: Event) -> None:
        now = self.clock()
        seen = self.stages.get(event.stage)
        if seen is None or event.done < seen[3]:  # a new stage, or the same stage again (the next sweep cell)
            seen = self.stages[event.stage] = [now, event.done, now, event.done]
        seen[3] = event.done
        ended = event.total > 0 and event.done >= event.total
        if not ended and now - seen[2] < self.interval:
            return
        seen[2] = now
        notice(self.line(event, now - seen[0], event.done - seen[1]))

    def line(self, event: Event, elapsed: float, progressed: int) -> str:
        label = self.labels.get(event.stage, event.stage)
        parts = [f"{label} {event.done}/{event.total}" + (f" ({event.done / event.total:.0%})" if event.total else "")]
        text = self.info(event) if self.info else ""
        if text:
            parts.append(text)
        rate = progressed / elapsed if elapsed > 0 else 0.0
        if rate > 0:
            parts.append(f"{rate:.3g}/s")
            left = max(0, event.total - event.done)
            parts.append(f"ETA {_duration(left / rate)}" if left else f"done in {_duration(elapsed)}")
        return " | ".join(parts)


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
    """One rich bar per stage on a terminal (stderr); without one, a line per new stage when ``lines``
    and :class:`PlainLines` every ``interval`` seconds; silent when quiet.

    ``labels`` maps a stage to the text before its bar; ``info`` renders an event's details.
    """

    def __init__(self, *, quiet: bool = False, lines: bool = False, labels: dict[str, str] | None = None,
                 info: InfoText | None = None, interval: float = DEFAULT_INTERVAL) -> None:
        self.quiet, self.lines, self.labels, self.info = quiet, lines, labels or {}, info
        self.bar, self.tasks = None, {}
        self.plain = PlainLines(interval, self.labels, info)

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
        if self.bar is None:
            self.plain(event)
        else:
            text = self.info(event) if self.info else ""
            self.bar.update(self.tasks[event.stage], completed=event.done, total=event.total, info=text)
