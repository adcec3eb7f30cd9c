"""`gancompress demo`: the whole pipeline on the bundled digits GAN, in a fresh folder."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional


from ..demo import DEMO_DIR, DEMO_STEPS, STAGES
from ..finetune.defaults import DEFAULT_METHOD, DEFAULT_SCHEDULE, recovery_importance
from .errors import handle_errors
from .options import Amp, ChannelsLast, Compile, TensorBoard, Workers, Allocation, Device, Granularity, KeepDense, Json, RecoveryImportance, Method, ProgressInterval, Quiet, Schedule, Seed, Sparsity, Steps, out_dir_option
from .output import human_console, human_size, print_json, table
from . import progress as cli_progress
from .stdio import emit_written

OutDir = Annotated[Optional[Path], out_dir_option(f"./{DEMO_DIR}, or a numbered one if that exists and is not empty")]


@handle_errors
def demo(out_dir: OutDir = None, sparsity: Sparsity = 0.9, granularity: Granularity = "element",
         allocation: Allocation = "uniform", importance: RecoveryImportance = None, keep_dense: KeepDense = "auto",
         steps: Steps = DEMO_STEPS, method: Method = DEFAULT_METHOD,
         schedule: Schedule = DEFAULT_SCHEDULE, device: Device = "auto", seed: Seed = 0,
         quiet: Quiet = False, json_out: Json = False, amp: Amp = "none", channels_last: ChannelsLast = False,
         compile_: Compile = False, workers: Workers = 2, tensorboard: TensorBoard = None,
         progress_interval: ProgressInterval = cli_progress.DEFAULT_INTERVAL) -> None:
    """Compress the bundled digits GAN end to end: inspect, prune, recover, evaluate, export.

    Sparsity counts ALL conv weights (the tiny output layer stays dense). Needs no download; about 3 minutes on a 2-core CPU. Prints a dense / pruned / recovered comparison and writes everything (checkpoints, the sparse export, a sample grid, demo.json) into a fresh folder, whose path is the only stdout line.

    Example: gancompress demo --sparsity 0.75 --out-dir my-demo
    """
    from ..demo import DemoConfig, run_demo

    config = DemoConfig.from_options(out_dir=out_dir, sparsity=sparsity, granularity=granularity, allocation=allocation,
                                     importance=recovery_importance(importance), keep_dense=keep_dense, steps=steps, method=method, schedule=schedule, seed=seed,
                                     device=device, amp=amp, channels_last=channels_last, compile=compile_,
                                     workers=workers, tensorboard=tensorboard)
    labels = {stage: f"{n}/{len(STAGES)} {stage}" for n, stage in enumerate(STAGES, start=1)}
    with cli_progress.stop_signals() as should_stop, cli_progress.EventBars(
            quiet=quiet or json_out, lines=True, labels=labels, interval=progress_interval) as bars:
        result = run_demo(config, on_event=bars, should_stop=should_stop)
    if json_out:
        print_json(result.to_json())
        return
    if not quiet:
        _print(result)
    emit_written(result.out_dir)


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print(result) -> None:
    console = human_console()
    dense_fid = result.rows[0].fid
    rows = [[r.label, _num(r.fid, ".2f"), _num(r.fid / dense_fid if r.fid is not None and dense_fid else None, ".2f"),
             "inf" if r.psnr is None and r.label == "dense" else _num(r.psnr, ".2f"),
             f"{r.nonzeros:,}", f"{100 * r.sparsity:.1f}", f"{human_size(r.file_bytes)} {r.file_kind}"]
            for r in result.rows]
    s = result.settings
    title = (f"{s['source']}: {100 * s['sparsity_target']:g}% {s['granularity']} sparsity, "
             f"{s['method']} recovery ({s['schedule']}) for {s['steps']} steps (digits-FID, {s['fid_samples']:,} samples)")
    console.print(table(title, ["model", "FID", "x dense", "PSNR dB", "nonzeros", "zeros %", "G file"], rows))
    if s.get("method_choice"):
        console.print(s["method_choice"], markup=False)
    total = sum(result.seconds.values())
    console.print(f"took {total:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items()) + ")",
                  markup=False)
    f = result.files
    console.print(f"samples (one row per model, same latents): {f['samples']}", markup=False)
    console.print(f"sparse export (load with gancompress.load): {f['export']}", markup=False)
    console.print(f"checkpoints: {f['pruned']}, {f['recovered']}; all numbers: {f['report']}", markup=False)
