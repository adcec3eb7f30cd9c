"""Option aliases shared by every command, so each spells them the same way."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Source = Annotated[str, typer.Argument(help="Checkpoint: a file (.pt/.pth/.ckpt/.bin/.safetensors), a directory, hf://OWNER/REPO\\[@REV]\\[/PATH], or builtin:digits-dcgan.")]
OptSource = Annotated[Optional[str], typer.Argument(help="Checkpoint (file, directory, hf://..., builtin:...); '-' or omitted reads the path from stdin.")]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write (never overwrites without --force).")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or notices.")]
ProgressInterval = Annotated[float, typer.Option("--progress-interval", min=0.0, help="Without a terminal (CI logs, schedulers): print a plain progress line (step/total, losses, rate, ETA) every this many seconds and at the end of each stage.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps (auto picks CUDA when present).")]
Amp = Annotated[str, typer.Option("--amp", help="Mixed precision: none, bf16, or fp16 (with a gradient scaler, for GPUs without bf16).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same result on CPU.")]
TrustPickle = Annotated[bool, typer.Option("--trust-pickle", help="Allow pickles that run code on load (whole-module checkpoints). Only for files you trust.")]
Arch = Annotated[Optional[str], typer.Option("--arch", help="Your own generator class as module:Callable, for networks not built in.")]
ArchKwargs = Annotated[Optional[str], typer.Option("--arch-kwargs", help="JSON keyword arguments for --arch, e.g. '{\"nz\": 64}'.")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Batch size.")]
Workers = Annotated[int, typer.Option("--workers", help="DataLoader processes decoding a --data folder, which is streamed a batch at a time (0: decode in the main process).")]
