"""`gancompress finetune`: recover a pruned generator with its discriminator as the judge."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..finetune import defaults as D
from .errors import handle_errors
from .options import (Disc, Freeze, NM, AdvSchedule, AdvWeight, DWarmup, EmaDecay, FeatureWeight, Loss, Ramp, Regrow, RecalibrateBn, StudentMode, Amp, ChannelsLast, Compile, TensorBoard, Allocation, RecoveryImportance, Block, Exclude, Include, KeepDense, NMAxis, Plan, Arch, ArchKwargs, BatchSize, Coupled, DArch, DArchKwargs, Data, Device, Direction, Force,
                      Granularity, Inputs, Json, LrD, LrG, LrSchedule, LrWarmup, Method, Mu, OptSource, ProgressInterval, PruneFirstLast, QuantizeAware, Quiet, Seed,
                      Sparsity, Steps, TrustPickle, Workers, flag, load_options, output_option)
from .output import human_console, notice, print_json
from .stdio import emit_written, source_from_stdin
from . import progress as cli_progress

OutputOpt = Annotated[Optional[Path], output_option("<stem>.ft.safetensors beside the input; the log, samples and resume state go beside it")]
Teacher = Annotated[Optional[str], typer.Option("--teacher", help="The dense generator (default: the input when dense, else the source its pruning recorded).")]
Crop = Annotated[Optional[int], typer.Option("--crop", help="Image-to-image: train on random CROP x CROP windows (output pixels; default the model's native size, 256 at most for super-resolution).")]
Perceptual = Annotated[Optional[str], typer.Option("--perceptual-weights", help="Super-resolution: a VGG19 state dict (torchvision layout, e.g. vgg19-dcbbeb0d.pth) enabling ESRGAN's perceptual term; nothing is downloaded.")]
SrBlur = Annotated[float, typer.Option("--sr-blur", help="Super-resolution: Gaussian blur sigma (HR pixels) before the bicubic downscaling that makes the inputs.")]
SrNoise = Annotated[float, typer.Option("--sr-noise", help="Super-resolution: Gaussian noise std (in [0, 1] units) added to the low-resolution inputs.")]
Lam = Annotated[float, typer.Option("--lambda", help="Weight of the discriminative consistency L_DC.")]
R1 = Annotated[Optional[float], typer.Option("--r1-gamma", show_default=False, help="R1 penalty on D (0: off; default: the loss profile's own, StyleGAN2 10 every 16 steps, else off).")]
PlWeight = Annotated[float, typer.Option("--pl-weight", help="StyleGAN2: weight of the path-length regulariser on the compressed generator, every 4 steps (0: off; StyleGAN2 trains with 2).")]
LogEvery = Annotated[int, typer.Option("--log-every", help="Write the JSON-lines log every N steps (0: off).")]
SampleEvery = Annotated[int, typer.Option("--sample-every", help="Write a teacher-vs-student sample grid every N steps (0: off).")]
SaveEvery = Annotated[int, typer.Option("--save-every", help="Checkpoint (resumable) every N steps (0: only at the end).")]
Resume = Annotated[bool, flag("--resume", help="Continue an interrupted run from the state beside -o.")]


@handle_errors
def finetune(source: OptSource = None, output: OutputOpt = None, data: Data = None, teacher: Teacher = None, discriminator: Disc = None,
             inputs: Inputs = None, method: Method = D.DEFAULT_METHOD, loss: Loss = None, lam: Lam = D.DEFAULT_LAMBDA, mu: Mu = D.DEFAULT_MU,
             adv_weight: AdvWeight = D.DEFAULT_ADV_WEIGHT, adv_schedule: AdvSchedule = D.DEFAULT_ADV_SCHEDULE,
             d_warmup: DWarmup = D.DEFAULT_D_WARMUP, ema_decay: EmaDecay = None, feature_weight: FeatureWeight = 0.0,
             steps: Steps = D.DEFAULT_STEPS, batch_size: BatchSize = None, lr_g: LrG = D.DEFAULT_LR_G, lr_d: LrD = None,
             lr_schedule: LrSchedule = D.DEFAULT_LR_SCHEDULE, lr_warmup: LrWarmup = D.DEFAULT_LR_WARMUP,
             sparsity: Sparsity = None, granularity: Granularity = "element", ramp_fraction: Ramp = D.DEFAULT_RAMP_FRACTION, regrow: Regrow = False, recalibrate_bn: RecalibrateBn = 0,
             allocation: Allocation = "uniform", importance: RecoveryImportance = None, keep_dense: KeepDense = "auto", block: Block = "4x4", nm: NM = "2:4",
             nm_axis: NMAxis = "in", include: Include = None, exclude: Exclude = None, plan: Plan = None,
             prune_first_last: PruneFirstLast = False, coupled: Coupled = False,
             freeze_discriminator: Freeze = False, student_mode: StudentMode = D.DEFAULT_STUDENT_MODE,
             r1_gamma: R1 = None, pl_weight: PlWeight = D.DEFAULT_PL_WEIGHT, seed: Seed = 0, device: Device = "auto", amp: Amp = "none", log_every: LogEvery = D.DEFAULT_LOG_EVERY,
             sample_every: SampleEvery = D.DEFAULT_SAMPLE_EVERY, save_every: SaveEvery = D.DEFAULT_SAVE_EVERY, resume: Resume = False, force: Force = False,
             json_out: Json = False, quiet: Quiet = False, trust_pickle: TrustPickle = False, crop: Crop = None,
             direction: Direction = "AtoB", perceptual_weights: Perceptual = None, sr_blur: SrBlur = 0.0,
             sr_noise: SrNoise = 0.0, arch: Arch = None, arch_kwargs: ArchKwargs = None, d_arch: DArch = None,
             d_arch_kwargs: DArchKwargs = None, workers: Workers = 2, channels_last: ChannelsLast = False,
             compile_: Compile = False, tensorboard: TensorBoard = None, quantize_aware: QuantizeAware = None,
             progress_interval: ProgressInterval = cli_progress.DEFAULT_INTERVAL) -> None:
    """Recover a pruned generator (or prune a dense one gradually, with --sparsity) against its discriminator.

    The default method, auto, picks hybrid when the checkpoint (or --discriminator) gives a discriminator and
    --data gives real images, and distill otherwise, and says which. distill trains the pruned generator towards
    the dense teacher's output for the same input (per-sample L1) and needs neither; hybrid adds the paper's
    consistency terms through the discriminator, which keeps training on --data. Writes the recovered
    checkpoint and prints its path as the only stdout line.

    Example: gancompress finetune pruned.safetensors --data builtin:digits -o recovered.safetensors --steps 750

    Example: gancompress finetune builtin:digits-dcgan --sparsity 0.75 --data builtin:digits -o d75.safetensors

    Example: gancompress finetune checkpoints/facades_pix2pix --sparsity 0.5 --data datasets/facades/train --crop 64 -o facades50.safetensors

    Example (trained for the int8 file it ships as): gancompress finetune pruned.safetensors --data builtin:digits --quantize-aware int8 -o r.safetensors && gancompress export r.safetensors --quantize int8

    Example (data-parallel, 4 processes; --batch-size is the global batch): torchrun --nproc_per_node 4 -m gancompress finetune pruned.safetensors --data builtin:digits -o recovered.safetensors
    """
    from ..finetune.config import (DataConfig, FinetuneConfig, LossWeights, PruneSchedule, Rates, RecoveryConfig,
                                   RunConfig)
    from ..finetune.distributed import from_rank0
    from ..io_utils import derived_output
    from dataclasses import replace

    load = load_options(trust_pickle=trust_pickle, arch=arch, arch_kwargs=arch_kwargs, d_arch=d_arch,
                        d_arch_kwargs=d_arch_kwargs)
    source = from_rank0(lambda: source_from_stdin(source), device)  # torchrun: only rank 0 reads stdin
    output = output or derived_output(source, "ft")
    recovery = RecoveryConfig(
        method=method, loss=loss, steps=steps, batch_size=batch_size, freeze_discriminator=freeze_discriminator,
        student_mode=student_mode, perceptual_weights=perceptual_weights, quantize_aware=quantize_aware, ema_decay=ema_decay,
        weights=LossWeights(lam=lam, mu=mu, adv_weight=adv_weight, r1_gamma=r1_gamma, pl_weight=pl_weight,
                            feature_weight=feature_weight, adv_schedule=adv_schedule, d_warmup=d_warmup),
        rates=Rates(lr_g=lr_g, lr_d=lr_d, lr_schedule=lr_schedule, lr_warmup=lr_warmup), schedule=PruneSchedule(ramp_fraction=ramp_fraction, regrow=regrow, recalibrate_bn=recalibrate_bn))
    prune = _prune_config(sparsity, granularity, plan, allocation=allocation, importance=D.recovery_importance(importance, coupled), keep_dense=keep_dense, block=block,
                          nm=nm, nm_axis=nm_axis, include=tuple(include or ()), exclude=tuple(exclude or ()),
                          prune_first_last=prune_first_last, coupled=coupled)
    config = FinetuneConfig(
        load=replace(load, source=source, direction=direction),
        run=RunConfig(output, seed=seed, device=device, amp=amp, channels_last=channels_last, compile=compile_,
                      log_every=log_every, sample_every=sample_every, save_every=save_every, resume=resume,
                      force=force, tensorboard=tensorboard),
        recovery=recovery, prune=prune, teacher=teacher, discriminator=discriminator,
        data=DataConfig(data, inputs=inputs, crop=crop, sr_blur=sr_blur, sr_noise=sr_noise, workers=workers))
    _run_and_report(config, quiet=quiet, json_out=json_out, interval=progress_interval)


def _prune_config(sparsity: float | None, granularity: str, plan: Path | None, **options: Any):
    """The gradual-pruning target, or None when the input is only recovered (no -s, no --plan, not nm)."""
    from ..prune import PruneConfig
    from ..prune.plan import read_plan

    layers = read_plan(plan) if plan is not None else None
    if sparsity is None and layers is None and granularity != "nm":
        return None
    return PruneConfig(sparsity, granularity=granularity, plan=layers, **options)


def _run_and_report(config: Any, *, quiet: bool, json_out: bool, interval: float) -> None:
    """Run the recovery with progress and stopping wired to the terminal; print its result (rank 0 only)."""
    from ..finetune import run_finetune
    from ..finetune.distributed import is_main_process

    with cli_progress.stop_signals() as should_stop:
        if not is_main_process():  # torchrun: only rank 0 reports
            run_finetune(config, should_stop=should_stop)
            return
        with cli_progress.EventBars(quiet=quiet or json_out, info=lambda e: _info(e.info), interval=interval) as bars:
            result = run_finetune(config, on_event=bars, should_stop=should_stop)
    for note in result.notes:
        notice(f"note: {note}", quiet=quiet or json_out)
    if json_out:
        print_json(result.to_dict())
        return
    if not quiet:
        _print(result.to_dict())
    emit_written(Path(result.to_dict()["output"]))


def _info(metrics: dict[str, float]) -> str:
    labels = (("L_GC", "L_GC"), ("L_DC", "L_DC"), ("l1", "L1"), ("d_loss", "D"), ("sparsity", "sparsity"))
    return "  ".join(f"{label} {metrics[key]:.4g}" for key, label in labels if key in metrics)


def _print(result: dict[str, Any]) -> None:
    console = human_console()
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items())
    sp = result["sparsity"]
    console.print(f"{result['method']} ({result['loss']} loss), {result['steps']} steps, {result['seconds']:.1f} s", markup=False)
    console.print(f"final: {metrics or '-'}", markup=False)
    console.print(f"sparsity: {sp['all']:.1%} of all prunable weights, {sp['pruned']:.1%} of the pruned layers", markup=False)
    if result["log"]:
        console.print(f"log: {result['log']}", markup=False)
