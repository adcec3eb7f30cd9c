"""What ``evaluate`` reports: one row per model, deltas vs the reference, and the gates.

Gates (``max_fid``, ``max_fid_increase_pct`` vs the reference, ``min_psnr``) are evaluated on
every compared model (role ``model``); :meth:`EvaluateReport.raise_for_gates` raises
:class:`~gancompress.errors.GateFailed` (exit code 3) naming the failing numbers. The JSON
document's Markdown rendering is :mod:`gancompress.formats.report`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GateFailed
from .config import EvaluateConfig


@dataclass
class ModelRow:
    """One model's numbers (``None``: not measured)."""

    source: str
    label: str
    role: str
    metrics: dict[str, float] = field(default_factory=dict)
    similarity: Any = None  # metrics.similarity.Similarity
    similarity_to: str | None = None
    parameters: int = 0
    nonzeros: int = 0
    macs_dense: int | None = None
    macs_effective: int | None = None
    file_size: int | None = None
    latency_ms: float | None = None
    throughput: float | None = None
    latency_runtime: str | None = None  # what measured latency_ms/throughput
    latency: list[dict[str, Any]] = field(default_factory=list)  # per backend and batch size
    lpips: float | None = None

    def values(self) -> dict[str, float | None]:
        """Flat numeric view (used for deltas and the table)."""
        sim = self.similarity
        return {**self.metrics, "psnr": sim.psnr if sim else None, "ssim": sim.ssim if sim else None,
                "mean_abs_diff": sim.mean_abs_diff if sim else None, "lpips": self.lpips, "parameters": self.parameters,
                "nonzeros": self.nonzeros, "macs_dense": self.macs_dense, "macs_effective": self.macs_effective,
                "file_size": self.file_size, "latency_ms": self.latency_ms, "throughput": self.throughput}

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "label": self.label, "role": self.role, "similarity_to": self.similarity_to,
                **self.values(), "latency_runtime": self.latency_runtime, "latency": self.latency}


@dataclass
class GateResult:
    option: str
    threshold: float
    value: float | None
    passed: bool
    message: str


@dataclass
class EvaluateReport:
    rows: list[ModelRow]
    deltas: dict[str, dict[str, dict[str, float | None]]]
    gates: list[GateResult]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; infinite numbers (PSNR of identical outputs) become the string ``"inf"``."""
        doc = {"settings": self.settings, "rows": [r.to_dict() for r in self.rows], "deltas": self.deltas,
               "gates": [vars(g) for g in self.gates], "passed": not self.failed_gates, "notes": self.notes}
        return _finite(doc)

    def raise_for_gates(self) -> None:
        failed = self.failed_gates
        if failed:
            raise GateFailed("quality gate failed: " + "; ".join(g.message for g in failed))


def _finite(obj: Any) -> Any:
    from ..metrics.similarity import json_number

    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return json_number(obj) if isinstance(obj, float) else obj


DELTA_KEYS = ("fid", "kid_mean", "isc_mean", "precision", "recall", "psnr_gt", "ssim_gt", "parameters", "nonzeros", "macs_dense",
              "macs_effective", "file_size", "latency_ms", "throughput")


def _pct(value: float, ref: float) -> float | None:
    if ref == 0:
        return 0.0 if value == 0 else math.inf
    return 100.0 * (value - ref) / abs(ref)


def deltas(rows: list[ModelRow], reference: int | None) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per row but the reference, keyed by label: ``{key: {value, reference, delta, pct}}`` vs the reference row."""
    if reference is None:
        return {}
    ref = rows[reference].values()
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for i, row in enumerate(rows):
        if i == reference:
            continue
        vals = row.values()
        out[row.label] = {
            k: {"value": vals[k], "reference": ref[k], "delta": vals[k] - ref[k], "pct": _pct(vals[k], ref[k])}
            for k in DELTA_KEYS if vals.get(k) is not None and ref.get(k) is not None
        }
    return out


def _num(value: float | None, spec: str = ".4g") -> str:
    return "n/a" if value is None else format(value, spec)


def check_gates(config: EvaluateConfig, rows: list[ModelRow], reference: int | None) -> list[GateResult]:
    """Every gate on every compared model (the label leads each message when more than one is compared)."""
    tested = [r for r in rows if r.role == "model"]
    ref = rows[reference] if reference is not None else None
    return [g for row in tested for g in _row_gates(config, row, ref, len(tested) > 1)]


def _row_gates(config: EvaluateConfig, row: ModelRow, ref_row: ModelRow | None, named: bool) -> list[GateResult]:
    who = f"{row.label}: " if named else ""
    gates: list[GateResult] = []
    fid = row.metrics.get("fid")
    if config.gates.max_fid is not None:
        limit = config.gates.max_fid
        ok = fid is not None and fid <= limit
        gates.append(GateResult("--max-fid", limit, fid, ok, f"{who}FID {_num(fid)} > --max-fid {limit:g}"))
    if config.gates.max_fid_increase_pct is not None:
        ref = ref_row.metrics.get("fid") if ref_row is not None else None
        pct = _pct(fid, ref) if fid is not None and ref is not None else None
        ok = pct is not None and pct <= config.gates.max_fid_increase_pct
        gates.append(GateResult("--max-fid-increase", config.gates.max_fid_increase_pct, pct, ok,
                                f"{who}FID {_num(fid)} is {_num(pct, '+.2f')}% vs the reference's {_num(ref)} "
                                f"(> --max-fid-increase {config.gates.max_fid_increase_pct:g}%)"))
    if config.gates.min_psnr is not None:
        psnr = row.similarity.psnr if row.similarity is not None else None
        ok = psnr is not None and psnr >= config.gates.min_psnr
        gates.append(GateResult("--min-psnr", config.gates.min_psnr, psnr, ok,
                                f"{who}PSNR {_num(psnr)} dB < --min-psnr {config.gates.min_psnr:g} dB"))
    return gates


def write_report(config: EvaluateConfig, report: EvaluateReport) -> None:
    from ..io_utils import atomic_write_text

    if config.outputs.out is not None:
        text = json.dumps(report.to_json(), indent=2) + "\n"
        atomic_write_text(Path(config.outputs.out), text, force=config.outputs.force)
