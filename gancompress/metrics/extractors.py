"""Feature extractors for FID/KID/ISC/PRC, registered both here and with torch-fidelity.

Every extractor takes what torch-fidelity feeds it: ``uint8`` images ``(N, C, H, W)`` in
``0..255``. Two are built in:

- ``digits``: the bundled 16x16 digits classifier (:mod:`.digits_classifier`); its
  penultimate activations are the features (FID, KID, PRC), its logits feed ISC. Works offline.
- ``inception``: torch-fidelity's ``inception-v3-compat`` (the standard FID network). Its
  weights file ``weights-inception-2015-12-05-6726825d.pth`` is taken from ``--inception-weights``,
  then ``$GANCOMPRESS_INCEPTION_WEIGHTS``, then the torch hub cache, else downloaded there once
  and hash-checked (:mod:`.inception_weights`).

Your own: :func:`register_module_extractor` with a builder returning a module that has
``features(x)`` (``x`` float in ``[-1, 1]``) and either a ``head`` (features -> logits) or a
``forward`` returning logits. Registration is idempotent (same name -> the existing one).
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from ..errors import InputError
from ..registry import Registry

from .inception_weights import INCEPTION_ENV, INCEPTION_FILE, INCEPTION_URL, find_inception_weights  # noqa: F401

FIDELITY_PREFIX = "gancompress-"
DIGITS_SHAPE = (1, 16, 16)
PUBLISHED_SAMPLES = 50_000  # what papers report FID with (Inception features, 50k generated samples)
MIN_COMPARABLE_SAMPLES = 10_000


@dataclass(frozen=True)
class ExtractorOptions:
    """What an extractor may need from the user (only Inception needs anything)."""

    inception_weights: str | None = None


@dataclass(frozen=True)
class Extractor:
    """One feature extractor: its torch-fidelity name and what it needs.

    ``channels``: the channel count it wants (3 for Inception; ``None``: as generated).
    ``fingerprint()``: identifies the weights, for the reference-statistics cache key.
    ``fidelity_kwargs(options)``: extra ``calculate_metrics`` arguments; raises
    :class:`InputError` (before any work) when something it needs is missing.
    ``image_shape``: the only ``(C, H, W)`` it can judge (the digits classifier: 1x16x16); ``None``: any.
    ``default_samples``: generated samples when ``--num-samples`` is not given.
    ``published_samples``: the count published FIDs use with it (``None``: its numbers are only
    comparable between models measured here).
    """

    name: str
    fidelity_name: str
    channels: int | None = None
    fingerprint: Callable[[], str] = field(default=lambda: "")
    fidelity_kwargs: Callable[[ExtractorOptions], dict[str, Any]] = field(default=lambda options: {})
    image_shape: tuple[int, int, int] | None = None
    default_samples: int = 2000
    published_samples: int | None = None


EXTRACTORS: Registry[Extractor] = Registry("feature extractor")


class ModuleFeatureExtractor(FeatureExtractorBase):
    """A torch-fidelity extractor around a module with ``features`` (and logits)."""

    build: ClassVar[Callable[[], nn.Module]]
    calls: ClassVar[int] = 0  # batches seen by this class (tests use it to see cache hits)

    def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
        super().__init__(name, features_list)
        self.net = type(self).build()
        self.net.eval().requires_grad_(False)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "logits" if metric == "isc" else "features"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 1, 16, 16, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise ValueError(f"expected uint8 images (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
        type(self).calls += 1
        images = x.float() / 127.5 - 1.0
        feats = self.net.features(images)
        out = {"features": feats.float()}
        if "logits" in self.features_list:
            head = getattr(self.net, "head", None)
            out["logits"] = (head(feats) if head is not None else self.net(images)).float()
        return tuple(out[name] for name in self.features_list)


def register_module_extractor(name: str, build: Callable[[], nn.Module], *, channels: int | None = None,
                              fingerprint: Callable[[], str] | None = None,
                              image_shape: tuple[int, int, int] | None = None) -> Extractor:
    """Register ``build``'s module as extractor ``name`` (torch-fidelity: ``gancompress-<name>``)."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if name in EXTRACTORS:
        return EXTRACTORS.get(name)
    fidelity_name = FIDELITY_PREFIX + name
    if fidelity_name not in FEATURE_EXTRACTORS_REGISTRY:
        cls = type(f"FeatureExtractor_{name.replace('-', '_')}", (ModuleFeatureExtractor,),
                   {"build": staticmethod(build), "calls": 0})
        register_feature_extractor(fidelity_name, cls)
    extractor = Extractor(name, fidelity_name, channels, fingerprint or (lambda: name), image_shape=image_shape)
    EXTRACTORS.add(name, extractor)
    return extractor


def extractor_class(extractor: Extractor) -> type:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    return FEATURE_EXTRACTORS_REGISTRY[extractor.fidelity_name]


@functools.lru_cache(maxsize=4)
def check_weights_file(path: Path) -> Path:
    """torch-fidelity unpickles the weights file with ``weights_only=False``; refuse any file
    that is not a plain state dict before it gets there (a pickle could run code)."""
    import pickle

    from ..sources import check_regular

    check_regular(Path(path))  # a FIFO or device is refused, never opened
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"{path}: this weights file pickles more than tensors and loading it would run code; "
                         f"use torch-fidelity's {INCEPTION_FILE}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable weights file ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a state dict of tensors; use torch-fidelity's {INCEPTION_FILE}")
    return path


def _inception_kwargs(options: ExtractorOptions) -> dict[str, Any]:
    path = check_weights_file(find_inception_weights(options.inception_weights))
    return {"feature_extractor_weights_path": str(path)}


@functools.lru_cache(maxsize=4)
def file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _digits_fingerprint() -> str:
    from .digits_classifier import default_weights_path

    path = default_weights_path()
    return "digits:" + (file_digest(str(path)) if path.is_file() else "missing")


def _load_digits() -> nn.Module:
    from .digits_classifier import load_digits_classifier

    try:
        return load_digits_classifier()
    except FileNotFoundError as exc:
        raise InputError(f"{exc}; or choose another --extractor") from None


def register_builtin_extractors() -> None:
    """Register ``digits`` and ``inception`` (safe to call any number of times)."""
    register_module_extractor("digits", _load_digits, fingerprint=_digits_fingerprint, image_shape=DIGITS_SHAPE)
    if "inception" not in EXTRACTORS:
        EXTRACTORS.add("inception", Extractor("inception", "inception-v3-compat", 3,
                                              lambda: "inception-v3-compat:" + INCEPTION_FILE, _inception_kwargs,
                                              default_samples=10_000, published_samples=PUBLISHED_SAMPLES))


def default_extractor(output_shape: tuple[int, ...]) -> str:
    """``digits`` for the bundled kind of model (16x16, one channel), ``inception`` for every other."""
    return "digits" if tuple(output_shape) == DIGITS_SHAPE else "inception"


def check_fits(extractor: Extractor, output_shape: tuple[int, ...]) -> None:
    """Refuse an extractor that cannot judge these images, naming the one that can."""
    if extractor.image_shape is None or tuple(output_shape) == extractor.image_shape:
        return
    want, got = "x".join(map(str, extractor.image_shape)), "x".join(map(str, output_shape))
    right = default_extractor(output_shape)
    raise InputError(f"--extractor {extractor.name} only judges {want} images but this generator makes {got}; "
                     f"use --extractor {right}" + (" (the standard FID network)" if right == "inception" else ""))


def sample_count_notes(extractor: Extractor, num_samples: int) -> list[str]:
    """What a reader must know before comparing this FID with another one."""
    if extractor.published_samples is None:
        return [f"FID with the {extractor.name} extractor compares models measured here with each other; "
                "it is not comparable with published FIDs (those use --extractor inception)"]
    if num_samples < MIN_COMPARABLE_SAMPLES:
        return [f"FID from {num_samples:,} samples is biased (it falls as samples grow) and not comparable with "
                f"published numbers; use at least {MIN_COMPARABLE_SAMPLES:,} (-n), papers use {extractor.published_samples:,}"]
    if num_samples < extractor.published_samples:
        return [f"FID from {num_samples:,} samples: papers use {extractor.published_samples:,} (-n "
                f"{extractor.published_samples}); compare only with FIDs from the same count and real data"]
    return []


def get_extractor(name: str) -> Extractor:
    """The registered extractor ``name`` (an :class:`InputError` listing the valid ones otherwise)."""
    register_builtin_extractors()
    return EXTRACTORS.get(name)


register_builtin_extractors()
