"""How fast is FID with the bundled digits extractor on CPU, and what does the reference cache save?

For each sample count: one run with an empty statistics cache (the 1,797 real digits are
encoded) and one with the cache filled (only generated samples are encoded). Prints a
markdown table. Uses ``builtin:digits-dcgan`` when it is bundled, else a randomly initialised
generator of the same architecture (speed does not depend on the weights).

    python benchmarks/evaluate_speed.py [--num-samples 500 2000] [--batch-size 64] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch


def generator() -> tuple[torch.nn.Module, str]:
    from gancompress.errors import InputError
    from gancompress.loading import load_bundle

    try:
        return load_bundle("builtin:digits-dcgan").generator.eval(), "builtin:digits-dcgan"
    except InputError:
        from gancompress.archs.digits import DigitsGenerator

        torch.manual_seed(0)
        return DigitsGenerator().eval(), "random DigitsGenerator(nz=32, ngf=32) (bundled GAN missing)"


def timed_fid(g: torch.nn.Module, n: int, batch_size: int) -> tuple[float, float]:
    from gancompress.data.digits import N_DIGITS
    from gancompress.metrics.extractors import get_extractor
    from gancompress.metrics.fidelity import GeneratorSampler, MetricRequest, RealSet, distribution_metrics

    def real() -> RealSet:
        from gancompress.data.images import load_real

        return RealSet(lambda: load_real("builtin:digits", size=16, channels=1), N_DIGITS, "builtin:digits|16|1")

    request = MetricRequest(fid=True, num_samples=n, batch_size=batch_size, seed=0)
    extractor = get_extractor("digits")
    times = []
    for _ in range(2):  # uncached, then cached
        start = time.perf_counter()
        distribution_metrics(GeneratorSampler(g, (32, 1, 1), (-1.0, 1.0)), real(), extractor, request)
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g, name = generator()
    rows = []
    for n in args.num_samples:
        with tempfile.TemporaryDirectory() as cache:
            os.environ["GANCOMPRESS_CACHE"] = cache
            timed_fid(g, 16, args.batch_size)  # warm-up: imports, first-call overheads (own cache dir)
        with tempfile.TemporaryDirectory() as cache:
            os.environ["GANCOMPRESS_CACHE"] = cache
            uncached, cached = timed_fid(g, n, args.batch_size)
        rows.append(f"| {n} | {args.batch_size} | {uncached:.2f} | {cached:.2f} | {uncached - cached:.2f} | {n / cached:,.0f} |")
    print(f"FID on CPU ({args.threads} threads), digits extractor, generator: {name}\n")
    print("| samples | batch | uncached s | cached s | reference cost s | samples/s (cached) |")
    print("|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
