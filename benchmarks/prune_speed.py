"""Speed and peak memory of mask computation on a ~50M-parameter generator-like stack.

Each case runs in a fresh subprocess: build the model, reset the kernel's peak-RSS counter
(``/proc/self/clear_refs`` = 5, Linux; else fall back to a ``ru_maxrss`` delta), time
``compute_masks`` at 90% sparsity (layer scope; element also global), and read the peak RSS
above the post-build baseline. Prints one markdown table; ``--json PATH`` also writes JSON.
``--clock cpu`` times the process's CPU time instead of the wall clock: with ``--threads 1``
it is what an idle machine's wall clock would read, and it stays put on a shared machine.

    python benchmarks/prune_speed.py [--json out.json] [--scale 0.25] [--threads 1] [--clock cpu]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

CASES = [("element", "layer"), ("element", "global"), ("vector", "layer"), ("kernel", "layer"),
         ("filter", "layer"), ("channel", "layer"), ("block", "layer"), ("nm", "layer")]
FAST = {"element", "kernel", "filter", "block", "nm"}  # target: under 2 s each
_MIB = 1 << 20
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def build_model(scale: float = 1.0):
    """Linear -> ConvTranspose -> 3x3 convs; about ``50M * scale**2`` parameters."""
    import torch
    from torch import nn

    c = max(8, int(1024 * scale))
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(c // 2, c * 16), nn.Unflatten(1, (c, 4, 4)),
        nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(c // 2, c, 3, padding=1), nn.ReLU(),
        *[m for _ in range(3) for m in (nn.Conv2d(c, c, 3, padding=1), nn.ReLU())],
        nn.Conv2d(c, 16, 3, padding=1),
    )


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(granularity: str, scope: str, scale: float, threads: int, clock: str = "wall") -> dict:
    """Run one case in this process and return its measurements (after a tiny warm-up run)."""
    import torch

    from gancompress.prune import PruneConfig, achieved_sparsity, compute_masks

    if threads:
        torch.set_num_threads(threads)
    cfg = PruneConfig(None if granularity == "nm" else 0.9, granularity=granularity, scope=scope,
                      prune_first_last=True)
    compute_masks(build_model(0.02), cfg)  # one-time library initialisation is not timed
    model = build_model(scale)
    params = sum(p.numel() for p in model.parameters() if p.dim() > 1)
    base_kib = _status_kib("VmRSS")
    exact = _reset_peak() and base_kib is not None
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = CLOCKS[clock]()
    masks = compute_masks(model, cfg)
    seconds = CLOCKS[clock]() - t0
    if exact:
        extra_kib = _status_kib("VmHWM") - base_kib
    else:
        extra_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss0
    model_mb = params * 4 / _MIB
    return {"granularity": granularity, "scope": scope, "seconds": round(seconds, 3),
            "peak_extra_mb": round(extra_kib / 1024, 1), "model_mb": round(model_mb, 1),
            "extra_vs_model": round(extra_kib / 1024 / model_mb, 2), "params": params,
            "achieved": round(achieved_sparsity(model, masks)["all"], 4),  # of ALL prunable weights
            "threads": torch.get_num_threads(), "peak_method": "VmHWM" if exact else "ru_maxrss", "clock": clock}


def _row(r: dict) -> str:
    ok = r["extra_vs_model"] < 2 and (r["granularity"] not in FAST or r["scope"] != "layer" or r["seconds"] < 2)
    return (f"| {r['granularity']} | {r['scope']} | {r['seconds']:.2f} | {r['peak_extra_mb']:.0f} | "
            f"{r['extra_vs_model']:.2f}x | {r['achieved']:.4f} | {'yes' if ok else 'NO'} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--scale", type=float, default=1.0, help="channel scale (1.0 = ~50M params)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                    help="wall clock, or the process's CPU time (steadier on a shared machine, with --threads 1)")
    ap.add_argument("--child", nargs=2, metavar=("GRANULARITY", "SCOPE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.scale, args.threads, args.clock)))
        return 0
    root = str(Path(__file__).resolve().parents[1])
    results = []
    for gran, scope in CASES:
        cmd = [sys.executable, __file__, "--scale", str(args.scale), "--threads", str(args.threads), "--clock", args.clock]
        out = subprocess.run(cmd + ["--child", gran, scope],
                             capture_output=True, text=True, check=True, cwd=root,
                             env={**__import__("os").environ, "PYTHONPATH": root})
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    r0 = results[0]
    print(f"model: {r0['params'] / 1e6:.1f}M prunable params ({r0['model_mb']:.0f} MB fp32), "
          f"{r0['threads']} torch threads, {r0['clock']} clock, peak via {r0['peak_method']}, sparsity 0.9 (nm: 2:4)\n")
    print("| granularity | scope | seconds | peak extra MB | extra / model | achieved | meets target |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(_row(r))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
