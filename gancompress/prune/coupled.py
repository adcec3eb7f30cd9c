"""Coupled filter pruning: prune output filters in dependency groups (``--coupled``).

A residual stream channel can only be removed from a generator (``export --format shrunk``)
when EVERY layer adding into it has pruned that filter. :func:`~gancompress.export.shrink_graph.filter_groups`
traces the model and joins the filters that an addition ties together; every other filter is
a group of one. This module prunes whole groups:

* **Scores.** Each selected layer's filter L2 norms are divided by the mean of its live
  filter norms (as ``--scope global`` does), so layers of different scale compete on "how
  weak relative to its layer". A group scores the *mean* of its members' normalised scores
  (filters already pruned by ``previous`` masks count 0; a group with no live member scores
  -1 and is pruned first). The mean, not the sum, so a residual group is judged per filter
  and is not protected merely for being big.
* **Locked groups.** Only selected layers are pruned: a group with a member in a layer left
  out of pruning (the dense first/last layer, ``--exclude``, or a layer not covered by
  ``--include``) stays whole, since that member could not be pruned and the channel could not
  be removed anyway. In each selected layer the group of its best live filter stays, so
  every pruned layer keeps at least one filter.
* **Budget.** One global ranking over groups (``scope`` is ignored). Groups are taken weakest
  first until ``round(s * F)`` filters are pruned, ``F`` being the filters of the selected
  layers (capped at ``F - n_layers``); a group that would overshoot the budget by more than
  it helps is skipped for a smaller one after it, so the achieved filter sparsity stays close
  to ``s``. Filters are counted, not weights (as the global scope counts units).

Selected layers that the trace does not see as producers get singleton groups.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from .config import PruneConfig
from .granularity import GRANULARITIES, prune_count
from .layers import module_geometry, param_key, prunable_layers


def model_groups(model: nn.Module, input_shape: tuple[int, ...]) -> list[list[tuple[str, int]]]:
    """:func:`filter_groups` of ``model``, keeping every module's train/eval mode unchanged."""
    from ..channels import filter_groups

    modes = [(m, m.training) for m in model.modules()]
    try:
        return filter_groups(model, tuple(input_shape))
    except InputError as exc:
        raise InputError(f"--coupled needs the generator's channel graph, which failed: {exc}; "
                         "prune without --coupled") from None
    finally:
        for m, mode in modes:
            m.training = mode


def coupled_masks(model: nn.Module, config: PruneConfig, previous: dict[str, torch.Tensor] | None = None,
                  input_shape: tuple[int, ...] | None = None, *,
                  layers: list[tuple[str, nn.Module]] | None = None) -> dict[str, torch.Tensor]:
    """Filter keep-masks of the selected layers pruning whole filter groups (see module doc)."""
    shape = input_shape or config.input_shape or getattr(model, "input_shape", None)
    if shape is None:
        raise InputError("--coupled needs the generator's per-sample input shape to trace it; "
                         "set PruneConfig.input_shape or give the model an `input_shape` attribute")
    gran, opts = GRANULARITIES.get("filter"), config.options
    if layers is None:
        layers = prunable_layers(model, config.include, config.exclude, config.prune_first_last)
    entries = {}
    for name, module in layers:
        key = param_key(name, module)
        weight, geo = model.get_parameter(key), module_geometry(module)
        prev = (previous or {}).get(key)
        if prev is not None and tuple(prev.shape) != tuple(weight.shape):
            raise InputError(f"previous mask for {key!r} has shape {tuple(prev.shape)} but the weight is "
                             f"{tuple(weight.shape)}; the masks belong to another model")
        scores = gran.unit_scores(weight, geo, prev, key, opts).float()
        live = scores >= 0
        mean = float(scores[live].mean()) if bool(live.any()) else 0.0
        norm = torch.where(live, scores / mean if mean > 0 else scores.clamp(min=0), torch.zeros(()))
        entries[name] = (key, geo, prev, norm, live)

    groups = [[(n, c) for n, c in g] for g in model_groups(model, shape)]
    seen = {(n, c) for g in groups for n, c in g}
    for name, (_, geo, _, _, _) in entries.items():  # layers the trace did not list: singletons
        groups += [[(name, c)] for c in range(geo.out) if (name, c) not in seen]

    locked = [any(n not in entries for n, _ in g) for g in groups]
    where = {m: i for i, g in enumerate(groups) for m in g}
    for name, (_, _, _, norm, live) in entries.items():  # keep each layer's best live filter's group
        best = int(torch.where(live, norm, torch.full_like(norm, -1.0)).argmax())
        locked[where[(name, best)]] = True

    def score(g: list[tuple[str, int]]) -> float:
        members = [(entries[n][3][c], entries[n][4][c]) for n, c in g]
        if not any(bool(alive) for _, alive in members):
            return -1.0
        return sum(float(s) for s, _ in members) / len(members)

    total = sum(e[1].out for e in entries.values())
    budget = min(prune_count(total, config.sparsity), total - len(entries))
    order = sorted((score(g), i) for i, g in enumerate(groups) if not locked[i])
    keep = {name: torch.ones(e[1].out, dtype=torch.bool) for name, e in entries.items()}
    pruned = sum(int((~e[4]).sum()) for e in entries.values())  # filters dead before this call
    for _, i in order:
        if pruned >= budget:
            break
        size = sum(bool(entries[n][4][c]) for n, c in groups[i])  # live filters it removes
        if pruned + size > budget and pruned + size - budget >= budget - pruned:
            continue  # overshoots by more than it helps: try the smaller groups after it
        for n, c in groups[i]:
            keep[n][c] = False
        pruned += size
    return {e[0]: gran.to_mask(keep[name], e[1], e[2], opts) for name, e in entries.items()}


__all__ = ["coupled_masks", "model_groups"]
