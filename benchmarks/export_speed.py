"""Dense vs shrunk CPU latency and file sizes of every export format, on the real pix2pix ResNet-9.

Model: ``pix2pix-resnet-g`` (ngf 64, 9 residual blocks, instance norm, 256x256 input; random
weights, so the numbers say nothing about image quality). Two kinds of filter masks at
25/50/75% filter sparsity:

* ``per-layer``: the library pruner, ``compute_masks(PruneConfig(s, granularity="filter"))``
  (first and last conv dense). Each layer picks its own filters, so a residual channel is
  almost never pruned in all ten convs that add into it: the 256-wide stream stays whole.
* ``grouped``: whole residual channels pruned together (:func:`filter_groups`: the stream's
  producers share a group, scored by the summed L2 norm of its filters) and the other
  filters per layer; what a group-aware pruner would give. Same sparsity per layer.

Run: ``python benchmarks/export_speed.py [--repeats 3] [--size 256] [--kinds per-layer grouped]``.

``--codec`` instead times the sparse layout's two element encodings on one large tensor
(default 50M float32 weights, 10% kept at random): encode and decode of ``bitmask`` against
``rice`` (the gap code), with the bytes each spends on the mask; the same arrays whether the
values are float32, int8 or fp8 codes, so one row per encoding covers them.
The CPU is shared, so expect noise of 10-20% (far more on a loaded machine): the median of
``--repeats`` runs is printed, dense is re-timed next to every shrunk model and each ratio
uses that neighbouring dense time; process CPU time (all threads) is printed next to wall
time because it moves much less when other jobs compete for the cores.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from gancompress.api import load
from gancompress.archs import ArchSpec, build
from gancompress.formats.checkpoint import GanBundle
from gancompress.errors import InputError
from gancompress.export import ExportConfig, export_bundle
from gancompress.channels import filter_groups
from gancompress.prune import PruneConfig, compute_masks

SPEC = ArchSpec("pix2pix-resnet-g", {"input_nc": 3, "output_nc": 3, "ngf": 64, "n_blocks": 9,
                                     "norm": "instance", "use_dropout": False})


def per_layer_masks(model: nn.Module, s: float) -> dict[str, torch.Tensor]:
    return compute_masks(model, PruneConfig(s, granularity="filter"))


def grouped_masks(model: nn.Module, s: float, size: int) -> dict[str, torch.Tensor]:
    """Prune ``s`` of the filter groups of each family (groups spanning the same layers), lowest L2 first."""
    template = per_layer_masks(model, s)  # which layers the library prunes
    masks = {k: torch.ones_like(v) for k, v in template.items()}
    modules = dict(model.named_modules())
    families: dict[tuple[str, ...], list[list[tuple[str, int]]]] = {}
    for group in filter_groups(model, (3, size, size)):
        layers = tuple(sorted({name for name, _ in group}))
        if all(f"{name}.weight" in masks for name in layers):
            families.setdefault(layers, []).append(group)

    def norm(name: str, c: int) -> float:
        m = modules[name]
        return float(m.weight.detach().select(1 if isinstance(m, nn.ConvTranspose2d) else 0, c).norm())

    for groups in families.values():
        scores = torch.tensor([sum(norm(n, c) for n, c in g) for g in groups])
        for k in scores.argsort()[: round(s * len(groups))].tolist():
            for name, c in groups[k]:
                m = modules[name]
                masks[f"{name}.weight"].select(1 if isinstance(m, nn.ConvTranspose2d) else 0, c).fill_(False)
    return masks


def latency(model: nn.Module, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median wall-clock and median process-CPU seconds of one forward (CPU time is steadier on a shared machine)."""
    with torch.no_grad():
        model(x)
        wall, cpu = [], []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            model(x)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def export_all(bundle: GanBundle, tmp: Path, tag: str) -> dict[str, int]:
    sizes = {}
    for fmt in ("dense", "sparse", "shrunk", "onnx"):
        suffix = "onnx" if fmt == "onnx" else "safetensors"
        try:
            r = export_bundle(bundle, ExportConfig("bench", tmp / f"{tag}-{fmt}.{suffix}", format=fmt))
        except InputError as exc:  # onnx without the onnx package
            if fmt != "onnx":
                raise
            print(f"  (onnx skipped: {str(exc).split(';')[0]})")
            continue
        sizes[fmt] = r.file_bytes
        if fmt == "shrunk":
            print(f"  shrink: widths {r.shrink['widths_before']} -> {r.shrink['widths_after']}; "
                  f"kept for exactness {r.shrink['kept_for_exactness']}")
    return sizes


def run(repeats: int, size: int, kinds: list[str]) -> None:
    torch.manual_seed(0)
    g = build(SPEC).eval()
    x = torch.randn(1, 3, size, size)
    print(f"pix2pix-resnet-g ngf 64, 9 blocks, instance norm: {sum(p.numel() for p in g.parameters()):,} params; "
          f"input 1x3x{size}x{size}; torch threads {torch.get_num_threads()}; median of {repeats}")
    dense_ms, dense_cpu = (t * 1e3 for t in latency(g, x, repeats))
    print(f"dense: {dense_ms:.0f} ms wall, {dense_cpu:.0f} ms CPU")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            for s in (0.25, 0.5, 0.75):
                masks = per_layer_masks(g, s) if kind == "per-layer" else grouped_masks(g, s, size)
                bundle = GanBundle(g, SPEC, masks=masks, source="bench")
                print(f"{kind} {s:.0%}:")
                sizes = export_all(bundle, Path(tmp), f"{kind}{s}")
                small = load(Path(tmp) / f"{kind}{s}-shrunk.safetensors")
                masked = bundle.masked_generator()
                with torch.no_grad():
                    err = float((small(x) - masked(x)).abs().max())
                ms, cpu = (t * 1e3 for t in latency(small, x, repeats))
                dms, dcpu = (t * 1e3 for t in latency(g, x, repeats))
                params = sum(p.numel() for p in small.parameters())
                rows.append((kind, s, ms, dms, cpu, dcpu, err, params, sizes))
                print(f"  shrunk {ms:.0f} ms vs dense {dms:.0f} ms wall = {ms / dms:.2f}x; CPU {cpu:.0f} vs {dcpu:.0f} ms "
                      f"= {cpu / dcpu:.2f}x (max |diff| {err:.1e}, {params:,} params); files "
                      + ", ".join(f"{k} {v / 2**20:.1f} MiB ({v / sizes['dense']:.3f}x)" for k, v in sizes.items()))
    print("\n| masks | filter sparsity | dense ms (wall / CPU) | shrunk ms (wall / CPU) | shrunk/dense wall | "
          "shrunk/dense CPU | max abs diff | params | dense MiB | sparse MiB | shrunk MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, s, ms, dms, cpu, dcpu, err, params, sizes in rows:
        print(f"| {kind} | {s:.0%} | {dms:.0f} / {dcpu:.0f} | {ms:.0f} / {cpu:.0f} | {ms / dms:.2f}x | {cpu / dcpu:.2f}x | "
              f"{err:.1e} | {params:,} | {sizes['dense'] / 2**20:.1f} | {sizes['sparse'] / 2**20:.1f} | "
              f"{sizes['shrunk'] / 2**20:.1f} |")

def codec_rows(weights: int, kept: float, repeats: int) -> None:
    """Median encode/decode seconds of ``bitmask`` vs ``rice`` on a ``(weights / 16384, 1024, 4, 4)`` tensor."""
    import numpy as np

    from gancompress.formats import sparse as sf

    rng = np.random.default_rng(0)
    shape = (max(1, weights // 16384), 1024, 4, 4)
    a = np.zeros(shape, np.float32)
    keep = rng.random(shape, dtype=np.float32) < kept
    a[keep] = rng.standard_normal(int(keep.sum()), dtype=np.float32)
    del keep
    rice = next(c for c in sf.candidates(a, blocks=(), nm=()) if c.encoding == "rice")
    print(f"\n| encoding | weights | kept | mask bytes | mask bits/weight | encode s | decode s |")
    print("|---|---|---|---|---|---|---|")
    for cand in (sf.Candidate("bitmask", 0), rice):
        enc_s, enc = _timed(lambda: sf.encode(a, cand), repeats)
        info = {"encoding": enc.encoding, "shape": list(shape), **enc.params}
        dec_s, out = _timed(lambda: sf.decode("w", info, enc.arrays), repeats)
        assert out.tobytes() == a.tobytes()
        mask = enc.nbytes - enc.arrays["compressed"].nbytes - enc.arrays["shape"].nbytes
        label = enc.encoding + "".join(f", {k}={v}" for k, v in enc.params.items())
        print(f"| {label} | {a.size:,} | {kept:.0%} | {mask:,} | {8 * mask / a.size:.3f} | "
              f"{enc_s:.2f} | {dec_s:.2f} |")


def _timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--kinds", nargs="+", default=["per-layer", "grouped"], choices=["per-layer", "grouped"])
    parser.add_argument("--codec", action="store_true", help="time bitmask vs rice encode/decode instead")
    parser.add_argument("--weights", type=int, default=50_000_000, help="--codec: weights in the tensor")
    parser.add_argument("--kept", type=float, default=0.1, help="--codec: fraction of weights kept")
    args = parser.parse_args()
    if args.codec:
        codec_rows(args.weights, args.kept, args.repeats)
    else:
        run(args.repeats, args.size, args.kinds)
