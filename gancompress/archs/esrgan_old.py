"""The original ESRGAN repository's "old arch" RRDB keys (``RRDB_ESRGAN_x4.pth``).

That code built the x4 generator as one flattened ``model`` sequence: ``model.0`` the first
conv, ``model.1.sub.<i>.RDB<1..3>.conv<1..5>.0`` the residual dense blocks inside a shortcut,
``model.1.sub.<num_block>`` the trunk conv, then nearest-x2 upsampling + conv at
``model.3`` and ``model.6``, ``model.8`` the HR conv and ``model.10`` the last conv. It is
the same network, operation for operation, as BasicSR's ``RRDBNet`` at scale 4, so the keys
are renamed onto :class:`~gancompress.archs.esrgan.RRDBNet` and the outputs are identical.
Old-arch files with another number of upsampling steps (x2, x8) are not this layout.
"""
from __future__ import annotations

import re
from dataclasses import replace

import torch

from . import esrgan  # noqa: F401  (registers rrdbnet-g, reused below)
from .base import ARCHITECTURES, StateDict, register_architecture
from .pix2pix import strip_module_prefix

_FIXED = {"model.0": "conv_first", "model.3": "conv_up1", "model.6": "conv_up2", "model.8": "conv_hr",
          "model.10": "conv_last"}
_BLOCK = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)")
_TRUNK = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)")


def _num_block(sd: StateDict) -> int:
    return len({m.group(1) for m in map(_BLOCK.fullmatch, sd) if m})


def rename_old_keys(sd: StateDict) -> dict[str, torch.Tensor]:
    """Old-arch keys -> RRDBNet keys (keys already in the new form pass through)."""
    sd = strip_module_prefix(sd)
    blocks = _num_block(sd)
    out = {}
    for key, value in sd.items():
        module, _, param = key.rpartition(".")
        block, trunk = _BLOCK.fullmatch(key), _TRUNK.fullmatch(key)
        if module in _FIXED:
            key = f"{_FIXED[module]}.{param}"
        elif block:
            key = f"body.{block.group(1)}.rdb{block.group(2)}.conv{block.group(3)}.{block.group(4)}"
        elif trunk and int(trunk.group(1)) == blocks:
            key = f"conv_body.{trunk.group(2)}"
        out[key] = value
    return out


def _infer(sd: StateDict):
    sd = strip_module_prefix(sd)
    needed = ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight", "model.10.weight")
    if any(k not in sd for k in needed) or any(k.startswith("model.11.") for k in sd):
        return None
    blocks = _num_block(sd)
    if f"model.1.sub.{blocks}.weight" not in sd:
        return None
    first = sd["model.0.weight"]
    return {"num_in_ch": int(first.shape[1]), "num_out_ch": int(sd["model.10.weight"].shape[0]), "scale": 4,
            "num_feat": int(first.shape[0]), "num_block": blocks,
            "num_grow_ch": int(sd["model.1.sub.0.RDB1.conv1.0.weight"].shape[0])}


register_architecture(replace(  # RRDBNet x4 in every respect but how its keys are named
    ARCHITECTURES.get("rrdbnet-g"),
    name="esrgan-old-g",
    infer=_infer,
    prepare_state_dict=rename_old_keys,
    description="original ESRGAN x4 in the old-arch keys (RRDB_ESRGAN_x4.pth), rebuilt as RRDBNet; outputs in [0, 1]",
))
