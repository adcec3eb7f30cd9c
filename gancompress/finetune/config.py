"""``FinetuneConfig``: a recovery run, composed of small parts that each validate themselves once.

- :class:`~gancompress.loading.LoadOptions`: the SOURCE and how to read it (also for the teacher
  and ``--discriminator``);
- :class:`~gancompress.prune.PruneConfig` or None: what to prune gradually (AGP) on a dense input;
- :class:`RecoveryConfig`: the method, its :class:`LossWeights`, the optimiser :class:`Rates`, the
  :class:`PruneSchedule`, steps and batch size (shared by finetune, sweep and demo);
- :class:`DataConfig`: the images; :class:`RunConfig`: output, seed, device, logging, resume.

:meth:`FinetuneConfig.from_options` builds one from the flat option names of the CLI.
The defaults are module constants (:mod:`.defaults`) so the reproduction benchmark settles them in one place.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..devices import check_amp, resolve_device  # noqa: F401  (resolve_device: re-exported)
from ..errors import InputError
from ..registry import unknown_choice
from ..loading import LoadOptions
from ..prune import PruneConfig
from ..prune.recalibrate import check_batches
from .defaults import (ADV_SCHEDULES, DEFAULT_ADV_SCHEDULE, DEFAULT_ADV_WEIGHT, DEFAULT_D_WARMUP, DEFAULT_BETAS, DEFAULT_INITIAL_SPARSITY, DEFAULT_LAMBDA,
                       DEFAULT_LOG_EVERY, DEFAULT_LR_G, DEFAULT_LR_SCHEDULE, DEFAULT_LR_WARMUP, DEFAULT_METHOD, DEFAULT_MU,
                       DEFAULT_PL_EVERY, DEFAULT_PL_WEIGHT, DEFAULT_R1_EVERY, DEFAULT_RAMP_FRACTION,
                       DEFAULT_SAMPLE_EVERY, DEFAULT_SAVE_EVERY, DEFAULT_STEPS, DEFAULT_STUDENT_MODE, LR_SCHEDULES, recovery_importance,
                       STUDENT_MODES)
from .methods import Method, get_method

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_positive(name: str, value: Any, *, integer: bool = False, zero_ok: bool = False) -> None:
    """``--name`` must be a positive (or, ``zero_ok``, non-negative) number (``integer``: an int)."""
    bad = isinstance(value, bool) or (integer and not isinstance(value, int)) or not isinstance(value, (int, float))
    if bad or not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        need = "a non-negative" if zero_ok else "a positive"
        raise InputError(f"--{name.replace('_', '-')} must be {need} {'integer' if integer else 'number'}, got {value!r}")


@dataclass(frozen=True)
class LossWeights:
    """``lam``: L_DC (self-supervised, hybrid); ``mu``: the L1 in hybrid; ``adv_weight``: the GAN loss
    in distill-adv; ``r1_gamma``/``r1_every``: the R1 penalty on D (None: the loss profile's own,
    see :func:`resolve_r1`); ``pl_weight``/``pl_every``: StyleGAN2's path-length regulariser on G_C
    (0: off), every ``pl_every`` steps; ``feature_weight``: intermediate-feature distillation to the
    teacher through learned 1x1 adapters (0: off; see :mod:`.features`); ``adv_schedule``/``d_warmup``:
    the adversarial term's weight over the run and the steps before it counts (see :func:`adv_factor`)."""

    lam: float = DEFAULT_LAMBDA
    mu: float = DEFAULT_MU
    adv_weight: float = DEFAULT_ADV_WEIGHT
    r1_gamma: float | None = None  # None: the loss profile's own (StyleGAN2: 10), else off
    r1_every: int | None = None  # None: the loss profile's own (StyleGAN2: 16), else DEFAULT_R1_EVERY
    pl_weight: float = DEFAULT_PL_WEIGHT
    pl_every: int = DEFAULT_PL_EVERY
    feature_weight: float = 0.0  # intermediate-feature distillation through learned 1x1 adapters (0: off; .features)
    adv_schedule: str = DEFAULT_ADV_SCHEDULE
    d_warmup: int = DEFAULT_D_WARMUP

    def __post_init__(self) -> None:
        check_positive("pl_every", self.pl_every, integer=True)
        check_positive("d_warmup", self.d_warmup, integer=True, zero_ok=True)
        if self.adv_schedule not in ADV_SCHEDULES:
            raise unknown_choice("adversarial weight schedule (--adv-schedule)", self.adv_schedule, ADV_SCHEDULES)
        for name in ("lam", "mu", "adv_weight", "pl_weight", "feature_weight"):
            check_positive(name, getattr(self, name), zero_ok=True)
        if self.r1_gamma is not None:
            check_positive("r1_gamma", self.r1_gamma, zero_ok=True)
        if self.r1_every is not None:
            check_positive("r1_every", self.r1_every, integer=True)


def adv_factor(weights: LossWeights, done: int, total: int, ramp_end: int) -> float:
    """The multiplier of G_C's adversarial term in step ``done + 1`` of ``total``: 0 during the first
    ``d_warmup`` steps (D alone learns real vs G_C's fakes); then ``constant`` 1, ``ramp`` rising
    linearly from 0 to 1 over the AGP ramp (``ramp_end`` steps, from the end of the warm-up) and held, ``decay``
    1 until ``ramp_end``, then falling linearly to 0 after the last step."""
    if done < weights.d_warmup:
        return 0.0
    if weights.adv_schedule == "ramp":
        start = weights.d_warmup
        return min(1.0, (done - start) / max(1, ramp_end - start))
    if weights.adv_schedule == "decay" and done >= ramp_end:
        return max(0.0, 1.0 - (done - ramp_end) / max(1, total - ramp_end))
    return 1.0


def resolve_r1(weights: LossWeights, profile: Any) -> tuple[float, int]:
    """(gamma, every) of R1 on D: the options when given, else the loss profile's own."""
    gamma = weights.r1_gamma if weights.r1_gamma is not None else float(getattr(profile, "r1_gamma", 0.0))
    every = weights.r1_every if weights.r1_every is not None else (getattr(profile, "r1_every", None) or DEFAULT_R1_EVERY)
    return gamma, every


@dataclass(frozen=True)
class Rates:
    """Adam learning rates of G_C and D (``lr_d`` None: the method's own, :attr:`RecoveryConfig.lr_d`), betas,
    and lr_g over the run (constant or cosine, after a linear warm-up over ``lr_warmup`` steps when > 0)."""

    lr_g: float = DEFAULT_LR_G
    lr_d: float | None = None
    betas: tuple[float, float] = DEFAULT_BETAS
    lr_schedule: str = DEFAULT_LR_SCHEDULE
    lr_warmup: int = DEFAULT_LR_WARMUP

    def __post_init__(self) -> None:
        check_positive("lr_warmup", self.lr_warmup, integer=True, zero_ok=True)
        if self.lr_schedule not in LR_SCHEDULES:
            raise unknown_choice("learning-rate schedule (--lr-schedule)", self.lr_schedule, LR_SCHEDULES)
        check_positive("lr_g", self.lr_g)
        if self.lr_d is not None:
            check_positive("lr_d", self.lr_d)
        betas = tuple(float(b) for b in self.betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise InputError(f"Adam betas must be two numbers in [0, 1), got {self.betas}")
        object.__setattr__(self, "betas", betas)


@dataclass(frozen=True)
class PruneSchedule:
    """AGP (Zhu & Gupta): sparsity rises from ``initial_sparsity`` to the target over ``ramp_fraction``
    of the steps, masks recomputed every ``mask_every`` steps (None: about 20 times on the ramp);
    ``regrow``: the pruned weights keep training in a dense copy until the ramp ends, and each mask
    update ranks that copy (:mod:`.regrow`); ``recalibrate_bn``: after each mask update (and before
    training when the input is pruned) the BatchNorms' running statistics are re-estimated on that many
    batches of the student's inputs (:mod:`gancompress.prune.recalibrate`; 0: off)."""

    ramp_fraction: float = DEFAULT_RAMP_FRACTION
    initial_sparsity: float = DEFAULT_INITIAL_SPARSITY
    mask_every: int | None = None
    regrow: bool = False  # pruning with feedback: pruned weights keep training and may return (see .regrow)
    recalibrate_bn: int = 0  # batches per BatchNorm recalibration (see prune.recalibrate); 0: off

    def __post_init__(self) -> None:
        if not isinstance(self.regrow, bool):
            raise InputError(f"--regrow is on or off (true/false), got {self.regrow!r}")
        check_batches(self.recalibrate_bn)
        if not 0.0 < self.ramp_fraction <= 1.0:
            raise InputError(f"--ramp-fraction must be in (0, 1], got {self.ramp_fraction}")
        if not 0.0 <= self.initial_sparsity < 1.0:
            raise InputError(f"initial sparsity must be in [0, 1), got {self.initial_sparsity}")
        if self.mask_every is not None:
            check_positive("mask_every", self.mask_every, integer=True)


@dataclass(frozen=True)
class RecoveryConfig:
    """How a pruned generator is recovered; ``loss=None`` takes the architecture's own profile."""

    method: str = DEFAULT_METHOD
    loss: str | None = None
    weights: LossWeights = field(default_factory=LossWeights)
    rates: Rates = field(default_factory=Rates)
    schedule: PruneSchedule = field(default_factory=PruneSchedule)
    steps: int = DEFAULT_STEPS
    batch_size: int | None = None  # None: the method's own (hybrid 128, the others 64; see defaults.py)
    freeze_discriminator: bool = False
    student_mode: str = DEFAULT_STUDENT_MODE
    perceptual_weights: str | None = None  # super-resolution: a VGG19 state dict for ESRGAN's perceptual term
    quantize_aware: str | None = None  # an 8-bit scheme (formats.quantize.SCHEMES): G_C trains through fake quantization
    ema_decay: float | None = None  # an EMA of G_C (saved and evaluated instead of it); None: off (see .ema)

    def __post_init__(self) -> None:
        method = get_method(self.method)
        if self.ema_decay is not None and (isinstance(self.ema_decay, bool) or not isinstance(self.ema_decay, (int, float))
                                           or not 0.0 < self.ema_decay < 1.0):
            raise InputError(f"--ema-decay must be a number in (0, 1), e.g. 0.999, got {self.ema_decay!r}")
        if self.ema_decay is not None and not method.trains_generator:
            raise InputError(f"--ema-decay averages a trained generator; method {self.method} trains none: leave it out")
        if self.weights.feature_weight and not method.uses_teacher:
            raise InputError(f"--feature-weight distils the teacher's features; method {self.method} does not use the "
                             "teacher: use distill, distill-adv or hybrid, or leave --feature-weight out")
        if self.quantize_aware is not None:
            from ..formats.quantize import SCHEMES

            SCHEMES.get(self.quantize_aware)
        if self.loss is not None:
            from ..losses import LOSSES

            LOSSES.get(self.loss)
        if self.student_mode not in STUDENT_MODES:
            raise unknown_choice("student mode", self.student_mode, STUDENT_MODES)
        if self.schedule.recalibrate_bn and self.student_mode == "train":
            raise InputError("--recalibrate-bn re-estimates the statistics an eval-mode student normalises with; with "
                             "--student-mode train BatchNorm uses each batch's own: leave one of them out")
        check_positive("steps", self.steps, integer=True)
        if self.batch_size is not None:
            check_positive("batch_size", self.batch_size, integer=True)
        if self.weights.d_warmup >= self.steps:
            raise InputError(f"--d-warmup {self.weights.d_warmup} leaves no step of the {self.steps} for G_C's adversarial "
                             "term: give fewer warm-up steps than --steps")

    @property
    def recipe(self) -> Method:
        return get_method(self.method)

    @property
    def trains_discriminator(self) -> bool:
        return self.recipe.trains_d and not self.freeze_discriminator

    @property
    def lr_d(self) -> float:
        """D's Adam rate: ``--lr-d`` when given, else the method's own (hybrid's is lower, see defaults.py)."""
        return self.rates.lr_d if self.rates.lr_d is not None else self.recipe.default_lr_d

    @property
    def batch(self) -> int:
        """Images (or latents) per step: ``--batch-size`` when given, else the method's own (hybrid's is larger,
        see defaults.py)."""
        return self.batch_size if self.batch_size is not None else self.recipe.default_batch_size


@dataclass(frozen=True)
class DataConfig:
    """``source``: the ``--data`` images (a folder or builtin:digits); the rest: image-to-image only."""

    source: str | None = None
    inputs: str | None = None  # a folder of A images matched by name with the B images in ``source``
    crop: int | None = None
    sr_blur: float = 0.0
    sr_noise: float = 0.0
    workers: int = 2  # DataLoader processes decoding a streamed folder (0: in the main process)

    def __post_init__(self) -> None:
        if self.crop is not None:
            check_positive("crop", self.crop, integer=True)
        check_positive("workers", self.workers, integer=True, zero_ok=True)
        for name in ("sr_blur", "sr_noise"):
            check_positive(name, getattr(self, name), zero_ok=True)


@dataclass(frozen=True)
class RunConfig:
    """Where the result goes and how the run behaves (none of it changes what is learned, but ``seed``)."""

    output: Path
    seed: int = 0
    device: str = "auto"
    amp: str = "none"  # none, bf16 or fp16 (with a gradient scaler)
    channels_last: bool = False
    compile: bool = False  # torch.compile G_C, G_O and D (eager, with a note, when it fails)
    log_every: int = DEFAULT_LOG_EVERY
    sample_every: int = DEFAULT_SAMPLE_EVERY
    save_every: int = DEFAULT_SAVE_EVERY
    resume: bool = False
    force: bool = False
    tensorboard: Path | None = None  # a folder for TensorBoard events (scalars at log_every, grids at sample_every)

    def __post_init__(self) -> None:
        object.__setattr__(self, "output", Path(self.output))
        if self.tensorboard is not None:
            object.__setattr__(self, "tensorboard", Path(self.tensorboard))
        if not _DEVICE.match(str(self.device)):
            raise InputError(f"--device {self.device!r}: use auto, cpu, cuda, cuda:N or mps")
        if isinstance(self.amp, bool):  # the library's former on/off switch: on meant bf16
            object.__setattr__(self, "amp", "bf16" if self.amp else "none")
        check_amp(self.amp)
        for name in ("log_every", "sample_every", "save_every"):
            check_positive(name, getattr(self, name), integer=True, zero_ok=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**31:
            raise InputError(f"--seed must be an integer in [0, 2^31), got {self.seed!r}")


@dataclass(frozen=True)
class Runtime:
    """How the recoveries of ``sweep`` and ``demo`` run and report on this machine: the options they share
    with ``finetune`` (which holds them in :class:`RunConfig` and :class:`DataConfig`), spelled the same.

    ``tensorboard``: a folder for TensorBoard events (``sweep``: one sub-folder per cell); checked,
    and the package's presence too, when the config is made (before any work)."""

    device: str = "auto"
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    workers: int = 2
    tensorboard: Path | None = None

    def __post_init__(self) -> None:
        if not _DEVICE.match(str(self.device)):
            raise InputError(f"--device {self.device!r}: use auto, cpu, cuda, cuda:N or mps")
        check_amp(self.amp)
        check_positive("workers", self.workers, integer=True, zero_ok=True)
        if self.tensorboard is not None:
            from .board import check_board_dir, require_tensorboard

            object.__setattr__(self, "tensorboard", Path(self.tensorboard))
            require_tensorboard()
            check_board_dir(self.tensorboard)

    def run_config(self, output: Path, **run: Any) -> RunConfig:
        """A :class:`RunConfig` for one recovery (``run``: its seed, logging, ...) under these settings; with
        ``tensorboard`` the log and sample grids are on at their defaults (the events mirror them)."""
        if self.tensorboard is not None:
            run.update(log_every=DEFAULT_LOG_EVERY, sample_every=DEFAULT_SAMPLE_EVERY)
        return RunConfig(output, device=self.device, amp=self.amp, channels_last=self.channels_last,
                         compile=self.compile, tensorboard=self.tensorboard, **run)

    @classmethod
    def take(cls, options: dict[str, Any]) -> Runtime:
        """A runtime from the flat option names in ``options`` (removed from it)."""
        return cls(**{f.name: options.pop(f.name) for f in fields(cls) if f.name in options})


# The parts of a run that an interrupted run and its --resume may change.
RESUME_FREE = {"run": ("output", "device", "amp", "channels_last", "compile", "log_every", "sample_every", "save_every", "resume", "force",
                       "tensorboard"),
               "load": ("trust_pickle",), "data": ("workers",)}


@dataclass(frozen=True)
class FinetuneConfig:
    """A fine-tuning (recovery) run; ``prune`` (with a sparsity) prunes a dense input gradually."""

    load: LoadOptions
    run: RunConfig
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    prune: PruneConfig | None = None
    data: DataConfig = field(default_factory=DataConfig)
    teacher: str | None = None  # the dense generator (default: the input when dense, else its recorded source)
    discriminator: str | None = None  # a checkpoint holding the discriminator, when the input has none

    def __post_init__(self) -> None:
        if not self.load.source:
            raise InputError("give the SOURCE to fine-tune")
        if self.recovery.recipe.uses_d and not self.data.source:
            raise InputError(f"method {self.recovery.method} trains against the discriminator and needs real images: "
                             "pass --data FOLDER (or builtin:digits), or use --method distill, which needs neither "
                             "images nor a discriminator")
        if self.recovery.schedule.regrow and self.prune is None:
            raise InputError("--regrow re-ranks the masks while --sparsity ramps; this run prunes nothing more: "
                             "give --sparsity, or leave --regrow out")

    @property
    def source(self) -> str:
        return str(self.load.source)

    @property
    def output(self) -> Path:
        return self.run.output

    @property
    def recipe(self) -> Method:
        return self.recovery.recipe

    @property
    def uses_discriminator(self) -> bool:
        return self.recipe.uses_d

    @property
    def trains_discriminator(self) -> bool:
        return self.recovery.trains_discriminator

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (paths as strings, tuples as lists)."""
        return json.loads(json.dumps(asdict(self), default=str))

    def resume_key(self) -> dict[str, Any]:
        """The options an interrupted run and its resume must share."""
        d = self.to_dict()
        for part, names in RESUME_FREE.items():
            for name in names:
                d[part].pop(name, None)
        for lever in ("regrow", "recalibrate_bn"):  # off: the key of states saved before the lever existed
            if not d["recovery"]["schedule"].get(lever):
                d["recovery"]["schedule"].pop(lever, None)
        if isinstance(d.get("prune"), dict) and d["prune"].get("importance") == "magnitude":  # what those states ranked by
            d["prune"].pop("importance", None)
        if not self.recipe.is_choice:  # a method chosen (not auto):
            d["recovery"]["batch_size"] = self.recovery.batch  # the values it runs at, given or its own
            d["recovery"]["rates"]["lr_d"] = self.recovery.lr_d
        return d

    def resolve_saved_key(self, saved: dict[str, Any]) -> dict[str, Any]:
        """``saved`` (a resume state's :meth:`resume_key`) with a batch or D rate recorded as None ("the method's
        own", as states saved before :meth:`resume_key` resolved them) read as this config's method's own, so a
        resume compares the values the runs train at, not how they were spelled."""
        recovery = saved.get("recovery")
        if not isinstance(recovery, dict) or recovery.get("method") != self.recovery.method:
            return saved  # the method differs: that is the difference to report
        out = {**saved, "recovery": {**recovery}}
        if out["recovery"].get("batch_size") is None:
            out["recovery"]["batch_size"] = self.recovery.batch
        rates = out["recovery"].get("rates")
        if isinstance(rates, dict) and rates.get("lr_d") is None:
            out["recovery"]["rates"] = {**rates, "lr_d": self.recovery.lr_d}
        return out

    @classmethod
    def from_options(cls, **options: Any) -> FinetuneConfig:
        """A config from the CLI's flat option names (``source``, ``output``, ``steps``, ``lr_g``, ``sparsity``, ...)."""
        parts = {name: _take(options, part) for name, part in _PARTS.items()}
        top = {k: options.pop(k) for k in ("teacher", "discriminator") if k in options}
        if options:
            raise TypeError(f"unknown finetune options: {', '.join(sorted(options))}")
        recovery = RecoveryConfig(**parts["recovery"], weights=LossWeights(**parts["weights"]),
                                  rates=Rates(**parts["rates"]), schedule=PruneSchedule(**parts["schedule"]))
        prune = parts["prune"]
        prune["importance"] = recovery_importance(prune.get("importance"), bool(prune.get("coupled")))
        return cls(load=LoadOptions(**parts["load"]), run=RunConfig(**parts["run"]), recovery=recovery,
                   prune=PruneConfig(**{"sparsity": None, **prune}) if _prunes(prune) else None,
                   data=DataConfig(**{("source" if k == "data" else k): v for k, v in parts["data"].items()}), **top)


def _names(part: type, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(f.name for f in fields(part) if f.name not in skip)


_PARTS: dict[str, tuple[str, ...]] = {
    "load": _names(LoadOptions),
    "run": _names(RunConfig),
    "weights": _names(LossWeights),
    "rates": _names(Rates),
    "schedule": _names(PruneSchedule),
    "recovery": _names(RecoveryConfig, ("weights", "rates", "schedule")),
    "prune": ("sparsity", "granularity", "allocation", "keep_dense", "block", "nm", "nm_axis", "plan", "include",
              "exclude", "scope", "prune_first_last", "coupled", "importance"),
    "data": ("data", "inputs", "crop", "sr_blur", "sr_noise", "workers"),
}


def _take(options: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: options.pop(k) for k in names if k in options}


def _prunes(prune: dict[str, Any]) -> bool:
    """A run prunes with ``--sparsity``, a ``--plan``, or ``--granularity nm`` (which implies it)."""
    return prune.get("sparsity") is not None or prune.get("plan") is not None or prune.get("granularity") == "nm"
