"""Pruning with feedback (``--regrow``): while AGP raises the sparsity, the pruned weights keep training.

Dynamic pruning with feedback (Lin et al., ICLR 2020): G_C's forward and backward passes run on the
masked weights, but the optimiser updates a dense copy of every pruned weight with those gradients
(a straight-through step), and each AGP mask update ranks the dense copy, so a weight pruned early
grows back when its gradients say it matters, and one kept early can be dropped. At the last mask
update (the end of the ramp) the copy is dropped and recovery goes on with fixed masks, as without
the lever; the saved generator always holds exact zeros where its masks say so.
"""
from __future__ import annotations

import torch
from torch import nn


class DenseShadow:
    """Dense copies of the weights named in ``keys``, trained through their masked versions."""

    def __init__(self, dense: dict[str, torch.Tensor]) -> None:
        self.dense = dense

    @classmethod
    def of(cls, model: nn.Module, keys) -> "DenseShadow":
        """Copies of ``model``'s weights ``keys`` as they are now (before they are masked)."""
        return cls({k: model.get_parameter(k).detach().clone() for k in keys})

    def expose(self, model: nn.Module) -> None:
        """Put the dense copies into the model (to rank them, or for the optimiser to step them)."""
        with torch.no_grad():
            for key, value in self.dense.items():
                model.get_parameter(key).copy_(value)

    def capture(self, model: nn.Module) -> None:
        """Take the model's weights (just stepped, not yet masked) as the new dense copies."""
        with torch.no_grad():
            for key, value in self.dense.items():
                value.copy_(model.get_parameter(key))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.dense)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], device: torch.device) -> "DenseShadow":
        return cls({k: v.to(device) for k, v in state.items()})
