"""`gancompress inspect SOURCE`: what is inside a checkpoint."""
from __future__ import annotations

from typing import Any

from .errors import handle_errors
from .options import Arch, ArchKwargs, DArch, DArchKwargs, Json, OptSource, TrustPickle, load_options
from .output import human_size, print_json, report_console, table
from .stdio import source_from_stdin


@handle_errors
def inspect(source: OptSource = None, json_out: Json = False, trust_pickle: TrustPickle = False,
            arch: Arch = None, arch_kwargs: ArchKwargs = None, d_arch: DArch = None,
            d_arch_kwargs: DArchKwargs = None) -> None:
    """Show the layers, sparsity, structure and cost of a checkpoint's generator and discriminator.

    The table is the result: it goes to stdout, in a pipe too (one JSON document instead with --json).

    Example: gancompress inspect builtin:digits-dcgan --json

    Example: gancompress prune builtin:digits-dcgan -s 0.5 | gancompress inspect
    """
    from ..inspection import inspect_bundle, inspect_discriminator_only
    from ..loading import DiscriminatorOnly, load_bundle
    from ..sources import resolve

    source = source_from_stdin(source)
    options = load_options(trust_pickle=trust_pickle, arch=arch, arch_kwargs=arch_kwargs, d_arch=d_arch,
                           d_arch_kwargs=d_arch_kwargs)
    try:
        report = inspect_bundle(load_bundle(source, options), resolve(source))
    except DiscriminatorOnly as only:
        report = inspect_discriminator_only(only.spec, only.state_dict, source, resolve(source))
    if json_out:
        print_json(report)
    else:
        _print(report)


def _fmt(n: Any) -> str:
    return "?" if n is None else f"{n:,}"


def _print(report: dict[str, Any]) -> None:
    from rich.markup import escape

    console = report_console()
    for role in ("generator", "discriminator"):
        net = report[role]
        if net is None:
            continue
        quant = any(r.get("quantized") for r in net["layers"])
        rows = [[r["name"], r["type"], "x".join(map(str, r["shape"])), _fmt(r["params"]), f"{r['zeros_pct']:.1f}", r["structure"]]
                + ([r.get("quantized") or "float"] if quant else []) for r in net["layers"]]
        columns = ["layer", "type", "shape", "params", "zeros %", "structure"] + (["stored as"] if quant else [])
        console.print(table(f"{role}: {net['architecture']}", columns, rows))
        console.print(f"  parameters {_fmt(net['parameters'])}, nonzeros {_fmt(net['nonzeros'])} "
                      f"({net['sparsity_pct']:.1f}% sparse), dtype {net['dtype']}, MACs/sample {_fmt(net['macs_per_sample'])}")
        if net.get("truncation_w_avg"):
            console.print(f"  --truncation pulls w toward {escape(net['truncation_w_avg'])}")
    size = report["file_size"]
    if report.get("quantization"):
        q = report["quantization"]
        scales = ", ".join(f"{n} {kind}" for kind, n in q["scales"].items())
        console.print(f"  quantized {q['scheme']}: {q['weights']} weights as 8-bit codes ({scales} scales)")
    if report.get("role") == "discriminator":
        shape = report["discriminator"].get("input_shape")
        if shape:
            console.print(f"  input {'x'.join(map(str, shape))} assumed from the layers (a state dict does not record "
                          "strides); beside its generator it is checked on that generator's images")
        console.print(f"file size {human_size(size) if size else '-'}; this file holds only a discriminator "
                      "(no generator): to prune, finetune, evaluate or export, give the generator too")
        return
    console.print(f"file size {human_size(size) if size else '-'}; discriminator "
                  f"{'present' if report['has_discriminator'] else 'absent (finetune needs one: pass --discriminator)'}")
