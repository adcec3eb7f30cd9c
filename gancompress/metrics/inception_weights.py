"""torch-fidelity's Inception-v3 weights: found locally, or downloaded once and verified.

torch-fidelity fetches ``weights-inception-2015-12-05-6726825d.pth`` from its GitHub release
with ``torch.hub.load_state_dict_from_url`` and checks nothing. The file name follows torch
hub's convention ``<name>-<first hex digits of the file's SHA-256>.<ext>``, the hash that
``torch.hub`` checks with ``check_hash=True``; gancompress checks it too, always.

Where the file is looked for, in order: ``--inception-weights``, ``$GANCOMPRESS_INCEPTION_WEIGHTS``,
the torch hub cache (``torch.hub.get_dir()/checkpoints``, i.e. ``$TORCH_HOME/hub/checkpoints``,
where torch-fidelity itself keeps it). When none holds it, it is downloaded from
``$GANCOMPRESS_INCEPTION_URL`` (default: torch-fidelity's own URL) into the hub cache: streamed
to a temporary file beside the target, hashed while written, renamed into place only when the
whole file arrived and its SHA-256 matches; anything else is deleted. ``GANCOMPRESS_OFFLINE=1``
skips the download. Offline, the error names the file, where to put it and ``--inception-weights``.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import InputError

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
INCEPTION_ENV = "GANCOMPRESS_INCEPTION_WEIGHTS"
URL_ENV = "GANCOMPRESS_INCEPTION_URL"
OFFLINE_ENV = "GANCOMPRESS_OFFLINE"
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")  # torch.hub's HASH_REGEX, at least 8 digits
_CHUNK = 1 << 20

DownloadProgress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights come from: the URL, the file name it gives and the SHA-256 prefix in that name."""

    url: str

    @property
    def file_name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        match = _HASH_IN_NAME.search(self.file_name)
        if match is None:
            raise InputError(f"{URL_ENV}={self.url}: the file name must carry the first digits of its SHA-256 "
                             "as torch hub names do (name-<sha256 prefix>.pth), so the download can be checked")
        return match.group(1)

    @classmethod
    def configured(cls) -> "WeightsSource":
        return cls(os.environ.get(URL_ENV) or INCEPTION_URL)


def hub_cache_path(source: WeightsSource | None = None) -> Path:
    """Where torch hub (and torch-fidelity) keep the file: ``torch.hub.get_dir()/checkpoints/<name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / (source or WeightsSource.configured()).file_name


def inception_candidates(explicit: str | None) -> list[tuple[str, Path]]:
    """Where the Inception weights are looked for, in order: (what, path); the last is the hub cache."""
    found: list[tuple[str, Path]] = []
    if explicit:
        found.append(("--inception-weights", Path(explicit).expanduser()))
    if os.environ.get(INCEPTION_ENV):
        found.append((INCEPTION_ENV, Path(os.environ[INCEPTION_ENV]).expanduser()))
    found.append(("torch hub cache", hub_cache_path()))
    return found


def find_inception_weights(explicit: str | None = None, *, download: bool = True,
                           on_progress: DownloadProgress | None = None) -> Path:
    """The weights file; downloaded into the hub cache on first use unless offline or ``download=False``."""
    candidates = inception_candidates(explicit)
    for what, path in candidates[:-1]:
        if not path.is_file():
            raise InputError(f"{what} {path}: no such file; it must be torch-fidelity's {INCEPTION_FILE}")
        return path
    hub = candidates[-1][1]
    if hub.is_file():
        return hub
    source = WeightsSource.configured()
    if not download or os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise _missing(hub, source, f"{OFFLINE_ENV} is set" if download else "downloads are off")
    try:
        return download_verified(source, hub, on_progress)
    except (OSError, http.client.HTTPException) as exc:  # refused, DNS, timeout, HTTP error, cut short
        raise _missing(hub, source, _reason(exc)) from None


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).splitlines()[0][:160] if str(reason) else type(exc).__name__


def _missing(hub: Path, source: WeightsSource, why: str) -> InputError:
    return InputError(
        f"--extractor inception needs the Inception-v3 weights {source.file_name} and they could not be downloaded "
        f"({why}); put the file at {hub} or pass --inception-weights PATH (or set {INCEPTION_ENV}); get it from {source.url}"
    )


def download_verified(source: WeightsSource, dest: Path, on_progress: DownloadProgress | None = None,
                      timeout: float = 60.0) -> Path:
    """Stream ``source.url`` to ``dest``; keep it only when complete and its SHA-256 starts with the name's prefix."""
    expected = source.sha256_prefix
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=timeout) as response:
            digest = _copy_hashing(response, out, on_progress)
        if not digest.startswith(expected):
            raise InputError(f"{source.url}: the downloaded file's SHA-256 {digest[:16]}... does not start with "
                             f"{expected} (its name's hash); it was deleted; download it yourself and pass "
                             "--inception-weights PATH")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _copy_hashing(response, out, on_progress: DownloadProgress | None) -> str:
    total_header = response.headers.get("Content-Length")
    total = int(total_header) if total_header and total_header.isdigit() else None
    sha, done = hashlib.sha256(), 0
    while chunk := response.read(_CHUNK):
        out.write(chunk)
        sha.update(chunk)
        done += len(chunk)
        if on_progress is not None:
            on_progress(done, total)
    if total is not None and done != total:
        raise urllib.error.ContentTooShortError(f"got {done} of {total} bytes", None)
    return sha.hexdigest()
