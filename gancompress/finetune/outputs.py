"""What a run writes: the project checkpoint, the JSON-lines log and the sample grids."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..formats.checkpoint import GanBundle, save_bundle
from ..io_utils import atomic_write
from .setup import Setup
from .trainer import Trainer


def finetune_meta(trainer: Trainer, setup: Setup, metrics: dict[str, float], completed: bool) -> dict[str, Any]:
    return {
        "config": trainer.config.to_dict(), "method": trainer.config.recovery.method, "loss": setup.loss_name,
        "teacher": setup.teacher_source, "discriminator": setup.d_source, "step": trainer.done,
        "steps": trainer.config.recovery.steps, "completed": completed, "final": metrics,
        "sparsity": trainer.achieved(),
    }


def output_bundle(trainer: Trainer, setup: Setup, metrics: dict[str, float], completed: bool) -> GanBundle:
    meta = dict(setup.bundle.meta)
    meta["finetune"] = finetune_meta(trainer, setup, metrics, completed)
    if trainer.schedule is not None:
        s = trainer.schedule
        meta["pruning"] = {"source": setup.teacher_source, "sparsity": s.final, "granularity": s.prune.granularity,
                           "allocation": s.prune.allocation, "keep_dense": ",".join(s.prune.keep_dense),
                           "block": list(s.prune.block), "nm": list(s.prune.nm), "nm_axis": s.prune.nm_axis,
                           "include": list(s.prune.include), "exclude": list(s.prune.exclude),
                           "schedule": {"kind": "agp", "initial": s.initial, "ramp_fraction": s.ramp_fraction,
                                        "every": s.every}, "achieved": trainer.achieved()}
    d = trainer.d if trainer.d is not None else setup.bundle.discriminator
    masks = {k: v.cpu() for k, v in trainer.masks.items()}
    return GanBundle(trainer.result, setup.bundle.g_spec, d, setup.bundle.d_spec if d is not None else None,
                     masks, meta, setup.bundle.source)


def save_output(path: Path, trainer: Trainer, setup: Setup, metrics: dict[str, float], completed: bool) -> Path:
    return save_bundle(output_bundle(trainer, setup, metrics, completed), path, force=True)


class RunLog:
    """Appends one JSON document per line; a resumed run drops lines past its step first."""

    def __init__(self, path: Path, *, resume_step: int | None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        keep: list[str] = []
        if resume_step is not None and path.is_file():
            keep = [ln for ln in path.read_text(encoding="utf-8").splitlines() if _step_of(ln) <= resume_step]
        path.write_text("".join(ln + "\n" for ln in keep), encoding="utf-8")

    def write(self, document: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(document, sort_keys=True) + "\n")


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 0


@torch.no_grad()
def sample_grid(trainer: Trainer, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Teacher outputs (top row) above the student's (bottom row), as a (3, H, W) tensor in [0, 1]."""
    from torchvision.utils import make_grid

    student = trainer.result
    was_training = student.training
    student.eval()
    try:
        images = torch.cat([trainer.teacher(x), student(x)]).float().cpu()
    finally:
        student.train(was_training)
    lo, hi = value_range
    return make_grid(((images - lo) / (hi - lo)).clamp(0, 1), nrow=x.shape[0], padding=1)


def write_png(path: Path, grid: torch.Tensor) -> Path:
    from PIL import Image

    array = (grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    image = Image.fromarray(array)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"), force=True)
