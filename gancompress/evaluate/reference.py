"""The real data FID is measured against (``--data``), and the statistics file ``--save-stats`` writes.

``--data`` is, in this order: a statistics file (``.npz`` with ``mu``/``sigma``), ``builtin:digits``,
a folder of images, or the name of one of torch-fidelity's registered data sets
(``cifar10-train``, ...). Images become a lazily loaded :class:`~gancompress.metrics.fidelity.RealSet`
at the generator's size and channels, whose cache key names the data (for a folder: its file
list, sizes and dates), the size, the channels and the count; a statistics file becomes a
:class:`~gancompress.metrics.stats_file.Statistics` (FID only).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..generation import GeneratorInfo


def folder_identity(files: list[Path], folder: Path) -> str:
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(folder)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return f"folder:{folder.resolve()}:{h.hexdigest()[:16]}"


def is_stats_file(spec: str) -> bool:
    return spec.lower().endswith(".npz")


def real_set(spec: str, info: GeneratorInfo, limit: int | None):
    """A lazily loaded :class:`~gancompress.metrics.fidelity.RealSet` for ``spec`` at the generator's shape."""
    from ..metrics.fidelity import RealSet
    from ..metrics.fidelity_datasets import is_registered

    channels, size = info.output_shape[0], info.output_shape[-1]
    folder = Path(spec).expanduser()
    if spec.startswith("builtin:") or folder.is_dir():
        return _image_set(spec, folder, info, limit)
    if is_registered(spec):
        return _registered_set(spec, size, channels, limit)
    from ..metrics.fidelity_datasets import registered_names

    raise InputError(f"--data {spec}: not a folder of images, a statistics .npz, builtin:digits or one of "
                     f"torch-fidelity's data sets ({', '.join(registered_names())})")


def _image_set(spec: str, folder: Path, info: GeneratorInfo, limit: int | None):
    from ..data.images import image_files, load_real
    from ..metrics.fidelity import RealSet

    channels, size = info.output_shape[0], info.output_shape[-1]
    if spec == "builtin:digits":
        from ..data.digits import N_DIGITS

        count, identity = N_DIGITS, spec
    elif spec.startswith("builtin:"):
        from ..data.images import BUILTIN_DATA
        from ..registry import unknown_choice

        raise unknown_choice("builtin data set", spec, BUILTIN_DATA)
    else:
        files = image_files(folder)
        count, identity = len(files), folder_identity(files, folder)
    count = min(count, limit) if limit else count

    def load() -> torch.Tensor:
        return load_real(spec, size=size, channels=channels, value_range=info.output_range, limit=count)

    return RealSet(load, count, f"{identity}|{size}|{channels}", tuple(info.output_range))


def _registered_set(name: str, size: int, channels: int, limit: int | None):
    from ..metrics.fidelity import RealSet
    from ..metrics.fidelity_datasets import load_registered, open_registered

    dataset = open_registered(name)
    count = min(len(dataset), limit) if limit else len(dataset)
    return RealSet(lambda: load_registered(dataset, size=size, channels=channels, limit=count), count,
                   f"fidelity:{name}|{size}|{channels}", (0.0, 255.0))


def load_reference_stats(spec: str, extractor: Any):
    """A statistics file for FID, refused when its record names another extractor."""
    from ..metrics.stats_file import load_statistics

    path = Path(spec).expanduser()
    if not path.is_file():
        raise InputError(f"--data {spec}: no such statistics file; write one with --save-stats {spec}")
    stats = load_statistics(path)
    made_with = stats.meta.get("extractor")
    if made_with is not None and made_with != extractor.name:
        raise InputError(f"--data {spec}: these statistics were made with --extractor {made_with}; pass "
                         f"--extractor {made_with} (an FID between features of two networks means nothing)")
    fingerprint = stats.meta.get("fingerprint")
    if fingerprint is not None and fingerprint != extractor.fingerprint():
        raise InputError(f"--data {spec}: made with other {made_with} weights ({fingerprint}); recompute them "
                         "with --save-stats")
    return stats


def save_reference_stats(config: Any, plan: Any, info: GeneratorInfo, device: torch.device) -> str:
    """``--save-stats``: the real data's FID statistics with this run's extractor, as a pytorch-fid ``.npz``."""
    from ..version import __version__
    from ..metrics.fidelity import MetricRequest, real_statistics
    from ..metrics.stats_file import save_statistics

    request = MetricRequest(batch_size=config.metrics.batch_size, seed=config.run.seed, device=str(device))
    stats = real_statistics(plan.real, plan.extractor, request, plan.extractor_kwargs)
    stats.meta.update({"data": plan.real_spec, "image_shape": list(info.output_shape), "gancompress": __version__})
    return str(save_statistics(Path(config.data.save_stats), stats, force=config.outputs.force))
