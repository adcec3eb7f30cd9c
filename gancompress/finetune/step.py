"""One training step, written so the methods share work.

Per step D sees the real batch once and the student's fakes once, with autograd; for the
consistency methods it also sees the teacher's fakes once, under ``no_grad`` (the teacher's D
terms are only reference values: the consistency losses detach them). D's loss is
backpropagated into D's parameters only and G_C's loss into G_C's parameters only
(``backward(inputs=...)``), then both optimizers step (a simultaneous update). So D's graph
holds 2N samples (reals and the student's fakes), D's backward covers those 2N (weight
gradients) and G_C's backward goes through D on the N student fakes (input gradients). A
plain GAN step (D(real), D(fake.detach()), D(fake)) also runs D on 3 batches and
backpropagates 3 batches through it, so the extra cost of the self-supervised step is the
teacher's no-grad forward. ``distill-adv`` is the ``finetune`` step plus the per-sample L1 to
the teacher (the teacher's fakes are not shown to D).

D's state during the teacher's pass: the teacher's fakes are judged by the *same* D function
as the student's, and leave no trace in D. That pass runs after the student's; BatchNorm
layers use the batch statistics of the teacher's fakes (each batch is normalised by its own
statistics, as in the DCGAN example's own loop, where reals and fakes are separate batches)
without updating the running averages, and spectral-norm power iterations are not advanced
(the teacher's fakes see the weights the student's fakes saw). D's running statistics thus
see exactly what a plain GAN step shows them: reals and G_C's fakes. (Before, the teacher's
and the student's fakes went through D as one concatenated batch, pooling their BatchNorm
statistics and back-propagating D over 2N fakes twice.)

The teacher generator always runs in eval mode under ``no_grad``. The student runs in eval
mode too by default (``student_mode="eval"``): its normalisation layers use running
statistics, like the teacher and like inference, so the two are compared like for like;
``"train"`` lets BatchNorm use batch statistics and update its running averages.

Multi-process runs (:mod:`.distributed`): every batch mean that enters a loss is made global
(one all-reduce per group of terms) before the non-linear consistency losses are formed, so
each rank computes the single-process loss; the step functions are otherwise unchanged.
"""
from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.nn.utils.spectral_norm import SpectralNorm

from ..archs.contract import judge
from ..data.batches import StepData
from ..errors import InputError
from ..losses import LossProfile, consistency, path_length_penalty, path_lengths, r1_penalty, total
from .distributed import global_means, global_randn_like, global_terms, unwrap
from .guard import finite_flag
from .methods import Method, get_method


@dataclass
class StepOptions:
    method: str  # a name in :data:`.methods.METHODS`
    lam: float
    mu: float
    train_d: bool
    r1_gamma: float = 0.0
    r1_every: int = 4
    conditional: bool = False
    autocast: Callable[[], ContextManager] = nullcontext
    image_terms: bool = False  # image-to-image: the profile's G terms also see images and the generator
    adv_weight: float = 0.0  # distill-adv: weight of the GAN's own G loss beside the L1 to the teacher
    class_labels: bool = False  # a class-conditional D: forward(images, labels)
    pl_weight: float = 0.0  # StyleGAN2's path-length regulariser on G_C (0: off, nothing computed)
    pl_every: int = 4  # lazy: every pl_every steps, scaled by pl_every
    adv_scale: float = 1.0  # this step's multiplier of the adversarial term (--adv-schedule, --d-warmup; 0: D warms up)

    @property
    def recipe(self) -> Method:
        return get_method(self.method)


@dataclass
class StepLosses:
    g_loss: Tensor | None
    d_loss: Tensor | None
    metrics: dict[str, Tensor]
    guards: dict[str, Tensor] = field(default_factory=dict)  # finite_flag of the networks' outputs (see .guard)
    pl_mean: Tensor | None = None  # the running mean of path lengths after a path-length step


@dataclass(frozen=True)
class ClassLabels:
    """The class labels a class-conditional D judges images with."""

    labels: Tensor


def critic(d: nn.Module, cond: Tensor | ClassLabels | None) -> Callable[[Tensor], Tensor]:
    """D as a function of images (a conditional D gets ``concat(input, image)``; a class-conditional
    one ``d(images, labels)``)."""
    if cond is None:
        return d
    if isinstance(cond, ClassLabels):
        return lambda images: d(images, cond.labels)
    return lambda images: judge(d, unwrap(d), cond.to(images.dtype), images)


def fake_condition(batch: StepData, opts: StepOptions) -> Tensor | ClassLabels | None:
    if opts.class_labels:
        return ClassLabels(batch.labels)
    return batch.x if opts.conditional else None


def real_condition(batch: StepData, opts: StepOptions) -> Tensor | ClassLabels | None:
    if opts.class_labels:
        return ClassLabels(batch.real_labels)
    return batch.real_x if opts.conditional else None


def l1_to_teacher(fake_c: Tensor, fake_o: Tensor) -> Tensor:
    """Per-sample L1 between student and teacher outputs, normalised by mean |G_O(x)|.

    Both means are over the global batch in a multi-process run.
    """
    num = (fake_c.float() - fake_o.float()).abs().mean()
    den = fake_o.float().abs().mean()
    num, den = global_means([num, den], fake_c.shape[0])
    return num / (den + 1e-8)


def _is_spectral_norm(module: nn.Module) -> bool:
    return isinstance(module, _SpectralNorm) or any(isinstance(h, SpectralNorm) for h in module._forward_pre_hooks.values())


@contextmanager
def reference_pass(d: nn.Module | None) -> Iterator[None]:
    """D judges without changing its state: BatchNorm layers in train mode use the batch's
    statistics but do not update their running averages, and spectral-norm power iterations
    are not advanced. Everything else keeps its mode. Restored on exit."""
    changed: list[tuple[nn.Module, str]] = []
    for m in d.modules() if d is not None else ():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats:
            m.track_running_stats = False
            changed.append((m, "track_running_stats"))
        elif m.training and _is_spectral_norm(m):
            m.training = False
            changed.append((m, "training"))
    try:
        yield
    finally:
        for m, attr in changed:
            setattr(m, attr, True)


def _d_outputs(d: nn.Module, batch: StepData, fake_o: Tensor | None, fake_c: Tensor,
               opts: StepOptions) -> tuple[Tensor | None, Tensor | None, Tensor]:
    """D(real) and D(fake_C) with autograd; D(fake_O), when needed, without (see the module docstring)."""
    cond = fake_condition(batch, opts)
    d_real = None
    if batch.real is not None and (opts.train_d or opts.recipe.consistency):
        d_real = critic(d, real_condition(batch, opts))(batch.real)
    d_fake_c = critic(d, cond)(fake_c)
    if fake_o is None:
        return d_real, None, d_fake_c
    raw = unwrap(d)
    with torch.no_grad(), reference_pass(raw):
        d_fake_o = critic(raw, cond)(fake_o.to(fake_c.dtype))
    return d_real, d_fake_o, d_fake_c


def g_terms(profile: LossProfile, d_fake: Tensor, fake: Tensor, batch: StepData, generator: nn.Module | None,
            *, teacher: bool = False):
    """The profile's generator terms; image-to-image profiles also get the images and the generator.

    ``target`` is ``batch.real``: the ground truth of ``batch.x`` when paired (pix2pix, SR), real
    target-domain images when unpaired (CycleGAN). The teacher's terms are computed without a graph.
    """
    if generator is None:
        return profile.g_terms(d_fake)
    kwargs = dict(fake=fake, target=batch.real.detach() if batch.real is not None else None, inputs=batch.x,
                  generator=generator)
    if teacher:
        with torch.no_grad():
            return profile.g_terms(d_fake, **kwargs)
    return profile.g_terms(d_fake, **kwargs)


def _consistency_losses(profile: LossProfile, d: nn.Module, batch: StepData, d_real: Tensor, d_fake_o: Tensor,
                        d_fake_c: Tensor, fake_o: Tensor, fake_c: Tensor, cond: Tensor | None,
                        gens: tuple[nn.Module | None, nn.Module | None] = (None, None)):
    """(L_GC, L_DC, the student's D terms) for the consistency methods.

    The teacher's terms are reference values: computed without a graph, D left untouched
    (:func:`reference_pass`; a gradient penalty still differentiates D inside). All terms are
    batch means, made global in one all-reduce in a multi-process run before the
    normalised differences are taken.
    """
    g_o = g_terms(profile, d_fake_o, fake_o, batch, gens[0], teacher=True)
    g_c = g_terms(profile, d_fake_c, fake_c, batch, gens[1])
    raw = unwrap(d)
    with torch.no_grad(), reference_pass(raw):
        m_o = profile.d_terms(d_real.detach(), d_fake_o, real=batch.real, fake=fake_o, discriminator=critic(raw, cond))
    m_c = profile.d_terms(d_real, d_fake_c, real=batch.real, fake=fake_c, discriminator=critic(d, cond))
    g_o, g_c, m_o, m_c = global_terms(g_o, g_c, m_o, m_c, n=fake_c.shape[0])
    return consistency(g_o, g_c), consistency(m_o, m_c), m_c


def _student_teacher(teacher: nn.Module, student: nn.Module, x: Tensor, need_teacher: bool):
    fake_c = student(x)
    if not need_teacher:
        return None, fake_c
    with torch.no_grad():
        return teacher(x), fake_c


def has_layer_latents(generator: nn.Module | None) -> bool:
    """The generator exposes ``layer_w``, the module whose output (per-layer latents) the
    path-length regulariser differentiates (StyleGAN2)."""
    return isinstance(getattr(unwrap(generator), "layer_w", None), nn.Module)


@contextmanager
def captured_latents(generator: nn.Module | None) -> Iterator[list[Tensor]]:
    """The per-layer latents of the forward passes run inside (none captured for ``None``)."""
    seen: list[Tensor] = []
    handle = None
    if generator is not None:
        handle = unwrap(generator).layer_w.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        yield seen
    finally:
        if handle is not None:
            handle.remove()


def _path_length(fake_c: Tensor, latents: list[Tensor], pl_mean: Tensor | None) -> tuple[Tensor, Tensor]:
    """(penalty, new running mean) on the student's own fakes: no extra forward pass. The batch's mean
    length and the penalty are global means in a multi-process run."""
    if not latents:  # e.g. a compiled forward that skipped the hook
        raise InputError("--pl-weight: the generator's forward did not pass through its per-layer latents "
                         "(layer_w); run without --compile, or leave --pl-weight out")
    noise = global_randn_like(fake_c) / math.sqrt(fake_c.shape[-2] * fake_c.shape[-1])
    lengths = path_lengths(fake_c, latents[-1], noise)
    (batch_mean,) = global_means([lengths.mean()], fake_c.shape[0])
    penalty, mean = path_length_penalty(lengths, batch_mean, pl_mean)
    (penalty,) = global_means([penalty], fake_c.shape[0])
    return penalty, mean


def _with_path_length(losses: StepLosses, pl: tuple[Tensor, Tensor] | None, opts: StepOptions) -> StepLosses:
    """G_C's loss plus ``pl_weight * pl_every * penalty`` on a path-length step (StyleGAN2's lazy form)."""
    if pl is None:
        return losses
    penalty, mean = pl
    losses.g_loss = losses.g_loss + opts.pl_weight * opts.pl_every * penalty
    losses.metrics.update(pl=penalty, pl_mean=mean, g_loss=losses.g_loss)
    losses.pl_mean = mean
    return losses


def compute_losses(teacher: nn.Module, student: nn.Module, d: nn.Module | None, batch: StepData,
                   profile: LossProfile, opts: StepOptions, step: int, *, monitor: bool = False,
                   pl_mean: Tensor | None = None) -> StepLosses:
    """The method's G_C loss and (when D trains) D's loss, from one shared forward.

    ``monitor`` also computes the normalised L1 to the teacher when the method does not.
    ``pl_mean``: the running mean of path lengths (None before the first path-length step).
    """
    method = opts.recipe
    pl_now = opts.pl_weight > 0 and method.trains_generator and step % opts.pl_every == 0
    with opts.autocast():
        with captured_latents(student if pl_now else None) as latents:
            fake_o, fake_c = _student_teacher(teacher, student, batch.x, method.uses_teacher or monitor)
        pl = _path_length(fake_c, latents, pl_mean) if pl_now else None
    return _with_path_length(_method_losses(teacher, student, d, batch, profile, opts, step, fake_o, fake_c), pl, opts)


def _method_losses(teacher, student, d, batch: StepData, profile: LossProfile, opts: StepOptions, step: int,
                   fake_o: Tensor | None, fake_c: Tensor) -> StepLosses:
    method = opts.recipe
    with opts.autocast():
        guards = {"the student generator's output": finite_flag(fake_c)}
        if not method.uses_d:
            l1 = l1_to_teacher(fake_c, fake_o)
            return StepLosses(method.g_loss({"l1": l1}, opts), None, {"l1": l1}, *global_terms(guards, n=fake_c.shape[0]))
        r1_now = opts.train_d and opts.r1_gamma > 0 and batch.real is not None and step % opts.r1_every == 0
        if r1_now:
            batch.real = batch.real.detach().requires_grad_(True)
        d_real, d_fake_o, d_fake_c = _d_outputs(d, batch, fake_o if method.consistency else None, fake_c, opts)
        guards["the discriminator's output"] = finite_flag(d_real, d_fake_c)
        g_loss, m_c, metrics = _g_loss(profile, d, batch, d_real, d_fake_o, d_fake_c, fake_o, fake_c, opts,
                                       (teacher, student) if opts.image_terms else (None, None))
        d_loss = None
        if opts.train_d:
            d_loss = total(m_c)
            if r1_now:
                (r1,) = global_means([r1_penalty(d_real, batch.real, opts.r1_gamma)], batch.real.shape[0])
                d_loss = d_loss + opts.r1_every * r1
            metrics["d_loss"] = d_loss
    if fake_o is not None and "l1" not in metrics:
        metrics["l1"] = l1_to_teacher(fake_c.detach(), fake_o)
    metrics["g_loss"] = g_loss
    return StepLosses(g_loss, d_loss, metrics, *global_terms(guards, n=fake_c.shape[0]))  # every rank agrees


def _g_loss(profile, d, batch, d_real, d_fake_o, d_fake_c, fake_o, fake_c, opts: StepOptions, gens=(None, None)):
    """The terms the method needs (``L_GC``/``L_DC`` or ``adv``, ``l1``), combined by its ``g_loss``."""
    method, cond = opts.recipe, fake_condition(batch, opts)
    if method.consistency:
        l_gc, l_dc, m_c = _consistency_losses(profile, d, batch, d_real, d_fake_o, d_fake_c, fake_o, fake_c, cond,
                                              gens)
        terms = {"L_GC": l_gc, "L_DC": l_dc}
    else:
        adv, m_c = _gan_g_loss(profile, d, batch, d_real, d_fake_c, fake_c, opts, gens, cond)
        terms = {"adv": adv}
    if "l1" in method.terms:
        terms["l1"] = l1_to_teacher(fake_c, fake_o)
    return method.g_loss(terms, opts), m_c, (terms if len(terms) > 1 else {})


def _gan_g_loss(profile, d, batch, d_real, d_fake_c, fake_c, opts: StepOptions, gens, cond):
    """The GAN's own G loss on the student's fakes, times ``adv_scale`` (and D's terms when D trains): plain
    fine-tuning."""
    terms = g_terms(profile, d_fake_c, fake_c, batch, gens[1]) if opts.image_terms else profile.g_terms(d_fake_c)
    m_c = None
    if opts.train_d:
        m_c = profile.d_terms(d_real, d_fake_c, real=batch.real, fake=fake_c, discriminator=critic(d, cond))
        terms, m_c = global_terms(terms, m_c, n=fake_c.shape[0])
    else:
        (terms,) = global_terms(terms, n=fake_c.shape[0])
    return opts.adv_scale * total(terms), m_c


def first_non_finite(losses: StepLosses) -> tuple[str, float] | None:
    """What went NaN/Inf first, the losses and metrics before the outputs' guards (one device sync)."""
    items = [(f"the loss {k}", v) for k, v in losses.metrics.items() if v is not None] + list(losses.guards.items())
    values = torch.stack([v.detach().float().reshape(()) for _, v in items])
    if bool(torch.isfinite(values).all()):
        return None
    for (name, _), value in zip(items, values.tolist()):
        if value != value or value in (float("inf"), float("-inf")):
            return name, value
    return None  # pragma: no cover


def mask_gradients(model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Zero the gradients of pruned weights so Adam's moments never see them."""
    for key, mask in masks.items():
        grad = model.get_parameter(key).grad
        if grad is not None:
            grad.masked_fill_(~mask, 0)


def mask_optimizer_state(opt: torch.optim.Optimizer, model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Clear Adam's moments at pruned positions (after the masks change)."""
    for key, mask in masks.items():
        for value in opt.state.get(model.get_parameter(key), {}).values():
            if torch.is_tensor(value) and value.shape == mask.shape:
                value.masked_fill_(~mask, 0)


def backward_and_step(losses: StepLosses, student: nn.Module, d: nn.Module | None,
                      opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer | None,
                      masks: dict[str, Tensor], scaler: torch.amp.GradScaler | None = None, *,
                      shadow=None, grad_masks: dict[str, Tensor] | None = None) -> None:
    """D's loss into D only, G_C's loss into G_C only; both optimizers step; masks re-applied.

    ``shadow`` (``--regrow``, a :class:`~.regrow.DenseShadow`): G_C's gradients, taken at the masked
    weights, step the dense copies instead (only ``grad_masks``, the input's own zeros, are masked),
    which are then masked again for the next forward pass.

    ``student``/``d`` may be ``DistributedDataParallel`` wrappers (their gradients are averaged
    over the ranks during the backward passes). ``scaler`` (fp16): both losses are scaled before
    the backward passes, a step whose gradients overflowed is skipped, and the scale is updated once.
    """
    from ..prune import apply_masks

    scale = scaler.scale if scaler is not None else (lambda loss: loss)
    g_params = [p for group in opt_g.param_groups for p in group["params"] if p.requires_grad]  # + any adapters
    opt_g.zero_grad(set_to_none=True)
    if opt_d is not None and losses.d_loss is not None:
        opt_d.zero_grad(set_to_none=True)
        d_params = [p for p in d.parameters() if p.requires_grad]
        scale(losses.d_loss).backward(inputs=d_params, retain_graph=losses.g_loss is not None)
    if losses.g_loss is not None:
        scale(losses.g_loss).backward(inputs=g_params)
        mask_gradients(unwrap(student), masks if shadow is None else grad_masks or {})
        if shadow is not None:
            shadow.expose(unwrap(student))
        _step(opt_g, scaler)
        if shadow is not None:
            shadow.capture(unwrap(student))
    if opt_d is not None and losses.d_loss is not None:
        _step(opt_d, scaler)
    if scaler is not None:
        scaler.update()
    apply_masks(unwrap(student), masks)


def _step(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    if scaler is None:
        opt.step()
    else:
        scaler.step(opt)
