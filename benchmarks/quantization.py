#!/usr/bin/env python
"""Quantization next to pruning on the bundled digits GAN: file size and FID of 8-bit exports.

At 90% element sparsity (the reproduction's setting: overall sparsity, the tiny output layer
dense, distill-adv recovery with AGP for 10% of the training steps), per seed:

  float      the recovered model, sparse float32 export (the control the 8-bit rows are divided by)
  int8, fp8  the same model exported with --quantize (post-training quantization)
  QAT int8, QAT fp8  recovered with --quantize-aware SCHEME, exported with --quantize SCHEME

and the dense model's own dense float32 export (the yardstick for file sizes). FID with the
digits extractor on the same latents for every model; "x float" is each seed's FID divided by
the float recovered model's FID of the same seed, then averaged. Targets (issue 24): sparse +
int8 file <= 0.05x the dense float32 file; FID within 1.05x of the float recovered model.

    python benchmarks/quantization.py --seeds 0 --samples 5000          # one seed
    python benchmarks/quantization.py                                   # 3 seeds (0,1,2), 5,000 samples
    python benchmarks/quantization.py --seeds 1 --out runs/q1 &         # one process per seed, then
    python benchmarks/quantization.py --seeds 0,1 --merge runs/q1       # the table over both folders
    python benchmarks/quantization.py --sizes                           # file sizes only (prune + export)

``--sizes`` prunes the bundled GAN at 90% (element, block 4x4, filter; the same prune settings
as the recovered rows, whose masks are of the same kind) and exports each pruned checkpoint as
sparse float32 / int8 / fp8 and shrunk int8: the file-size table of the README, in seconds.

Every run is recorded in ``<out>/quantization.json`` as it finishes (a rerun skips what is there);
prints one markdown table and writes ``<out>/quantization.md``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SOURCE, DATA, SPARSITY = "builtin:digits-dcgan", "builtin:digits", 0.9
ROWS = (("float", None, None), ("int8", None, "int8"), ("fp8", None, "fp8"),
        ("QAT int8", "int8", "int8"), ("QAT fp8", "fp8", "fp8"))  # (label, --quantize-aware, --quantize)


def _export(source: Path, output: Path, quantize: str | None, fmt: str = "sparse") -> int:
    from gancompress.export import ExportConfig, export

    return export(ExportConfig(str(source), output, format=fmt, quantize=quantize, force=True)).file_bytes


def _recover(seed: int, qat: str | None, steps: int, folder: Path) -> Path:
    from gancompress.finetune.config import RecoveryConfig, Runtime
    from gancompress.recipe import Setting, prune_and_recover, setting_prune_config

    recovery = replace(RecoveryConfig(steps=steps), quantize_aware=qat)
    setting = Setting(setting_prune_config(SPARSITY), recovery, "agp", seed)
    out = folder / f"seed{seed}-{qat or 'float'}.safetensors"
    if not out.exists():
        prune_and_recover(SOURCE, setting, DATA, folder / "pruned.safetensors", out, runtime=Runtime(device="cpu"))
    return out


def _run(seed: int, label: str, qat: str | None, scheme: str | None, args, folder: Path) -> dict:
    from gancompress.recipe import measure

    started = time.perf_counter()
    model = _recover(seed, qat, args.steps, folder)
    path = folder / f"seed{seed}-{label.replace(' ', '-')}.sparse.safetensors"
    size = _export(model, path, scheme)
    numbers = measure(path, SOURCE, args.samples, 0, "cpu")
    return {"seed": seed, "label": label, "qat": qat, "quantize": scheme, "file_bytes": size, **numbers,
            "seconds": round(time.perf_counter() - started, 1)}


def _table(records: list[dict], dense: dict, steps: int, samples: int, seeds: list[int]) -> str:
    lines = [f"Bundled GAN ({SOURCE}), {SPARSITY:.0%} element sparsity, distill-adv recovery (AGP) for {steps} steps; "
             f"digits-FID at {samples:,} samples, seeds {seeds}; file sizes against the dense float32 export "
             f"({dense['file_bytes']:,} bytes); dense FID {dense['fid']:.2f}.", "",
             "| model | file | x dense file | FID (mean ± std) | x float recovered | PSNR dB | seeds |",
             "|---|---|---|---|---|---|---|",
             f"| dense float32 | {dense['file_bytes']:,} B | 1.000 | {dense['fid']:.2f} | - | - | - |"]
    floats = {r["seed"]: r["fid"] for r in records if r["label"] == "float"}
    for label, _, _ in ROWS:
        rows = [r for r in records if r["label"] == label]
        if not rows:
            continue
        fids = [r["fid"] for r in rows]
        ratios = [r["fid"] / floats[r["seed"]] for r in rows if r["seed"] in floats]
        std = statistics.stdev(fids) if len(fids) > 1 else 0.0
        size = statistics.mean(r["file_bytes"] for r in rows)
        psnr = statistics.mean(r["psnr"] for r in rows if r["psnr"] is not None)
        ratio = f"{statistics.mean(ratios):.3f}" if ratios else "-"
        lines.append(f"| {SPARSITY:.0%} element, {label} | {size:,.0f} B | {size / dense['file_bytes']:.3f} | "
                     f"{statistics.mean(fids):.2f} ± {std:.2f} | {ratio} | {psnr:.2f} | {len(rows)} |")
    return "\n".join(lines) + "\n"


SIZE_CELLS = (("sparse float32", "sparse", None), ("sparse + int8", "sparse", "int8"),
              ("sparse + fp8", "sparse", "fp8"), ("shrunk + int8", "shrunk", "int8"))


def _sizes(folder: Path) -> str:
    """The file-size table: each 90% pruned checkpoint's exports over the dense float32 export."""
    from gancompress.prune.run import PruneJob, prune_checkpoint
    from gancompress.recipe import setting_prune_config

    dense = _export(Path(SOURCE), folder / "dense.safetensors", None, "dense")
    lines = [f"File sizes of {SOURCE} at {SPARSITY:.0%} sparsity over its dense float32 export ({dense:,} bytes):", "",
             "| pruning | " + " | ".join(label for label, _, _ in SIZE_CELLS) + " |", "|---|" + "---|" * len(SIZE_CELLS)]
    for granularity in ("element", "block", "filter"):
        pruned = folder / f"pruned-{granularity}.safetensors"
        prune_checkpoint(PruneJob(SOURCE, setting_prune_config(SPARSITY, granularity), pruned, force=True))
        sizes = [_export(pruned, folder / f"{granularity}-{fmt}-{scheme}.safetensors", scheme, fmt)
                 for _, fmt, scheme in SIZE_CELLS]
        lines.append(f"| {granularity} | " + " | ".join(f"{b:,} B ({b / dense:.3f}x)" for b in sizes) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--samples", type=int, default=5000, help="samples per FID")
    p.add_argument("--steps", type=int, default=None, help="recovery steps (default: 10%% of the bundled GAN's training)")
    p.add_argument("--rows", default=",".join(label for label, _, _ in ROWS), help="which rows to run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "quantization")
    p.add_argument("--merge", type=Path, action="append", default=[],
                   help="also tabulate the runs recorded in this output folder (one process per seed; repeatable)")
    p.add_argument("--sizes", action="store_true", help="only the file-size table (prune + export, no recovery)")
    args = p.parse_args(argv)

    import torch

    if args.sizes:
        args.out.mkdir(parents=True, exist_ok=True)
        text = _sizes(args.out)
        print(text)
        (args.out / "sizes.md").write_text(text)
        return 0

    sys.path.insert(0, str(REPO / "benchmarks"))
    from reproduce_paper import BUDGET_FRACTION, bundled_training_steps
    from gancompress.recipe import measure

    torch.set_num_threads(args.threads)
    args.steps = args.steps or round(BUDGET_FRACTION * bundled_training_steps())
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = set(args.rows.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "quantization.json"
    doc = json.loads(log.read_text()) if log.exists() else {"runs": []}
    key = {"steps": args.steps, "samples": args.samples}
    runs = [r for r in doc["runs"] if all(r.get(k) == v for k, v in key.items())]
    if "dense" not in doc or doc["dense"].get("samples") != args.samples:
        dense_file = args.out / "dense.safetensors"
        doc["dense"] = {"file_bytes": _export(Path(SOURCE), dense_file, None, "dense"), "samples": args.samples,
                        **measure(SOURCE, SOURCE, args.samples, 0, "cpu")}
    for seed in seeds:
        for label, qat, scheme in ROWS:
            if label not in wanted or any(r["seed"] == seed and r["label"] == label for r in runs):
                continue
            record = {**_run(seed, label, qat, scheme, args, args.out), **key}
            runs.append(record)
            doc["runs"] = runs
            log.write_text(json.dumps(doc, indent=2) + "\n")
            print(f"  seed {seed} {label}: FID {record['fid']:.2f}, {record['file_bytes']:,} B ({record['seconds']:.0f} s)",
                  file=sys.stderr, flush=True)
    doc["runs"] = runs
    log.write_text(json.dumps(doc, indent=2) + "\n")
    for folder in args.merge:
        other = json.loads((folder / "quantization.json").read_text())["runs"]
        runs += [r for r in other if all(r.get(k) == v for k, v in key.items())
                 and not any(o["seed"] == r["seed"] and o["label"] == r["label"] for o in runs)]
    text = _table([r for r in runs if r["seed"] in seeds], doc["dense"], args.steps, args.samples, seeds)
    print(text)
    (args.out / "quantization.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
