"""FID, KID, ISC and precision/recall through ``torch_fidelity.calculate_metrics``.

The generator is wrapped as a torch-fidelity generative model (:class:`GeneratorSampler`):
torch-fidelity draws ``z`` from ``numpy.random.RandomState(seed)`` batch after batch, so every
model evaluated with the same seed sees the same latents, whatever the batch size, and
samples are never all held in memory. Images reach the extractor as ``uint8`` ``0..255``
(3 channels for Inception). Real images are a lazily loaded :class:`RealImages` data set.

Reference statistics/features of the real data are cached by torch-fidelity under
:func:`stats_cache_dir` (``$GANCOMPRESS_CACHE/stats``, default ``~/.cache/gancompress/stats``),
named by :meth:`RealSet.cache_name`: a hash of the data spec (for a folder: its file list,
sizes and mtimes), image size/channels/range, the number of images and the extractor's
fingerprint. A second run with the same key never loads nor encodes the real data.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset
from torch_fidelity.generative_model_base import GenerativeModelBase

from .extractors import Extractor

METRIC_KEYS = {
    "frechet_inception_distance": "fid",
    "kernel_inception_distance_mean": "kid_mean",
    "kernel_inception_distance_std": "kid_std",
    "inception_score_mean": "isc_mean",
    "inception_score_std": "isc_std",
    "precision": "precision",
    "recall": "recall",
    "f_score": "f_score",
}


def to_uint8(images: torch.Tensor, value_range: tuple[float, float], channels: int | None = None) -> torch.Tensor:
    """Float images in ``value_range`` -> ``uint8`` ``0..255`` with ``channels`` channels (uint8 stays as is)."""
    lo, hi = value_range
    if images.dtype == torch.uint8:
        out = images
    else:
        out = ((images.float() - lo) * (255.0 / (hi - lo))).round_().clamp_(0, 255).to(torch.uint8)
    if channels == 3 and out.shape[1] == 1:
        out = out.repeat(1, 3, 1, 1)
    elif channels == 1 and out.shape[1] == 3:
        out = out.float().mean(dim=1, keepdim=True).round().to(torch.uint8)
    return out


class GeneratorSampler(GenerativeModelBase):
    """A generator as torch-fidelity input: flat normal ``z`` -> ``uint8`` images."""

    def __init__(self, generator: nn.Module, input_shape: tuple[int, ...], value_range: tuple[float, float],
                 channels: int | None = None, on_batch: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.generator = generator.eval()
        self.input_shape = tuple(input_shape)
        self.value_range = value_range
        self.channels = channels
        self.on_batch = on_batch

    @property
    def z_size(self) -> int:
        return math.prod(self.input_shape)

    @property
    def z_type(self) -> str:
        return "normal"

    @property
    def num_classes(self) -> int:
        return 0

    @torch.no_grad()
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        images = self.generator(z.view(z.shape[0], *self.input_shape))
        if self.on_batch is not None:
            self.on_batch(int(z.shape[0]))
        return to_uint8(images, self.value_range, self.channels)


class RealImages(Dataset):
    """Real images as ``uint8``, loaded on first access only (cache hits never load them)."""

    def __init__(self, load: Callable[[], torch.Tensor], value_range: tuple[float, float], channels: int | None) -> None:
        self._load = load
        self.value_range = value_range
        self.channels = channels
        self._images: torch.Tensor | None = None
        self.loads = 0

    def images(self) -> torch.Tensor:
        if self._images is None:
            self.loads += 1
            self._images = to_uint8(self._load(), self.value_range, self.channels)
        return self._images

    def __len__(self) -> int:
        return int(self.images().shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images()[index]


@dataclass
class RealSet:
    """Real data for the distribution metrics: a loader, its size and an identity for the cache."""

    load: Callable[[], torch.Tensor]
    count: int
    identity: str
    value_range: tuple[float, float] = (-1.0, 1.0)
    _dataset: RealImages | None = field(default=None, repr=False)

    @classmethod
    def from_tensor(cls, images: torch.Tensor, identity: str, value_range: tuple[float, float] = (-1.0, 1.0)) -> "RealSet":
        return cls(lambda: images, int(images.shape[0]), identity, value_range)

    def dataset(self, channels: int | None) -> RealImages:
        if self._dataset is None or self._dataset.channels != channels:
            self._dataset = RealImages(self.load, self.value_range, channels)
        return self._dataset

    def cache_name(self, extractor: Extractor) -> str:
        text = "|".join([self.identity, str(self.count), str(self.value_range), str(extractor.channels),
                         extractor.fidelity_name, extractor.fingerprint(), "v1"])
        return "real-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_root() -> Path:
    return Path(os.environ.get("GANCOMPRESS_CACHE") or Path.home() / ".cache" / "gancompress").expanduser()


def stats_cache_dir() -> Path:
    return cache_root() / "stats"


@dataclass(frozen=True)
class MetricRequest:
    """Which distribution metrics, how many samples, batch size, seed and device."""

    fid: bool = True
    kid: bool = False
    isc: bool = False
    prc: bool = False
    num_samples: int = 1000
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"

    @property
    def any(self) -> bool:
        return self.fid or self.kid or self.isc or self.prc

    @property
    def needs_real(self) -> bool:
        return self.fid or self.kid or self.prc


def _fidelity_kwargs(request: MetricRequest, real: RealSet | None, extractor: Extractor,
                     extra: dict) -> dict:
    n_real = real.count if real is not None else request.num_samples
    kwargs = dict(
        fid=request.fid, kid=request.kid, isc=request.isc, prc=request.prc,
        feature_extractor=extractor.fidelity_name, batch_size=request.batch_size,
        input1_model_num_samples=request.num_samples, rng_seed=request.seed,
        cuda=torch.device(request.device).type == "cuda", verbose=False, save_cpu_ram=True,
        cache=True, cache_root=str(stats_cache_dir()),
        kid_subset_size=max(2, min(1000, request.num_samples, n_real)),
        isc_splits=max(1, min(10, request.num_samples)),
        prc_neighborhood=max(1, min(3, request.num_samples - 1, n_real - 1)),
        **extra,
    )
    if real is not None and request.needs_real:
        kwargs.update(input2=real.dataset(extractor.channels), input2_cache_name=real.cache_name(extractor))
    return kwargs


def distribution_metrics(sampler: GeneratorSampler, real: RealSet | None, extractor: Extractor,
                         request: MetricRequest, extra_kwargs: dict | None = None) -> dict[str, float]:
    """FID/KID/ISC/PRC of ``sampler`` vs ``real`` with ``extractor``; keys as :data:`METRIC_KEYS`."""
    import torch_fidelity

    if not request.any:
        return {}
    if request.needs_real and real is None:
        raise ValueError("FID, KID and precision/recall need real data")
    sampler.channels = extractor.channels
    kwargs = _fidelity_kwargs(request, real, extractor, dict(extra_kwargs or {}))
    os.makedirs(kwargs["cache_root"], exist_ok=True)
    device = torch.device(request.device)
    if device.type == "cuda":
        with torch.cuda.device(device):
            raw = torch_fidelity.calculate_metrics(input1=sampler, **kwargs)
    else:
        raw = torch_fidelity.calculate_metrics(input1=sampler, **kwargs)
    return {METRIC_KEYS[k]: float(v) for k, v in raw.items() if k in METRIC_KEYS}


def _fid_extractor(extractor: Extractor, request: MetricRequest, extra: dict):
    from torch_fidelity.utils import create_feature_extractor, resolve_feature_layer_for_metric

    kwargs = dict(feature_extractor=extractor.fidelity_name, verbose=False, **extra)
    layer = resolve_feature_layer_for_metric("fid", **kwargs)
    cuda = torch.device(request.device).type == "cuda"
    return create_feature_extractor(extractor.fidelity_name, [layer], cuda=cuda, **kwargs), layer


def real_statistics(real: RealSet, extractor: Extractor, request: MetricRequest, extra: dict | None = None,
                    *, cache: bool = True):
    """FID statistics of ``real`` (a :class:`~.stats_file.Statistics`), from the same cache the FID runs use
    (``cache=False``: computed afresh and not stored, for generated images)."""
    from torch_fidelity.metric_fid import fid_input_id_to_statistics_cached

    from .stats_file import Statistics

    fid_only = MetricRequest(True, False, False, False, request.num_samples, request.batch_size, request.seed,
                             request.device)
    kwargs = _fidelity_kwargs(fid_only, real, extractor, dict(extra or {}))
    kwargs["cache"] = cache
    os.makedirs(kwargs["cache_root"], exist_ok=True)
    feat, layer = _fid_extractor(extractor, request, extra or {})
    stats = fid_input_id_to_statistics_cached(2, feat, layer, **kwargs)
    return Statistics(stats["mu"], stats["sigma"], {"extractor": extractor.name, "fingerprint": extractor.fingerprint(),
                                                    "count": real.count, "layer": layer})


def generated_statistics(sampler: GeneratorSampler, extractor: Extractor, request: MetricRequest,
                         extra: dict | None = None):
    """FID statistics of ``request.num_samples`` samples of ``sampler`` (seeded latents, as for FID)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics
    from torch_fidelity.utils import get_featuresdict_from_generative_model

    from .stats_file import Statistics

    sampler.channels = extractor.channels
    feat, layer = _fid_extractor(extractor, request, extra or {})
    cuda = torch.device(request.device).type == "cuda"
    features = get_featuresdict_from_generative_model(sampler, feat, request.num_samples, request.batch_size, cuda,
                                                      request.seed, False)[layer]
    stats = fid_features_to_statistics(features)
    return Statistics(stats["mu"], stats["sigma"], {"extractor": extractor.name, "count": request.num_samples})
