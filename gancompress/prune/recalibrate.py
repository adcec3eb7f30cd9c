"""BatchNorm recalibration after pruning (``--recalibrate-bn N``).

In eval mode a BatchNorm normalises with the running statistics the *dense* teacher gathered. Pruning
changes what reaches it (a layer at 90% sparsity has smaller, shifted outputs), so the pruned student
normalises with statistics that no longer fit, and recovery has to spend its steps undoing that. Here
the statistics are re-estimated instead: after every mask update (and once before training when the
input is already pruned) the student runs, without gradients, on ``N`` batches of its own inputs with
its BatchNorms in train mode and ``momentum=None`` (a plain average over the batches), then goes back
to eval mode. Nothing else changes: weights, masks and every other module's mode stay as they were.
The same idea ranks pruned candidates in EagleEye (adaptive BatchNorm, Li et al. 2020); it is what
``--student-mode train`` does every step, without moving the statistics while the weights train.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..errors import InputError


def has_running_stats(module: nn.Module) -> bool:
    """A BatchNorm that normalises with running statistics in eval mode (``track_running_stats``)."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_var is not None


def norms_with_stats(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if has_running_stats(m)]


def check_batches(value: object, *, auto: bool = False) -> None:
    """``--recalibrate-bn``: a whole number of batches, 0 (off) or more (``auto``: None, the command's default, too)."""
    if auto and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"--recalibrate-bn is a number of batches, 0 (off) or more, got {value!r}")


@torch.no_grad()
def recalibrate_norms(model: nn.Module, inputs: Iterable[torch.Tensor]) -> int:
    """Replace every BatchNorm's running mean and variance by their average over ``model(x)`` for ``x`` in
    ``inputs``; returns how many BatchNorms were recalibrated (0: none has running statistics, and no
    input is drawn). Each BatchNorm's mode and momentum are restored, also when a forward pass fails."""
    norms = norms_with_stats(model)
    if not norms:
        return 0
    saved = [(m, m.training, m.momentum) for m in norms]
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: every batch counts the same
            m.train()
        for x in inputs:
            model(x)
    finally:
        for m, mode, momentum in saved:
            m.momentum = momentum
            m.train(mode)
    return len(norms)


def pruned_any(masks: dict[str, torch.Tensor]) -> bool:
    """Whether any mask zeroes a weight (an unpruned model's statistics are the teacher's already)."""
    return any(not bool(m.all()) for m in masks.values())
