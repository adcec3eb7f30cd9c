"""``EvaluateConfig``: what ``evaluate`` measures and writes, validated on construction."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..errors import InputError
from ..registry import unknown_choice
from ..loading import LoadOptions


@dataclass
class EvaluateConfig:
    """Everything ``evaluate`` needs; validated on construction (:class:`InputError`, exit 2)."""

    sources: list[str]
    real: str | None = None
    fid: bool = False
    kid: bool = False
    isc: bool = False
    prc: bool = False
    extractor: str | None = None  # None: digits for 16x16 one-channel models, else inception
    num_samples: int = 2000
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    latency: bool = False
    samples_png: Path | None = None
    out: Path | None = None
    force: bool = False
    max_fid: float | None = None
    max_fid_increase_pct: float | None = None
    min_psnr: float | None = None
    inception_weights: str | None = None
    trust_pickle: bool = False
    real_limit: int | None = None
    grid_columns: int = 8
    pairs: str | None = None  # image-to-image test images (see gancompress.data_pairs)
    inputs: str | None = None  # image-to-image: a folder of A images matched by name with --pairs as B
    direction: str = "AtoB"
    data: str | None = None  # --data: real images of a noise-input model, test images of an image-to-image one
    load: LoadOptions | None = None  # your own --arch/--d-arch for every model (trust_pickle and direction above win)

    def __post_init__(self) -> None:
        self.sources = list(self.sources)
        if not self.sources:
            raise InputError("give the SOURCE to evaluate (and --reference models to compare with)")
        _positive("--num-samples", self.num_samples, 2 if self.wants_distribution else 1)
        _positive("--batch-size", self.batch_size)
        _positive("--grid-columns", self.grid_columns)
        if self.real_limit is not None:
            _positive("real_limit", self.real_limit, 2)
        if self.extractor is not None:
            from ..metrics.extractors import get_extractor

            get_extractor(self.extractor)
        self._check_gates()
        if self.direction not in ("AtoB", "BtoA"):
            raise unknown_choice("direction", self.direction, ("AtoB", "BtoA"))
        if self.data is not None and self.pairs is not None:
            raise InputError("--data and --pairs (its older spelling) both name the test images; give one")
        if self.inputs is not None and self.pairs is None and self.data is None:
            raise InputError("--inputs (A images) needs --data (the matching B images)")

    def _check_gates(self) -> None:
        if self.max_fid is not None and not self.fid:
            raise InputError("--max-fid needs --fid")
        if self.max_fid is not None and self.max_fid < 0:
            raise InputError(f"--max-fid must be >= 0, got {self.max_fid}")
        if self.max_fid_increase_pct is not None and not (self.fid and len(self.sources) > 1):
            raise InputError("--max-fid-increase needs --fid and a --reference model to compare with")

    @property
    def wants_distribution(self) -> bool:
        return self.fid or self.kid or self.isc or self.prc

    @property
    def needs_real(self) -> bool:
        return self.fid or self.kid or self.prc


def with_data_role(config: EvaluateConfig, input_kind: str) -> EvaluateConfig:
    """``--data`` is the real images of a noise-input model (``real``) and the test images of an
    image-to-image one (``pairs``; ``real`` then still overrides the FID target set)."""
    if config.data is None:
        return config
    if input_kind == "image":
        return replace(config, pairs=config.data, data=None)
    if config.real is not None:
        raise InputError("--data and --real (its older spelling) both name the real images; give one")
    return replace(config, real=config.data, data=None)


def _positive(option: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise InputError(f"{option} must be at least {minimum}, got {value}")


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise InputError(f"--device {spec}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {spec}: CUDA is not available here; use --device cpu")
    return device


def check_outputs(config: EvaluateConfig) -> None:
    from ..io_utils import check_writable

    inputs = tuple(Path(s) for s in config.sources if "://" not in s and not s.startswith("builtin:"))
    outputs = [p for p in (config.out, config.samples_png) if p is not None]
    if len(outputs) == 2 and Path(outputs[0]).resolve() == Path(outputs[1]).resolve():
        raise InputError("-o/--output and --samples name the same file; choose two different files")
    for path in outputs:
        check_writable(Path(path), force=config.force, inputs=inputs)
