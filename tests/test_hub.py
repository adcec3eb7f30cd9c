"""hf:// sources through the real huggingface_hub client against a local stand-in Hub."""
import io
import json
import os
import subprocess
import sys

import pytest
import torch

from hub_server import HubServer
from gancompress.archs.dcgan import DCGANDiscriminator, DCGANGenerator


def _run(args, env):
    return subprocess.run([sys.executable, "-m", "gancompress", *args], env=env, capture_output=True, text=True, timeout=120)


def _bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture
def hub(tmp_path):
    with HubServer() as server:
        server.state.repos["alice/dcgan"] = {
            "netG_epoch_24.pth": _bytes(DCGANGenerator([8, 16, 8, 4, 3]).state_dict()),
            "netD_epoch_24.pth": _bytes(DCGANDiscriminator([3, 4, 8, 16, 1]).state_dict()),
            "README.md": b"# a model",
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=server.url, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1")
        yield server, env


def test_download_file_and_snapshot_then_offline(hub):
    server, env = hub
    r = _run(["inspect", "hf://alice/dcgan/netG_epoch_24.pth", "--json"], env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["generator"]["architecture"] == "dcgan-g" and not report["has_discriminator"]
    r = _run(["inspect", "hf://alice/dcgan@main", "--json"], env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["discriminator"]["architecture"] == "dcgan-d"
    assert any(p.startswith("alice/dcgan/resolve/") for _, p in server.state.requests)
    # offline: the populated cache answers, no request reaches the server
    seen = len(server.state.requests)
    offline = dict(env, HF_HUB_OFFLINE="1")
    r = _run(["inspect", "hf://alice/dcgan/netG_epoch_24.pth", "--json"], offline)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["generator"]["parameters"] == report["generator"]["parameters"]
    assert len(server.state.requests) == seen


def test_unknown_repo_online_and_offline(hub):
    _, env = hub
    r = _run(["inspect", "hf://bob/nothing"], env)
    assert r.returncode == 2 and "repository not found" in r.stderr and "Traceback" not in r.stderr
    r = _run(["inspect", "hf://bob/nothing/model.pt"], dict(env, HF_HUB_OFFLINE="1"))
    assert r.returncode == 2 and "not in the local Hub cache" in r.stderr


def test_missing_file_in_repo(hub):
    _, env = hub
    r = _run(["inspect", "hf://alice/dcgan/nope.pt"], env)
    assert r.returncode == 2 and "file not found in the repository" in r.stderr
