"""Latency of one generator per runtime: torch eager, torch.compile and onnxruntime; float, 8-bit, shrunk.

Two generators: ``builtin:digits-dcgan`` (the bundled GAN, 0.79M parameters, 28x28) and a
PyTorch-examples DCGAN at ngf 64 (3.6M parameters, 64x64, random weights: only the times mean
anything). Each is pruned to 50% of its filters and exported shrunk (float32, float16, int8 and
fp8 weights: ``gancompress.load`` gives the dequantized float32 module), and as ONNX (float32, and
int8 weights behind ``DequantizeLinear``, and fp8 when the exporter writes it; a format it refuses
is a row with the reason). Torch files are timed with every ``--backends`` backend, ONNX files in
onnxruntime (8-bit ones twice: default session, and ``session.disable_quant_qdq=1``, which folds the
weights' DequantizeLinear into float32 constants at load). Each row: the median wall and
calling-thread CPU milliseconds of ``--repeats`` calls after 3 untimed ones (torch.compile compiles
during those), and ``x dense eager``: its CPU time over the dense generator's eager CPU time at the
same batch size. With one thread (the default) the compute runs on the calling thread, so CPU time
is the number a busy machine disturbs least.
Prints a markdown table, JSON with ``--json``.

    python benchmarks/latency_backends.py [--batch-sizes 1 16] [--backends eager compile onnxruntime] [--repeats 20]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
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


def time_file(source: str, backends: list[str], batch_sizes: list[int], repeats: int) -> list[dict]:
    """Rows for one file: each backend (ONNX files: onnxruntime, and with its 8-bit weights folded)."""
    from gancompress.generation import generator_info
    from gancompress.loading import load_bundle
    from gancompress.metrics.latency import BACKENDS, BackendUnavailable

    if source.startswith("not exported: "):
        return _note_rows("-", source, batch_sizes)
    bundle = load_bundle(source)
    info = generator_info(bundle)
    if source.endswith(".onnx"):  # the same session wrapper for both, so only the option differs
        folds = (False, True) if _has_dequantize(source) else (False,)
        return [row for fold in folds for row in time_runner(*onnx_runner(source, fold), "onnxruntime", info,
                                                             batch_sizes, repeats)]
    rows = []
    for backend in backends:
        try:
            run, runtime = BACKENDS.get(backend)(bundle.generator.eval(), info.input_shape, torch.device("cpu"))
        except BackendUnavailable as exc:
            rows += _note_rows(backend, str(exc), batch_sizes)
            continue
        rows += time_runner(run, runtime, backend, info, batch_sizes, repeats)
    return rows


def _note_rows(backend: str, note: str, batch_sizes: list[int]) -> list[dict]:
    return [{"backend": backend, "runtime": "-", "batch_size": b, "wall_ms": None, "cpu_ms": None, "note": note}
            for b in batch_sizes]


def _has_dequantize(path: str) -> bool:
    import onnx

    return any(node.op_type == "DequantizeLinear" for node in onnx.load(path).graph.node)


def onnx_runner(path: str, fold: bool):
    """An onnxruntime session on ``path`` (``fold``: with ``session.disable_quant_qdq=1``, so the weights'
    DequantizeLinear nodes are constant-folded to float32 once, at load; by default onnxruntime keeps them
    and dequantizes on every call)."""
    import onnxruntime as ort

    from gancompress.metrics.latency import session_options

    options = session_options(ort)
    if fold:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    runtime = f"onnxruntime {ort.__version__} (CPU{', session.disable_quant_qdq=1' if fold else ''})"
    return (lambda x: session.run(None, {name: x.numpy()})), runtime


@torch.no_grad()
def time_runner(run, runtime: str, backend: str, info, batch_sizes: list[int], repeats: int) -> list[dict]:
    """Median wall and calling-thread CPU milliseconds per call (one thread: the compute runs on this
    thread, so its CPU time hardly moves when other jobs share the cores; wall time does)."""
    from gancompress.generation import draw_latents

    rows = []
    for batch in batch_sizes:
        x = draw_latents(batch, info.input_shape, torch.Generator().manual_seed(0), info.num_classes)
        wall, cpu = [], []
        for i in range(3 + repeats):  # 3 untimed calls (torch.compile compiles during them)
            w0, c0 = time.perf_counter(), time.thread_time()
            run(x)
            if i >= 3:
                wall.append(time.perf_counter() - w0)
                cpu.append(time.thread_time() - c0)
        rows.append({"backend": backend, "runtime": runtime, "batch_size": batch, "note": None,
                     "wall_ms": 1000 * statistics.median(wall), "cpu_ms": 1000 * statistics.median(cpu)})
    return rows


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each row's CPU time over its generator's dense eager CPU time at the same batch size."""
    base = {(r["generator"], r["batch_size"]): r["cpu_ms"] for r in rows
            if r["model"] == DENSE and r["backend"] == "eager"}
    for r in rows:
        dense = base.get((r["generator"], r["batch_size"]))
        r["x_dense_eager"] = None if r["cpu_ms"] is None or not dense else r["cpu_ms"] / dense
    return rows


def machine(threads: int) -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} torch/onnxruntime "
            f"threads, load average {load} at the end, torch {torch.__version__.split('+')[0]}")


def print_table(rows: list[dict], threads: int) -> None:
    print(f"Latency per runtime ({machine(threads)}); ratios are what to read, absolute times are noisy here.\n")
    print("| generator | model | backend | runtime | batch | wall ms | CPU ms | x dense eager (CPU) |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        wall, cpu, ratio = (_number(r[k], f) for k, f in (("wall_ms", ".2f"), ("cpu_ms", ".2f"), ("x_dense_eager", ".3f")))
        print(f"| {r['generator']} | {r['model']} | {r['backend']} | {r['note'] or r['runtime']} | {r['batch_size']} "
              f"| {wall} | {cpu} | {ratio} |")


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--backends", nargs="+", default=["eager", "compile", "onnxruntime"])
    parser.add_argument("--generators", nargs="+", default=list(GENERATORS), choices=list(GENERATORS))
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (CPU times assume 1)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per row (the median is reported)")
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
                         for r in time_file(source, args.backends, args.batch_sizes, args.repeats)]
    rows = with_ratios(rows)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows, args.threads)


if __name__ == "__main__":
    main()
