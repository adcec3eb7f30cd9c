"""Wall time and peak memory of inspect, prune and export as the checkpoint grows (50M to 1B parameters).

The model is a PyTorch-examples DCGAN generator widened until it holds the asked number of
parameters (random weights, dense, float32, saved as a plain ``torch.save`` state dict). Each
step runs ``gancompress`` in a fresh process; its peak RSS comes from ``os.wait4``. The
interpreter's baseline is measured the same way and subtracted, so ``peak / file`` is what the step
itself holds per byte of checkpoint. The baseline is ``import torch, gancompress`` and the CLI plus
one convolution on the meta device: every command that reads a checkpoint runs the architecture
detection on meta tensors, and torch's meta kernels import sympy and the symbolic-shape machinery
on first use (~155 MiB, the same at every size). The table also shows the ratio over the imports
alone (``imports only``), so that fixed cost is visible rather than hidden.
Targets (issue 22): peak at most 2x the file above the baseline for every step, time per GB
flat across sizes, inspect of the dense 1B checkpoint under a minute on 2 cores.

    python benchmarks/scale.py [--sizes 50M,250M,1B] [--steps inspect,prune-element,...] [--json out.json]

The 1B size needs ~20 GiB of disk for the checkpoint plus its outputs, and ~9 GiB of memory for
its largest step (2x the 3.8 GiB file plus the baseline, the target); leave it out
(``--sizes 50M,250M``) on machines with less than 16 GiB.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import ROOT, build_builtin, run_process  # noqa: E402  (benchmarks/ is not a package)

SIZES = {"50M": 50e6, "250M": 250e6, "1B": 1e9}
STEPS = {  # name: gancompress arguments after the source; {tmp} is the work folder
    "inspect": ["inspect", "{src}", "--json"],
    "prune-element": ["prune", "{src}", "-s", "0.9", "-g", "element", "-o", "{tmp}/element.safetensors"],
    "prune-block": ["prune", "{src}", "-s", "0.9", "-g", "block", "--block", "4x4", "-o", "{tmp}/block.safetensors"],
    "prune-filter": ["prune", "{src}", "-s", "0.5", "-g", "filter", "-o", "{tmp}/filter.safetensors"],
    "export-sparse": ["export", "{tmp}/{pruned}.safetensors", "--format", "sparse", "-o", "{tmp}/e.sparse.safetensors"],
    "export-dense": ["export", "{tmp}/{pruned}.safetensors", "--format", "dense", "-o", "{tmp}/e.dense.safetensors"],
    "export-shrunk": ["export", "{tmp}/filter.safetensors", "--format", "shrunk", "-o", "{tmp}/f.shrunk.safetensors"],
}
_GIB = 1 << 30


def widths_for(params: float) -> list[int]:
    """DCGAN widths (nz 100, 3 channels out) with about ``params`` parameters (~672 ngf^2)."""
    ngf = max(8, round((params / 672) ** 0.5))
    return [100, ngf * 8, ngf * 4, ngf * 2, ngf, 3]


def make_checkpoint(params: float, path: Path) -> tuple[int, int]:
    model = build_builtin("dcgan-g", widths=widths_for(params))
    count = sum(p.numel() for p in model.parameters())
    torch.save(model.state_dict(), path)
    del model
    return count, path.stat().st_size


_IMPORTS = "import torch, gancompress, gancompress.cli.main"
_META_CONV = "; torch.nn.functional.conv_transpose2d(torch.zeros(1, 4, 2, 2, device='meta'), torch.zeros(4, 2, 3, 3, device='meta'))"


def baseline_mib(meta: bool = True) -> float:
    """Peak RSS of the CLI doing no model work: the imports, and (``meta``) one meta-device convolution,
    whose first call imports torch's symbolic-shape machinery as the architecture detection does."""
    return run_process([sys.executable, "-c", _IMPORTS + (_META_CONV if meta else "")])[1]


def measure(step: str, src: Path, tmp: Path, pruned: str) -> tuple[float, float]:
    args = [a.format(src=src, tmp=tmp, pruned=pruned) for a in STEPS[step]]
    seconds, peak, _ = run_process([sys.executable, "-m", "gancompress", *args, "--quiet", "--force"]
                                   if args[0] != "inspect" else [sys.executable, "-m", "gancompress", *args])
    return seconds, peak


def run_size(label: str, steps: list[str], base: tuple[float, float], pruned: str = "element") -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(dir=ROOT) as d:
        tmp = Path(d)
        src = tmp / "generator.pth"
        params, size = make_checkpoint(SIZES[label], src)
        for step in steps:
            try:
                seconds, peak = measure(step, src, tmp, pruned)
            except RuntimeError as exc:
                rows.append({"size": label, "step": step, "error": str(exc)[-200:]})
                continue
            rows.append({"size": label, "params": params, "file_bytes": size, "step": _label(step, pruned),
                         "seconds": round(seconds, 1), "s_per_gb": round(seconds / (size / 1e9), 1),
                         "peak_mib": round(peak), "peak_over_file": round((peak - base[0]) * (1 << 20) / size, 2),
                         "peak_over_file_imports_only": round((peak - base[1]) * (1 << 20) / size, 2)})
            print(f"[{label} {step}: {seconds:.0f} s, peak {peak:.0f} MiB]", file=sys.stderr)
    return rows


def _label(step: str, pruned: str) -> str:
    return f"{step} ({pruned}-pruned)" if step in ("export-sparse", "export-dense") else step


def print_table(rows: list[dict], base: tuple[float, float]) -> None:
    print(f"\nbaseline: {base[0]:.0f} MiB peak RSS (imports and torch's meta kernels; imports only: {base[1]:.0f} MiB); "
          "target: (peak - baseline) <= 2x file\n")
    print("| size | params | file | step | wall s | s per GB | peak MiB | (peak - base) / file | imports only | target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['size']} | | | {r['step']} | failed: {r['error']} | | | | | |")
            continue
        ok = r["peak_over_file"] <= 2 and (r["step"] != "inspect" or r["size"] != "1B" or r["seconds"] < 60)
        print(f"| {r['size']} | {r['params'] / 1e6:.0f}M | {r['file_bytes'] / _GIB:.2f} GiB | {r['step']} | "
              f"{r['seconds']:.1f} | {r['s_per_gb']:.1f} | {r['peak_mib']:,} | {r['peak_over_file']:.2f}x | "
              f"{r['peak_over_file_imports_only']:.2f}x | "
              f"{'met' if ok else 'MISSED'} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50M,250M,1B", help=f"comma list of {', '.join(SIZES)}")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma list of {', '.join(STEPS)}")
    ap.add_argument("--json", type=Path, help="also write the measurements as JSON here")
    ap.add_argument("--export-from", choices=["element", "block"], default="element",
                    help="which pruned file export-sparse and export-dense read (the prune step that makes it must run)")
    args = ap.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    steps = [s for s in args.steps.split(",") if s]
    bad = sorted(set(sizes) - set(SIZES)) + sorted(set(steps) - set(STEPS))
    if bad:
        ap.error(f"unknown size or step: {', '.join(bad)}")
    base = (baseline_mib(), baseline_mib(meta=False))
    rows = [row for label in sizes for row in run_size(label, steps, base, args.export_from)]
    print_table(rows, base)
    if args.json:
        args.json.write_text(json.dumps({"baseline_mib": base[0], "imports_mib": base[1], "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
