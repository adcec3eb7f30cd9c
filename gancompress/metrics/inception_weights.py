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

import os
from pathlib import Path

from ..errors import InputError
from .weights_download import OFFLINE_ENV, DownloadProgress, WeightsSource, WeightsUnavailable, ensure_in_hub

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
INCEPTION_ENV = "GANCOMPRESS_INCEPTION_WEIGHTS"
URL_ENV = "GANCOMPRESS_INCEPTION_URL"


def configured_source() -> WeightsSource:
    return WeightsSource.from_env(URL_ENV, INCEPTION_URL)


def hub_cache_path() -> Path:
    """Where torch hub (and torch-fidelity) keep the file: ``torch.hub.get_dir()/checkpoints/<name>``."""
    return configured_source().hub_path


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
        if path.exists():
            from ..sources import check_regular

            check_regular(path)  # a FIFO or device is refused, never opened
        if not path.is_file():
            raise InputError(f"{what} {path}: no such file; it must be torch-fidelity's {INCEPTION_FILE}")
        return path
    hub = candidates[-1][1]
    if hub.is_file():
        return hub
    source = configured_source()
    try:
        if not download:
            raise WeightsUnavailable("downloads are off")
        return ensure_in_hub(source, hint="download it yourself and pass --inception-weights PATH",
                             on_progress=on_progress)
    except WeightsUnavailable as exc:
        raise _missing(hub, source, str(exc)) from None


def _missing(hub: Path, source: WeightsSource, why: str) -> InputError:
    return InputError(
        f"--extractor inception needs the Inception-v3 weights {source.file_name} and they could not be downloaded "
        f"({why}); put the file at {hub} or pass --inception-weights PATH (or set {INCEPTION_ENV}); get it from {source.url}"
    )
