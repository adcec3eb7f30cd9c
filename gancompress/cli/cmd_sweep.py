"""`gancompress sweep SOURCE --data DATA --sparsity ... --granularity ... --method ...`: a resumable grid."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..finetune import defaults as D
from .errors import handle_errors
from .options import (Amp, Freeze, ChannelsLast, Compile, TensorBoard, Workers, Allocations, RecoveryImportance, KeepDense, AdvSchedule, AdvWeight, DWarmup, EmaDecay, FeatureWeight, Loss, Ramp, Regrow, RecalibrateBn, StudentMode, Arch, ArchKwargs, BatchSize, DArch, DArchKwargs, Data, Device, Disc, Extractor,
                      Granularities, Json, LrD,
                      LrG, LrSchedule, LrWarmup, Methods, Mu, NumSamples, OptSource, ProgressInterval, Quantizes, Quiet, Schedule, Sparsities, Steps, TrustPickle,
                      load_options, out_dir_option)
from . import progress as cli_progress
from .output import human_console, notice, print_json, stderr_console
from .stdio import emit_written, source_from_stdin

Seeds = Annotated[str, typer.Option("--seeds", metavar="LIST", help="Comma-separated seeds; the table shows mean and spread over them.")]
TestData = Annotated[Optional[str], typer.Option("--test-data", metavar="FOLDER", help="Image-to-image: held-out test images (super-resolution: high-resolution ones); every model's PSNR/SSIM to their ground truth is measured on them, and no FID (default: measure on --data).")]
OutDir = Annotated[Path, out_dir_option("./gancompress-sweep; holds the cells, sweep.json (the resume record), results.md/.json and the plot")]


def _split(text: str, cast, option: str) -> tuple:
    from ..errors import InputError

    try:
        return tuple(cast(v.strip()) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: give comma-separated values") from None


@handle_errors
def sweep(source: OptSource = None, data: Data = None, sparsity: Sparsities = "0.25,0.5,0.75,0.9",
          granularity: Granularities = "element", allocation: Allocations = "uniform", importance: RecoveryImportance = None, keep_dense: KeepDense = "auto",
          method: Methods = D.DEFAULT_METHOD, seeds: Seeds = "0",
          steps: Steps = D.DEFAULT_STEPS, out_dir: OutDir = Path("gancompress-sweep"), num_samples: NumSamples = 2000,
          extractor: Extractor = None, test_data: TestData = None,
          schedule: Schedule = D.DEFAULT_SCHEDULE, ramp_fraction: Ramp = D.DEFAULT_RAMP_FRACTION, regrow: Regrow = False, recalibrate_bn: RecalibrateBn = 0, student_mode: StudentMode = D.DEFAULT_STUDENT_MODE, batch_size: BatchSize = None,
          freeze_discriminator: Freeze = False,
          lr_g: LrG = D.DEFAULT_LR_G, lr_d: LrD = None, lr_schedule: LrSchedule = D.DEFAULT_LR_SCHEDULE, lr_warmup: LrWarmup = D.DEFAULT_LR_WARMUP,
          mu: Mu = D.DEFAULT_MU, adv_weight: AdvWeight = D.DEFAULT_ADV_WEIGHT, loss: Loss = None,
          adv_schedule: AdvSchedule = D.DEFAULT_ADV_SCHEDULE, d_warmup: DWarmup = D.DEFAULT_D_WARMUP, ema_decay: EmaDecay = None,
          feature_weight: FeatureWeight = 0.0, device: Device = "auto", quiet: Quiet = False, json_out: Json = False, trust_pickle: TrustPickle = False,
          arch: Arch = None, arch_kwargs: ArchKwargs = None, d_arch: DArch = None, d_arch_kwargs: DArchKwargs = None,
          discriminator: Disc = None, amp: Amp = "none", channels_last: ChannelsLast = False, compile_: Compile = False,
          workers: Workers = 2, tensorboard: TensorBoard = None, quantize: Quantizes = None,
          progress_interval: ProgressInterval = cli_progress.DEFAULT_INTERVAL) -> None:
    """Prune + recover + evaluate every sparsity x granularity x allocation x method x seed; re-runs skip finished cells.

    --sparsity is of ALL prunable weights, as in prune; nm cells take the N:M pattern of that sparsity (0.5: 2:4, 0.75: 1:4).

    Writes OUT_DIR/results.md, results.json, fid_vs_sparsity.png and cells/*/samples.png; prints OUT_DIR. With --tensorboard DIR, each cell's recovery writes its events into DIR/<cell>.

    Example: gancompress sweep builtin:digits-dcgan --data builtin:digits --sparsity 0.5,0.9 --granularity element,filter --steps 300

    Example: gancompress sweep builtin:digits-dcgan --data builtin:digits --sparsity 0.9 --quantize int8,fp8

    Example: gancompress sweep sr.safetensors --data photos/train --test-data photos/heldout --sparsity 0.9
    """
    from ..errors import InputError
    from ..sweep import SweepConfig
    from ..sweep import sweep as run_sweep

    load = load_options(trust_pickle=trust_pickle, arch=arch, arch_kwargs=arch_kwargs, d_arch=d_arch,
                        d_arch_kwargs=d_arch_kwargs)
    if load.trust_pickle:
        raise InputError("--trust-pickle is not supported by `gancompress sweep`; convert the checkpoint with "
                         "`gancompress prune --trust-pickle -s 0` first")
    source = source_from_stdin(source)
    config = SweepConfig.from_options(
        source=source, out_dir=out_dir, data=data, discriminator=discriminator, sparsities=_split(sparsity, float, "--sparsity"),
        granularities=_split(granularity, str, "--granularity"), allocations=_split(allocation, str, "--allocation"),
        keep_dense=keep_dense, importance=D.recovery_importance(importance), methods=_split(method, str, "--method"),
        seeds=_split(seeds, int, "--seeds"), steps=steps, batch_size=batch_size, lr_g=lr_g, lr_d=lr_d, lr_warmup=lr_warmup,
        lr_schedule=lr_schedule, mu=mu, adv_weight=adv_weight, loss=loss, adv_schedule=adv_schedule, d_warmup=d_warmup,
        ema_decay=ema_decay, feature_weight=feature_weight, schedule=schedule, ramp_fraction=ramp_fraction, regrow=regrow, recalibrate_bn=recalibrate_bn, student_mode=student_mode,
        freeze_discriminator=freeze_discriminator, num_samples=num_samples,
        extractor=extractor, test_data=test_data, fid=test_data is None, device=device, amp=amp, channels_last=channels_last, compile=compile_, workers=workers,
        tensorboard=tensorboard, load=load, quantize=_split(quantize, str, "--quantize") if quantize else ())
    show = not (quiet or json_out)
    with cli_progress.stop_signals() as should_stop:
        result = run_sweep(config, on_event=_reporter(show, progress_interval), should_stop=should_stop)
    if json_out:
        print_json(result.to_json())
        return
    if not quiet:
        console = human_console()
        console.print(Path(result.files["markdown"]).read_text(), markup=False)
        console.print(f"{result.ran} cell(s) run, {result.skipped} reused; plot: {result.files['plot']}", markup=False)
    emit_written(result.out_dir)


def _reporter(show: bool, interval: float):
    """One line per cell (its FID, zeros and time when done); without a terminal, the steps inside a
    cell as plain progress lines every ``interval`` seconds."""
    plain = None if stderr_console().is_terminal else cli_progress.PlainLines(interval)

    def report(event) -> None:
        info = event.info
        if show and plain is not None and event.stage != "sweep":
            plain(event)
        if not show or event.stage != "sweep":
            return
        where = f"[{info.get('index', event.done)}/{event.total}] {info.get('cell', '')}"
        if info["event"] == "cell-done":
            r = info["record"]
            score = f"FID {r['fid']:.2f}" if r.get("fid") is not None else f"PSNR to GT {r.get('psnr_gt') or 0:.2f} dB"
            notice(f"{where}: {score}, {100 * r['achieved_sparsity']:.1f}% zeros, {r['seconds']:.0f} s")
        elif info["event"] == "cell-skip":
            notice(f"{where}: already done, skipped")
        elif info["event"] == "cell-start":
            notice(f"{where}: {info['steps']} steps...")
        elif info["event"] == "dense":
            notice("measuring the dense model...")
        elif info["event"] == "note":
            notice(info["note"])

    return report
