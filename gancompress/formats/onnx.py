"""An ONNX generator (``gancompress export --format onnx``, or any one-input ONNX generator) as a module.

A class-conditional export has a second input, ``labels`` (int64, one per sample), and records
``gancompress.num_classes``; the module then takes ``(z, labels)`` or the tool's packed input.

:func:`load_onnx_bundle` gives a :class:`~gancompress.checkpoint.GanBundle` whose generator runs
the file through onnxruntime (the optional ``onnx`` extra), so ``evaluate`` and ``inspect``
take ONNX files like checkpoints. The file's stored tensors (initializers) are kept as frozen
parameters, one small module each, so parameter and nonzero counts and the per-tensor table
describe what the file holds; MACs are counted from the graph (:func:`graph_macs`).

The per-sample input shape is the graph input's shape after the batch axis; a fixed batch size
is honoured by running larger batches in pieces. The input kind is ``image`` for ``(C, H, W)``
inputs with H, W > 1 and ``noise`` otherwise, unless the file's metadata says
(``gancompress.input_kind``); the output range is ``[-1, 1]`` unless ``gancompress.output_range``
says otherwise.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputError

_NP_INPUTS = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def require_onnxruntime(what: str) -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise InputError(f"{what} needs onnx and onnxruntime: pip install 'gancompress[onnx]' "
                         "(or pip install onnx onnxruntime)") from None


class OnnxTensor(nn.Module):
    """One tensor stored in the ONNX file (a frozen parameter, so counts and tables see it)."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(value, requires_grad=False)


class OnnxGenerator(nn.Module):
    """Runs an ONNX file with onnxruntime; float tensors in, float32 tensors out (on the input's device)."""

    traceable = False  # torch's FLOP counter cannot see inside; see graph_macs

    def __init__(self, path: Path, session, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        super().__init__()
        self.path, self.session = path, session
        self.stored = nn.ModuleDict({_key(name, i): OnnxTensor(t) for i, (name, t) in enumerate(tensors.items())})
        first = session.get_inputs()[0]
        dims = list(first.shape)
        if len(dims) < 2 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
            raise InputError(f"{path}: the ONNX input {first.name} has shape {dims}; gancompress needs fixed "
                             "per-sample dimensions after a batch axis")
        if first.type not in _NP_INPUTS:
            raise InputError(f"{path}: the ONNX input is {first.type}; gancompress runs float, float16 or double inputs")
        self.input_name, self.input_np = first.name, _NP_INPUTS[first.type]
        self.fixed_batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
        self.input_shape = tuple(dims[1:])
        self.input_kind = meta.get("gancompress.input_kind") or _guess_kind(self.input_shape)
        self.output_range = tuple(json.loads(meta["gancompress.output_range"])) if "gancompress.output_range" in meta \
            else (-1.0, 1.0)
        self.runtime = f"onnxruntime {_ort_version()} ({session.get_providers()[0]})"
        self.labels_name = _labels_input(path, session, meta)
        if self.labels_name is not None:  # class-conditional: forward(z, labels), or the tool's packed input
            from ..archs.contract import apply_contract

            apply_contract(self, {"num_classes": int(meta["gancompress.num_classes"])}, "generator", str(path))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        feed = x.detach().cpu().numpy().astype(self.input_np, copy=False)
        if (labels is None) != (self.labels_name is None):
            raise InputError(f"{self.path}: the ONNX generator takes " + ("(z, labels)" if labels is None else "one input"))
        names = [self.input_name] + ([self.labels_name] if labels is not None else [])
        feeds = [feed] + ([labels.detach().cpu().numpy().astype(np.int64)] if labels is not None else [])
        step = self.fixed_batch or feed.shape[0]
        if feed.shape[0] % step:
            raise InputError(f"{self.path}: the ONNX file takes batches of exactly {step}; use a batch size divisible by it")
        parts = [self.session.run(None, {n: f[i:i + step] for n, f in zip(names, feeds)})[0]
                 for i in range(0, feed.shape[0], step)]
        return torch.from_numpy(np.concatenate(parts).astype(np.float32, copy=False)).to(x.device)


def _labels_input(path: Path, session, meta: dict[str, str]) -> str | None:
    """The name of a class-conditional file's second input (its labels); None for a one-input generator."""
    inputs = session.get_inputs()
    if len(inputs) == 1:
        return None
    classes = meta.get("gancompress.num_classes", "")
    if len(inputs) != 2 or not classes.isdigit() or int(classes) < 2 or inputs[1].type != "tensor(int64)":
        raise InputError(f"{path}: the ONNX file takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                         "gancompress runs one-input generators, or class-conditional ones it exported (z, labels)")
    return inputs[1].name


def _key(name: str, index: int) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"t{index}_{cleaned}"


def _guess_kind(shape: tuple[int, ...]) -> str:
    return "image" if len(shape) == 3 and shape[1] > 1 and shape[2] > 1 else "noise"


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _stored_tensors(model) -> dict[str, torch.Tensor]:
    """The float weights the file stores (8-bit weights behind a DequantizeLinear: their values)."""
    from onnx import numpy_helper

    weights = dequantized_weights(model.graph)
    scales = {n.input[i] for n in model.graph.node if n.op_type == "DequantizeLinear" for i in (1, 2) if i < len(n.input)}
    out: dict[str, torch.Tensor] = {k: torch.from_numpy(v) for k, v in weights.items()}
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype.kind == "f" and array.size > 1 and init.name not in scales:
            out[init.name] = torch.from_numpy(np.array(array))
    return out


def dequantized_weights(graph) -> dict[str, np.ndarray]:
    """``{DequantizeLinear output: float32 values}`` for each DequantizeLinear of a stored int8/uint8 tensor."""
    from onnx import numpy_helper

    stored = {t.name: t for t in graph.initializer}
    out = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or not all(i in stored for i in node.input if i):
            continue
        codes, scale = (numpy_helper.to_array(stored[i]) for i in node.input[:2])
        zero = numpy_helper.to_array(stored[node.input[2]]) if len(node.input) > 2 and node.input[2] else 0
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        view = [1] * codes.ndim
        if np.ndim(scale) and codes.ndim:
            view[axis] = -1
        values = (codes.astype(np.float32) - np.reshape(zero, view if np.ndim(zero) else ()).astype(np.float32))
        out[node.output[0]] = values * np.reshape(scale, view if np.ndim(scale) else ()).astype(np.float32)
    return out


def load_onnx_bundle(path: Path, source: str):
    """The ONNX file at ``path`` as a :class:`~gancompress.checkpoint.GanBundle` (generator only)."""
    require_onnxruntime(f"{source}: reading an ONNX file")
    import onnx
    import onnxruntime as ort

    from .checkpoint import GanBundle

    try:
        model = onnx.load(str(path), load_external_data=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # the cores torch would use, not all of them
        # 8-bit weights behind DequantizeLinear: dequantized once when the session is built, not on every call
        # (onnxruntime has no kernels for weight-only 8-bit convolutions; its default re-dequantizes per run)
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - protobuf and onnxruntime raise their own types
        raise InputError(f"{source}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    generator = OnnxGenerator(path, session, _stored_tensors(model), meta).eval()
    generator.macs = graph_macs(model, generator.input_shape)
    return GanBundle(generator, None, source=source,
                     meta={"provenance": {"source": source, "export": "onnx", "runtime": generator.runtime}})


def graph_macs(model, input_shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(dense, effective) multiply-accumulates of one sample through Conv, ConvTranspose, Gemm and MatMul
    nodes; effective scales each node by its stored weight's nonzero fraction. None: shapes unknown."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.shape_inference.infer_shapes(_batch_one(model, input_shape)).graph
    except Exception:  # noqa: BLE001 - inference fails on some custom graphs: MACs unknown
        return None
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*graph.input, *graph.value_info, *graph.output]}
    shapes.update({t.name: list(t.dims) for t in graph.initializer})
    stored = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    stored.update(dequantized_weights(graph))
    for name, values in dequantized_weights(graph).items():
        shapes[name] = list(values.shape)
    dense = effective = 0.0
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        w, a, out = shapes.get(node.input[1]), shapes.get(node.input[0]), shapes.get(node.output[0])
        if not w or not out or not a or 0 in w or 0 in out or 0 in a:
            return None
        macs = _node_macs(node.op_type, a, w, out)
        weight = stored.get(node.input[1])
        dense += macs
        effective += macs * (float(np.count_nonzero(weight)) / max(1, weight.size) if weight is not None else 1.0)
    return int(dense), int(round(effective))


def _node_macs(op: str, a: list[int], w: list[int], out: list[int]) -> int:
    if op == "Conv":  # out (N, Co, ...) each sums Ci/groups * kernel products: w is (Co, Ci/g, k...)
        return int(np.prod(out)) * int(np.prod(w[1:]))
    if op == "ConvTranspose":  # every input element meets Co/g * kernel weights: w is (Ci, Co/g, k...)
        return int(np.prod(a)) * int(np.prod(w[1:]))
    return int(np.prod(out)) * int(a[-1])  # Gemm/MatMul: each output sums over the shared axis


def _batch_one(model, input_shape: tuple[int, ...]):
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    dims = copy.graph.input[0].type.tensor_type.shape.dim
    for d, size in zip(dims, (1, *input_shape)):
        d.ClearField("dim_param")
        d.dim_value = size
    return copy
