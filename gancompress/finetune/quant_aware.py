"""``finetune --quantize-aware SCHEME``: recover G_C for the 8-bit format it ships in.

:class:`QuantAware` runs the student with every conv / transposed-conv / linear weight passed
through :func:`~gancompress.formats.quantize.fake_quantize` (the scales ``export --quantize``
computes, per output channel or per stored tile of a block-sparse weight, as the default sparse
export stores it), with a straight-through gradient: the float weights keep training, the
forward pass sees their quantized values. Masks, optimizer and saved state are the plain
student's (the wrapper adds no parameters or names), so ``export --quantize SCHEME`` of the
recovered checkpoint holds exactly the weights the last step computed with.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ..formats.quantize import SCHEMES, QuantPlan, fake_quantize, plan_for, weight_axes


class QuantAware(nn.Module):
    """``module`` (plain, DDP or compiled) run with fake-quantized weights."""

    unwraps_to_module = True  # :func:`.distributed.unwrap` looks through it

    def __init__(self, module: nn.Module, scheme: str, plain: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.scheme = SCHEMES.get(scheme)
        params = dict(plain.named_parameters())
        self._axes = {id(params[n]): a for n, a in weight_axes(plain).items() if n in params}
        self._plans: dict[int, tuple[int, QuantPlan]] = {}

    def _plan(self, p: torch.Tensor) -> QuantPlan:
        """The weight's scale plan, recomputed only when its count of nonzeros changes (new masks)."""
        nonzero = int(torch.count_nonzero(p.detach()))
        cached = self._plans.get(id(p))
        if cached is None or cached[0] != nonzero:
            cached = (nonzero, plan_for(p.detach(), self._axes[id(p)], blocks=True))
            self._plans[id(p)] = cached
        return cached[1]

    def quantized(self) -> dict[str, torch.Tensor]:
        """``{name in module: fake-quantized weight}`` for every weight layer."""
        return {name: fake_quantize(p, self.scheme, self._plan(p))
                for name, p in self.module.named_parameters() if id(p) in self._axes}

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return functional_call(self.module, self.quantized(), args, kwargs)
