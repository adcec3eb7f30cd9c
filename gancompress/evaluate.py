"""``gancompress evaluate``: quality, fidelity to the dense model and cost of one or more generators.

:func:`evaluate` loads every SOURCE (the first is the model under test, the others are
``--reference`` models), and for each one measures

- FID/KID/ISC/precision-recall against real data through torch-fidelity (same seed, hence
  the same latents, for every model; the real statistics are computed once and cached);
- PSNR/SSIM/mean absolute difference of its outputs against the dense model's on the same
  inputs: the first reference, else the teacher recorded in the checkpoint's
  ``pruning.source`` metadata when it can be loaded, else skipped;
- parameters, nonzeros, dense and effective MACs, file size, and (``latency``) median
  batch-1 latency and throughput.

Gates (``max_fid``, ``max_fid_increase_pct`` vs the first reference, ``min_psnr``) are
evaluated on the model under test; :meth:`EvaluateReport.raise_for_gates` raises
:class:`~gancompress.errors.GateFailed` (exit code 3) naming the failing numbers.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .checkpoint import GanBundle
from .errors import GanCompressError, GateFailed, InputError
from .generation import GeneratorInfo
from .loading import LoadOptions

ProgressFn = Callable[[int, int, str], None]
DIGITS_SHAPE = (1, 16, 16)


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
            from .metrics.extractors import get_extractor

            get_extractor(self.extractor)
        self._check_gates()
        if self.direction not in ("AtoB", "BtoA"):
            raise InputError(f"--direction {self.direction!r}: choose AtoB or BtoA")
        if self.inputs is not None and self.pairs is None:
            raise InputError("--inputs (A images) needs --pairs (the matching B images)")

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


def _positive(option: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise InputError(f"{option} must be at least {minimum}, got {value}")


@dataclass
class LoadedModel:
    source: str
    label: str
    role: str  # "model", "reference" or "teacher"
    bundle: GanBundle
    info: GeneratorInfo
    path: Path | None


@dataclass
class ModelRow:
    """One model's numbers (``None``: not measured)."""

    source: str
    label: str
    role: str
    metrics: dict[str, float] = field(default_factory=dict)
    similarity: Any = None  # metrics.similarity.Similarity
    similarity_to: str | None = None
    parameters: int = 0
    nonzeros: int = 0
    macs_dense: int | None = None
    macs_effective: int | None = None
    file_size: int | None = None
    latency_ms: float | None = None
    throughput: float | None = None

    def values(self) -> dict[str, float | None]:
        """Flat numeric view (used for deltas and the table)."""
        sim = self.similarity
        return {**self.metrics, "psnr": sim.psnr if sim else None, "ssim": sim.ssim if sim else None,
                "mean_abs_diff": sim.mean_abs_diff if sim else None, "parameters": self.parameters,
                "nonzeros": self.nonzeros, "macs_dense": self.macs_dense, "macs_effective": self.macs_effective,
                "file_size": self.file_size, "latency_ms": self.latency_ms, "throughput": self.throughput}

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "label": self.label, "role": self.role, "similarity_to": self.similarity_to,
                **self.values()}


@dataclass
class GateResult:
    option: str
    threshold: float
    value: float | None
    passed: bool
    message: str


@dataclass
class EvaluateReport:
    rows: list[ModelRow]
    deltas: dict[str, dict[str, dict[str, float | None]]]
    gates: list[GateResult]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; infinite numbers (PSNR of identical outputs) become the string ``"inf"``."""
        doc = {"settings": self.settings, "rows": [r.to_dict() for r in self.rows], "deltas": self.deltas,
               "gates": [vars(g) for g in self.gates], "passed": not self.failed_gates, "notes": self.notes}
        return _finite(doc)

    def raise_for_gates(self) -> None:
        failed = self.failed_gates
        if failed:
            raise GateFailed("quality gate failed: " + "; ".join(g.message for g in failed))


def _finite(obj: Any) -> Any:
    from .metrics.similarity import json_number

    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return json_number(obj) if isinstance(obj, float) else obj


# ---------------------------------------------------------------- setup


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


def _check_outputs(config: EvaluateConfig) -> None:
    from .io_utils import check_writable

    inputs = tuple(Path(s) for s in config.sources if "://" not in s and not s.startswith("builtin:"))
    outputs = [p for p in (config.out, config.samples_png) if p is not None]
    if len(outputs) == 2 and Path(outputs[0]).resolve() == Path(outputs[1]).resolve():
        raise InputError("--out and --samples name the same file; choose two different files")
    for path in outputs:
        check_writable(Path(path), force=config.force, inputs=inputs)


def _label(source: str, role: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1] or source
    name = name if len(name) <= 28 else name[:25] + "..."
    return name if role == "model" else f"{name} ({role})"


def load_model(source: str, role: str, config: EvaluateConfig, device: torch.device) -> LoadedModel:
    from .generation import generator_info
    from .loading import load_bundle
    from .sources import resolve

    options = replace(config.load or LoadOptions(), trust_pickle=config.trust_pickle, direction=config.direction)
    bundle = load_bundle(source, options)
    bundle.generator.eval().to(device)
    info = generator_info(bundle)
    return LoadedModel(source, _label(source, role), role, bundle, info, resolve(source))


def _check_compatible(models: list[LoadedModel]) -> None:
    first = models[0]
    for other in models[1:]:
        if (other.info.input_shape, other.info.output_shape) != (first.info.input_shape, first.info.output_shape):
            raise InputError(
                f"{other.source} maps {other.info.input_shape} -> {other.info.output_shape} but {first.source} maps "
                f"{first.info.input_shape} -> {first.info.output_shape}; a --reference must take and make the same shapes"
            )


def _teacher(config: EvaluateConfig, model: LoadedModel, device: torch.device) -> tuple[LoadedModel | None, str | None]:
    pruning = model.bundle.meta.get("pruning")
    source = pruning.get("source") if isinstance(pruning, dict) else None
    if not source:
        return None, "no --reference and no teacher recorded in the checkpoint: fidelity to the dense model skipped"
    try:
        teacher = load_model(str(source), "teacher", config, device)
        _check_compatible([model, teacher])
    except GanCompressError as exc:
        return None, f"teacher {source} could not be used ({exc}); fidelity to the dense model skipped"
    return teacher, None


# ---------------------------------------------------------------- plan


@dataclass
class MetricPlan:
    """What the distribution metrics need, resolved before any heavy work."""

    extractor: Any = None  # metrics.extractors.Extractor
    extractor_kwargs: dict[str, Any] = field(default_factory=dict)
    real: Any = None  # metrics.fidelity.RealSet
    real_spec: str | None = None


def _early_extractor_kwargs(config: EvaluateConfig) -> dict[str, Any] | None:
    """An explicitly chosen extractor's needs (Inception weights) are checked before loading anything."""
    if config.extractor is None or not config.wants_distribution:
        return None
    from .metrics.extractors import ExtractorOptions, get_extractor

    return get_extractor(config.extractor).fidelity_kwargs(ExtractorOptions(config.inception_weights))


def _is_digits(info: GeneratorInfo) -> bool:
    return tuple(info.output_shape) == DIGITS_SHAPE


def plan_metrics(config: EvaluateConfig, info: GeneratorInfo, early: dict[str, Any] | None,
                 test: "TestImages | None" = None) -> MetricPlan:
    from .metrics.extractors import ExtractorOptions, get_extractor

    if not config.wants_distribution:
        return MetricPlan()
    if info.input_kind != "noise":
        return _plan_img2img(config, info, early, test)
    spec = config.real or ("builtin:digits" if _is_digits(info) else None)
    if config.needs_real and spec is None:
        raise InputError(
            f"--fid/--kid/--prc need real images for this {'x'.join(map(str, info.output_shape))} generator: "
            "pass --real FOLDER (a folder of images; builtin:digits only suits 16x16 one-channel digits models)")
    real = real_set(spec, info, config.real_limit) if config.needs_real else None
    extractor = get_extractor(config.extractor or ("digits" if _is_digits(info) else "inception"))
    kwargs = early if early is not None else extractor.fidelity_kwargs(ExtractorOptions(config.inception_weights))
    return MetricPlan(extractor, kwargs, real, spec if config.needs_real else None)


def _folder_identity(files: list[Path], folder: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(folder)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return f"folder:{folder.resolve()}:{h.hexdigest()[:16]}"


def real_set(spec: str, info: GeneratorInfo, limit: int | None):
    """A lazily loaded :class:`~gancompress.metrics.fidelity.RealSet` for ``spec`` at the generator's shape."""
    from .data import image_files, load_real
    from .metrics.fidelity import RealSet

    channels, size = info.output_shape[0], info.output_shape[-1]
    if spec == "builtin:digits":
        from .data_digits import N_DIGITS

        count, identity = N_DIGITS, spec
    elif spec.startswith("builtin:"):
        raise InputError(f"--real {spec}: unknown builtin data set; available: builtin:digits")
    else:
        folder = Path(spec).expanduser()
        if not folder.is_dir():
            raise InputError(f"--real {spec}: not a folder; give a folder of images or builtin:digits")
        files = image_files(folder)
        count, identity = len(files), _folder_identity(files, folder)
    count = min(count, limit) if limit else count

    def load() -> torch.Tensor:
        return load_real(spec, size=size, channels=channels, value_range=info.output_range, limit=count)

    return RealSet(load, count, f"{identity}|{size}|{channels}", tuple(info.output_range))


# ---------------------------------------------------------------- image-to-image test data


@dataclass
class TestImages:
    """Full-size test images of an image-to-image model: ``(name, input, target or None)`` per image
    (batch-1 tensors in the output range) and the target-domain images for FID (``domain``)."""

    kind: str
    items: list[tuple[str, torch.Tensor, torch.Tensor | None]]
    domain: list[torch.Tensor]
    spec: str
    notes: list[str] = field(default_factory=list)

    @property
    def paired(self) -> bool:
        return self.kind in ("paired", "sr")


def test_kind(bundle: GanBundle) -> str:
    """``sr`` for RRDBNet, ``unpaired`` for a CycleGAN (unconditional PatchGAN or a ``cyclegan`` fine-tune), else ``paired``."""
    if bundle.g_spec is not None and bundle.g_spec.name == "rrdbnet-g":
        return "sr"
    ft = bundle.meta.get("finetune")
    loss = ft.get("loss") if isinstance(ft, dict) else None
    if loss in ("pix2pix", "cyclegan", "sr"):
        return {"pix2pix": "paired", "cyclegan": "unpaired", "sr": "sr"}[loss]
    d = bundle.d_spec
    if d is not None and d.name == "patchgan-d" and bundle.g_spec is not None:
        from .archs.pix2pix import patchgan_conditional

        g_kw = bundle.g_spec.kwargs
        if not patchgan_conditional(d.kwargs, g_kw.get("input_nc", 3), g_kw.get("output_nc", 3)):
            return "unpaired"
    return "paired"


def load_test_images(config: EvaluateConfig, model: LoadedModel) -> TestImages:
    from .data_pairs import eval_pairs, input_multiple, load_image_data

    info = model.info
    kind = test_kind(model.bundle)
    scale = max(1, info.output_shape[-1] // info.input_shape[-1]) if kind == "sr" else 1
    data = load_image_data(kind, str(config.pairs), info.input_shape[0], info.output_shape[0], inputs=config.inputs,
                           direction=config.direction, scale=scale)
    items = eval_pairs(data, info.output_range, input_multiple(model.bundle.g_spec))
    domain = [t for _, _, t in items] if kind != "unpaired" else [
        _to_range_batch(b, info.output_range) for b in data.b]
    return TestImages(kind, items, domain, str(config.pairs), data.notes)


def _to_range_batch(image: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    from .data_pairs import to_range

    return to_range(image[None], value_range)


def _fit_all(images: list[torch.Tensor], size: int) -> torch.Tensor:
    from .data import fit

    return torch.stack([fit(t[0].float(), size) for t in images])


def _plan_img2img(config: EvaluateConfig, info: GeneratorInfo, early: dict[str, Any] | None,
                  test: TestImages | None) -> MetricPlan:
    import hashlib

    from .metrics.extractors import ExtractorOptions, get_extractor
    from .metrics.fidelity import RealSet

    if test is None:
        raise InputError("FID/KID/ISC/PRC of an image-to-image generator need its test images: pass --pairs FOLDER "
                         "(pix2pix: A|B side-by-side images or A/ and B/; CycleGAN: A/ and B/; SR: high-resolution images)")
    size = info.output_shape[-1]
    if config.real:
        real = real_set(config.real, info, config.real_limit) if config.needs_real else None
        spec = config.real
    else:
        targets = _fit_all(test.domain[:config.real_limit] if config.real_limit else test.domain, size)
        digest = hashlib.sha256(to_bytes(targets)).hexdigest()[:16]
        real = RealSet.from_tensor(targets, f"img2img:{test.spec}:{config.direction}:{digest}|{size}",
                                   tuple(info.output_range))
        spec = f"{test.spec} (target domain)"
    extractor = get_extractor(config.extractor or "inception")
    kwargs = early if early is not None else extractor.fidelity_kwargs(ExtractorOptions(config.inception_weights))
    return MetricPlan(extractor, kwargs, real if config.needs_real else None, spec if config.needs_real else None)


def to_bytes(images: torch.Tensor) -> bytes:
    return images.float().contiguous().numpy().tobytes()


@torch.no_grad()
def _img2img_outputs(model: LoadedModel, test: TestImages, device: torch.device) -> list[torch.Tensor]:
    lo, hi = model.info.output_range
    return [model.bundle.generator(x.to(device)).float().clamp(lo, hi).cpu() for _, x, _ in test.items]


def _img2img_measure(row: ModelRow, model: LoadedModel, test: TestImages, plan: MetricPlan, dense: LoadedModel | None,
                     config: EvaluateConfig, device: torch.device, tick: Callable[[int], None]) -> None:
    """FID etc. of the outputs vs the target domain, PSNR/SSIM vs ground truth, fidelity to the dense model."""
    import torch_fidelity

    from .metrics.fidelity import METRIC_KEYS, MetricRequest, RealSet, _fidelity_kwargs
    from .metrics.similarity import SimilarityAccumulator

    lo, hi = model.info.output_range
    outputs = _img2img_outputs(model, test, device)
    tick(len(outputs))
    if test.paired:
        acc = SimilarityAccumulator(hi - lo)
        for out, (_, _, target) in zip(outputs, test.items):
            acc.update(out, target)
        sim = acc.result()
        row.metrics.update({"psnr_gt": sim.psnr, "ssim_gt": sim.ssim})
    if dense is not None and dense is not model:
        acc = SimilarityAccumulator(hi - lo)
        for out, ref in zip(outputs, _img2img_outputs(dense, test, device)):
            acc.update(out, ref)
        row.similarity, row.similarity_to = acc.result(), dense.source
    if plan.extractor is None:
        return
    fake = RealSet.from_tensor(_fit_all(outputs, model.info.output_shape[-1]), "outputs", (lo, hi))
    request = MetricRequest(config.fid, config.kid, config.isc, config.prc, fake.count, config.batch_size,
                            config.seed, str(device))
    kwargs = _fidelity_kwargs(request, plan.real, plan.extractor, dict(plan.extractor_kwargs))
    kwargs.pop("input1_model_num_samples", None)
    Path(kwargs["cache_root"]).mkdir(parents=True, exist_ok=True)
    raw = torch_fidelity.calculate_metrics(input1=fake.dataset(plan.extractor.channels), **kwargs)
    row.metrics.update({METRIC_KEYS[k]: float(v) for k, v in raw.items() if k in METRIC_KEYS})


@torch.no_grad()
def write_img2img_grid(config: EvaluateConfig, models: list[LoadedModel], dense: LoadedModel | None,
                       test: TestImages, device: torch.device) -> Path:
    """Rows: input | dense | compressed (and other references) | target, the same test images in every row."""
    from .imagegrid import save_grid

    info = models[0].info
    size = min(info.output_shape[-1], 128)
    items = test.items[:config.grid_columns]
    c = info.output_shape[0]

    def shown(images: list[torch.Tensor]) -> torch.Tensor:
        out = []
        for t in images:
            t = t.float()
            if t.shape[1] != c:
                t = t.repeat(1, 3, 1, 1) if c == 3 else t.mean(dim=1, keepdim=True)
            out.append(t)
        return _fit_all(out, size)

    order = ([dense] if dense is not None else []) + [m for m in models if m is not dense]
    rows = [("input", shown([x for _, x, _ in items]))]
    for m in order:
        label = m.label if m is not dense else f"{m.label.split(' (')[0]} (dense)"
        rows.append((label, shown([m.bundle.generator(x.to(device)).float().cpu() for _, x, _ in items])))
    targets = [t for _, _, t in items if t is not None]
    if test.paired and targets:
        rows.append(("target", shown(targets)))
    scale = max(1, min(8, 64 // max(1, size)))
    return save_grid(rows, config.samples_png, info.output_range, scale, force=config.force)


# ---------------------------------------------------------------- measuring


def model_inputs(info: GeneratorInfo, n: int, batch_size: int, seed: int, device: torch.device) -> Iterator[torch.Tensor]:
    """The same seeded inputs for every model: latents, or random images for image-to-image models."""
    from .generation import noise

    if info.input_kind == "noise":
        data = noise(n, info.input_shape, seed, device="cpu")
    else:
        data = torch.rand(n, *info.input_shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    for start in range(0, n, batch_size):
        yield data[start:start + batch_size].to(device)


def _cost(row: ModelRow, model: LoadedModel, config: EvaluateConfig, device: torch.device) -> None:
    from .metrics.cost import count_macs, file_size, measure_latency, parameter_counts

    row.parameters, row.nonzeros = parameter_counts(model.bundle.generator)
    macs = count_macs(model.bundle.generator, model.info.input_shape)
    row.macs_dense, row.macs_effective = (macs.dense, macs.effective) if macs else (None, None)
    row.file_size = file_size(model.path)
    if config.latency:
        lat = measure_latency(model.bundle.generator, model.info.input_shape, device, config.batch_size, seed=config.seed)
        row.latency_ms, row.throughput = lat.median_ms, lat.throughput


def _similarity(row: ModelRow, model: LoadedModel, dense: LoadedModel | None, config: EvaluateConfig,
                device: torch.device) -> None:
    from .metrics.similarity import compare_models

    if dense is None or dense is model:
        return
    lo, hi = model.info.output_range
    inputs = model_inputs(model.info, config.num_samples, config.batch_size, config.seed, device)
    row.similarity = compare_models(model.bundle.generator, dense.bundle.generator, inputs, hi - lo)
    row.similarity_to = dense.source


def _distribution(row: ModelRow, model: LoadedModel, plan: MetricPlan, config: EvaluateConfig,
                  device: torch.device, tick: Callable[[int], None]) -> None:
    from .metrics.fidelity import GeneratorSampler, MetricRequest, distribution_metrics

    if plan.extractor is None:
        return
    request = MetricRequest(config.fid, config.kid, config.isc, config.prc, config.num_samples,
                            config.batch_size, config.seed, str(device))
    sampler = GeneratorSampler(model.bundle.generator, model.info.input_shape, model.info.output_range, on_batch=tick)
    row.metrics = distribution_metrics(sampler, plan.real, plan.extractor, request, plan.extractor_kwargs)


def progress_total(config: EvaluateConfig) -> int:
    """Units reported to ``on_progress``: generated samples for the metrics plus one step per model."""
    return len(config.sources) * ((config.num_samples if config.wants_distribution else 0) + 1)


class _Progress:
    def __init__(self, total: int, on_progress: ProgressFn | None) -> None:
        self.total, self.done, self.on_progress, self.info = total, 0, on_progress, ""

    def tick(self, n: int) -> None:
        self.done += n
        if self.on_progress is not None:
            self.on_progress(min(self.done, self.total), self.total, self.info)


def measure_row(model: LoadedModel, plan: MetricPlan, dense: LoadedModel | None, config: EvaluateConfig,
                device: torch.device, progress: _Progress, test: TestImages | None = None) -> ModelRow:
    row = ModelRow(model.source, model.label, model.role)
    progress.info = model.label
    if test is not None:
        _img2img_measure(row, model, test, plan, dense, config, device, progress.tick)
    else:
        _distribution(row, model, plan, config, device, progress.tick)
        _similarity(row, model, dense, config, device)
    _cost(row, model, config, device)
    progress.tick(1)
    return row


# ---------------------------------------------------------------- report


DELTA_KEYS = ("fid", "kid_mean", "isc_mean", "precision", "recall", "psnr_gt", "ssim_gt", "parameters", "nonzeros", "macs_dense",
              "macs_effective", "file_size", "latency_ms", "throughput")


def _pct(value: float, ref: float) -> float | None:
    if ref == 0:
        return 0.0 if value == 0 else math.inf
    return 100.0 * (value - ref) / abs(ref)


def deltas(rows: list[ModelRow]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per row (but the first reference): ``{key: {value, reference, delta, pct}}`` vs the first reference."""
    if len(rows) < 2:
        return {}
    ref = rows[1].values()
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for i, row in enumerate(rows):
        if i == 1:
            continue
        vals = row.values()
        out[row.source if row.source not in out else f"{row.source}#{i}"] = {
            k: {"value": vals[k], "reference": ref[k], "delta": vals[k] - ref[k], "pct": _pct(vals[k], ref[k])}
            for k in DELTA_KEYS if vals.get(k) is not None and ref.get(k) is not None
        }
    return out


def _num(value: float | None, spec: str = ".4g") -> str:
    return "n/a" if value is None else format(value, spec)


def check_gates(config: EvaluateConfig, rows: list[ModelRow]) -> list[GateResult]:
    gates: list[GateResult] = []
    fid = rows[0].metrics.get("fid")
    if config.max_fid is not None:
        ok = fid is not None and fid <= config.max_fid
        gates.append(GateResult("--max-fid", config.max_fid, fid, ok, f"FID {_num(fid)} > --max-fid {config.max_fid:g}"))
    if config.max_fid_increase_pct is not None:
        ref = rows[1].metrics.get("fid")
        pct = _pct(fid, ref) if fid is not None and ref is not None else None
        ok = pct is not None and pct <= config.max_fid_increase_pct
        gates.append(GateResult("--max-fid-increase", config.max_fid_increase_pct, pct, ok,
                                f"FID {_num(fid)} is {_num(pct, '+.2f')}% vs the reference's {_num(ref)} "
                                f"(> --max-fid-increase {config.max_fid_increase_pct:g}%)"))
    if config.min_psnr is not None:
        psnr = rows[0].similarity.psnr if rows[0].similarity is not None else None
        ok = psnr is not None and psnr >= config.min_psnr
        gates.append(GateResult("--min-psnr", config.min_psnr, psnr, ok,
                                f"PSNR {_num(psnr)} dB < --min-psnr {config.min_psnr:g} dB"))
    return gates


def _settings(config: EvaluateConfig, plan: MetricPlan, device: torch.device) -> dict[str, Any]:
    return {"num_samples": config.num_samples, "batch_size": config.batch_size, "seed": config.seed,
            "device": str(device), "extractor": plan.extractor.name if plan.extractor else None,
            "real": plan.real_spec, "real_count": plan.real.count if plan.real else None,
            "metrics": [m for m in ("fid", "kid", "isc", "prc") if getattr(config, m)],
            "psnr": "dB over all pixels; 'inf' when the outputs are identical"}


@torch.no_grad()
def write_grid(config: EvaluateConfig, models: list[LoadedModel]) -> Path:
    from .imagegrid import save_grid

    info = models[0].info
    x = next(model_inputs(info, config.grid_columns, config.grid_columns, config.seed, resolve_device(config.device)))
    rows = [(m.label, m.bundle.generator(x).float().cpu()) for m in models]
    scale = max(1, min(8, 64 // max(1, info.output_shape[-1])))
    return save_grid(rows, config.samples_png, info.output_range, scale, force=config.force)


def _write_report(config: EvaluateConfig, report: EvaluateReport) -> None:
    from .io_utils import atomic_write_text

    if config.out is not None:
        atomic_write_text(Path(config.out), json.dumps(report.to_json(), indent=2) + "\n", force=config.force)


# ---------------------------------------------------------------- the one entry point


def evaluate(config: EvaluateConfig, on_progress: ProgressFn | None = None) -> EvaluateReport:
    """Measure every model of ``config``; writes ``--samples``/``--out`` when asked. Never raises for gates."""
    _check_outputs(config)
    early = _early_extractor_kwargs(config)
    device = resolve_device(config.device)
    roles = ["model"] + ["reference"] * (len(config.sources) - 1)
    models = [load_model(s, r, config, device) for s, r in zip(config.sources, roles)]
    _check_compatible(models)
    test = None
    if models[0].info.input_kind == "image" and config.pairs is not None:
        test = load_test_images(config, models[0])
    elif config.pairs is not None:
        raise InputError("--pairs is for image-to-image generators; this one takes noise")
    plan = plan_metrics(config, models[0].info, early, test)
    dense, note = (models[1], None) if len(models) > 1 else _teacher(config, models[0], device)
    if config.min_psnr is not None and dense is None:
        raise InputError(f"--min-psnr needs the dense model: pass --reference DENSE ({note})")
    progress = _Progress(progress_total(config), on_progress)
    rows = [measure_row(m, plan, dense, config, device, progress, test) for m in models]
    report = EvaluateReport(rows, deltas(rows), check_gates(config, rows), _settings(config, plan, device),
                            ([note] if note else []) + (test.notes if test is not None else []))
    if test is not None:
        report.settings.update({"pairs": test.spec, "pairs_kind": test.kind, "pairs_count": len(test.items),
                                "direction": config.direction,
                                "psnr_gt": "PSNR/SSIM of full-size outputs (clamped to the output range) vs ground truth"})
    if config.samples_png is not None and test is not None:
        report.settings["samples_png"] = str(write_img2img_grid(config, models, dense, test, device))
    elif config.samples_png is not None:
        shown = models + ([dense] if dense is not None and dense not in models else [])
        report.settings["samples_png"] = str(write_grid(config, shown))
    _write_report(config, report)
    return report
