"""``FinetuneConfig``: every option of a recovery run, validated on construction.

The defaults are module constants so the reproduction benchmark can settle them in one place.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from .defaults import (DEFAULT_ADV_WEIGHT, DEFAULT_BATCH_SIZE, DEFAULT_BETAS, DEFAULT_INITIAL_SPARSITY, DEFAULT_LAMBDA,
                       DEFAULT_LOG_EVERY, DEFAULT_LR_D, DEFAULT_LR_G, DEFAULT_LR_SCHEDULE, DEFAULT_METHOD, DEFAULT_MU,
                       DEFAULT_R1_EVERY,
                       DEFAULT_RAMP_FRACTION, DEFAULT_SAMPLE_EVERY, DEFAULT_SAVE_EVERY, DEFAULT_STEPS,
                       DEFAULT_STUDENT_MODE, LR_SCHEDULES, STUDENT_MODES)
from .methods import Method, get_method

# Options that may differ between an interrupted run and its --resume.
RESUME_FREE = ("output", "resume", "force", "device", "amp", "log_every", "sample_every", "save_every",
               "trust_pickle")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass
class FinetuneConfig:
    """A fine-tuning (recovery) run. ``loss=None`` takes the architecture's default profile."""

    source: str
    output: Path
    data: str | None = None
    teacher: str | None = None
    discriminator: str | None = None
    inputs: str | None = None
    method: str = DEFAULT_METHOD
    loss: str | None = None
    lam: float = DEFAULT_LAMBDA
    mu: float = DEFAULT_MU
    adv_weight: float = DEFAULT_ADV_WEIGHT
    steps: int = DEFAULT_STEPS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr_g: float = DEFAULT_LR_G
    lr_d: float = DEFAULT_LR_D
    betas: tuple[float, float] = DEFAULT_BETAS
    lr_schedule: str = DEFAULT_LR_SCHEDULE
    sparsity: float | None = None
    granularity: str = "element"
    allocation: str = "uniform"
    keep_dense: str = "auto"
    block: tuple[int, int] = (4, 4)
    nm: tuple[int, int] = (2, 4)
    nm_axis: str = "in"
    plan: dict[str, float] | None = None
    scope: str = "layer"
    prune_first_last: bool = False
    coupled: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    ramp_fraction: float = DEFAULT_RAMP_FRACTION
    initial_sparsity: float = DEFAULT_INITIAL_SPARSITY
    mask_every: int | None = None
    freeze_discriminator: bool = False
    student_mode: str = DEFAULT_STUDENT_MODE
    r1_gamma: float = 0.0
    r1_every: int = DEFAULT_R1_EVERY
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    log_every: int = DEFAULT_LOG_EVERY
    sample_every: int = DEFAULT_SAMPLE_EVERY
    save_every: int = DEFAULT_SAVE_EVERY
    resume: bool = False
    force: bool = False
    trust_pickle: bool = False
    crop: int | None = None
    direction: str = "AtoB"
    perceptual_weights: str | None = None
    sr_blur: float = 0.0
    sr_noise: float = 0.0

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.include, self.exclude = tuple(self.include), tuple(self.exclude)
        _check_choices(self)
        prune = self.prune_config()
        if prune is not None:
            self.block, self.nm = prune.block, prune.nm
        _check_numbers(self)

    @property
    def recipe(self) -> Method:
        return get_method(self.method)

    @property
    def uses_discriminator(self) -> bool:
        return self.recipe.uses_d

    @property
    def trains_discriminator(self) -> bool:
        return self.recipe.trains_d and not self.freeze_discriminator

    @property
    def prunes(self) -> bool:
        """True when this run prunes (``--sparsity``, or ``--granularity nm``, which implies it)."""
        return self.sparsity is not None or self.granularity == "nm" or self.plan is not None

    def prune_config(self, input_shape: tuple[int, ...] | None = None):
        """The :class:`~gancompress.prune.PruneConfig` of a pruning run (None when it does not prune);
        ``input_shape``: the per-sample input that ``coupled`` traces the generator at."""
        if not self.prunes:
            return None
        from ..prune import PruneConfig

        return PruneConfig(self.sparsity, granularity=self.granularity, allocation=self.allocation,
                           keep_dense=self.keep_dense, block=self.block, nm=self.nm, nm_axis=self.nm_axis,
                           include=self.include, exclude=self.exclude, coupled=self.coupled,
                           input_shape=input_shape if self.coupled else None, scope=self.scope,
                           prune_first_last=self.prune_first_last, plan=self.plan)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings, tuples as lists)."""
        return json.loads(json.dumps(asdict(self), default=str))

    def resume_key(self) -> dict[str, Any]:
        """The options an interrupted run and its resume must share."""
        d = self.to_dict()
        return {k: v for k, v in d.items() if k not in RESUME_FREE}


def _check_choices(c: FinetuneConfig) -> None:
    get_method(c.method)
    if c.loss is not None:
        from ..losses import LOSSES

        LOSSES.get(c.loss)
    if c.student_mode not in STUDENT_MODES:
        raise InputError(f"--student-mode {c.student_mode!r}: choose eval or train")
    if c.direction not in ("AtoB", "BtoA"):
        raise InputError(f"--direction {c.direction!r}: choose AtoB or BtoA")
    if not _DEVICE.match(c.device):
        raise InputError(f"--device {c.device!r}: use auto, cpu, cuda or cuda:N")
    if c.uses_discriminator and not c.data:
        raise InputError(f"method {c.method} trains against the discriminator and needs real images: pass --data FOLDER "
                         "(or builtin:digits), or use --method distill, which needs neither images nor a discriminator")
    c.prune_config()


def _positive(name: str, value: Any, *, integer: bool = False, zero_ok: bool = False) -> None:
    bad = isinstance(value, bool) or (integer and not isinstance(value, int)) or not isinstance(value, (int, float))
    if bad or value < 0 or (value == 0 and not zero_ok) or value != value:
        need = "a non-negative" if zero_ok else "a positive"
        raise InputError(f"--{name.replace('_', '-')} must be {need} {'integer' if integer else 'number'}, got {value!r}")


def check_recovery_settings(c: Any) -> None:
    """The settings a fine-tuning run and a sweep share: ``lr_g``, ``lr_d``, ``lr_schedule`` and
    the loss weights ``lam``, ``mu``, ``adv_weight`` (``c``: a FinetuneConfig or SweepConfig)."""
    if c.lr_schedule not in LR_SCHEDULES:
        raise InputError(f"--lr-schedule {c.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
    for name in ("lr_g", "lr_d"):
        _positive(name, getattr(c, name))
    for name in ("lam", "mu", "adv_weight"):
        _positive(name, getattr(c, name), zero_ok=True)


def _check_numbers(c: FinetuneConfig) -> None:
    _positive("steps", c.steps, integer=True)
    _positive("batch_size", c.batch_size, integer=True)
    check_recovery_settings(c)
    _positive("r1_gamma", c.r1_gamma, zero_ok=True)
    for name in ("log_every", "sample_every", "save_every"):
        _positive(name, getattr(c, name), integer=True, zero_ok=True)
    _positive("r1_every", c.r1_every, integer=True)
    if c.crop is not None:
        _positive("crop", c.crop, integer=True)
    for name in ("sr_blur", "sr_noise"):
        _positive(name, getattr(c, name), zero_ok=True)
    if c.mask_every is not None:
        _positive("mask_every", c.mask_every, integer=True)
    if len(c.betas) != 2 or not all(0.0 <= b < 1.0 for b in c.betas):
        raise InputError(f"Adam betas must be two numbers in [0, 1), got {c.betas}")
    if not 0.0 < c.ramp_fraction <= 1.0:
        raise InputError(f"--ramp-fraction must be in (0, 1], got {c.ramp_fraction}")
    if not 0.0 <= c.initial_sparsity < 1.0:
        raise InputError(f"initial sparsity must be in [0, 1), got {c.initial_sparsity}")
    if isinstance(c.seed, bool) or not isinstance(c.seed, int) or not 0 <= c.seed < 2**31:
        raise InputError(f"--seed must be an integer in [0, 2^31), got {c.seed!r}")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda[:N]`` must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: no CUDA device is available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def config_fields() -> list[str]:
    return [f.name for f in fields(FinetuneConfig)]
