"""`gancompress finetune` through Typer's CliRunner: exit codes, messages, files."""
from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from typer.testing import CliRunner

from gancompress.cli.main import app
from test_finetune import make_project

runner = CliRunner()


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def invoke(p, *extra):
    args = ["finetune", str(p["pruned"]), "--data", str(p["images"]), "-o", str(p["out"]), "--steps", "2",
            "--batch-size", "8", "--device", "cpu", "--sample-every", "0", *extra]
    return runner.invoke(app, args)


def test_help_has_an_example():
    result = runner.invoke(app, ["finetune", "--help"])
    assert result.exit_code == 0
    assert "Example: gancompress finetune" in result.output and "--freeze-discriminator" in result.output


def test_run_prints_a_summary_and_writes_files(project):
    result = invoke(project)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(project["out"]) and "sparsity" in result.output
    assert project["out"].is_file() and project["out"].with_suffix(".log.jsonl").is_file()


def test_json_output_is_one_document(project):
    result = invoke(project, "--json", "--method", "self-supervised", "--lambda", "0.25")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["method"] == "self-supervised" and doc["steps"] == 2 and "L_GC" in doc["metrics"]
    assert doc["sparsity"]["pruned"] >= 0.6 - 1e-6


@pytest.mark.parametrize("extra,needle", [(("--steps", "0"), "--steps"), (("--method", "magic"), "unknown method"),
                                          (("--loss", "nope"), "unknown loss profile"),
                                          (("--lr-schedule", "linear"), "--lr-schedule"),
                                          (("--adv-weight", "-0.5"), "--adv-weight"),
                                          (("--sparsity", "0.5", "--coupled"), "--granularity filter")])
def test_bad_options_exit_2_with_one_line(project, extra, needle):
    result = invoke(project, *extra)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert not project["out"].exists()


def test_missing_discriminator(tmp_path):
    p = make_project(tmp_path, with_d=False)
    result = invoke(p, "--method", "distill-adv")  # trains against D
    assert result.exit_code == 2 and "--discriminator" in result.stderr and "--method distill" in result.stderr
    assert not p["out"].exists()
    result = invoke(p, "--method", "distill")  # needs no discriminator
    assert result.exit_code == 0, result.output


def test_distill_adv_without_data_says_what_to_pass_and_the_default_needs_none(project):
    base = ["finetune", str(project["pruned"]), "-o", str(project["out"]), "--steps", "1"]
    result = runner.invoke(app, base + ["--method", "distill-adv"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--data" in result.stderr and "--method distill" in result.stderr
    assert not project["out"].exists()
    result = runner.invoke(app, base + ["--device", "cpu", "--sample-every", "0"])  # the default, distill
    assert result.exit_code == 0, result.output
    assert project["out"].exists()


def test_moved_dense_model_points_at_teacher(project, tmp_path):
    moved = tmp_path / "elsewhere.safetensors"
    project["dense"].rename(moved)
    result = invoke(project)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "--teacher" in lines[0] and str(project["dense"]) in lines[0]
    assert not project["out"].exists()
    result = invoke(project, "--teacher", str(moved))  # the fix the message names works
    assert result.exit_code == 0, result.stderr


def test_existing_output_without_force(project):
    project["out"].write_bytes(b"keep me")
    result = invoke(project)
    assert result.exit_code == 2 and "--force" in result.stderr
    assert project["out"].read_bytes() == b"keep me"


def test_empty_data_folder(project, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["finetune", str(project["pruned"]), "--data", str(empty), "-o", str(project["out"]),
                                 "--steps", "2", "--device", "cpu"])
    assert result.exit_code == 2 and "no images" in result.stderr
    assert not project["out"].exists()


def test_ctrl_c_exits_130_and_resume_finishes(project, monkeypatch):
    import gancompress.cli.progress as cli_progress

    @contextmanager
    def pressed():
        yield lambda: True

    monkeypatch.setattr(cli_progress, "stop_signals", pressed)
    result = invoke(project, "--steps", "3")
    assert result.exit_code == 130
    assert "--resume" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    monkeypatch.undo()
    result = invoke(project, "--steps", "3", "--resume", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["steps"] == 3


def test_discriminator_in_its_own_file(tmp_path):
    """A file holding only a discriminator is what --discriminator takes; one that cannot judge
    the generator's images is refused, saying why."""
    import torch

    from gancompress.archs import build
    from gancompress.archs.dcgan import DCGANDiscriminator
    from test_finetune import D_SPEC

    p = make_project(tmp_path, with_d=False)
    torch.save(build(D_SPEC).state_dict(), tmp_path / "netD.pth")
    result = invoke(p, "--method", "distill-adv", "--discriminator", str(tmp_path / "netD.pth"))
    assert result.exit_code == 0, result.output
    torch.save(DCGANDiscriminator([1, 8, 16, 32, 1]).state_dict(), tmp_path / "netD32.pth")
    p["out"].unlink()
    result = invoke(p, "--method", "distill-adv", "--discriminator", str(tmp_path / "netD32.pth"))
    assert result.exit_code == 2 and "dcgan-d: it does not run on 1x16x16 inputs" in result.stderr
    assert not p["out"].exists()
