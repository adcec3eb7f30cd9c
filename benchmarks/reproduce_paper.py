#!/usr/bin/env python
"""Reproduce the shape of Yu & Pool (NeurIPS 2020)'s tables on the bundled digits GAN.

Sections (every cell: one-shot magnitude prune of the bundled dense GAN to an OVERALL sparsity,
the tiny output layer dense; recovery for the same step budget; FID with the digits extractor
on the same latents; mean and sample std over seeds):

  a  FID at 0/25/50/75/90% element sparsity after the default recovery (the paper's Table 2)
  b  at 50% and 90%: self-supervised vs finetune vs distill vs none (the paper's Table 1), and
     distill-adv (ours)
  c  element vs filter pruning at equal sparsity, default recovery (the paper's Section 6)
  d  every method, hybrid and distill-adv included, at 50/75/90%
  e  per-layer allocation at 90% element sparsity, default recovery: uniform (the same sparsity
     in every pruned layer), global magnitude, LAMP (Lee et al., ICLR 2021), ERK
  f  quantization at 90% element sparsity: the sparse float32 file, + int8 and + fp8 exports of
     the same model, and recovery with --quantize-aware int8 / fp8; file size against the dense
     float32 file and FID against the float recovered model (``benchmarks/quantization.py``;
     its own table, printed after the main one)

The budget defaults to 10% of the steps the bundled GAN was trained for (its recorded
``best_step``), the paper's "about 10% of the original training". Cells are shared between
sections and recorded as they finish (``gancompress.sweep``), so an interrupted run resumes,
and ``--shard K/N`` lets N processes share one output folder (run them, then once more
without ``--shard`` to print the table).

    python benchmarks/reproduce_paper.py --quick            # 2 seeds, 2,000 samples, reduced grid
    python benchmarks/reproduce_paper.py                    # 3 seeds, 5,000 samples, every section

Prints one markdown table and writes ``<out>/benchmark.json``, ``benchmark.md`` and
``benchmark_fid.png``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SOURCE, DATA = "builtin:digits-dcgan", "builtin:digits"
BUDGET_FRACTION = 0.10

FULL = {
    "a": {"sparsities": (0.25, 0.5, 0.75, 0.9), "granularities": ("element",), "methods": None},
    "b": {"sparsities": (0.5, 0.9), "granularities": ("element",),
          "methods": ("distill-adv", "self-supervised", "finetune", "distill", "none")},
    "c": {"sparsities": (0.25, 0.5, 0.75, 0.9), "granularities": ("element", "filter"), "methods": None},
    "d": {"sparsities": (0.5, 0.75, 0.9), "granularities": ("element",),
          "methods": ("distill-adv", "hybrid", "self-supervised", "finetune", "distill", "none")},
    "e": {"sparsities": (0.9,), "granularities": ("element",), "methods": None,
          "allocations": ("uniform", "global", "lamp", "erk")},
}
QUICK = {
    "a": {"sparsities": (0.5, 0.9), "granularities": ("element",), "methods": None},
    "b": {"sparsities": (0.9,), "granularities": ("element",),
          "methods": ("distill-adv", "self-supervised", "finetune", "distill", "none")},
    "c": {"sparsities": (0.9,), "granularities": ("element", "filter"), "methods": None},
    "d": {"sparsities": (0.9,), "granularities": ("element",), "methods": ("distill-adv", "hybrid", "self-supervised", "distill")},
    "e": {"sparsities": (0.9,), "granularities": ("element",), "methods": None,
          "allocations": ("uniform", "global", "lamp", "erk")},
}
TITLES = {"a": "a: sparsity sweep, default recovery (Table 2 analog)",
          "b": "b: recovery methods (Table 1 analog)",
          "c": "c: element vs filter granularity (Section 6 analog)",
          "d": "d: every method incl. hybrid",
          "e": "e: per-layer allocation at 90% element",
          "f": "f: 8-bit weights at 90% element (file size vs dense float32, FID vs the float recovered model)"}


def _quantization(seeds: tuple[int, ...], steps: int, samples: int, out: Path, threads: int) -> str:
    """Section f: benchmarks/quantization.py for these seeds, steps and samples; its markdown table."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import quantization

    quantization.main(["--seeds", ",".join(map(str, seeds)), "--steps", str(steps), "--samples", str(samples),
                       "--out", str(out), "--threads", str(threads)])
    return (out / "quantization.md").read_text()


def _key(c: dict) -> str:
    return f"{c['sparsity']}|{c['granularity']}|{c.get('allocation', 'uniform')}|{c['method']}|{c['seed']}"


def bundled_training_steps() -> int:
    from gancompress.loading import load_bundle

    prov = load_bundle(SOURCE).meta.get("provenance", {})
    return int(prov.get("best_step") or prov.get("steps"))


def main(argv: list[str] | None = None) -> int:
    from gancompress.finetune.defaults import (DEFAULT_ADV_WEIGHT, DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE_HYBRID, DEFAULT_LR_D,
                                               DEFAULT_LR_G, DEFAULT_LR_SCHEDULE, DEFAULT_METHOD, DEFAULT_MU, DEFAULT_SCHEDULE,
                                               LR_SCHEDULES, SCHEDULES)

    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--quick", action="store_true", help="2 seeds, 2,000 samples per FID, the reduced grid")
    p.add_argument("--sections", default="abcdef", help="which sections to run (default abcdef)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2; --quick 0,1)")
    p.add_argument("--steps", type=int, default=None, help=f"recovery steps (default {BUDGET_FRACTION * 100:.0f}%% of the bundled GAN's training steps)")
    p.add_argument("--samples", type=int, default=None, help="samples per FID (default 5000; --quick 2000)")
    p.add_argument("--lr-g", type=float, default=DEFAULT_LR_G)
    p.add_argument("--lr-d", type=float, default=DEFAULT_LR_D,
                   help="D's rate for every method (default 2e-4, as the README's tables were measured; gancompress itself "
                        "gives hybrid 2e-5)")
    p.add_argument("--lr-schedule", default=DEFAULT_LR_SCHEDULE, choices=LR_SCHEDULES)
    p.add_argument("--mu", type=float, default=10.0,
                   help="hybrid's weight of the L1 to the teacher (default 10, as the README's tables were measured; "
                        f"gancompress itself gives hybrid {DEFAULT_MU:g})")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help=f"images per step for every method (default {DEFAULT_BATCH_SIZE}, as the README's tables were measured; "
                        f"gancompress itself gives hybrid {DEFAULT_BATCH_SIZE_HYBRID})")
    p.add_argument("--adv-weight", type=float, default=DEFAULT_ADV_WEIGHT, help="distill-adv's weight of the GAN loss")
    p.add_argument("--schedule", default=DEFAULT_SCHEDULE, choices=SCHEDULES)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is often fastest on a shared CPU)")
    p.add_argument("--shard", default=None, help="K/N: run only every N-th cell starting at K (several processes, one --out)")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: tabulate every cell recorded in --out (for the chosen --seeds) in one table")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/reproduce[-quick], git-ignored)")
    args = p.parse_args(argv)

    import torch

    from gancompress.sweep import SweepConfig, plot, summarise, sweep

    torch.set_num_threads(args.threads)
    grid = QUICK if args.quick else FULL
    seeds = tuple(int(s) for s in (args.seeds or ("0,1" if args.quick else "0,1,2")).split(","))
    trained = bundled_training_steps()
    steps = args.steps or round(BUDGET_FRACTION * trained)
    samples = args.samples or (2000 if args.quick else 5000)
    out = args.out or REPO / "runs" / ("reproduce-quick" if args.quick else "reproduce")
    shard = tuple(int(v) for v in args.shard.split("/")) if args.shard else (0, 1)
    common = dict(source=SOURCE, data=DATA, out_dir=out, seeds=seeds, steps=steps, num_samples=samples,
                  lr_g=args.lr_g, lr_d=args.lr_d, lr_schedule=args.lr_schedule, mu=args.mu, adv_weight=args.adv_weight,
                  batch_size=args.batch_size,
                  schedule=args.schedule,
                  device=args.device,
                  keep_checkpoints=False)
    started = time.perf_counter()

    def progress(event) -> None:
        info = event.info
        if event.stage == "sweep" and info.get("event") == "cell-done":
            r = info["record"]
            print(f"  {info['cell']}: FID {r['fid']:.2f} ({r['seconds']:.0f} s)", file=sys.stderr, flush=True)

    sections, cells, dense = {}, {}, None
    if args.report_only:
        from gancompress.sweep import _recorded_cells

        state = json.loads((out / "sweep.json").read_text())
        dense = state["dense"]
        recorded = [c for c in _recorded_cells(SweepConfig.from_options(**common)).values() if c["seed"] in seeds]
        cells = {_key(c): c for c in recorded}
        sections["all"] = summarise(recorded, dense)
    quant_text = ""
    for name in ("" if args.report_only else args.sections):
        if name == "f":
            quant_text = _quantization(seeds, steps, samples, out / "quantization", args.threads)
            continue
        spec = grid[name]
        cfg = SweepConfig.from_options(sparsities=spec["sparsities"], granularities=spec["granularities"],
                                       allocations=spec.get("allocations", ("uniform",)),
                          methods=spec["methods"] or (DEFAULT_METHOD,), **common)
        print(f"section {TITLES[name]}: {len(cfg.cells())} cells", file=sys.stderr, flush=True)
        result = sweep(cfg, on_event=progress, shard=shard)
        dense = result.dense
        sections[name] = summarise(result.cells, dense)
        cells.update({_key(c): c for c in result.cells})
    if dense is None:  # only section f ran: its own table is the report
        print(quant_text)
        return 0

    md = [f"Bundled GAN ({SOURCE}, trained {trained} steps), recovery budget {steps} steps "
          f"({steps / trained:.0%} of training), seeds {list(seeds)}, {samples:,} samples per FID, "
          f"lr_g {args.lr_g:g} ({args.lr_schedule}), lr_d {args.lr_d:g}, mu {args.mu:g}, adv weight {args.adv_weight:g}, {args.schedule} pruning; FID mean ± std over seeds.", "",
          "| section | granularity | allocation | method | target | achieved | FID | x dense | PSNR dB | nonzeros | n |",
          "|---|---|---|---|---|---|---|---|---|---|---|",
          f"| - | dense | - | - | 0% | 0.0% | {dense['fid']:.2f} | 1.00 | - | {int(dense['nonzeros']):,} | 1 |"]
    for name, table in sections.items():
        for r in sorted(table, key=lambda r: (r["granularity"], r.get("allocation", "uniform"), r["sparsity"], r["method"])):
            md.append(f"| {name} | {r['granularity']} | {r.get('allocation', 'uniform')} | {r['method']} | {100 * r['sparsity']:g}% | "
                      f"{100 * r['achieved_sparsity']:.1f}% | {r['fid']:.2f} ± {r['fid_std']:.2f} | {r['fid_ratio']:.2f} | "
                      f"{r['psnr']:.2f} | {int(r['nonzeros']):,} | {len(r['seeds'])} |")
    text = "\n".join(md) + "\n" + (f"\n{TITLES['f']}\n\n{quant_text}" if quant_text else "")
    print(text)
    all_rows = summarise(list(cells.values()), dense)
    doc = {"source": SOURCE, "trained_steps": trained, "steps": steps, "seeds": list(seeds), "samples": samples,
           "lr_g": args.lr_g, "lr_schedule": args.lr_schedule, "lr_d": args.lr_d, "mu": args.mu, "adv_weight": args.adv_weight,
           "schedule": args.schedule, "quick": args.quick,
           "dense": dense, "sections": sections, "all": all_rows, "cells": list(cells.values()),
           "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__}
    (out / "benchmark.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "benchmark.md").write_text(text)
    plot(all_rows, dense, out / "benchmark_fid.png", f"digits DCGAN, {steps}-step recovery")
    print(f"wrote {out / 'benchmark.md'}, {out / 'benchmark.json'}, {out / 'benchmark_fid.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
