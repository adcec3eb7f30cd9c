"""One compression setting end to end: the pruning config for an overall sparsity, recovery (AGP
while recovering, or one-shot then recovery), and the measurements (FID, PSNR to dense,
nonzeros) and sample grid. Used by ``demo`` and ``sweep`` (which do not import each other).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import InputError
from .registry import unknown_choice
from .finetune.defaults import DEFAULT_IMPORTANCE, DEFAULT_SCHEDULE, SCHEDULES
from .progress import Event

if TYPE_CHECKING:  # the loader imports torch; keep this module light
    from .finetune.config import Runtime
    from .loading import LoadOptions



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
        if self.schedule == "oneshot" and getattr(self.recovery, "schedule", None) is not None and self.recovery.schedule.regrow:
            raise InputError("--regrow re-ranks the masks while the sparsity ramps; --schedule oneshot prunes before "
                             "recovery with fixed masks: use --schedule agp, or leave --regrow out")


@dataclass(frozen=True)
class MeasureConfig:
    """How each model of a setting is measured: FID samples, the seed of their latents, grid columns;
    for an image-to-image generator, ``test_data``: the test images its PSNR/SSIM to the ground truth
    are measured on (held-out photographs, say; default: the training ``--data``), and ``fid``: False
    to measure no FID (a handful of test photographs makes no distribution)."""

    num_samples: int = 2000
    seed: int = 0
    grid_columns: int = 8
    extractor: str | None = None  # FID features: None = evaluate's default (digits for 16x16 one-channel models)
    quantize: tuple[str, ...] = ()  # also export each model with --quantize SCHEME and measure that file
    test_data: str | None = None
    fid: bool = True

    def __post_init__(self) -> None:
        if self.extractor is not None:
            from .metrics.extractors import get_extractor

            get_extractor(self.extractor)  # an unknown name lists the known ones
        if self.quantize:
            from .formats.quantize import SCHEMES

            object.__setattr__(self, "quantize", tuple(SCHEMES.get(q).name for q in self.quantize))
            if len(set(self.quantize)) != len(self.quantize):
                raise InputError(f"--quantize: a value is repeated in {list(self.quantize)}")
        if self.test_data is not None and not Path(self.test_data).expanduser().is_dir():
            raise InputError(f"--test-data {self.test_data}: not a folder; give the folder of held-out test images "
                             "an image-to-image generator's PSNR/SSIM are measured on")
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


def setting_prune_config(sparsity: float, granularity: str = "element", *, allocation: str = "uniform",
                         keep_dense: str = "auto", nm_axis: str = "in", nm_runs: int = 4,
                         importance: str = DEFAULT_IMPORTANCE):
    """The :class:`~gancompress.prune.PruneConfig` of one demo/sweep setting: ``sparsity`` of ALL
    prunable weights, as ``prune -s`` means it. The default ``keep_dense`` ``auto`` keeps a tiny
    output layer dense (our probes: keeping the 288-weight output conv of the digits DCGAN dense
    lowered the 90% FID ratio from 1.79x to 1.52x). ``nm`` takes the N:M pattern whose own
    sparsity is ``sparsity``, with runs of ``nm_runs`` or the shortest longer runs that fit
    (0.5 -> 2:4, 0.75 -> 1:4, 0.9 -> 1:10)."""
    from .prune import PruneConfig, nm_for_sparsity

    nm = nm_for_sparsity(sparsity, nm_runs) if granularity == "nm" else (2, 4)
    return PruneConfig(sparsity, granularity=granularity, allocation=allocation, keep_dense=keep_dense, nm=nm, importance=importance,
                       nm_axis=nm_axis)


def measure(model_path: str | Path, dense_source: str, num_samples: int, seed: int, device: str,
            load: LoadOptions | None = None, real: str | None = None, *, extractor: str | None = None,
            amp: str = "none", test_data: str | None = None, fid: bool = True) -> dict[str, Any]:
    """FID (with ``extractor``; by default digits for 16x16 digits models), PSNR to dense, nonzeros of one
    generator (``amp``: the generators run under that autocast, as ``evaluate --amp``); an image-to-image
    generator is measured on ``test_data`` (else ``real``), with its PSNR/SSIM to the ground truth
    (``psnr_gt``, ``ssim_gt``; None for a noise-input one)."""
    from .evaluate import EvaluateConfig, evaluate

    references = [] if str(model_path) == dense_source else [dense_source]
    real = None if real == "builtin:digits" else real  # the default for digits models
    images = {"data": test_data} if test_data else {"real": real}
    report = evaluate(EvaluateConfig.from_options(sources=[str(model_path)], references=references, fid=fid,
                                                  num_samples=num_samples, seed=seed, device=device, load=load,
                                                  extractor=extractor, amp=amp, **images))
    row = report.rows[0].values()
    psnr = row.get("psnr")
    return {"fid": row.get("fid"), "psnr": None if psnr is None or math.isinf(psnr) else psnr,
            "psnr_gt": row.get("psnr_gt"), "ssim_gt": row.get("ssim_gt"),
            "nonzeros": row.get("nonzeros"), "parameters": row.get("parameters")}


def measure_exports(model_path: str | Path, dense_source: str, schemes: tuple[str, ...], folder: Path,
                    measure_config: MeasureConfig, device: str, load: LoadOptions | None = None,
                    real: str | None = None, *, amp: str = "none") -> tuple[int, dict[str, dict[str, Any]]]:
    """The sparse float export's size, and per 8-bit scheme its sparse export's size, FID and PSNR to dense."""
    from .export import ExportConfig, export

    def write(path: Path, scheme: str | None) -> int:
        return export(ExportConfig(str(model_path), path, quantize=scheme, force=True, load=load)).file_bytes

    float_bytes = write(folder / "model.sparse.safetensors", None)
    out = {}
    for scheme in schemes:
        path = folder / f"model.{scheme}.safetensors"
        size = write(path, scheme)
        numbers = measure(path, dense_source, measure_config.num_samples, measure_config.seed, device, load, real,
                          extractor=measure_config.extractor, amp=amp, test_data=measure_config.test_data,
                          fid=measure_config.fid)
        out[scheme] = {**numbers, "file_bytes": size}
    return float_bytes, out


def sample_rows(entries: list[tuple[str, str | Path]], columns: int, seed: int,
                load: LoadOptions | None = None) -> tuple[list[tuple[str, Any]], tuple[float, float]]:
    """``(label, images)`` rows of the given generators on the same latents (for save_grid), and their value range."""
    import torch

    from .evaluate.models import model_inputs
    from .generation import generator_info
    from .loading import load_bundle

    rows, x, value_range = [], None, (-1.0, 1.0)
    for label, source in entries:
        bundle = load_bundle(str(source), load)
        info = generator_info(bundle)
        if x is None:
            value_range = info.output_range
            x = next(model_inputs(info, columns, columns, seed, torch.device("cpu")))
        with torch.no_grad():
            rows.append((label, bundle.generator.eval()(x).float().cpu()))
    return rows, value_range


def write_samples(entries: list[tuple[str, str | Path]], path: Path, columns: int = 8, seed: int = 0,
                  load: LoadOptions | None = None) -> Path:
    from .evaluate.grids import save_grid

    rows, value_range = sample_rows(entries, columns, seed, load)
    scale = max(1, min(8, 64 // max(1, rows[0][1].shape[-1])))
    return save_grid(rows, path, value_range, scale, force=True)


def prune_and_recover(source: str, setting: Setting, data: str | None, pruned: Path, output: Path, *,
                      runtime: Runtime | None = None, keep_pruned: bool = False, on_event: Callable | None = None,
                      should_stop: Callable[[], bool] | None = None, load: LoadOptions | None = None,
                      discriminator: str | None = None) -> Recovered:
    """Prune ``source`` and recover it as ``setting`` says, run as ``runtime`` says (device, --amp, workers,
    ...); ``keep_pruned`` also writes the one-shot pruned checkpoint under AGP (the demo shows it as "no
    recovery"); ``discriminator``: a file holding the D when ``source`` has none (``finetune --discriminator``)."""
    import torch

    from .finetune import FinetuneConfig, run_finetune
    from .finetune.config import DataConfig, Runtime
    from .loading import LoadOptions
    from .prune.run import PruneJob, prune_checkpoint

    emit = on_event or (lambda event: None)
    trains = setting.recovery.recipe.trains_generator
    torch.manual_seed(setting.seed)
    agp = setting.schedule == "agp" and trains
    wrote_pruned, started = None, time.perf_counter()
    emit(Event("prune", 0, 1))
    if not agp or keep_pruned:
        prune_checkpoint(PruneJob(source, setting.prune, pruned, force=True, load=load or LoadOptions()))
        wrote_pruned = pruned
    emit(Event("prune", 1, 1))
    prune_seconds = time.perf_counter() - started
    if not trains:
        return Recovered(pruned, wrote_pruned, 0.0, prune_seconds)
    emit(Event("finetune", 0, setting.recovery.steps))
    runtime = runtime or Runtime()
    run = runtime.run_config(output, seed=setting.seed, force=True, log_every=0, sample_every=0, save_every=0)
    start = replace(setting.prune, input_shape=None) if agp else None
    config = FinetuneConfig(load=(load or LoadOptions()).for_source(source if agp else str(pruned)), run=run,
                            recovery=setting.recovery,
                            prune=start, data=DataConfig(data, workers=runtime.workers), teacher=source,
                            discriminator=discriminator)
    started = time.perf_counter()
    run_finetune(config, on_event=on_event, should_stop=should_stop)
    return Recovered(output, wrote_pruned, time.perf_counter() - started, prune_seconds)
