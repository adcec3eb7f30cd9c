"""Bad inputs to every SOURCE form: one clear InputError each, nothing executed."""
import io
import json
import os
import pickle
import random
import subprocess
import sys

import pytest
import torch

from gancompress.archs.dcgan import DCGANDiscriminator, DCGANGenerator
from gancompress.errors import InputError
from gancompress.loading import LoadOptions, load_bundle


def _load_error(path, **kw) -> str:
    with pytest.raises(InputError) as info:
        load_bundle(str(path), LoadOptions(**kw))
    return str(info.value)


def test_missing_file(tmp_path):
    assert "no such file" in _load_error(tmp_path / "nope.pt")


def test_empty_file(tmp_path):
    (tmp_path / "e.pt").write_bytes(b"")
    assert "empty" in _load_error(tmp_path / "e.pt")


def test_truncated_file(tmp_path):
    buf = io.BytesIO()
    torch.save(DCGANGenerator([8, 16, 8, 4, 3]).state_dict(), buf)
    (tmp_path / "t.pt").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert "truncated or corrupt" in _load_error(tmp_path / "t.pt")


def test_truncated_safetensors(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(100)}, str(tmp_path / "a.safetensors"))
    data = (tmp_path / "a.safetensors").read_bytes()
    (tmp_path / "b.safetensors").write_bytes(data[:-50])
    assert "not a valid safetensors file" in _load_error(tmp_path / "b.safetensors")


@pytest.mark.parametrize("payload", [bytes(random.Random(0).randrange(256) for _ in range(4096)), b"hello, this is a text file\n" * 20], ids=["random", "text"])
def test_random_bytes_and_text(tmp_path, payload):
    (tmp_path / "x.pth").write_bytes(payload)
    assert "not a readable PyTorch checkpoint" in _load_error(tmp_path / "x.pth")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = marker
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"netG": evil}, f)
    message = _load_error(tmp_path / "evil.pt")
    assert "--trust-pickle" in message and "run code" in message
    assert not marker.exists()


def test_whole_module_pickle_needs_trust(tmp_path):
    torch.save(DCGANGenerator([8, 16, 8, 4, 3]), tmp_path / "m.pt")
    assert "--trust-pickle" in _load_error(tmp_path / "m.pt")
    bundle = load_bundle(str(tmp_path / "m.pt"), LoadOptions(trust_pickle=True))
    assert isinstance(bundle.generator, DCGANGenerator)


def test_unknown_state_dict_lists_candidates(tmp_path):
    torch.save({"encoder.weight": torch.zeros(3, 3), "decoder.weight": torch.zeros(3, 3)}, tmp_path / "u.pt")
    message = _load_error(tmp_path / "u.pt")
    assert "matches no built-in layout (tried dcgan-g, " in message and "--arch module:Callable" in message
    assert "none of its keys occur in any of them" in message and "closest" not in message
    assert message.rstrip().endswith("see docs/custom_networks.md")


def test_directory_without_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert "no checkpoint file" in _load_error(tmp_path)


def test_malformed_hub_reference():
    assert "hf://OWNER/REPO" in _load_error("hf://just-a-name")


def test_unknown_builtin():
    assert "builtin:digits-dcgan" in _load_error("builtin:nope")


def test_cli_error_is_one_line_no_traceback(tmp_path):
    (tmp_path / "e.pt").write_bytes(b"")
    r = subprocess.run([sys.executable, "-m", "gancompress", "inspect", str(tmp_path / "e.pt")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "gancompress", "--debug", "inspect", str(tmp_path / "e.pt")], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" in r.stderr
