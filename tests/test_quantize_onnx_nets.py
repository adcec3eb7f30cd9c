"""``export --format onnx --quantize int8|fp8`` beyond noise-to-image DCGANs: a class-conditional generator
(latent + labels, an embedding beside the linear layers) and a pix2pix U-Net (image input, strided and
transposed convolutions, skips), both third-party style networks (tests/thirdparty_nets.py) read with
``--arch``. The ONNX file holds 8-bit weights behind per-channel DequantizeLinear and onnxruntime gives
what the dequantized torch model (``gancompress.load`` of the dense export with the same scheme) gives."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import custom_nets as nets
import gancompress
from gancompress.archs.custom import build_custom
from gancompress.formats.quantize import weight_axes
from test_custom_networks import _run

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = {  # generator class, --arch-kwargs
    "conditional-cgan": ("CGANGenerator", {"input_shape": [8], "num_classes": 3}),
    "image-to-image-unet": ("GeneratorUNet", {"input_shape": [3, 16, 16], "input_kind": "image"}),
}


def _8bit_exports(case: str, scheme: str, folder: Path) -> tuple[Path, Path, str]:
    """The generator pruned 50% (element), exported dense and ONNX with ``--quantize scheme``; its --arch."""
    name, kwargs = CASES[case]
    arch = f"thirdparty_nets:{name}"
    flags = ["--arch", arch, "--arch-kwargs", json.dumps(kwargs)]
    torch.manual_seed(0)
    torch.save({"G": build_custom(arch, kwargs, "generator").state_dict()}, folder / "gan.pth")
    pruned = _run("prune", folder / "gan.pth", "-s", "0.5", "--prune-first-last", "-o", folder / "p.safetensors",
                  "-q", *flags)
    dense = _run("export", pruned, "--format", "dense", "--quantize", scheme, "-o", folder / "g.8bit.safetensors",
                 "-q", *flags)
    onnx = _run("export", pruned, "--format", "onnx", "--no-shrink", "--quantize", scheme, "-o",
                folder / "g.8bit.onnx", "-q", *flags)
    return Path(dense), Path(onnx), arch


@pytest.mark.parametrize("scheme", ["int8", "fp8"])
@pytest.mark.parametrize("case", list(CASES))
def test_8bit_onnx_matches_the_dequantized_torch_model(case, scheme, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import numpy_helper

    dense, path, arch = _8bit_exports(case, scheme, tmp_path)
    reference = gancompress.load(dense, arch=arch).eval()
    model = onnx.load(str(path))
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert len(dq) == len(weight_axes(reference)) and not any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    assert all(str(inits[n.input[0]].dtype) == {"int8": "int8", "fp8": "float8_e4m3fn"}[scheme] for n in dq)

    torch.manual_seed(1)
    args = nets.example_inputs(reference)
    with torch.no_grad():
        want = reference(*args).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)})[0]
    assert len(session.get_inputs()) == len(args) and got.shape == want.shape
    assert float(np.abs(got - want).max()) < 1e-5
    loaded = gancompress.load(path)  # gancompress's own session folds the weights' DequantizeLinear once
    assert loaded.session.get_session_options().get_session_config_entry("session.disable_quant_qdq") == "1"
    with torch.no_grad():
        assert float(np.abs(loaded(*args).numpy() - want).max()) < 1e-5
    float_model = gancompress.load(tmp_path / "p.safetensors", arch=arch).eval()
    with torch.no_grad():  # the 8-bit rounding is visible: the ONNX file is not the float model
        assert float(np.abs(float_model(*args).numpy() - got).max()) > 1e-5
