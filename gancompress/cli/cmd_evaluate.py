"""`gancompress evaluate SOURCE... [--reference SRC] [--label NAME ...]`: quality, fidelity to the dense model and cost."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .errors import handle_errors
from .options import (Amp, Arch, Extractor, ArchKwargs, DArch, DArchKwargs, Device, Direction, Force, Inputs, Json, ProgressInterval,
                      Quiet, Seed, TrustPickle, flag, load_options)
from . import progress as cli_progress
from .output import human_size, print_json, report_console
from .stdio import source_from_stdin

Sources = Annotated[Optional[list[str]], typer.Argument(metavar="SOURCE", show_default=False, help="Checkpoints to compare side by side (file, directory, hf://..., builtin:..., any export, .onnx); the first is the reference unless --reference is given; '-' or none reads one path from stdin.")]
Reference = Annotated[Optional[list[str]], typer.Option("--reference", "-r", metavar="SOURCE", help="The dense model to compare with, added after the SOURCEs (repeatable; the first is the reference for deltas, --max-fid-increase and PSNR/SSIM/LPIPS).")]
Label = Annotated[Optional[list[str]], typer.Option("--label", metavar="NAME", help="A name for each source, in order (the SOURCEs, then --reference); default: the file name with as many folders as tell them apart.")]
EvalData = Annotated[Optional[str], typer.Option("--data", metavar="DATA", help="Real data for FID/KID/PRC: a folder of images, builtin:digits (the default for 16x16 one-channel models), a torch-fidelity data set (cifar10-train, cifar10-val, stl10-train, ...) or a statistics .npz with mu/sigma (pytorch-fid/clean-fid; FID only). Image-to-image: the test images (pix2pix: side-by-side A|B images or A/ and B/ folders; CycleGAN: A/ and B/; super-resolution: high-resolution images).")]
Real = Annotated[Optional[str], typer.Option("--real", hidden=True, help="Real images for FID/KID/PRC (the target domain for an image-to-image model); --data for a noise-input model.")]
Pairs = Annotated[Optional[str], typer.Option("--pairs", hidden=True, help="Image-to-image test images: --data for an image-to-image model.")]
SaveStats = Annotated[Optional[Path], typer.Option("--save-stats", metavar="FILE.npz", help="Also write the real data's FID statistics (mu, sigma: pytorch-fid's .npz) with this extractor, for --data FILE.npz later.")]
InceptionWeights = Annotated[Optional[str], typer.Option("--inception-weights", metavar="FILE", help="Path to torch-fidelity's weights-inception-2015-12-05-6726825d.pth (also GANCOMPRESS_INCEPTION_WEIGHTS); default: the torch hub cache, downloaded there when missing.")]
Samples = Annotated[Optional[Path], typer.Option("--samples", metavar="PNG", help="Write a PNG grid: one labelled row per model, the same input in every column.")]
Out = Annotated[Optional[Path], typer.Option("--output", "-o", "--out", metavar="FILE", help="Also write the JSON report to this file.")]
Markdown = Annotated[Optional[Path], typer.Option("--markdown", metavar="FILE", help="Also write the report as Markdown (metrics, deltas vs the reference, latency, gates, sample grid path) for CI.")]
NumSamples = Annotated[Optional[int], typer.Option("--num-samples", "-n", show_default=False, help="Generated samples per model (default: 10,000 with inception, 2,000 with digits; published FIDs use 50,000).")]
BatchSizes = Annotated[str, typer.Option("--batch-size", metavar="N[,N...]", help="Batch size of the metrics; with --latency, the batch sizes to time (batch 1 always), e.g. 1,16; the metrics use the largest.")]
Backend = Annotated[str, typer.Option("--backend", metavar="LIST", help="Latency runtimes, comma-separated: auto (the model's own: eager, or onnxruntime for .onnx), eager, compile (torch.compile), onnxruntime, or all.")]

Fid = Annotated[bool, flag("--fid", help="Frechet distance to the real data.")]
Kid = Annotated[bool, flag("--kid", help="Kernel (MMD) distance to the real data.")]
Isc = Annotated[bool, flag("--isc", help="Inception-style score from the extractor's logits.")]
Prc = Annotated[bool, flag("--prc", help="Precision and recall against the real data.")]
Lpips = Annotated[bool, flag("--lpips", help="LPIPS (VGG16) to the reference model, when its weights are in the torch hub cache or downloadable.")]
Latency = Annotated[bool, flag("--latency", help="Measure latency and throughput per --backend at each --batch-size.")]
MaxFid = Annotated[Optional[float], typer.Option("--max-fid", metavar="X", help="Gate: fail (exit 3) when a compared model's FID is above X.")]
MaxFidIncrease = Annotated[Optional[float], typer.Option("--max-fid-increase", metavar="PCT", help="Gate: fail when a compared model's FID rises more than PCT percent over the reference's.")]
MinPsnr = Annotated[Optional[float], typer.Option("--min-psnr", metavar="DB", help="Gate: fail when a compared model's PSNR to the dense model is below DB decibels.")]
Truncation = Annotated[float, typer.Option("--truncation", metavar="PSI", help="StyleGAN2: sample with truncation psi in [0, 1] (FID is measured at this psi; 1 = none).")]


@handle_errors
def evaluate(
    sources: Sources = None,
    reference: Reference = None,
    label: Label = None,
    data: EvalData = None,
    fid: Fid = False, kid: Kid = False, isc: Isc = False, prc: Prc = False, lpips: Lpips = False,
    extractor: Extractor = None,
    inception_weights: InceptionWeights = None,
    save_stats: SaveStats = None,
    num_samples: NumSamples = None, batch_size: BatchSizes = "64", seed: Seed = 0, device: Device = "auto",
    amp: Amp = "none", latency: Latency = False, backend: Backend = "auto",
    samples: Samples = None,
    json_out: Json = False,
    out: Out = None,
    markdown: Markdown = None,
    inputs: Inputs = None, direction: Direction = "AtoB",
    truncation: Truncation = 1.0,
    max_fid: MaxFid = None, max_fid_increase: MaxFidIncrease = None, min_psnr: MinPsnr = None,
    force: Force = False, trust_pickle: TrustPickle = False, quiet: Quiet = False,
    arch: Arch = None, arch_kwargs: ArchKwargs = None, d_arch: DArch = None, d_arch_kwargs: DArchKwargs = None,
    real: Real = None, pairs: Pairs = None, progress_interval: ProgressInterval = cli_progress.DEFAULT_INTERVAL,
) -> None:
    """Measure FID/KID/ISC/PRC, fidelity to the dense model (PSNR/SSIM/LPIPS) and cost of generators side by side.

    The report table is printed on stdout (one JSON document instead with --json); a failed gate exits 3 after
    the reports are written.

    Example: gancompress evaluate dense.pt pruned.safetensors recovered.safetensors --label dense --label pruned --label recovered --fid --data cifar10-train -n 50000

    Example: gancompress evaluate pruned.safetensors --reference builtin:digits-dcgan --fid --latency --batch-size 1,16 --backend all --samples grid.png --max-fid-increase 10

    Example: gancompress prune builtin:digits-dcgan -s 0.5 | gancompress evaluate --fid -o report.json --markdown report.md
    """
    from ..evaluate import EvaluateConfig, evaluate as run_evaluate
    from ..evaluate.config import LatencyConfig

    load = load_options(trust_pickle=trust_pickle, arch=arch, arch_kwargs=arch_kwargs, d_arch=d_arch,
                        d_arch_kwargs=d_arch_kwargs)
    sizes = _int_list("--batch-size", batch_size)
    lat = LatencyConfig(tuple(backend.split(",")), tuple(sizes)) if latency else None
    sources = [source_from_stdin(s) for s in sources] if sources else [source_from_stdin(None)]
    config = EvaluateConfig.from_options(
        sources=sources, references=reference or [], labels=label or [], real=real, data=data, fid=fid, kid=kid,
        isc=isc, prc=prc, lpips=lpips, extractor=extractor, num_samples=num_samples, batch_size=max(sizes), seed=seed,
        device=device, latency=lat, samples_png=samples, out=out, save_stats=save_stats, force=force, max_fid=max_fid,
        max_fid_increase_pct=max_fid_increase, min_psnr=min_psnr, inception_weights=inception_weights,
        pairs=pairs, inputs=inputs, direction=direction, load=load, truncation=truncation, amp=amp,
    )
    _check_markdown(markdown, config)
    with cli_progress.stop_signals() as should_stop, cli_progress.EventBars(
            quiet=quiet or json_out, labels={"evaluate": "evaluating"}, info=lambda e: e.info.get("model", ""),
            interval=progress_interval) as bars:
        report = run_evaluate(config, on_event=bars, should_stop=should_stop)
    _write_and_print(report, markdown, force=force, json_out=json_out)


def _write_and_print(report: Any, markdown: Path | None, *, force: bool, json_out: bool) -> None:
    """The Markdown report when asked, the table (or JSON) on stdout, then the gates' exit code."""
    if markdown is not None:
        from ..io_utils import atomic_write_text
        from ..formats.report import report_markdown

        atomic_write_text(markdown, report_markdown(report.to_json()), force=force)
    if json_out:
        print_json(report.to_json())
    else:
        _print(report)
    report.raise_for_gates()


def _int_list(option: str, text: str) -> list[int]:
    from ..errors import InputError

    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"{option} {text!r}: give whole numbers separated by commas, e.g. 1,16") from None
    if not values:
        raise InputError(f"{option} is empty; give a number, or several separated by commas")
    return values


def _check_markdown(markdown: Path | None, config: Any) -> None:
    """--markdown is checked with the other outputs, before any model is loaded."""
    from ..errors import InputError
    from ..io_utils import check_writable

    if markdown is None:
        return
    named = (("-o/--output", config.outputs.out), ("--samples", config.outputs.samples_png),
             ("--save-stats", config.data.save_stats))
    for option, other in named:
        if other is not None and Path(other).resolve() == Path(markdown).resolve():
            raise InputError(f"--markdown and {option} name the same file; choose two different files")
    inputs = tuple(Path(s) for s in config.models.all_sources if "://" not in s and not s.startswith("builtin:"))
    check_writable(Path(markdown), force=config.outputs.force, inputs=inputs)


# (key, header, lower is better, format)
COLUMNS: list[tuple[str, str, bool, str]] = [
    ("fid", "FID", True, ".3f"), ("kid_mean", "KID", True, ".4f"), ("isc_mean", "ISC", False, ".3f"),
    ("precision", "precision", False, ".3f"), ("recall", "recall", False, ".3f"),
    ("psnr_gt", "PSNR-GT dB", False, ".2f"), ("ssim_gt", "SSIM-GT", False, ".4f"),
    ("psnr", "PSNR dB", False, ".2f"), ("ssim", "SSIM", False, ".4f"), ("lpips", "LPIPS", True, ".4f"),
    ("parameters", "params", True, ","),
    ("nonzeros", "nonzeros", True, ","), ("macs_dense", "MACs", True, ","), ("macs_effective", "eff. MACs", True, ","),
    ("file_size", "size", True, "size"), ("latency_ms", "latency ms", True, ".3f"),
    ("throughput", "samples/s", False, ",.0f"),
]


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return human_size(value) if spec == "size" else format(value, spec)


def _best(values: list[Any], lower: bool) -> Any:
    present = [v for v in values if v is not None]
    if len(present) < 2 or len(set(present)) == 1:
        return None
    return min(present) if lower else max(present)


def _cell(value: Any, spec: str, best: Any) -> str:
    text = _fmt(value, spec)
    return f"[bold green]{text}[/]" if best is not None and value == best else text


def _delta_cell(delta: dict | None) -> str:
    if not delta or delta.get("pct") is None or math.isinf(delta["pct"]):
        return ""
    return f"[dim]{delta['pct']:+.1f}%[/]"


def _table(report: Any):
    from rich.markup import escape
    from rich.table import Table

    rows = [r.to_dict() for r in report.rows]
    columns = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    table = Table(title="evaluate (best per column in green; dim rows: change vs the reference)", title_justify="left")
    table.add_column("model", no_wrap=True, min_width=max(len(_shown(r)) for r in report.rows))
    for _, header, _, _ in columns:
        table.add_column(header, justify="right")
    for row, model_row in zip(rows, report.rows):
        table.add_row(escape(_shown(model_row)), *[_cell(row.get(k), spec, _best([r.get(k) for r in rows], low))
                                                   for k, _, low, spec in columns])
        delta = report.deltas.get(model_row.label)
        if delta:
            table.add_row("[dim]  vs reference[/]", *[_delta_cell(delta.get(k)) for k, _, _, _ in columns])
    return table


def _shown(row: Any) -> str:
    return row.label if row.role == "model" else f"{row.label} ({row.role})"


def _latency_table(report: Any):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="latency per runtime (ms per call, median)", title_justify="left")
    for header in ("model", "backend", "runtime", "batch", "ms", "samples/s"):
        table.add_column(header, no_wrap=header != "runtime", justify="right" if header in ("batch", "ms", "samples/s") else "left")
    for row in report.rows:
        for r in row.latency:
            measured = r["median_ms"] is not None
            table.add_row(escape(_shown(row)), r["backend"], escape(r["runtime"] if measured else f"not measured: {r['note']}"),
                          str(r["batch_size"]), f"{r['median_ms']:.3f}" if measured else "-",
                          f"{r['throughput']:,.0f}" if measured else "-")
    return table


def _print(report: Any) -> None:
    from rich.markup import escape

    console = report_console()
    console.print(_table(report))
    if report.settings.get("truncation", 1.0) != 1.0:
        console.print(f"samples and metrics at truncation psi {report.settings['truncation']:g}")
        for label, center in (report.settings.get("truncation_w_avg") or {}).items():
            console.print(f"  {escape(label)}: w_avg is {escape(center)}")
    if any(row.latency for row in report.rows):
        console.print(_latency_table(report))
    for note in report.notes:
        console.print(f"note: {escape(note)}")
    for gate in report.gates:
        console.print(f"gate {gate.option} {gate.threshold:g}: {'passed' if gate.passed else 'FAILED'}")
