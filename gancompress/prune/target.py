"""The overall target, settled before any pruning: which layers are pruned, how many zeros are
wanted over ALL prunable weights, and whether the granularity and the keep-dense policy can reach
it (counts only: nothing is scored or changed here).

A pruned layer can hold at most its weights minus one unit (every layer keeps a unit), or, for
N:M, the full pattern's zeros; old zeros (exact zeros, earlier masks) count and stay. A target
within half a unit of that ceiling is reachable. N:M snaps a target within half a percentage
point of its full pattern onto the pattern, so a hardware-usable pattern is what gets written.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import InputError
from .granularity import GRANULARITIES, nm_pattern_zeros
from .keep_dense import DenseChoice, Layer, choose_dense
from .layers import is_prunable, module_geometry, param_key

NM_TOLERANCE = 5e-3  # of all prunable weights


@dataclass
class _Facts:
    weights: int
    zeros: int  # exact zeros or masked by ``previous``
    most: int = -1  # ceiling of zeros once pruned (computed for pruned layers only)
    unit: int = 1


@dataclass
class TargetPlan:
    """``target`` zeros over ``total`` prunable weights; ``pruned`` layers, ``dense`` ones (name ->
    reason); ``dense_zeros``: zeros the dense layers already hold; ``most``: the ceiling."""

    pruned: list[tuple[str, nn.Module]]
    dense: dict[str, str]
    total: int
    target: int
    dense_zeros: int
    most: int
    pruned_weights: int
    notes: list[str] = field(default_factory=list)

    def layer_share(self) -> float:
        """The mean sparsity the pruned layers need."""
        return min(0.999, max(0.0, (self.target - self.dense_zeros) / max(self.pruned_weights, 1)))


def _facts(model: nn.Module, name: str, module: nn.Module, previous: dict | None) -> _Facts:
    weight = model.get_parameter(param_key(name, module)).detach()
    prev = (previous or {}).get(param_key(name, module))
    if prev is None or tuple(prev.shape) != tuple(weight.shape):  # counted in place: no copy of the weight
        return _Facts(weight.numel(), weight.numel() - int(torch.count_nonzero(weight)))
    live = (weight != 0) & prev.to(device=weight.device, dtype=torch.bool)
    return _Facts(weight.numel(), weight.numel() - int(torch.count_nonzero(live)))


def _ceiling(f: _Facts, name: str, module: nn.Module, config) -> None:
    """Fill ``f.most`` and ``f.unit`` for a layer to prune (validating the granularity on it)."""
    geo, gran = module_geometry(module), GRANULARITIES.get(config.granularity)
    gran.validate(geo, config.options, name)
    if config.granularity == "nm":
        f.most, f.unit = max(f.zeros, nm_pattern_zeros(geo, config.nm, config.nm_axis)), 1
        return
    f.unit = gran.unit_size(geo, config.options)
    f.most = max(f.zeros, f.weights - f.unit)


def _plan(layers, facts, dense: dict[str, str], config, total: int) -> TargetPlan:
    dense = dict(dense)
    for n, m in layers:
        if n not in dense and facts[n].most < 0:
            try:
                _ceiling(facts[n], n, m, config)
            except InputError as exc:
                if "auto" not in config.keep_dense:
                    raise
                dense[n] = f"auto: {config.granularity} does not fit it ({str(exc).split(';')[0]})"
    pruned = [(n, m) for n, m in layers if n not in dense]
    if not pruned:
        raise InputError(f"no layer left to prune: {'; '.join(f'{n}: {r}' for n, r in list(dense.items())[:3])}")
    dense_zeros = sum(facts[n].zeros for n, _ in layers if n in dense)
    most = dense_zeros + sum(facts[n].most for n, _ in pruned)
    target = most if config.sparsity is None else int(config.sparsity * total + 0.5)
    if config.sparsity is None and config.plan is not None:  # each layer at its planned sparsity
        target = dense_zeros + sum(max(facts[n].zeros, int(config.plan[n] * facts[n].weights + 0.5)) for n, _ in pruned)
    return TargetPlan(pruned, dense, total, target, dense_zeros, most, sum(facts[n].weights for n, _ in pruned))


def _slack(plan: TargetPlan, facts, config) -> int:
    if config.granularity == "nm":
        return int(NM_TOLERANCE * plan.total)
    return max(facts[n].unit for n, _ in plan.pruned) // 2


def plan_target(model: nn.Module, config, previous: dict | None = None, *, final: bool = True) -> TargetPlan:
    """Settle the target of ``config`` (a :class:`~.masks.PruneConfig`) on ``model``; raise
    :class:`InputError` when it cannot be reached, saying by how much."""
    layers = [(n, m) for n, m in model.named_modules() if is_prunable(m)]
    facts = {n: _facts(model, n, m, previous) for n, m in layers}
    choice = _plan_choice(layers, config) if config.plan is not None else choose_dense(
        [Layer(n, facts[n].weights, getattr(m, "prune_by_default", True)) for n, m in layers], config.keep_dense,
        config.include, config.exclude)
    total = sum(f.weights for f in facts.values())
    plan = _plan(layers, facts, choice.dense, config, total) if len(choice.dense) < len(layers) else None
    if choice.optional and (plan is None or plan.target > plan.most + _slack(plan, facts, config)):
        plan = _plan(layers, facts, choice.without_optional().dense, config, total)
        plan.notes.append(f"--keep-dense auto: {', '.join(choice.optional)} pruned too, as the target needs them")
    _check(plan, _slack(plan, facts, config), config, final)
    return plan


def _plan_choice(layers, config) -> DenseChoice:
    """With ``--plan``: the layers it does not name (or plans at 0) stay dense."""
    names = [n for n, _ in layers]
    unknown = [n for n in config.plan if n not in names]
    if unknown:
        raise InputError(f"--plan names {', '.join(unknown[:3])}, which this model does not have as a prunable layer "
                         f"(it has: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}); the plan belongs to another model")
    dense = {n: "not in --plan" for n in names if config.plan.get(n, 0.0) == 0.0}
    if len(dense) == len(names):
        raise InputError("--plan prunes no layer (every sparsity in it is 0)")
    return DenseChoice(dense, ())


def _dense_words(plan: TargetPlan) -> str:
    if not plan.dense:
        return "no layer kept dense"
    names = ", ".join(f"{n} ({r})" for n, r in list(plan.dense.items())[:3])
    return f"{len(plan.dense)} layer(s) kept dense: {names}{' ...' if len(plan.dense) > 3 else ''}"


def _check(plan: TargetPlan, slack: int, config, final: bool) -> None:
    pct = lambda zeros: 100 * zeros / plan.total  # noqa: E731
    asked = f"--sparsity {config.sparsity:g}" if config.sparsity is not None else "the full pattern"
    if plan.target > plan.most + slack:
        limit = (f"N:M {config.nm[0]}:{config.nm[1]} zeroes at most {config.nm[1] - config.nm[0]} of every "
                 f"{config.nm[1]} weights" if config.granularity == "nm"
                 else f"granularity {config.granularity} keeps at least one unit per layer")
        hints = ["lower --sparsity"] + (["keep fewer layers dense (--keep-dense none)"] if plan.dense else [])
        hints += ["choose a sparser pattern (--nm 1:4)"] if config.granularity == "nm" else []
        raise InputError(f"{asked} is out of reach: {limit} and with {_dense_words(plan)}, at most "
                         f"{pct(plan.most):.2f}% of the {plan.total:,} prunable weights can be zero "
                         f"({pct(plan.target - plan.most):.2f} points short); {', or '.join(hints)}")
    if config.granularity != "nm":
        return
    if abs(plan.target - plan.most) <= slack:
        plan.target = plan.most
    elif final:
        raise InputError(f"{asked} with N:M {config.nm[0]}:{config.nm[1]} would stop part-way to the pattern, "
                         f"which no sparse kernel can use; the full pattern zeroes {pct(plan.most):.2f}% of all "
                         f"prunable weights here ({_dense_words(plan)}): omit --sparsity, or use --granularity element")


__all__ = ["TargetPlan", "plan_target", "NM_TOLERANCE"]
