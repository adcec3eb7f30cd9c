#!/usr/bin/env python
"""The zoo benchmark: does a recovery recipe hold on GANs it was not tuned on?

For every member (a GAN trained by a script in ``examples/`` until its FID stopped improving),
every cell (``element`` at 80/90/95%, ``filter`` at 50/75%) x every method x every seed is one
``gancompress.sweep`` cell: prune the dense member to that overall sparsity (the tiny output layer
dense, ``keep_dense auto``), recover it for ``--steps`` (default: 15% of the steps the member was
trained for, its recorded ``best_step``), and measure digits-FID on ``--samples`` generated
digits (same latents for every model). Beside them, per method and seed, the **dense control**:
the same recovery on the unpruned member (sparsity 0). The figure of merit is the FID ratio to
the dense control of the same method; the ratio to the teacher (the member as trained) is
shown beside it.

Cells are recorded as they finish (``runs/zoo/<member>/cells/*/result.json``): an interrupted
run resumes, ``--shard K/N`` lets N processes share the output, and a second run of a finished
selection does no work (``--report-only`` tabulates what is recorded).

    python examples/zoo/train_digits_member.py --member narrow-dcgan     # train the members first
    python benchmarks/zoo.py --members bundled,narrow-dcgan --cells element:0.9 --methods distill-adv,distill --seeds 0
    python benchmarks/zoo.py                                              # the whole zoo, 3 seeds
    python benchmarks/zoo.py --smoke --members narrow-dcgan               # seconds: 2 steps, 64 samples

Prints one markdown table (``<out>/zoo.md``, ``zoo.json``) and writes ``<out>/<member>.png``
(ratio to the dense control vs sparsity) when matplotlib is installed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ZOO_CODE = REPO / "examples" / "zoo"
for _path in (REPO, ZOO_CODE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

BUDGET_FRACTION = 0.15
CELLS = (("element", 0.8), ("element", 0.9), ("element", 0.95), ("filter", 0.5), ("filter", 0.75))
METHODS = ("distill-adv", "distill", "hybrid", "self-supervised", "finetune")
# Where trained members are looked for (the first folder holding the file): the training scripts' output,
# then the small members kept in git (under 1 MB each).
MEMBER_DIRS = (REPO / "runs" / "zoo" / "members", ZOO_CODE / "members")
# name: (checkpoint file under --members-dir, or a built-in source; --arch; --d-arch; how it is trained)
MEMBERS = {
    "bundled": ("builtin:digits-dcgan", None, None, "examples/train_digits_gan.py"),
    "narrow-dcgan": ("narrow-dcgan.safetensors", None, None, "examples/zoo/train_digits_member.py --member narrow-dcgan"),
    "upsample-sn": ("upsample-sn.safetensors", "zoo_nets:UpsampleGenerator", "zoo_nets:SNDiscriminator",
                    "examples/zoo/train_digits_member.py --member upsample-sn"),
    "conditional": ("conditional.safetensors", "zoo_nets:ConditionalGenerator", "zoo_nets:ProjectionDiscriminator",
                    "examples/zoo/train_digits_member.py --member conditional"),
}
SMOKE = {"steps": 2, "samples": 64, "seeds": "0", "cells": "element:0.9", "methods": "distill-adv"}


def parse_cells(text: str) -> list[tuple[str, float]]:
    """``element:0.9,filter:0.5`` -> [("element", 0.9), ("filter", 0.5)]."""
    cells = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        gran, _, value = item.partition(":")
        if gran not in ("element", "filter") or not value:
            raise SystemExit(f"error: --cells {item!r}: write granularity:sparsity, e.g. element:0.9 or filter:0.5")
        cells.append((gran, float(value)))
    return cells


def member_source(name: str, members_dir: Path | None = None):
    """(source, LoadOptions or None, the member's training steps) of one member; exits with a hint if untrained."""
    from gancompress.loading import LoadOptions, load_bundle

    if name not in MEMBERS:
        raise SystemExit(f"error: unknown member {name!r}; the zoo has {', '.join(MEMBERS)}")
    file, arch, d_arch, script = MEMBERS[name]
    folders = [members_dir] if members_dir else [d for d in MEMBER_DIRS if (d / file).exists()] or [MEMBER_DIRS[0]]
    source = file if file.startswith("builtin:") else str(folders[0] / file)
    if not file.startswith("builtin:") and not Path(source).exists():
        raise SystemExit(f"error: {source} does not exist: train it with `python {script}` (or pass --members-dir)")
    load = LoadOptions(arch=arch, d_arch=d_arch) if arch else None
    prov = load_bundle(source if load is None else load.for_source(source)).meta.get("provenance", {})
    trained = int(prov.get("best_step") or prov.get("steps") or 0)
    if trained < 1:
        raise SystemExit(f"error: {source} records no training steps (provenance best_step); pass --steps")
    return source, load, trained


def budget(trained: int, steps: int | None = None) -> int:
    """Recovery steps: ``steps`` when given, else 15% of the member's training steps."""
    return steps or max(1, round(BUDGET_FRACTION * trained))


def run_member(name: str, args, cells: list[tuple[str, float]], methods: tuple[str, ...], seeds: tuple[int, ...],
               shard: tuple[int, int]) -> dict:
    """Every cell of one member (and its dense controls) through ``gancompress.sweep``; returns the records."""
    from gancompress.sweep import SweepConfig, sweep

    source, load, trained = member_source(name, args.members_dir)
    steps = budget(trained, args.steps)
    grid = {"element": sorted({0.0, *(s for g, s in cells if g == "element")})}
    if any(g == "filter" for g, _ in cells):
        grid["filter"] = sorted(s for g, s in cells if g == "filter")
    records, dense, ran = [], None, 0
    for gran, sparsities in grid.items():
        cfg = SweepConfig.from_options(source=source, data="builtin:digits", out_dir=args.out / name, sparsities=sparsities,
                                       granularities=(gran,), methods=methods, seeds=seeds, steps=steps,
                                       num_samples=args.samples, device=args.device, keep_checkpoints=False, load=load)
        result = sweep(cfg, on_event=_progress(name), shard=shard)
        records += result.cells
        dense, ran = result.dense, ran + result.ran
    return {"member": name, "source": source, "trained_steps": trained, "steps": steps, "dense": dense,
            "cells": records, "ran": ran}


def _progress(member: str):
    def show(event) -> None:
        info = event.info
        if event.stage == "sweep" and info.get("event") == "cell-done":
            r = info["record"]
            print(f"  {member} {info['cell']}: FID {r['fid']:.2f} ({r['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return show


def rows(run: dict) -> list[dict]:
    """One row per (granularity, sparsity, method): FID mean/std over seeds, ratio to the control and to the teacher."""
    groups: dict[tuple, list[dict]] = {}
    for c in run["cells"]:
        groups.setdefault((c["granularity"], c["sparsity"], c["method"]), []).append(c)
    control = {m: statistics.fmean(c["fid"] for c in items) for (g, s, m), items in groups.items() if s == 0.0}
    teacher = run["dense"]["fid"]
    out = []
    for (gran, sparsity, method), items in sorted(groups.items()):
        fids = [c["fid"] for c in items]
        fid = statistics.fmean(fids)
        base = control.get(method)
        out.append({"member": run["member"], "granularity": "dense control" if sparsity == 0.0 else gran,
                    "sparsity": sparsity, "method": method, "fid": fid,
                    "fid_std": statistics.stdev(fids) if len(fids) > 1 else 0.0,
                    "x_control": fid / base if base else None, "x_teacher": fid / teacher,
                    "achieved": statistics.fmean(c["achieved_sparsity"] for c in items),
                    "seeds": sorted(c["seed"] for c in items)})
    return out


def _num(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(runs: list[dict], samples: int) -> str:
    lines = ["| member (teacher FID, trained steps, recovery steps) | cell | method | achieved | FID (mean ± std) | "
             "x dense control | x teacher | seeds |", "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        head = f"{run['member']} ({run['dense']['fid']:.2f}, {run['trained_steps']:,}, {run['steps']:,})"
        for r in rows(run):
            cell = "dense control (0%)" if r["sparsity"] == 0.0 else f"{r['granularity']} {100 * r['sparsity']:g}%"
            lines.append(f"| {head} | {cell} | {r['method']} | {100 * r['achieved']:.1f}% | {r['fid']:.2f} ± "
                         f"{r['fid_std']:.2f} | {_num(r['x_control'], '.2f')} | {r['x_teacher']:.2f} | "
                         f"{','.join(map(str, r['seeds']))} |")
    return "\n".join(lines) + f"\n\ndigits-FID on {samples:,} samples per model; the dense control is the same " \
                              "recovery (method, steps, seed) on the unpruned member.\n"


def plot_member(run: dict, path: Path) -> Path | None:
    """Ratio to the dense control vs sparsity, one line per method and granularity; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    lines: dict[tuple[str, str], list[dict]] = {}
    for r in rows(run):
        if r["sparsity"] > 0 and r["x_control"] is not None:
            lines.setdefault((r["granularity"], r["method"]), []).append(r)
    fig, ax = plt.subplots(figsize=(6.0, 3.8), dpi=100)
    for (gran, method), items in sorted(lines.items()):
        ax.plot([100 * r["sparsity"] for r in items], [r["x_control"] for r in items],
                marker="o" if gran == "element" else "s", label=f"{method} ({gran})")
    ax.axhline(1.0, color="gray", linestyle="--", label="dense control")
    ax.set_xlabel("target sparsity of all prunable weights (%)")
    ax.set_ylabel("FID / FID of the dense control")
    ax.set_title(f"zoo: {run['member']}, {run['steps']}-step recovery")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--members", default=",".join(MEMBERS), help=f"comma-separated (default all: {','.join(MEMBERS)})")
    p.add_argument("--cells", default=",".join(f"{g}:{s:g}" for g, s in CELLS), help="granularity:sparsity list")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--samples", type=int, default=5000, help="generated digits per FID (default 5000)")
    p.add_argument("--steps", type=int, default=None, help=f"recovery steps (default {BUDGET_FRACTION:.0%} of each member's training)")
    p.add_argument("--smoke", action="store_true", help="tiny run: " + ", ".join(f"{k} {v}" for k, v in SMOKE.items()))
    p.add_argument("--shard", default=None, help="K/N: run every N-th cell from K (several processes, one --out)")
    p.add_argument("--members-dir", type=Path, default=None,
                   help="folder of trained members (default: runs/zoo/members, then examples/zoo/members)")
    p.add_argument("--out", type=Path, default=None, help="default runs/zoo/bench (runs/zoo/smoke with --smoke)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.smoke:
        given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in (argv or sys.argv[1:]) if a.startswith("--")}
        for key, value in SMOKE.items():
            if key not in given:
                setattr(args, key, value)
    args.out = args.out or REPO / "runs" / "zoo" / ("smoke" if args.smoke else "bench")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    import torch

    torch.set_num_threads(args.threads)
    cells, methods = parse_cells(args.cells), tuple(m for m in args.methods.split(",") if m)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    shard = tuple(int(v) for v in args.shard.split("/")) if args.shard else (0, 1)
    started = time.perf_counter()
    runs = [run_member(m, args, cells, methods, seeds, shard) for m in args.members.split(",") if m]
    text = markdown(runs, args.samples)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    plots = [str(p) for run in runs if (p := plot_member(run, args.out / f"{run['member']}.png"))]
    doc = {"samples": args.samples, "seeds": list(seeds), "cells": [list(c) for c in cells], "methods": list(methods),
           "ran": sum(r["ran"] for r in runs), "rows": [row for run in runs for row in rows(run)], "members": runs,
           "plots": plots, "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__}
    (args.out / "zoo.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "zoo.md").write_text(text)
    print(f"ran {doc['ran']} cell(s); wrote {args.out / 'zoo.md'}, {args.out / 'zoo.json'}"
          + (f" and {len(plots)} plot(s)" if plots else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
