"""Running a generator stored in float16 or bfloat16 from ordinary float32 inputs.

An export written with ``--dtype float16`` holds half-precision weights; feeding it the float32
latents every caller makes fails inside the first convolution. :func:`run_in_weight_dtype`
adds two hooks instead of wrapping the module (names, parameters and state dict stay as
stored): floating inputs are cast to the weights' dtype, floating outputs back to float32.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

_MARK = "_gancompress_runs_in"


def weight_dtype(module: nn.Module) -> torch.dtype | None:
    """The one floating dtype of the module's parameters (None: none, or a mix)."""
    dtypes = {p.dtype for p in module.parameters() if p.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, (tuple, list)):
        return type(value)(_cast(v, dtype) for v in value)
    return value


def run_in_weight_dtype(module: nn.Module) -> nn.Module:
    """Make a reduced-precision ``module`` take any float input and return float32 (idempotent)."""
    dtype = weight_dtype(module)
    if dtype is None or dtype == torch.float32 or getattr(module, _MARK, None) == dtype:
        return module
    module.register_forward_pre_hook(lambda _m, args: _cast(args, dtype))
    module.register_forward_hook(lambda _m, _args, out: _cast(out, torch.float32))
    setattr(module, _MARK, dtype)
    return module
