"""``PruneConfig``: what to prune and how, validated once when it is made (shared by prune,
finetune, sweep and demo)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..registry import unknown_choice
from .allocation import check_allocation
from .granularity import GRANULARITIES, check_sparsity, implied_sparsity, parse_block, parse_nm, parse_nm_axis
from .importance import check_importance
from .keep_dense import parse_keep_dense
from .plan import check_plan

SCOPES = ("layer", "global")


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
    """What to prune and how; validates itself (raises :class:`InputError`).

    ``sparsity`` is the fraction of ALL prunable (conv/linear) weights that are zero afterwards,
    dense-kept layers included; None with ``nm`` means "the full N:M pattern". ``keep_dense`` is
    the policy of :mod:`.keep_dense`; ``allocation`` one of :data:`.allocation.ALLOCATIONS`.
    ``scope="global"`` and ``prune_first_last`` are the older spellings of
    ``allocation="global"`` and ``keep_dense="none"``.
    """

    sparsity: float | None
    granularity: str = "element"
    allocation: str = "uniform"
    keep_dense: tuple[str, ...] | str = ("auto",)
    block: tuple[int, int] = (4, 4)
    nm: tuple[int, int] = (2, 4)
    nm_axis: str = "in"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    coupled: bool = False  # filter only: prune filter groups joined by additions together (.coupled)
    input_shape: tuple[int, ...] | None = None  # per-sample input, to trace the model for ``coupled``
    scope: str = "layer"
    prune_first_last: bool = False
    plan: dict[str, float] | None = None  # {module name: sparsity} (.plan); layers it omits stay dense
    importance: str = "magnitude"  # what ranks the weights (.importance): magnitude, or bn-scaled

    def __post_init__(self) -> None:
        if not isinstance(self.granularity, str):
            raise InputError(f"granularity must be a name, got {self.granularity!r}")
        GRANULARITIES.get(self.granularity)
        if self.scope not in SCOPES:
            raise unknown_choice("scope", self.scope, SCOPES)
        if self.scope == "global" and self.allocation == "uniform":
            self.allocation = "global"
        self.keep_dense = parse_keep_dense(self.keep_dense)
        if self.prune_first_last is True and self.keep_dense == ("auto",):
            self.keep_dense = ("none",)
        check_allocation(self.allocation, self.granularity)
        self.block, self.nm, self.nm_axis = parse_block(self.block), parse_nm(self.nm), parse_nm_axis(self.nm_axis)
        self.include, self.exclude = _globs(self.include, "include"), _globs(self.exclude, "exclude")
        self.plan = None if self.plan is None else check_plan(self.plan)
        if self.plan is not None and (self.granularity == "nm" or self.allocation != "uniform" or self.coupled):
            raise InputError("--plan sets each layer's sparsity itself; it cannot be combined with --granularity nm, "
                             "--coupled or an --allocation other than uniform")
        if self.sparsity is None and self.granularity != "nm" and self.plan is None:
            raise InputError("--sparsity is required: give the fraction of all prunable weights to zero, e.g. -s 0.9 "
                             "(only --granularity nm implies it)")
        self.sparsity = None if self.sparsity is None else check_sparsity(self.sparsity)
        if not isinstance(self.coupled, bool):
            raise InputError(f"coupled must be true or false, got {self.coupled!r}")
        if self.coupled and self.granularity != "filter":
            raise InputError(f"--coupled prunes whole filters joined by residual additions; it needs "
                             f"--granularity filter, not {self.granularity!r}")
        if self.coupled and self.allocation != "uniform":
            raise InputError("--coupled ranks filter groups across layers itself; leave --allocation at uniform")
        self.input_shape = _shape(self.input_shape)
        self.importance = check_importance(self.importance)
        if self.importance != "magnitude" and self.coupled:
            raise InputError("--coupled ranks filter groups by their own magnitude; leave --importance at magnitude")

    @property
    def options(self) -> dict[str, Any]:
        """Granularity options (``block``, ``nm``, ``nm_axis``)."""
        return {"block": self.block, "nm": self.nm, "nm_axis": self.nm_axis}

    @property
    def nominal(self) -> float:
        """The sparsity asked for, or the N:M pattern's own (``1 - N/M``) when none was."""
        return self.sparsity if self.sparsity is not None else implied_sparsity(self.nm)
