"""``EvaluateConfig``: what ``evaluate`` measures and writes, validated on construction."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..errors import InputError
from ..registry import unknown_choice
from ..loading import LoadOptions


@dataclass
class LatencyConfig:
    """``--latency``: which backends (``metrics.latency.BACKENDS``) at which batch sizes (batch 1 always)."""

    backends: tuple[str, ...] = ("auto",)
    batch_sizes: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        from ..metrics.latency import check_backends

        self.backends = tuple(check_backends(list(self.backends)))
        for b in self.batch_sizes:
            _positive("--batch-size", b)
        self.batch_sizes = tuple(sorted({1, *self.batch_sizes}))


@dataclass
class EvaluateConfig:
    """Everything ``evaluate`` needs; validated on construction (:class:`InputError`, exit 2).

    ``sources`` are compared side by side; the first is the reference (the dense model for deltas,
    ``--max-fid-increase`` and PSNR/SSIM/LPIPS) unless ``references`` are given: those are added
    after them and the first of them is the reference. ``labels`` name the sources in that order.
    ``num_samples=None``: the extractor's default (Inception 10,000, digits 2,000).
    """

    sources: list[str]
    real: str | None = None
    fid: bool = False
    kid: bool = False
    isc: bool = False
    prc: bool = False
    extractor: str | None = None  # None: digits for 16x16 one-channel models, else inception
    num_samples: int | None = None
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    latency: LatencyConfig | None = None
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
    truncation: float = 1.0  # StyleGAN2's psi: samples (and FID) at w_avg + psi * (w - w_avg)
    references: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    save_stats: Path | None = None
    lpips: bool = False

    def __post_init__(self) -> None:
        self.sources, self.references, self.labels = list(self.sources), list(self.references), list(self.labels)
        if not 0.0 <= self.truncation <= 1.0:
            raise InputError(f"--truncation {self.truncation}: psi must be in [0, 1] (1 = no truncation)")
        if not self.sources:
            raise InputError("give the SOURCE to evaluate (and --reference models to compare with)")
        if self.num_samples is not None:
            _positive("--num-samples", self.num_samples, 2 if self.wants_distribution else 1)
        self._check_labels()
        self._check_stats_file()
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

    @property
    def all_sources(self) -> list[str]:
        return self.sources + self.references

    @property
    def reference_index(self) -> int | None:
        """Which of :attr:`all_sources` is the reference (None: one source, no --reference)."""
        if self.references:
            return len(self.sources)
        return 0 if len(self.sources) > 1 else None

    @property
    def data_is_stats(self) -> bool:
        return (self.real or self.data or "").lower().endswith(".npz")

    def _check_stats_file(self) -> None:
        if self.data_is_stats and (self.kid or self.prc):
            raise InputError("--kid and --prc need the real images' features; a statistics .npz holds only FID's mean "
                             "and covariance: pass --data FOLDER (or a data set name) for them")
        if self.save_stats is not None and self.data_is_stats:
            raise InputError("--save-stats writes the statistics of real images; --data is already a statistics file")
        if self.save_stats is not None and Path(self.save_stats).suffix != ".npz":
            raise InputError(f"--save-stats {self.save_stats}: give a file name ending in .npz (the format pytorch-fid "
                             "and clean-fid read)")

    def _check_labels(self) -> None:
        if len(self.labels) > len(self.all_sources):
            raise InputError(f"{len(self.labels)} --label given for {len(self.all_sources)} sources; give one --label "
                             "per SOURCE, in order (then the --reference ones)")
        twice = sorted({label for label in self.labels if self.labels.count(label) > 1})
        if twice or any(not label.strip() for label in self.labels):
            raise InputError(f"--label {twice[0] if twice else repr('')} is given twice or empty; labels tell the "
                             "models apart: give each a different one")

    def _check_gates(self) -> None:
        if self.max_fid is not None and not self.fid:
            raise InputError("--max-fid needs --fid")
        if self.max_fid is not None and self.max_fid < 0:
            raise InputError(f"--max-fid must be >= 0, got {self.max_fid}")
        if self.max_fid_increase_pct is not None and not (self.fid and self.reference_index is not None):
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

    inputs = tuple(Path(s) for s in config.all_sources if "://" not in s and not s.startswith("builtin:"))
    named = [(o, p) for o, p in (("-o/--output", config.out), ("--samples", config.samples_png),
                                 ("--save-stats", config.save_stats)) if p is not None]
    outputs = [p for _, p in named]
    resolved = [Path(p).resolve() for p in outputs]
    if len(set(resolved)) != len(resolved):
        raise InputError(f"{' and '.join(o for o, _ in named)} name the same file; choose different files")
    for path in outputs:
        check_writable(Path(path), force=config.force, inputs=inputs)
