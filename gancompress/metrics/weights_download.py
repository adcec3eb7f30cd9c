"""Downloading a weights file once into the torch hub cache, checked before it is kept.

A file is streamed to a temporary file beside its target, hashed while written, and renamed
into place only when all announced bytes arrived and, where the URL's file name carries a
SHA-256 prefix as torch hub names do (``name-<hex>.pth``), the digest starts with it;
anything else is deleted. Files whose publisher gives no hash (``hashed=False``) are checked
for completeness only, and must still load as a plain state dict before anyone uses them.
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

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")  # torch.hub's HASH_REGEX, at least 8 digits
_CHUNK = 1 << 20
OFFLINE_ENV = "GANCOMPRESS_OFFLINE"

DownloadProgress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights come from: the URL, the file name it gives and the SHA-256 prefix in that name."""

    url: str
    hashed: bool = True  # the file name carries its SHA-256 prefix

    @property
    def file_name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str | None:
        if not self.hashed:
            return None
        match = _HASH_IN_NAME.search(self.file_name)
        if match is None:
            raise InputError(f"{self.url}: the file name must carry the first digits of its SHA-256 as torch hub "
                             "names do (name-<sha256 prefix>.pth), so the download can be checked")
        return match.group(1)

    @property
    def hub_path(self) -> Path:
        """Where torch hub keeps it: ``torch.hub.get_dir()/checkpoints/<name>``."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name

    @classmethod
    def from_env(cls, env: str, default: str, *, hashed: bool = True) -> "WeightsSource":
        return cls(os.environ.get(env) or default, hashed)


class WeightsUnavailable(Exception):
    """The file is not here and could not be downloaded; the message says why (offline, refused, ...)."""


def ensure_in_hub(source: WeightsSource, *, hint: str, on_progress: DownloadProgress | None = None) -> Path:
    """``source``'s file in the hub cache, downloaded and checked on first use (``hint``: the fix for a bad file)."""
    dest = source.hub_path
    if dest.is_file():
        return dest
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise WeightsUnavailable(f"{OFFLINE_ENV} is set")
    try:
        return download_verified(source, dest, hint=hint, on_progress=on_progress)
    except (OSError, http.client.HTTPException) as exc:  # refused, DNS, timeout, HTTP error, cut short
        reason = getattr(exc, "reason", None) or exc
        raise WeightsUnavailable(str(reason).splitlines()[0][:160] if str(reason) else type(exc).__name__) from None


def download_verified(source: WeightsSource, dest: Path, *, hint: str, on_progress: DownloadProgress | None = None,
                      timeout: float = 60.0) -> Path:
    """Stream ``source.url`` to ``dest``; keep it only when complete and its SHA-256 starts with the name's prefix."""
    expected = source.sha256_prefix
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=timeout) as response:
            digest = _copy_hashing(response, out, on_progress)
        if expected is not None and not digest.startswith(expected):
            raise InputError(f"{source.url}: the downloaded file's SHA-256 {digest[:16]}... does not start with "
                             f"{expected} (its name's hash); it was deleted; {hint}")
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
