"""Prune a checkpoint's generator: the library function behind ``gancompress prune``."""
from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..formats.checkpoint import GanBundle, save_bundle
from ..errors import InputError
from ..io_utils import check_writable, derived_output
from ..loading import LoadOptions, load_bundle
from . import PruneConfig, achieved_sparsity, apply_masks, compute_masks, layer_report, plan_target
from .granularity import GRANULARITIES
from .recalibrate import check_batches, norms_with_stats, recalibrate_norms

if TYPE_CHECKING:
    from ..generation import GeneratorInfo


@dataclass
class PruneJob:
    """One ``prune`` run: the source, the pruning config, and where the result goes."""

    source: str
    config: PruneConfig
    output: Path | None = None
    force: bool = False
    dry_run: bool = False
    load: LoadOptions = field(default_factory=LoadOptions)
    # batches of latents to re-estimate the BatchNorm statistics on after pruning (0: off; None: auto, see
    # ``recalibration_batches``)
    recalibrate_bn: int | None = 0
    seed: int = 0  # of those latents

    def __post_init__(self) -> None:
        check_batches(self.recalibrate_bn, auto=True)


RECALIBRATION_BATCH = 64  # latents per batch of ``prune --recalibrate-bn``
# ``recalibrate_bn=None`` (the CLI's default): this many batches for a noise-input generator with BatchNorms. One-shot
# 90% on the zoo's four BatchNorm GANs it cuts digits-FID 2-7x, and 40 batches change it by at most 1.4% (docs/zoo.md)
AUTO_RECALIBRATION = 10


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


def default_output(source: str, granularity: str, sparsity: float) -> Path:
    """``<stem>.<granularity><percent>.safetensors`` beside a local input, else in the cwd; a re-prune of
    ``m.block90.safetensors`` gives ``m.block95.safetensors``, not ``m.block90.block95.safetensors``."""
    path = derived_output(source, f"{granularity}{round(100 * sparsity)}")
    base, _, tag = path.name[: -len(".safetensors")].rpartition(".")
    previous = _TAG.search(base)
    if previous and previous.group(1) in GRANULARITIES:
        base = base[: previous.start()]
    return path.with_name(f"{base}.{tag}.safetensors")


_TAG = re.compile(r"\.(?:pruned-)?([a-z]+)(\d{1,3})$")


def _config_record(config: PruneConfig) -> dict[str, Any]:
    record = asdict(config)
    record["block"], record["nm"] = list(config.block), list(config.nm)
    record["include"], record["exclude"] = list(config.include), list(config.exclude)
    record["keep_dense"] = ",".join(config.keep_dense)
    record["input_shape"] = list(config.input_shape) if config.input_shape is not None else None
    return record


def prune_checkpoint(job: PruneJob) -> PruneResult:
    """Load, prune the generator by magnitude, and (unless ``dry_run``) write the project file."""
    if job.output is not None and not job.dry_run:
        check_writable(job.output, force=job.force, inputs=(Path(job.source),))
    bundle = load_bundle(job.source, job.load)
    if bundle.g_spec is None:
        raise InputError("this checkpoint holds a TorchScript or pickled module; prune needs a state dict it can rebuild")
    config = job.config
    if config.coupled and config.input_shape is None:  # coupled traces the generator at its input shape
        from ..generation import generator_info

        config = replace(config, input_shape=generator_info(bundle).input_shape)
    batches, info, skipped = recalibration_batches(bundle, job.recalibrate_bn)
    previous, previous_record = bundle.masks or None, bundle.meta.get("pruning")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = plan_target(bundle.generator, config, previous)  # refuses an unreachable target before any work
        masks = compute_masks(bundle.generator, config, previous=previous, plan=plan)
    apply_masks(bundle.generator, masks)
    layers = layer_report(bundle.generator, masks, plan.dense)
    sparsity = {**achieved_sparsity(bundle.generator, masks, rows=layers), "target": plan.target / plan.total}
    notes = [str(w.message) for w in caught] + plan.notes
    record = {**_config_record(config), "source": teacher_source(bundle, job.source), "layers": sorted(masks),
              "dense": plan.dense}
    granularity, percent = config.granularity, config.nominal
    if _unchanged(previous, masks):  # the old masks already reach the target: say so, name and record what is there
        notes.append(f"the existing masks already zero {sparsity['all']:.1%} of all prunable weights, at or above the "
                     f"{config.nominal:.0%} asked: nothing more was pruned")
        if isinstance(previous_record, dict):
            record = {**previous_record, "layers": sorted(masks)}
        granularity, percent = str(record.get("granularity", granularity)), sparsity["all"]
        masks = {k: v.to(torch.bool) for k, v in previous.items()}
    notes += [skipped] if skipped else []
    if batches and not job.dry_run and not _unchanged(previous, masks):
        record["recalibrate_bn"] = _recalibrate(bundle, info, batches, job.seed)
    record["achieved"] = sparsity
    output = job.output or default_output(job.source, granularity, percent)
    write = not job.dry_run
    if job.output is None and _is_input(output, job.source):  # a no-op re-prune: the input is the result
        notes[-1] += f"; {job.source} already is the result, nothing written"
        output, write = Path(job.source), False
    elif job.output is None and write:
        check_writable(output, force=job.force, inputs=(Path(job.source),))
    bundle.masks = masks
    bundle.meta["pruning"] = record
    bundle.meta["provenance"] = {"source": job.source, "command": "prune"}
    if write:
        save_bundle(bundle, output, force=job.force)
    return PruneResult(None if job.dry_run else output, layers, sparsity, record, notes, bundle)


def recalibration_batches(bundle: GanBundle, asked: int | None) -> tuple[int, GeneratorInfo | None, str | None]:
    """(batches to recalibrate on, the generator's info when there are any, why none where auto could not):
    ``asked`` as given (a generator that translates images is refused: no latents describe its inputs), or for
    None ``AUTO_RECALIBRATION`` when the generator has BatchNorms with running statistics and takes noise, else 0."""
    from ..generation import generator_info

    if asked == 0 or (asked is None and not norms_with_stats(bundle.generator)):
        return 0, None, None
    try:
        info = generator_info(bundle)
    except Exception as exc:  # noqa: BLE001 - auto must never cost a prune that works without it
        if asked or isinstance(exc, (KeyboardInterrupt, MemoryError)):
            raise
        return 0, None, (f"BatchNorm statistics kept: the generator did not run on a dummy input "
                         f"({type(exc).__name__}: {str(exc)[:120]}); --recalibrate-bn 0 silences this")
    if info.input_kind != "noise":
        if asked:
            raise InputError("prune --recalibrate-bn draws latents, and this generator translates images: recalibrate "
                             "during recovery instead (`finetune --recalibrate-bn N` draws from its --inputs), or leave "
                             "it out")
        return 0, None, None
    return (AUTO_RECALIBRATION if asked is None else asked), info, None


def _recalibrate(bundle: GanBundle, info: GeneratorInfo, batches: int, seed: int) -> dict[str, int]:
    """The pruned generator's BatchNorm statistics re-estimated on ``batches`` batches of latents (:mod:`.recalibrate`)."""
    from ..generation import draw_latents

    gen = torch.Generator().manual_seed(seed)
    param = next(bundle.generator.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    inputs = (draw_latents(RECALIBRATION_BATCH, info.input_shape, gen, info.num_classes).to(device) for _ in range(batches))
    norms = recalibrate_norms(bundle.generator, inputs)
    return {"batches": batches, "batch_size": RECALIBRATION_BATCH, "seed": seed, "norms": norms}


def _is_input(output: Path, source: str) -> bool:
    try:
        return Path(source).expanduser().resolve() == output.resolve()
    except OSError:
        return False


def _unchanged(previous: dict[str, torch.Tensor] | None, masks: dict[str, torch.Tensor]) -> bool:
    """True when re-pruning zeroed nothing new (every mask is the one the file already had)."""
    return bool(previous) and all(torch.equal(previous[k].bool(), m) if k in previous else bool(m.all())
                                  for k, m in masks.items())
