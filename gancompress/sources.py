"""Where checkpoints come from: files, directories, the Hugging Face Hub, the bundled examples.

:func:`resolve` turns a SOURCE string into a local path (downloading ``hf://`` references
through ``huggingface_hub``'s cache); :func:`read_file` reads one checkpoint file into plain
Python objects without ever running pickled code unless ``trust_pickle`` is set.
"""
from __future__ import annotations

import json
import pickle
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .registry import unknown_choice

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
BUILTINS = {"digits-dcgan": "digits_dcgan.safetensors"}
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
    return path


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

    if not sys.stderr.isatty():
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    try:
        if path:
            return Path(hf.hf_hub_download(repo, path, revision=revision))
        return Path(hf.snapshot_download(repo, revision=revision, allow_patterns=["*.json", *(f"*{s}" for s in CHECKPOINT_SUFFIXES)]))
    except (hf_errors.HfHubHTTPError, hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled, OSError, ValueError) as exc:
        raise _hf_error(source, exc) from None


def checkpoint_files(directory: Path) -> list[Path]:
    """Checkpoint files directly inside ``directory``, preferring safetensors over pickles of the same stem."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES)
    stems = {p.stem for p in files if p.suffix == ".safetensors"}
    files = [p for p in files if p.suffix == ".safetensors" or p.stem not in stems]
    if not files:
        raise InputError(
            f"{directory}: no checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)}) in this directory; point at the file itself"
        )
    return files


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/constants.pkl") or n.endswith("/code/") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_file(path: Path, *, trust_pickle: bool = False) -> RawFile:
    """Read one checkpoint file; raises :class:`InputError` with a fix for anything unreadable."""
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty; re-download or re-save the checkpoint")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if _is_torchscript(path):
        import torch

        try:
            return RawFile(path, torch.jit.load(str(path), map_location="cpu"))
        except Exception as exc:  # noqa: BLE001 - torch raises many types here
            raise InputError(f"{path}: unreadable TorchScript archive ({str(exc).splitlines()[0]})") from None
    return _read_torch(path, trust_pickle=trust_pickle)


def _read_safetensors(path: Path) -> RawFile:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        return RawFile(path, load_file(str(path)), metadata)
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a valid safetensors file ({exc}); the file may be truncated or corrupt") from None


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (PK..) or, in the legacy format, a pickle (0x80 protocol byte)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return head == b"PK" or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _read_torch(path: Path, *, trust_pickle: bool) -> RawFile:
    import torch

    if not _looks_like_torch_file(path):
        raise InputError(f"{path}: not a readable PyTorch checkpoint (neither a torch.save archive nor a pickle); check the file")

    try:
        return RawFile(path, torch.load(str(path), map_location="cpu", weights_only=not trust_pickle))
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
