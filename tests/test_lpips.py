"""LPIPS through torch-fidelity's lpips-vgg16: its two weight files are downloaded into the hub
cache from (here) a local server and checked; without them LPIPS is reported unavailable, never faked.
VGG16's ImageNet weights are 528 MB: a randomly initialised VGG16 stands in for them."""
from __future__ import annotations

import hashlib
import io

import pytest
import torch

from gancompress.metrics import lpips as lp
from hub_server import HubServer

pytestmark = pytest.mark.usefixtures("one_thread")


def _saved(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


@pytest.fixture
def hub_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("GANCOMPRESS_OFFLINE", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_unavailable_offline_says_which_file_and_where(hub_home, monkeypatch):
    monkeypatch.setenv(lp.LPIPS_URL_ENV, "http://127.0.0.1:9/weights-vgg16-lpips.pth")
    with pytest.raises(lp.LpipsUnavailable) as err:
        lp.ensure_lpips_weights()
    msg = str(err.value)
    assert "weights-vgg16-lpips.pth" in msg and str(hub_home) in msg
    assert not hub_home.exists() or list(hub_home.iterdir()) == []


def test_lpips_with_weights_made_here(hub_home, monkeypatch):
    import torchvision
    import torch_fidelity.sample_similarity_lpips as tf_lpips

    gen = torch.Generator().manual_seed(0)
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen) for k, c in enumerate([64, 128, 256, 512, 512])}
    vgg_stub = _saved({"stand-in": torch.zeros(1)})
    vgg_name = f"vgg16-{hashlib.sha256(vgg_stub).hexdigest()[:8]}.pth"
    with HubServer() as hub:
        hub.state.repos["w/w"] = {"weights-vgg16-lpips.pth": _saved(heads), vgg_name: vgg_stub}
        monkeypatch.setenv(lp.LPIPS_URL_ENV, f"{hub.url}/w/w/resolve/main/weights-vgg16-lpips.pth")
        monkeypatch.setenv(lp.VGG16_URL_ENV, f"{hub.url}/w/w/resolve/main/{vgg_name}")
        torch.manual_seed(0)
        vgg = torchvision.models.vgg16(weights=None).eval()
        monkeypatch.setattr(tf_lpips, "torchvision_load_pretrained_vgg16", lambda **kw: vgg)
        net = lp.load_lpips(torch.device("cpu"))
    assert sorted(p.name for p in hub_home.iterdir()) == sorted([vgg_name, "weights-vgg16-lpips.pth"])
    x = torch.rand(4, 1, 16, 16, generator=gen) * 2 - 1
    small = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    large = (x + 0.5 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    same = lp.mean_lpips(net, [(x, x)], (-1.0, 1.0))
    near, far = lp.mean_lpips(net, [(x, small)], (-1.0, 1.0)), lp.mean_lpips(net, [(x, large)], (-1.0, 1.0))
    assert same == pytest.approx(0.0, abs=1e-6) and 0 < near < far
    assert lp.mean_lpips(net, [(large, x)], (-1.0, 1.0)) == pytest.approx(far, rel=1e-5)  # symmetric
