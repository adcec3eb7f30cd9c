"""``gancompress evaluate``: quality, fidelity to the dense model and cost of generators side by side.

:func:`evaluate` loads every SOURCE (the reference is the first, or the first ``--reference``),
and for each one measures

- FID/KID/ISC/precision-recall against real data (or FID against a statistics file) through
  torch-fidelity (same seed, hence the same latents, for every model; the real statistics are
  computed once and cached);
- PSNR/SSIM/mean absolute difference (and LPIPS with ``lpips``) of its outputs against the
  dense model's on the same inputs: the reference, else the teacher recorded in the
  checkpoint's ``pruning.source`` metadata when it can be loaded, else skipped;
- parameters, nonzeros, dense and effective MACs, file size, and (``latency``) the latency and
  throughput per backend and batch size, each naming the runtime that measured it.

Gates (``max_fid``, ``max_fid_increase_pct`` vs the reference, ``min_psnr``) are evaluated on
every compared model; :meth:`EvaluateReport.raise_for_gates` raises
:class:`~gancompress.errors.GateFailed` (exit code 3) naming the failing numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import InputError, Interrupted
from ..progress import Event, OnEvent, ShouldStop
from ..formats.checkpoint import GanBundle
from ..devices import autocast_forward
from .config import EvaluateConfig, check_outputs, resolve_device, with_data_role
from .grids import fit_all, write_grid, write_img2img_grid
from .models import LoadedModel, TestImages, compared_models, model_inputs, teacher_model
from .plan import MetricPlan, early_extractor_kwargs, plan_metrics
from .reference import save_reference_stats
from .report import EvaluateReport, ModelRow, check_gates, deltas, write_report

LPIPS_SAMPLES = 1000  # LPIPS runs VGG16 per image: at most this many of the PSNR/SSIM inputs


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
    data = load_image_data(kind, str(config.data.pairs), info.input_shape[0], info.output_shape[0],
                           inputs=config.data.inputs, direction=config.models.load.direction, scale=scale)
    items = eval_pairs(data, info.output_range, input_multiple(model.bundle.g_spec))
    domain = [t for _, _, t in items] if kind != "unpaired" else [
        _to_range_batch(b, info.output_range) for b in data.b]
    return TestImages(kind, items, domain, str(config.data.pairs), data.notes)


def _to_range_batch(image: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    from ..data.images import to_range

    return to_range(image[None], value_range)


@torch.no_grad()
def _img2img_outputs(model: LoadedModel, test: TestImages, device: torch.device) -> list[torch.Tensor]:
    lo, hi = model.info.output_range
    return [model.bundle.generator(x.to(device)).float().clamp(lo, hi).cpu() for _, x, _ in test.items]


def _img2img_measure(row: ModelRow, model: LoadedModel, test: TestImages, plan: MetricPlan, dense: LoadedModel | None,
                     config: EvaluateConfig, device: torch.device, tick: Callable[[int], None]) -> None:
    """FID etc. of the outputs vs the target domain, PSNR/SSIM vs ground truth, fidelity to the dense model."""
    import torch_fidelity

    from ..metrics.fidelity import METRIC_KEYS, RealSet, _fidelity_kwargs
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
    if plan.lpips is not None and dense is not None and dense is not model:
        row.lpips = _mean_lpips(plan, zip(outputs, _img2img_outputs(dense, test, device)), model)
    if plan.extractor is None or not config.metrics.wants_distribution:
        return
    fake = RealSet.from_tensor(fit_all(outputs, model.info.output_shape[-1]), "outputs", (lo, hi))
    request = _request(config, plan, fake.count, device)
    if request.any:
        kwargs = _fidelity_kwargs(request, plan.real, plan.extractor, dict(plan.extractor_kwargs))
        kwargs.pop("input1_model_num_samples", None)
        Path(kwargs["cache_root"]).mkdir(parents=True, exist_ok=True)
        raw = torch_fidelity.calculate_metrics(input1=fake.dataset(plan.extractor.channels), **kwargs)
        row.metrics.update({METRIC_KEYS[k]: float(v) for k, v in raw.items() if k in METRIC_KEYS})
    if config.metrics.fid and plan.stats is not None:
        from ..metrics.fidelity import real_statistics
        from ..metrics.stats_file import frechet_distance

        generated = real_statistics(fake, plan.extractor, request, plan.extractor_kwargs, cache=False)
        row.metrics["fid"] = frechet_distance(generated, plan.stats)


# ---------------------------------------------------------------- measuring


def _cost(row: ModelRow, model: LoadedModel, config: EvaluateConfig, device: torch.device) -> None:
    from ..metrics.cost import count_macs, file_size, parameter_counts

    row.parameters, row.nonzeros = parameter_counts(model.bundle.generator)
    macs = count_macs(model.bundle.generator, model.info.input_shape)
    row.macs_dense, row.macs_effective = (macs.dense, macs.effective) if macs else (None, None)
    row.file_size = file_size(model.path)
    if config.latency is not None:
        _latency(row, model, config, device)


def _latency(row: ModelRow, model: LoadedModel, config: EvaluateConfig, device: torch.device) -> None:
    """Every backend at every batch size; the flat columns are the first measured backend's batch-1 latency
    and its best throughput."""
    from ..metrics.latency import measure_backends

    results = measure_backends(model.bundle.generator, model.info.input_shape, device, list(config.latency.backends),
                               list(config.latency.batch_sizes), seed=config.run.seed,
                               num_classes=model.info.num_classes)
    row.latency = [r.to_dict() for r in results]
    measured = [r for r in results if r.median_ms is not None]
    if measured:
        first = [r for r in measured if r.backend == measured[0].backend]
        row.latency_ms, row.throughput = first[0].median_ms, max(r.throughput for r in first)
        row.latency_runtime = first[0].runtime


def _similarity(row: ModelRow, model: LoadedModel, dense: LoadedModel | None, plan: MetricPlan,
                config: EvaluateConfig, device: torch.device) -> None:
    from ..metrics.similarity import compare_models

    if dense is None or dense is model:
        return
    lo, hi = model.info.output_range
    inputs = model_inputs(model.info, plan.num_samples, config.metrics.batch_size, config.run.seed, device)
    row.similarity = compare_models(model.bundle.generator, dense.bundle.generator, inputs, hi - lo)
    row.similarity_to = dense.source
    if plan.lpips is not None:
        n = min(plan.num_samples, LPIPS_SAMPLES)
        inputs = model_inputs(model.info, n, config.metrics.batch_size, config.run.seed, device)
        with torch.no_grad():
            pairs = ((model.bundle.generator(x), dense.bundle.generator(x)) for x in inputs)
            row.lpips = _mean_lpips(plan, pairs, model)


def _mean_lpips(plan: MetricPlan, pairs, model: LoadedModel) -> float:
    from ..metrics.lpips import mean_lpips

    return mean_lpips(plan.lpips, ((a.float().cpu(), b.float().cpu()) for a, b in pairs), model.info.output_range)


def _distribution(row: ModelRow, model: LoadedModel, plan: MetricPlan, config: EvaluateConfig,
                  device: torch.device, tick: Callable[[int], None]) -> None:
    from ..metrics.fidelity import GeneratorSampler, distribution_metrics, generated_statistics
    from ..metrics.stats_file import frechet_distance

    if plan.extractor is None or not config.metrics.wants_distribution:
        return
    request = _request(config, plan, plan.num_samples, device)
    sampler = GeneratorSampler(model.bundle.generator, model.info.input_shape, model.info.output_range, on_batch=tick,
                               num_classes=model.info.num_classes)
    if request.any:
        row.metrics = distribution_metrics(sampler, plan.real, plan.extractor, request, plan.extractor_kwargs)
    if config.metrics.fid and plan.stats is not None:
        generated = generated_statistics(sampler, plan.extractor, request, plan.extractor_kwargs)
        row.metrics["fid"] = frechet_distance(generated, plan.stats)


def _request(config: EvaluateConfig, plan: MetricPlan, count: int, device: torch.device) -> Any:
    """The distribution metrics of ``config`` on ``count`` samples (FID from features only without a stats file)."""
    from ..metrics.fidelity import MetricRequest

    m = config.metrics
    return MetricRequest(m.fid and plan.stats is None, m.kid, m.isc, m.prc, count, m.batch_size, config.run.seed,
                         str(device))


def progress_total(config: EvaluateConfig, num_samples: int | None = None) -> int:
    """Units reported to ``on_event``: generated samples for the metrics plus one step per model
    (``num_samples``: the resolved count, once the extractor is known)."""
    n = num_samples or config.metrics.num_samples or 0
    return len(config.models.all_sources) * ((n if config.metrics.wants_distribution else 0) + 1)


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
        _similarity(row, model, dense, plan, config, device)
    _cost(row, model, config, device)
    progress.tick(1)
    return row


# ---------------------------------------------------------------- report


def _settings(config: EvaluateConfig, plan: MetricPlan, device: torch.device,
              models: list[LoadedModel]) -> dict[str, Any]:
    ref = config.models.reference_index
    return {"num_samples": plan.num_samples, "batch_size": config.metrics.batch_size, "seed": config.run.seed,
            "truncation": config.metrics.truncation, "amp": config.run.amp,
            "truncation_w_avg": {m.label: m.w_avg for m in models if m.w_avg} or None,
            "device": str(device), "extractor": plan.extractor.name if plan.extractor else None,
            "real": plan.real_spec, "real_count": plan.real.count if plan.real else (
                plan.stats.meta.get("count") if plan.stats is not None else None),
            "metrics": [m for m in ("fid", "kid", "isc", "prc") if getattr(config.metrics, m)],
            "reference": config.models.all_sources[ref] if ref is not None else None,
            "latency_backends": list(config.latency.backends) if config.latency else None,
            "latency_batch_sizes": list(config.latency.batch_sizes) if config.latency else None,
            "lpips_samples": min(plan.num_samples, LPIPS_SAMPLES) if plan.lpips is not None else None,
            "psnr": "dB over all pixels; 'inf' when the outputs are identical"}


def _lpips_net(config: EvaluateConfig, dense: LoadedModel | None, device: torch.device) -> tuple[Any, str | None]:
    from ..metrics.lpips import LpipsUnavailable, load_lpips

    if not config.metrics.lpips:
        return None, None
    if dense is None:
        return None, "LPIPS skipped: it compares with the dense model; pass it as the first SOURCE or --reference"
    try:
        return load_lpips(device), None
    except LpipsUnavailable as exc:
        return None, f"LPIPS skipped: {exc}"


# ---------------------------------------------------------------- the one entry point


def evaluate(config: EvaluateConfig, on_event: OnEvent | None = None,
             should_stop: ShouldStop | None = None) -> EvaluateReport:
    """Measure every model of ``config``; writes ``--samples``/``--out``/``--save-stats`` when asked. Never raises
    for gates.

    ``on_event`` gets ``Event("evaluate", done, total, {"model": label})`` (units: generated samples
    and one per model); ``should_stop()`` turning true raises :class:`~gancompress.errors.Interrupted`.
    """
    check_outputs(config)
    early = early_extractor_kwargs(config)
    device = resolve_device(config.run.device)
    models = compared_models(config, device)
    config = with_data_role(config, models[0].info.input_kind)
    test = None
    if models[0].info.input_kind == "image" and config.data.pairs is not None:
        test = load_test_images(config, models[0])
    elif config.data.pairs is not None:
        raise InputError("--pairs (test images) is for image-to-image generators; this one takes noise: "
                         "pass its real images with --data")
    plan = plan_metrics(config, models[0].info, early, test)
    ref = config.models.reference_index
    dense, note = (models[ref], None) if ref is not None else teacher_model(config, models[0], device)
    if config.gates.min_psnr is not None and dense is None:
        raise InputError(f"--min-psnr needs the dense model: pass --reference DENSE ({note})")
    plan.lpips, lpips_note = _lpips_net(config, dense, device)
    notes = [n for n in (note, lpips_note) if n] + plan.notes
    saved = save_reference_stats(config, plan, models[0].info, device) if config.data.save_stats else None
    progress = _Progress(progress_total(config, plan.num_samples), on_event, should_stop)
    generators = [m.bundle.generator for m in models + ([dense] if dense is not None else [])]
    with autocast_forward(generators, config.run.amp, device):
        rows = [measure_row(m, plan, dense, config, device, progress, test) for m in models]
    report = EvaluateReport(rows, deltas(rows, ref), check_gates(config, rows, ref), _settings(config, plan, device, models),
                            notes + (test.notes if test is not None else []))
    if saved is not None:
        report.settings["saved_stats"] = saved
    _finish(report, config, models, dense, test, device)
    return report


def _finish(report: EvaluateReport, config: EvaluateConfig, models: list[LoadedModel], dense: LoadedModel | None,
            test: TestImages | None, device: torch.device) -> None:
    """Image-to-image settings, the sample grid and the JSON report."""
    if test is not None:
        report.settings.update({"pairs": test.spec, "pairs_kind": test.kind, "pairs_count": len(test.items),
                                "direction": config.models.load.direction,
                                "psnr_gt": "PSNR/SSIM of full-size outputs (clamped to the output range) vs ground truth"})
    if config.outputs.samples_png is not None and test is not None:
        report.settings["samples_png"] = str(write_img2img_grid(config, models, dense, test, device))
    elif config.outputs.samples_png is not None:
        shown = models + ([dense] if dense is not None and dense not in models else [])
        report.settings["samples_png"] = str(write_grid(config, shown))
    write_report(config, report)
