"""`gancompress prune SOURCE --sparsity S --granularity G`: magnitude-prune the generator."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .errors import handle_errors
from .options import Arch, ArchKwargs, Force, Json, OptSource, Output, Quiet, TrustPickle
from .output import human_console, notice, print_json, table
from .stdio import emit_written, source_from_stdin

GRANULARITY_NAMES = ("element", "vector", "kernel", "filter", "channel", "block", "nm")


@handle_errors
def prune(
    source: OptSource = None,
    sparsity: Annotated[Optional[str], typer.Option("--sparsity", "-s", help="Fraction of prunable weights to zero, in [0, 1). Implied by --nm for nm.")] = None,
    granularity: Annotated[str, typer.Option("--granularity", "-g", help=f"One of: {', '.join(GRANULARITY_NAMES)}.")] = "element",
    scope: Annotated[str, typer.Option("--scope", help="layer (same sparsity per layer) or global (one threshold, per-layer normalised scores).")] = "layer",
    block: Annotated[str, typer.Option("--block", help="Tile size RxC for --granularity block.")] = "4x4",
    nm: Annotated[str, typer.Option("--nm", help="N:M pattern for --granularity nm.")] = "2:4",
    include: Annotated[Optional[list[str]], typer.Option("--include", help="Only prune layers whose name matches this glob (repeatable).")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option("--exclude", help="Never prune layers whose name matches this glob (repeatable).")] = None,
    prune_first_last: Annotated[bool, typer.Option("--prune-first-last", help="Also prune the first and last layers (kept dense by default).")] = False,
    coupled: Annotated[bool, typer.Option("--coupled", help="With --granularity filter, prune filters joined by residual additions together so export --format shrunk can remove them.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the per-layer plan; write nothing.")] = False,
    output: Output = None,
    force: Force = False,
    json_out: Json = False,
    quiet: Quiet = False,
    trust_pickle: TrustPickle = False,
    arch: Arch = None,
    arch_kwargs: ArchKwargs = None,
) -> None:
    """Prune the generator by weight magnitude and write a project checkpoint with its masks.

    Example: gancompress prune builtin:digits-dcgan --sparsity 0.9 --granularity block -o pruned.safetensors
    """
    from ..loading import LoadOptions, parse_arch_kwargs
    from ..prune import PruneConfig
    from ..pruning import PruneJob, prune_checkpoint

    source = source_from_stdin(source)
    config = PruneConfig(sparsity=_number(sparsity), granularity=granularity, scope=scope, block=block, nm=nm,
                         include=tuple(include or ()), exclude=tuple(exclude or ()), prune_first_last=prune_first_last,
                         coupled=coupled)
    load = LoadOptions(trust_pickle=trust_pickle, arch=arch, arch_kwargs=parse_arch_kwargs(arch_kwargs))
    result = prune_checkpoint(PruneJob(source, config, output, force, dry_run, load))
    for message in result.warnings:
        notice(f"warning: {message}", quiet=quiet)
    if json_out:
        print_json(result.to_json())
        return
    if not quiet or dry_run:
        _print_layers(result, dry_run)
    if result.output is not None:
        emit_written(result.output)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        from ..errors import InputError

        raise InputError(f"--sparsity {text!r} is not a number; give a fraction such as 0.9") from None


def _print_layers(result, dry_run: bool) -> None:
    rows = [[r["name"], r["type"], "x".join(map(str, r["shape"])), f"{r['params']:,}",
             "pruned" if r["pruned"] else f"dense ({r['dense']})", f"{100 * r['achieved']:.1f}"]
            for r in result.layers]
    title = "prune plan (dry run: nothing written)" if dry_run else "pruned generator"
    console = human_console()
    console.print(table(title, ["layer", "type", "shape", "params", "policy", "achieved %"], rows))
    s = result.sparsity
    console.print(f"sparsity: {100 * s['all']:.2f}% of all conv/linear weights (target {100 * s['target']:.2f}%), "
                  f"{100 * s['pruned']:.1f}% of the pruned layers")
