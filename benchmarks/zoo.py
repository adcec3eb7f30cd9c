#!/usr/bin/env python
"""The zoo benchmark: does a recovery recipe hold on GANs it was not tuned on?

For every member (a GAN trained by a script in ``examples/`` with early stopping),
every cell (``element`` at 80/90/95%, ``filter`` at 50/75%) x every method x every seed is one
``gancompress.sweep`` cell: prune the dense member to that overall sparsity (the tiny output layer
dense, ``keep_dense auto``), recover it for ``--steps`` (default: 15% of the steps the member was
trained for, its recorded ``best_step``), and measure digits-FID on ``--samples`` generated
digits (same latents for every model; a class-conditional member gets uniform labels, the same
for every model). Beside them, per method and seed, the **dense control**: the same recovery on
the unpruned member (sparsity 0). The figure of merit is the FID ratio to the dense control of
the same method; the ratio to the teacher (the member as trained) is shown beside it.

The image-to-image member (``sr-x2``) recovers on the training photographs (``--photos``/train)
and is scored by PSNR and SSIM of its outputs on the full held-out photographs (``--photos``/heldout)
against their ground truth; its figure of merit is the PSNR difference to its dense control in dB.

Cells are recorded as they finish (``runs/zoo/<member>/cells/*/result.json``): an interrupted
run resumes, ``--jobs N`` runs each cell as its own process, N at a time (then tabulates), ``--shard K/N``
lets N processes share the output, and a second run of a finished selection does no work
(``--report-only`` tabulates what is recorded).

    python examples/zoo/train_digits_member.py --member narrow-dcgan     # train the members first
    python benchmarks/zoo.py --members bundled,narrow-dcgan --cells element:0.9 --methods distill-adv,distill --seeds 0
    python benchmarks/zoo.py                                              # the whole zoo, 3 seeds
    python benchmarks/zoo.py --jobs 12                                    # the same, 12 processes of one thread
    python benchmarks/zoo.py --smoke --members narrow-dcgan               # seconds: 2 steps, 64 samples

Prints one markdown table (``<out>/zoo.md``, ``zoo.json``; the README's shorter one in ``zoo-summary.md``, and a
cell x member matrix of the ratios per method in ``zoo-matrix.md``) and writes ``<out>/<member>.png``
(ratio to the dense control vs sparsity) when matplotlib is installed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
ZOO_CODE = REPO / "examples" / "zoo"
for _path in (REPO, ZOO_CODE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from gancompress.finetune import methods as recovery_methods  # noqa: E402  (torch-free)
from gancompress.finetune.defaults import LR_SCHEDULES, SCHEDULES, STUDENT_MODES  # noqa: E402  (torch-free)

BUDGET_FRACTION = 0.15
CELLS = (("element", 0.8), ("element", 0.9), ("element", 0.95), ("filter", 0.5), ("filter", 0.75))
METHODS = ("distill-adv", "distill", "hybrid", "self-supervised", "finetune")
# Where trained members are looked for (the first folder holding the file): the training scripts' output,
# then the small members kept in git (about 1 MB each; --members-dir examples/zoo/members/first: the members of
# the first grids, narrow-dcgan and conditional then trained without reduce-on-plateau, docs/zoo.md).
MEMBER_DIRS = (REPO / "runs" / "zoo" / "members", ZOO_CODE / "members")


class Member(NamedTuple):
    file: str  # checkpoint file under --members-dir, or a built-in source
    arch: str | None  # --arch / --d-arch for the networks gancompress does not know
    d_arch: str | None
    script: str  # how it is trained
    photos: bool = False  # image-to-image: recovered on --photos/train, scored by PSNR/SSIM on --photos/heldout
    fallback: str | None = None  # the source used when no members folder holds `file` (the package's own asset)


MEMBERS = {
    # the bundled architecture retrained to a plateau; without that file, the package's asset (8,000 steps, still improving)
    "bundled": Member("bundled.safetensors", None, None, "examples/zoo/train_digits_member.py --member bundled",
                      fallback="builtin:digits-dcgan"),
    "narrow-dcgan": Member("narrow-dcgan.safetensors", None, None, "examples/zoo/train_digits_member.py --member narrow-dcgan"),
    "upsample-sn": Member("upsample-sn.safetensors", "zoo_nets:UpsampleGenerator", "zoo_nets:SNDiscriminator",
                          "examples/zoo/train_digits_member.py --member upsample-sn"),
    "conditional": Member("conditional.safetensors", "zoo_nets:ConditionalGenerator", "zoo_nets:ProjectionDiscriminator",
                          "examples/zoo/train_digits_member.py --member conditional"),
    "sr-x2": Member("sr-x2.safetensors", "zoo_nets:SRGenerator", "zoo_nets:SRDiscriminator",
                    "examples/zoo/train_sr_member.py --write-photos runs/zoo/photos", photos=True),
}
# The figure of merit per kind of member: digits-FID (lower is better, a ratio to the control) or
# PSNR to the held-out ground truth (higher is better, a difference in dB to the control).
METRICS = {False: ("fid", "FID", "x"), True: ("psnr_gt", "PSNR", "dB")}
# Recovery settings passed through to every cell (sweep/finetune spelling; unset: the sweep's default). A setting
# other than the default needs its own --out: the sweep refuses to mix its cells with recorded ones.
RECOVERY = {"lr_g": float, "lr_d": float, "lr_schedule": str, "lr_warmup": int, "schedule": str, "keep_dense": str, "ramp_fraction": float,
            "batch_size": int, "ema_decay": float, "feature_weight": float, "adv_schedule": str, "d_warmup": int,
            "mu": float, "lam": float, "adv_weight": float, "regrow": bool, "recalibrate_bn": int,
            "student_mode": str, "importance": str, "freeze_discriminator": bool}
CHOICES = {"lr_schedule": LR_SCHEDULES, "schedule": SCHEDULES, "student_mode": STUDENT_MODES}  # --adv-schedule: check_levers, one line
# A dense control this far from the teacher it started from diverged (FID ratio above, PSNR difference below):
# the recovery broke the unpruned model, and a ratio to it says nothing about pruning.
DIVERGED = {"fid": 2.0, "psnr_gt": -3.0}
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
    file, arch, d_arch, script, _, fallback = MEMBERS[name]
    folders = [members_dir] if members_dir else [d for d in MEMBER_DIRS if (d / file).exists()] or [MEMBER_DIRS[0]]
    path = folders[0] / file
    if path.exists():
        source = str(path)
    elif fallback:
        source = fallback
    else:
        raise SystemExit(f"error: {path} does not exist: train it with `python {script}` (or pass --members-dir)")
    load = LoadOptions(arch=arch, d_arch=d_arch) if arch else None
    prov = load_bundle(source if load is None else load.for_source(source)).meta.get("provenance", {})
    # a continued member (train_*_member.py --continue-from) counts the steps before the continuation too
    trained = int(prov.get("trained_steps") or prov.get("best_step") or prov.get("steps") or 0)
    if trained < 1:
        raise SystemExit(f"error: {source} records no training steps (provenance best_step); pass --steps")
    return source, load, trained


def training_loss(source: str, load) -> str | None:
    """The GAN loss the member was trained with (its provenance's ``loop.loss``), or None: the architecture's profile."""
    from gancompress.loading import load_bundle

    loop = load_bundle(source if load is None else load.for_source(source)).meta.get("provenance", {}).get("loop", {})
    return loop.get("loss") if isinstance(loop, dict) else None


def recovery_levers(args, source: str, load) -> dict:
    """The recovery options given on the command line (the rest stay the sweep's defaults); ``--loss own``: each
    member's own training loss."""
    levers = recovery_options(args)
    if args.loss is not None:
        levers["loss"] = training_loss(source, load) if args.loss == "own" else args.loss
    return levers


def check_levers(args) -> None:
    """Refuse a bad --loss, --methods or recovery setting (--mu, --lr-g, --ema-decay, ...) in one line (exit 2) before
    any work: each setting is checked by the config class that holds it in a cell."""
    from dataclasses import fields

    from gancompress.errors import InputError
    from gancompress.finetune.config import LossWeights, PruneSchedule, Rates, RecoveryConfig
    from gancompress.losses import LOSSES
    from gancompress.prune.importance import check_importance

    given = recovery_options(args)

    try:
        if args.loss not in (None, "own", *LOSSES.names()):
            raise InputError(f"--loss {args.loss!r}: choose own (each member's training loss) or one of "
                             f"{', '.join(LOSSES.names())}")
        if "auto" in args.methods.split(","):
            raise InputError("--methods auto: the zoo compares the methods themselves, and auto is hybrid on every "
                             "member (each has a discriminator and data); list hybrid and/or distill")
        if args.no_controls and given.get("student_mode") == "train":
            raise InputError("--no-controls with --student-mode train: BatchNorm's batch statistics make even the unpruned "
                             "member differ from the teacher, so the teacher is no stand-in for the dense control; "
                             "run the controls (drop --no-controls)")
        if "importance" in given:
            check_importance(given["importance"])
        parts = {cls: cls(**{f.name: given[f.name] for f in fields(cls) if f.name in given})
                 for cls in (LossWeights, Rates, PruneSchedule)}
        RecoveryConfig(**{f.name: given[f.name] for f in fields(RecoveryConfig) if f.name in given and f.name != "schedule"},
                       schedule=parts[PruneSchedule])  # the zoo's --schedule is agp/oneshot, the sweep's setting
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def photo_folders(name: str, photos: Path) -> tuple[str, str | None]:
    """(recovery --data, held-out test images or None) of one member; exits with a hint when the photographs are missing."""
    if not MEMBERS[name].photos:
        return "builtin:digits", None
    folders = photos / "train", photos / "heldout"
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)} missing: write the photographs with "
                         f"`python examples/zoo/train_sr_member.py --write-photos {photos}` (or pass --photos)")
    return str(folders[0]), str(folders[1])


def budget(trained: int, steps: int | None = None) -> int:
    """Recovery steps: ``steps`` when given, else 15% of the member's training steps."""
    return steps or max(1, round(BUDGET_FRACTION * trained))


def run_member(name: str, args, cells: list[tuple[str, float]], methods: tuple[str, ...], seeds: tuple[int, ...],
               shard: tuple[int, int]) -> dict:
    """Every cell of one member (and its dense controls) through ``gancompress.sweep``; returns the records."""
    from gancompress.sweep import SweepConfig, sweep

    source, load, trained = member_source(name, args.members_dir)
    data, heldout = photo_folders(name, args.photos)
    steps = budget(trained, args.steps)
    grid = [(gran, args.allocation, chosen) for gran in ("element", "filter")
            if (chosen := sorted(s for g, s in cells if g == gran and s > 0))]
    if not args.no_controls:  # the dense controls (last): the allocation of no zeros does not matter
        grid.append(("element", "uniform", [0.0]))
    if args.report_only:
        return recorded(name, args.out / name, source, trained, steps, heldout)
    records, dense, ran = [], None, 0
    for gran, allocation, sparsities in grid:
        cfg = SweepConfig.from_options(source=source, data=data, out_dir=args.out / name, sparsities=sparsities,
                                       granularities=(gran,), allocations=(allocation,), methods=methods, seeds=seeds,
                                       steps=steps, num_samples=args.samples, test_data=heldout, fid=heldout is None,
                                       device=args.device, keep_checkpoints=False, load=load,
                                       **recovery_levers(args, source, load))
        result = sweep(cfg, on_event=_progress(name), shard=shard)
        records += result.cells
        dense, ran = result.dense, ran + result.ran
    return {"member": name, "source": source, "trained_steps": trained, "steps": steps, "dense": dense,
            "metric": METRICS[heldout is not None][0], "test_data": heldout, "cells": records, "ran": ran}


def recovery_options(args) -> dict:
    """The RECOVERY settings given on the command line (the others stay the sweep's defaults)."""
    return {k: v for k in RECOVERY if (v := getattr(args, k)) is not None}


def recorded(name: str, folder: Path, source: str, trained: int, steps: int, heldout: str | None) -> dict:
    """``run_member``'s record from the cells finished in ``folder`` (any cell, method and seed), running nothing."""
    from gancompress.sweep import CELL_RESULT, STATE_FILE

    state = folder / STATE_FILE
    if not state.exists():
        raise SystemExit(f"error: nothing recorded for {name} in {folder}: run it without --report-only first")
    cells = [json.loads(p.read_text()) for p in sorted(folder.glob(f"cells/*/{CELL_RESULT}"))]
    return {"member": name, "source": source, "trained_steps": trained, "steps": steps,
            "dense": json.loads(state.read_text())["dense"], "metric": METRICS[heldout is not None][0],
            "test_data": heldout, "cells": cells, "ran": 0}


def _progress(member: str):
    def show(event) -> None:
        info = event.info
        if event.stage == "sweep" and info.get("event") == "cell-done":
            r = info["record"]
            score = f"FID {r['fid']:.2f}" if r.get("fid") is not None else f"PSNR {r['psnr_gt']:.2f} dB, SSIM {r['ssim_gt']:.4f}"
            print(f"  {member} {info['cell']}: {score} ({r['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return show


def versus(metric: str, value: float, base: float | None) -> float | None:
    """``value`` against ``base``: the FID ratio, or the PSNR difference in dB (negative: worse)."""
    if base is None:
        return None
    return value - base if metric == "psnr_gt" else value / base


def diverged(metric: str, control: float, teacher: float) -> bool:
    """A dense control far worse than the teacher it started from (``DIVERGED``): the recovery itself broke
    the unpruned model, so no ratio to it says anything about pruning."""
    gap = versus(metric, control, teacher)
    return gap < DIVERGED[metric] if metric == "psnr_gt" else gap > DIVERGED[metric]


def worst(metric: str, values: list[float]) -> float:
    return min(values) if metric == "psnr_gt" else max(values)


# Methods whose dense control is the teacher itself: every generator term is a difference to the teacher (distill,
# hybrid, self-supervised; none trains nothing), zero on the unpruned member, so its weights do not move (tested; every
# such control zoo.py ran scored the teacher exactly). A seed whose control was not run (--no-controls) is compared
# with the teacher's score instead, marked "t" in the tables.
TEACHER_IS_CONTROL = tuple(name for name in recovery_methods.names()
                           if recovery_methods.get_method(name).stays_at_teacher
                           and not recovery_methods.get_method(name).is_choice)  # auto: refused, see check_levers


def per_seed(items: list[dict], controls: dict[int, float], metric: str, teacher: float,
             teacher_stands_in: bool = False) -> list[dict]:
    """Each seed's value against the dense control of the same method and seed (None when that control was not run
    or diverged; the teacher's score when it stands in for a control not run)."""
    out = []
    for c in sorted(items, key=lambda c: c["seed"]):
        control = controls.get(c["seed"])
        stand_in = control is None and teacher_stands_in
        control = teacher if stand_in else control
        broke = control is not None and diverged(metric, control, teacher)
        out.append({"seed": c["seed"], "value": c[metric], "control": control, "control_diverged": broke,
                    "control_is_teacher": stand_in, "vs_control": None if broke else versus(metric, c[metric], control)})
    return out


def rows(run: dict) -> list[dict]:
    """One row per (granularity, sparsity, method): the metric's mean/std over seeds (FID, or PSNR to the held-out
    ground truth with its SSIM); each seed against the dense control of the same method and seed, and the mean
    and worst of those (``vs_control``, ``vs_control_worst``; seeds whose control diverged or is missing are left
    out and listed in ``per_seed``); the mean against the teacher (``versus``)."""
    metric = run.get("metric", "fid")
    groups: dict[tuple, list[dict]] = {}
    for c in run["cells"]:
        allocation = c.get("allocation", "uniform")
        gran = c["granularity"] if allocation == "uniform" else f"{c['granularity']}, {allocation}"
        groups.setdefault((gran, c["sparsity"], c["method"]), []).append(c)
    controls: dict[str, dict[int, float]] = {}
    for (gran, sparsity, method), items in groups.items():
        if sparsity == 0.0:
            controls.setdefault(method, {}).update((c["seed"], c[metric]) for c in items)
    teacher = run["dense"][metric]
    out = []
    for (gran, sparsity, method), items in sorted(groups.items()):
        values = [c[metric] for c in items]
        value = statistics.fmean(values)
        seeds = per_seed(items, controls.get(method, {}), metric, teacher, method in TEACHER_IS_CONTROL)
        usable = [s["vs_control"] for s in seeds if s["vs_control"] is not None]
        ssim = [c["ssim_gt"] for c in items if c.get("ssim_gt") is not None]
        out.append({"member": run["member"], "granularity": "dense control" if sparsity == 0.0 else gran,
                    "sparsity": sparsity, "method": method, "metric": metric, "value": value,
                    "value_std": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "ssim_gt": statistics.fmean(ssim) if ssim else None, "per_seed": seeds,
                    "vs_control": statistics.fmean(usable) if usable else None,
                    "vs_control_worst": worst(metric, usable) if usable else None,
                    "vs_teacher": versus(metric, value, teacher),
                    "achieved": statistics.fmean(c["achieved_sparsity"] for c in items),
                    "seeds": sorted(c["seed"] for c in items), "seconds": [c["seconds"] for c in items]})
    return out


def _num(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _score(r: dict) -> str:
    if r["metric"] == "psnr_gt":
        return f"PSNR {r['value']:.2f} ± {r['value_std']:.2f} dB, SSIM {_num(r['ssim_gt'], '.4f')}"
    return f"FID {r['value']:.2f} ± {r['value_std']:.2f}"


def _versus(value: float | None, metric: str, mark: str = "") -> str:
    """A ratio, or a PSNR difference in dB; ``mark`` follows the number (t: against the teacher)."""
    return _num(value, "+.2f") + mark + " dB" if metric == "psnr_gt" and value is not None else _num(value, ".2f") + mark


def _versus_control(r: dict) -> str:
    """The figure of merit of one row: each seed against its own dense control, then their mean and worst;
    a diverged control shows its score instead, a missing one n/a."""
    metric, seeds = r["metric"], r["per_seed"]
    label = METRICS[metric == "psnr_gt"][1]
    if r["sparsity"] == 0.0:
        broke = [s for s in seeds if s["control_diverged"]]
        return "reference" + "".join(f"; seed {s['seed']} diverged ({label} {s['value']:.2f})" for s in broke)
    parts = [f"control diverged ({label} {s['control']:.2f})" if s["control_diverged"]
             else _versus(s["vs_control"], metric, "t" if s.get("control_is_teacher") else "") for s in seeds]
    usable = sum(s["vs_control"] is not None for s in seeds)
    if len(seeds) == 1 or usable == 0:
        return " / ".join(parts)
    if usable == 1:
        return " / ".join(parts) + f" (1 of {len(seeds)} seeds usable)"
    of = f" over {usable} of {len(seeds)} seeds" if usable < len(seeds) else ""
    return " / ".join(parts) + f" (mean {_versus(r['vs_control'], metric)}, worst {_versus(r['vs_control_worst'], metric)}{of})"


def markdown(runs: list[dict], samples: int) -> str:
    lines = ["| member (teacher, trained steps, recovery steps) | cell | method | achieved | score (mean ± std) | "
             "vs dense control, per seed | vs teacher | seeds |", "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        metric = run.get("metric", "fid")
        teacher = f"{METRICS[metric == 'psnr_gt'][1]} {run['dense'][metric]:.2f}"
        head = f"{run['member']} ({teacher}, {run['trained_steps']:,}, {run['steps']:,})"
        for r in rows(run):
            cell = "dense control (0%)" if r["sparsity"] == 0.0 else f"{r['granularity']} {100 * r['sparsity']:g}%"
            lines.append(f"| {head} | {cell} | {r['method']} | {100 * r['achieved']:.1f}% | {_score(r)} | "
                         f"{_versus_control(r)} | {_versus(r['vs_teacher'], metric)} | "
                         f"{','.join(map(str, r['seeds']))} |")
    kinds = {run.get("metric", "fid") for run in runs}
    notes = [f"digits-FID on {samples:,} samples per model (vs: the FID ratio)"] if "fid" in kinds else []
    if "psnr_gt" in kinds:
        notes.append("image-to-image members: PSNR/SSIM of the full held-out photographs against their ground truth "
                     "(vs: the PSNR difference in dB)")
    return "\n".join(lines) + f"\n\n{'; '.join(notes)}; the dense control is the same recovery (method, steps, seed) " \
                              "on the unpruned member; each seed is compared with the control of its own seed (n/a: not " \
                              f"run; t: not run, the teacher stands in for {', '.join(TEACHER_IS_CONTROL)}), worst = the " \
                              f"largest ratio or the lowest difference; a control {DIVERGED['fid']:g}x " \
                              f"worse than the teacher ({DIVERGED['psnr_gt']:+g} dB) counts as diverged and its seed is " \
                              "left out.\n"


def summary(runs: list[dict]) -> str:
    """The README's short table: one row per member, pruned cell and method with each seed's score and its ratio
    to the dense control of its own seed (mean and worst); the dense controls themselves are in ``markdown``."""
    lines = ["| member (teacher) | cell | method | score per seed | x dense control per seed | seeds |",
             "|---|---|---|---|---|---|"]
    for run in runs:
        metric = run.get("metric", "fid")
        label = METRICS[metric == "psnr_gt"][1]
        for r in rows(run):
            if r["sparsity"] == 0.0:
                continue
            scores = " / ".join(f"{s['value']:.2f}" for s in r["per_seed"])
            lines.append(f"| {run['member']} ({label} {run['dense'][metric]:.2f}) | {r['granularity']} "
                         f"{100 * r['sparsity']:g}% | {r['method']} | {label} {scores} | {_versus_control(r)} | "
                         f"{','.join(map(str, r['seeds']))} |")
    return "\n".join(lines) + "\n"


def matrix(runs: list[dict]) -> str:
    """One table per method: each pruned cell (rows) x member (columns), the mean over seeds of each seed's ratio to
    its own dense control with the worst seed in brackets (PSNR members: the difference in dB; fewer seeds than the
    most any entry has are said), then the mean and the worst over the FID members. A cell without a usable control
    reads n/a; one not run is left blank."""
    table: dict[str, dict[tuple, dict[str, dict]]] = {}
    for run in runs:
        for r in rows(run):
            if r["sparsity"] > 0.0:
                table.setdefault(r["method"], {}).setdefault((r["granularity"], r["sparsity"]), {})[run["member"]] = r
    members = [(run["member"], run.get("metric", "fid"), run["dense"][run.get("metric", "fid")]) for run in runs]
    most = max((len(r["seeds"]) for cells in table.values() for by in cells.values() for r in by.values()), default=0)
    head = " | ".join(f"{m} ({METRICS[metric == 'psnr_gt'][1]} {teacher:.2f})" for m, metric, teacher in members)
    out = []
    for method, cells in table.items():
        out += [f"**{method}**", "", f"| cell | {head} | FID members: mean / worst |",
                "|---|" + "---|" * len(members) + "---|"]
        for (gran, sparsity), by_member in sorted(cells.items()):
            entries, fid = [], []
            for member, metric, _ in members:
                r = by_member.get(member)
                if r is None:
                    entries.append("")
                    continue
                fewer = f"; {len(r['seeds'])} of {most} seeds" if len(r["seeds"]) < most else ""
                entries.append(f"{_versus(r['vs_control'], metric)} ({_versus(r['vs_control_worst'], metric)}{fewer})")
                if metric == "fid" and r["vs_control"] is not None:
                    fid.append(r)
            summary_cell = (f"{statistics.fmean(r['vs_control'] for r in fid):.2f} / "
                            f"{max(r['vs_control_worst'] for r in fid):.2f}") if fid else "n/a"
            out.append(f"| {gran} {100 * sparsity:g}% | " + " | ".join(entries) + f" | {summary_cell} |")
        out.append("")
    return "\n".join(out)


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
        if r["sparsity"] > 0 and r["vs_control"] is not None:
            lines.setdefault((r["granularity"], r["method"]), []).append(r)
    fig, ax = plt.subplots(figsize=(6.0, 3.8), dpi=100)
    for (gran, method), items in sorted(lines.items()):
        ax.plot([100 * r["sparsity"] for r in items], [r["vs_control"] for r in items],
                marker="o" if gran.startswith("element") else "s", label=f"{method} ({gran})")
    sr = run.get("metric") == "psnr_gt"
    ax.axhline(0.0 if sr else 1.0, color="gray", linestyle="--", label="dense control")
    ax.set_xlabel("target sparsity of all prunable weights (%)")
    ax.set_ylabel("PSNR - PSNR of the dense control (dB)" if sr else "FID / FID of the dense control (log)")
    if not sr:  # ratios: a collapsed cell (30x) must not flatten the 1.0-2.0 range where the methods differ
        from matplotlib.ticker import FormatStrFormatter

        ax.set_yscale("log")
        for axis_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis_formatter(FormatStrFormatter("%.2fx"))  # 1.30x, not 1.3 x 10^0
    ax.set_title(f"zoo: {run['member']}, {run['steps']}-step recovery")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- --jobs: one process per cell

# The options a queued unit sets itself; every other option the command was given passes through unchanged.
UNIT_OPTIONS = ("--members", "--cells", "--methods", "--seeds", "--jobs", "--shard", "--no-controls", "--unit")


class Unit(NamedTuple):
    """One process of the queue: one member's pruned cell for one method and seed, or its dense control."""

    member: str
    cell: str  # "element:0.9"; "" for the dense control
    method: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.member}-{self.cell.replace(':', '') or 'control'}-{self.method}-seed{self.seed}"


def job_units(members: list[str], cells: list[tuple[str, float]], methods: tuple[str, ...], seeds: tuple[int, ...],
              controls: bool) -> list[Unit]:
    """Every pruned cell x method x seed of every member, then (unless ``controls`` is off) their dense controls:
    the order the sequential run keeps, so a queue cut short has the cells a control cannot stand in for."""
    units = [Unit(m, f"{g}:{s:g}", x, seed) for m in members for g, s in cells if s > 0 for x in methods for seed in seeds]
    return units + [Unit(m, "", x, seed) for m in members for x in methods for seed in seeds] if controls else units


def unit_argv(argv: list[str], unit: Unit) -> list[str]:
    """The command line of one unit: ``argv`` without the options a unit sets, then the unit's own."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in UNIT_OPTIONS:
            skip = "=" not in arg and name not in ("--no-controls", "--unit")
            continue
        kept.append(arg)
    own = ["--unit", "--members", unit.member, f"--cells={unit.cell}", "--methods", unit.method, "--seeds", str(unit.seed)]
    return kept + own + (["--no-controls"] if unit.cell else [])


UNIT_DONE = "zoo unit: ran "  # a unit's last line: how many cells it ran (0: they were recorded already)


def unit_ran(log: Path) -> int:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith(UNIT_DONE)]
    return int(lines[-1][len(UNIT_DONE):].split()[0]) if lines else 0


def run_queue(units: list[Unit], argv: list[str], jobs: int, threads: int, logs: Path,
              say=lambda line: print(line, file=sys.stderr, flush=True)) -> tuple[int, list[Unit]]:
    """Run every unit as its own ``zoo.py`` process, ``jobs`` at a time (``threads`` torch threads each), its
    output in ``logs/<unit>.log``; returns how many cells ran and the units that failed. A unit already
    recorded finishes at once, running nothing."""
    import os
    import subprocess

    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    waiting, running, failed, done, ran = list(units), {}, [], 0, 0
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                unit = waiting.pop(0)
                with open(logs / f"{unit.name}.log", "w") as log:
                    running[unit] = (subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *unit_argv(argv, unit)],
                                                      stdout=log, stderr=subprocess.STDOUT, env=env), time.perf_counter())
            time.sleep(0.2)
            for unit, (proc, began) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[unit]
                done += 1
                if proc.returncode:
                    failed.append(unit)
                ran += unit_ran(logs / f"{unit.name}.log")
                state = "done" if not proc.returncode else f"FAILED (exit {proc.returncode}; see {logs / unit.name}.log)"
                say(f"zoo: [{done}/{len(units)}] {unit.member} {unit.cell or 'dense control'} {unit.method} seed {unit.seed}: "
                    f"{state} in {time.perf_counter() - began:.0f} s")
    finally:
        for proc, _ in running.values():
            proc.terminate()
    return ran, failed


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--members", default=",".join(MEMBERS), help=f"comma-separated (default all: {','.join(MEMBERS)})")
    p.add_argument("--cells", default=",".join(f"{g}:{s:g}" for g, s in CELLS), help="granularity:sparsity list")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--allocation", default="uniform",
                   help="how the pruned cells spread their zeros over the layers (uniform, lamp, erk; the dense controls are shared)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--samples", type=int, default=5000, help="generated digits per FID (default 5000)")
    p.add_argument("--steps", type=int, default=None, help=f"recovery steps (default {100 * BUDGET_FRACTION:g}%% of each member's training)")
    for key, kind in RECOVERY.items():
        how = {"action": "store_const", "const": True} if kind is bool else {"type": kind, "choices": CHOICES.get(key)}
        p.add_argument(f"--{key.replace('_', '-')}", default=None, **how,
                       help=f"recovery {key} of every cell, as `gancompress sweep` takes it (default: the sweep's)")
    p.add_argument("--no-controls", action="store_true",
                   help="run no dense control: only where it is known; for " + ", ".join(TEACHER_IS_CONTROL) + " it is the "
                        "teacher itself, bit for bit (their loss on the unpruned member is zero), and the tables use it, "
                        "marked t; other methods read n/a")
    p.add_argument("--smoke", action="store_true", help="tiny run: " + ", ".join(f"{k} {v}" for k, v in SMOKE.items()))
    p.add_argument("--shard", default=None, help="K/N: run every N-th cell from K (several processes, one --out)")
    p.add_argument("--unit", action="store_true", help=argparse.SUPPRESS)  # a --jobs process: record cells, no tables
    p.add_argument("--jobs", type=int, default=1,
                   help="N > 1: run each cell (member x cell x method x seed, then each dense control) as its own process, "
                        "N at a time with --threads each (logs in <out>/logs/), then tabulate everything recorded")
    p.add_argument("--photos", type=Path, default=REPO / "runs" / "zoo" / "photos",
                   help="the SR member's photographs: train/ (recovery) and heldout/ (PSNR/SSIM); default runs/zoo/photos")
    p.add_argument("--members-dir", type=Path, default=None,
                   help="folder of trained members (default: runs/zoo/members, then examples/zoo/members); "
                        "without bundled.safetensors there, the bundled member is the package's asset")
    p.add_argument("--out", type=Path, default=None, help="default runs/zoo/bench (runs/zoo/smoke with --smoke)")
    p.add_argument("--report-only", action="store_true", help="tabulate every cell recorded under --out; run nothing")
    p.add_argument("--loss", default=None,
                   help="GAN loss of the recovery: a loss profile name, or own (each member's recorded training loss, "
                        "provenance loop.loss; else its architecture's); default: the architecture's")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.smoke:
        given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in (argv or sys.argv[1:]) if a.startswith("--")}
        for key, value in SMOKE.items():
            if key not in given:
                setattr(args, key, value)
    check_levers(args)
    if args.jobs < 1 or (args.jobs > 1 and args.shard):
        print("error: --jobs takes a count of processes (1 or more) and cannot be combined with --shard; give one of them",
              file=sys.stderr)
        raise SystemExit(2)
    args.out = args.out or REPO / "runs" / "zoo" / ("smoke" if args.smoke else "bench")
    # absolute, so a folder's record names the same files from whichever directory the command runs (the sweep
    # reuses a folder's cells only for the same source and data paths)
    args.photos = args.photos.resolve()
    args.members_dir = args.members_dir.resolve() if args.members_dir else None
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    import torch

    torch.set_num_threads(args.threads)
    cells, methods = parse_cells(args.cells), tuple(m for m in args.methods.split(",") if m)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    shard = tuple(int(v) for v in args.shard.split("/")) if args.shard else (0, 1)
    started = time.perf_counter()
    if args.jobs > 1 and not args.report_only:
        members = [m for m in args.members.split(",") if m]
        for name in members:  # an unknown or untrained member stops here, in one line, before any process starts
            member_source(name, args.members_dir)
        queued, failed = run_queue(job_units(members, cells, methods, seeds, not args.no_controls),
                                   list(sys.argv[1:] if argv is None else argv), args.jobs, args.threads, args.out / "logs")
        if failed:
            print(f"error: {len(failed)} cell(s) failed: {', '.join(u.name for u in failed)}; their logs are in "
                  f"{args.out / 'logs'}; run the same command again to resume", file=sys.stderr)
            return 1
        args.report_only = True
    else:
        queued = 0
    runs = [run_member(m, args, cells, methods, seeds, shard) for m in args.members.split(",") if m]
    if args.unit:
        print(f"{UNIT_DONE}{sum(r['ran'] for r in runs)} cell(s)", flush=True)
        return 0
    text = markdown(runs, args.samples)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    plots = [str(p) for run in runs if (p := plot_member(run, args.out / f"{run['member']}.png"))]
    doc = {"samples": args.samples, "seeds": list(seeds), "cells": [list(c) for c in cells], "methods": list(methods),
           "ran": queued + sum(r["ran"] for r in runs), "rows": [row for run in runs for row in rows(run)], "members": runs,
           "plots": plots, "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__}
    (args.out / "zoo.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "zoo.md").write_text(text)
    (args.out / "zoo-summary.md").write_text(summary(runs))
    (args.out / "zoo-matrix.md").write_text(matrix(runs))
    print(f"ran {doc['ran']} cell(s); wrote {args.out / 'zoo.md'}, {args.out / 'zoo-summary.md'} (the README's table), "
          f"{args.out / 'zoo-matrix.md'} (cell x member), "
          f"{args.out / 'zoo.json'}"
          + (f" and {len(plots)} plot(s)" if plots else ""), file=sys.stderr)
    return 0


def run_cli() -> int:
    """``main`` as a command: a refused input (a setting the sweep rejects, a resume under other settings) is one
    ``error:`` line on stderr and exit 2, not a traceback."""
    from gancompress.errors import InputError

    try:
        return main()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(run_cli())
