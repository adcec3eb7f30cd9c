"""`gancompress sweep SOURCE --data DATA --sparsity ... --granularity ... --method ...`: a resumable grid."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..finetune import defaults as D
from .errors import handle_errors
from .options import BatchSize, Device, Json, OptSource, Quiet
from . import progress as cli_progress
from .output import human_console, notice, print_json
from .stdio import emit_written, source_from_stdin

Data = Annotated[Optional[str], typer.Option("--data", help="Real images: a folder, or builtin:digits.")]
Sparsity = Annotated[str, typer.Option("--sparsity", "-s", help="Comma-separated overall sparsities, e.g. 0.25,0.5,0.75,0.9.")]
Granularity = Annotated[str, typer.Option("--granularity", "-g", help="Comma-separated granularities, e.g. element,filter.")]
Method = Annotated[str, typer.Option("--method", help="Comma-separated recovery methods (distill, distill-adv, self-supervised, hybrid, finetune, none).")]
Seeds = Annotated[str, typer.Option("--seeds", help="Comma-separated seeds; the table shows mean and spread over them.")]
Steps = Annotated[int, typer.Option("--steps", help="Recovery steps per cell.")]
OutDir = Annotated[Path, typer.Option("--out-dir", help="Folder for the cells, sweep.json (resume record), results.md/.json and the plot.")]
Samples = Annotated[int, typer.Option("--num-samples", help="Generated samples per FID.")]
Schedule = Annotated[str, typer.Option("--schedule", help="oneshot (prune, then recover) or agp (prune gradually while recovering).")]


def _split(text: str, cast, option: str) -> tuple:
    from ..errors import InputError

    try:
        return tuple(cast(v.strip()) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: give comma-separated values") from None


@handle_errors
def sweep(source: OptSource = None, data: Data = None, sparsity: Sparsity = "0.25,0.5,0.75,0.9",
          granularity: Granularity = "element", method: Method = D.DEFAULT_METHOD, seeds: Seeds = "0",
          steps: Steps = D.DEFAULT_STEPS, out_dir: OutDir = Path("gancompress-sweep"), num_samples: Samples = 2000,
          schedule: Schedule = D.DEFAULT_SCHEDULE, batch_size: BatchSize = D.DEFAULT_BATCH_SIZE,
          lr_g: Annotated[float, typer.Option("--lr-g", help="Adam learning rate of the compressed generator.")] = D.DEFAULT_LR_G,
          lr_d: Annotated[float, typer.Option("--lr-d", help="Adam learning rate of the discriminator.")] = D.DEFAULT_LR_D,
          lr_schedule: Annotated[str, typer.Option("--lr-schedule", help="lr_g over each run: constant, or cosine (held while AGP prunes, then annealed to 0).")] = D.DEFAULT_LR_SCHEDULE,
          mu: Annotated[float, typer.Option("--mu", help="Weight of the per-sample L1 to the teacher (hybrid).")] = D.DEFAULT_MU,
          adv_weight: Annotated[float, typer.Option("--adv-weight", help="Weight of the GAN's own generator loss beside the L1 to the teacher (distill-adv).")] = D.DEFAULT_ADV_WEIGHT,
          device: Device = "auto", quiet: Quiet = False, json_out: Json = False) -> None:
    """Prune + recover + evaluate every sparsity x granularity x method x seed; re-runs skip finished cells.

    Writes OUT_DIR/results.md, results.json, fid_vs_sparsity.png and cells/*/samples.png; prints OUT_DIR.

    Example: gancompress sweep builtin:digits-dcgan --data builtin:digits --sparsity 0.5,0.9 --granularity element,filter --steps 300
    """
    from ..sweep import SweepConfig
    from ..sweep import sweep as run_sweep

    source = source_from_stdin(source)
    config = SweepConfig.from_options(
        source=source, out_dir=out_dir, data=data, sparsities=_split(sparsity, float, "--sparsity"),
        granularities=_split(granularity, str, "--granularity"), methods=_split(method, str, "--method"),
        seeds=_split(seeds, int, "--seeds"), steps=steps, batch_size=batch_size, lr_g=lr_g, lr_d=lr_d,
        lr_schedule=lr_schedule, mu=mu, adv_weight=adv_weight, schedule=schedule, num_samples=num_samples,
        device=device)
    show = not (quiet or json_out)
    with cli_progress.stop_signals() as should_stop:
        result = run_sweep(config, on_event=_reporter(show), should_stop=should_stop)
    if json_out:
        print_json(result.to_json())
        return
    if not quiet:
        console = human_console()
        console.print(Path(result.files["markdown"]).read_text(), markup=False)
        console.print(f"{result.ran} cell(s) run, {result.skipped} reused; plot: {result.files['plot']}", markup=False)
    emit_written(result.out_dir)


def _reporter(show: bool):
    """One line per cell (its FID, zeros and time when done); the fine-tuning steps are not shown."""

    def report(event) -> None:
        info = event.info
        if not show or event.stage != "sweep":
            return
        where = f"[{info.get('index', event.done)}/{event.total}] {info.get('cell', '')}"
        if info["event"] == "cell-done":
            r = info["record"]
            notice(f"{where}: FID {r['fid']:.2f}, {100 * r['achieved_sparsity']:.1f}% zeros, {r['seconds']:.0f} s")
        elif info["event"] == "cell-skip":
            notice(f"{where}: already done, skipped")
        elif info["event"] == "cell-start":
            notice(f"{where}: {info['steps']} steps...")
        elif info["event"] == "dense":
            notice("measuring the dense model...")

    return report
