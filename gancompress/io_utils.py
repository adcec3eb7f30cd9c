"""Safe file writing: every file gancompress writes goes through :func:`atomic_write`.

One rule set for every writer: never an input of the running command (whatever the spelling:
symlink, hard link, ``./``), never a FIFO, device, socket or folder, a parent folder that exists
as a folder, a temp file beside the target renamed into place (so a killed write leaves no half
file under the real name), permissions from the umask, and any ``OSError`` turned into one line.
Temp files are named ``.<name>.<pid>.<token>.tmp``; those of dead processes are removed the next
time the same target is written.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Callable, Iterator

from .errors import GanCompressError, InputError

_INPUTS: contextvars.ContextVar[set[tuple[int, int]] | None] = contextvars.ContextVar("gancompress_inputs", default=None)
_USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP,
                errno.EEXIST, errno.ENOENT, errno.ETXTBSY}
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder", stat.S_IFLNK: "a symbolic link"}


@contextlib.contextmanager
def input_scope() -> Iterator[None]:
    """Within this block every file read through :func:`note_input` can never be an output."""
    token = _INPUTS.set(set())
    try:
        yield
    finally:
        _INPUTS.reset(token)


def note_input(path: str | Path) -> None:
    """Remember ``path`` (by device and inode) as an input of the running command."""
    seen = _INPUTS.get()
    if seen is None:
        return
    try:
        st = os.stat(path)
    except OSError:
        return
    seen.add((st.st_dev, st.st_ino))


def kind_of(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_input(path: Path, inputs: tuple[Path, ...]) -> bool:
    if any(_same_file(path, Path(src)) for src in inputs if str(src) and not str(src).startswith(("hf://", "builtin:"))):
        return True
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) in (_INPUTS.get() or ())


def _check_parent(path: Path) -> None:
    for folder in path.absolute().parents:
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise output_error(path, exc) from None
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(f"cannot write {path}: {folder} is {kind_of(st.st_mode)}, not a folder; choose another -o")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"cannot write {path}: the folder {folder} is not writable; choose another -o")
        return


def check_writable(path: Path, *, force: bool = False, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse an input (even with ``force``), a non-regular file, an existing file without ``force``,
    and a parent that is not a writable folder."""
    path = Path(path)
    if _is_input(path, tuple(inputs)):
        raise InputError(f"refusing to overwrite the input {path} (with or without --force); choose another output with -o")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise output_error(path, exc) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path} is a directory; give a file name with -o")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path} is {kind_of(st.st_mode)}, not a regular file; gancompress only replaces regular files, "
                         "choose another -o")
    if st is None and path.is_symlink():
        raise InputError(f"{path} is a dangling symbolic link; remove it or choose another -o")
    if st is not None and not force:
        raise InputError(f"{path} already exists; pass --force to overwrite it or choose another -o")
    _check_parent(path)


def output_error(path: Path, exc: OSError) -> GanCompressError:
    """An ``OSError`` while writing ``path`` as one line: the user's (exit 2) or the system's (exit 1)."""
    reason = exc.strerror or str(exc)
    if exc.errno in _USER_ERRNOS:
        return InputError(f"cannot write {path}: {reason}; choose another -o or fix the folder's permissions")
    return GanCompressError(f"could not write {path}: {reason}; nothing was written")


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-z]+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale_temps(path: Path) -> list[Path]:
    """Remove the temp files that killed writes of ``path`` left beside it (their process is gone)."""
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m and m["name"] == path.name and int(m["pid"]) != os.getpid() and not _alive(int(m["pid"])):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _create_temp(path: Path) -> Path:
    """An empty temp file beside ``path``; mode 0o666 minus the umask, like any new file."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


def atomic_write(path: Path, write: Callable[[Path], None], *, force: bool = False,
                 inputs: tuple[Path, ...] = ()) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path`` and rename it into place (see the module doc)."""
    path = Path(path)
    check_writable(path, force=force, inputs=inputs)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path)
        tmp = _create_temp(path)
        write(tmp)
        check_writable(path, force=True, inputs=inputs)  # nothing became an input or a device meanwhile
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise output_error(path, exc) from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes, *, force: bool = False) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), force=force)


def atomic_write_text(path: Path, text: str, *, force: bool = False) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force)


def derived_output(source: str, tag: str, suffix: str = ".safetensors") -> Path:
    """``<stem>.<tag><suffix>`` beside a local input; in the current directory for hf:// and builtin:."""
    if source.startswith(("hf://", "builtin:")):
        stem = source.rstrip("/").replace("builtin:", "").split("/")[-1].split("@")[0]
        return Path.cwd() / f"{Path(stem).stem}.{tag}{suffix}"
    path = Path(source).expanduser()
    stem = path.name if path.is_dir() else path.stem
    return path.parent / f"{stem}.{tag}{suffix}"


def human_size(n: float) -> str:
    """1536 -> '1.5 KB' (binary units)."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
