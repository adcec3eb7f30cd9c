"""Every option that two commands share, declared once so each command spells it the same way.

A help text lists the valid names of a registry with ``{choices:KIND}``; the command class in
``cli/main.py`` fills them in from :data:`CHOICES` when help is shown, so the lists cannot drift
from the registries, and plain ``gancompress --help`` does not import torch to build them.
"""
from __future__ import annotations

import importlib
from pathlib import Path
import re
from typing import Annotated, Callable, Optional

import typer

from ..finetune import defaults as D


def _names(module: str, attr: str) -> Callable[[], list[str]]:
    def load() -> list[str]:
        found = getattr(importlib.import_module(f"gancompress.{module}"), attr)
        return list(found.names() if hasattr(found, "names") else found)

    return load


# KIND -> where its valid names live (a Registry, or a tuple/dict of names).
CHOICES: dict[str, Callable[[], list[str]]] = {
    "arch": _names("archs", "ARCHITECTURES"),
    "granularity": _names("prune.granularity", "GRANULARITIES"),
    "allocation": _names("prune.allocation", "ALLOCATIONS"),
    "nm-axis": _names("prune.granularity", "NM_AXES"),
    "loss": _names("losses", "LOSSES"),
    "extractor": _names("metrics.extractors", "EXTRACTORS"),
    "method": _names("finetune.methods", "METHODS"),
    "schedule": _names("finetune.defaults", "SCHEDULES"),
    "lr-schedule": _names("finetune.defaults", "LR_SCHEDULES"),
    "adv-schedule": _names("finetune.defaults", "ADV_SCHEDULES"),
    "format": _names("export.formats", "EXPORT_FORMATS"),
    "dtype": _names("export.config", "DTYPE_NAMES"),
    "quantize": _names("formats.quantize", "SCHEMES"),
    "encodings": _names("formats.sparse", "SPARSE_ENCODINGS"),
}
_PLACEHOLDER = re.compile(r"\{choices:([a-z-]+)\}")


def fill_choices(text: str) -> str:
    """``text`` with every ``{choices:KIND}`` replaced by KIND's names, comma-separated."""
    return _PLACEHOLDER.sub(lambda m: ", ".join(CHOICES[m.group(1)]()), text)


def flag(*names: str, help: str) -> typer.models.OptionInfo:
    """An on/off option: no value, no ``--no-...`` twin."""
    return typer.Option(*names, help=help, show_default=False)


# --- what to read -------------------------------------------------------------------------
OptSource = Annotated[Optional[str], typer.Argument(metavar="SOURCE", show_default=False, help="Checkpoint: a file (.pt/.pth/.ckpt/.bin/.safetensors), a directory, hf://OWNER/REPO[@REV][/PATH] or builtin:digits-dcgan; '-' or omitted reads the path from stdin.")]
TrustPickle = Annotated[bool, flag("--trust-pickle", help="Allow pickles that run code on load (whole-module checkpoints). Only for files you trust.")]
Arch = Annotated[Optional[str], typer.Option("--arch", metavar="MODULE:CALLABLE", help="Your own generator class, for networks not built in (built in and recognised without it: {choices:arch}).")]
ArchKwargs = Annotated[Optional[str], typer.Option("--arch-kwargs", metavar="JSON", help="Keyword arguments for --arch, e.g. '{\"nz\": 64}'.")]
DArch = Annotated[Optional[str], typer.Option("--d-arch", metavar="MODULE:CALLABLE", help="Your own discriminator class, when the checkpoint's D is not built in.")]
Disc = Annotated[Optional[str], typer.Option("--discriminator", help="Checkpoint holding the discriminator, when the input has none.")]
DArchKwargs = Annotated[Optional[str], typer.Option("--d-arch-kwargs", metavar="JSON", help="Keyword arguments for --d-arch, e.g. '{\"ndf\": 64}'.")]
Data = Annotated[Optional[str], typer.Option("--data", metavar="PATH", help="Real images: a folder, or builtin:digits. Image-to-image: pix2pix: side-by-side A|B images or A/ and B/ folders; CycleGAN: A/ and B/ folders; super-resolution: high-resolution images.")]
Inputs = Annotated[Optional[str], typer.Option("--inputs", metavar="DIR", help="Image-to-image: a folder of A (input) images, matched by path (without the suffix) with the B images in --data.")]
Direction = Annotated[str, typer.Option("--direction", metavar="AtoB|BtoA", help="Image-to-image: which way the model translates (swaps A and B in --data; BtoA loads G_B/D_B from a CycleGAN directory).")]

# --- what to write ------------------------------------------------------------------------
Force = Annotated[bool, flag("--force", help="Overwrite an existing output file.")]
Json = Annotated[bool, flag("--json", help="Print one JSON document on stdout instead of tables.")]
Quiet = Annotated[bool, flag("--quiet", "-q", help="No progress bars, progress lines or notices.")]
TensorBoard = Annotated[Optional[Path], typer.Option("--tensorboard", metavar="DIR", help="Also write TensorBoard events into DIR: the recovery's losses, learning rates and sparsity at each step of its JSON-lines log, and its sample grids (needs: pip install 'gancompress[tensorboard]').")]
ProgressInterval = Annotated[float, typer.Option("--progress-interval", metavar="SECONDS", min=0.0, help="Without a terminal (CI logs, schedulers): a plain progress line (step/total, losses, rate, ETA) every SECONDS and at the end of each stage.")]


def output_option(default: str) -> typer.models.OptionInfo:
    """``-o/--output FILE``; ``default`` says which file is written without it."""
    return typer.Option("--output", "-o", metavar="FILE", show_default=False,
                        help=f"File to write (default: {default}; never overwrites without --force).")


def out_dir_option(default: str) -> typer.models.OptionInfo:
    """``--out-dir DIR``; ``default`` says which folder is written without it."""
    return typer.Option("--out-dir", metavar="DIR", show_default=False, help=f"Folder to write into (default: {default}).")


Quantize = Annotated[Optional[str], typer.Option("--quantize", metavar="SCHEME", show_default=False, help="Store the conv/linear weights in 8 bits: {choices:quantize} (int8: symmetric, a scale per output channel, per tile for block-sparse weights; fp8: e4m3 with per-channel scales); biases and normalisation stay float32.")]
Encodings = Annotated[Optional[str], typer.Option("--encodings", metavar="LIST", show_default=False, help="--format sparse: store weights only in these encodings (comma-separated from: {choices:encodings}; dense always applies); by default each tensor gets the smallest. `--encodings bitmask` writes files compressed-tensors' sparse-bitmask reader (and format-version-1 readers) read.")]
Quantizes = Annotated[Optional[str], typer.Option("--quantize", metavar="LIST", show_default=False, help="Comma-separated 8-bit schemes from: {choices:quantize}; each recovered model is also exported sparse with --quantize SCHEME and measured (table rows 'METHOD + SCHEME' with the file size and the FID over the float model's).")]
QuantizeAware = Annotated[Optional[str], typer.Option("--quantize-aware", metavar="SCHEME", show_default=False, help="Train G_C through fake quantization of its conv/linear weights ({choices:quantize}; straight-through gradients), so `export --quantize SCHEME` ships exactly the weights it was recovered with.")]

# --- how to run ---------------------------------------------------------------------------
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps (auto picks CUDA when present).")]
Amp = Annotated[str, typer.Option("--amp", metavar="none|bf16|fp16", help="Mixed precision: none, bf16, or fp16 (with a gradient scaler, for GPUs without bf16).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same result on CPU.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", show_default=False, help="Images per recovery step (default: the method's own, hybrid 128, every other 64; docs/zoo.md).")]
ChannelsLast = Annotated[bool, flag("--channels-last", help="Keep images and conv weights in NHWC memory order (faster convolutions on recent GPUs).")]
Compile = Annotated[bool, flag("--compile", help="torch.compile G_C, G_O and D (runs eagerly, with a note, when compiling fails).")]
Workers = Annotated[int, typer.Option("--workers", help="DataLoader processes decoding a --data folder, which is streamed a batch at a time (0: decode in the main process).")]
NumSamples = Annotated[int, typer.Option("--num-samples", "-n", help="Generated samples per model (for FID and the other distribution metrics).")]
Extractor = Annotated[Optional[str], typer.Option("--extractor", show_default=False, help="Feature extractor: {choices:extractor} (default: digits, bundled and offline, for 16x16 one-channel models; else inception, the standard FID network, its weights downloaded on first use).")]

# --- pruning ------------------------------------------------------------------------------
Sparsity = Annotated[Optional[float], typer.Option("--sparsity", "-s", metavar="FRACTION", help="Fraction of ALL prunable (conv/linear) weights that are zero afterwards, dense-kept layers included; in [0, 1).")]
Granularity = Annotated[str, typer.Option("--granularity", "-g", help="What is zeroed together: {choices:granularity}.")]
Sparsities = Annotated[str, typer.Option("--sparsity", "-s", metavar="LIST", help="Comma-separated sparsities, e.g. 0.25,0.5,0.75,0.9.")]
Granularities = Annotated[str, typer.Option("--granularity", "-g", metavar="LIST", help="Comma-separated granularities from: {choices:granularity}.")]
PruneFirstLast = Annotated[bool, flag("--prune-first-last", help="Older spelling of --keep-dense none.")]
Block = Annotated[str, typer.Option("--block", metavar="RxC", help="Tile size for --granularity block.")]
NM = Annotated[str, typer.Option("--nm", metavar="N:M", help="Keep N of every M weights, for --granularity nm.")]
Include = Annotated[Optional[list[str]], typer.Option("--include", metavar="GLOB", help="Only prune layers whose name matches this glob (repeatable).")]
Exclude = Annotated[Optional[list[str]], typer.Option("--exclude", metavar="GLOB", help="Never prune layers whose name matches this glob (repeatable).")]
KeepDense = Annotated[str, typer.Option("--keep-dense", metavar="POLICY", help="Layers that stay dense: auto (layers under 2% of the weights that read the input or feed the output, unless the target needs them), first, last, none, or module-name globs; comma-separated.")]
_IMPORTANCE = "What ranks the weights: magnitude (|w|) or bn-scaled (|w| times the eval-mode scale of the BatchNorm right after the layer, per output channel; layers without one rank by magnitude)."
Importance = Annotated[str, typer.Option("--importance", help=_IMPORTANCE)]
RecoveryImportance = Annotated[Optional[str], typer.Option("--importance", show_default=False, help=_IMPORTANCE + " Default: bn-scaled, the zoo's pick for pruning during recovery (magnitude with --coupled).")]
Allocation = Annotated[str, typer.Option("--allocation", help="How the zeros are spread over the pruned layers: {choices:allocation} (uniform: the same sparsity per layer; global: one magnitude threshold; lamp: layer-adaptive magnitude scores; erk: Erdos-Renyi-Kernel).")]
Allocations = Annotated[str, typer.Option("--allocation", metavar="LIST", help="Comma-separated allocations from: {choices:allocation}.")]
Plan = Annotated[Optional[Path], typer.Option("--plan", metavar="FILE", help="A per-layer sparsity plan (JSON, from `gancompress sensitivity`); layers it omits stay dense; when a sparsity is also given, the plan is scaled to that overall target.")]
NMAxis = Annotated[str, typer.Option("--nm-axis", help="N:M runs along: {choices:nm-axis} (in: the input channels, what sparse tensor cores use; kernel: the older layout).")]
Coupled = Annotated[bool, flag("--coupled", help="With --granularity filter: prune filters joined by residual additions together, so export --format shrunk can remove them.")]

# --- recovery -----------------------------------------------------------------------------
Method = Annotated[str, typer.Option("--method", help=f"Recovery method: {{choices:method}}. {D.DEFAULT_METHOD} (the default) picks hybrid when a discriminator and --data are at hand, else distill, and says which (the zoo's best by mean and worst case: docs/zoo.md). distill is a per-sample L1 to the dense teacher (no discriminator or data needed); hybrid adds the paper's consistency terms through the training discriminator (better than distill on the zoo's GANs with a projection or spectral-norm discriminator and its narrow DCGAN, slightly worse on the bundled DCGAN); distill-adv adds the GAN's own generator loss (both need --data).")]
Methods = Annotated[str, typer.Option("--method", metavar="LIST", help="Comma-separated recovery methods from: {choices:method}.")]
Schedule = Annotated[str, typer.Option("--schedule", help="How the target sparsity is reached: agp (prune gradually while recovering) or oneshot (prune, then recover with fixed masks).")]
Ramp = Annotated[float, typer.Option("--ramp-fraction", help="With --sparsity (sweep: with --schedule agp): fraction of the steps over which sparsity rises to the target.")]
StudentMode = Annotated[str, typer.Option("--student-mode", help="The compressed generator's mode while it trains: eval (BatchNorm uses the teacher's running statistics, fixed) or train (batch statistics, and the running ones follow the pruned network).")]
Regrow = Annotated[bool, flag("--regrow", help="With --sparsity (sweep: with --schedule agp): pruning with feedback; pruned weights keep training in a dense copy while the sparsity ramps, and each mask update ranks that copy, so they can grow back (default: off; worse on every zoo GAN under Adam, see docs/zoo.md).")]
Freeze = Annotated[bool, flag("--freeze-discriminator", help="Do not train D: its pretrained verdicts stay fixed. With hybrid on the zoo, a frozen D beat D at 2e-4 on narrow-dcgan, lost to it on upsample-sn, and lost to hybrid's default 2e-5 on every retrained member (docs/zoo.md); an adversarial term (distill-adv, finetune) can exploit a frozen D.")]
RecalibrateBn = Annotated[int, typer.Option("--recalibrate-bn", metavar="BATCHES", min=0, help="After each mask update (and before training when the input is already pruned), re-estimate the student's BatchNorm running statistics on this many batches of its inputs, so it normalises with statistics of the pruned weights instead of the dense teacher's (default 0, off: on the zoo it helped the class-conditional GAN only, see docs/zoo.md).")]
Steps = Annotated[int, typer.Option("--steps", help="Recovery (optimisation) steps.")]
LrG = Annotated[float, typer.Option("--lr-g", help="Adam learning rate of the compressed generator.")]
LrD = Annotated[Optional[float], typer.Option("--lr-d", show_default=False, help="Adam learning rate of the discriminator (default: the method's own, hybrid 2e-5, every other 2e-4; docs/zoo.md).")]
LrSchedule = Annotated[str, typer.Option("--lr-schedule", help="lr_g over the run: {choices:lr-schedule} (cosine: held while AGP prunes, then annealed to 0).")]
LrWarmup = Annotated[int, typer.Option("--lr-warmup", metavar="STEPS", help="Raise lr_g linearly over the first STEPS steps (0: off). Without it, Adam's first full-rate steps can saturate a generator's output for good; if a run still ends with one constant image (a collapse note says so), try 50.")]
Mu = Annotated[float, typer.Option("--mu", help="Weight of the per-sample L1 to the teacher beside the paper's terms (hybrid; 3: the zoo's pick of 1, 3, 10, 30, 100 with D at 2e-5, docs/zoo.md).")]
AdvWeight = Annotated[float, typer.Option("--adv-weight", help="Weight of the GAN's own generator loss beside the L1 to the teacher (distill-adv).")]
EmaDecay = Annotated[Optional[float], typer.Option("--ema-decay", show_default=False, help="Save and evaluate an exponential moving average of the compressed generator with this decay in (0, 1), e.g. 0.999, warmed up as min(decay, (1+t)/(10+t)); masks hold on it (default: off).")]
FeatureWeight = Annotated[float, typer.Option("--feature-weight", help="Weight of intermediate-feature distillation to the teacher through learned 1x1 adapters (methods that use the teacher; 0: off).")]
AdvSchedule = Annotated[str, typer.Option("--adv-schedule", help="The adversarial term's weight over the run (distill-adv, finetune): {choices:adv-schedule} (ramp: from 0 over the AGP ramp; decay: held over the ramp, then to 0 at the end).")]
DWarmup = Annotated[int, typer.Option("--d-warmup", metavar="STEPS", help="First STEPS steps: D trains on real images vs the compressed generator's fakes while the generator's adversarial term counts for nothing (distill-adv, finetune; 0: off).")]
Loss = Annotated[Optional[str], typer.Option("--loss", show_default=False, help="GAN loss profile: {choices:loss} (default: the architecture's).")]


def load_options(*, trust_pickle: bool, arch: str | None, arch_kwargs: str | None, d_arch: str | None,
                 d_arch_kwargs: str | None, **extra: object):
    """The library's ``LoadOptions`` from the loading options every model-reading command takes."""
    from ..loading import LoadOptions, parse_arch_kwargs

    return LoadOptions(trust_pickle=trust_pickle, arch=arch, arch_kwargs=parse_arch_kwargs(arch_kwargs, "--arch-kwargs"),
                       d_arch=d_arch, d_arch_kwargs=parse_arch_kwargs(d_arch_kwargs, "--d-arch-kwargs"), **extra)
