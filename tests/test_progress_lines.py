"""Without a terminal, long commands print plain progress lines at a steady interval; --quiet silences them."""
from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from gancompress.cli import progress as cli_progress
from gancompress.cli.main import app
from gancompress.progress import Event
from test_finetune import make_project

LINE = re.compile(r"^finetune (\d+)/(\d+) \(\d+%\) \| .*L1 [-\d.e]+[^|]*(?: \| [\d.e+-]+/s \| (ETA \d+s|done in \d+s))?$")


def test_lines_come_every_interval_and_at_the_end_of_a_stage(monkeypatch):
    now = {"t": 0.0}
    printed = []
    monkeypatch.setattr(cli_progress, "notice", printed.append)
    lines = cli_progress.PlainLines(30.0, info=lambda e: f"loss {e.info['loss']}", clock=lambda: now["t"])
    for step in range(1, 101):  # 1 step per second
        now["t"] = float(step)
        lines(Event("finetune", step, 100, {"loss": step}))
    assert [line.split(" ")[1] for line in printed] == ["31/100", "61/100", "91/100", "100/100"]
    assert printed[0] == "finetune 31/100 (31%) | loss 31 | 1/s | ETA 1m09s"
    assert printed[-1].endswith("| done in 1m39s")
    lines(Event("finetune", 1, 10, {"loss": 0}))  # the stage again (the next sweep cell) starts over
    now["t"] = 200.0
    lines(Event("finetune", 10, 10, {"loss": 0}))
    assert printed[-1] == "finetune 10/10 (100%) | loss 0 | 0.09/s | done in 1m40s"


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def _finetune(p, *extra):
    args = ["finetune", str(p["pruned"]), "--data", str(p["images"]), "-o", str(p["out"]), "--steps", "3",
            "--batch-size", "8", "--device", "cpu", "--sample-every", "0", "--workers", "0", "--force", *extra]
    return CliRunner().invoke(app, args)


def test_finetune_without_a_terminal_prints_plain_lines(project):
    result = _finetune(project, "--method", "hybrid", "--progress-interval", "0")
    assert result.exit_code == 0, result.output
    steps = [m.groups() for m in map(LINE.match, result.stderr.splitlines()) if m]
    assert [s[:2] for s in steps] == [("1", "3"), ("2", "3"), ("3", "3")]
    assert steps[0][2] is None  # no rate yet after the first step
    assert steps[1][2].startswith("ETA") and steps[2][2].startswith("done in")
    assert "\x1b[" not in result.stderr  # no bars or colour codes in a log

    result = _finetune(project, "--method", "hybrid")  # default 30 s: only the end of the stage
    assert [m.group(1) for m in map(LINE.match, result.stderr.splitlines()) if m] == ["3"]

    result = _finetune(project, "--method", "hybrid", "--progress-interval", "0", "--quiet")
    assert result.exit_code == 0 and not any(map(LINE.match, result.stderr.splitlines()))


def test_evaluate_without_a_terminal_prints_plain_lines(project):
    args = ["evaluate", str(project["pruned"]), "--reference", str(project["dense"]), "-n", "8", "--batch-size", "4",
            "--device", "cpu", "--progress-interval", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("evaluating ")]
    done = [tuple(map(int, line.split(" ")[1].split("/"))) for line in lines]
    assert len(done) >= 2 and done == sorted(done) and done[-1][0] == done[-1][1]  # steady lines up to the end
    assert lines[0] == "evaluating 1/2 (50%) | pruned" and " | done in " in lines[-1]  # the model being measured
    assert "\x1b[" not in result.stderr
    quiet = CliRunner().invoke(app, [*args, "--quiet"])
    assert quiet.exit_code == 0 and not [ln for ln in quiet.stderr.splitlines() if ln.startswith("evaluating ")]
