"""Building blocks for the adversarial tests: tiny valid files, raw safetensors surgery, a CLI runner.

Every hostile file here starts as a valid file written by gancompress and is then edited below
the library (raw header JSON and data bytes), the way a damaged download or a hand edit would be.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Callable

import torch
from typer.testing import CliRunner

from gancompress.archs import ArchSpec, build
from gancompress.formats.checkpoint import GanBundle, save_bundle
from gancompress.cli.main import app

G_SPEC = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": 1})
D_SPEC = ArchSpec("digits-dcgan-d", {"ndf": 4, "nc": 1})
Z = torch.randn(4, 8, 1, 1, generator=torch.Generator().manual_seed(3))


def tiny_bundle(*, masks: bool = True, seed: int = 0) -> GanBundle:
    torch.manual_seed(seed)
    g, d = build(G_SPEC).eval(), build(D_SPEC).eval()
    m = {n: torch.rand(p.shape) > 0.6 for n, p in g.named_parameters() if p.ndim == 4} if masks else {}
    return GanBundle(g, G_SPEC, d, D_SPEC, m, source="tiny")


def tiny_checkpoint(path: Path, **kwargs: Any) -> Path:
    save_bundle(tiny_bundle(**kwargs), path)
    return path


def cli(*args: str, **kwargs: Any):
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def one_error_line(result, code: int = 2) -> str:
    """Assert ``code`` and exactly one ``error: ...`` line on stderr (no traceback, no warnings)."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "internal error" not in lines[0] and "Traceback" not in result.stderr
    return lines[0]


# ----------------------------------------------------------------------------- raw safetensors


def read_raw(path: Path) -> tuple[dict[str, Any], bytes]:
    """(header with ``__metadata__``, data section) of a safetensors file, without any validation."""
    blob = Path(path).read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def write_raw(path: Path, header: dict[str, Any], data: bytes) -> Path:
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + data)
    return Path(path)


def edit_metadata(src: Path, dst: Path, edit: Callable[[dict[str, str]], None]) -> Path:
    header, data = read_raw(src)
    meta = header.setdefault("__metadata__", {})
    edit(meta)
    return write_raw(dst, header, data)


def strip_digest(meta: dict[str, str]) -> None:
    meta.pop("digest", None)


def flip_byte(src: Path, dst: Path, tensor: str, index: int = 0, xor: int = 0x01) -> Path:
    """Flip bits of one byte inside ``tensor``'s data (header untouched)."""
    header, data = read_raw(src)
    start, end = header[tensor]["data_offsets"]
    assert end > start, f"{tensor} holds no bytes"
    pos = start + (index % (end - start))
    data = data[:pos] + bytes([data[pos] ^ xor]) + data[pos + 1:]
    return write_raw(dst, header, data)


def replace_tensor(src: Path, dst: Path, name: str, raw: bytes, shape: list[int], dtype: str | None = None) -> Path:
    """Give tensor ``name`` new bytes and shape (offsets of the others moved): a consistent container, wrong content."""
    header, data = read_raw(src)
    entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0])
    out, new_header = b"", {"__metadata__": header.get("__metadata__", {})}
    for key, info in entries:
        blob = raw if key == name else data[info["data_offsets"][0]:info["data_offsets"][1]]
        entry = dict(info)
        if key == name:
            entry["shape"] = shape
            entry["dtype"] = dtype or info["dtype"]
        entry["data_offsets"] = [len(out), len(out) + len(blob)]
        new_header[key] = entry
        out += blob
    return write_raw(dst, new_header, out)


def tensor_bytes(path: Path, name: str) -> bytes:
    header, data = read_raw(path)
    start, end = header[name]["data_offsets"]
    return data[start:end]
