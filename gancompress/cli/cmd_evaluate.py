"""`gancompress evaluate SOURCE [--reference SRC ...]`: quality, fidelity to the dense model and cost."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .errors import handle_errors
from .options import (Arch, ArchKwargs, BatchSize, DArch, DArchKwargs, Data, Device, Direction, Force, Inputs, Json,
                      NumSamples, OptSource, Quiet, Seed, TrustPickle, flag, load_options)
from .output import human_size, print_json, report_console
from . import progress as cli_progress
from .stdio import source_from_stdin

Reference = Annotated[Optional[list[str]], typer.Option("--reference", "-r", metavar="SOURCE", help="A model to compare with (repeatable); the first one is the dense baseline for deltas, --max-fid-increase and PSNR/SSIM.")]
Real = Annotated[Optional[str], typer.Option("--real", hidden=True, help="Real images for FID/KID/PRC (the target domain for an image-to-image model); --data for a noise-input model.")]
Pairs = Annotated[Optional[str], typer.Option("--pairs", hidden=True, help="Image-to-image test images: --data for an image-to-image model.")]
Extractor = Annotated[Optional[str], typer.Option("--extractor", show_default=False, help="Feature extractor: {choices:extractor} (default: digits, bundled and offline, for 16x16 one-channel models, else inception, which needs its weights file).")]
InceptionWeights = Annotated[Optional[str], typer.Option("--inception-weights", metavar="FILE", help="Path to torch-fidelity's weights-inception-2015-12-05-6726825d.pth (also GANCOMPRESS_INCEPTION_WEIGHTS).")]
Samples = Annotated[Optional[Path], typer.Option("--samples", metavar="PNG", help="Write a PNG grid: one labelled row per model, the same input in every column.")]
Out = Annotated[Optional[Path], typer.Option("--output", "-o", "--out", metavar="FILE", help="Also write the JSON report to this file.")]
Markdown = Annotated[Optional[Path], typer.Option("--markdown", metavar="FILE", help="Also write the report as Markdown (metrics, deltas vs the reference, gates, sample grid path) for CI.")]

Fid = Annotated[bool, flag("--fid", help="Frechet distance to the real data.")]
Kid = Annotated[bool, flag("--kid", help="Kernel (MMD) distance to the real data.")]
Isc = Annotated[bool, flag("--isc", help="Inception-style score from the extractor's logits.")]
Prc = Annotated[bool, flag("--prc", help="Precision and recall against the real data.")]
Latency = Annotated[bool, flag("--latency", help="Measure median batch-1 latency and throughput at --batch-size.")]
MaxFid = Annotated[Optional[float], typer.Option("--max-fid", metavar="X", help="Gate: fail (exit 3) when the model's FID is above X.")]
MaxFidIncrease = Annotated[Optional[float], typer.Option("--max-fid-increase", metavar="PCT", help="Gate: fail when FID rises more than PCT percent over the first --reference.")]
MinPsnr = Annotated[Optional[float], typer.Option("--min-psnr", metavar="DB", help="Gate: fail when PSNR to the dense model is below DB decibels.")]


@handle_errors
def evaluate(
    source: OptSource = None,
    reference: Reference = None,
    data: Data = None,
    fid: Fid = False, kid: Kid = False, isc: Isc = False, prc: Prc = False,
    extractor: Extractor = None,
    inception_weights: InceptionWeights = None,
    num_samples: NumSamples = 2000, batch_size: BatchSize = 64, seed: Seed = 0, device: Device = "auto",
    latency: Latency = False,
    samples: Samples = None,
    json_out: Json = False,
    out: Out = None,
    markdown: Markdown = None,
    inputs: Inputs = None, direction: Direction = "AtoB",
    max_fid: MaxFid = None, max_fid_increase: MaxFidIncrease = None, min_psnr: MinPsnr = None,
    force: Force = False, trust_pickle: TrustPickle = False, quiet: Quiet = False,
    arch: Arch = None, arch_kwargs: ArchKwargs = None, d_arch: DArch = None, d_arch_kwargs: DArchKwargs = None,
    real: Real = None, pairs: Pairs = None,
) -> None:
    """Measure FID/KID/ISC/PRC, fidelity to the dense model (PSNR/SSIM) and cost of a generator.

    The report table is printed on stdout (one JSON document instead with --json); a failed gate exits 3 after
    the reports are written.

    Example: gancompress evaluate pruned.safetensors --reference builtin:digits-dcgan --fid --latency --samples grid.png --max-fid-increase 10

    Example: gancompress prune builtin:digits-dcgan -s 0.5 | gancompress evaluate --fid -o report.json --markdown report.md
    """
    from ..evaluate import EvaluateConfig, evaluate as run_evaluate

    load = load_options(trust_pickle=trust_pickle, arch=arch, arch_kwargs=arch_kwargs, d_arch=d_arch,
                        d_arch_kwargs=d_arch_kwargs)
    source = source_from_stdin(source)
    config = EvaluateConfig(
        sources=[source, *(reference or [])], real=real, fid=fid, kid=kid, isc=isc, prc=prc, extractor=extractor,
        num_samples=num_samples, batch_size=batch_size, seed=seed, device=device, latency=latency,
        samples_png=samples, out=out, force=force, max_fid=max_fid, max_fid_increase_pct=max_fid_increase,
        min_psnr=min_psnr, inception_weights=inception_weights, trust_pickle=trust_pickle,
        pairs=pairs, inputs=inputs, direction=direction, data=data, load=load,
    )
    _check_markdown(markdown, config)
    with cli_progress.stop_signals() as should_stop, cli_progress.EventBars(
            quiet=quiet or json_out, labels={"evaluate": "evaluating"}, info=lambda e: e.info.get("model", "")) as bars:
        report = run_evaluate(config, on_event=bars, should_stop=should_stop)
    if markdown is not None:
        from ..io_utils import atomic_write_text
        from ..formats.report import report_markdown

        atomic_write_text(markdown, report_markdown(report.to_json()), force=force)
    if json_out:
        print_json(report.to_json())
    else:
        _print(report)
    report.raise_for_gates()


def _check_markdown(markdown: Path | None, config: Any) -> None:
    """--markdown is checked with the other outputs, before any model is loaded."""
    from ..errors import InputError
    from ..io_utils import check_writable

    if markdown is None:
        return
    for option, other in (("-o/--output", config.out), ("--samples", config.samples_png)):
        if other is not None and Path(other).resolve() == Path(markdown).resolve():
            raise InputError(f"--markdown and {option} name the same file; choose two different files")
    inputs = tuple(Path(s) for s in config.sources if "://" not in s and not s.startswith("builtin:"))
    check_writable(Path(markdown), force=config.force, inputs=inputs)


# (key, header, lower is better, format)
COLUMNS: list[tuple[str, str, bool, str]] = [
    ("fid", "FID", True, ".3f"), ("kid_mean", "KID", True, ".4f"), ("isc_mean", "ISC", False, ".3f"),
    ("precision", "precision", False, ".3f"), ("recall", "recall", False, ".3f"),
    ("psnr_gt", "PSNR-GT dB", False, ".2f"), ("ssim_gt", "SSIM-GT", False, ".4f"),
    ("psnr", "PSNR dB", False, ".2f"), ("ssim", "SSIM", False, ".4f"), ("parameters", "params", True, ","),
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
    table = Table(title="evaluate (best per column in green; dim rows: change vs the first reference)", title_justify="left")
    table.add_column("model")
    for _, header, _, _ in columns:
        table.add_column(header, justify="right")
    deltas = list(report.deltas.values())
    for i, (row, model_row) in enumerate(zip(rows, report.rows)):
        table.add_row(escape(model_row.label), *[_cell(row.get(k), spec, _best([r.get(k) for r in rows], low))
                                                 for k, _, low, spec in columns])
        delta = deltas[0 if i == 0 else i - 1] if i != 1 and deltas else None
        if delta:
            table.add_row("[dim]  vs reference[/]", *[_delta_cell(delta.get(k)) for k, _, _, _ in columns])
    return table


def _print(report: Any) -> None:
    from rich.markup import escape

    console = report_console()
    console.print(_table(report))
    for note in report.notes:
        console.print(f"note: {escape(note)}")
    for gate in report.gates:
        console.print(f"gate {gate.option} {gate.threshold:g}: {'passed' if gate.passed else 'FAILED'}")
