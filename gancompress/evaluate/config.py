"""``EvaluateConfig``: what ``evaluate`` measures and writes, composed of small parts that each validate
themselves once (:class:`InputError`, exit 2):

- :class:`ModelsConfig`: the SOURCEs, ``--reference`` models, ``--label``s and the
  :class:`~gancompress.loading.LoadOptions` every one of them is read with;
- :class:`EvalDataConfig`: the real or test images (or a statistics ``.npz``), ``--save-stats``;
- :class:`MetricsConfig`: which metrics, with which extractor, on how many samples;
- :class:`GatesConfig`: ``--max-fid``, ``--max-fid-increase``, ``--min-psnr``;
- :class:`OutputsConfig`: the report, the sample grid, ``--force``;
- :class:`EvalRunConfig`: seed and device; :class:`LatencyConfig` or None: ``--latency``.

:class:`EvaluateConfig` itself checks only what joins two parts (a gate needs its metric, a statistics
file cannot serve KID). :meth:`EvaluateConfig.from_options` builds one from the flat option names of the CLI.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..devices import check_amp, resolve_device  # noqa: F401  (resolve_device: re-exported for run and grids)
from ..errors import InputError
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
class ModelsConfig:
    """``sources`` are compared side by side; the first is the reference (the dense model for deltas,
    ``--max-fid-increase`` and PSNR/SSIM/LPIPS) unless ``references`` are given: those are added
    after them and the first of them is the reference. ``labels`` name the sources in that order;
    ``load`` (its ``source`` unused) reads every one of them."""

    sources: list[str]
    references: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    load: LoadOptions = field(default_factory=LoadOptions)

    def __post_init__(self) -> None:
        self.sources, self.references, self.labels = list(self.sources), list(self.references), list(self.labels)
        if not self.sources:
            raise InputError("give the SOURCE to evaluate (and --reference models to compare with)")
        if len(self.labels) > len(self.all_sources):
            raise InputError(f"{len(self.labels)} --label given for {len(self.all_sources)} sources; give one --label "
                             "per SOURCE, in order (then the --reference ones)")
        twice = sorted({label for label in self.labels if self.labels.count(label) > 1})
        if twice or any(not label.strip() for label in self.labels):
            raise InputError(f"--label {twice[0] if twice else repr('')} is given twice or empty; labels tell the "
                             "models apart: give each a different one")

    @property
    def all_sources(self) -> list[str]:
        return self.sources + self.references

    @property
    def reference_index(self) -> int | None:
        """Which of :attr:`all_sources` is the reference (None: one source, no --reference)."""
        if self.references:
            return len(self.sources)
        return 0 if len(self.sources) > 1 else None


@dataclass
class EvalDataConfig:
    """The images: ``data`` (``--data``) is the real images of a noise-input model and the test images of
    an image-to-image one (:meth:`with_role` settles which); ``real`` and ``pairs`` are its older spellings."""

    data: str | None = None
    real: str | None = None
    pairs: str | None = None  # image-to-image test images (see gancompress.data_pairs)
    inputs: str | None = None  # image-to-image: a folder of A images matched by name with --pairs as B
    real_limit: int | None = None
    save_stats: Path | None = None

    def __post_init__(self) -> None:
        if self.save_stats is not None and self.is_stats:
            raise InputError("--save-stats writes the statistics of real images; --data is already a statistics file")
        if self.save_stats is not None and Path(self.save_stats).suffix != ".npz":
            raise InputError(f"--save-stats {self.save_stats}: give a file name ending in .npz (the format pytorch-fid "
                             "and clean-fid read)")
        if self.real_limit is not None:
            _positive("real_limit", self.real_limit, 2)
        if self.data is not None and self.pairs is not None:
            raise InputError("--data and --pairs (its older spelling) both name the test images; give one")
        if self.inputs is not None and self.pairs is None and self.data is None:
            raise InputError("--inputs (A images) needs --data (the matching B images)")

    @property
    def is_stats(self) -> bool:
        return (self.real or self.data or "").lower().endswith(".npz")

    def with_role(self, input_kind: str) -> EvalDataConfig:
        """``data`` as ``pairs`` for an image-to-image model (``real`` then still overrides the FID target
        set), as ``real`` for a noise-input one."""
        if self.data is None:
            return self
        if input_kind == "image":
            return replace(self, pairs=self.data, data=None)
        if self.real is not None:
            raise InputError("--data and --real (its older spelling) both name the real images; give one")
        return replace(self, real=self.data, data=None)


@dataclass
class MetricsConfig:
    """Which metrics; ``num_samples=None``: the extractor's default (Inception 10,000, digits 2,000)."""

    fid: bool = False
    kid: bool = False
    isc: bool = False
    prc: bool = False
    lpips: bool = False
    extractor: str | None = None  # None: digits for 16x16 one-channel models, else inception
    inception_weights: str | None = None
    num_samples: int | None = None
    batch_size: int = 64
    truncation: float = 1.0  # StyleGAN2's psi: samples (and FID) at w_avg + psi * (w - w_avg)

    def __post_init__(self) -> None:
        if not 0.0 <= self.truncation <= 1.0:
            raise InputError(f"--truncation {self.truncation}: psi must be in [0, 1] (1 = no truncation)")
        if self.num_samples is not None:
            _positive("--num-samples", self.num_samples, 2 if self.wants_distribution else 1)
        _positive("--batch-size", self.batch_size)
        if self.extractor is not None:
            from ..metrics.extractors import get_extractor

            get_extractor(self.extractor)

    @property
    def wants_distribution(self) -> bool:
        return self.fid or self.kid or self.isc or self.prc

    @property
    def needs_real(self) -> bool:
        return self.fid or self.kid or self.prc


@dataclass
class GatesConfig:
    """Thresholds whose failure makes ``evaluate`` exit 3 after the reports are written."""

    max_fid: float | None = None
    max_fid_increase_pct: float | None = None
    min_psnr: float | None = None

    def __post_init__(self) -> None:
        if self.max_fid is not None and self.max_fid < 0:
            raise InputError(f"--max-fid must be >= 0, got {self.max_fid}")


@dataclass
class OutputsConfig:
    """The JSON report (``out``), the sample grid (``samples_png``, ``grid_columns`` wide) and ``--force``."""

    out: Path | None = None
    samples_png: Path | None = None
    grid_columns: int = 8
    force: bool = False

    def __post_init__(self) -> None:
        _positive("--grid-columns", self.grid_columns)


@dataclass
class EvalRunConfig:
    """The seed of every model's inputs and the device (checked when resolved: :func:`resolve_device`)."""

    seed: int = 0
    device: str = "auto"
    amp: str = "none"  # generation under bf16/fp16 autocast (--amp)

    def __post_init__(self) -> None:
        check_amp(self.amp)


@dataclass
class EvaluateConfig:
    """Everything ``evaluate`` needs: the parts above, and the checks that join two of them."""

    models: ModelsConfig
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    data: EvalDataConfig = field(default_factory=EvalDataConfig)
    gates: GatesConfig = field(default_factory=GatesConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    run: EvalRunConfig = field(default_factory=EvalRunConfig)
    latency: LatencyConfig | None = None

    def __post_init__(self) -> None:
        metrics, gates = self.metrics, self.gates
        if self.data.is_stats and (metrics.kid or metrics.prc):
            raise InputError("--kid and --prc need the real images' features; a statistics .npz holds only FID's mean "
                             "and covariance: pass --data FOLDER (or a data set name) for them")
        if gates.max_fid is not None and not metrics.fid:
            raise InputError("--max-fid needs --fid")
        if gates.max_fid_increase_pct is not None and not (metrics.fid and self.models.reference_index is not None):
            raise InputError("--max-fid-increase needs --fid and a --reference model to compare with")

    @classmethod
    def from_options(cls, **options: Any) -> EvaluateConfig:
        """A config from the flat option names (``sources``, ``fid``, ``real``, ``max_fid``, ``out``, ``seed``, ...).

        ``load`` (a :class:`LoadOptions`) is the base the flat loading names (``trust_pickle``, ``direction``,
        ``arch``, ...) override; ``latency`` is a :class:`LatencyConfig` or None."""
        parts = {name: {k: options.pop(k) for k in names if k in options} for name, names in _PARTS.items()}
        load = options.pop("load", None) or LoadOptions()
        latency = options.pop("latency", None)
        if options:
            raise TypeError(f"unknown evaluate options: {', '.join(sorted(options))}")
        models = ModelsConfig(**parts["models"], load=replace(load, **parts["load"]))
        return cls(models=models, metrics=MetricsConfig(**parts["metrics"]), data=EvalDataConfig(**parts["data"]),
                   gates=GatesConfig(**parts["gates"]), outputs=OutputsConfig(**parts["outputs"]),
                   run=EvalRunConfig(**parts["run"]), latency=latency)


def _names(part: type, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(f.name for f in fields(part) if f.name not in skip)


_PARTS: dict[str, tuple[str, ...]] = {
    "models": _names(ModelsConfig, ("load",)),
    "load": _names(LoadOptions, ("source",)),
    "metrics": _names(MetricsConfig),
    "data": _names(EvalDataConfig),
    "gates": _names(GatesConfig),
    "outputs": _names(OutputsConfig),
    "run": _names(EvalRunConfig),
}


def with_data_role(config: EvaluateConfig, input_kind: str) -> EvaluateConfig:
    """``config`` with ``--data`` in the role its first model's input kind gives it (:meth:`EvalDataConfig.with_role`)."""
    data = config.data.with_role(input_kind)
    return config if data is config.data else replace(config, data=data)


def _positive(option: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise InputError(f"{option} must be at least {minimum}, got {value}")


def check_outputs(config: EvaluateConfig) -> None:
    from ..io_utils import check_writable

    outputs = config.outputs
    inputs = tuple(Path(s) for s in config.models.all_sources if "://" not in s and not s.startswith("builtin:"))
    named = [(o, p) for o, p in (("-o/--output", outputs.out), ("--samples", outputs.samples_png),
                                 ("--save-stats", config.data.save_stats)) if p is not None]
    paths = [p for _, p in named]
    resolved = [Path(p).resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise InputError(f"{' and '.join(o for o, _ in named)} name the same file; choose different files")
    for path in paths:
        check_writable(Path(path), force=outputs.force, inputs=inputs)
