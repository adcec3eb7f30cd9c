"""``export --format onnx --quantize int8|fp8``: 8-bit weight initializers behind per-axis DequantizeLinear.

:func:`fake_quantized_copy` gives every conv / transposed-conv / linear weight a parametrization
that computes, in torch, the scheme's fake quantization with the weight's per-output-channel
scales (as :mod:`gancompress.formats.quantize` computes them), and that ``torch.onnx.export``
writes as ``QuantizeLinear -> DequantizeLinear`` on the float initializer, with those scales.
:func:`fold_weight_quantizers` then replaces every such ``QuantizeLinear`` of a constant by the
scheme's codes (int8, or float8 e4m3fn: opset 19 and later), so the file holds 8-bit weights, one
float32 scale per output channel, and a ``DequantizeLinear`` (``axis`` = the output axis) in front
of each layer: ONNX runtimes compute ``code * scale`` in float32, the same values
:func:`gancompress.load` gives for the file exported with the same ``--quantize``.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..formats.quantize import SCHEMES, QuantPlan, QuantScheme, as_numpy, fake_quantize, quantize, weight_axes


def _scaled(weight: torch.Tensor, scale: torch.Tensor, axis: int) -> torch.Tensor:
    view = [1] * weight.dim()
    view[axis] = -1
    return scale.reshape(view)


class _QuantDequant(torch.autograd.Function):
    """Torch: ``codes(w / scale) * scale``; ONNX: ``QuantizeLinear -> DequantizeLinear`` per ``axis``
    (uint8 placeholders there: :func:`fold_weight_quantizers` writes the scheme's codes)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, scale: torch.Tensor, axis: int, scheme: str) -> torch.Tensor:
        s = _scaled(weight, scale, axis)
        return SCHEMES.get(scheme).to_codes(weight / s).to(weight.dtype) * s

    @staticmethod
    def symbolic(g, weight, scale, axis: int, scheme: str):
        return g.op("DequantizeLinear", g.op("QuantizeLinear", weight, scale, axis_i=axis), scale, axis_i=axis)


class _WeightFakeQuant(nn.Module):
    """The parametrization of one weight: its scheme's fake quantization with fixed scales."""

    def __init__(self, scale: torch.Tensor, axis: int, scheme: str) -> None:
        super().__init__()
        self.register_buffer("scale", scale)
        self.axis, self.scheme = axis, scheme

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _QuantDequant.apply(weight, self.scale, self.axis, self.scheme)


def fake_quantized_copy(model: nn.Module, scheme_name: str = "int8") -> nn.Module:
    """A copy of ``model`` whose weight layers compute with their ``scheme_name``-quantized weights."""
    model = copy.deepcopy(model)
    scheme = SCHEMES.get(scheme_name)
    modules = dict(model.named_modules())
    for name, axis in weight_axes(model).items():
        owner = modules[name.rsplit(".", 1)[0] if "." in name else ""]
        plan = QuantPlan("channel", axis)
        _, scale = quantize(owner.weight, scheme, plan, name)
        with torch.no_grad():  # start from the dequantized values: any rounding of w / scale gives the same codes
            owner.weight.copy_(fake_quantize(owner.weight, scheme, plan))
        parametrize.register_parametrization(owner, "weight", _WeightFakeQuant(scale, axis, scheme_name))
    return model.eval()


def fold_weight_quantizers(path: Path, scheme_name: str = "int8") -> int:
    """Rewrite the ONNX file at ``path``: each ``QuantizeLinear`` of an initializer becomes an initializer of
    ``scheme_name`` codes read by its ``DequantizeLinear``; returns how many were folded."""
    import onnx
    from onnx import numpy_helper

    scheme = SCHEMES.get(scheme_name)
    model = onnx.load(str(path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consts = _constant_nodes(graph)
    folded = []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in inits:
            continue
        w = torch.from_numpy(numpy_helper.to_array(inits[node.input[0]]).copy())
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        scale = torch.from_numpy(np.array(_value(node.input[1], inits, consts)))
        codes = scheme.to_codes(w / _scaled(w, scale, axis))  # round half to even, as QuantizeLinear
        name = node.input[0].replace(".parametrizations.weight.original", ".weight") + f"_{scheme.name}"
        graph.initializer.append(_code_tensor(codes, name, scheme))
        for reader in graph.node:
            if node.output[0] in reader.input:  # the DequantizeLinear: codes in, no zero point (0 of their type)
                reader.input[:] = [name if i == node.output[0] else i for i in reader.input][:2]
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
    _drop_unused_initializers(graph)
    onnx.save(model, str(path))
    return len(folded)


def _code_tensor(codes: torch.Tensor, name: str, scheme: QuantScheme):
    from onnx import TensorProto, helper, numpy_helper

    if scheme.code_dtype == torch.int8:
        return numpy_helper.from_array(codes.numpy(), name)
    assert scheme.code_dtype == torch.float8_e4m3fn, scheme
    return helper.make_tensor(name, TensorProto.FLOAT8E4M3FN, list(codes.shape), as_numpy(codes).tobytes(), raw=True)


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
