"""`gancompress export [SOURCE] [-o FILE] [--push-to-hub OWNER/REPO]`: write the deployable generator."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .errors import handle_errors
from .options import (Arch, ArchKwargs, DArch, DArchKwargs, Encodings, Force, Json, OptSource, Quantize, Quiet, TrustPickle, flag,
                      load_options, output_option)
from .output import human_console, human_size, notice, print_json
from .stdio import emit_written, source_from_stdin

NoShrink = Annotated[bool, flag("--no-shrink", help="With --format onnx: export the masked dense graph even when whole filters are zero (by default they are removed).")]
Format = Annotated[str, typer.Option("--format", help="One of {choices:format}. sparse: smallest, exact; dense: plain "
                                     "safetensors; shrunk: pruned filters removed (a smaller, faster network); onnx: for ONNX runtimes.")]
Dtype = Annotated[Optional[str], typer.Option("--dtype", show_default=False, help="Cast floating tensors to one of {choices:dtype} (default: keep).")]
Out = Annotated[Optional[Path], output_option("<stem>.<format>.safetensors beside the input, in the current directory for hf:// and builtin:")]
PushTo = Annotated[Optional[str], typer.Option("--push-to-hub", help="Also upload the export and a generated model card to this "
                                               "Hub model repository (OWNER/REPO; token from HF_TOKEN or `hf auth login`).")]
Private = Annotated[bool, flag("--private", help="Create the Hub repository as private (with --push-to-hub).")]
Revision = Annotated[Optional[str], typer.Option("--revision", help="Push to this branch (created when missing; default main).")]
Report = Annotated[Optional[Path], typer.Option("--report", help="An `evaluate -o` JSON report to put in the model card.")]


def default_output(source: str, fmt: str) -> Path:
    """``<stem>.<format>.safetensors`` (``<stem>.onnx``) beside a local input, else in the current directory."""
    from ..io_utils import derived_output

    return derived_output(source, "onnx", "") if fmt == "onnx" else derived_output(source, fmt)


def _encodings(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


@handle_errors
def export(source: OptSource = None, output: Out = None, format: Format = "sparse", dtype: Dtype = None,
           quantize: Quantize = None, encodings: Encodings = None, push_to_hub: PushTo = None, private: Private = False, revision: Revision = None, report: Report = None,
           no_shrink: NoShrink = False, force: Force = False, json_out: Json = False, quiet: Quiet = False, trust_pickle: TrustPickle = False,
           arch: Arch = None, arch_kwargs: ArchKwargs = None, d_arch: DArch = None,
           d_arch_kwargs: DArchKwargs = None) -> None:
    """Export the (pruned) generator for deployment; load it back with gancompress.load(path).

    Prints the file written as the only stdout line (one JSON document with --json).

    Example: gancompress export pruned.safetensors -o generator.safetensors --format shrunk --dtype float16

    Example: gancompress export pruned.safetensors --quantize int8   (8-bit weights next to the sparsity mask)

    Example: gancompress export pruned.safetensors --push-to-hub you/digits-pruned --report report.json
    """
    from ..errors import InputError
    from ..export import ExportConfig
    from ..export.hub import PushConfig, export_and_push

    if push_to_hub is None:
        for option, given in (("--private", private), ("--revision", revision is not None), ("--report", report is not None)):
            if given:
                raise InputError(f"{option} only applies with --push-to-hub OWNER/REPO")
    push = PushConfig(push_to_hub, private=private, revision=revision, report=report) if push_to_hub else None
    if push is not None:  # a missing token or a bad repo name fails before stdin is read or anything is loaded
        from ..export.hub import check_push

        check_push(push)
    load = load_options(trust_pickle=trust_pickle, arch=arch, arch_kwargs=arch_kwargs, d_arch=d_arch,
                        d_arch_kwargs=d_arch_kwargs)
    source = source_from_stdin(source)
    config = ExportConfig(source=source, output=output or default_output(source, format), format=format, dtype=dtype,
                          quantize=quantize, encodings=_encodings(encodings), shrink=not no_shrink, force=force, trust_pickle=load.trust_pickle, arch=load.arch,
                          arch_kwargs=load.arch_kwargs, load=load)
    result = export_and_push(config, push)
    for note in result.get("notes") or ():
        notice(f"warning: {note}", quiet=quiet)
    if json_out:
        print_json(result)
        return
    if not quiet:
        _print(result)
    if result.get("hub"):
        notice(f"pushed to {result['hub']['hf_uri']} (commit {result['hub']['commit']})", quiet=quiet)
    emit_written(result["path"])


def _print(r: dict[str, Any]) -> None:
    console = human_console()
    kind = f"{r['dtype']}, weights {r['quantize']}" if r.get("quantize") else r["dtype"]
    console.print(f"wrote {r['path']} ({r['format']}, {kind}): {human_size(r['file_bytes'])}, "
                  f"{r['ratio']:.3f}x the dense float32 file ({human_size(r['dense_float32_bytes'])})", markup=False)
    console.print(f"  {r['parameters']:,} parameters, {r['nonzeros']:,} nonzeros; encodings "
                  + ", ".join(f"{k} {v}" for k, v in r["encodings"].items()), markup=False)
    if r.get("shrink"):
        s = r["shrink"]
        console.print(f"  widths {s['widths_before']} -> {s['widths_after']}", markup=False)
