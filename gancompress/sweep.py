"""``gancompress sweep``: prune + recover + evaluate a generator over a grid of settings.

Every combination of sparsity x granularity x allocation x method x seed is one *cell*. A cell

1. prunes the dense SOURCE by magnitude to the requested sparsity of ALL prunable weights, as
   ``prune -s`` means it (:func:`~gancompress.recipe.setting_prune_config`: the ``keep_dense``
   policy, ``auto`` by default, keeps a tiny output layer dense; ``allocation`` spreads the
   zeros; an ``nm`` cell takes the N:M pattern of its sparsity): gradually during recovery
   with the ``agp`` schedule (5% -> target by half of the steps, the paper's), or one-shot
   before it. Every cell's setting is checked against the model before the first one runs;
2. recovers it with ``method`` for ``steps`` steps (``none``: one-shot, no training);
3. measures FID (same latents for every model), PSNR to the dense model and nonzeros, and
   writes a sample grid (dense row above the cell's row, the same latents).

Results are recorded in ``<out_dir>/sweep.json`` after every cell; a re-run with the same
settings skips the finished cells (resumable), and refuses settings that would mix up
results. The dense model is measured once (the ``dense`` entry). Outputs: ``results.md``
(a markdown table: mean and spread over seeds), ``results.json``, ``fid_vs_sparsity.png``
and ``cells/<cell>/samples.png``.

The library never imports typer/rich: progress goes to ``on_event(Event)``, stage ``sweep``
(``done`` of ``total`` cells; ``info["event"]``: ``dense``, ``cell-start``, ``cell-skip``,
``cell-done``, with ``cell``) and stage ``finetune`` (each step of a cell, with ``cell``);
``should_stop()`` ends the sweep between cells and steps (the finished cells stay recorded).
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError, Interrupted
from .finetune.config import LossWeights, PruneSchedule, Rates, RecoveryConfig, Runtime
from .finetune.defaults import DEFAULT_IMPORTANCE, DEFAULT_METHOD, DEFAULT_RAMP_FRACTION, DEFAULT_SCHEDULE
from .finetune.methods import METHODS, get_method, resolve_method
from .progress import Event, OnEvent, ShouldStop
from .recipe import MeasureConfig, Setting, measure, measure_exports, prune_and_recover, setting_prune_config, write_samples

if TYPE_CHECKING:  # the loader imports torch; keep this module light
    from .loading import LoadOptions

STATE_FILE = "sweep.json"
CELL_RESULT = "result.json"
# Settings that must match for a re-run to reuse recorded cells.
RESUME_KEYS = ("source", "data", "steps", "num_samples", "eval_seed", "batch_size", "lr_g", "lr_d", "lr_schedule", "mu", "lam",
               "schedule", "keep_dense", "adv_weight", "extractor", "discriminator", "test_data", "fid", "loss",
               "adv_schedule", "d_warmup", "ema_decay", "feature_weight", "ramp_fraction", "lr_warmup", "regrow", "student_mode", "importance",
               "recalibrate_bn", "freeze_discriminator")
# Settings whose None means "each method's own": compared as the value each method ran at (the record's
# ``<key>_by_method``), so a sweep given the method's own value explicitly resumes without it, and the other way round.
PER_METHOD_KEYS = ("batch_size", "lr_d")
# Settings added after sweeps were first recorded: a record without one predates it, and so holds
# no cell that depends on it (adv_weight only shapes distill-adv cells).
LATER_KEYS = ("adv_weight", "keep_dense")  # keep_dense: its default auto replaced keep_last_dense (same layers kept)
# Settings a record made before they existed ran at these values (``loss`` None: each architecture's own profile;
# no EMA, no feature distillation; the default AGP ramp): such a record resumes only at them, never under a
# setting it was not made with.
BEFORE_KEYS = {"extractor": None, "discriminator": None, "test_data": None, "fid": True, "loss": None,
               "adv_schedule": "constant", "d_warmup": 0, "ema_decay": None, "feature_weight": 0.0,
               "ramp_fraction": DEFAULT_RAMP_FRACTION, "lr_warmup": 0, "regrow": False, "student_mode": "eval", "importance": "magnitude",
               "recalibrate_bn": 0, "freeze_discriminator": False}


# --------------------------------------------------------------------------- config


def _tuple(values, cast) -> tuple:
    if isinstance(values, (str, int, float)):
        values = [values]
    return tuple(cast(v) for v in values)


@dataclass(frozen=True)
class SweepInputs:
    """What every cell reads: the dense SOURCE, real images (``--data``), a discriminator kept in its own
    file (``--discriminator``, for a SOURCE that holds only the generator), and how to read them
    (``--arch``/``--d-arch``)."""

    source: str
    data: str | None = None
    discriminator: str | None = None
    load: LoadOptions | None = None


@dataclass
class SweepConfig:
    """A grid of settings; ``recovery`` holds the shared recovery options (its method is each cell's)."""

    inputs: SweepInputs
    out_dir: Path
    sparsities: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    granularities: tuple[str, ...] = ("element",)
    allocations: tuple[str, ...] = ("uniform",)
    methods: tuple[str, ...] = (DEFAULT_METHOD,)
    seeds: tuple[int, ...] = (0,)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    schedule: str = DEFAULT_SCHEDULE  # "agp": prune gradually during recovery (the paper's); "oneshot": prune, then recover
    keep_dense: str = "auto"
    importance: str = DEFAULT_IMPORTANCE  # what ranks the weights (gancompress.prune.importance), every cell
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    runtime: Runtime = field(default_factory=Runtime)  # device, --amp, --workers, ... of every cell
    keep_checkpoints: bool = True

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.sparsities = _tuple(self.sparsities, float)
        self.granularities = _tuple(self.granularities, str)
        self.allocations = _tuple(self.allocations, str)
        self.methods = _tuple(self.methods, str)
        self.seeds = _tuple(self.seeds, int)
        for name, values in (("sparsity", self.sparsities), ("granularity", self.granularities),
                             ("allocation", self.allocations), ("method", self.methods), ("seed", self.seeds)):
            if not values:
                raise InputError(f"--{name}: give at least one value")
            if len(set(values)) != len(values):
                raise InputError(f"--{name}: a value is repeated in {list(values)}")
        self._check_cells()
        if any(get_method(m).uses_d for m in self.methods) and not self.inputs.data:
            uses_d = [name for name, m in METHODS.items() if m.uses_d]
            raise InputError(f"the methods {', '.join(uses_d)} need real images: pass --data")

    def _check_cells(self) -> None:
        from .prune import GRANULARITIES, check_sparsity

        for s in self.sparsities:
            check_sparsity(s)
        for g in self.granularities:
            GRANULARITIES.get(g)
        for m in self.methods:
            get_method(m)
        for s, g, a in {(c["sparsity"], c["granularity"], c["allocation"]) for c in self.cells()}:
            setting_prune_config(s, g, allocation=a, keep_dense=self.keep_dense, importance=self.importance)  # every cell's setting, before any work
        Setting(None, self.recovery, self.schedule)  # checks the schedule
        for m in self.methods:  # each method with the shared recovery options (--feature-weight needs the teacher)
            replace(self.recovery, method=m)

    @property
    def device(self) -> str:
        return self.runtime.device

    @classmethod
    def from_options(cls, **options: Any) -> SweepConfig:
        """From the CLI's flat option names (``steps``, ``lr_g``, ``adv_weight``, ``num_samples``, ``device``,
        ``amp``, ``workers``, ...)."""
        weights = {k: options.pop(k) for k in ("lam", "mu", "adv_weight", "adv_schedule", "d_warmup", "feature_weight")
                   if k in options}
        rates = {k: options.pop(k) for k in ("lr_g", "lr_d", "lr_schedule", "lr_warmup") if k in options}
        runs = {k: options.pop(k) for k in ("steps", "batch_size", "loss", "ema_decay", "student_mode", "freeze_discriminator") if k in options}
        ramp = {k: options.pop(k) for k in ("ramp_fraction", "regrow", "recalibrate_bn") if k in options}
        measured = {("seed" if k == "eval_seed" else k): options.pop(k)
                    for k in ("num_samples", "eval_seed", "grid_columns", "extractor", "quantize", "test_data", "fid")
                    if k in options}
        read = {k: options.pop(k) for k in ("source", "data", "discriminator", "load") if k in options}
        recovery = RecoveryConfig(weights=LossWeights(**weights), rates=Rates(**rates), schedule=PruneSchedule(**ramp), **runs)
        runtime = Runtime.take(options)
        return cls(SweepInputs(**read), recovery=recovery, measure=MeasureConfig(**measured), runtime=runtime, **options)

    def cells(self) -> list[dict[str, Any]]:
        return [{"sparsity": s, "granularity": g, "allocation": a, "method": m, "seed": seed}
                for g in self.granularities for a in self.allocations for m in self.methods for s in self.sparsities
                for seed in self.seeds if a == "uniform" or g != "nm"]

    def record(self) -> dict[str, Any]:
        """The settings as one flat JSON document (the keys ``sweep.json`` has always recorded)."""
        r, w, m = self.recovery, self.recovery.weights, self.measure
        flat = {"source": self.inputs.source, "out_dir": str(self.out_dir), "data": self.inputs.data,
                "discriminator": self.inputs.discriminator,
                "sparsities": self.sparsities, "granularities": self.granularities, "allocations": self.allocations,
                "methods": self.methods,
                "seeds": self.seeds, "steps": r.steps, "batch_size": r.batch_size,
                "batch_size_by_method": {m: replace(r, method=m).batch for m in self.methods}, "lr_g": r.rates.lr_g,
                "lr_d": r.rates.lr_d, "lr_d_by_method": {m: replace(r, method=m).lr_d for m in self.methods},
                "lr_schedule": r.rates.lr_schedule, "lr_warmup": r.rates.lr_warmup, "mu": w.mu, "adv_weight": w.adv_weight,
                "lam": w.lam, "loss": r.loss, "adv_schedule": w.adv_schedule, "d_warmup": w.d_warmup,
                "ema_decay": r.ema_decay, "feature_weight": w.feature_weight, "schedule": self.schedule,
                "keep_dense": self.keep_dense, "importance": self.importance, "ramp_fraction": r.schedule.ramp_fraction, "regrow": r.schedule.regrow,
                "recalibrate_bn": r.schedule.recalibrate_bn, "student_mode": r.student_mode,
                "freeze_discriminator": r.freeze_discriminator,
                "num_samples": m.num_samples, "eval_seed": m.seed, "extractor": m.extractor, "test_data": m.test_data,
                "fid": m.fid, "device": self.device,
                "grid_columns": m.grid_columns, "keep_checkpoints": self.keep_checkpoints, "quantize": m.quantize}
        return json.loads(json.dumps(flat))


def cell_key(cell: dict[str, Any]) -> str:
    allocation = cell.get("allocation", "uniform")
    gran = cell["granularity"] if allocation == "uniform" else f"{cell['granularity']}-{allocation}"
    return f"s{round(100 * cell['sparsity'], 2):g}-{gran}-{cell['method']}-seed{cell['seed']}"


def check_cells(config: SweepConfig, generator) -> None:
    """Refuse, before any cell runs, a setting the model cannot reach (see :func:`~gancompress.prune.plan_target`)."""
    from .prune import plan_target

    for s, g, a in sorted({(c["sparsity"], c["granularity"], c["allocation"]) for c in config.cells()}):
        plan_target(generator, setting_prune_config(s, g, allocation=a, keep_dense=config.keep_dense,
                                                    importance=config.importance))


def check_discriminator(config: SweepConfig, dense) -> None:
    """Refuse, before any cell runs, methods that need a discriminator the inputs do not give (a
    ``--discriminator`` file is read here as finetune reads it, so a wrong one fails now, not in a cell)."""
    read = config.inputs
    if read.discriminator:
        from .finetune.resolve import discriminator_file
        from .loading import LoadOptions

        discriminator_file(dense, read.load or LoadOptions(), read.discriminator)
        return
    needs = [m for m in config.methods if get_method(m).uses_d]
    if needs and dense.discriminator is None:
        raise InputError(f"{read.source} has no discriminator and method {', '.join(needs)} needs one: pass "
                         "--discriminator SOURCE (with --d-arch module:Callable for your own class), or use "
                         "--method distill, which needs none")


def choose_methods(config: SweepConfig, dense) -> list[str]:
    """Replace a method chosen per run (``auto``) in ``config.methods`` by the one it picks for these inputs (the
    dense checkpoint's or ``--discriminator``'s D, ``--data``); a method listed twice that way runs once. Returns
    the reasons (one line per choice), so every cell, table row and record names the method that really ran."""
    has_d = bool(config.inputs.discriminator) or dense.discriminator is not None
    methods, reasons = [], []
    for requested in config.methods:
        name, why = resolve_method(requested, has_discriminator=has_d, has_data=bool(config.inputs.data))
        if why:
            reasons.append(why)
        if name not in methods:
            methods.append(name)
    config.methods = tuple(methods)
    return reasons


# --------------------------------------------------------------------------- one cell


def run_cell(config: SweepConfig, cell: dict[str, Any], folder: Path, on_event: OnEvent | None = None,
             should_stop: ShouldStop | None = None) -> dict[str, Any]:
    """Prune, recover and measure one cell (:func:`gancompress.recipe.prune_and_recover`); returns its record."""
    from .loading import load_bundle
    from .prune import achieved_sparsity

    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    read = config.inputs
    dense = load_bundle(read.source, read.load)
    pconf = setting_prune_config(cell["sparsity"], cell["granularity"], allocation=cell.get("allocation", "uniform"),
                                 keep_dense=config.keep_dense, importance=config.importance)
    setting = Setting(pconf, replace(config.recovery, method=cell["method"]), config.schedule, cell["seed"])
    pruned_path = folder / "pruned.safetensors"
    runtime = config.runtime
    if runtime.tensorboard is not None:  # one folder of events per cell
        runtime = replace(runtime, tensorboard=runtime.tensorboard / folder.name)
    done = prune_and_recover(read.source, setting, read.data, pruned_path, folder / "model.safetensors",
                             runtime=runtime, on_event=on_event, should_stop=should_stop, load=read.load,
                             discriminator=read.discriminator)
    m = config.measure
    numbers = measure(done.model, read.source, m.num_samples, m.seed, config.device, read.load, read.data,
                      extractor=m.extractor, amp=runtime.amp, test_data=m.test_data, fid=m.fid)
    bundle = load_bundle(str(done.model), read.load)
    achieved = achieved_sparsity(bundle.generator, bundle.masks)["all"]
    write_samples([("dense", read.source), (cell_key(cell), done.model)], folder / "samples.png", m.grid_columns, m.seed,
                  read.load)
    quantized: dict[str, Any] = {}
    if m.quantize:  # the same recovered model in 8 bits (sparse exports), measured the same way
        numbers["file_bytes"], quantized = measure_exports(done.model, read.source, m.quantize, folder, m,
                                                           config.device, read.load, read.data, amp=runtime.amp)
    if not config.keep_checkpoints:
        exports = [folder / f"model.{q}.safetensors" for q in ("sparse", *m.quantize)]
        for p in (pruned_path, folder / "model.safetensors", *exports):
            p.unlink(missing_ok=True)
    return {**cell, **numbers, "quantized": quantized, "achieved_sparsity": achieved, "finetune_seconds": round(done.seconds, 2),
            "seconds": round(time.perf_counter() - started, 2), "samples": str(folder / "samples.png"),
            "model": str(done.model) if config.keep_checkpoints else None}


# --------------------------------------------------------------------------- the sweep


@dataclass
class SweepResult:
    out_dir: Path
    dense: dict[str, Any]
    cells: list[dict[str, Any]]
    table: list[dict[str, Any]]
    ran: int
    skipped: int
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "dense": self.dense, "table": self.table, "cells": self.cells,
                "ran": self.ran, "skipped": self.skipped, "files": self.files}


def _recorded_cells(config: SweepConfig) -> dict[str, dict[str, Any]]:
    """Finished cells: each one's ``cells/<key>/result.json`` (written last, so its presence means done)."""
    found = {}
    for path in sorted((config.out_dir / "cells").glob(f"*/{CELL_RESULT}")):
        try:
            found[path.parent.name] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a damaged record: the cell runs again
    return found


def _per_method(record: dict[str, Any], key: str, methods: list[str]) -> dict[str, Any]:
    """The value of ``key`` each method ran at in a recorded sweep: its ``<key>_by_method`` entry, else the
    value given for every method (None where neither says: a record that cannot tell)."""
    by_method = _by_method(record, key)
    return {m: by_method.get(m, record.get(key)) for m in methods}


def _ran_before(record: dict[str, Any], key: str) -> dict[str, Any]:
    """What a record knows of ``key`` for the methods it ran (kept beside this run's in the new record)."""
    listed = record.get("methods")
    methods = [m for m in listed if isinstance(m, str)] if isinstance(listed, list) else []
    return {m: v for m, v in {**_per_method(record, key, methods), **_by_method(record, key)}.items() if v is not None}


def _by_method(record: dict[str, Any], key: str) -> dict[str, Any]:
    by_method = record.get(f"{key}_by_method")
    return by_method if isinstance(by_method, dict) else {}


def _load_state(config: SweepConfig) -> dict[str, Any]:
    path = config.out_dir / STATE_FILE
    if not path.exists():
        return {"config": config.record(), "dense": None, "cells": _recorded_cells(config)}
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not a readable sweep record ({exc}); move it away or choose another --out-dir") from None
    old, new = state.get("config", {}), config.record()
    old = {**{k: new[k] for k in LATER_KEYS if k not in old}, **BEFORE_KEYS, **old}
    methods = list(config.methods)  # the cells reused are this run's methods'
    ran_at = {key: _per_method(old, key, methods) for key in PER_METHOD_KEYS}
    runs_at = {key: new[f"{key}_by_method"] for key in PER_METHOD_KEYS}  # config.record() resolved them per method
    changed = [(k, old.get(k), new.get(k)) for k in RESUME_KEYS if k not in PER_METHOD_KEYS and old.get(k) != new.get(k)]
    changed += [(k, ran_at[k], runs_at[k]) for k in PER_METHOD_KEYS if ran_at[k] != runs_at[k]]
    if changed:
        diff = ", ".join(f"{k}: {was!r} -> {now!r}" for k, was, now in changed)
        raise InputError(f"{config.out_dir} holds a sweep with other settings ({diff}); "
                         "use another --out-dir (finished cells are reused only with the same settings)")
    state["config"] = {**old, **{k: new[k] for k in ("sparsities", "granularities", "methods", "seeds")},
                       **{f"{k}_by_method": {**_ran_before(old, k), **runs_at[k]} for k in PER_METHOD_KEYS}}
    state["cells"] = {**state.get("cells", {}), **_recorded_cells(config)}
    return state


def _save_state(config: SweepConfig, state: dict[str, Any]) -> None:
    """Rewrite the index ``sweep.json`` (cells found on disk are merged in: parallel shards may share a folder)."""
    from .io_utils import atomic_write_text

    state["cells"] = {**state.get("cells", {}), **_recorded_cells(config)}
    atomic_write_text(config.out_dir / STATE_FILE, json.dumps(state, indent=2) + "\n", force=True)


def _with_quantized(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each cell, then one entry per 8-bit export measured in it (``quantize``: the scheme; None: float)."""
    out = []
    for c in cells:
        out.append({**c, "quantize": None})
        for scheme, numbers in (c.get("quantized") or {}).items():
            out.append({**c, **numbers, "quantize": scheme, "float_fid": c.get("fid")})
    return out


def summarise(cells: list[dict[str, Any]], dense: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per (granularity, allocation, method, sparsity, 8-bit scheme or float): mean and spread
    (sample std) over seeds; an 8-bit row's ``fid_vs_float`` is the mean of each seed's FID over its float FID."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for c in _with_quantized(cells):
        key = (c["granularity"], c.get("allocation", "uniform"), c["method"], c["sparsity"], c["quantize"])
        groups.setdefault(key, []).append(c)
    rows = []
    dense_fid = dense.get("fid") if dense else None
    for (gran, allocation, method, sparsity, quantize), items in groups.items():
        row = {"granularity": gran, "allocation": allocation, "method": method, "sparsity": sparsity,
               "seeds": sorted(c["seed"] for c in items), "quantize": quantize}
        for key in ("fid", "psnr", "psnr_gt", "ssim_gt", "achieved_sparsity", "nonzeros", "file_bytes"):
            vals = [c[key] for c in items if c.get(key) is not None]
            row[key] = statistics.fmean(vals) if vals else None
            row[f"{key}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0 if vals else None
        row["fid_ratio"] = row["fid"] / dense_fid if row["fid"] is not None and dense_fid else None
        ratios = [c["fid"] / c["float_fid"] for c in items if c.get("float_fid") and c.get("fid") is not None]
        row["fid_vs_float"] = statistics.fmean(ratios) if ratios else None
        rows.append(row)
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _label(r: dict[str, Any]) -> str:
    """The method, with the 8-bit scheme of a quantized export (``hybrid + int8``)."""
    return f"{r['method']} + {r['quantize']}" if r.get("quantize") else r["method"]


def _order(r: dict[str, Any]) -> tuple:
    return r["granularity"], r.get("allocation", "uniform"), r["method"], r["sparsity"], r.get("quantize") or ""


def markdown_table(table: list[dict[str, Any]], dense: dict[str, Any] | None) -> str:
    """The sweep's table; with ``--quantize``, 8-bit rows (``method + SCHEME``) with their sparse file size and
    FID over the float model's; with an image-to-image model's test images, PSNR/SSIM to the ground truth."""
    quantized = any(r.get("quantize") for r in table)
    truth = any(r.get("psnr_gt") is not None for r in table) or bool(dense and dense.get("psnr_gt") is not None)
    extra = (" G file | x float FID |" if quantized else "") + (" PSNR to GT dB | SSIM to GT |" if truth else "")
    lines = ["| granularity | allocation | method | target | achieved | FID (mean ± std) | x dense | PSNR dB | nonzeros | seeds |"
             + extra, "|---|---|---|---|---|---|---|---|---|---|" + "---|" * extra.count("|")]
    if dense:
        lines.append(f"| dense | - | - | 0% | 0.0% | {_fmt(dense.get('fid'), '.2f')} | 1.00 | - | "
                     f"{dense.get('nonzeros', 0):,} | - |" + (" - | - |" if quantized else "")
                     + (f" {_fmt(dense.get('psnr_gt'), '.2f')} | {_fmt(dense.get('ssim_gt'), '.4f')} |" if truth else ""))
    for r in sorted(table, key=_order):
        line = (f"| {r['granularity']} | {r.get('allocation', 'uniform')} | {_label(r)} | {100 * r['sparsity']:g}% | "
                f"{_fmt(100 * (r['achieved_sparsity'] or 0), '.1f')}% | "
                f"{_fmt(r['fid'], '.2f')} ± {_fmt(r['fid_std'], '.2f')} | {_fmt(r['fid_ratio'], '.2f')} | "
                f"{_fmt(r['psnr'], '.2f')} | {int(r['nonzeros'] or 0):,} | {len(r['seeds'])} |")
        if quantized:
            size = r.get("file_bytes")
            line += f" {'n/a' if size is None else f'{size:,.0f} B'} | {_fmt(r.get('fid_vs_float'), '.3f')} |"
        if truth:
            line += f" {_fmt(r.get('psnr_gt'), '.2f')} ± {_fmt(r.get('psnr_gt_std'), '.2f')} | {_fmt(r.get('ssim_gt'), '.4f')} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def plot(table: list[dict[str, Any]], dense: dict[str, Any] | None, path: Path, title: str = "FID vs sparsity") -> Path:
    """FID vs achieved sparsity, one line per granularity/method (error bars: std over seeds); PSNR to the
    ground truth instead when no FID was measured (an image-to-image model on its test images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io_utils import atomic_write

    key = "fid" if any(r["fid"] is not None for r in table) or not any(r.get("psnr_gt") is not None for r in table) \
        else "psnr_gt"
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    lines: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in table:
        if r.get(key) is None:
            continue
        gran = r["granularity"] if r.get("allocation", "uniform") == "uniform" else f"{r['granularity']}, {r['allocation']}"
        lines.setdefault((gran, _label(r)), []).append(r)
    for (gran, method), rows in sorted(lines.items()):
        rows = sorted(rows, key=lambda r: r["sparsity"])
        xs = [100 * r["sparsity"] for r in rows]
        ax.errorbar(xs, [r[key] for r in rows], yerr=[r[f"{key}_std"] or 0 for r in rows], marker="o", capsize=3,
                    label=f"{method} ({gran})")
    if dense and dense.get(key) is not None:
        ax.axhline(dense[key], color="gray", linestyle="--", label=f"dense ({dense[key]:.1f})")
    ax.set_xlabel("sparsity of all conv weights (%)")
    ax.set_ylabel("FID (lower is better)" if key == "fid" else "PSNR to the ground truth (dB, higher is better)")
    ax.set_yscale("log" if key == "fid" else "linear")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), force=True)
    plt.close(fig)
    return path


def sweep(config: SweepConfig, on_event: OnEvent | None = None, shard: tuple[int, int] = (0, 1),
          should_stop: ShouldStop | None = None) -> SweepResult:
    """Run every cell not yet recorded in ``out_dir``; write the tables and the plot.

    ``shard=(k, n)`` runs only the cells whose index is ``k`` modulo ``n`` (several processes
    may share ``out_dir``); the tables then hold the cells finished so far. When
    ``should_stop()`` turns true the cell in progress saves its resumable state and
    :class:`~gancompress.finetune.FinetuneInterrupted` is raised; finished cells stay recorded.
    """
    from .loading import load_bundle

    emit = on_event or (lambda event: None)
    read = config.inputs
    dense_bundle = load_bundle(read.source, read.load)  # fails early on a bad source
    if dense_bundle.masks:
        raise InputError(f"{read.source} is already pruned; sweep starts from the dense model")
    check_cells(config, dense_bundle.generator)
    check_discriminator(config, dense_bundle)
    for reason in choose_methods(config, dense_bundle):
        emit(Event("sweep", 0, len(config.cells()), {"event": "note", "note": reason}))
    config.out_dir.mkdir(parents=True, exist_ok=True)
    state = _load_state(config)
    cells = config.cells()
    if state.get("dense") is None:
        emit(Event("sweep", 0, len(cells), {"event": "dense"}))
        m = config.measure
        state["dense"] = {**measure(read.source, read.source, m.num_samples, m.seed, config.device, read.load, read.data,
                                    extractor=m.extractor, amp=config.runtime.amp, test_data=m.test_data, fid=m.fid),
                          "sparsity": 0.0}
        _save_state(config, state)
    ran, skipped = _run_cells(config, cells, state, shard, emit, should_stop)
    return _finish(config, cells, state, ran, skipped)


def _run_cells(config: SweepConfig, cells: list[dict[str, Any]], state: dict[str, Any], shard: tuple[int, int],
               emit: OnEvent, should_stop: ShouldStop | None) -> tuple[int, int]:
    from .io_utils import atomic_write_text

    ran = skipped = 0
    for i, cell in enumerate(cells):
        key = cell_key(cell)
        info = {"cell": key, "index": i + 1, "steps": config.recovery.steps}
        if i % shard[1] != shard[0]:
            continue
        if key in state["cells"]:
            skipped += 1
            emit(Event("sweep", i + 1, len(cells), {"event": "cell-skip", **info}))
            continue
        if should_stop is not None and should_stop():
            raise SweepStopped(f"stopped before cell {key}; the {ran} cell(s) finished are recorded in "
                               f"{config.out_dir}: rerun the same command to continue")
        emit(Event("sweep", i, len(cells), {"event": "cell-start", **info}))
        record = run_cell(config, cell, config.out_dir / "cells" / key,
                          on_event=lambda e, key=key: emit(Event(e.stage, e.done, e.total, {**e.info, "cell": key})),
                          should_stop=should_stop)
        atomic_write_text(config.out_dir / "cells" / key / CELL_RESULT, json.dumps(record, indent=2) + "\n", force=True)
        state["cells"][key] = record
        _save_state(config, state)
        ran += 1
        emit(Event("sweep", i + 1, len(cells), {"event": "cell-done", "record": record, **info}))
    return ran, skipped


def _finish(config: SweepConfig, cells: list[dict[str, Any]], state: dict[str, Any], ran: int,
            skipped: int) -> SweepResult:
    from .io_utils import atomic_write_text

    state["cells"] = {**state["cells"], **_recorded_cells(config)}
    chosen = [state["cells"][cell_key(c)] for c in cells if cell_key(c) in state["cells"]]
    table = summarise(chosen, state["dense"])
    files = {"state": str(config.out_dir / STATE_FILE), "markdown": str(config.out_dir / "results.md"),
             "json": str(config.out_dir / "results.json"), "plot": str(config.out_dir / "fid_vs_sparsity.png")}
    atomic_write_text(Path(files["markdown"]), markdown_table(table, state["dense"]), force=True)
    result = SweepResult(config.out_dir, state["dense"], chosen, table, ran, skipped, files)
    atomic_write_text(Path(files["json"]), json.dumps({"config": config.record(), **result.to_json()}, indent=2) + "\n",
                      force=True)
    plot(table, state["dense"], Path(files["plot"]))
    return result


class SweepStopped(Interrupted):
    """``should_stop`` ended the sweep between cells (exit code 130); the finished cells are recorded."""
