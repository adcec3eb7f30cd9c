"""Commands that compose: real shell pipelines, the stdin/stdout contract, exit codes, the CI example."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ASSET = REPO / "gancompress" / "assets" / "digits_dcgan.safetensors"
GC = f"{shlex.quote(sys.executable)} -m gancompress"
ANSI = re.compile(r"\x1b\[")
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")


def _finetune_conforms() -> bool:
    """finetune reads SOURCE from stdin and prints only its path (see docs/pipelines.md)."""
    import inspect as pyinspect

    from gancompress.cli import cmd_finetune

    text = pyinspect.getsource(cmd_finetune)
    return "source_from_stdin" in text and "emit_written" in text


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GANCOMPRESS_", "FORCE_COLOR", "NO_COLOR"))}
    e.update(GANCOMPRESS_CACHE=str(tmp_path_factory.mktemp("cache")), HF_HUB_OFFLINE="1",
             HF_HOME=str(tmp_path_factory.mktemp("hf")), FORCE_COLOR="1", TERM="xterm-256color",
             OMP_NUM_THREADS="2")
    return e


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A small digits GAN (random weights) in the project format."""
    from gancompress.archs import ArchSpec, build
    from gancompress.formats.checkpoint import GanBundle, save_bundle

    torch.manual_seed(0)
    g, d = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": 1}), ArchSpec("digits-dcgan-d", {"ndf": 4, "nc": 1})
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    return save_bundle(GanBundle(build(g).eval(), g, build(d).eval(), d, source="tiny"), path)


def sh(script: str, env: dict, cwd: Path, stdin: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``script`` with bash -o pipefail; ``gc`` is the CLI."""
    return subprocess.run([BASH, "-c", f"set -o pipefail; gc() {{ {GC} \"$@\"; }}; {script}"], env=env, cwd=cwd,
                          input=stdin, capture_output=True, text=True, timeout=timeout)


def gc(args: list[str], env: dict, cwd: Path, stdin: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gancompress", *args], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def one_error(r: subprocess.CompletedProcess, code: int) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


# ----------------------------------------------------------------------------- the pipeline of the issue


@pytest.mark.xfail(not _finetune_conforms(), strict=True,
                   reason="finetune does not yet read SOURCE from stdin, default -o to <stem>.ft.safetensors "
                          "and print only the path it wrote (docs/pipelines.md)")
def test_prune_finetune_evaluate_pipeline(env, tmp_path):
    # the bundled GAN, or a stand-in with its layout (then FID is high: the gate is only exercised, not met)
    if ASSET.exists():
        source, max_fid = "builtin:digits-dcgan", "30"
    else:
        from gancompress.archs import ArchSpec, build
        from gancompress.formats.checkpoint import GanBundle, save_bundle

        g, d = ArchSpec("digits-dcgan-g", {"nz": 32, "ngf": 32, "nc": 1}), ArchSpec("digits-dcgan-d", {"ndf": 32, "nc": 1})
        source = str(save_bundle(GanBundle(build(g).eval(), g, build(d).eval(), d), tmp_path / "digits-dcgan.safetensors"))
        max_fid = "1e9"
    r = sh(f"gc prune {source} --sparsity 0.9 --granularity block"
           " | gc finetune --data builtin:digits --steps 50 --batch-size 16"
           f" | gc evaluate --fid --extractor digits --max-fid {max_fid} -n 500", env, tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "digits-dcgan.block90.safetensors").is_file()
    assert (tmp_path / "digits-dcgan.block90.ft.safetensors").is_file()
    assert "gate --max-fid" in r.stdout and "passed" in r.stdout and not ANSI.search(r.stderr + r.stdout)  # evaluate's table: stdout


# ----------------------------------------------------------------------------- stdout/stdin contracts


def invoke(args: list[str], stdin: str | bytes | None = None):
    """In-process run (Typer's CliRunner: stdin and stdout are not terminals)."""
    from typer.testing import CliRunner

    from gancompress.cli.main import app

    return CliRunner().invoke(app, args, input=stdin)


def test_each_writer_prints_only_its_path(env, tiny, tmp_path):
    src = tmp_path / "tiny.safetensors"
    shutil.copy(tiny, src)
    pruned, exported = tmp_path / "tiny.block50.safetensors", tmp_path / "tiny.block50.sparse.safetensors"
    # a real pipe; the outputs go beside the input with descriptive names
    r = sh(f"gc prune {src} -s 0.5 -g block | tee prune.out | gc export", env, tmp_path)
    assert r.returncode == 0 and r.stdout == f"{exported}\n", (r.stdout, r.stderr)
    assert (tmp_path / "prune.out").read_text() == f"{pruned}\n"
    assert "pruned generator" in r.stderr and "wrote" in r.stderr  # the tables went to stderr
    assert not ANSI.search(r.stderr)  # plain, although FORCE_COLOR is set
    # never over an existing file without --force; nothing on stdout then
    r = invoke(["export", "-"], f"{pruned}\n")
    assert r.exit_code == 2 and "already exists" in r.stderr and r.stdout == ""
    r = invoke(["export", "-", "--force", "-q"], f"{pruned}\n")
    assert r.exit_code == 0 and r.stdout == f"{exported}\n" and r.stderr == ""
    r = invoke(["export", str(pruned), "--format", "dense"])
    assert r.exit_code == 0 and r.stdout == f"{tmp_path / 'tiny.block50.dense.safetensors'}\n"


def test_default_names_for_hub_and_builtin_sources_go_to_cwd(tmp_path, monkeypatch):
    from gancompress.cli.cmd_export import default_output

    monkeypatch.chdir(tmp_path)
    assert default_output("hf://alice/gan@v2/net/G.pth", "sparse") == tmp_path / "G.sparse.safetensors"
    assert default_output("builtin:digits-dcgan", "shrunk") == tmp_path / "digits-dcgan.shrunk.safetensors"
    assert default_output("/x/y/m.pruned-block90.ft.safetensors", "onnx") == Path("/x/y/m.pruned-block90.ft.onnx")


def test_json_in_json_out(env, tiny, tmp_path):
    r = sh(f"gc prune {tiny} -s 0.5 -o p.safetensors --json | gc export - --json | tee export.json "
           "| gc inspect - --json", env, tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "export.json").read_text())
    assert doc["output"] == doc["path"] == "p.sparse.safetensors" and doc["format"] == "sparse"  # relative in, relative out
    report = json.loads(r.stdout)
    assert report["source"] == doc["output"] and report["generator"]["architecture"] == "digits-dcgan-g"
    assert r.stderr == ""  # --json: no tables anywhere


def test_a_table_that_is_the_result_goes_to_stdout_in_a_pipe(env, tiny, tmp_path):
    """inspect's and evaluate's tables are their result: stdout, also in a pipe; a command that writes a
    file keeps its table on stderr and the written path as its only stdout line."""
    r = sh(f"gc inspect {tiny} | grep net.3", env, tmp_path)
    assert r.returncode == 0 and "net.3" in r.stdout and "ConvTranspose2d" in r.stdout and r.stderr == "", r.stderr
    r = sh(f"gc inspect {tiny} | head -1", env, tmp_path)  # a reader that stops early: no traceback
    assert r.returncode in (0, 1) and r.stdout.startswith("generator") and "Traceback" not in r.stderr, r.stderr
    r = sh(f"gc evaluate {tiny} -n 20 --device cpu -q | grep -c nonzeros", env, tmp_path)
    assert r.returncode == 0 and int(r.stdout) >= 1, r.stderr
    r = sh(f"gc prune {tiny} -s 0.5 -o p.safetensors | cat", env, tmp_path)
    assert r.returncode == 0 and r.stdout == "p.safetensors\n" and "net.3" in r.stderr  # table on stderr


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_inspect_table_on_a_terminal(env, tiny, tmp_path):
    code, out = _pty_run(["inspect", str(tiny)], dict(env, COLUMNS="160"), tmp_path)
    assert code == 0 and b"net.3" in out and b"ConvTranspose2d" in out


# ----------------------------------------------------------------------------- exit codes through pipes


def test_failing_gate_exits_3_through_pipefail(env, tiny, tmp_path):
    gate = "gc evaluate --fid --extractor digits --real builtin:digits -n 40 --batch-size 20 --max-fid 0 --device cpu"
    r = sh(f"gc prune {tiny} -s 0.5 -o p.safetensors | {gate} --out r.json --markdown r.md | cat", env, tmp_path)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert r.stderr.strip().splitlines()[-1].startswith("error: quality gate failed: FID")
    assert not json.loads((tmp_path / "r.json").read_text())["passed"]  # the reports are written anyway
    assert "**FAILED**" in (tmp_path / "r.md").read_text()


def test_failed_upstream_fails_the_pipeline_clearly(env, tmp_path):
    r = sh(f"gc prune {tmp_path / 'missing.pt'} -s 0.5 | gc export; echo \"status $? ${{PIPESTATUS[*]}}\"",
           env, tmp_path)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and any("no such file" in e for e in errors), r.stderr
    assert any("got nothing; did the previous command fail?" in e for e in errors)
    assert r.stdout.strip().splitlines()[-1] == "status 2 2 2"


@pytest.mark.parametrize("command, stdin, needle", [
    ("inspect", "", "got nothing"),
    ("export", "", "got nothing"),
    ("evaluate", "", "got nothing"),
    ("inspect", "   \n\n", "got nothing"),
    ("inspect", "hello world\n", "not an existing checkpoint path"),
    ("export", "hello world\n", "not an existing checkpoint path"),
    ("evaluate", "hello world\n", "not an existing checkpoint path"),
    ("inspect", "a.safetensors\nb.safetensors\n", "got 2 lines"),
    ("inspect", '{"format": "sparse"}', "no 'output' path"),
    ("inspect", "{not json", "malformed JSON"),
    ("inspect", b"\x89PNG\x00\x00binary", "binary data"),
])
def test_bad_stdin_exit_2_one_line(tmp_path, monkeypatch, command, stdin, needle):
    monkeypatch.chdir(tmp_path)
    args = [command, "-"] if stdin and stdin.strip() else [command]
    r = invoke(args, stdin)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert r.stdout == "" and not list(tmp_path.iterdir())  # nothing written


# ----------------------------------------------------------------------------- colours and terminals


def _pty_run(args: list[str], env: dict, cwd: Path) -> tuple[int, bytes]:
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    p = subprocess.run([sys.executable, "-m", "gancompress", *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=slave, stderr=slave, timeout=120)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.returncode, out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_terminal_gets_colour_unless_no_color(env, tiny, tmp_path):
    r = invoke(["prune", str(tiny), "-s", "0.5", "-o", str(tmp_path / "b.safetensors"), "-q"])
    assert r.exit_code == 0, r.output
    args = ["evaluate", str(tiny), "--reference", str(tmp_path / "b.safetensors"), "-n", "20", "--device", "cpu"]
    tty_env = {k: v for k, v in env.items() if k != "FORCE_COLOR"}
    code, out = _pty_run(args, dict(tty_env, COLUMNS="200"), tmp_path)
    assert code == 0 and b"\x1b[1;32m" in out  # best value per column in green on a terminal
    code, out = _pty_run(args, dict(tty_env, COLUMNS="200", NO_COLOR="1"), tmp_path)
    assert code == 0 and b"evaluate" in out and not re.search(rb"\x1b\[[0-9;]*3[0-7]m", out)


# ----------------------------------------------------------------------------- evaluate reports for CI


def test_evaluate_markdown_and_json_reports(env, tiny, tmp_path):
    pruned = tmp_path / "p.safetensors"
    assert invoke(["prune", str(tiny), "-s", "0.5", "-o", str(pruned), "-q"]).exit_code == 0
    r = sh(f"echo {pruned} | gc evaluate --reference {tiny} --fid --extractor digits -n 40 --batch-size 20 "
           f"--device cpu --max-fid-increase 1e6 --samples grid.png --out report.json --markdown report.md", env, tmp_path)
    assert r.returncode == 0 and "FID" in r.stdout and "gate --max-fid-increase" in r.stdout, r.stderr  # the table: stdout
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["passed"] and doc["settings"]["samples_png"].endswith("grid.png")
    md = (tmp_path / "report.md").read_text()
    for needle in ("## Metrics", "| FID |", "## Change vs the reference", "## Gates", "--max-fid-increase",
                   "passed", "grid.png", "p.safetensors"):
        assert needle in md, needle
    assert not list(tmp_path.glob(".*.tmp"))
    # existing report files are kept unless --force, and --markdown may not name another output
    r = invoke(["evaluate", str(pruned), "--markdown", str(tmp_path / "report.md")])
    assert r.exit_code == 2 and "already exists" in r.stderr
    r = invoke(["evaluate", str(pruned), "--markdown", str(tmp_path / "x.md"), "--out", str(tmp_path / "x.md")])
    assert r.exit_code == 2 and "same file" in r.stderr


# ----------------------------------------------------------------------------- the CI example


def test_ci_example_script_runs(env, tiny, tmp_path):
    script = REPO / "examples" / "ci" / "compress_and_gate.sh"
    ci_env = dict(env, MODEL=str(tiny), STEPS="3", BATCH_SIZE="8", NUM_SAMPLES="40", MAX_FID_INCREASE="1000000",
                  EVAL_ARGS="--extractor digits --batch-size 20 --device cpu", OUT_DIR=str(tmp_path / "out"),
                  GANCOMPRESS=GC, GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    r = subprocess.run([BASH, str(script)], env=ci_env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "out"
    assert r.stdout.strip() == str(out / "generator.safetensors")
    for name in ("report.json", "report.md", "samples.png", "generator.safetensors"):
        assert (out / name).is_file(), name
    assert json.loads((out / "report.json").read_text())["passed"]
    assert "## Gates" in (tmp_path / "summary.md").read_text()


def test_ci_workflow_installs_from_the_repository_caches_and_uploads():
    import yaml

    path = REPO / "examples" / "ci" / "github-actions.yml"
    text = path.read_text()
    steps = yaml.safe_load(text)["jobs"]["compress"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "pip install gancompress\n" not in runs + "\n" and '"gancompress @ $GANCOMPRESS_GIT"' in runs
    assert "examples/ci/compress_and_gate.sh" in text.split("name:")[0]  # the copy instructions name the script
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/cache@") for u in uses)
    uploads = [s["with"]["path"] for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert any("generator.safetensors" in p for p in uploads) and any("report.json" in p for p in uploads)
