"""FID reference statistics as a file: ``.npz`` with ``mu`` (D,) and ``sigma`` (D, D).

That is the format pytorch-fid (``--save-stats``) and clean-fid write, so their files work as
``--data FILE.npz`` and ours work in them. gancompress adds one more array, ``gancompress``:
a JSON string recording the extractor (name and weights fingerprint), the data, the image
count and size, so a file made with another extractor is refused instead of giving a
meaningless number. Foreign files have no record; they are taken as made by the chosen
extractor once their dimension matches its features.

Reading never trusts the archive's headers: member names, dtypes and shapes are checked, and
the bytes behind each array are counted, before anything is allocated.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError

META_KEY = "gancompress"
MAX_DIM = 8192  # features per sample; Inception has 2048, CLIP/DINOv2 up to 1536
_FLOAT_KINDS = ("f",)


@dataclass
class Statistics:
    """Mean and covariance of an extractor's FID features over ``count`` images, and their record."""

    mu: np.ndarray
    sigma: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mu = np.asarray(self.mu, dtype=np.float64)
        self.sigma = np.asarray(self.sigma, dtype=np.float64)
        d = self.mu.shape[0] if self.mu.ndim == 1 else -1
        if self.mu.ndim != 1 or self.sigma.shape != (d, d):
            raise InputError(f"statistics need mu of shape (D,) and sigma of shape (D, D), got {self.mu.shape} "
                             f"and {self.sigma.shape}")
        if not (np.isfinite(self.mu).all() and np.isfinite(self.sigma).all()):
            raise InputError("statistics hold NaN or infinite values; recompute them")

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])


def save_statistics(path: Path, stats: Statistics, *, force: bool = False) -> Path:
    """Write ``stats`` as a compressed ``.npz`` (atomically; never overwrites without ``force``)."""
    from ..io_utils import atomic_write

    if Path(path).suffix != ".npz":
        raise InputError(f"--save-stats {path}: give a file name ending in .npz (the format pytorch-fid and clean-fid read)")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: numpy would append .npz to a name
            np.savez_compressed(f, mu=stats.mu, sigma=stats.sigma, **{META_KEY: np.array(json.dumps(stats.meta))})

    return atomic_write(Path(path), write, force=force)


def load_statistics(path: Path) -> Statistics:
    """Read a statistics ``.npz`` (ours, pytorch-fid's or clean-fid's), checking every size first."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {Path(n).stem: archive.getinfo(n) for n in archive.namelist() if n.endswith(".npy")}
            missing = [k for k in ("mu", "sigma") if k not in members]
            if missing:
                raise InputError(f"{path}: no {' or '.join(missing)} array inside; a statistics file holds mu and "
                                 "sigma (as pytorch-fid --save-stats writes)")
            mu = _read_array(archive, members["mu"], path, lambda shape: len(shape) == 1 and shape[0] <= MAX_DIM)
            d = mu.shape[0]
            sigma = _read_array(archive, members["sigma"], path, lambda shape: tuple(shape) == (d, d))
            meta = _read_meta(archive, members.get(META_KEY), path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npz statistics file ({exc}); give mu/sigma as pytorch-fid "
                         "writes them, a folder of images or a data set name") from None
    try:
        return Statistics(mu, sigma, meta)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path,
                shape_ok: Callable[[tuple[int, ...]], bool]) -> np.ndarray:
    from numpy.lib import format as npy

    with archive.open(info) as f:
        version = npy.read_magic(f)
        readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
        if version not in readers:
            raise InputError(f"{path}: {info.filename} is .npy version {version}; write it with numpy.savez")
        shape, fortran, dtype = readers[version](f)  # the header only: nothing allocated yet
        header_len = f.tell()
        count = int(np.prod(shape)) if shape else 1
        if dtype.kind not in _FLOAT_KINDS or dtype.hasobject or not shape_ok(shape):
            raise InputError(f"{path}: {info.filename} is {dtype} of shape {shape}; statistics are float arrays, mu of "
                             f"shape (D,) with D <= {MAX_DIM} and sigma of shape (D, D)")
        if info.file_size - header_len != count * dtype.itemsize:
            raise InputError(f"{path}: {info.filename} claims {shape} but holds {info.file_size - header_len} bytes; "
                             "the file is damaged")
        data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise InputError(f"{path}: {info.filename} is cut short; the file is damaged")
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C").astype(np.float64)


def _read_meta(archive: zipfile.ZipFile, info: zipfile.ZipInfo | None, path: Path) -> dict[str, Any]:
    from numpy.lib import format as npy

    if info is None or info.file_size > 1 << 20:
        return {}
    with archive.open(info) as f:
        try:
            value = npy.read_array(f, allow_pickle=False)
            meta = json.loads(str(value))
        except (ValueError, json.JSONDecodeError):
            return {}
    return meta if isinstance(meta, dict) else {}


def frechet_distance(a: Statistics, b: Statistics) -> float:
    """FID between two statistics, by torch-fidelity's formula (the one every FID table uses)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    if a.dim != b.dim:
        raise InputError(f"the statistics have {b.dim} features but the extractor gives {a.dim}; they were made "
                         "with another extractor: pass the --extractor they were made with")
    return float(fid_statistics_to_metric({"mu": a.mu, "sigma": a.sigma}, {"mu": b.mu, "sigma": b.sigma}, False)[KEY_METRIC_FID])
