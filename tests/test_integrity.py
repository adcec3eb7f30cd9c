"""An edited file never loads as something else: the integrity digest of every file we write,
exact mask byte lengths, and byte-identical output for the same command."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gancompress.api import load
from gancompress.errors import InputError
from hostile_files import (
    Z, cli, edit_metadata, flip_byte, one_error_line, read_raw, replace_tensor, strip_digest, tensor_bytes,
    tiny_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
PRUNINGS = {"element": ["-s", "0.7", "--prune-first-last"], "filter": ["-g", "filter", "-s", "0.5"],
            "block": ["-g", "block", "-s", "0.8", "--block", "2x2"], "nm": ["-g", "nm", "--nm", "2:4", "--prune-first-last", "--nm-axis", "kernel"],
             "nm-in": ["-g", "nm", "--nm", "1:4", "--keep-dense", "none"],
             "element-90": ["-s", "0.9", "--prune-first-last"]}  # 10% kept: the rice gap code


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A checkpoint, pruned checkpoints at four granularities and every safetensors export of them."""
    root = tmp_path_factory.mktemp("integrity")
    ckpt = tiny_checkpoint(root / "ckpt.safetensors", masks=False)
    out = {"checkpoint": ckpt}
    for name, args in PRUNINGS.items():
        pruned = root / f"{name}.safetensors"
        assert cli("prune", ckpt, "-o", pruned, *args, "-q").exit_code == 0
        out[f"pruned-{name}"] = pruned
        sparse = root / f"{name}.sparse.safetensors"
        assert cli("export", pruned, "-o", sparse, "-q").exit_code == 0
        out[f"sparse-{name}"] = sparse
    for fmt in ("dense", "shrunk"):
        path = root / f"filter.{fmt}.safetensors"
        assert cli("export", out["pruned-filter"], "-o", path, "--format", fmt, "-q").exit_code == 0
        out[fmt] = path
    for pruned, fmt, scheme in (("block", "sparse", "int8"), ("element", "sparse", "fp8"), ("filter", "dense", "int8"),
                                ("filter", "shrunk", "fp8")):  # 8-bit codes and their scales
        path = root / f"{pruned}.{fmt}.{scheme}.safetensors"
        args = ("-o", path, "--format", fmt, "--quantize", scheme, "-q")
        assert cli("export", out[f"pruned-{pruned}"], *args).exit_code == 0
        out[f"{fmt}-{pruned}-{scheme}"] = path
    return out


def _encodings(path: Path) -> dict[str, str]:
    header, _ = read_raw(path)
    return {k: v["encoding"] for k, v in json.loads(header["__metadata__"].get("tensors", "{}")).items()}


def test_the_fixture_covers_every_encoding(files):
    seen = set()
    for key in files:
        if key.startswith("sparse-"):
            seen |= set(_encodings(files[key]).values())
    assert {"bitmask", "slices", "blocks", "nm", "nm_dim", "rice"} <= seen


def test_every_file_we_write_records_a_sha256_digest(files):
    for key, path in files.items():
        meta = read_raw(path)[0]["__metadata__"]
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", meta.get("digest", "")), key


def test_a_flipped_byte_in_any_tensor_is_refused(files, tmp_path):
    """Every tensor of every kind of file: one changed byte and the file no longer loads."""
    checked = 0
    for path in files.values():
        header, _ = read_raw(path)
        for name, info in header.items():
            if name == "__metadata__" or info["data_offsets"][0] == info["data_offsets"][1]:
                continue
            bad = flip_byte(path, tmp_path / "bad.safetensors", name, index=7)
            with pytest.raises(InputError, match="digest"):
                load(bad)
            checked += 1
    assert checked > 100
    assert sum(name.endswith(".scale") for p in files.values() for name in read_raw(p)[0]) >= 12


def test_the_cli_names_the_damage_in_one_line(files, tmp_path):
    bad = flip_byte(files["sparse-nm"], tmp_path / "bad.safetensors", "net.3.weight.indices")
    for command in (["inspect", bad], ["export", bad, "-o", tmp_path / "x.safetensors"]):
        line = one_error_line(cli(*command))
        assert "digest" in line and "bad.safetensors" in line
    assert not (tmp_path / "x.safetensors").exists()


def _swap_one_set_and_one_unset_bit(packed: bytes) -> bytes:
    bits = np.unpackbits(np.frombuffer(packed, np.uint8), bitorder="little")
    on, off = int(np.flatnonzero(bits)[0]), int(np.flatnonzero(bits == 0)[0])
    bits[on], bits[off] = 0, 1
    return np.packbits(bits, bitorder="little").tobytes()


@pytest.mark.parametrize("granularity, suffix", [("element", "bitmask"), ("filter", "slice_mask"), ("block", "block_mask"),
                                                 ("element-90", "gaps_high"), ("element-90", "gaps_low")])
def test_a_moved_mask_bit_is_refused(files, tmp_path, granularity, suffix):
    path = files[f"sparse-{granularity}"]
    name = next(n for n, e in _encodings(path).items() if f"{n}.{suffix}" in read_raw(path)[0])
    header = read_raw(path)[0][f"{name}.{suffix}"]
    raw = _swap_one_set_and_one_unset_bit(tensor_bytes(path, f"{name}.{suffix}"))
    bad = replace_tensor(path, tmp_path / "bad.safetensors", f"{name}.{suffix}", raw, header["shape"])
    with pytest.raises(InputError, match="digest"):
        load(bad)


def test_digest_covers_the_metadata_that_decides_the_weights(files, tmp_path):
    edits = {
        "axis": ("sparse-filter", lambda m: m.update(tensors=m["tensors"].replace('"axis":1', '"axis":0', 1))),
        "g_arch": ("dense", lambda m: m.update(g_arch=m["g_arch"].replace('"nc": 1', '"nc": 1, "x": 0'))),
        "mask_shapes": ("pruned-element", lambda m: m.update(mask_shapes=json.dumps(
            {k: list(reversed(v)) for k, v in json.loads(m["mask_shapes"]).items()}))),
    }
    for what, (key, edit) in edits.items():
        bad = edit_metadata(files[key], tmp_path / f"{what}.safetensors", edit)
        assert read_raw(bad)[0]["__metadata__"] != read_raw(files[key])[0]["__metadata__"], what
        with pytest.raises(InputError):
            load(bad)


def test_informational_metadata_is_not_part_of_the_digest(files, tmp_path):
    edited = edit_metadata(files["sparse-element"], tmp_path / "e.safetensors",
                           lambda m: m.update(provenance=json.dumps({"source": "renamed"})))
    with torch.no_grad():
        assert torch.equal(load(edited)(Z), load(files["sparse-element"])(Z))


# ----------------------------------------------------------------------------- without a digest


def _mask_name(path: Path) -> str:
    """A mask whose bit count is not a multiple of 8 (so it has padding bits)."""
    shapes = json.loads(read_raw(path)[0]["__metadata__"]["mask_shapes"])
    return next(f"M.{k}" for k, v in sorted(shapes.items()) if int(np.prod(v)) % 8)


@pytest.mark.parametrize("change", ["truncated", "padded", "padded-zeros", "pad-bits", "int8", "2-d"])
def test_mask_bytes_must_match_the_declared_shape_exactly(files, tmp_path, change):
    """Checked even in a file without a digest (written before digests existed, or with the digest removed)."""
    src = edit_metadata(files["pruned-element"], tmp_path / "nodigest.safetensors", strip_digest)
    load(src)  # a file without a digest still loads
    name = _mask_name(src)
    raw = tensor_bytes(src, name)
    shape = json.loads(read_raw(src)[0]["__metadata__"]["mask_shapes"])[name[2:]]
    n = int(np.prod(shape))
    dtype, dims = "U8", [len(raw)]
    if change == "truncated":
        raw = raw[:-1]
    elif change == "padded":
        raw = raw + b"\xff"
    elif change == "padded-zeros":
        raw = raw + b"\x00" * 64
    elif change == "pad-bits":
        assert n % 8, "pick a mask whose bit count is not a multiple of 8"
        raw = raw[:-1] + bytes([raw[-1] | 0x80])
    elif change == "int8":
        dtype = "I8"
    else:
        dims = [1, len(raw)]
    dims = [len(raw)] if change != "2-d" else dims
    bad = replace_tensor(src, tmp_path / "bad.safetensors", name, raw, dims, dtype)
    line = one_error_line(cli("inspect", bad))
    assert name[2:] in line


def test_gancompress_files_without_digest_are_still_read(files, tmp_path):
    for key in ("pruned-nm", "sparse-block", "shrunk"):
        plain = edit_metadata(files[key], tmp_path / f"{key}.safetensors", strip_digest)
        with torch.no_grad():
            assert torch.equal(load(plain)(Z), load(files[key])(Z)), key


# ----------------------------------------------------------------------------- the numpy-only reader


def _numpy_decoder():
    namespace: dict = {}
    source = (ROOT / "gancompress" / "export" / "_numpy_decoder.py").read_text(encoding="utf-8")
    exec(compile(source, "_numpy_decoder.py", "exec"), namespace)  # noqa: S102 - our own code
    return namespace


def test_numpy_reader_verifies_the_digest(files, tmp_path):
    dec = _numpy_decoder()
    state = dec["load_state"](str(files["sparse-block"]))
    want = load(files["sparse-block"]).state_dict()
    assert all(np.asarray(state[k]).tobytes() == v.numpy().tobytes() for k, v in want.items())
    name = next(iter(_encodings(files["sparse-block"])))
    bad = flip_byte(files["sparse-block"], tmp_path / "bad.safetensors", f"{name}.compressed", index=3)
    with pytest.raises(ValueError, match="digest"):
        dec["load_state"](str(bad))
    header, data = read_raw(files["dense"])
    meta = header.pop("__metadata__")
    assert dec["file_digest"](header, data, meta) == meta["digest"]


# ----------------------------------------------------------------------------- determinism


def _header_keys(path: Path) -> list[str]:
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    return list(json.loads(blob[8:8 + n])["__metadata__"])


def test_same_command_writes_byte_identical_files(files, tmp_path):
    """Two processes (different hash seeds) write the same bytes; ``__metadata__`` keys come sorted."""
    script = ("import sys; from typer.testing import CliRunner; from gancompress.cli.main import app; "
              "r = CliRunner().invoke(app, sys.argv[1:]); sys.exit(r.exit_code)")
    outputs = []
    for i, seed in enumerate(("1", "2")):
        out = tmp_path / f"run{i}" / "pruned.safetensors"
        out.parent.mkdir()
        env = {**__import__("os").environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-c", script, "prune", str(files["checkpoint"]), "-s", "0.5", "-o", str(out), "-q"],
                       check=True, env=env, cwd=ROOT, timeout=300)
        outputs.append(out)
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    for path in (outputs[0], files["sparse-nm"], files["shrunk"]):
        keys = _header_keys(path)
        assert keys == sorted(keys), path.name


def test_onnx_exports_record_a_digest_that_catches_edits(files, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from gancompress.formats.onnx_file import verify

    out = tmp_path / "g.onnx"
    assert cli("export", files["pruned-element"], "-o", out, "--format", "onnx", "-q").exit_code == 0
    model = onnx.load(str(out))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["format"] == "gancompress-onnx" and re.fullmatch(r"sha256:[0-9a-f]{64}", props["digest"])
    verify(out)
    init = max(model.graph.initializer, key=lambda t: len(numpy_helper.to_array(t).reshape(-1)))
    values = numpy_helper.to_array(init).copy()
    values.reshape(-1)[3] += 1.0
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(InputError, match="digest"):
        verify(tmp_path / "bad.onnx")
