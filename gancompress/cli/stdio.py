"""The stdin/stdout contract that lets commands compose in a shell pipeline.

A command that writes a model prints the path it wrote as its only stdout line (a JSON
document with ``--json``); tables and notices go to stderr. A SOURCE of ``-``, or an omitted
SOURCE when stdin is not a terminal, is read from stdin: a path, or a JSON document with an
``output`` field (``path`` is accepted too).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import InputError

MAX_STDIN_BYTES = 1 << 20  # a path or a JSON report; anything bigger is not meant for us


def _read_stdin_text() -> str:
    stream = getattr(sys.stdin, "buffer", None)
    raw = stream.read(MAX_STDIN_BYTES + 1) if stream is not None else sys.stdin.read(MAX_STDIN_BYTES + 1)
    if isinstance(raw, str):
        return raw
    if len(raw) > MAX_STDIN_BYTES or b"\x00" in raw:
        raise InputError("stdin holds binary data (a checkpoint file itself?); pipe its path instead, "
                         "e.g. `echo model.safetensors | gancompress inspect`")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("stdin is not UTF-8 text; pipe a checkpoint path or a gancompress --json document") from None


def _from_json(text: str) -> str:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"stdin holds malformed JSON ({exc.msg}); pipe a path or a gancompress --json document") from None
    value = None
    if isinstance(document, dict):
        value = document.get("output") or document.get("path")
    if not value or not isinstance(value, str):
        raise InputError("the JSON on stdin has no 'output' path; pipe the output of a command that writes a model")
    return value


def _looks_like_source(text: str) -> bool:
    if text.startswith(("hf://", "builtin:")):
        return True
    try:
        return Path(text).expanduser().exists()
    except (OSError, ValueError):
        return False


def source_from_stdin(source: str | None) -> str:
    """``source`` itself, or (for ``-`` / ``None`` with stdin not a terminal) the one path read from stdin."""
    if source not in (None, "-"):
        return source  # type: ignore[return-value]
    if source is None and sys.stdin is not None and sys.stdin.isatty():
        raise InputError("missing SOURCE: give a checkpoint path (or pipe one in, or pass '-')")
    if sys.stdin is None:
        raise InputError("missing SOURCE: give a checkpoint path (stdin is closed)")
    text = _read_stdin_text().strip()
    if not text:
        raise InputError("expected a checkpoint path on stdin, got nothing; did the previous command fail?")
    if text.startswith("{"):
        value = _from_json(text)
    else:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) != 1:
            raise InputError(f"expected one checkpoint path on stdin, got {len(lines)} lines; pipe a single path "
                             "(or a gancompress --json document)")
        value = lines[0].strip()
    if not _looks_like_source(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InputError(f"stdin held {shown!r}, which is not an existing checkpoint path, hf://... or builtin:...; "
                         "pipe the output of prune, finetune or export")
    return value


def emit_written(path: Path | str) -> None:
    """The path a command wrote, on stdout (the only stdout output of a model-writing command)."""
    sys.stdout.write(f"{path}\n")
    sys.stdout.flush()
