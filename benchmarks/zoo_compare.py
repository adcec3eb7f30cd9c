"""Compare recovery settings on the zoo, cell by cell: one column per ``benchmarks/zoo.py`` output folder.

Each folder is one setting (e.g. ``--lr-warmup 10 --out runs/zoo/warmup10``); run ``zoo.py --report-only --out DIR``
on it first so that its ``zoo.json`` holds every recorded cell. Per cell (member, granularity, sparsity, method) and
setting: each seed against the dense control of its own seed (FID ratio; PSNR difference in dB for an image-to-image
member), then their mean and worst; below, per member and setting, the mean and the worst over the cells that every
setting ran, which is the zoo's rule for keeping a lever. ``t`` marks a seed scored against the teacher, which stands
in for a distill control not run (``zoo.TEACHER_IS_CONTROL``).

    python benchmarks/zoo_compare.py "no warm-up=runs/zoo/bench" "warm-up 10=runs/zoo/warmup10" --method distill
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo import worst  # noqa: E402  (a sibling script, not a package)

Key = tuple[str, str, float, str]  # member, granularity, sparsity, method


def load(folder: Path) -> dict:
    path = folder / "zoo.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found: run `python benchmarks/zoo.py --report-only --out {folder}` first")
    return json.loads(path.read_text())


def seed_scores(doc: dict) -> dict[Key, list[tuple[int, float, bool]]]:
    """Per pruned cell run: (seed, figure of merit, scored against the teacher) for every seed with a usable control."""
    return {(r["member"], r["granularity"], r["sparsity"], r["method"]):
            [(s["seed"], s["vs_control"], bool(s.get("control_is_teacher"))) for s in r["per_seed"] if s["vs_control"] is not None]
            for r in doc["rows"] if r["sparsity"] > 0.0}


def metric_of(docs: list[dict]) -> dict[str, str]:
    return {m["member"]: m.get("metric", "fid") for doc in docs for m in doc["members"]}


def _fmt(value: float, metric: str, mark: str = "") -> str:
    return f"{value:+.2f}{mark} dB" if metric == "psnr_gt" else f"{value:.2f}{mark}"


def cell_text(scores: list[tuple[int, float, bool]] | None, metric: str) -> str:
    if scores is None:
        return "not run"
    if not scores:
        return "no usable control"
    parts = " / ".join(_fmt(v, metric, "t" if t else "") for _, v, t in scores)
    if len(scores) == 1:
        return f"{parts} (seed {scores[0][0]})"
    values = [v for _, v, _ in scores]
    return f"{parts} (mean {_fmt(statistics.fmean(values), metric)}, worst {_fmt(worst(metric, values), metric)})"


def compare(labels: list[str], docs: list[dict], method: str | None) -> str:
    per = [seed_scores(doc) for doc in docs]
    metrics = metric_of(docs)
    keys = sorted({k for p in per for k in p if method is None or k[3] == method})
    lines = ["| member | cell | method | " + " | ".join(labels) + " |", "|---|---|---|" + "---|" * len(labels)]
    for key in keys:
        member, gran, sparsity, meth = key
        cells = [cell_text(p.get(key), metrics[member]) for p in per]
        lines.append(f"| {member} | {gran} {100 * sparsity:g}% | {meth} | " + " | ".join(cells) + " |")
    lines += ["", "| member | cells run by every setting | " + " | ".join(f"{lab}: mean / worst" for lab in labels) + " |",
              "|---|---|" + "---|" * len(labels)]
    for member in sorted({k[0] for k in keys}):
        shared = [k for k in keys if k[0] == member and all(p.get(k) for p in per)]
        if not shared:
            continue
        metric = metrics[member]
        stats = []
        for p in per:
            means = [statistics.fmean(v for _, v, _ in p[k]) for k in shared]
            every = [v for k in shared for _, v, _ in p[k]]
            stats.append(f"{_fmt(statistics.fmean(means), metric)} / {_fmt(worst(metric, every), metric)}")
        lines.append(f"| {member} | {len(shared)} | " + " | ".join(stats) + " |")
    note = ("\nx dense control per seed (FID ratio; PSNR difference for image-to-image members); mean over a cell's seeds; "
            "worst = the largest ratio or lowest difference of any seed; the member rows average the cells' means over "
            "the cells every setting ran; t: against the teacher, which stands in for a distill control not run")
    return "\n".join(lines) + "\n" + note + ".\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("settings", nargs="+", metavar="LABEL=DIR", help="a label and a zoo.py --out folder")
    p.add_argument("--method", help="only this method's cells")
    args = p.parse_args(argv)
    labels, docs = [], []
    for item in args.settings:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            p.error(f"{item!r}: give LABEL=DIR, e.g. 'warm-up 10=runs/zoo/warmup10'")
        labels.append(label)
        docs.append(load(Path(folder)))
    print(compare(labels, docs, args.method))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
