"""Latency of one generator per runtime: torch eager, torch.compile and onnxruntime, dense and shrunk.

Loads ``builtin:digits-dcgan`` (a random generator of the same shape when it is not bundled),
prunes 50% of its filters and exports the result shrunk (float32 and float16) and as ONNX, then
times each file with every backend at each batch size (median of 20 calls after 3 untimed
ones; torch.compile compiles during those). Prints a markdown table, JSON with ``--json``.

    python benchmarks/latency_backends.py [--batch-sizes 1 16] [--backends eager compile onnxruntime] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch


def build_files(folder: Path) -> dict[str, str]:
    from typer.testing import CliRunner

    from gancompress.cli.main import app

    def run(*args: str) -> None:
        r = CliRunner().invoke(app, list(args))
        if r.exit_code != 0:
            raise SystemExit(r.output)

    pruned = folder / "pruned.safetensors"
    run("prune", "builtin:digits-dcgan", "-s", "0.5", "-g", "filter", "-o", str(pruned), "-q")
    out = {"dense (project file)": "builtin:digits-dcgan", "50% filters, masked": str(pruned)}
    for name, fmt, dtype, suffix in (("shrunk float32", "shrunk", None, ".safetensors"),
                                     ("shrunk float16", "shrunk", "float16", ".safetensors"),
                                     ("masked ONNX", "onnx", None, ".onnx")):
        path = folder / (name.replace(" ", "_") + suffix)
        run("export", str(pruned), "--format", fmt, "-o", str(path), *(["--dtype", dtype] if dtype else []))
        out[name] = str(path)
    return out


def main() -> None:
    from gancompress.generation import generator_info
    from gancompress.loading import load_bundle
    from gancompress.metrics.latency import measure_backends

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--backends", nargs="+", default=["eager", "compile", "onnxruntime"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in build_files(Path(tmp)).items():
            bundle = load_bundle(source)
            info = generator_info(bundle)
            for r in measure_backends(bundle.generator, info.input_shape, torch.device("cpu"), args.backends,
                                      args.batch_sizes):
                rows.append({"model": name, **r.to_dict()})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"| model | backend | runtime | batch | ms per call | samples/s |  (CPU, {args.threads} threads)")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        ms = "-" if r["median_ms"] is None else f"{r['median_ms']:.3f}"
        sps = "-" if r["throughput"] is None else f"{r['throughput']:,.0f}"
        print(f"| {r['model']} | {r['backend']} | {r['note'] or r['runtime']} | {r['batch_size']} | {ms} | {sps} |")


if __name__ == "__main__":
    main()
