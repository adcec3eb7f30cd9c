"""`export --push-to-hub`: the real huggingface_hub upload code against a stand-in Hub on 127.0.0.1."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gancompress.cli.main import app
from hub_server import HubServer

REPO = Path(__file__).resolve().parents[1]


def _run(args, env, cwd, stdin=None):
    return subprocess.run([sys.executable, "-m", "gancompress", *args], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def pruned(tmp_path_factory) -> Path:
    """A pruned tiny digits GAN (project format) and an evaluate report beside it."""
    from gancompress.archs import ArchSpec, build
    from gancompress.formats.checkpoint import GanBundle, save_bundle

    folder = tmp_path_factory.mktemp("push")
    torch.manual_seed(0)
    g, d = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": 1}), ArchSpec("digits-dcgan-d", {"ndf": 4, "nc": 1})
    dense = save_bundle(GanBundle(build(g).eval(), g, build(d).eval(), d), folder / "dense.safetensors")
    out = folder / "dense.pruned-block50.safetensors"
    runner = CliRunner()
    r = runner.invoke(app, ["prune", str(dense), "-s", "0.5", "-g", "block", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["evaluate", str(out), "--reference", str(dense), "--fid", "--extractor", "digits", "-n", "40",
                            "--batch-size", "20", "--device", "cpu", "--max-fid-increase", "1e6",
                            "--out", str(folder / "report.json"), "-q"], env={"GANCOMPRESS_CACHE": str(folder / "cache")})
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture
def hub(tmp_path):
    with HubServer() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GANCOMPRESS_"))}
        env.update(HF_ENDPOINT=server.url, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
                   HF_HUB_DISABLE_XET="1", NO_COLOR="1")
        yield server, env


def _code_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, re.S)


def test_push_then_pull_round_trip(hub, pruned, tmp_path):
    server, env = hub
    env = dict(env, HF_TOKEN="hf_test_token")
    local = tmp_path / "generator.safetensors"
    r = _run(["export", str(pruned), "-o", str(local), "--push-to-hub", "alice/digits-pruned",
              "--report", str(pruned.parent / "report.json")], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{local}\n"  # stdout: only the local file written
    assert "pushed to hf://alice/digits-pruned" in r.stderr
    files = server.state.repos["alice/digits-pruned"]
    assert files["model.safetensors"] == local.read_bytes()
    assert set(server.state.tokens) == {"hf_test_token"}
    assert server.state.commits[-1]["files"] == ["README.md", "model.safetensors"]
    card = files["README.md"].decode()
    for needle in ("library_name: gancompress", "# alice/digits-pruned", f"`{pruned.parent / 'dense.safetensors'}`",
                   "one-shot magnitude pruning", "| granularity | block 4x4 |", "50.0% of the pruned layers",
                   "| FID |", "--max-fid-increase", 'gancompress.load("hf://alice/digits-pruned")',
                   'hf_hub_download("alice/digits-pruned", "model.safetensors")', "def load_state"):
        assert needle in card, needle
    from gancompress.export.hub import REPOSITORY_URL

    assert f"[gancompress]({REPOSITORY_URL})" in card and "pypi.org" not in card  # not published on the index
    assert f"git+{REPOSITORY_URL}" in card

    # pulled back with no flags, through the CLI and the library: the same tensors
    r = _run(["inspect", "hf://alice/digits-pruned", "--json"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["generator"]["architecture"] == "digits-dcgan-g"
    check = ("import sys, torch, gancompress\n"
             "a = gancompress.load('hf://alice/digits-pruned').state_dict()\n"
             "b = gancompress.load(sys.argv[1]).state_dict()\n"
             "assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)\n"
             "print('same', len(a))\n")
    r = subprocess.run([sys.executable, "-c", check, str(pruned)], env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("same"), r.stderr

    # the card's numpy-only decoder reads the pushed file into the same tensors
    namespace: dict = {}
    exec(next(b for b in _code_blocks(card) if "def load_state" in b).split("state = load_state")[0], namespace)
    pushed = tmp_path / "pulled.safetensors"
    pushed.write_bytes(files["model.safetensors"])
    state = namespace["load_state"](str(pushed))
    from gancompress.api import load

    expected = load(pruned).state_dict()
    assert state.keys() == expected.keys()
    assert all(np.array_equal(state[k], expected[k].numpy()) for k in state)


def test_push_to_a_branch_of_a_private_repo(hub, pruned, tmp_path):
    server, env = hub
    env = dict(env, HF_TOKEN="hf_test_token")
    r = _run(["export", "-", "--format", "dense", "--push-to-hub", "alice/private-gan", "--private",
              "--revision", "v1", "--json"], env, tmp_path, stdin=f"{pruned}\n")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["output"] == str(pruned.parent / "dense.pruned-block50.dense.safetensors")
    assert doc["hub"]["hf_uri"] == "hf://alice/private-gan@v1" and doc["hub"]["revision"] == "v1"
    assert server.state.private["alice/private-gan"] is True
    assert "model.safetensors" not in server.state.repos["alice/private-gan"]  # main untouched
    branch = server.state.branches["alice/private-gan"]["v1"]
    card = branch["README.md"].decode()
    assert "gancompress-dense" in card and "safetensors.numpy import load_file" in card and "@v1" in card
    assert "No evaluate report was attached" in card
    r = _run(["inspect", "hf://alice/private-gan@v1", "--json"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["generator"]["architecture"] == doc["architecture"] == "digits-dcgan-g"
    assert branch["model.safetensors"] == Path(doc["output"]).read_bytes()


def test_push_without_token_fails_before_any_work(hub, pruned, tmp_path):
    server, env = hub
    r = _run(["export", str(pruned), "-o", str(tmp_path / "g.safetensors"), "--push-to-hub", "alice/x"], env, tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --push-to-hub needs a Hugging Face token")
    assert "HF_TOKEN" in lines[0] and "hf auth login" in lines[0]
    assert not (tmp_path / "g.safetensors").exists() and server.state.requests == []


def test_rejected_token_is_a_clear_error(hub, pruned, tmp_path):
    server, env = hub
    server.state.valid_tokens = {"hf_good"}
    r = _run(["export", str(pruned), "-o", str(tmp_path / "g.safetensors"), "--push-to-hub", "alice/x"],
             dict(env, HF_TOKEN="hf_bad"), tmp_path)
    assert r.returncode == 2, r.stderr
    assert "error: the Hub refused the token for alice/x (401)" in r.stderr and "Traceback" not in r.stderr
    assert "alice/x" not in server.state.repos


@pytest.mark.parametrize("args, needle", [
    (["--private"], "--private only applies with --push-to-hub"),
    (["--revision", "v1"], "--revision only applies with --push-to-hub"),
    (["--push-to-hub", "not-a-repo"], "give the repository as OWNER/REPO"),
    (["--push-to-hub", "a/b", "--revision", "bad name"], "not a valid branch name"),
    (["--push-to-hub", "a/b", "--format", "onnx"], "uploads safetensors exports"),
    (["--push-to-hub", "a/b", "--report", "missing.json"], "no such report file"),
])
def test_bad_push_options_exit_2(pruned, tmp_path, monkeypatch, args, needle):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # never reached
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["export", str(pruned), "-o", str(tmp_path / "g.safetensors"), *args])
    assert r.exit_code == 2 and needle in r.stderr, r.stderr
    assert not (tmp_path / "g.safetensors").exists()


def test_card_decoder_is_the_documented_one():
    doc = (REPO / "docs" / "sparse_format.md").read_text(encoding="utf-8")
    documented = re.search(r"<!-- decoder-snippet -->\s*```python\n(.*?)```", doc, re.S).group(1)
    from gancompress.export.hub import _decoder_snippet

    assert _decoder_snippet() == documented
