"""Automated gradual pruning (AGP) schedule of Zhu & Gupta (2017), "To prune, or not to prune".

``s_t = s_f + (s_i - s_f) * (1 - t / T_ramp) ** 3`` for ``0 <= t <= T_ramp`` with
``T_ramp = ramp_fraction * total_steps``, then ``s_f``. ``s_i`` is capped at ``s_f`` (a final
sparsity below the initial one is used from step 0), so the schedule is non-decreasing.
"""
from __future__ import annotations

from ..errors import InputError
from .granularity import check_sparsity


def _check(total_steps: int, ramp_fraction: float) -> None:
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise InputError(f"total steps must be a positive integer, got {total_steps!r}")
    if not 0.0 < ramp_fraction <= 1.0:
        raise InputError(f"ramp fraction must be in (0, 1], got {ramp_fraction!r}")


def agp_sparsity(step: int, total_steps: int, final: float, initial: float = 0.05,
                 ramp_fraction: float = 0.5) -> float:
    """Target sparsity after ``step`` of ``total_steps`` (steps past the end give ``final``)."""
    _check(total_steps, ramp_fraction)
    final, initial = check_sparsity(final), min(check_sparsity(initial), check_sparsity(final))
    if step < 0:
        raise InputError(f"step must be >= 0, got {step}")
    ramp = ramp_fraction * total_steps
    if step >= ramp:
        return final
    return final + (initial - final) * (1.0 - step / ramp) ** 3


def agp_schedule(total_steps: int, final: float, initial: float = 0.05,
                 ramp_fraction: float = 0.5) -> list[float]:
    """Sparsities for steps ``0 .. total_steps`` inclusive (``total_steps + 1`` values)."""
    _check(total_steps, ramp_fraction)
    return [agp_sparsity(t, total_steps, final, initial, ramp_fraction) for t in range(total_steps + 1)]
