"""Markdown renderings of an ``evaluate`` report (``EvaluateReport.to_json()``).

Used by ``gancompress evaluate --markdown report.md`` (a report a CI system can attach) and
by the model card that ``gancompress export --push-to-hub`` generates. Both take the JSON
document, so a report written earlier with ``-o report.json`` renders the same way.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io_utils import human_size

# (key, header, format); only columns with at least one value are shown
COLUMNS: list[tuple[str, str, str]] = [
    ("fid", "FID", ".3f"), ("kid_mean", "KID", ".4f"), ("isc_mean", "ISC", ".3f"),
    ("precision", "precision", ".3f"), ("recall", "recall", ".3f"), ("psnr", "PSNR dB", ".2f"),
    ("ssim", "SSIM", ".4f"), ("parameters", "params", ","), ("nonzeros", "nonzeros", ","),
    ("macs_dense", "MACs", ","), ("macs_effective", "eff. MACs", ","), ("file_size", "size", "size"),
    ("latency_ms", "latency ms", ".3f"), ("throughput", "samples/s", ",.0f"),
]
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


def fmt(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value  # "inf" from the JSON report
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if spec == "size":
        return human_size(value)
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


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
                           *[fmt(r.get(k), spec) for k, _, spec in columns]]))
    return "\n".join(lines)


def deltas_table(doc: dict[str, Any]) -> str | None:
    deltas = doc.get("deltas") or {}
    if not deltas:
        return None
    lines = [_row(["model", "metric", "value", "reference", "change", "change %"]), "|---|---|---:|---:|---:|---:|"]
    for source, values in deltas.items():
        for key, d in values.items():
            pct = d.get("pct")
            lines.append(_row([source, HEADERS.get(key, key), fmt(d.get("value")), fmt(d.get("reference")),
                               fmt(d.get("delta"), "+.4g") if not isinstance(d.get("delta"), str) else d["delta"],
                               "-" if pct is None else (fmt(pct) if isinstance(pct, str) else f"{pct:+.2f}%")]))
    return "\n".join(lines)


def gates_table(doc: dict[str, Any]) -> str | None:
    gates = doc.get("gates") or []
    if not gates:
        return None
    lines = [_row(["gate", "threshold", "value", "result"]), "|---|---:|---:|---|"]
    for g in gates:
        lines.append(_row([g.get("option"), fmt(g.get("threshold"), "g"), fmt(g.get("value")),
                           "passed" if g.get("passed") else f"**FAILED**: {g.get('message', '')}"]))
    return "\n".join(lines)


def _reference(doc: dict[str, Any]) -> str | None:
    rows = doc.get("rows") or []
    return rows[1].get("source") if len(rows) > 1 else None


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
    deltas = deltas_table(doc)
    if deltas:
        out += [f"## Change vs the reference (`{_reference(doc)}`)", "", deltas, ""]
    gate_md = gates_table(doc)
    if gate_md:
        out += ["## Gates", "", gate_md, ""]
    settings = doc.get("settings") or {}
    grid = settings.get("samples_png")
    if grid:
        out += ["## Samples", "", f"Sample grid (one row per model, the same inputs in every column): `{grid}`", ""]
    shown = {k: settings.get(k) for k in ("extractor", "real", "real_count", "num_samples", "batch_size", "seed", "device")
             if settings.get(k) is not None}
    if shown:
        out += ["## Settings", "", *[f"- {k}: `{v}`" for k, v in shown.items()], ""]
    notes = doc.get("notes") or []
    if notes:
        out += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(out)
