"""`gancompress export SOURCE -o FILE`: write the deployable generator."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .errors import handle_errors
from .options import Arch, ArchKwargs, Force, Json, Source, TrustPickle
from .output import human_console, human_size, print_json

Format = Annotated[str, typer.Option("--format", help="sparse (default; smallest, exact), dense (plain safetensors), "
                                     "shrunk (pruned filters removed: a smaller, faster network) or onnx.")]
Dtype = Annotated[Optional[str], typer.Option("--dtype", help="Cast floating tensors: float32, float16 or bfloat16 (default: keep).")]
Out = Annotated[Path, typer.Option("--output", "-o", help="File to write (never overwrites without --force).")]


@handle_errors
def export(source: Source, output: Out, format: Format = "sparse", dtype: Dtype = None, force: Force = False,
           json_out: Json = False, trust_pickle: TrustPickle = False, arch: Arch = None,
           arch_kwargs: ArchKwargs = None) -> None:
    """Export the (pruned) generator for deployment; load it back with gancompress.api.load(path).

    Example: gancompress export pruned.safetensors -o generator.safetensors --format shrunk --dtype float16
    """
    from ..export import ExportConfig
    from ..export import export as run_export
    from ..loading import parse_arch_kwargs

    config = ExportConfig(source=source, output=output, format=format, dtype=dtype, force=force,
                          trust_pickle=trust_pickle, arch=arch, arch_kwargs=parse_arch_kwargs(arch_kwargs))
    result = run_export(config).to_dict()
    if json_out:
        print_json(result)
    else:
        _print(result)


def _print(r: dict[str, Any]) -> None:
    console = human_console()
    console.print(f"wrote {r['path']} ({r['format']}, {r['dtype']}): {human_size(r['file_bytes'])}, "
                  f"{r['ratio']:.3f}x the dense float32 file ({human_size(r['dense_float32_bytes'])})", markup=False)
    console.print(f"  {r['parameters']:,} parameters, {r['nonzeros']:,} nonzeros; encodings "
                  + ", ".join(f"{k} {v}" for k, v in r["encodings"].items()), markup=False)
    if r.get("shrink"):
        s = r["shrink"]
        console.print(f"  widths {s['widths_before']} -> {s['widths_after']}", markup=False)
