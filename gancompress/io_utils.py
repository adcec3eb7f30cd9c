"""Safe file writing: temp file in the target folder, then an atomic rename."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import InputError


def check_writable(path: Path, *, force: bool = False, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse to overwrite an input, or an existing file without ``force``."""
    resolved = path.resolve()
    for src in inputs:
        try:
            if src.exists() and src.resolve() == resolved:
                raise InputError(f"refusing to overwrite the input {path}; choose another output with -o")
        except OSError:
            continue
    if path.exists() and not force:
        raise InputError(f"{path} already exists; pass --force to overwrite it or choose another -o")
    if path.exists() and path.is_dir():
        raise InputError(f"{path} is a directory; give a file name with -o")


def atomic_write(path: Path, write: Callable[[Path], None], *, force: bool = False,
                 inputs: tuple[Path, ...] = ()) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path`` and rename it into place."""
    path = Path(path)
    check_writable(path, force=force, inputs=inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes, *, force: bool = False) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), force=force)


def atomic_write_text(path: Path, text: str, *, force: bool = False) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force)


def derived_output(source: str, tag: str, suffix: str = ".safetensors") -> Path:
    """``<stem>.<tag><suffix>`` beside a local input; in the current directory for hf:// and builtin:."""
    if source.startswith(("hf://", "builtin:")):
        stem = source.rstrip("/").replace("builtin:", "").split("/")[-1].split("@")[0]
        return Path.cwd() / f"{Path(stem).stem}.{tag}{suffix}"
    path = Path(source).expanduser()
    stem = path.name if path.is_dir() else path.stem
    return path.parent / f"{stem}.{tag}{suffix}"


def human_size(n: float) -> str:
    """1536 -> '1.5 KB' (binary units)."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
