"""Every example in docs/custom_networks.md runs, in order, in a fresh folder.

Python blocks whose first line is ``# file: NAME`` are written to NAME; other Python blocks are
executed; ``console`` blocks run each ``$ gancompress ...`` line through the CLI (exit status 0).
"""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gancompress.cli.main import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "custom_networks.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC.read_text())]


def test_the_doc_has_examples_of_each_kind() -> None:
    kinds = [k for k, _ in blocks()]
    assert kinds.count("python") >= 4 and kinds.count("console") >= 2


@pytest.mark.usefixtures("one_thread")
def test_every_example_in_the_doc_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    runner = CliRunner()
    ran = 0
    try:
        for kind, text in blocks():
            first = text.splitlines()[0] if text else ""
            if kind == "python" and first.startswith("# file: "):
                (tmp_path / first.removeprefix("# file: ").strip()).write_text(text)
            elif kind == "python":
                exec(compile(text, f"{DOC.name} example", "exec"), {"__name__": "__doc_example__"})
                ran += 1
            elif kind == "console":
                for line in text.splitlines():
                    args = shlex.split(line.removeprefix("$ "))
                    assert args[0] == "gancompress", line
                    r = runner.invoke(app, args[1:])
                    assert r.exit_code == 0, (line, r.output)
                    ran += 1
    finally:
        for name in ("mygan", "mlp_d", "cgan"):
            sys.modules.pop(name, None)
    assert ran >= 12
    assert (tmp_path / "grid.png").is_file() and (tmp_path / "generator.onnx").is_file()
    assert (tmp_path / "c_grid.png").is_file() and (tmp_path / "c_small.safetensors").is_file()
