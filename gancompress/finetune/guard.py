"""The NaN guard: a run stops at the first non-finite value, and only finite states are ever saved.

Checked every step: the losses and metrics, the student's outputs and the discriminator's outputs
(a loss can stay finite while D says ``inf``: hinge's ``relu(1 - inf)`` is 0), then the student's
and D's weights and buffers after the update. Before any checkpoint is written, the student must
also produce finite outputs on fixed inputs, so the "last good checkpoint" is one that works.

A run can also end finite but dead: a step too large early on saturates the output (a tanh stuck
at -1 passes no gradient back), and the student then draws one constant image for every input.
:func:`collapse` tells that apart at the end of a run, so it is reported instead of measured.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class NonFiniteStep(Exception):
    """Internal: ``what`` went NaN/Inf (the loop turns it into :class:`~gancompress.errors.NonFiniteLoss`)."""

    def __init__(self, what: str, value: float) -> None:
        super().__init__(f"{what} = {value}")
        self.what, self.value = what, value


def finite_flag(*tensors: Tensor | None) -> Tensor:
    """0 when every value of ``tensors`` is finite, else NaN (one scalar, no device sync)."""
    present = [t.detach() for t in tensors if t is not None]
    ok = torch.stack([torch.isfinite(t).all() for t in present]).all()
    return torch.where(ok, torch.zeros((), device=ok.device), torch.full((), float("nan"), device=ok.device))


def check_weights(networks: dict[str, nn.Module | None]) -> None:
    """Raise :class:`NonFiniteStep` naming the first network with a non-finite weight or buffer."""
    for what, net in networks.items():
        if net is None:
            continue
        tensors = [t for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()]
        if tensors and not bool(torch.stack([torch.isfinite(t.detach()).all() for t in tensors]).all()):
            raise NonFiniteStep(f"the {what}'s weights", float("nan"))


@torch.no_grad()
def eval_outputs(net: nn.Module, probe: Tensor):
    """``net(probe)`` in eval mode, without gradients; ``net`` is left in the mode it was in."""
    was_training = net.training
    net.eval()
    try:
        return net(probe)
    finally:
        net.train(was_training)


def check_finite_outputs(student: nn.Module, probe: Tensor) -> None:
    """Raise :class:`NonFiniteStep` when the student's outputs on ``probe`` are not all finite."""
    if not bool(torch.isfinite(eval_outputs(student, probe)).all()):
        raise NonFiniteStep("the student generator's output", float("nan"))


COLLAPSE_FLOOR = 0.01  # the student's spread across inputs below this fraction of the teacher's: collapsed


def collapse(student: nn.Module, teacher: nn.Module, probe: Tensor) -> tuple[float, float] | None:
    """(student spread, teacher spread) when the student's outputs on ``probe`` hardly vary across its inputs
    (the mean over pixels of the standard deviation over inputs, below ``COLLAPSE_FLOOR`` x the teacher's),
    else None. Both run in eval mode."""
    if probe.shape[0] < 2:
        return None
    outputs = (eval_outputs(net, probe) for net in (student, teacher))
    student_spread, teacher_spread = (float(out.float().std(dim=0).mean()) if torch.is_tensor(out) else float("nan")
                                      for out in outputs)
    return (student_spread, teacher_spread) if student_spread < COLLAPSE_FLOOR * teacher_spread else None
