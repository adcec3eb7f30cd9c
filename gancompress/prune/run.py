"""Prune a checkpoint's generator: the library function behind ``gancompress prune``."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..formats.checkpoint import GanBundle, save_bundle
from ..errors import InputError
from ..io_utils import check_writable, derived_output
from ..loading import LoadOptions, load_bundle
from . import PruneConfig, achieved_sparsity, apply_masks, compute_masks, layer_report, plan_target


@dataclass
class PruneJob:
    """One ``prune`` run: the source, the pruning config, and where the result goes."""

    source: str
    config: PruneConfig
    output: Path | None = None
    force: bool = False
    dry_run: bool = False
    load: LoadOptions = field(default_factory=LoadOptions)


@dataclass
class PruneResult:
    output: Path | None
    layers: list[dict[str, Any]]
    sparsity: dict[str, float]
    config: dict[str, Any]
    warnings: list[str]
    bundle: GanBundle

    def to_json(self) -> dict[str, Any]:
        return {"output": str(self.output) if self.output else None, "config": self.config,
                "sparsity": self.sparsity, "layers": self.layers, "warnings": self.warnings}


def teacher_source(bundle: GanBundle, source: str) -> str:
    """The dense model a pruned checkpoint came from (recorded once, at the first prune)."""
    recorded = (bundle.meta.get("pruning") or {}).get("source")
    if recorded:
        return recorded
    if source.startswith(("hf://", "builtin:")):
        return source
    return str(Path(source).expanduser().resolve())


def default_output(source: str, config: PruneConfig) -> Path:
    """``<stem>.pruned-<granularity><pct>.safetensors`` beside a local input, else in the cwd."""
    return derived_output(source, f"pruned-{config.granularity}{round(100 * config.nominal)}")


def _config_record(config: PruneConfig) -> dict[str, Any]:
    record = asdict(config)
    record["block"], record["nm"] = list(config.block), list(config.nm)
    record["include"], record["exclude"] = list(config.include), list(config.exclude)
    record["keep_dense"] = ",".join(config.keep_dense)
    record["input_shape"] = list(config.input_shape) if config.input_shape is not None else None
    return record


def prune_checkpoint(job: PruneJob) -> PruneResult:
    """Load, prune the generator by magnitude, and (unless ``dry_run``) write the project file."""
    output = job.output or default_output(job.source, job.config)
    if not job.dry_run:
        check_writable(output, force=job.force, inputs=(Path(job.source),))
    bundle = load_bundle(job.source, job.load)
    if bundle.g_spec is None:
        raise InputError("this checkpoint holds a TorchScript or pickled module; prune needs a state dict it can rebuild")
    config = job.config
    if config.coupled and config.input_shape is None:  # coupled traces the generator at its input shape
        from ..generation import generator_info

        config = replace(config, input_shape=generator_info(bundle).input_shape)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = plan_target(bundle.generator, config, bundle.masks or None)
        masks = compute_masks(bundle.generator, config, previous=bundle.masks or None, plan=plan)
    apply_masks(bundle.generator, masks)
    layers = layer_report(bundle.generator, masks, plan.dense)
    sparsity = {**achieved_sparsity(bundle.generator, masks), "target": plan.target / plan.total}
    record = {**_config_record(config), "source": teacher_source(bundle, job.source),
              "layers": sorted(masks), "achieved": sparsity, "dense": plan.dense, "notes": plan.notes}
    bundle.masks = masks
    bundle.meta["pruning"] = record
    bundle.meta["provenance"] = {"source": job.source, "command": "prune"}
    if not job.dry_run:
        save_bundle(bundle, output, force=job.force)
    notes = [str(w.message) for w in caught] + plan.notes
    return PruneResult(None if job.dry_run else output, layers, sparsity, record, notes, bundle)
