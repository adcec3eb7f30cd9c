"""The optional recovery levers a :class:`~.trainer.Trainer` carries beside G_C: an EMA of the student
(:mod:`.ema`, ``--ema-decay``), intermediate-feature distillation (:mod:`.features`,
``--feature-weight``) and the dense copies of pruning with feedback (:mod:`.regrow`, ``--regrow``);
how they are made, saved in the resume state and restored from it."""
from __future__ import annotations

from typing import Any

import torch

from ..errors import InputError
from .ema import StudentEMA
from .features import FeatureDistiller
from .regrow import DenseShadow


def recovery_extras(trainer: Any, config: Any, world: Any) -> tuple[StudentEMA | None, FeatureDistiller | None]:
    """(EMA, feature distiller) of a trainer, each None when off; the adapters join G_C's optimiser."""
    recovery = config.recovery
    ema = StudentEMA(trainer.student, recovery.ema_decay) if recovery.ema_decay is not None else None
    features = None
    if recovery.weights.feature_weight:
        if world is not None or config.run.compile:
            raise InputError("--feature-weight runs in one process without --compile (its hooks and adapters are not "
                             "distributed or compiled); drop torchrun/--compile, or leave --feature-weight out")
        features = FeatureDistiller(trainer.teacher, trainer.student, recovery.weights.feature_weight, trainer.device)
        trainer.opt_g.add_param_group({"params": list(features.adapters.parameters())})
    return ema, features


def extras_state(trainer: Any) -> dict[str, dict[str, torch.Tensor]]:
    """What the resume state holds of the levers."""
    state = {}
    if trainer.ema is not None:
        state["ema"] = trainer.ema.state_dict()
    if trainer.features is not None:
        state["adapters"] = trainer.features.adapters.state_dict()
    if trainer.shadow is not None:
        state["shadow"] = trainer.shadow.state_dict()
    return state


def load_extras(trainer: Any, extras: dict[str, dict[str, torch.Tensor]]) -> None:
    """Restore the levers from a resume state (refused when it lacks one the run uses)."""
    if trainer.ema is not None:
        trainer.ema.load_state_dict(extras.get("ema"))
    if trainer.features is not None:
        if "adapters" not in extras:
            raise InputError("--resume: the saved state holds no feature adapters (the run was started without "
                             "--feature-weight); resume with the same options, or start over with --force")
        trainer.features.adapters.load_state_dict(extras["adapters"])
    trainer.shadow = DenseShadow.from_state(extras["shadow"], trainer.device) if "shadow" in extras else None

