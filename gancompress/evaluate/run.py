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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..data.images import BUILTIN_DATA
from ..errors import InputError, Interrupted
from ..registry import unknown_choice
from ..progress import Event, OnEvent, ShouldStop
from ..formats.checkpoint import GanBundle
from ..generation import GeneratorInfo
from .config import EvaluateConfig, check_outputs, resolve_device, with_data_role
from .grids import fit_all, write_grid, write_img2img_grid
from .models import LoadedModel, TestImages, check_compatible, load_model, model_inputs, teacher_model
from .report import EvaluateReport, ModelRow, check_gates, deltas, write_report

DIGITS_SHAPE = (1, 16, 16)


# ---------------------------------------------------------------- setup


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
    from ..metrics.extractors import ExtractorOptions, get_extractor

    return get_extractor(config.extractor).fidelity_kwargs(ExtractorOptions(config.inception_weights))


def _is_digits(info: GeneratorInfo) -> bool:
    return tuple(info.output_shape) == DIGITS_SHAPE


def plan_metrics(config: EvaluateConfig, info: GeneratorInfo, early: dict[str, Any] | None,
                 test: "TestImages | None" = None) -> MetricPlan:
    from ..metrics.extractors import ExtractorOptions, get_extractor

    if not config.wants_distribution:
        return MetricPlan()
    if info.input_kind != "noise":
        return _plan_img2img(config, info, early, test)
    spec = config.real or ("builtin:digits" if _is_digits(info) else None)
    if config.needs_real and spec is None:
        raise InputError(
            f"--fid/--kid/--prc need real images for this {'x'.join(map(str, info.output_shape))} generator: "
            "pass --data FOLDER (a folder of images; builtin:digits only suits 16x16 one-channel digits models)")
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
    from ..data.images import image_files, load_real
    from ..metrics.fidelity import RealSet

    channels, size = info.output_shape[0], info.output_shape[-1]
    if spec == "builtin:digits":
        from ..data.digits import N_DIGITS

        count, identity = N_DIGITS, spec
    elif spec.startswith("builtin:"):
        raise unknown_choice("builtin data set", spec, BUILTIN_DATA)
    else:
        folder = Path(spec).expanduser()
        if not folder.is_dir():
            raise InputError(f"--data {spec}: not a folder; give a folder of images or builtin:digits")
        files = image_files(folder)
        count, identity = len(files), _folder_identity(files, folder)
    count = min(count, limit) if limit else count

    def load() -> torch.Tensor:
        return load_real(spec, size=size, channels=channels, value_range=info.output_range, limit=count)

    return RealSet(load, count, f"{identity}|{size}|{channels}", tuple(info.output_range))


# ---------------------------------------------------------------- image-to-image test data


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
        from ..archs.pix2pix import patchgan_conditional

        g_kw = bundle.g_spec.kwargs
        if not patchgan_conditional(d.kwargs, g_kw.get("input_nc", 3), g_kw.get("output_nc", 3)):
            return "unpaired"
    return "paired"


def load_test_images(config: EvaluateConfig, model: LoadedModel) -> TestImages:
    from ..data.pairs import eval_pairs, input_multiple, load_image_data

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
    from ..data.images import to_range

    return to_range(image[None], value_range)


def _plan_img2img(config: EvaluateConfig, info: GeneratorInfo, early: dict[str, Any] | None,
                  test: TestImages | None) -> MetricPlan:
    import hashlib

    from ..metrics.extractors import ExtractorOptions, get_extractor
    from ..metrics.fidelity import RealSet

    if test is None:
        raise InputError("FID/KID/ISC/PRC of an image-to-image generator need its test images: pass --data FOLDER "
                         "(pix2pix: A|B side-by-side images or A/ and B/; CycleGAN: A/ and B/; SR: high-resolution images)")
    size = info.output_shape[-1]
    if config.real:
        real = real_set(config.real, info, config.real_limit) if config.needs_real else None
        spec = config.real
    else:
        targets = fit_all(test.domain[:config.real_limit] if config.real_limit else test.domain, size)
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

    from ..metrics.fidelity import METRIC_KEYS, MetricRequest, RealSet, _fidelity_kwargs
    from ..metrics.similarity import SimilarityAccumulator

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
    fake = RealSet.from_tensor(fit_all(outputs, model.info.output_shape[-1]), "outputs", (lo, hi))
    request = MetricRequest(config.fid, config.kid, config.isc, config.prc, fake.count, config.batch_size,
                            config.seed, str(device))
    kwargs = _fidelity_kwargs(request, plan.real, plan.extractor, dict(plan.extractor_kwargs))
    kwargs.pop("input1_model_num_samples", None)
    Path(kwargs["cache_root"]).mkdir(parents=True, exist_ok=True)
    raw = torch_fidelity.calculate_metrics(input1=fake.dataset(plan.extractor.channels), **kwargs)
    row.metrics.update({METRIC_KEYS[k]: float(v) for k, v in raw.items() if k in METRIC_KEYS})


# ---------------------------------------------------------------- measuring


def _cost(row: ModelRow, model: LoadedModel, config: EvaluateConfig, device: torch.device) -> None:
    from ..metrics.cost import count_macs, file_size, measure_latency, parameter_counts

    row.parameters, row.nonzeros = parameter_counts(model.bundle.generator)
    macs = count_macs(model.bundle.generator, model.info.input_shape)
    row.macs_dense, row.macs_effective = (macs.dense, macs.effective) if macs else (None, None)
    row.file_size = file_size(model.path)
    if config.latency:
        lat = measure_latency(model.bundle.generator, model.info.input_shape, device, config.batch_size, seed=config.seed)
        row.latency_ms, row.throughput = lat.median_ms, lat.throughput


def _similarity(row: ModelRow, model: LoadedModel, dense: LoadedModel | None, config: EvaluateConfig,
                device: torch.device) -> None:
    from ..metrics.similarity import compare_models

    if dense is None or dense is model:
        return
    lo, hi = model.info.output_range
    inputs = model_inputs(model.info, config.num_samples, config.batch_size, config.seed, device)
    row.similarity = compare_models(model.bundle.generator, dense.bundle.generator, inputs, hi - lo)
    row.similarity_to = dense.source


def _distribution(row: ModelRow, model: LoadedModel, plan: MetricPlan, config: EvaluateConfig,
                  device: torch.device, tick: Callable[[int], None]) -> None:
    from ..metrics.fidelity import GeneratorSampler, MetricRequest, distribution_metrics

    if plan.extractor is None:
        return
    request = MetricRequest(config.fid, config.kid, config.isc, config.prc, config.num_samples,
                            config.batch_size, config.seed, str(device))
    sampler = GeneratorSampler(model.bundle.generator, model.info.input_shape, model.info.output_range, on_batch=tick)
    row.metrics = distribution_metrics(sampler, plan.real, plan.extractor, request, plan.extractor_kwargs)


def progress_total(config: EvaluateConfig) -> int:
    """Units reported to ``on_event``: generated samples for the metrics plus one step per model."""
    return len(config.sources) * ((config.num_samples if config.wants_distribution else 0) + 1)


class _Progress:
    """Counts done units; reports ``Event("evaluate", done, total, {"model": label})``; asks ``should_stop``."""

    def __init__(self, total: int, on_event: OnEvent | None, should_stop: ShouldStop | None) -> None:
        self.total, self.done, self.info = total, 0, ""
        self.on_event, self.should_stop = on_event, should_stop

    def tick(self, n: int) -> None:
        self.done += n
        if self.on_event is not None:
            self.on_event(Event("evaluate", min(self.done, self.total), self.total, {"model": self.info}))
        if self.should_stop is not None and self.should_stop():
            raise Interrupted(f"evaluation stopped while measuring {self.info}; nothing was written")


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


def _settings(config: EvaluateConfig, plan: MetricPlan, device: torch.device) -> dict[str, Any]:
    return {"num_samples": config.num_samples, "batch_size": config.batch_size, "seed": config.seed,
            "device": str(device), "extractor": plan.extractor.name if plan.extractor else None,
            "real": plan.real_spec, "real_count": plan.real.count if plan.real else None,
            "metrics": [m for m in ("fid", "kid", "isc", "prc") if getattr(config, m)],
            "psnr": "dB over all pixels; 'inf' when the outputs are identical"}


# ---------------------------------------------------------------- the one entry point


def evaluate(config: EvaluateConfig, on_event: OnEvent | None = None,
             should_stop: ShouldStop | None = None) -> EvaluateReport:
    """Measure every model of ``config``; writes ``--samples``/``--out`` when asked. Never raises for gates.

    ``on_event`` gets ``Event("evaluate", done, total, {"model": label})`` (units: generated samples
    and one per model); ``should_stop()`` turning true raises :class:`~gancompress.errors.Interrupted`.
    """
    check_outputs(config)
    early = _early_extractor_kwargs(config)
    device = resolve_device(config.device)
    roles = ["model"] + ["reference"] * (len(config.sources) - 1)
    models = [load_model(s, r, config, device) for s, r in zip(config.sources, roles)]
    check_compatible(models)
    config = with_data_role(config, models[0].info.input_kind)
    test = None
    if models[0].info.input_kind == "image" and config.pairs is not None:
        test = load_test_images(config, models[0])
    elif config.pairs is not None:
        raise InputError("--pairs (test images) is for image-to-image generators; this one takes noise: "
                         "pass its real images with --data")
    plan = plan_metrics(config, models[0].info, early, test)
    dense, note = (models[1], None) if len(models) > 1 else teacher_model(config, models[0], device)
    if config.min_psnr is not None and dense is None:
        raise InputError(f"--min-psnr needs the dense model: pass --reference DENSE ({note})")
    progress = _Progress(progress_total(config), on_event, should_stop)
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
    write_report(config, report)
    return report
