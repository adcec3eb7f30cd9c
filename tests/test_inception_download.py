"""The Inception weights are downloaded once into the torch hub cache, from a configurable URL
(here a local HTTP server), and kept only when complete and matching the SHA-256 in their name."""
from __future__ import annotations

import hashlib
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from gancompress.errors import InputError
from gancompress.metrics import inception_weights as iw
from hub_server import HubServer


def _weights_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"fc.weight": torch.arange(6.0).reshape(2, 3)}, buf)
    return buf.getvalue()


@pytest.fixture
def hub_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(iw.INCEPTION_ENV, raising=False)
    monkeypatch.delenv(iw.OFFLINE_ENV, raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _serve(hub: HubServer, name: str, body: bytes, monkeypatch) -> str:
    hub.state.repos["toshas/fidelity"] = {name: body}
    url = f"{hub.url}/toshas/fidelity/resolve/main/{name}"
    monkeypatch.setenv(iw.URL_ENV, url)
    return url


def test_downloads_once_into_the_hub_cache(hub_home, monkeypatch):
    body = _weights_bytes()
    name = f"weights-test-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    with HubServer() as hub:
        _serve(hub, name, body, monkeypatch)
        seen: list[tuple[int, int | None]] = []
        path = iw.find_inception_weights(on_progress=lambda done, total: seen.append((done, total)))
        assert path == hub_home / name and path.read_bytes() == body
        assert seen[-1] == (len(body), len(body))
        assert list(hub_home.iterdir()) == [path]  # no temporary file left
        again = iw.find_inception_weights()
        gets = [r for r in hub.state.requests if r[0] == "GET"]
    assert again == path and len(gets) == 1  # the second call used the cache


def test_hash_mismatch_is_refused_and_nothing_is_kept(hub_home, monkeypatch):
    body = _weights_bytes()
    wrong = "0" * 8 if not hashlib.sha256(body).hexdigest().startswith("0" * 8) else "1" * 8
    with HubServer() as hub:
        _serve(hub, f"weights-test-{wrong}.pth", body, monkeypatch)
        with pytest.raises(InputError, match=f"does not start with {wrong}.*deleted.*--inception-weights"):
            iw.find_inception_weights()
    assert not hub_home.exists() or list(hub_home.iterdir()) == []


class _ShortHandler(BaseHTTPRequestHandler):
    """Announces more bytes than it sends, then closes: a download cut short."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"x" * 1000)
        self.close_connection = True


def test_partial_download_is_not_kept(hub_home, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ShortHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv(iw.URL_ENV, f"http://127.0.0.1:{server.server_address[1]}/weights-x-{'a' * 8}.pth")
        with pytest.raises(InputError, match="could not be downloaded") as err:
            iw.find_inception_weights()
    finally:
        server.shutdown()
        server.server_close()
    assert "--inception-weights" in str(err.value)
    assert not hub_home.exists() or list(hub_home.iterdir()) == []


def test_offline_error_names_the_file_the_cache_and_the_option(hub_home, monkeypatch):
    monkeypatch.setenv(iw.URL_ENV, "http://127.0.0.1:9/" + iw.INCEPTION_FILE)  # nothing listens there
    with pytest.raises(InputError) as err:
        iw.find_inception_weights()
    msg = str(err.value)
    assert iw.INCEPTION_FILE in msg and str(hub_home / iw.INCEPTION_FILE) in msg and "--inception-weights" in msg
    assert "\n" not in msg
    monkeypatch.setenv(iw.OFFLINE_ENV, "1")
    with pytest.raises(InputError, match=iw.OFFLINE_ENV):
        iw.find_inception_weights()


def test_default_source_is_torch_fidelitys_file():
    source = iw.WeightsSource(iw.INCEPTION_URL)
    assert source.file_name == iw.INCEPTION_FILE and source.sha256_prefix == "6726825d"
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    assert fe.URL_INCEPTION_V3 == iw.INCEPTION_URL
    with pytest.raises(InputError, match="SHA-256"):
        _ = iw.WeightsSource("http://example.invalid/weights.pth").sha256_prefix


def test_explicit_path_wins_and_is_never_downloaded(hub_home, tmp_path, monkeypatch):
    mine = tmp_path / "mine.pth"
    mine.write_bytes(_weights_bytes())
    assert iw.find_inception_weights(str(mine)) == mine
    with pytest.raises(InputError, match="no such file"):
        iw.find_inception_weights(str(tmp_path / "missing.pth"))
    assert not Path(hub_home).exists()
