"""``export --format onnx --quantize int8``: int8 weight initializers behind per-axis DequantizeLinear.

:func:`fake_quantized_copy` gives every conv / transposed-conv / linear weight a parametrization
that runs ``torch.fake_quantize_per_channel_affine`` with the weight's int8 scales (per output
channel, as :mod:`gancompress.formats.quantize` computes them); ``torch.onnx.export`` writes each
as ``QuantizeLinear -> DequantizeLinear`` on the float initializer. :func:`fold_weight_quantizers`
then replaces every such ``QuantizeLinear`` of a constant by its int8 result, so the file holds
int8 weights, one float32 scale per output channel, and a ``DequantizeLinear`` (``axis`` = the
output axis) in front of each layer: ONNX runtimes compute ``int8 * scale`` in float32, the
same values :func:`gancompress.load` gives for the int8 export.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..formats.quantize import SCHEMES, QuantPlan, fake_quantize, quantize, weight_axes


class _WeightFakeQuant(nn.Module):
    """``w -> fake_quantize_per_channel_affine(w, scale, 0, axis, -128, 127)`` (the codes never reach -128)."""

    def __init__(self, scale: torch.Tensor, axis: int) -> None:
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("zero_point", torch.zeros(scale.shape, dtype=torch.int32))
        self.axis = axis

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.fake_quantize_per_channel_affine(weight, self.scale, self.zero_point, self.axis, -128, 127)


def fake_quantized_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose weight layers compute with their int8-quantized weights."""
    model = copy.deepcopy(model)
    scheme = SCHEMES.get("int8")
    modules = dict(model.named_modules())
    for name, axis in weight_axes(model).items():
        owner = modules[name.rsplit(".", 1)[0] if "." in name else ""]
        plan = QuantPlan("channel", axis)
        _, scale = quantize(owner.weight, scheme, plan, name)
        with torch.no_grad():  # start from the dequantized values: any rounding of w / scale gives the same codes
            owner.weight.copy_(fake_quantize(owner.weight, scheme, plan))
        parametrize.register_parametrization(owner, "weight", _WeightFakeQuant(scale, axis))
    return model.eval()


def fold_weight_quantizers(path: Path) -> int:
    """Rewrite the ONNX file at ``path``: each ``QuantizeLinear`` of an initializer becomes an int8
    initializer read by its ``DequantizeLinear``; returns how many were folded."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consts = _constant_nodes(graph)
    folded = []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[0]])
        scale = _value(node.input[1], inits, consts)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        view = [1] * w.ndim
        view[axis] = -1
        codes = np.clip(np.rint(w / scale.reshape(view)), -128, 127).astype(np.int8)  # ONNX: round half to even
        name = node.input[0].replace(".parametrizations.weight.original", ".weight") + "_int8"
        graph.initializer.append(numpy_helper.from_array(codes, name))
        for reader in graph.node:
            reader.input[:] = [name if i == node.output[0] else i for i in reader.input]
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
    _drop_unused_initializers(graph)
    onnx.save(model, str(path))
    return len(folded)


def _constant_nodes(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {}
    for node in graph.node:
        if node.op_type == "Constant":
            value = next(a.t for a in node.attribute if a.name == "value")
            out[node.output[0]] = numpy_helper.to_array(value)
    return out


def _value(name: str, inits, consts) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(inits[name]) if name in inits else consts[name]


def _drop_unused_initializers(graph) -> None:
    used = {i for node in graph.node for i in node.input} | {o.name for o in graph.output}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)
