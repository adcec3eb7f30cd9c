"""Progress reports and stopping, the same for every long-running library call.

A call such as ``run_finetune``, ``evaluate``, ``sweep`` or ``run_demo`` takes
``on_event(Event)`` to report progress and ``should_stop() -> bool`` to learn that its
caller wants it to stop; it never installs signal handlers (the CLI maps Ctrl-C and SIGTERM
to ``should_stop``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Event:
    """``done`` of ``total`` units of ``stage`` (e.g. ``finetune`` steps, ``evaluate`` samples)."""

    stage: str
    done: int
    total: int
    info: dict[str, Any] = field(default_factory=dict)


OnEvent = Callable[[Event], None]
ShouldStop = Callable[[], bool]


def never() -> bool:
    """The default ``should_stop``: run to the end."""
    return False
