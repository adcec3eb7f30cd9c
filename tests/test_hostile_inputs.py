"""Hostile and broken inputs: the right exit code and one line, never "internal error".

Groups: declared sizes checked against the bytes behind them; architecture metadata; sources that
are not regular files; ``--arch`` names and exceptions from the user's own code; images that are
decompression bombs; TorchScript; the Hub without a network; integer checkpoints.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from hostile_files import (
    G_SPEC, cli, edit_metadata, one_error_line, read_raw, replace_tensor, strip_digest, tiny_checkpoint, write_raw,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("hostile") / "ckpt.safetensors")


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile-sparse") / "g.sparse.safetensors"
    dense = tiny_checkpoint(out.with_name("dense.safetensors"), masks=False)
    assert cli("prune", dense, "-g", "filter", "-s", "0.5", "-o", out.with_name("p.safetensors"), "-q").exit_code == 0
    assert cli("export", out.with_name("p.safetensors"), "-o", out, "-q").exit_code == 0
    return out


def _meta_edit(src: Path, dst: Path, **values) -> Path:
    def edit(meta):
        strip_digest(meta)  # the structural checks must hold on their own, digest or not
        for k, v in values.items():
            if v is None:
                meta.pop(k, None)
            else:
                meta[k] = v if isinstance(v, str) else json.dumps(v)
    return edit_metadata(src, dst, edit)


# ----------------------------------------------------------------------------- declared sizes vs bytes


@pytest.mark.parametrize("g_arch", [
    {"name": "digits-dcgan-g", "kwargs": {"nz": 8, "ngf": 65536, "nc": 1}},
    {"name": "digits-dcgan-g", "kwargs": {"nz": 10 ** 12, "ngf": 4, "nc": 1}},
    {"name": "digits-dcgan-g", "kwargs": {"nz": 8, "ngf": -4, "nc": 1}},
    {"name": "digits-dcgan-g", "kwargs": {"nz": "8", "ngf": 4, "nc": 1}},
    {"name": "digits-dcgan-g", "kwargs": {"nz": 8, "ngf": 4, "nc": 1, "bogus": 1}},
    {"name": "dcgan-g", "kwargs": {"widths": [8, 2 ** 20, 2 ** 20, 4, 1]}},
])
def test_architecture_kwargs_must_agree_with_the_tensors(ckpt, tmp_path, g_arch):
    bad = _meta_edit(ckpt, tmp_path / "bad.safetensors", g_arch=g_arch)
    one_error_line(cli("inspect", bad))


def test_discriminator_kwargs_are_checked_too(ckpt, tmp_path):
    bad = _meta_edit(ckpt, tmp_path / "bad.safetensors", d_arch={"name": "digits-dcgan-d", "kwargs": {"ndf": 2 ** 16, "nc": 1}})
    one_error_line(cli("inspect", bad))


@pytest.mark.parametrize("g_arch", [None, "not json {", "[1, 2]", "\"digits-dcgan-g\"", {"kwargs": {}}, {"name": 7},
                                    {"name": "no-such-arch", "kwargs": {}}, {"name": "digits-dcgan-g", "kwargs": [1]}])
def test_missing_or_broken_architecture_metadata(ckpt, sparse, tmp_path, g_arch):
    for src in (ckpt, sparse):
        bad = _meta_edit(src, tmp_path / src.name, g_arch=g_arch)
        for command in ("inspect", "export"):
            args = [command, bad] + (["-o", tmp_path / "out.safetensors"] if command == "export" else [])
            line = one_error_line(cli(*args))
            assert "arch" in line
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("shape", [[65536, 65536], [2 ** 40], [-1, 4], ["8"], [], [4, 4, 4, 4, 4, 4, 4, 4, 4, 4]])
def test_mask_shapes_must_fit_the_parameter_and_the_bytes(ckpt, tmp_path, shape):
    meta = read_raw(ckpt)[0]["__metadata__"]
    masks = json.loads(meta["mask_shapes"])
    first = sorted(masks)[0]
    bad = _meta_edit(ckpt, tmp_path / "bad.safetensors", mask_shapes={**masks, first: shape})
    one_error_line(cli("inspect", bad))


@pytest.mark.parametrize("mask_shapes", ["{", "[]", '{"net.0.weight": 5}', "{\"nope\": [4]}"])
def test_mask_shapes_document_is_checked(ckpt, tmp_path, mask_shapes):
    one_error_line(cli("inspect", _meta_edit(ckpt, tmp_path / "bad.safetensors", mask_shapes=mask_shapes)))


def _table_edit(src: Path, dst: Path, name: str, info: dict, arrays: dict[str, tuple[bytes, list[int], str]]) -> Path:
    """Rewrite tensor ``name``'s table entry and its arrays consistently (the file stays a valid container)."""
    path = _meta_edit(src, dst)
    for suffix, (raw, shape, dtype) in arrays.items():
        path = replace_tensor(path, dst, f"{name}.{suffix}", raw, shape, dtype)

    def edit(meta):
        table = json.loads(meta["tensors"])
        table[name] = info
        meta["tensors"] = json.dumps(table)
    return edit_metadata(path, dst, edit)


def _shape_bytes(shape):
    return np.asarray(shape, np.int64).tobytes(), [len(shape)], "I64"


@pytest.mark.parametrize("case", ["slices-huge", "blocks-huge", "nm-huge", "bitmask-rows", "rice-huge", "negative", "not-int",
                                  "2**70"])
def test_sparse_table_sizes_are_checked_before_decoding(sparse, tmp_path, case):
    """Shapes that claim gigabytes with (almost) nothing behind them: refused, nothing allocated."""
    table = json.loads(read_raw(sparse)[0]["__metadata__"]["tensors"])
    name = next(n for n, i in table.items() if i["encoding"] == "slices")
    big = [2 ** 31, 2 ** 4]
    if case == "slices-huge":
        info = {"encoding": "slices", "shape": [1, 2 ** 33], "dtype": "float32", "axis": 0}
        arrays = {"shape": _shape_bytes([1, 2 ** 33]), "slice_mask": (b"\x00", [1], "U8"), "compressed": (b"", [0, 2 ** 33], "F32")}
    elif case == "blocks-huge":
        info = {"encoding": "blocks", "shape": big, "dtype": "float32", "axis": 0, "block": [1, 1]}
        arrays = {"shape": _shape_bytes(big), "compressed": (b"", [0, 1, 1], "F32")}
    elif case == "nm-huge":
        info = {"encoding": "nm", "shape": [1, 2 ** 34], "dtype": "float32", "axis": 0, "n": 1, "m": 256}
        arrays = {"shape": _shape_bytes([1, 2 ** 34])}
    elif case == "rice-huge":  # a few bytes of gap streams claiming 2**35 entries
        info = {"encoding": "rice", "shape": big, "dtype": "float32", "k": 20}
        arrays = {"shape": _shape_bytes(big), "gaps_high": (b"\x01", [1], "U8"), "gaps_low": (b"\x00" * 3, [3], "U8"),
                  "compressed": (b"\x00\x00\x80\x3f", [1], "F32")}
    elif case == "bitmask-rows":
        info = {"encoding": "bitmask", "shape": [2 ** 32, 1], "dtype": "float32"}
        arrays = {"shape": _shape_bytes([2 ** 32, 1])}
    else:
        value = {"negative": -5, "not-int": 2.5, "2**70": 2 ** 70}[case]
        info = {**table[name], "shape": [value, *table[name]["shape"][1:]]}
        arrays = {}
    bad = _table_edit(sparse, tmp_path / "bad.safetensors", name, info, arrays)
    one_error_line(cli("inspect", bad))


def test_a_zip_bomb_checkpoint_is_refused(tmp_path):
    """A 1 MB torch archive whose record inflates to 512 MiB."""
    path = tmp_path / "bomb.pt"
    torch.save({"w": torch.zeros(4)}, path)
    bomb = tmp_path / "bomb2.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bomb, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        info = zipfile.ZipInfo(f"{src.namelist()[0].split('/')[0]}/data/zeros")
        info.compress_type = zipfile.ZIP_DEFLATED
        with dst.open(info, "w", force_zip64=True) as fh:
            chunk = bytes(1 << 20)
            for _ in range(512):
                fh.write(chunk)
    line = one_error_line(cli("inspect", bomb))
    assert "bomb2.pt" in line and bomb.stat().st_size < 2 ** 21


# ----------------------------------------------------------------------------- sources that are not files


def test_non_regular_sources_are_refused_without_reading_them(tmp_path):
    fifo = tmp_path / "g.pt"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "netG.pth")
    link = tmp_path / "link.safetensors"
    link.symlink_to(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s.pt"))
    script = (
        "import json, sys\nfrom typer.testing import CliRunner\nfrom gancompress.cli.main import app\nout = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    out.append([r.exit_code, r.stderr])\n"
        "print(json.dumps(out))\n")
    cases = [["inspect", str(p)] for p in (fifo, "/dev/zero", "/dev/null", folder, link, tmp_path / "s.pt")]
    cases += [["prune", str(fifo), "-s", "0.5", "-o", str(tmp_path / "p.safetensors")],
              ["export", "/dev/zero", "-o", str(tmp_path / "e.safetensors")],
              ["finetune", "/dev/zero", "--method", "distill", "--steps", "1", "-o", str(tmp_path / "f.safetensors")],
              ["evaluate", "builtin:digits-dcgan", "--real", "builtin:digits", "--fid", "--extractor", "inception",
               "--inception-weights", str(fifo), "-n", "8"]]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True, env=env,
                       timeout=180, cwd=ROOT)
    sock.close()
    assert r.returncode == 0, r.stderr
    for args, (code, stderr) in zip(cases, json.loads(r.stdout)):
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, code, stderr)
        assert "internal error" not in stderr and "regular file" in stderr, (args, stderr)
    assert not [p for p in ("p", "e", "f") if list(tmp_path.glob(f"{p}.*"))]


# ----------------------------------------------------------------------------- --arch


@pytest.mark.parametrize("target", ["./mynets.py:Generator", "/abs/mynets:Generator", "mynets.py:Generator",
                                    "my nets:Generator", ":Generator", "mynets:", "", "a..b:G", "mynets:Gen-erator",
                                    "..mynets:Generator", "C:\\nets\\mynets:Generator"])
def test_arch_must_be_a_module_name(ckpt, target):
    line = one_error_line(cli("inspect", ckpt, "--arch", target))
    assert "--arch" in line


USER_CODE = {
    "import": "raise RuntimeError('boom at import')\n",
    "syntax": "def broken(:\n",
    "init": "import torch\nclass G(torch.nn.Module):\n    def __init__(self, **kw):\n        raise ValueError('boom in init')\n",
    "forward": ("import torch\nclass G(torch.nn.Module):\n    def __init__(self, nz=8, ngf=4, nc=1):\n        super().__init__()\n"
                "        from gancompress.archs.digits import DigitsGenerator\n        self.net = DigitsGenerator(nz, ngf, nc).net\n        self.input_shape = (nz, 1, 1)\n"
                "    def forward(self, z):\n        raise KeyError('boom in forward')\n"),
}


@pytest.mark.parametrize("where", list(USER_CODE))
def test_exceptions_in_the_users_arch_code_are_the_users(tmp_path, monkeypatch, where):
    module = f"usernet_{where}"
    (tmp_path / f"{module}.py").write_text(USER_CODE[where])
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    plain = tmp_path / "g.pt"
    torch.save(tiny_checkpoint_state(), plain)
    if where == "forward":
        r = cli("prune", plain, "--arch", f"{module}:G", "-g", "filter", "--coupled", "-s", "0.5", "-o", tmp_path / "p.safetensors")
    else:
        r = cli("inspect", plain, "--arch", f"{module}:G")
    line = one_error_line(r)
    assert module in line and "boom" in line or where == "syntax" and "SyntaxError" in line


def tiny_checkpoint_state():
    from gancompress.archs import build

    torch.manual_seed(0)
    return build(G_SPEC).state_dict()


# ----------------------------------------------------------------------------- images in --data


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A real PNG whose IHDR claims width x height (the rest of the file is a few bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("size", [(50_000, 50_000), (12_000, 12_000), (2 ** 31 - 1, 1)])
def test_decompression_bomb_images_in_data(tmp_path, size):
    ckpt = tiny_checkpoint(tmp_path / "dense.safetensors", masks=False)
    data = tmp_path / "data"
    data.mkdir()
    from PIL import Image

    Image.new("L", (16, 16), 128).save(data / "a.png")
    _bomb_png(data / "b.png", *size)
    for args in (["finetune", ckpt, "--data", data, "--steps", "1", "--batch-size", "2", "-o", tmp_path / "f.safetensors"],
                 ["evaluate", ckpt, "--real", data, "--fid", "-n", "8"]):
        line = one_error_line(cli(*args))
        assert "b.png" in line
    assert not list(tmp_path.glob("f.*"))


def test_truncated_image_in_data(ckpt, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    from PIL import Image

    Image.new("L", (16, 16), 128).save(data / "a.png")
    blob = (data / "a.png").read_bytes()
    (data / "b.png").write_bytes(blob[: len(blob) // 2])
    line = one_error_line(cli("evaluate", ckpt, "--real", data, "--fid", "-n", "8"))
    assert "b.png" in line


# ----------------------------------------------------------------------------- other readers


def test_torchscript_archives_load_without_warnings(tmp_path):
    from gancompress.archs import build

    g = build(G_SPEC)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(g).save(str(tmp_path / "g.pt"))
    r = cli("inspect", tmp_path / "g.pt")
    assert r.exit_code == 0 and "Warning" not in r.stderr, r.stderr
    (tmp_path / "bad.pt").write_bytes((tmp_path / "g.pt").read_bytes()[:-300])
    one_error_line(cli("inspect", tmp_path / "bad.pt"))


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int32, torch.bool])
def test_integer_checkpoints_are_refused_not_cast(tmp_path, dtype):
    sd = tiny_checkpoint_state()
    quantised = {k: (v * 50).to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    torch.save(quantised, tmp_path / "q.pt")
    line = one_error_line(cli("inspect", tmp_path / "q.pt"))
    assert str(dtype).removeprefix("torch.") in line


def test_integer_tensors_in_a_project_file_are_refused(ckpt, tmp_path):
    src = _meta_edit(ckpt, tmp_path / "nodigest.safetensors")
    header, _ = read_raw(src)
    name = "G.net.0.weight"
    n = int(np.prod(header[name]["shape"]))
    bad = replace_tensor(src, tmp_path / "bad.safetensors", name, bytes(4 * n), header[name]["shape"], "I32")
    assert "int32" in one_error_line(cli("inspect", bad))


HUB_PROBE = r"""
import json, sys, time
import huggingface_hub, torch  # noqa: F401  (imports are not what is timed)
from typer.testing import CliRunner
from gancompress.cli.main import app
start = time.monotonic()
r = CliRunner().invoke(app, sys.argv[1:])
print(json.dumps([r.exit_code, r.stderr, time.monotonic() - start]))
"""


@pytest.mark.parametrize("source", ["hf://someone/gan/g.pt", "hf://someone/gan", "hf://someone/gan@v1/sub/g.safetensors"])
def test_hub_without_network_fails_fast_in_one_line(tmp_path, source):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_ENDPOINT": f"http://127.0.0.1:{port}",
           "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    for extra in ({}, {"HF_HUB_OFFLINE": "1"}):
        r = subprocess.run([sys.executable, "-c", HUB_PROBE, "inspect", source], capture_output=True, text=True,
                           env={**env, **extra}, timeout=300, cwd=ROOT)
        code, stderr, seconds = json.loads(r.stdout.splitlines()[-1])
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
        assert source in lines[0] and "internal error" not in lines[0]
        assert seconds < 10, seconds  # huggingface_hub's own retries took 26 s
        assert "Retrying" not in r.stderr


def test_header_length_beyond_the_file(tmp_path, ckpt):
    blob = ckpt.read_bytes()
    for i, head in enumerate((b"\xff" * 8, (10 ** 12).to_bytes(8, "little"), (7).to_bytes(8, "little"))):
        bad = tmp_path / f"h{i}.safetensors"
        bad.write_bytes(head + blob[8:])
        one_error_line(cli("inspect", bad))
    header, data = read_raw(ckpt)
    first = next(k for k in header if k != "__metadata__")
    header[first]["data_offsets"] = [0, 2 ** 40]
    one_error_line(cli("inspect", write_raw(tmp_path / "o.safetensors", header, data)))


def test_legacy_pickle_storages_must_fit_the_file(tmp_path):
    """A pre-zip ``torch.save`` file: torch allocates each declared storage before reading it."""
    import re
    import struct

    good = tmp_path / "g.pt"
    torch.save(tiny_checkpoint_state(), good, _use_new_zipfile_serialization=False)
    assert cli("inspect", good).exit_code == 0
    blob = good.read_bytes()
    m = re.search(rb"X\x03\x00\x00\x00cpu(q.|r....)(K.|M..|J....)", blob, re.S)
    assert m is not None, "no storage record found"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(blob[:m.start(2)] + b"J" + struct.pack("<i", 2 ** 31 - 1) + blob[m.end(2):])
    line = one_error_line(cli("inspect", bad))
    assert "bad.pt" in line and "MiB" in line
