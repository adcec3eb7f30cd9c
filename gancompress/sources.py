"""Where checkpoints come from: files, directories, the Hugging Face Hub, the bundled examples.

:func:`resolve` turns a SOURCE string into a local path (downloading ``hf://`` references
through ``huggingface_hub``'s cache); :func:`read_file` reads one checkpoint file into plain
Python objects without ever running pickled code unless ``trust_pickle`` is set.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import stat
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .io_utils import kind_of, note_input
from .registry import unknown_choice

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
BUILTINS = {"digits-dcgan": "digits_dcgan.safetensors"}
HUB_PROBE_TIMEOUT = float(os.environ.get("GANCOMPRESS_HUB_TIMEOUT", "5"))  # seconds
ZIP_EXPANSION = 2  # declared record bytes per archive byte before a torch archive is refused as a zip bomb
_HF = re.compile(r"^hf://(?P<repo>[^/@\s]+/[^/@\s]+)(?:@(?P<rev>[^/\s]+))?(?:/(?P<path>\S+))?$")


@dataclass
class RawFile:
    """One checkpoint file's contents: a nested object of tensors, plus safetensors metadata."""

    path: Path
    content: Any
    metadata: dict[str, str] = field(default_factory=dict)


def builtin_path(name: str) -> Path:
    from importlib import resources

    if name not in BUILTINS:
        raise unknown_choice("builtin model", f"builtin:{name}", [f"builtin:{n}" for n in BUILTINS])
    path = Path(str(resources.files("gancompress") / "assets" / BUILTINS[name]))
    if not path.exists():
        raise InputError(f"the bundled model {name} is missing from this install ({path}); reinstall gancompress")
    return path


def parse_hf(source: str) -> tuple[str, str | None, str | None]:
    m = _HF.match(source)
    if not m:
        raise InputError(f"malformed Hub reference {source!r}; write hf://OWNER/REPO[@REVISION][/PATH]")
    return m["repo"], m["rev"], m["path"]


def resolve(source: str) -> Path:
    """A local file or directory for ``source`` (downloading Hub references into the cache)."""
    if source.startswith("builtin:"):
        return builtin_path(source.split(":", 1)[1])
    if source.startswith("hf://"):
        return _download_hf(*parse_hf(source), source=source)
    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(f"{source}: no such file or directory; check the path (or use hf://OWNER/REPO or builtin:digits-dcgan)")
    check_regular(path, allow_dir=True)
    return path


def check_regular(path: Path, *, allow_dir: bool = False) -> os.stat_result:
    """``path``'s stat (symlinks followed); a FIFO, device or socket is an :class:`InputError`, never opened."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror}); check the path and its permissions") from None
    if stat.S_ISREG(st.st_mode) or (allow_dir and stat.S_ISDIR(st.st_mode)):
        return st
    raise InputError(f"{path} is {kind_of(st.st_mode)}, not a regular file; give a checkpoint file or a folder of them")


def _hf_error(source: str, exc: Exception) -> InputError:
    from huggingface_hub import errors as hf_errors

    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        return InputError(f"{source}: repository not found on the Hub (or it is private: set HF_TOKEN)")
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return InputError(f"{source}: revision not found; check the @REVISION")
    if isinstance(exc, (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled)):
        return InputError(
            f"{source}: not in the local Hub cache and the Hub cannot be reached (HF_HUB_OFFLINE or no network); "
            "download it once while online"
        )
    if isinstance(exc, hf_errors.EntryNotFoundError):
        return InputError(f"{source}: file not found in the repository; check the /PATH")
    return InputError(f"{source}: download failed: {exc}")


def _download_hf(repo: str, revision: str | None, path: str | None, *, source: str) -> Path:
    import huggingface_hub as hf
    from huggingface_hub import errors as hf_errors
    from huggingface_hub.utils import logging as hf_logging

    if not sys.stderr.isatty():
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    hf_logging.set_verbosity_error()  # its retry notices are not ours to print: one error line is
    if path:
        def fetch(local_only: bool) -> str:
            return hf.hf_hub_download(repo, path, revision=revision, local_files_only=local_only)
    else:
        def fetch(local_only: bool) -> str:
            return hf.snapshot_download(repo, revision=revision, local_files_only=local_only,
                                        allow_patterns=["*.json", *(f"*{s}" for s in CHECKPOINT_SUFFIXES)])
    try:
        return _cached_or_online(fetch, source)
    except (hf_errors.HfHubHTTPError, hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled, OSError, ValueError) as exc:
        raise _hf_error(source, exc) from None


def _cached_or_online(fetch, source: str) -> Path:
    """Online when the Hub answers a quick connection probe (huggingface_hub would retry a refused
    connection for about 25 s); otherwise the cached copy, or one line saying neither is there."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return Path(fetch(True))
    unreachable = _probe_endpoint(constants.ENDPOINT)
    if unreachable is None:
        return Path(fetch(False))
    try:
        return Path(fetch(True))
    except Exception:  # noqa: BLE001 - not cached either: the network is the problem to report
        raise InputError(f"{source}: the Hub at {constants.ENDPOINT} cannot be reached ({unreachable}) and the file is not "
                         "in the local cache; check the network, or download it once while online") from None


def _probe_endpoint(endpoint: str, timeout: float = HUB_PROBE_TIMEOUT) -> str | None:
    """Why one TCP connection to the Hub's host fails within ``timeout`` seconds; None when it opens
    (or behind a proxy, where only the proxy can tell)."""
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def checkpoint_files(directory: Path) -> list[Path]:
    """Checkpoint files directly inside ``directory``, preferring safetensors over pickles of the same stem."""
    named = sorted(p for p in directory.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and not p.is_dir())
    for p in named:
        check_regular(p)
    files = [p for p in named if p.is_file()]
    stems = {p.stem for p in files if p.suffix == ".safetensors"}
    files = [p for p in files if p.suffix == ".safetensors" or p.stem not in stems]
    if not files:
        raise InputError(
            f"{directory}: no checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)}) in this directory; point at the file itself"
        )
    return files


def _zip_names(path: Path, size: int) -> list[str] | None:
    """The record names of a zip archive (None: not a zip), after checking that its declared
    uncompressed sizes fit its bytes: ``torch.save`` stores records uncompressed, so a small
    archive that inflates to much more is refused before anything reads it (a zip bomb)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    declared = sum(i.file_size for i in infos)
    if declared > ZIP_EXPANSION * size + (1 << 20):
        raise InputError(f"{path}: the archive declares {declared / 2**20:,.0f} MiB of records in {size / 2**20:,.1f} MiB "
                         "(a zip bomb, or not a torch.save file); re-save the checkpoint with torch.save")
    return [i.filename for i in infos]


def read_file(path: Path, *, trust_pickle: bool = False) -> RawFile:
    """Read one checkpoint file; raises :class:`InputError` with a fix for anything unreadable."""
    size = check_regular(path).st_size
    if size == 0:
        raise InputError(f"{path}: the file is empty; re-download or re-save the checkpoint")
    note_input(path)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    names = _zip_names(path, size)
    if names is not None and any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return _read_torchscript(path)
    _refuse_nvidia_pickle(path)
    return _read_torch(path, trust_pickle=trust_pickle)


# module names that only NVIDIA's StyleGAN pickles reference (TensorFlow dnnlib, stylegan2-ada-pytorch)
_NVIDIA_MODULES = (b"dnnlib", b"torch_utils.persistence")


def _refuse_nvidia_pickle(path: Path) -> None:
    """NVIDIA's StyleGAN ``.pkl`` files carry their network code: never unpickled, even when trusted."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if head[:1] != b"\x80" or not any(name in head for name in _NVIDIA_MODULES):
        return
    raise InputError(
        f"{path}: an NVIDIA StyleGAN pickle, which contains code and is never unpickled here; convert it to "
        "the PyTorch layout with rosinality/stylegan2-pytorch's converter (`python convert_weight.py --repo "
        "PATH_TO_NVIDIA_stylegan2 --gen --disc FILE.pkl`, see README 'StyleGAN2') and pass the .pt it writes"
    )


def _read_torchscript(path: Path) -> RawFile:
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice: not the user's problem
            return RawFile(path, torch.jit.load(str(path), map_location="cpu"))
    except Exception as exc:  # noqa: BLE001 - torch raises many types here
        raise InputError(f"{path}: unreadable TorchScript archive ({_first_line(exc)}); re-save it") from None


def _read_safetensors(path: Path) -> RawFile:
    from .formats import compressed_tensors
    from .formats.safetensors_file import read_safetensors

    tensors, metadata = read_safetensors(path)
    if not str(metadata.get("format", "")).startswith("gancompress") and compressed_tensors.is_bitmask_layout(tensors):
        tensors = compressed_tensors.decode_state_dict(tensors)  # compressed-tensors' sparse-bitmask weights
    return RawFile(path, tensors, metadata)


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (PK..) or, in the legacy format, a pickle (0x80 protocol byte)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return head == b"PK" or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


_ITEM_BYTES = {"Double": 8, "Long": 8, "ComplexDouble": 16, "ComplexFloat": 8, "Float": 4, "Int": 4, "Half": 2,
               "BFloat16": 2, "Short": 2, "Char": 1, "Byte": 1, "Bool": 1, "Untyped": 1}


class _Stub:
    """Stands in for every object of a scanned pickle: nothing is imported, nothing runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _StorageScan(pickle.Unpickler):
    """Reads the declared size of every storage of a legacy (pre-zip) torch pickle without loading it."""

    def __init__(self, fh: Any) -> None:
        super().__init__(fh)
        self.declared = 0

    def find_class(self, module: str, name: str) -> Any:
        return type(name, (_Stub,), {})

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[4], int):
            kind = getattr(pid[1], "__name__", "Untyped").removesuffix("Storage")
            self.declared += max(pid[4], 0) * _ITEM_BYTES.get(kind, 8)
        return _Stub()


def _check_legacy_sizes(path: Path, size: int) -> None:
    """A legacy torch pickle's storages must fit its bytes: torch allocates each declared storage before
    reading it, so a small file claiming gigabytes is refused first."""
    try:
        with open(path, "rb") as fh:
            scans = [_StorageScan(fh) for _ in range(4)]  # magic, protocol, sys_info, then the object
            for scan in scans:
                scan.load()
    except Exception:  # noqa: BLE001 - not a legacy torch pickle after all: torch.load reports it
        return
    declared = scans[-1].declared
    if declared > size + (1 << 20):
        raise InputError(f"{path}: its storages declare {declared / 2**20:,.0f} MiB in a {size / 2**20:,.1f} MiB file; "
                         "the file is damaged or hostile, re-save the checkpoint")


def _read_torch(path: Path, *, trust_pickle: bool) -> RawFile:
    import torch

    if not _looks_like_torch_file(path):
        raise InputError(f"{path}: not a readable PyTorch checkpoint (neither a torch.save archive nor a pickle); check the file")
    zipped = zipfile.is_zipfile(path)
    if not zipped:
        _check_legacy_sizes(path, path.stat().st_size)

    try:  # a zip archive is memory-mapped: tensors are read from the page cache, not copied in
        # argparse.Namespace only holds values (training scripts such as StyleGAN2's train.py save
        # their options in one); allowing it lets their checkpoints load without running code
        with torch.serialization.safe_globals([argparse.Namespace]):
            return RawFile(path, torch.load(str(path), map_location="cpu", weights_only=not trust_pickle, mmap=zipped))
    except pickle.UnpicklingError as exc:
        if not trust_pickle and "weights_only" in str(exc):
            raise InputError(
                f"{path}: this checkpoint pickles Python objects beyond tensors, and loading it would run code "
                "from the file; if you trust its author, pass --trust-pickle"
            ) from None
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)}); it may be corrupt") from None
    except (RuntimeError, EOFError, ValueError, UnicodeDecodeError, zipfile.BadZipFile, AttributeError, ImportError, OSError,
            ModuleNotFoundError, TypeError, KeyError) as exc:
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)}); it may be truncated or corrupt") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
