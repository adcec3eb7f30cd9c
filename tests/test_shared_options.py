"""sweep and demo take finetune's run options (--amp, --channels-last, --compile, --workers, --tensorboard),
spelled the same, and pass them to every recovery they run."""
from __future__ import annotations

import sys

import pytest
import torch
from typer.testing import CliRunner

import gancompress.finetune as finetune_pkg
from gancompress.archs import ArchSpec, build
from gancompress.cli.main import app
from gancompress.errors import InputError
from gancompress.formats.checkpoint import GanBundle, save_bundle

G_SPEC = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": 1})
D_SPEC = ArchSpec("digits-dcgan-d", {"ndf": 4, "nc": 1})
RUN_OPTIONS = ["--amp", "bf16", "--channels-last", "--compile", "--workers", "0", "--device", "cpu", "--quiet"]


@pytest.fixture
def captured(monkeypatch):
    """The FinetuneConfig of the first recovery a command starts (which then stops the command)."""
    seen = []

    def capture(config, **kwargs):
        seen.append(config)
        raise InputError("captured the recovery's config")

    monkeypatch.setattr(finetune_pkg, "run_finetune", capture)
    return seen


def _check_run(config, board) -> None:
    run = config.run
    assert (run.device, run.amp, run.channels_last, run.compile) == ("cpu", "bf16", True, True)
    assert config.data.workers == 0 and run.tensorboard == board
    assert run.log_every and run.sample_every  # the events mirror the log and the grids, so both are on


def test_sweep_options_reach_every_cell(tmp_path, captured):
    torch.manual_seed(0)
    dense = save_bundle(GanBundle(build(G_SPEC).eval(), G_SPEC, build(D_SPEC).eval(), D_SPEC), tmp_path / "dense.safetensors")
    board = tmp_path / "tb"
    result = CliRunner().invoke(app, ["sweep", str(dense), "--data", "builtin:digits", "-s", "0.5", "--method", "hybrid",
                                      "--steps", "2", "--num-samples", "16", "--out-dir", str(tmp_path / "out"),
                                      "--tensorboard", str(board), *RUN_OPTIONS])
    assert result.exit_code == 2 and "captured" in result.stderr, result.output
    (config,) = captured
    _check_run(config, board / "s50-element-hybrid-seed0")  # one folder of events per cell


def test_demo_options_reach_its_recovery(tmp_path, captured):
    board = tmp_path / "tb"
    result = CliRunner().invoke(app, ["demo", "--steps", "2", "--out-dir", str(tmp_path / "out"), "--tensorboard",
                                      str(board), *RUN_OPTIONS])
    assert result.exit_code == 2 and "captured" in result.stderr, result.output
    (config,) = captured
    _check_run(config, board)


@pytest.mark.parametrize("command", [["demo"], ["sweep", "builtin:digits-dcgan", "--data", "builtin:digits"]])
def test_bad_run_options_are_refused_before_any_work(tmp_path, monkeypatch, command):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [*command, "--out-dir", str(out), "--workers", "-1"])
    assert result.exit_code == 2 and "--workers must be a non-negative integer" in result.stderr
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    result = CliRunner().invoke(app, [*command, "--out-dir", str(out), "--tensorboard", str(tmp_path / "tb")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "pip install 'gancompress[tensorboard]'" in result.stderr
    assert not out.exists() and not (tmp_path / "tb").exists()
