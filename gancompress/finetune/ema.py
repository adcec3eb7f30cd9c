"""An exponential moving average (EMA) of the student generator: the model a run saves and evaluates.

After every optimiser step the average moves toward the student:
``ema = d * ema + (1 - d) * student`` with ``d = min(decay, (1 + t) / (10 + t))`` after ``t``
updates, a warm-up that lets a short run's average follow the early, fast-changing weights instead
of staying at the initial ones. The pruning masks are re-applied to the average after every update
and whenever AGP raises the sparsity, so a pruned weight is exactly zero in it (averaging alone
would only decay it). Buffers (BatchNorm running statistics, spectral-norm vectors) are copied
from the student: they are statistics of the current weights, not parameters to average.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import InputError


def decay_at(decay: float, updates: int) -> float:
    """The decay used for the update after ``updates`` earlier ones (warm-up: (1 + t) / (10 + t))."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class StudentEMA:
    """The averaged copy of a student (``model``: same class, eval mode, no gradients)."""

    def __init__(self, student: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.model = copy.deepcopy(student).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, student: nn.Module, masks: dict[str, torch.Tensor]) -> None:
        """One step toward ``student`` (its weights after the optimiser step), then the masks."""
        d = decay_at(self.decay, self.updates)
        for avg, now in zip(self.model.parameters(), student.parameters()):
            avg.lerp_(now.detach().to(avg.dtype), 1.0 - d)
        for avg, now in zip(self.model.buffers(), student.buffers()):
            avg.copy_(now)
        self.updates += 1
        self.mask(masks)

    def mask(self, masks: dict[str, torch.Tensor]) -> None:
        from ..prune import apply_masks

        apply_masks(self.model, masks)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**self.model.state_dict(), "__ema_updates__": torch.tensor(self.updates)}

    def load_state_dict(self, state: dict[str, torch.Tensor] | None) -> None:
        if state is None or "__ema_updates__" not in state:
            raise InputError("--resume: the saved state holds no EMA of the student (the run was started without "
                             "--ema-decay); resume with the same options, or start over with --force")
        state = dict(state)
        self.updates = int(state.pop("__ema_updates__"))
        self.model.load_state_dict(state)
