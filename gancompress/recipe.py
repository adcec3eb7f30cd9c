"""One compression setting end to end: the pruning config for an overall sparsity, recovery (AGP
while recovering, or one-shot then recovery), and the measurements (FID, PSNR to dense,
nonzeros) and sample grid. Used by ``demo`` and ``sweep`` (which do not import each other).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from .errors import InputError
from .registry import unknown_choice
from .finetune.defaults import DEFAULT_SCHEDULE, SCHEDULES
from .progress import Event

SMALL_LAST_LAYER = 0.02  # an output layer holding less than this share of the weights stays dense
MAX_LAYER_SPARSITY = 0.995


@dataclass(frozen=True)
class Setting:
    """One setting: how to prune (``prune``: a PruneConfig), how to recover (a RecoveryConfig), and
    ``schedule``: ``agp`` prunes the dense model gradually while recovering (the paper's),
    ``oneshot`` prunes first and recovers with fixed masks."""

    prune: Any
    recovery: Any
    schedule: str = DEFAULT_SCHEDULE
    seed: int = 0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise unknown_choice("schedule", self.schedule, SCHEDULES)


@dataclass(frozen=True)
class MeasureConfig:
    """How each model of a setting is measured: FID samples, the seed of their latents, grid columns."""

    num_samples: int = 2000
    seed: int = 0
    grid_columns: int = 8

    def __post_init__(self) -> None:
        for name, least in (("num_samples", 2), ("grid_columns", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"--seed must be a non-negative integer, got {self.seed!r}")


@dataclass(frozen=True)
class Recovered:
    model: Path  # the recovered checkpoint (the pruned one when the method does not train)
    pruned: Path | None  # the one-shot pruned checkpoint, when one was written
    seconds: float  # recovery time
    prune_seconds: float = 0.0


def overall_prune_config(generator, sparsity: float, granularity: str = "element", *, keep_last_dense: bool = True):
    """A :class:`~gancompress.prune.PruneConfig` whose zeros over ALL conv/linear weights ~= ``sparsity``.

    Every prunable layer is pruned (the first too: in a DCGAN it holds a quarter of the
    weights), except the last one when it is tiny (< 2% of the weights; our probes: keeping
    the 288-weight output conv of the digits DCGAN dense lowered the 90% FID ratio from
    1.79x to 1.52x). The per-layer sparsity is raised so the overall figure matches.
    """
    from .prune import PruneConfig, prunable_layers

    layers = prunable_layers(generator, prune_first_last=True)
    sizes = [m.weight.numel() for _, m in layers]
    total = sum(sizes)
    exclude: tuple[str, ...] = ()
    if keep_last_dense and len(layers) > 1 and sizes[-1] / total < SMALL_LAST_LAYER:
        exclude = (layers[-1][0],)
    pruned_total = total - (sizes[-1] if exclude else 0)
    per_layer = min(MAX_LAYER_SPARSITY, float(sparsity) * total / pruned_total) if sparsity else 0.0
    return PruneConfig(per_layer, granularity=granularity, prune_first_last=True, exclude=exclude)


def measure(model_path: str | Path, dense_source: str, num_samples: int, seed: int, device: str) -> dict[str, Any]:
    """FID (digits extractor for 16x16 digits models), PSNR to dense, nonzeros of one generator."""
    from .evaluate import EvaluateConfig, evaluate

    references = [] if str(model_path) == dense_source else [dense_source]
    report = evaluate(EvaluateConfig([str(model_path)], references=references, fid=True, num_samples=num_samples,
                                     seed=seed, device=device))
    row = report.rows[0].values()
    psnr = row.get("psnr")
    return {"fid": row.get("fid"), "psnr": None if psnr is None or math.isinf(psnr) else psnr,
            "nonzeros": row.get("nonzeros"), "parameters": row.get("parameters")}


def sample_rows(entries: list[tuple[str, str | Path]], columns: int, seed: int) -> tuple[list[tuple[str, Any]], tuple[float, float]]:
    """``(label, images)`` rows of the given generators on the same latents (for save_grid), and their value range."""
    import torch

    from .evaluate.models import model_inputs
    from .generation import generator_info
    from .loading import load_bundle

    rows, x, value_range = [], None, (-1.0, 1.0)
    for label, source in entries:
        bundle = load_bundle(str(source))
        info = generator_info(bundle)
        if x is None:
            value_range = info.output_range
            x = next(model_inputs(info, columns, columns, seed, torch.device("cpu")))
        with torch.no_grad():
            rows.append((label, bundle.generator.eval()(x).float().cpu()))
    return rows, value_range


def write_samples(entries: list[tuple[str, str | Path]], path: Path, columns: int = 8, seed: int = 0) -> Path:
    from .evaluate.grids import save_grid

    rows, value_range = sample_rows(entries, columns, seed)
    scale = max(1, min(8, 64 // max(1, rows[0][1].shape[-1])))
    return save_grid(rows, path, value_range, scale, force=True)


def prune_and_recover(source: str, setting: Setting, data: str | None, pruned: Path, output: Path, *,
                      device: str = "auto", keep_pruned: bool = False, on_event: Callable | None = None,
                      should_stop: Callable[[], bool] | None = None) -> Recovered:
    """Prune ``source`` and recover it as ``setting`` says; ``keep_pruned`` also writes the one-shot
    pruned checkpoint under AGP (the demo shows it as "no recovery")."""
    import torch

    from .finetune import FinetuneConfig, run_finetune
    from .finetune.config import DataConfig, RunConfig
    from .loading import LoadOptions
    from .prune.run import PruneJob, prune_checkpoint

    emit = on_event or (lambda event: None)
    trains = setting.recovery.recipe.trains_generator
    torch.manual_seed(setting.seed)
    agp = setting.schedule == "agp" and trains
    wrote_pruned, started = None, time.perf_counter()
    emit(Event("prune", 0, 1))
    if not agp or keep_pruned:
        prune_checkpoint(PruneJob(source, setting.prune, pruned, force=True))
        wrote_pruned = pruned
    emit(Event("prune", 1, 1))
    prune_seconds = time.perf_counter() - started
    if not trains:
        return Recovered(pruned, wrote_pruned, 0.0, prune_seconds)
    emit(Event("finetune", 0, setting.recovery.steps))
    run = RunConfig(output, seed=setting.seed, device=device, force=True, log_every=0, sample_every=0, save_every=0)
    start = replace(setting.prune, input_shape=None) if agp else None
    config = FinetuneConfig(load=LoadOptions(source if agp else str(pruned)), run=run, recovery=setting.recovery,
                            prune=start, data=DataConfig(data), teacher=source)
    started = time.perf_counter()
    run_finetune(config, on_event=on_event, should_stop=should_stop)
    return Recovered(output, wrote_pruned, time.perf_counter() - started, prune_seconds)
