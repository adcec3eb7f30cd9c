"""Markdown renderings of an ``evaluate`` report (``EvaluateReport.to_json()``).

Used by ``gancompress evaluate --markdown report.md`` (a report a CI system can attach) and
by the model card that ``gancompress export --push-to-hub`` generates. Both take the JSON
document, so a report written earlier with ``-o report.json`` renders the same way.
Numbers are written as people write them (:mod:`.numbers`): ``83.84``, ``788k``, ``+4.5%``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io_utils import human_size
from .numbers import count, decimal, percent

# (key, header, kind); only columns with at least one value are shown
COLUMNS: list[tuple[str, str, str]] = [
    ("fid", "FID", "metric"), ("kid_mean", "KID", "metric"), ("isc_mean", "ISC", "metric"),
    ("precision", "precision", "metric"), ("recall", "recall", "metric"), ("psnr_gt", "PSNR-GT dB", "metric"),
    ("ssim_gt", "SSIM-GT", "metric"), ("psnr", "PSNR dB", "metric"), ("ssim", "SSIM", "metric"),
    ("lpips", "LPIPS", "metric"), ("parameters", "params", "count"), ("nonzeros", "nonzeros", "count"),
    ("macs_dense", "MACs", "count"), ("macs_effective", "eff. MACs", "count"), ("file_size", "size", "size"),
    ("latency_ms", "latency ms", "metric"), ("throughput", "samples/s", "count"),
]
KINDS = {key: kind for key, _, kind in COLUMNS}
HEADERS = {key: header for key, header, _ in COLUMNS}


def load_report(path: str | Path) -> dict[str, Any]:
    """A report JSON written by ``evaluate -o`` (:class:`InputError` when it is not one)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such report file; write one with `gancompress evaluate SOURCE -o {path}`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable evaluate report ({exc}); write one with `gancompress evaluate SOURCE -o report.json`") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise InputError(f"{path}: not a gancompress evaluate report (no 'rows'); write one with `gancompress evaluate SOURCE -o report.json`")
    return doc


def fmt(value: Any, kind: str = "metric", *, sign: bool = False) -> str:
    """``kind``: ``metric`` (4 significant digits), ``count`` (k/M/G), ``size`` (bytes) or ``percent``."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value  # "inf" from the JSON report
    if not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if kind == "size":
        return ("+" if sign and value > 0 else "-" if value < 0 else "") + human_size(abs(value))
    if kind == "percent":
        return percent(value)
    return count(value, sign=sign) if kind == "count" else decimal(value, sign=sign)


def cell(text: Any) -> str:
    """Table-cell safe text (pipes and newlines escaped)."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def metrics_table(doc: dict[str, Any]) -> str:
    rows = doc.get("rows") or []
    columns = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = [_row(["model", "role", *[h for _, h, _ in columns]]),
             "|" + "---|" * 2 + "---:|" * len(columns)]
    for r in rows:
        lines.append(_row([r.get("label") or r.get("source"), r.get("role", ""),
                           *[fmt(r.get(k), kind) for k, _, kind in columns]]))
    return "\n".join(lines)


def latency_table(doc: dict[str, Any]) -> str | None:
    """One line per model, backend and batch size, naming the runtime that measured it."""
    rows = [(r, x) for r in doc.get("rows") or [] for x in r.get("latency") or []]
    if not rows:
        return None
    lines = [_row(["model", "backend", "runtime", "batch", "ms per call", "samples/s"]), "|---|---|---|---:|---:|---:|"]
    for r, x in rows:
        runtime = x.get("runtime") if x.get("median_ms") is not None else f"not measured: {x.get('note')}"
        lines.append(_row([r.get("label") or r.get("source"), x.get("backend"), runtime, x.get("batch_size"),
                           fmt(x.get("median_ms")), fmt(x.get("throughput"), "count")]))
    return "\n".join(lines)


def deltas_table(doc: dict[str, Any]) -> str | None:
    deltas = doc.get("deltas") or {}
    if not deltas:
        return None
    lines = [_row(["model", "metric", "value", "reference", "change", "change %"]), "|---|---|---:|---:|---:|---:|"]
    for source, values in deltas.items():
        for key, d in values.items():
            pct = d.get("pct")
            kind = KINDS.get(key, "metric")
            lines.append(_row([source, HEADERS.get(key, key), fmt(d.get("value"), kind), fmt(d.get("reference"), kind),
                               fmt(d.get("delta"), kind, sign=True), fmt(pct, "percent")]))
    return "\n".join(lines)


def gates_table(doc: dict[str, Any]) -> str | None:
    gates = doc.get("gates") or []
    if not gates:
        return None
    lines = [_row(["gate", "threshold", "value", "result"]), "|---|---:|---:|---|"]
    for g in gates:
        lines.append(_row([g.get("option"), fmt(g.get("threshold")), fmt(g.get("value")),
                           "passed" if g.get("passed") else f"**FAILED**: {g.get('message', '')}"]))
    return "\n".join(lines)


def _reference(doc: dict[str, Any]) -> str | None:
    rows = doc.get("rows") or []
    ref = next((r for r in rows if r.get("role") == "reference"), rows[1] if len(rows) > 1 else None)
    return (ref.get("label") or ref.get("source")) if ref else None


def _sources(doc: dict[str, Any]) -> list[str]:
    """Which file each label names (only when a label is not the source itself)."""
    rows = [r for r in doc.get("rows") or [] if r.get("label") and r.get("label") != r.get("source")]
    return [*[f"- `{cell(r['label'])}`: `{cell(r.get('source'))}`" for r in rows], ""] if rows else []


def report_markdown(doc: dict[str, Any], *, title: str = "gancompress evaluate report") -> str:
    """The whole report: verdict, metrics, deltas vs the first reference, gates, sample grid, settings."""
    gates = doc.get("gates") or []
    failed = [g for g in gates if not g.get("passed")]
    if not gates:
        verdict = "no quality gates were set"
    elif failed:
        verdict = f"**FAILED** ({len(failed)} of {len(gates)} gates)"
    else:
        verdict = f"**passed** ({len(gates)} gate{'s' if len(gates) != 1 else ''})"
    out = [f"# {title}", "", f"Result: {verdict}", "", "## Metrics", "", metrics_table(doc), ""]
    out += _sources(doc)
    deltas = deltas_table(doc)
    if deltas:
        out += [f"## Change vs the reference (`{_reference(doc)}`)", "", deltas, ""]
    latency = latency_table(doc)
    if latency:
        out += ["## Latency", "", latency, ""]
    gate_md = gates_table(doc)
    if gate_md:
        out += ["## Gates", "", gate_md, ""]
    settings = doc.get("settings") or {}
    grid = settings.get("samples_png")
    if grid:
        out += ["## Samples", "", f"Sample grid (one row per model, the same inputs in every column): `{grid}`", ""]
    shown = {k: settings.get(k) for k in ("extractor", "real", "real_count", "num_samples", "batch_size", "seed", "truncation", "truncation_w_avg", "device")
             if settings.get(k) is not None}
    if shown:
        out += ["## Settings", "", *[f"- {k}: `{v}`" for k, v in shown.items()], ""]
    notes = doc.get("notes") or []
    if notes:
        out += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(out)
