"""``PruneConfig``: what to prune and how, validated once when it is made."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..registry import unknown_choice
from .granularity import GRANULARITIES, check_sparsity, implied_sparsity, parse_block, parse_nm

SCOPES = ("layer", "global")
_NM_TOLERANCE = 5e-3


def _globs(value: Any, option: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not all(isinstance(v, str) for v in value):
        raise InputError(f"--{option} takes module-name globs (strings), got {value!r}")
    return tuple(value)


def _shape(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        shape = tuple(value)
    except TypeError:
        shape = ()
    if not shape or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape):
        raise InputError(f"input_shape must be a per-sample shape of positive integers, got {value!r}")
    return shape


@dataclass
class PruneConfig:
    """What to prune and how; validates itself (raises :class:`InputError`)."""

    sparsity: float | None
    granularity: str = "element"
    scope: str = "layer"
    block: tuple[int, int] = (4, 4)
    nm: tuple[int, int] = (2, 4)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    prune_first_last: bool = False
    coupled: bool = False  # filter only: prune filter groups joined by additions together (.coupled)
    input_shape: tuple[int, ...] | None = None  # per-sample input, to trace the model for ``coupled``

    def __post_init__(self) -> None:
        if not isinstance(self.granularity, str):
            raise InputError(f"granularity must be a name, got {self.granularity!r}")
        GRANULARITIES.get(self.granularity)
        if self.scope not in SCOPES:
            raise unknown_choice("scope", self.scope, SCOPES)
        self.block, self.nm = parse_block(self.block), parse_nm(self.nm)
        self.include, self.exclude = _globs(self.include, "include"), _globs(self.exclude, "exclude")
        self.sparsity = self._checked_sparsity()
        if not isinstance(self.coupled, bool):
            raise InputError(f"coupled must be true or false, got {self.coupled!r}")
        if self.coupled and self.granularity != "filter":
            raise InputError(f"--coupled prunes whole filters joined by residual additions; it needs "
                             f"--granularity filter, not {self.granularity!r}")
        self.input_shape = _shape(self.input_shape)

    def _checked_sparsity(self) -> float:
        if self.sparsity is None and self.granularity != "nm":
            raise InputError("--sparsity is required: give the fraction of weights to zero, e.g. -s 0.9 "
                             "(only --granularity nm implies it)")
        if self.granularity != "nm":
            return check_sparsity(self.sparsity)
        implied = implied_sparsity(self.nm)
        if self.sparsity is None or (not isinstance(self.sparsity, str) and self.sparsity == 0):
            return implied
        if abs(check_sparsity(self.sparsity) - implied) > _NM_TOLERANCE:
            n, m = self.nm
            raise InputError(
                f"sparsity {self.sparsity} conflicts with N:M {n}:{m}, which implies {implied:.4g}; "
                f"omit the sparsity or pass {implied:.4g}"
            )
        return implied

    @property
    def options(self) -> dict[str, tuple[int, int]]:
        """Granularity options (``block``, ``nm``)."""
        return {"block": self.block, "nm": self.nm}
