"""The trainable state of a run (G_C, D, optimizers, masks, schedule) and one step of it."""
from __future__ import annotations

import dataclasses

import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from ..archs.contract import num_classes
from ..devices import autocast, enable_tf32, grad_scaler, maybe_compile, to_channels_last, batch_channels_last
from ..errors import InputError
from ..prune import PruneConfig, achieved_sparsity, agp_sparsity, apply_masks, compute_masks, plan_target
from ..data.batches import seed_global
from .config import FinetuneConfig, adv_factor, resolve_r1
from .distributed import World, shard, shard_bounds, unwrap, wrap
from .setup import Setup
from .state import TrainState
from .recovery_levers import extras_state, load_extras, recovery_extras
from ..prune.recalibrate import pruned_any, recalibrate_norms
from .regrow import DenseShadow
from .guard import NonFiniteStep, check_weights  # noqa: F401  (NonFiniteStep: re-exported for the loop)
from .step import (StepOptions, backward_and_step, compute_losses, first_non_finite, has_layer_latents,
                   mask_optimizer_state)

MASK_EVENTS = 20  # AGP mask updates over the ramp when --mask-every is not given


@dataclass
class Schedule:
    """AGP: masks recomputed (with ``previous=``) every ``every`` steps until ``ramp_end``."""

    prune: PruneConfig
    total: int
    final: float
    initial: float
    ramp_fraction: float
    every: int

    @property
    def ramp_end(self) -> int:
        return min(self.total, math.ceil(self.ramp_fraction * self.total))

    def due(self, done: int) -> bool:
        return done <= self.ramp_end and (done % self.every == 0 or done == self.ramp_end)

    def target(self, done: int) -> float:
        return agp_sparsity(done, self.total, self.final, self.initial, self.ramp_fraction)


def lr_factor(kind: str, done: int, total: int, hold: int = 0, warmup: int = 0) -> float:
    """The multiplier of lr_g for step ``done + 1``: 1 for ``constant``; for ``cosine`` 1 until
    step ``hold`` (the end of the AGP ramp), then 0.5 (1 + cos(pi p)) with p the fraction of the
    remaining steps done, reaching 0 after the last step. ``warmup`` > 0 scales the first
    ``warmup`` steps linearly, (done + 1) / warmup: Adam's first steps move every weight by
    about lr_g at once, which can saturate a model trained at a much lower rate."""
    ramp = min(1.0, (done + 1) / warmup) if warmup > 0 else 1.0
    if kind == "constant" or done < hold:
        return ramp
    span = max(1, total - hold)
    return ramp * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (done - hold) / span)))


def make_schedule(config: FinetuneConfig, student: nn.Module, masks: dict,
                  input_shape: tuple[int, ...] | None = None) -> Schedule | None:
    """The AGP schedule of a pruning run (``input_shape``: the per-sample input that ``--coupled``
    traces the generator at). The target is settled here, before any step: an unreachable one
    is refused. Sparsities are of ALL prunable weights, as in ``prune``; with ``nm`` the ramp
    zeroes the weakest weights while every run of M keeps at least N (AGP toward the pattern),
    and the last update completes the N:M pattern."""
    if config.prune is None:
        return None
    traced = tuple(input_shape) if config.prune.coupled and input_shape is not None else None
    prune = dataclasses.replace(config.prune, input_shape=traced)
    plan = plan_target(student, prune, masks or None)
    final = prune.sparsity if prune.sparsity is not None else plan.target / plan.total
    initial = config.recovery.schedule.initial_sparsity
    if masks:
        initial = max(initial, achieved_sparsity(student, masks)["all"])
    initial = min(initial, final)
    ramp_end = max(1, math.ceil(config.recovery.schedule.ramp_fraction * config.recovery.steps))
    every = config.recovery.schedule.mask_every or max(1, round(ramp_end / MASK_EVENTS))
    return Schedule(prune, config.recovery.steps, final, initial, config.recovery.schedule.ramp_fraction, every)


class Trainer:
    """Teacher (frozen), student, discriminator and their optimizers on one device.

    In a multi-process run (``world``) the trained networks are also held as
    ``DistributedDataParallel`` wrappers (``student_net``, ``d_net``; the plain modules stay in
    ``student``/``d`` for masks, state and outputs) and each step trains on this rank's slice
    of the global batch (see :mod:`.distributed`).
    """

    def __init__(self, setup: Setup, config: FinetuneConfig, device: torch.device, world: World | None = None) -> None:
        self.setup, self.config, self.device, self.world = setup, config, device, world
        if world is not None and setup.sampler.size < world.size:
            raise InputError(f"the global batch ({setup.sampler.size}) is smaller than the {world.size} processes; "
                             "raise --batch-size or start fewer processes")
        if hasattr(setup.sampler, "place"):  # streamed folders: each rank decodes only its slice
            setup.sampler.place(device, shard_bounds(setup.sampler.size, world) if world is not None else None)
        run = config.run
        enable_tf32(device)
        self.speed_notes: list[str] = []
        self.collapsed: tuple[float, float] | None = None  # set at the end of training (guard.collapse)
        self.teacher = to_channels_last(setup.teacher.to(device).eval().requires_grad_(False), run.channels_last)
        self.student = setup.student.to(device).train(config.recovery.student_mode == "train")
        if getattr(setup.profile, "partner", None) is not None:  # CycleGAN's opposite generator: frozen
            setup.profile.partner = setup.profile.partner.to(device).eval().requires_grad_(False)
        self.d = setup.discriminator.to(device) if setup.discriminator is not None and config.uses_discriminator else None
        if self.d is not None:
            self.d.train(config.trains_discriminator).requires_grad_(config.trains_discriminator)
        self.student_net = wrap(self.student, world, device, sync_bn=config.recovery.student_mode == "train")
        self.student = unwrap(self.student_net)
        self.d_net = wrap(self.d, world, device, sync_bn=True) if self.d is not None else None
        self.d = unwrap(self.d_net)
        to_channels_last(self.student, run.channels_last)
        to_channels_last(self.d, run.channels_last)
        self.teacher_net = maybe_compile(self.teacher, "G_O", run.compile, self.speed_notes)
        self.student_net = maybe_compile(self.student_net, "G_C", run.compile, self.speed_notes)
        if config.recovery.quantize_aware:
            from .quant_aware import QuantAware

            self.student_net = QuantAware(self.student_net, config.recovery.quantize_aware, self.student)
        self.d_net = maybe_compile(self.d_net, "D", run.compile, self.speed_notes)
        self.scaler = grad_scaler(run.amp, device)
        self.opt_g = torch.optim.Adam(self.student.parameters(), lr=config.recovery.rates.lr_g, betas=config.recovery.rates.betas)
        self.opt_d = (torch.optim.Adam(self.d.parameters(), lr=config.recovery.lr_d, betas=config.recovery.rates.betas)
                      if self.d is not None and config.trains_discriminator else None)
        self.masks = {k: v.to(device) for k, v in setup.masks.items()}
        self.input_masks = dict(self.masks)  # the input's own zeros: they stay, with or without --regrow
        self.shadow: DenseShadow | None = None  # --regrow: the pruned weights' dense copies while the masks ramp
        self.schedule = make_schedule(config, self.student, self.masks, setup.info.input_shape)
        self.sparsity: float | None = None
        self.done = 0
        weights = config.recovery.weights
        self.options = StepOptions(config.recovery.method, weights.lam, weights.mu, config.trains_discriminator,
                                   *resolve_r1(weights, setup.profile), setup.conditional, autocast(run.amp, device),
                                   image_terms=setup.info.input_kind == "image", adv_weight=weights.adv_weight,
                                   class_labels=bool(num_classes(setup.discriminator)), pl_weight=weights.pl_weight,
                                   pl_every=weights.pl_every)
        if weights.pl_weight and not has_layer_latents(self.student):
            raise InputError(f"--pl-weight needs a generator with a mapping network and per-layer latents (StyleGAN2); "
                             f"{setup.bundle.arch_name} has none: leave --pl-weight out")
        self.pl_mean: torch.Tensor | None = None  # running mean of path lengths (None: not measured yet)
        self.ema, self.features = recovery_extras(self, config, world)

    def set_sparsity(self, sparsity: float) -> None:
        """Recompute the masks at ``sparsity`` (monotone: ``previous=`` the current masks)."""
        if self.schedule is None or sparsity == self.sparsity:
            return
        prune = dataclasses.replace(self.schedule.prune, sparsity=sparsity)
        final = sparsity >= self.schedule.final
        regrow = self.config.recovery.schedule.regrow
        if self.shadow is not None:  # rank the dense copies: pruned weights may come back
            self.shadow.expose(self.student)
        previous = (self.input_masks if regrow else self.masks) or None
        new = compute_masks(self.student, prune, previous=previous, final=final)
        self.masks = {k: v.to(self.device, torch.bool) for k, v in new.items()}
        if regrow and self.shadow is None and not final:
            self.shadow = DenseShadow.of(self.student, self.masks)
        elif final:
            self.shadow = None  # the ramp is over: fixed masks from here on
        self.sparsity = sparsity
        apply_masks(self.student, self.masks)
        self.recalibrate()
        if self.shadow is None:
            mask_optimizer_state(self.opt_g, self.student, self.masks)
        if self.ema is not None:
            self.ema.mask(self.masks)

    def begin(self) -> None:
        """Before step 1: the input's masks, or the schedule's initial sparsity."""
        apply_masks(self.student, self.masks)
        if self.ema is not None:
            self.ema.mask(self.masks)
        if self.schedule is not None:
            self.set_sparsity(self.schedule.target(0))
        else:
            self.recalibrate()

    def recalibrate(self) -> None:
        """``--recalibrate-bn N``: the student's BatchNorm statistics re-estimated on N batches of its inputs, drawn
        for this step (:mod:`gancompress.prune.recalibrate`); nothing while no weight is masked. (An EMA copies the student's buffers
        at its next update.)"""
        batches = self.config.recovery.schedule.recalibrate_bn
        if not batches or not pruned_any(self.masks):
            return
        sampler = self.setup.sampler
        inputs = (sampler.generator_inputs(self.done * batches + i, self.device) for i in range(batches))
        recalibrate_norms(self.student, inputs)

    def finish_schedule(self) -> None:
        """Reach the target when the ramp did not end inside the run (``ramp_fraction`` 1)."""
        if self.schedule is not None:
            self.set_sparsity(self.schedule.final)

    def step(self, batch, *, monitor: bool = False) -> dict[str, float]:
        """One optimisation step; returns its metrics as floats."""
        seed_global(self.config.run.seed, self.done)
        self._set_lr()
        self._set_adv_scale()
        batch = _channels_last(shard(batch, self.world), self.config.run.channels_last)
        with self.features.capture() if self.features is not None else nullcontext((None, None)) as (f_o, f_c):
            losses = compute_losses(self.teacher_net, self.student_net, self.d_net, batch, self.setup.profile, self.options,
                                    self.done, monitor=monitor, pl_mean=self.pl_mean)
        if self.features is not None:
            losses = self.features.add_to(losses, f_o, f_c)
        bad = first_non_finite(losses)  # the losses are global, so every rank agrees
        if bad is not None:
            raise NonFiniteStep(*bad)
        if losses.pl_mean is not None:
            self.pl_mean = losses.pl_mean
        backward_and_step(losses, self.student_net, self.d_net, self.opt_g, self.opt_d, self.masks, self.scaler,
                          shadow=self.shadow, grad_masks=self.input_masks)
        check_weights({"student generator": self.student, "discriminator": self.d if self.opt_d is not None else None})
        if self.ema is not None:
            self.ema.update(self.student, self.masks)
        self.done += 1
        if self.schedule is not None and self.schedule.due(self.done):
            self.set_sparsity(self.schedule.target(self.done))
        metrics = {k: float(v.detach()) for k, v in losses.metrics.items() if v is not None}
        if self.sparsity is not None:
            metrics["sparsity"] = self.sparsity
        return metrics

    def _set_lr(self) -> None:
        hold = self.schedule.ramp_end if self.schedule is not None else 0
        rates = self.config.recovery.rates
        lr = rates.lr_g * lr_factor(rates.lr_schedule, self.done, self.config.recovery.steps, hold, rates.lr_warmup)
        for group in self.opt_g.param_groups:
            group["lr"] = lr

    def _set_adv_scale(self) -> None:
        """The adversarial term's multiplier for this step (:func:`.config.adv_factor`); the ramp is the AGP
        ramp's length whether or not the run prunes, so a dense control gets the same weights."""
        recovery = self.config.recovery
        ramp_end = min(recovery.steps, math.ceil(recovery.schedule.ramp_fraction * recovery.steps))
        self.options.adv_scale = adv_factor(recovery.weights, self.done, recovery.steps, ramp_end)

    def rates(self) -> dict[str, float]:
        """The learning rates the last step used (``lr_g``; ``lr_d`` when D trains) and, for a method with an
        adversarial term, that term's multiplier (``adv_scale``)."""
        rates = {"lr_g": float(self.opt_g.param_groups[0]["lr"])}
        if self.opt_d is not None:
            rates["lr_d"] = float(self.opt_d.param_groups[0]["lr"])
        if "adv" in self.config.recipe.terms:
            rates["adv_scale"] = self.options.adv_scale
        return rates

    @property
    def result(self) -> nn.Module:
        """The generator the run saves and evaluates: the EMA of the student (``--ema-decay``), else the student."""
        return self.ema.model if self.ema is not None else self.student

    def achieved(self) -> dict[str, float]:
        return achieved_sparsity(self.result, self.masks)

    def state(self, metrics: dict[str, float]) -> TrainState:
        return TrainState(self.done, self.student.state_dict(), self.d.state_dict() if self.d is not None else None,
                          self.opt_g.state_dict(), self.opt_d.state_dict() if self.opt_d is not None else None,
                          self.masks, self.sparsity, self.config.resume_key(), metrics,
                          self.scaler.state_dict() if self.scaler is not None else None,
                          float(self.pl_mean) if self.pl_mean is not None else None, extras_state(self))

    def load(self, state: TrainState) -> None:
        self.student.load_state_dict(state.student)
        if self.d is not None and state.discriminator is not None:
            self.d.load_state_dict(state.discriminator)
        self.opt_g.load_state_dict(state.opt_g)
        if self.opt_d is not None and state.opt_d is not None:
            self.opt_d.load_state_dict(state.opt_d)
        if self.scaler is not None and state.scaler:  # a run resumed under another --amp starts a fresh scale
            self.scaler.load_state_dict(state.scaler)
        self.masks = {k: v.to(self.device, torch.bool) for k, v in state.masks.items()}
        self.sparsity, self.done = state.sparsity, state.step
        self.pl_mean = torch.tensor(state.pl_mean, device=self.device) if state.pl_mean is not None else None
        load_extras(self, state.extras or {})


def _channels_last(batch, enabled: bool):
    """The step's image tensors in NHWC memory order (``--channels-last``)."""
    if not enabled:
        return batch
    return dataclasses.replace(batch, x=batch_channels_last(batch.x, True), real=batch_channels_last(batch.real, True),
                               real_x=batch_channels_last(batch.real_x, True))
