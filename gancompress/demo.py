"""``gancompress demo``: the whole pipeline on the bundled digits GAN, in a fresh folder.

inspect -> prune (one-shot magnitude, ``sparsity`` of ALL conv weights, see
:func:`gancompress.recipe.setting_prune_config`: ``sparsity`` of ALL prunable weights, as ``prune -s``) -> recover with the default method and
schedule (``agp``: the dense model is pruned gradually to the same masks' sparsity while it
recovers, as in the paper; ``oneshot``: the one-shot pruned checkpoint is recovered) ->
evaluate dense vs pruned-without-recovery vs recovered (digits-FID on the same latents,
PSNR to dense, nonzeros, generator file size) -> export the recovered generator as a sparse
file. Writes, in ``out_dir``: ``pruned.safetensors``, ``recovered.safetensors`` (project
checkpoints), ``recovered.sparse.safetensors`` (the deployable export), ``samples.png`` (one
labelled row per model, same latents) and ``demo.json`` (every number). Needs no download.

The library never imports typer/rich: progress goes to ``on_event(Event(stage, done, total))``.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .registry import unknown_choice
from .finetune.defaults import DEFAULT_IMPORTANCE, DEFAULT_METHOD, DEFAULT_SCHEDULE
from .io_utils import atomic_write_text
from .progress import Event, OnEvent, ShouldStop
from .recipe import MeasureConfig, Setting, measure, prune_and_recover, setting_prune_config, write_samples

if TYPE_CHECKING:  # finetune.config imports torch; `gancompress demo --help` must not
    from .finetune.config import Runtime

DEMO_SOURCE = "builtin:digits-dcgan"
DEMO_DATA = "builtin:digits"
DEMO_DIR = "gancompress-demo"
# 10% of the bundled GAN's 7,500 training steps, the reproduction benchmark's budget (the
# default auto, hybrid here: 82 s for the whole demo on an idle 2-core machine; distill 79 s, distill-adv 94 s).
DEMO_STEPS = 750
DEMO_SAMPLES = 2000
STAGES = ("inspect", "prune", "finetune", "evaluate", "export")



@dataclass
class DemoConfig:
    out_dir: Path | None = None  # None: ./gancompress-demo, or the next free numbered folder
    sparsity: float = 0.9
    granularity: str = "element"
    allocation: str = "uniform"
    keep_dense: str = "auto"
    importance: str = DEFAULT_IMPORTANCE
    steps: int = DEMO_STEPS
    method: str = DEFAULT_METHOD
    schedule: str = DEFAULT_SCHEDULE
    seed: int = 0
    runtime: Runtime = field(default_factory=lambda: _runtime({}))  # device, --amp, --workers, ... (``from_options``: flat names)
    num_samples: int = DEMO_SAMPLES
    grid_columns: int = 12
    source: str = DEMO_SOURCE
    data: str = DEMO_DATA

    def __post_init__(self) -> None:
        from .finetune.methods import get_method, names
        from .recipe import setting_prune_config

        setting_prune_config(self.sparsity, self.granularity, allocation=self.allocation, keep_dense=self.keep_dense,
                             importance=self.importance)
        if not self.sparsity:
            raise InputError("--sparsity must be above 0 for the demo (0 would compare the dense model with itself)")
        if not get_method(self.method).trains_generator:
            trained = [m for m in names() if get_method(m).trains_generator]
            raise unknown_choice("recovery method for the demo", self.method, trained)
        Setting(None, self.recovery, self.schedule, self.seed)  # checks method, steps and schedule
        self.measure  # noqa: B018  (checks the sample count and grid columns)

    @classmethod
    def from_options(cls, **options: Any) -> DemoConfig:
        """From the CLI's flat option names (``sparsity``, ``steps``, ``device``, ``amp``, ``workers``, ...)."""
        return cls(runtime=_runtime(options), **options)

    @property
    def device(self) -> str:
        return self.runtime.device

    @property
    def recovery(self):
        from .finetune.config import RecoveryConfig

        return RecoveryConfig(method=self.method, steps=self.steps)

    @property
    def measure(self) -> MeasureConfig:
        return MeasureConfig(self.num_samples, self.seed, self.grid_columns)


def _runtime(options: dict[str, Any]) -> Runtime:
    from .finetune.config import Runtime

    return Runtime.take(options)


@dataclass
class DemoRow:
    label: str
    path: str
    fid: float | None
    psnr: float | None
    nonzeros: int
    parameters: int
    sparsity: float
    file_bytes: int
    file_kind: str


@dataclass
class DemoResult:
    out_dir: Path
    rows: list[DemoRow]
    files: dict[str, str]
    inspect: dict[str, Any]
    settings: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    def row(self, label: str) -> DemoRow:
        return next(r for r in self.rows if r.label == label)

    def to_json(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "settings": self.settings, "seconds": self.seconds,
                "rows": [vars(r) for r in self.rows], "files": self.files,
                "inspect": {k: self.inspect[k] for k in ("source", "generator_parameters", "has_discriminator")}}


def fresh_dir(requested: Path | None) -> Path:
    """``requested`` (default ``./gancompress-demo``) if it does not exist or is empty, else ``<name>-2``, ``-3``, ..."""
    base = Path(requested) if requested is not None else Path.cwd() / DEMO_DIR
    if base.exists() and not base.is_dir():
        raise InputError(f"--out-dir {base} is a file; give a folder")
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def _export_size(source: Path, fmt: str, dest: Path | None = None) -> tuple[int, int]:
    """(bytes of the ``fmt`` export, bytes of the dense float32 export); writes ``dest`` when given."""
    from .export import ExportConfig, export

    if dest is not None:
        r = export(ExportConfig(str(source), dest, format=fmt))
        return r.file_bytes, r.dense_float32_bytes
    with tempfile.TemporaryDirectory() as tmp:
        r = export(ExportConfig(str(source), Path(tmp) / "g.safetensors", format=fmt))
        return r.file_bytes, r.dense_float32_bytes


def run_demo(config: DemoConfig, on_event: OnEvent | None = None, should_stop: ShouldStop | None = None) -> DemoResult:
    """Run the pipeline (see the module docstring); never overwrites anything.

    ``on_event`` gets ``Event(stage, done, total)`` for each stage (and every fine-tuning step);
    ``should_stop`` is passed to the fine-tuning (:class:`~gancompress.finetune.FinetuneInterrupted`).
    """
    from .inspection import inspect_bundle
    from .loading import load_bundle

    emit = on_event or (lambda event: None)
    clock = _Laps()
    out = fresh_dir(config.out_dir)
    files = {"pruned": out / "pruned.safetensors", "recovered": out / "recovered.safetensors",
             "export": out / "recovered.sparse.safetensors", "samples": out / "samples.png", "report": out / "demo.json"}

    emit(Event("inspect", 0, 1))
    dense = load_bundle(config.source)
    report = inspect_bundle(dense)
    report["generator_parameters"] = report["generator"]["parameters"]
    emit(Event("inspect", 1, 1))
    clock.lap("inspect")
    config, chosen = _choose_method(config, dense)

    pconf = setting_prune_config(config.sparsity, config.granularity, allocation=config.allocation,
                                 keep_dense=config.keep_dense, importance=config.importance)
    setting = Setting(pconf, config.recovery, config.schedule, config.seed)
    done = prune_and_recover(config.source, setting, config.data, files["pruned"], files["recovered"],
                             runtime=config.runtime, keep_pruned=True, on_event=emit, should_stop=should_stop)
    clock.seconds.update(prune=round(done.prune_seconds, 2), finetune=round(done.seconds, 2))
    clock.clock = time.perf_counter()
    rows = _measure_rows(config, dense, files, emit)
    clock.lap("evaluate")

    emit(Event("export", 0, 1))
    pruned_bytes, dense_bytes = _export_size(files["pruned"], "sparse")
    export_bytes, _ = _export_size(files["recovered"], "sparse", files["export"])
    emit(Event("export", 1, 1))
    clock.lap("export")
    sizes = [(dense_bytes, "dense f32"), (pruned_bytes, "sparse"), (export_bytes, "sparse")]
    result_rows = [DemoRow(label, path, n["fid"], n["psnr"], int(n["nonzeros"]), int(n["parameters"]), sp, size, kind)
                   for (label, path, n, sp), (size, kind) in zip(rows, sizes)]
    settings = {**_settings(config, pconf), **({"method_choice": chosen} if chosen else {})}
    result = DemoResult(out, result_rows, {k: str(v) for k, v in files.items()}, report, settings, clock.seconds)
    atomic_write_text(files["report"], json.dumps(result.to_json(), indent=2) + "\n")
    return result


def _choose_method(config: DemoConfig, dense: Any) -> tuple[DemoConfig, str | None]:
    """The demo's config with a method chosen per run (``auto``) resolved for the bundled GAN and its data."""
    from dataclasses import replace

    from .finetune.methods import resolve_method

    name, why = resolve_method(config.method, has_discriminator=dense.discriminator is not None,
                               has_data=bool(config.data))
    return (replace(config, method=name), why) if why else (config, None)


class _Laps:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self.clock, 2)
        self.clock = now


def _measure_rows(config: DemoConfig, dense: Any, files: dict[str, Path], emit: OnEvent) -> list[list[Any]]:
    from .loading import load_bundle
    from .prune import achieved_sparsity

    models = [("dense", config.source), ("pruned, no recovery", files["pruned"]),
              (f"pruned + {config.method}", files["recovered"])]
    rows, m = [], config.measure
    for i, (label, path) in enumerate(models):
        emit(Event("evaluate", i, len(models) + 1))
        numbers = measure(path, config.source, m.num_samples, m.seed, config.device, amp=config.runtime.amp)
        bundle = dense if path == config.source else load_bundle(str(path))
        rows.append([label, str(path), numbers, achieved_sparsity(bundle.generator, bundle.masks)["all"]])
    write_samples([(label, path) for label, path in models], files["samples"], m.grid_columns, m.seed)
    emit(Event("evaluate", len(models) + 1, len(models) + 1))
    return rows


def _settings(config: DemoConfig, pconf: Any) -> dict[str, Any]:
    return {"source": config.source, "data": config.data, "sparsity_target": config.sparsity,
            "granularity": config.granularity, "method": config.method, "schedule": config.schedule,
            "steps": config.steps, "seed": config.seed, "device": config.device, "amp": config.runtime.amp, "fid_samples": config.num_samples,
            "fid": "digits-classifier features, same latents for every model, vs all 1,797 real digits",
            "allocation": pconf.allocation, "importance": pconf.importance, "keep_dense": ",".join(pconf.keep_dense)}
