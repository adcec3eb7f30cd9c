"""One compression setting end to end: the pruning config for an overall sparsity, recovery, and
the measurements (FID, PSNR to dense, nonzeros) and sample grid. Used by ``demo`` and ``sweep``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def setting_prune_config(sparsity: float, granularity: str = "element", *, allocation: str = "uniform",
                         keep_dense: str = "auto", nm_axis: str = "in", nm_runs: int = 4):
    """The :class:`~gancompress.prune.PruneConfig` of one demo/sweep setting: ``sparsity`` of ALL
    prunable weights, as ``prune -s`` means it. The default ``keep_dense`` ``auto`` keeps a tiny
    output layer dense (our probes: keeping the 288-weight output conv of the digits DCGAN dense
    lowered the 90% FID ratio from 1.79x to 1.52x). ``nm`` takes the N:M pattern whose own
    sparsity is ``sparsity``, with runs of ``nm_runs`` or the shortest longer runs that fit
    (0.5 -> 2:4, 0.75 -> 1:4, 0.9 -> 1:10)."""
    from .prune import PruneConfig, nm_for_sparsity

    nm = nm_for_sparsity(sparsity, nm_runs) if granularity == "nm" else (2, 4)
    return PruneConfig(sparsity, granularity=granularity, allocation=allocation, keep_dense=keep_dense, nm=nm,
                       nm_axis=nm_axis)


def prune_fields(config) -> dict[str, Any]:
    """The pruning fields of ``config`` as :class:`~gancompress.finetune.FinetuneConfig` takes them."""
    return {"sparsity": config.sparsity, "granularity": config.granularity, "allocation": config.allocation,
            "keep_dense": ",".join(config.keep_dense), "nm": config.nm, "nm_axis": config.nm_axis,
            "block": config.block, "include": config.include, "exclude": config.exclude}


def measure(model_path: str | Path, dense_source: str, num_samples: int, seed: int, device: str) -> dict[str, Any]:
    """FID (digits extractor for 16x16 digits models), PSNR to dense, nonzeros of one generator."""
    from .evaluate import EvaluateConfig, evaluate

    sources = [str(model_path)] if str(model_path) == dense_source else [str(model_path), dense_source]
    report = evaluate(EvaluateConfig(sources, fid=True, num_samples=num_samples, seed=seed, device=device))
    row = report.rows[0].values()
    psnr = row.get("psnr")
    return {"fid": row.get("fid"), "psnr": None if psnr is None or math.isinf(psnr) else psnr,
            "nonzeros": row.get("nonzeros"), "parameters": row.get("parameters")}


def sample_rows(entries: list[tuple[str, str | Path]], columns: int, seed: int) -> list[tuple[str, Any]]:
    """``(label, images)`` rows of the given generators on the same latents (for save_grid)."""
    import torch

    from .evaluate.models import model_inputs
    from .generation import generator_info
    from .loading import load_bundle

    rows, x = [], None
    for label, source in entries:
        bundle = load_bundle(str(source))
        info = generator_info(bundle)
        if x is None:
            x = next(model_inputs(info, columns, columns, seed, torch.device("cpu")))
        with torch.no_grad():
            rows.append((label, bundle.generator.eval()(x).float().cpu()))
    return rows


def write_samples(entries: list[tuple[str, str | Path]], path: Path, columns: int = 8, seed: int = 0) -> Path:
    from .evaluate.grids import save_grid

    rows = sample_rows(entries, columns, seed)
    scale = max(1, min(8, 64 // max(1, rows[0][1].shape[-1])))
    return save_grid(rows, path, (-1.0, 1.0), scale, force=True)
