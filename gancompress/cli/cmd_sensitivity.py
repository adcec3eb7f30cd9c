"""`gancompress sensitivity SOURCE`: prune one layer at a time, measure the output change, write a plan."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import handle_errors
from .options import Data, Device, Granularity, Json, OptSource, Quiet, Seed, Sparsities, output_option
from .output import human_console, notice, print_json, table
from .stdio import emit_written, source_from_stdin

Output = Annotated[Optional[Path], output_option("<stem>.plan.json beside the input")]
Samples = Annotated[int, typer.Option("--num-samples", "-n", help="Inputs on which each variant's output is compared with the dense one (PSNR).")]
MinPsnr = Annotated[float, typer.Option("--min-psnr", help="The plan gives each layer the highest probe sparsity whose PSNR stays at or above this (dB).")]
Plot = Annotated[Optional[Path], typer.Option("--plot", metavar="PNG", help="Also write PSNR vs sparsity per layer here (default: beside the plan).")]


@handle_errors
def sensitivity(source: OptSource = None, sparsity: Sparsities = "0.5,0.75,0.9", granularity: Granularity = "element",
                num_samples: Samples = 64, min_psnr: MinPsnr = 30.0, data: Data = None, output: Output = None,
                plot: Plot = None, seed: Seed = 0, device: Device = "cpu", force: Annotated[bool, typer.Option("--force", help="Overwrite an existing plan.", show_default=False)] = False,
                json_out: Json = False, quiet: Quiet = False) -> None:
    """Prune each layer alone at a few sparsities, measure how the output changes (PSNR; FID with --data), and write a per-layer plan.

    `prune --plan FILE` and `finetune --plan FILE` apply the plan (with --sparsity: scaled to that overall target).

    Example: gancompress sensitivity builtin:digits-dcgan -o digits.plan.json && gancompress prune builtin:digits-dcgan --plan digits.plan.json -s 0.9
    """
    from ..errors import InputError
    from ..io_utils import atomic_write_text, check_writable, derived_output
    from ..prune.plan import plan_document
    from ..sensitivity import SensitivityConfig, sensitivity as run, write_plot

    source = source_from_stdin(source)
    try:
        probes = tuple(float(s) for s in sparsity.split(",") if s.strip())
    except ValueError:
        raise InputError(f"--sparsity {sparsity!r}: give comma-separated fractions, e.g. 0.5,0.75,0.9") from None
    config = SensitivityConfig(source, probes, granularity, num_samples, min_psnr, data, seed=seed, device=device)
    output = output or derived_output(source, "plan", ".json")
    plot = plot or output.with_suffix(".png")
    check_writable(output, force=force, inputs=(Path(source),))
    result = run(config)
    doc = plan_document(result.plan, made_by="gancompress sensitivity", **result.settings)
    atomic_write_text(output, json.dumps(doc, indent=2) + "\n", force=force)
    write_plot(result, plot)
    if json_out:
        print_json({**result.to_json(), "output": str(output), "plot": str(plot)})
        return
    if not quiet:
        _print(result)
    notice(f"plot: {plot}", quiet=quiet)
    emit_written(output)


def _print(result) -> None:
    probes = result.settings["sparsities"]
    layers = list(dict.fromkeys(r["layer"] for r in result.rows))
    by = {(r["layer"], r["sparsity"]): r for r in result.rows}
    cells = lambda r: f"{r['psnr']:.1f}" + (f" / {r['fid']:.1f}" if r.get("fid") is not None else "")  # noqa: E731
    rows = [[name, f"{by[(name, probes[0])]['params']:,}", *[cells(by[(name, s)]) for s in probes],
             f"{100 * result.plan[name]:g}%"] for name in layers]
    head = ["layer", "weights", *[f"{100 * s:g}% PSNR" + (" / FID" if result.dense_fid is not None else "") for s in probes], "plan"]
    human_console().print(table("per-layer sensitivity (only that layer pruned)", head, rows))
