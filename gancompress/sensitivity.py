"""``gancompress sensitivity``: how much each layer's pruning changes the output, and a per-layer plan.

Every prunable layer is pruned alone (the others dense) at each probe sparsity with the chosen
granularity, and the generator's outputs on fixed inputs are compared with the dense model's:
PSNR (higher: the layer tolerates the pruning) and, with ``data``, FID of the pruned variant.
The plan gives each layer the highest probe sparsity whose PSNR stays at or above ``min_psnr``
(a layer that fails even the lowest probe gets 0 and stays dense); ``prune --plan`` applies it
as is, or scaled to an overall ``--sparsity``.
"""
from __future__ import annotations

import copy
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import InputError

ProgressFn = Callable[[int, int], None]


@dataclass
class SensitivityConfig:
    source: str
    sparsities: tuple[float, ...] = (0.5, 0.75, 0.9)
    granularity: str = "element"
    num_samples: int = 64
    min_psnr: float = 30.0
    data: str | None = None  # real images: FID of every variant too (slower)
    fid_samples: int = 500
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        from .prune import GRANULARITIES, check_sparsity

        self.sparsities = tuple(sorted({check_sparsity(s) for s in self.sparsities}))
        if not self.sparsities or 0.0 in self.sparsities:
            raise InputError("--sparsity: give probe sparsities above 0, e.g. 0.5,0.75,0.9")
        GRANULARITIES.get(self.granularity)
        if self.granularity == "nm":
            raise InputError("sensitivity probes sparsities per layer; N:M has one per pattern: use element to plan N:M layers")
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise InputError(f"--num-samples must be a positive integer, got {self.num_samples!r}")
        if not math.isfinite(self.min_psnr):
            raise InputError(f"--min-psnr must be a number of dB, got {self.min_psnr!r}")


@dataclass
class SensitivityResult:
    rows: list[dict[str, Any]]  # one per (layer, sparsity): layer, params, sparsity, psnr, fid
    plan: dict[str, float]
    dense_fid: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "plan": self.plan, "dense_fid": self.dense_fid, "settings": self.settings}


def _outputs(generator: torch.nn.Module, inputs: list[torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([generator(x).float().cpu() for x in inputs])


def _prune_one(generator: torch.nn.Module, name: str, granularity: str, sparsity: float) -> torch.nn.Module:
    """A copy of ``generator`` with only layer ``name`` pruned (per-layer sparsity ``sparsity``)."""
    from .prune import GRANULARITIES, apply_masks, layer_kind, param_key

    pruned = copy.deepcopy(generator)
    module = pruned.get_submodule(name)
    key = param_key(name, module)
    kind, groups = layer_kind(module)
    mask = GRANULARITIES.get(granularity).mask(pruned.get_parameter(key), sparsity, kind, groups=groups, layer=key)
    apply_masks(pruned, {key: mask})
    return pruned


def sensitivity(config: SensitivityConfig, on_progress: ProgressFn | None = None) -> SensitivityResult:
    """Prune one layer at a time at every probe sparsity; measure; derive the plan."""
    from .evaluate.models import model_inputs
    from .generation import generator_info
    from .loading import load_bundle
    from .metrics.similarity import psnr
    from .prune import is_prunable

    bundle = load_bundle(config.source)
    if bundle.masks:
        raise InputError(f"{config.source} is already pruned; measure the sensitivity of the dense model")
    info = generator_info(bundle)
    dense = bundle.generator.eval()
    inputs = list(model_inputs(info, config.num_samples, min(config.num_samples, 64), config.seed, torch.device("cpu")))
    reference = _outputs(dense, inputs)
    data_range = float(info.output_range[1] - info.output_range[0])
    layers = [(n, m) for n, m in dense.named_modules() if is_prunable(m)]
    fid = _fid_probe(config, bundle) if config.data else None
    rows, total = [], len(layers) * len(config.sparsities)
    for name, module in layers:
        for s in config.sparsities:
            pruned = _prune_one(dense, name, config.granularity, s)
            row = {"layer": name, "params": sum(p.numel() for p in module.parameters() if p.dim() >= 2),
                   "sparsity": s, "psnr": psnr(_outputs(pruned, inputs), reference, data_range)}
            row["fid"] = fid(pruned) if fid else None
            rows.append(row)
            if on_progress:
                on_progress(len(rows), total)
    plan = plan_from_rows(rows, config.min_psnr)
    settings = {"source": config.source, "granularity": config.granularity, "sparsities": list(config.sparsities),
                "num_samples": config.num_samples, "min_psnr": config.min_psnr, "seed": config.seed}
    return SensitivityResult(rows, plan, fid(dense) if fid else None, settings)


def plan_from_rows(rows: list[dict[str, Any]], min_psnr: float) -> dict[str, float]:
    """Each layer's highest probe sparsity whose PSNR is at least ``min_psnr`` (0 when none is)."""
    plan: dict[str, float] = {}
    for row in rows:
        ok = row["psnr"] is not None and (math.isinf(row["psnr"]) or row["psnr"] >= min_psnr)
        plan[row["layer"]] = max(plan.get(row["layer"], 0.0), row["sparsity"] if ok else 0.0)
    return plan


def _fid_probe(config: SensitivityConfig, bundle) -> Callable[[torch.nn.Module], float]:
    """FID of a variant of ``bundle``'s generator against ``config.data`` (each one saved to a
    temporary project file and measured by :func:`~gancompress.evaluate.evaluate`)."""
    from .evaluate import EvaluateConfig, evaluate
    from .formats.checkpoint import GanBundle, save_bundle

    folder = Path(tempfile.mkdtemp(prefix="gancompress-sensitivity-"))

    def fid(generator: torch.nn.Module) -> float:
        path = folder / "variant.safetensors"
        save_bundle(GanBundle(generator, bundle.g_spec, meta={}), path, force=True)
        report = evaluate(EvaluateConfig.from_options(sources=[str(path)], fid=True, real=config.data,
                                                      num_samples=config.fid_samples, seed=config.seed,
                                                      device=config.device))
        return report.rows[0].values().get("fid")

    return fid


def write_plot(result: SensitivityResult, path: Path) -> Path:
    """PSNR vs probe sparsity, one line per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io_utils import atomic_write

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for layer in dict.fromkeys(r["layer"] for r in result.rows):
        rows = [r for r in result.rows if r["layer"] == layer]
        ax.plot([100 * r["sparsity"] for r in rows], [min(r["psnr"], 99.0) for r in rows], marker="o", label=layer)
    ax.axhline(result.settings.get("min_psnr", 30.0), color="gray", linestyle="--", label="plan threshold")
    ax.set_xlabel("sparsity of the one pruned layer (%)")
    ax.set_ylabel("PSNR to the dense output (dB)")
    ax.set_title(f"per-layer sensitivity ({result.settings.get('granularity')})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), force=True)
    plt.close(fig)
    return path


__all__ = ["SensitivityConfig", "SensitivityResult", "sensitivity", "plan_from_rows", "write_plot"]
