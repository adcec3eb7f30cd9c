"""``--tensorboard DIR``: a run's scalars and sample grids as TensorBoard events (an optional extra).

The events mirror the JSON-lines log, which stays the record: every log line becomes one scalar per
number at that line's step (:func:`scalar_tags`: ``loss/<name>`` for each loss term, ``lr/g`` and
``lr/d`` for the learning rates, ``sparsity`` for the schedule's sparsity), and every sample grid
(``--sample-every``) is also an image ``samples`` (teacher row above student row). A resumed run
opens the folder with ``purge_step`` at its first new step, so TensorBoard drops what the
interrupted run wrote after the saved state (as the log drops its lines). Writing reads no random
numbers and changes no network state: a run is the same with or without it.

TensorBoard is not a dependency: ``pip install 'gancompress[tensorboard]'`` (or ``pip install
tensorboard``) adds it; without it ``--tensorboard`` is refused before any work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError

INSTALL = "pip install 'gancompress[tensorboard]' (or: pip install tensorboard)"
NOT_SCALARS = ("step", "seconds", "event")  # log keys that are not plotted


def require_tensorboard() -> None:
    """An :class:`InputError` saying what to install when TensorBoard's writer cannot be imported."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise InputError(f"--tensorboard needs the tensorboard package, which is not installed here: {INSTALL}") from None


def check_board_dir(folder: Path) -> None:
    """``folder`` must be (or become) a folder: refused before any work when it is a file."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--tensorboard {folder}: exists and is not a folder; give a folder for the event files")


def scalar_tags(record: dict[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars of one JSON-lines log record: ``{tag: value}``."""
    tags: dict[str, float] = {}
    for key, value in record.items():
        if key in NOT_SCALARS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if key == "sparsity":
            tags["sparsity"] = float(value)
        elif key.startswith("lr_"):
            tags[f"lr/{key[3:]}"] = float(value)
        else:
            tags[f"loss/{key}"] = float(value)
    return tags


class Board:
    """A ``SummaryWriter`` on ``folder``; ``resume_step``: the step a resumed run continues after."""

    def __init__(self, folder: Path, *, resume_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        Path(folder).mkdir(parents=True, exist_ok=True)
        purge = resume_step + 1 if resume_step is not None else None
        self.writer = SummaryWriter(str(folder), purge_step=purge)

    def log(self, record: dict[str, Any]) -> None:
        for tag, value in scalar_tags(record).items():
            self.writer.add_scalar(tag, value, int(record["step"]))

    def image(self, grid: Any, step: int) -> None:
        """A ``(3, H, W)`` grid in [0, 1] (see :func:`.outputs.sample_grid`)."""
        self.writer.add_image("samples", grid, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
