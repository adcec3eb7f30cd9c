#!/usr/bin/env python
"""StyleGAN2 (config F, random weights): size, MACs and speed dense vs filter-pruned and shrunk.

For the generator at ``--size`` (default 256 px, config F widths, style dim 512, 8 mapping
layers): parameters, MACs per sample (torch's FlopCounterMode; the masked rows count the
dense MACs a dense kernel still does, the shrunk rows what the thinner network does) and
median batch-1 latency, dense and with 50% / 75% of the filters of every synthesis conv removed
(a per-layer plan; L2-norm filters; readers masked; ``export --format shrunk``'s cut, checked against the
masked generator). Mapping network and ToRGB stay dense, as by default.

Then the step time of every recovery method (``finetune.step``: teacher and student on the
same z and stored noise) against a plain StyleGAN2 training step with the same losses (D:
non-saturating logistic + lazy R1, gamma 10 every 16 steps, scaled by 16; G: non-saturating,
+ path length every 4 steps with ``--pl-weight``), each the mean over one 16-step lazy cycle:
on the GPU at ``--size`` (float32 and bf16 autocast) when CUDA is present, else one row saying
there is no GPU; and always a short CPU section at ``--cpu-step-size`` (16 px, narrow widths,
one cycle per row) that exercises the same code.

    python benchmarks/stylegan2.py --threads 1 --clock cpu   # CPU: table + small CPU steps
    sh benchmarks/stylegan2_gpu.sh                           # on a GPU machine (a few minutes)
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from finetune_step import timed  # noqa: E402
from gancompress.archs import ARCHITECTURES  # noqa: E402
from gancompress.archs.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator  # noqa: E402
from gancompress.data.batches import StepData  # noqa: E402
from gancompress.finetune.defaults import DEFAULT_ADV_WEIGHT, DEFAULT_PL_EVERY as PL_EVERY  # noqa: E402
from gancompress.finetune.step import StepOptions, backward_and_step, captured_latents, compute_losses  # noqa: E402
from gancompress.losses import make_loss, path_length_penalty, path_lengths, r1_penalty  # noqa: E402
from gancompress.metrics.cost import count_macs  # noqa: E402
from gancompress.prune import PruneConfig, apply_masks, compute_masks  # noqa: E402

METHODS = ("finetune", "self-supervised", "hybrid", "distill-adv", "distill")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@contextmanager
def full_float32():
    """Convolutions and matmuls in full float32 for the duration: cuDNN's default TF32 rounds to 10 mantissa bits,
    and the shrunk model's narrower convolutions then sum in another order (an H200 read 6.7e-3 apart)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def pruned_pair(g: StyleGAN2Generator, sparsity: float) -> tuple[StyleGAN2Generator, StyleGAN2Generator, dict]:
    """(masked, shrunk, masks) with ``sparsity`` of the filters of every synthesis conv removed (a per-layer
    plan: ``-s`` alone counts the dense mapping and ToRGB weights in its total); the shrunk one checked
    against the masked."""
    masked = copy.deepcopy(g)
    convs = {f"{name}.conv": sparsity for name in g.conv_names()[0]}  # that share of every synthesis conv's filters
    masks = compute_masks(masked, PruneConfig(None, granularity="filter", plan=convs))
    apply_masks(masked, masks)
    kwargs = ARCHITECTURES.get("stylegan2-g").infer(g.state_dict())  # the layout, every width included
    small = masked.shrunk_copy(kwargs)[0].eval()
    z = torch.randn(2, g.style_dim, device=g.latent_avg.device)
    with torch.no_grad(), full_float32():
        a, b = masked(z), small(z)
    err = float((a - b).abs().max())
    assert err <= 1e-4 * (1 + float(a.abs().max())), f"shrunk differs from masked by {err}"
    return masked, small, masks


def latency_ms(g, device, repeats: int, warmup: int, clock=time.perf_counter) -> float:
    z = torch.randn(1, g.style_dim, device=device)
    with torch.no_grad():
        return timed({"g": lambda: g(z)}, device, warmup, repeats, clock)["g"]


def size_rows(args, device) -> list[dict]:
    torch.manual_seed(0)
    g = StyleGAN2Generator(args.size).to(device).eval()
    rows = [("dense", g)]
    for s in (0.5, 0.75):
        masked, small, _ = pruned_pair(g, s)
        rows += [(f"filter {s:.0%} masked", masked), (f"filter {s:.0%} shrunk", small)]
    out = []
    for name, model in rows:
        macs = count_macs(model, (model.style_dim,))
        out.append({"model": name, "params": sum(p.numel() for p in model.parameters()),
                    "nonzeros": sum(int((p != 0).sum()) for p in model.parameters()),
                    "gmacs": macs.dense / 1e9 if macs else None,
                    "latency_ms": latency_ms(model, device, args.repeats, args.warmup, CLOCKS[args.clock])})
    return out


R1_GAMMA, R1_EVERY = 10.0, 16  # the stylegan2 loss profile's lazy R1 (config F)
CYCLE = 16  # steps per timed call: one full lazy cycle (R1 every 16, path length every 4)
SMALL = {"style_dim": 64, "n_mlp": 2}  # the CPU section's net: config F's layout, narrow (see small_channels)


def plain_step(g, d, opt_g, opt_d, z, real, autocast, pl, k):
    """One StyleGAN2 step with the profile's losses: D on real and fake (+ R1 every 16 steps, scaled),
    then G on the same fakes (+ path length every 4 steps when ``pl["weight"]``)."""
    r1_now, pl_now = k % R1_EVERY == 0, pl["weight"] > 0 and k % PL_EVERY == 0
    x = real.detach().requires_grad_(r1_now)
    with autocast():
        with captured_latents(g if pl_now else None) as latents:
            fake = g(z)
        d_real = d(x)
        d_loss = F.softplus(-d_real.float()).mean() + F.softplus(d(fake.detach()).float()).mean()
        if r1_now:
            d_loss = d_loss + R1_EVERY * r1_penalty(d_real, x, R1_GAMMA)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward(inputs=list(d.parameters()))
    opt_d.step()
    with autocast():
        g_loss = F.softplus(-d(fake).float()).mean()
        if pl_now:
            lengths = path_lengths(fake, latents[-1])
            penalty, pl["mean"] = path_length_penalty(lengths, lengths.mean(), pl["mean"])
            g_loss = g_loss + pl["weight"] * PL_EVERY * penalty
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward(inputs=list(g.parameters()))
    opt_g.step()


def method_step(method, teacher, g, d, opt_g, opt_d, z, real, masks, autocast, pl, k):
    uses_d = method != "distill"
    opts = StepOptions(method, 0.5, 1.0, train_d=uses_d, r1_gamma=R1_GAMMA, r1_every=R1_EVERY, autocast=autocast,
                       adv_weight=DEFAULT_ADV_WEIGHT, pl_weight=pl["weight"], pl_every=PL_EVERY)
    losses = compute_losses(teacher, g, d, StepData(z, real.clone()), make_loss("stylegan2"), opts, k,
                            pl_mean=pl["mean"])
    backward_and_step(losses, g, d if uses_d else None, opt_g, opt_d if uses_d else None, masks)
    pl["mean"] = losses.pl_mean if losses.pl_mean is not None else pl["mean"]


def cycle(step) -> None:
    """One timed call: ``CYCLE`` consecutive steps, so the lazy regularisers count at their real rate."""
    for k in range(CYCLE):
        step(k=k)


def small_channels(size: int) -> list[int]:
    """Narrow widths for the CPU section (64 at 4-16 px, halving above, at least 16)."""
    return [max(16, 64 >> max(0, i - 2)) for i in range(int(math.log2(size)) - 1)]


def step_rows(args, device, size: int, amp: bool, small: bool = False) -> dict[str, float]:
    """ms per step (mean over a lazy cycle, median of ``--repeats`` cycles) of a plain StyleGAN2 step and
    of every method, the student at ``--sparsity`` filter sparsity."""
    use_amp = amp and device.type == "cuda"
    autocast = partial(torch.autocast, device_type="cuda", dtype=torch.bfloat16) if use_amp else nullcontext
    torch.manual_seed(0)
    g_kw = {**SMALL, "channels": small_channels(size)} if small else {}
    teacher = StyleGAN2Generator(size, **g_kw).to(device).eval().requires_grad_(False)
    d = StyleGAN2Discriminator(size, channels=small_channels(size)[::-1] if small else None).to(device)
    masked, _, masks = pruned_pair(teacher, args.sparsity)
    masks = {k: v.to(device) for k, v in masks.items()}
    batch = args.cpu_batch_size if small else args.batch_size
    z = torch.randn(batch, teacher.style_dim, device=device)
    real = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    fns = {}
    for name in ("plain StyleGAN2 step", *METHODS):
        gg, dd = copy.deepcopy(masked).requires_grad_(True), copy.deepcopy(d)
        opt_g = torch.optim.Adam(gg.parameters(), 2e-3, betas=(0.0, 0.99))
        opt_d = torch.optim.Adam(dd.parameters(), 2e-3, betas=(0.0, 0.99))
        pl = {"weight": args.pl_weight, "mean": None}
        if name == "plain StyleGAN2 step":
            step = partial(plain_step, gg, dd, opt_g, opt_d, z, real, autocast, pl)
        else:
            step = partial(method_step, name, teacher, gg, dd, opt_g, opt_d, z, real, masks, autocast, pl)
        fns[name] = partial(cycle, step)
    warmup, repeats = (0, args.cpu_repeats) if small else (args.warmup, args.repeats)
    return {name: ms / CYCLE for name, ms in timed(fns, device, warmup, repeats).items()}


def print_steps(title: str, steps: dict[str, float]) -> None:
    base = steps["plain StyleGAN2 step"]
    print(f"\n{title}\n\n| step | ms | vs plain StyleGAN2 step |\n|---|---:|---:|")
    for name, ms in steps.items():
        print(f"| {name} | {ms:.1f} | {ms / base:.2f}x |")


def gpu_steps(args) -> dict[str, dict[str, float]] | None:
    """The recovery steps at ``--size`` on the GPU, per ``--amp`` mode; None (a row says so) without one."""
    what = (f"recovery step on the GPU, {args.size} px config F, batch {args.batch_size}, student at "
            f"{args.sparsity:.0%} filter sparsity, R1 every {R1_EVERY}, path length "
            f"{'every ' + str(PL_EVERY) if args.pl_weight else 'off'}")
    if not torch.cuda.is_available():
        print(f"\n{what}\n\n| step | ms | vs plain StyleGAN2 step |\n|---|---:|---:|\n"
              "| no GPU here (torch.cuda.is_available() is False): GPU step times not measured | - | - |")
        return None
    out = {}
    for amp in args.amp_modes.split(","):
        out[amp] = step_rows(args, torch.device("cuda"), args.size, amp == "bf16")
        print_steps(f"{what}, {'bf16 autocast' if amp == 'bf16' else 'float32'}", out[amp])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="cpu", help="device of the size/latency table (the GPU steps use CUDA when present)")
    ap.add_argument("--amp-modes", default="none,bf16", help="GPU steps: comma-separated none (float32) and/or bf16")
    ap.add_argument("--batch-size", type=int, default=8, help="GPU recovery step batch")
    ap.add_argument("--sparsity", type=float, default=0.5, help="filter sparsity of the student in the step timings")
    ap.add_argument("--pl-weight", type=float, default=0.0, help="path-length weight in every step (0: off, the default)")
    ap.add_argument("--cpu-step-size", type=int, default=16, help="CPU step section's resolution (0: skip it)")
    ap.add_argument("--cpu-batch-size", type=int, default=2)
    ap.add_argument("--cpu-repeats", type=int, default=1, help="CPU step section: timed cycles per row (no warm-up)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                    help="latency clock; cpu: process CPU time (steadier on a shared machine, with --threads 1)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    started = time.time()
    rows = size_rows(args, device)
    print(f"StyleGAN2 config F {args.size} px, random weights, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, latency ({args.clock} clock): median of {args.repeats} at batch 1\n")
    dense = rows[0]
    print("| generator | parameters | nonzeros | GMACs/sample | vs dense | latency ms | vs dense |\n|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['params']:,} | {r['nonzeros']:,} | {r['gmacs']:.2f} | {r['gmacs'] / dense['gmacs']:.2f}x "
              f"| {r['latency_ms']:.1f} | {r['latency_ms'] / dense['latency_ms']:.2f}x |")
    gpu = gpu_steps(args)
    cpu = None
    if args.cpu_step_size:
        cpu = step_rows(args, torch.device("cpu"), args.cpu_step_size, False, small=True)
        print_steps(f"recovery step on the CPU ({torch.get_num_threads()} threads), {args.cpu_step_size} px narrow "
                    f"StyleGAN2 (widths {small_channels(args.cpu_step_size)}, style dim {SMALL['style_dim']}), batch "
                    f"{args.cpu_batch_size}, same losses and sparsity", cpu)
    print(f"\n({time.time() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "sizes": rows,
                                         "gpu_steps_ms": gpu, "cpu_steps_ms": cpu}, indent=2))


if __name__ == "__main__":
    main()
