"""`gancompress sweep SOURCE --data DATA --sparsity ... --granularity ... --method ...`: a resumable grid."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..finetune import defaults as D
from .errors import handle_errors
from .options import (Allocations, KeepDense, AdvWeight, Arch, ArchKwargs, BatchSize, DArch, DArchKwargs, Data, Device, Granularities, Json, LrD,
                      LrG, LrSchedule, Methods, Mu, NumSamples, OptSource, Quiet, Schedule, Sparsities, Steps, TrustPickle,
                      load_options, out_dir_option, require_plain_loading)
from .output import human_console, notice, print_json
from .stdio import emit_written, source_from_stdin

Seeds = Annotated[str, typer.Option("--seeds", metavar="LIST", help="Comma-separated seeds; the table shows mean and spread over them.")]
OutDir = Annotated[Path, out_dir_option("./gancompress-sweep; holds the cells, sweep.json (the resume record), results.md/.json and the plot")]


def _split(text: str, cast, option: str) -> tuple:
    from ..errors import InputError

    try:
        return tuple(cast(v.strip()) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: give comma-separated values") from None


@handle_errors
def sweep(source: OptSource = None, data: Data = None, sparsity: Sparsities = "0.25,0.5,0.75,0.9",
          granularity: Granularities = "element", method: Methods = D.DEFAULT_METHOD, seeds: Seeds = "0",
          steps: Steps = D.DEFAULT_STEPS, out_dir: OutDir = Path("gancompress-sweep"), num_samples: NumSamples = 2000,
          schedule: Schedule = D.DEFAULT_SCHEDULE, batch_size: BatchSize = D.DEFAULT_BATCH_SIZE,
          lr_g: LrG = D.DEFAULT_LR_G, lr_d: LrD = D.DEFAULT_LR_D, lr_schedule: LrSchedule = D.DEFAULT_LR_SCHEDULE,
          mu: Mu = D.DEFAULT_MU, adv_weight: AdvWeight = D.DEFAULT_ADV_WEIGHT,
          allocation: Allocations = "uniform", keep_dense: KeepDense = "auto",
          device: Device = "auto", quiet: Quiet = False, json_out: Json = False, trust_pickle: TrustPickle = False,
          arch: Arch = None, arch_kwargs: ArchKwargs = None, d_arch: DArch = None, d_arch_kwargs: DArchKwargs = None) -> None:
    """Prune + recover + evaluate every sparsity x granularity x allocation x method x seed; re-runs skip finished cells.

    --sparsity is of ALL prunable weights, as in prune; nm cells take the N:M pattern of that sparsity (0.5: 2:4, 0.75: 1:4).

    Writes OUT_DIR/results.md, results.json, fid_vs_sparsity.png and cells/*/samples.png; prints OUT_DIR.

    Example: gancompress sweep builtin:digits-dcgan --data builtin:digits --sparsity 0.5,0.9 --granularity element,filter --steps 300
    """
    from ..sweep import SweepConfig
    from ..sweep import sweep as run_sweep

    load = load_options(trust_pickle=trust_pickle, arch=arch, arch_kwargs=arch_kwargs, d_arch=d_arch,
                        d_arch_kwargs=d_arch_kwargs)
    require_plain_loading(load, "sweep", trust_pickle=False)
    source = source_from_stdin(source)
    config = SweepConfig(source=source, out_dir=out_dir, data=data,
                         sparsities=_split(sparsity, float, "--sparsity"),
                         granularities=_split(granularity, str, "--granularity"),
                         allocations=_split(allocation, str, "--allocation"), keep_dense=keep_dense,
                         methods=_split(method, str, "--method"), seeds=_split(seeds, int, "--seeds"),
                         steps=steps, batch_size=batch_size, lr_g=lr_g, lr_d=lr_d, lr_schedule=lr_schedule, mu=mu,
                         adv_weight=adv_weight, schedule=schedule,
                         num_samples=num_samples, device=device)
    show = not (quiet or json_out)

    def progress(event: str, info: dict) -> None:
        if not show or event == "step":
            return
        if event == "cell-done":
            r = info["record"]
            notice(f"[{info['index']}/{info['total']}] {info['cell']}: FID {r['fid']:.2f}, "
                   f"{100 * r['achieved_sparsity']:.1f}% zeros, {r['seconds']:.0f} s")
        elif event == "cell-skip":
            notice(f"[{info['index']}/{info['total']}] {info['cell']}: already done, skipped")
        elif event == "cell-start":
            notice(f"[{info['index']}/{info['total']}] {info['cell']}: {info['steps']} steps...")
        elif event == "dense":
            notice("measuring the dense model...")

    result = run_sweep(config, on_progress=progress)
    if json_out:
        print_json(result.to_json())
        return
    if not quiet:
        console = human_console()
        console.print(Path(result.files["markdown"]).read_text(), markup=False)
        console.print(f"{result.ran} cell(s) run, {result.skipped} reused; plot: {result.files['plot']}", markup=False)
    emit_written(result.out_dir)
