"""``run_finetune``: the recovery loop with logging, samples, checkpoints, resume and guards."""
from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, Interrupted, NonFiniteLoss
from ..io_utils import check_writable
from ..progress import Event, OnEvent, ShouldStop
from .config import FinetuneConfig, resolve_device
from .distributed import World, activated, any_rank, barrier, device_for, has_batchnorm, init_world
from .board import Board, check_board_dir, require_tensorboard
from .outputs import RunLog, sample_grid, save_output, write_png
from .setup import Setup, build_setup
from .state import RunPaths, check_compatible, load_state, save_state
from .guard import NonFiniteStep, check_finite_outputs, collapse
from .trainer import Trainer

SAMPLE_COUNT = 8
PROBE_COUNT = 4


class FinetuneInterrupted(Interrupted):
    """Stopped by ``should_stop`` (the CLI: Ctrl-C or SIGTERM): a resumable state was saved (exit code 130)."""


@dataclass
class FinetuneResult:
    output: Path
    steps: int
    method: str
    loss: str
    teacher: str
    metrics: dict[str, float]
    sparsity: dict[str, float]
    target_sparsity: float | None
    log: Path | None
    samples: Path | None
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def check_outputs(config: FinetuneConfig, paths: RunPaths) -> None:
    """Refuse to clobber an output, an input, or an interrupted run's state (before any work)."""
    if config.run.tensorboard is not None:
        require_tensorboard()
        check_board_dir(config.run.tensorboard)
    inputs = tuple(Path(s) for s in (config.source, config.teacher, config.discriminator) if s)
    for path in (paths.output, paths.log, paths.state):  # never an input, a device or a folder, even with --force
        check_writable(path, force=True, inputs=inputs)
    if config.run.resume:
        return
    if paths.state.exists() and not config.run.force:
        raise InputError(f"an interrupted run left {paths.state}: pass --resume to continue it, or --force to start over")
    if paths.output.exists() and not config.run.force:
        raise InputError(f"{paths.output} already exists; pass --force to overwrite it or choose another -o")
    check_writable(paths.output, force=config.run.force)


def _clear_previous(paths: RunPaths) -> None:
    paths.state.unlink(missing_ok=True)
    if paths.samples.is_dir():
        shutil.rmtree(paths.samples)


def run_finetune(config: FinetuneConfig, on_event: OnEvent | None = None,
                 should_stop: ShouldStop | None = None) -> FinetuneResult:
    """Recover a pruned generator (see the package docstring). Writes nothing on bad input.

    ``on_event`` gets ``Event("finetune", step, steps, metrics)`` after every step. When
    ``should_stop()`` turns true (checked between steps; a ``KeyboardInterrupt`` raised by either
    callback counts as true), the resumable state is saved and :class:`FinetuneInterrupted` raised.
    Under ``torchrun`` (``WORLD_SIZE`` > 1, or an initialised process group) every process
    calls this; they train data-parallel on slices of the global batch, rank 0 writes the
    files and reports events, and all stop after the same step (see :mod:`.distributed`).
    """
    started = time.perf_counter()
    paths = RunPaths.for_output(config.run.output)
    check_outputs(config, paths)
    device = resolve_device(config.run.device)
    with activated(init_world(config.run.device)) as world:
        device = device_for(world, device)
        setup = build_setup(config)
        config = setup.config  # the method a per-run choice (auto) picked
        try:
            return _run(config, setup, paths, device, world, (on_event, should_stop), started)
        finally:  # no DataLoader worker outlives the run (one left at exit is killed and fails the process)
            if getattr(setup.sampler, "stream", None) is not None:
                setup.sampler.stream.close()


def _run(config: FinetuneConfig, setup: Setup, paths: RunPaths, device, world: World | None,
         callbacks: tuple[OnEvent | None, ShouldStop | None], started: float) -> FinetuneResult:
    main = world is None or world.is_main
    trainer = Trainer(setup, config, device, world)
    metrics: dict[str, float] = {}
    if config.run.resume:
        state = load_state(paths.state)
        check_compatible(config.resolve_saved_key(state.config), config.resume_key(), paths.state)
        trainer.load(state)
        metrics = state.metrics
    else:
        if main:
            _clear_previous(paths)
        if config.recipe.trains_generator:
            trainer.begin()
    if config.recipe.trains_generator:
        on_event, should_stop = callbacks
        try:
            metrics = _train(trainer, setup, paths, (on_event if main else None, should_stop), metrics)
        finally:
            if getattr(setup.sampler, "stream", None) is not None:  # stop the DataLoader workers
                setup.sampler.stream.close()
    else:
        trainer.done = config.recovery.steps
    trainer.finish_schedule()
    if main:
        save_output(paths.output, trainer, setup, metrics, completed=True)
        paths.state.unlink(missing_ok=True)
    barrier()  # every rank returns once the output exists
    return _result(trainer, setup, paths, metrics, time.perf_counter() - started)


def _notes(config: FinetuneConfig, trainer: Trainer) -> list[str]:
    notes = list(trainer.setup.notes)
    notes += trainer.speed_notes
    if config.run.amp != "none" and trainer.device.type == "cpu":
        notes.append(f"--amp {config.run.amp} on the CPU: autocast runs, but is usually slower than float32 there")
    if trainer.collapsed:
        mine, teacher = trainer.collapsed
        notes.append(f"the compressed generator's output collapsed: it hardly varies with its input (spread {mine:.2g} "
                     f"vs the teacher's {teacher:.2g}), e.g. a saturated output layer; rerun with a longer "
                     f"--lr-warmup (e.g. 50) or a lower --lr-g")
    weights = config.recovery.weights
    if (weights.adv_schedule != "constant" or weights.d_warmup) and "adv" not in config.recipe.terms:
        notes.append(f"--adv-schedule/--d-warmup shape the adversarial term of distill-adv and finetune; "
                     f"method {config.recovery.method} has none, so they changed nothing")
    if config.recovery.freeze_discriminator and config.uses_discriminator:
        notes.append("the discriminator is frozen: its pretrained verdicts stay fixed"
                     + ("; an adversarial term can exploit a frozen D" if "adv" in config.recipe.terms else ""))
    world = trainer.world
    if world is not None:
        per = -(-trainer.setup.sampler.size // world.size)
        notes.append(f"trained on {world.size} processes (torch.distributed); the global batch of "
                     f"{trainer.setup.sampler.size} was split into slices of up to {per}")
        per_slice = [name for name, net, trained in (("discriminator", trainer.d, config.trains_discriminator),
                                                     ("student", trainer.student, config.recovery.student_mode == "train"))
                     if trained and has_batchnorm(net)]
        if per_slice and trainer.device.type != "cuda":
            notes.append(f"BatchNorm in the {' and '.join(per_slice)} in train mode: each process normalised its "
                         "own slice (SyncBatchNorm needs GPUs), so results differ slightly from one process")
    return notes


def _result(trainer: Trainer, setup: Setup, paths: RunPaths, metrics: dict[str, float], seconds: float) -> FinetuneResult:
    cfg = trainer.config
    return FinetuneResult(
        paths.output, trainer.done, cfg.recovery.method, setup.loss_name, setup.teacher_source, metrics, trainer.achieved(),
        trainer.schedule.final if trainer.schedule else None,
        paths.log if cfg.run.log_every and cfg.recipe.trains_generator else None,
        paths.samples if cfg.run.sample_every and cfg.recipe.trains_generator else None, round(seconds, 3), _notes(cfg, trainer))


def _due(every: int, k: int, steps: int) -> bool:
    return bool(every) and (k % every == 0 or k == steps)


def _train(trainer: Trainer, setup: Setup, paths: RunPaths, callbacks: tuple[OnEvent | None, ShouldStop | None],
           metrics: dict[str, float]) -> dict[str, float]:
    cfg = trainer.config
    main = trainer.world is None or trainer.world.is_main
    steps = cfg.recovery.steps
    # the first batch is read before any file is written: unreadable data leaves nothing behind
    pending = setup.sampler.draw(trainer.done, trainer.device) if trainer.done < steps else None
    reports = _Reports.open(trainer, setup, paths) if main else _Reports()
    probe = setup.sampler.fixed(PROBE_COUNT, trainer.device)  # a checkpoint is saved only if these give finite outputs
    saved = trainer.done if cfg.run.resume else None
    try:
        while trainer.done < steps:
            k = trainer.done + 1
            batch, pending = pending if pending is not None else setup.sampler.draw(trainer.done, trainer.device), None
            try:
                metrics = trainer.step(batch, monitor=_due(cfg.run.log_every, k, steps))
                if (cfg.run.save_every and k % cfg.run.save_every == 0) or k == steps:
                    check_finite_outputs(trainer.result, probe)
            except NonFiniteStep as exc:
                raise NonFiniteLoss(_non_finite_message(k, exc, saved, paths, reports.log)) from None
            reports.after_step(k, metrics)
            if cfg.run.save_every and k % cfg.run.save_every == 0 and k < steps:
                if main:
                    _checkpoint(trainer, setup, paths, metrics)
                saved = k
            if _stop_requested(callbacks, Event("finetune", k, steps, metrics), trainer):
                if main:
                    _checkpoint(trainer, setup, paths, metrics)
                barrier()
                raise FinetuneInterrupted(
                    f"interrupted after step {k} of {steps}; state saved to {paths.state}: "
                    "rerun the same command with --resume to continue") from None
        trainer.collapsed = collapse(trainer.result, trainer.teacher, probe)
    finally:
        reports.close()
    return metrics


@dataclass
class _Reports:
    """What rank 0 writes while training: the JSON-lines log, the sample grids, the TensorBoard events."""

    trainer: Trainer | None = None
    paths: RunPaths | None = None
    log: RunLog | None = None
    board: Board | None = None
    fixed: Any = None  # the sample grids' inputs
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def open(cls, trainer: Trainer, setup: Setup, paths: RunPaths) -> "_Reports":
        run = trainer.config.run
        board = Board(run.tensorboard, resume_step=trainer.done if run.resume else None) if run.tensorboard else None
        return cls(trainer, paths, _open_log(trainer, setup, paths) if run.log_every else None, board,
                   setup.sampler.fixed(SAMPLE_COUNT, trainer.device) if run.sample_every else None)

    def after_step(self, k: int, metrics: dict[str, float]) -> None:
        if self.trainer is None:
            return
        run, steps = self.trainer.config.run, self.trainer.config.recovery.steps
        if _due(run.log_every, k, steps):
            record = {"step": k, **metrics, **self.trainer.rates(), "seconds": round(time.perf_counter() - self.started, 3)}
            if self.log is not None:
                self.log.write(record)
            if self.board is not None:
                self.board.log(record)
        if self.fixed is not None and _due(run.sample_every, k, steps):
            grid = sample_grid(self.trainer, self.fixed, self.trainer.setup.info.output_range)
            write_png(self.paths.samples / f"step_{k:06d}.png", grid)
            if self.board is not None:
                self.board.image(grid, k)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def _open_log(trainer: Trainer, setup: Setup, paths: RunPaths) -> RunLog:
    cfg, world = trainer.config, trainer.world
    log = RunLog(paths.log, resume_step=trainer.done if cfg.run.resume else None)
    if not cfg.run.resume:
        log.write({"step": 0, "event": "start", "config": cfg.to_dict(), "loss": setup.loss_name,
                   "teacher": setup.teacher_source, "device": str(trainer.device),
                   **({"world_size": world.size} if world is not None else {})})
    return log


def _stop_requested(callbacks: tuple[OnEvent | None, ShouldStop | None], event: Event, trainer: Trainer) -> bool:
    """Report ``event``, then ask ``should_stop``; every rank stops after the same step."""
    on_event, should_stop = callbacks
    try:
        if on_event is not None:
            on_event(event)
        stop = bool(should_stop is not None and should_stop())
    except KeyboardInterrupt:
        stop = True
    if trainer.world is not None:
        stop = any_rank(stop, trainer.device)
    return stop


def _checkpoint(trainer: Trainer, setup: Setup, paths: RunPaths, metrics: dict[str, float]) -> None:
    save_state(paths.state, trainer.state(metrics))
    save_output(paths.output, trainer, setup, metrics, completed=False)


def _non_finite_message(k: int, exc: NonFiniteStep, saved: int | None, paths: RunPaths, log: RunLog | None) -> str:
    kept = (f"the last good checkpoint (step {saved}, finite outputs) is kept in {paths.output} and {paths.state}" if saved
            else f"{paths.output} was not written")
    where = f"; the log of the steps before is {paths.log}" if log is not None else ""
    return (f"step {k}: {exc.what} became {exc.value}; training stopped and {kept}{where}. "
            "Lower --lr-g/--lr-d, or try another --loss")
