"""8-bit weights next to pruning (``export --quantize int8|fp8``): the scales, the file layout,
exact round trips, the numpy-only decoder, and damaged quantization metadata."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gancompress.api import load
from gancompress.errors import InputError
from gancompress.formats.quantize import (FP8_VALUES, SCHEMES, QuantPlan, fake_quantize, plan_for, quantize,
                                          weight_axes)
from gancompress.formats.quantized_file import dequantize_state, quantize_state
from gancompress.loading import load_bundle
from hostile_files import Z, cli, edit_metadata, one_error_line, read_raw, replace_tensor, strip_digest, tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PRUNINGS = {"element": ["-s", "0.7", "--keep-dense", "none"], "block": ["-g", "block", "-s", "0.8", "--block", "2x2"],
            "filter": ["-g", "filter", "-s", "0.5"]}


def _numpy_decoder() -> dict:
    namespace: dict = {}
    source = (ROOT / "gancompress" / "export" / "_numpy_decoder.py").read_text(encoding="utf-8")
    exec(compile(source, "_numpy_decoder.py", "exec"), namespace)  # noqa: S102 - our own code
    return namespace


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Pruned checkpoints (element, block, filter) and their sparse/dense/shrunk exports in int8 and fp8."""
    root = tmp_path_factory.mktemp("quant")
    ckpt = tiny_checkpoint(root / "ckpt.safetensors", masks=False)
    out = {}
    for prune, args in PRUNINGS.items():
        pruned = root / f"{prune}.safetensors"
        assert cli("prune", ckpt, "-o", pruned, *args, "-q").exit_code == 0
        out[prune] = pruned
        for fmt in ("sparse", "dense", "shrunk"):
            for scheme in SCHEMES.names():
                path = root / f"{prune}.{fmt}.{scheme}.safetensors"
                r = cli("export", pruned, "-o", path, "--format", fmt, "--quantize", scheme, "-q")
                assert r.exit_code == 0, r.stderr
                out[(prune, fmt, scheme)] = path
    return out


def _quant_meta(path: Path) -> dict:
    return json.loads(read_raw(path)[0]["__metadata__"]["quantization"])


# ----------------------------------------------------------------------------- scales and codes


@pytest.mark.parametrize("scheme", ["int8", "fp8"])
def test_zero_pruned_and_underflowing_channels_decode_to_exact_zeros(scheme):
    w = torch.randn(5, 3, 2, 2)
    w[1] = 0.0  # a pruned filter
    w[2] = 1e-44  # max|w| / qmax underflows float32
    w[3, 0] = 0.0  # partly pruned
    s = SCHEMES.get(scheme)
    codes, scale = quantize(w, s, QuantPlan("channel", 0))
    assert scale.shape == (5,) and bool(torch.isfinite(scale).all()) and bool((scale > 0).all())
    assert scale[1] == 1.0 and scale[2] == 1.0
    values = fake_quantize(w, s, QuantPlan("channel", 0))
    assert torch.equal(values[1], torch.zeros_like(w[1])) and torch.equal(values[3, 0], torch.zeros_like(w[3, 0]))
    assert bool((values[w == 0] == 0).all())  # every zero stays a zero: masks survive quantization
    live = [0, 3, 4]
    assert torch.allclose(scale[live], w[live].abs().amax(dim=(1, 2, 3)) / s.qmax)
    err = (values - w).abs()[live].amax(dim=(1, 2, 3))
    bound = scale[live] / 2 if scheme == "int8" else w[live].abs().amax(dim=(1, 2, 3)) / 16  # e4m3: 3 mantissa bits
    assert bool((err <= bound * 1.0001).all()), (err, bound)


def test_int8_codes_span_the_range_and_round_half_to_even():
    w = torch.tensor([[127.0, 0.5, 1.5, -2.5, -127.0, 0.0]])
    codes, scale = quantize(w, SCHEMES.get("int8"), QuantPlan("channel", 0))
    assert scale.tolist() == [1.0] and codes.dtype == torch.int8
    assert codes.tolist() == [[127, 0, 2, -2, -127, 0]]


def test_non_finite_weights_are_refused():
    w = torch.ones(2, 2)
    w[0, 1] = float("nan")
    with pytest.raises(InputError, match="NaN or infinite"):
        quantize(w, SCHEMES.get("int8"), QuantPlan("channel", 0), "net.0.weight")


def test_scales_run_along_each_layers_output_axis():
    model = nn.Sequential(nn.ConvTranspose2d(6, 4, 3), nn.Conv2d(4, 5, 3), nn.Flatten(), nn.Linear(7, 3))
    assert weight_axes(model) == {"0.weight": 1, "1.weight": 0, "3.weight": 0}
    state = {k: v.detach() for k, v in model.state_dict().items()}
    state["0.weight"][:, 2] = 0.0  # one output channel of the transposed conv pruned
    codes, scales, quant = quantize_state(state, weight_axes(model), "int8", blocks=False)
    assert scales["0.weight.scale"].shape == (4,) and scales["0.weight.scale"][2] == 1.0
    assert scales["1.weight.scale"].shape == (5,) and scales["3.weight.scale"].shape == (3,)
    assert codes["0.bias"] is state["0.bias"]  # biases stay float
    back = dequantize_state({**codes, **scales}, quant, {}, {})
    assert torch.equal(back["0.weight"][:, 2], torch.zeros_like(back["0.weight"][:, 2]))


def test_the_fp8_value_table_is_torchs_and_the_numpy_decoders():
    ours = _numpy_decoder()["fp8_e4m3_values"]()
    assert np.array_equal(ours, FP8_VALUES, equal_nan=True)
    finite = np.isfinite(FP8_VALUES)
    assert np.array_equal(np.signbit(ours[finite]), np.signbit(FP8_VALUES[finite])) and int((~finite).sum()) == 2
    assert np.nanmax(FP8_VALUES) == 448.0


# ----------------------------------------------------------------------------- files


def _want(prune_file: Path, fmt: str, scheme: str) -> dict[str, torch.Tensor]:
    """The weights the export must hold: the masked (shrunk) generator's weights through fake quantization."""
    model = load_bundle(str(prune_file)).masked_generator()
    if fmt == "shrunk":
        from gancompress.export.shrink import shrink_generator

        model = shrink_generator(model, load_bundle(str(prune_file)).g_spec)[0]
    state = model.state_dict()
    axes = weight_axes(model)
    out = dict(state)
    for name, axis in axes.items():
        out[name] = fake_quantize(state[name], SCHEMES.get(scheme), plan_for(state[name], axis, blocks=fmt == "sparse"))
    return out


@pytest.mark.parametrize("prune", list(PRUNINGS))
@pytest.mark.parametrize("fmt", ["sparse", "dense", "shrunk"])
@pytest.mark.parametrize("scheme", ["int8", "fp8"])
def test_round_trip_is_exact_to_the_stored_scheme(files, prune, fmt, scheme):
    path = files[(prune, fmt, scheme)]
    got = load(path).state_dict()
    want = _want(files[prune], fmt, scheme)
    assert set(got) == set(want)
    for name, value in want.items():
        assert torch.equal(got[name], value), name
    dec = _numpy_decoder()["load_state"](str(path))  # the numpy-only reader gets the same bits
    assert set(dec) == set(got)
    for name, value in got.items():
        assert np.asarray(dec[name], dtype=value.numpy().dtype).tobytes() == value.numpy().tobytes(), name
    with torch.no_grad():
        dense = load(files[prune])(Z)
        assert float((load(path)(Z) - dense).abs().max()) < 0.1


def test_block_sparse_weights_get_a_scale_per_stored_tile(files):
    path = files[("block", "sparse", "int8")]
    header = read_raw(path)[0]
    table = json.loads(header["__metadata__"]["tensors"])
    plans = _quant_meta(path)["tensors"]
    blocked = [n for n, p in plans.items() if p["scales"] == "block"]
    assert blocked, plans
    for name in blocked:
        assert table[name]["encoding"] == "blocks" and table[name]["block"] == plans[name]["block"]
        assert header[f"{name}.scale"]["shape"] == [header[f"{name}.compressed"]["shape"][0]]
        assert header[f"{name}.compressed"]["dtype"] == "I8"
    dense_plans = _quant_meta(files[("block", "dense", "int8")])["tensors"]
    assert all(p["scales"] == "channel" for p in dense_plans.values())


def test_quantized_files_store_8_bit_values_at_a_fraction_of_float32(files, tmp_path):
    for prune in PRUNINGS:
        dense = tmp_path / f"{prune}.dense.safetensors"
        assert cli("export", files[prune], "-o", dense, "--format", "dense", "-q").exit_code == 0
        float_bytes = len(read_raw(dense)[1])  # tensor bytes (the tiny model's header is most of its file)
        for fmt in ("sparse", "dense"):
            header, data = read_raw(files[(prune, fmt, "fp8")])
            kinds = {v["dtype"] for k, v in header.items() if k != "__metadata__"}
            assert "F8_E4M3" in kinds and "F32" in kinds  # fp8 codes; float32 scales and biases
            for scheme in SCHEMES.names():
                # 8-bit codes plus a scale per channel (2x2 tiles: a float32 scale per 4 codes)
                assert len(read_raw(files[(prune, fmt, scheme)])[1]) < 0.45 * float_bytes, (prune, fmt, scheme)


# ----------------------------------------------------------------------------- damaged files


def _edit_quant(src: Path, dst: Path, change) -> Path:
    def edit(meta):
        strip_digest(meta)  # the structural checks hold on their own, digest or not
        doc = json.loads(meta["quantization"])
        change(doc)
        meta["quantization"] = json.dumps(doc)
    return edit_metadata(src, dst, edit)


def _first(doc: dict, scales: str = "channel") -> str:
    return next(n for n, p in doc["tensors"].items() if p["scales"] == scales)


@pytest.mark.parametrize("case", ["scheme", "axis", "plan", "block-on-bitmask", "not-json"])
def test_damaged_quantization_metadata_is_refused_in_one_line(files, tmp_path, case):
    src = files[("element", "sparse", "int8")]
    if case == "not-json":
        bad = edit_metadata(src, tmp_path / "bad.safetensors", lambda m: (strip_digest(m), m.update(quantization="{")))
    else:
        def change(doc):
            name = _first(doc)
            if case == "scheme":
                doc["scheme"] = "int4"
            elif case == "axis":
                doc["tensors"][name]["axis"] = 5
            elif case == "plan":
                doc["tensors"][name] = {"scales": "row", "axis": 0}
            else:
                doc["tensors"][name] = {"scales": "block", "axis": 0, "block": [2, 2]}
        bad = _edit_quant(src, tmp_path / "bad.safetensors", change)
    line = one_error_line(cli("inspect", bad))
    assert "export it again" in line


@pytest.mark.parametrize("case", ["nan", "inf", "zero", "negative", "short", "float16", "2-d", "missing"])
def test_scale_arrays_are_validated(files, tmp_path, case):
    src = edit_metadata(files[("element", "dense", "int8")], tmp_path / "nodigest.safetensors", strip_digest)
    name = _first(_quant_meta(src))
    header = read_raw(src)[0][f"{name}.scale"]
    scale = np.frombuffer(_bytes(src, f"{name}.scale"), np.float32).copy()
    shape, dtype = header["shape"], "F32"
    if case in ("nan", "inf", "zero", "negative"):
        scale[0] = {"nan": np.nan, "inf": np.inf, "zero": 0.0, "negative": -1.0}[case]
    elif case == "short":
        scale, shape = scale[:-1], [shape[0] - 1]
    elif case == "float16":
        scale, dtype = scale.astype(np.float16), "F16"
    elif case == "2-d":
        shape = [1, shape[0]]
    raw = scale.tobytes()
    if case == "missing":
        bad = _rename_tensor(src, tmp_path / "bad.safetensors", f"{name}.scale", f"{name}.scales")
    else:
        bad = replace_tensor(src, tmp_path / "bad.safetensors", f"{name}.scale", raw, shape, dtype)
    assert name in one_error_line(cli("inspect", bad))


@pytest.mark.parametrize("case", ["int8-range", "fp8-nan", "float-codes"])
def test_codes_are_checked(files, tmp_path, case):
    scheme = "fp8" if case == "fp8-nan" else "int8"
    src = edit_metadata(files[("element", "dense", scheme)], tmp_path / "nodigest.safetensors", strip_digest)
    name = _first(_quant_meta(src))
    header = read_raw(src)[0][name]
    raw = bytearray(_bytes(src, name))
    dtype = header["dtype"]
    if case == "float-codes":
        raw, dtype = np.frombuffer(bytes(raw), np.int8).astype(np.float32).tobytes(), "F32"
    else:
        raw[0] = 0x80 if case == "int8-range" else 0x7F  # int8 -128; fp8 NaN
        raw = bytes(raw)
    bad = replace_tensor(src, tmp_path / "bad.safetensors", name, raw, header["shape"], dtype)
    assert name in one_error_line(cli("inspect", bad))


def test_block_scales_must_match_the_stored_tiles(files, tmp_path):
    src = edit_metadata(files[("block", "sparse", "int8")], tmp_path / "nodigest.safetensors", strip_digest)
    name = _first(_quant_meta(src), "block")
    scale = _bytes(src, f"{name}.scale")
    bad = replace_tensor(src, tmp_path / "bad.safetensors", f"{name}.scale", scale + scale[:4], [len(scale) // 4 + 1])
    assert "tile scales" in one_error_line(cli("inspect", bad))


def test_the_digest_covers_the_quantization_metadata(files, tmp_path):
    def halve_axis(meta):
        doc = json.loads(meta["quantization"])
        doc["scheme"] = "fp8"
        meta["quantization"] = json.dumps(doc)
    bad = edit_metadata(files[("element", "sparse", "int8")], tmp_path / "bad.safetensors", halve_axis)
    with pytest.raises(InputError, match="digest"):
        load(bad)


def _bytes(path: Path, name: str) -> bytes:
    header, data = read_raw(path)
    start, end = header[name]["data_offsets"]
    return data[start:end]


def _rename_tensor(src: Path, dst: Path, name: str, new: str) -> Path:
    from hostile_files import write_raw

    header, data = read_raw(src)
    header[new] = header.pop(name)
    return write_raw(dst, header, data)


# ----------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("args, needle", [
    (["--quantize", "int4"], "unknown quantization scheme 'int4'"),
    (["--quantize", "int8", "--dtype", "float16"], "does not combine with --dtype float16"),
])
def test_bad_quantize_options_exit_2_and_write_nothing(files, tmp_path, args, needle):
    out = tmp_path / "g.out"
    line = one_error_line(cli("export", files["element"], "-o", out, *args))
    assert needle in line and not out.exists()


# ----------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("scheme", ["int8", "fp8"])
def test_onnx_8bit_runs_in_onnxruntime_and_matches_the_dequantized_torch_model(files, tmp_path, scheme):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import numpy_helper

    from gancompress.formats.onnx_file import verify
    from gancompress.formats.onnx import load_onnx_bundle

    path, plain = tmp_path / f"g.{scheme}.onnx", tmp_path / "g.onnx"
    for out, extra in ((path, ["--quantize", scheme]), (plain, [])):
        r = cli("export", files["element"], "-o", out, "--format", "onnx", "--no-shrink", *extra, "-q")
        assert r.exit_code == 0, r.stderr
    verify(path)
    model = onnx.load(str(path))
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert len(dq) == 4 and not any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    torch_model = load(files[("element", "dense", scheme)])
    axes = weight_axes(torch_model)
    for node in dq:
        codes, scale = inits[node.input[0]], inits[node.input[1]]
        axis = next(a.i for a in node.attribute if a.name == "axis")
        assert str(codes.dtype) == {"int8": "int8", "fp8": "float8_e4m3fn"}[scheme] and codes.ndim == 4
        assert scale.dtype == np.float32 and scale.shape == (codes.shape[axis],)
        assert axis == axes[node.input[0].removesuffix(f"_{scheme}")]  # per output channel (1 for ConvTranspose2d)
    assert not any(v.dtype == np.float32 and v.ndim == 4 for v in inits.values())  # no float weights left
    assert path.stat().st_size < 0.6 * plain.stat().st_size
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: Z.numpy()})[0]
    with torch.no_grad():
        want = torch_model(Z).numpy()
    assert float(np.abs(got - want).max()) < 1e-5
    stored = load_onnx_bundle(path, str(path)).generator.state_dict()  # evaluate's view: the int8 weights' values
    for name in axes:
        assert any(torch.equal(v, torch_model.state_dict()[name]) for v in stored.values()), name


def test_dequantized_sizes_count_before_anything_is_decoded(files, tmp_path):
    """A table whose 1-byte codes would fit the size limit but whose float32 values would not: refused up front."""
    src = files[("element", "sparse", "int8")]
    table = json.loads(read_raw(src)[0]["__metadata__"]["tensors"])
    name = next(n for n, i in table.items() if i["encoding"] in ("bitmask", "rice"))
    limit = 64 * src.stat().st_size + (16 << 20)
    cols = limit // 2  # 0.5x the limit as int8 codes, 2x as float32 values

    def edit(meta):
        strip_digest(meta)
        t = json.loads(meta["tensors"])
        t[name] = {**t[name], "shape": [1, cols]}
        meta["tensors"] = json.dumps(t)
    bad = edit_metadata(src, tmp_path / "bad.safetensors", edit)
    assert "declares" in one_error_line(cli("inspect", bad))


# ----------------------------------------------------------------------------- inspect


def test_inspect_shows_the_scheme_and_the_scales_of_each_weight(files):
    block = json.loads(cli("inspect", files[("block", "sparse", "int8")], "--json").stdout)
    assert block["quantization"]["scheme"] == "int8" and "per-block" in block["quantization"]["scales"]
    stored = {r["name"]: r.get("quantized") for r in block["generator"]["layers"]}
    assert stored["net.3"] == "int8 per-block 2x2" and stored["net.1"] is None  # BatchNorm stays float
    dense = json.loads(cli("inspect", files[("filter", "dense", "fp8")], "--json").stdout)
    assert dense["quantization"] == {"scheme": "fp8", "weights": 4, "scales": {"per-channel": 4}}
    assert json.loads(cli("inspect", files["element"], "--json").stdout)["quantization"] is None  # a checkpoint
    table = cli("inspect", files[("block", "sparse", "int8")]).stdout
    assert "int8 per-block 2x2" in table and "quantized int8" in table and "stored as" in table
