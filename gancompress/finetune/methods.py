"""Recovery methods: which networks each one runs and trains, and G_C's loss (a registry).

G_O is the dense teacher, G_C the pruned student, D the discriminator. A method names the
terms it needs; :func:`gancompress.finetune.step.compute_losses` computes exactly those from
one shared forward and hands them to the method's ``g_loss`` with the run's loss weights:

- ``l1``: the per-sample L1 of G_C's outputs to G_O's, normalised by the mean |G_O(x)|;
- ``adv``: the GAN's own generator loss on G_C's fakes (the architecture's loss profile);
- ``L_GC``, ``L_DC``: the paper's consistency terms (Yu & Pool, NeurIPS 2020), for which
  G_O's fakes also go through D.

``auto`` (the default) is not a loss of its own but a choice made per run, once the inputs are
known (:func:`resolve_method`): ``hybrid`` when a discriminator and real images are at hand (the
zoo's best by mean and worst case, docs/zoo.md), else ``distill`` (which needs neither).

Torch-free, so ``--help`` can list the methods without importing torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..registry import Registry
from .defaults import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE_HYBRID, DEFAULT_LR_D, DEFAULT_LR_D_HYBRID

Terms = Mapping[str, Any]  # term name -> scalar tensor
TEACHER_DIFFERENCE_TERMS = ("l1", "L_GC", "L_DC")  # zero whenever G_C's output equals G_O's; "adv" is not


@dataclass(frozen=True)
class Method:
    """One recovery method. ``g_loss`` None: no training (the pruning applied as it is)."""

    name: str
    uses_teacher: bool  # G_O's outputs enter G_C's loss
    uses_d: bool  # D judges G_C's fakes (needs real images and a discriminator)
    trains_d: bool  # D keeps training on real images vs G_C's fakes (unless frozen)
    g_loss: Callable[[Terms, Any], Any] | None  # (terms, weights with lam/mu/adv_weight) -> G_C's loss
    terms: tuple[str, ...] = ()  # the terms g_loss reads: l1, adv, L_GC, L_DC
    help: str = ""
    # A method chosen per run: (has a discriminator, has real images) -> (method name, why); see resolve_method.
    choose: Callable[[bool, bool], tuple[str, str]] | None = None
    lr_d: float | None = None  # D's Adam rate when --lr-d is not given (None: DEFAULT_LR_D; see defaults.py)
    batch_size: int | None = None  # the batch when --batch-size is not given (None: DEFAULT_BATCH_SIZE; see defaults.py)

    @property
    def default_lr_d(self) -> float:
        return DEFAULT_LR_D if self.lr_d is None else self.lr_d

    @property
    def default_batch_size(self) -> int:
        return DEFAULT_BATCH_SIZE if self.batch_size is None else self.batch_size

    @property
    def is_choice(self) -> bool:
        return self.choose is not None

    @property
    def trains_generator(self) -> bool:
        return self.g_loss is not None

    @property
    def stays_at_teacher(self) -> bool:
        """Every G_C term is a difference to the teacher (the L1, L_GC, L_DC), so an unpruned G_C, equal to G_O,
        gets zero loss and zero gradient and never moves: this method's dense control is the teacher itself."""
        return all(term in TEACHER_DIFFERENCE_TERMS for term in self.terms)

    @property
    def consistency(self) -> bool:
        """The paper's terms: G_O's fakes also go through D."""
        return "L_GC" in self.terms


METHODS: Registry[Method] = Registry("method")


def register_method(method: Method) -> Method:
    METHODS.add(method.name, method)
    return method


def _hybrid(t: Terms, w: Any) -> Any:
    loss = t["L_GC"] + w.lam * t["L_DC"]
    return loss + w.mu * t["l1"] if w.mu else loss


for _m in (
    Method("self-supervised", True, True, True, lambda t, w: t["L_GC"] + w.lam * t["L_DC"], ("L_GC", "L_DC"),
           help="the paper's loss: L_GC + lambda * L_DC"),
    Method("finetune", False, True, True, lambda t, w: t["adv"], ("adv",), help="plain GAN fine-tuning of G_C"),
    Method("distill", True, False, False, lambda t, w: t["l1"], ("l1",),
           help="only the per-sample L1 to the teacher (needs no D and no data)"),
    Method("hybrid", True, True, True, _hybrid, ("L_GC", "L_DC", "l1"),
           help="the paper's loss plus mu * the L1 to the teacher", lr_d=DEFAULT_LR_D_HYBRID,
           batch_size=DEFAULT_BATCH_SIZE_HYBRID),
    Method("distill-adv", True, True, True, lambda t, w: t["l1"] + w.adv_weight * t["adv"], ("l1", "adv"),
           help="the L1 to the teacher plus adv_weight * the GAN's G loss, D training"),
    Method("none", False, False, False, None, help="the pruning applied without training"),
):
    register_method(_m)


def _choose_auto(has_discriminator: bool, has_data: bool) -> tuple[str, str]:
    if has_discriminator and has_data:
        return "hybrid", "a discriminator and real images are at hand"
    missing = " and ".join(what for what, ok in (("no discriminator", has_discriminator), ("no --data", has_data))
                           if not ok)
    return "distill", f"{missing}: hybrid needs both"


def _unresolved(t: Terms, w: Any) -> Any:
    raise RuntimeError("method auto is chosen per run: call resolve_method() before training")


# Every candidate of auto trains G from teacher differences only (so its dense control is the teacher) and
# uses the teacher; uses_d False: without a discriminator or data it is distill, so it demands neither.
register_method(Method("auto", True, False, False, _unresolved, (), choose=_choose_auto,
                       help="hybrid when a discriminator and --data are at hand, else distill (the default)"))


def resolve_method(name: str, *, has_discriminator: bool, has_data: bool) -> tuple[str, str | None]:
    """The method a run uses for the requested ``name``: itself, or what a choice (``auto``) picks for
    these inputs, with the reason (None for a method that is not a choice)."""
    method = get_method(name)
    if not method.is_choice:
        return name, None
    chosen, why = method.choose(has_discriminator, has_data)
    return chosen, f"--method {name} chose {chosen} ({why})"


def names() -> list[str]:
    return METHODS.names()


def get_method(name: str) -> Method:
    return METHODS.get(name)
