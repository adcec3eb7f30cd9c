"""Latency of one generator per runtime: torch eager, torch.compile and onnxruntime; float, 8-bit, shrunk.

Two generators: ``builtin:digits-dcgan`` (the bundled GAN, 0.79M parameters, 28x28) and a
PyTorch-examples DCGAN at ngf 64 (3.6M parameters, 64x64, random weights: only the times mean
anything). Each is pruned to 50% of its filters and exported shrunk (float32, float16, int8 and
fp8 weights: ``gancompress.load`` gives the dequantized float32 module), and as ONNX (float32, and
int8 weights behind ``DequantizeLinear``, and fp8 when the exporter writes it; a format it refuses
is a row with the reason). Torch files are timed with every ``--backends`` backend, ONNX files in
onnxruntime; each row's ``x dense eager`` is its time over the dense generator's eager time at the
same batch size (median of 20 calls at batch 1, 5 at larger batches, after 3 untimed ones;
torch.compile compiles during those). Prints a markdown table, JSON with ``--json``.

    python benchmarks/latency_backends.py [--batch-sizes 1 16] [--backends eager compile onnxruntime] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import build_builtin  # noqa: E402  (benchmarks/ is not a package)

DENSE = "dense (project file)"
EXPORTS = (  # label, --format, --dtype, --quantize, suffix
    ("shrunk float32", "shrunk", None, None, ".safetensors"),
    ("shrunk float16", "shrunk", "float16", None, ".safetensors"),
    ("shrunk int8, dequantized torch", "shrunk", None, "int8", ".safetensors"),
    ("shrunk fp8, dequantized torch", "shrunk", None, "fp8", ".safetensors"),
    ("ONNX float32 (shrunk)", "onnx", None, None, ".onnx"),
    ("ONNX int8 weights (shrunk)", "onnx", None, "int8", ".onnx"),
    ("ONNX fp8 weights (shrunk)", "onnx", None, "fp8", ".onnx"),
)


def dcgan64(folder: Path) -> str:
    """The PyTorch-examples DCGAN generator (ngf 64, 64x64 RGB) as a plain state dict."""
    path = folder / "dcgan64.pt"
    torch.save(build_builtin("dcgan-g", widths=[100, 512, 256, 128, 64, 3]).state_dict(), path)
    return str(path)


GENERATORS = {"digits DCGAN (0.79M)": lambda folder: "builtin:digits-dcgan", "DCGAN ngf 64 (3.6M)": dcgan64}


def build_files(source: str, folder: Path) -> dict[str, str]:
    """label -> file to time, or ``"not exported: <reason>"`` when the exporter refuses the format."""
    from gancompress.errors import GanCompressError
    from gancompress.export import ExportConfig, export
    from gancompress.prune import PruneConfig
    from gancompress.prune.run import PruneJob, prune_checkpoint

    pruned = folder / "pruned.safetensors"
    prune_checkpoint(PruneJob(source, PruneConfig(0.5, granularity="filter"), pruned, force=True))
    out = {DENSE: source, "50% filters, masked": str(pruned)}
    for label, fmt, dtype, quantize, suffix in EXPORTS:
        path = folder / (label.split(",")[0].replace(" ", "_") + f"_{quantize or dtype or 'float32'}{suffix}")
        try:
            export(ExportConfig(str(pruned), path, format=fmt, dtype=dtype, quantize=quantize, force=True))
            out[label] = str(path)
        except GanCompressError as exc:
            out[label] = f"not exported: {exc}"
    return out


def time_file(source: str, backends: list[str], batch_sizes: list[int]) -> list[dict]:
    from gancompress.generation import generator_info
    from gancompress.loading import load_bundle
    from gancompress.metrics.latency import measure_backends

    if source.startswith("not exported: "):
        return [{"backend": "-", "runtime": "-", "batch_size": b, "median_ms": None, "throughput": None,
                 "note": source} for b in batch_sizes]
    bundle = load_bundle(source)
    info = generator_info(bundle)
    backends = ["onnxruntime"] if source.endswith(".onnx") else backends
    rows = measure_backends(bundle.generator, info.input_shape, torch.device("cpu"), backends, batch_sizes,
                            num_classes=info.num_classes)
    return [r.to_dict() for r in rows]


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each row's time over its generator's dense eager time at the same batch size."""
    base = {(r["generator"], r["batch_size"]): r["median_ms"] for r in rows
            if r["model"] == DENSE and r["backend"] == "eager"}
    for r in rows:
        dense = base.get((r["generator"], r["batch_size"]))
        r["x_dense_eager"] = None if r["median_ms"] is None or not dense else r["median_ms"] / dense
    return rows


def machine(threads: int) -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} torch/onnxruntime "
            f"threads, load average {load} at the end, torch {torch.__version__.split('+')[0]}")


def print_table(rows: list[dict], threads: int) -> None:
    print(f"Latency per runtime ({machine(threads)}); ratios are what to read, absolute times are noisy here.\n")
    print("| generator | model | backend | runtime | batch | ms per call | x dense eager |")
    print("|---|---|---|---|---:|---:|---:|")
    for r in rows:
        ms = "-" if r["median_ms"] is None else f"{r['median_ms']:.3f}"
        ratio = "-" if r["x_dense_eager"] is None else f"{r['x_dense_eager']:.2f}"
        print(f"| {r['generator']} | {r['model']} | {r['backend']} | {r['note'] or r['runtime']} | {r['batch_size']} "
              f"| {ms} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--backends", nargs="+", default=["eager", "compile", "onnxruntime"])
    parser.add_argument("--generators", nargs="+", default=list(GENERATORS), choices=list(GENERATORS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, generator in enumerate(args.generators):
            folder = Path(tmp) / str(index)
            folder.mkdir()
            for model, source in build_files(GENERATORS[generator](folder), folder).items():
                rows += [{"generator": generator, "model": model, **r}
                         for r in time_file(source, args.backends, args.batch_sizes)]
    rows = with_ratios(rows)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows, args.threads)


if __name__ == "__main__":
    main()
