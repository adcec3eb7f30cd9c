"""gancompress side by side with the tools people use instead, measured in one run.

Every row is a ratio, gancompress / peer, on the same model, machine and run (absolute times on
a shared 2-core machine are noisy; the ratios are what we report). Sections:

* ``prune``: ``torch.nn.utils.prune`` (l1_unstructured per layer, global_unstructured,
  ln_structured) vs ``gancompress prune`` at 90% element / filter on a ~50M-parameter DCGAN
  generator: whole-process wall time and peak RSS (load + prune + save), and the fraction of
  weights whose zero/non-zero status agrees where the two rules coincide.
* ``shrink``: Torch-Pruning 1.6.1 (``DependencyGraph``) vs ``gancompress export --format shrunk``
  on the pix2pix ResNet-9, the U-Net and RRDBNet (x4 and x2, which pixel-unshuffles its input)
  after ``prune --coupled`` at 50% filter: time, MACs, CPU latency and the largest output
  difference from the masked model.
* ``sparse``: compressed-tensors' sparse-bitmask layout (0.14, the last release that writes it)
  vs ``export --format sparse`` at 50/75/90% element and 2:4: file size, and whether each reads
  the other's file.
* ``fid``: torch-fidelity's own ``calculate_metrics`` on the same generator and features vs
  ``gancompress evaluate --fid`` (our overhead), digits extractor, cached real statistics.
* ``latency``: dense vs masked vs shrunk in torch eager and onnxruntime at batch 1 and 16.

Peers that are not installed are reported as such (``pip install -e ".[bench]"``), never
skipped silently. Run::

    python benchmarks/peers.py [--sections prune,shrink,sparse,fid,latency] [--scale 1.0]
                               [--repeats 3] [--json peers.json]
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("prune", "shrink", "sparse", "fid", "latency")
BENCH_EXTRA = 'pip install -e ".[bench]"'


# ---------------------------------------------------------------- processes and measures
def run_process(code_or_argv: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one child process (``os.wait4`` rusage)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.Popen(code_or_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(code_or_argv[:4])} ... failed: {err.decode()[-800:]}")
    return seconds, usage.ru_maxrss / 1024, out.decode()


def cli(*args: str) -> tuple[float, float, str]:
    return run_process([sys.executable, "-m", "gancompress", *args, "--quiet"])


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def macs(model: nn.Module, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2 // x.shape[0]


def latency_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def zero_agreement(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> float:
    """Fraction of weights of the pruned layers whose zero / non-zero status is the same."""
    same = total = 0
    for name, w in ours.items():
        if w.dim() < 2 or name not in theirs:
            continue
        same += int(((w == 0) == (theirs[name] == 0)).sum())
        total += w.numel()
    return same / max(1, total)


def save_state(model: nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


def build_builtin(name: str, **kwargs) -> nn.Module:
    from gancompress.archs import ArchSpec, build

    torch.manual_seed(0)
    return build(ArchSpec(name, kwargs)).eval()


def load_generator(path: Path) -> nn.Module:
    import gancompress

    return gancompress.load(str(path)).eval()


# ---------------------------------------------------------------- section: prune
PEER_PRUNE = """
import sys, torch
from torch import nn
from torch.nn.utils import prune
from gancompress.archs import ArchSpec, build
sd = torch.load(sys.argv[1], weights_only=True)
widths = [sd["main.0.weight"].shape[0]] + [sd[k].shape[1] for k in sorted(
    (k for k in sd if k.endswith(".weight") and sd[k].dim() == 4), key=lambda k: int(k.split(".")[1]))]
g = build(ArchSpec("dcgan-g", {"widths": widths}))
g.load_state_dict(sd)
layers = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
rule = sys.argv[3]
if rule == "l1_unstructured":
    for m in layers:
        prune.l1_unstructured(m, "weight", amount=0.9)
elif rule == "global_unstructured":
    prune.global_unstructured([(m, "weight") for m in layers], pruning_method=prune.L1Unstructured, amount=0.9)
else:
    for m in layers:
        prune.ln_structured(m, "weight", amount=0.9, n=2, dim=1)
for m in layers:
    prune.remove(m, "weight")
torch.save(g.state_dict(), sys.argv[2])
"""

PRUNE_CASES = (  # (label, gancompress flags, torch.nn.utils.prune rule, rules coincide?)
    ("element, per layer", ["-g", "element"], "l1_unstructured", True),
    ("element, global", ["-g", "element", "--scope", "global"], "global_unstructured", False),
    ("filter, per layer", ["-g", "filter"], "ln_structured", True),
)


def dcgan_widths(scale: float) -> list[int]:
    ngf = max(8, int(272 * scale))  # ngf 272: ~50M parameters
    return [100, ngf * 8, ngf * 4, ngf * 2, ngf, 3]


def section_prune(tmp: Path, scale: float, repeats: int) -> list[dict]:
    g = build_builtin("dcgan-g", widths=dcgan_widths(scale))
    src = save_state(g, tmp / "dcgan.pth")
    params = sum(p.numel() for p in g.parameters())
    rows = []
    for label, flags, rule, coincide in PRUNE_CASES:
        ours_runs, peer_runs = [], []
        for _ in range(repeats):  # paired runs: ours, then the peer, back to back
            ours_runs.append(cli("prune", str(src), "-s", "0.9", *flags, "--prune-first-last", "--force",
                                 "-o", str(tmp / "ours.safetensors"))[:2])
            peer_runs.append(python_code_args(PEER_PRUNE, str(src), str(tmp / "peer.pth"), rule)[:2])
        ours_sd = load_generator(tmp / "ours.safetensors").state_dict()
        peer_sd = torch.load(tmp / "peer.pth", weights_only=True)
        ow, orss = (statistics.median(v) for v in zip(*ours_runs))
        pw, prss = (statistics.median(v) for v in zip(*peer_runs))
        rows.append({"case": label, "peer": f"torch.nn.utils.prune.{rule}", "params": params,
                     "wall_ratio": ow / pw, "rss_ratio": orss / prss, "ours_s": ow, "peer_s": pw,
                     "same_zeros": zero_agreement(ours_sd, peer_sd), "rules_coincide": coincide})
    return rows


def python_code_args(code: str, *args: str) -> tuple[float, float, str]:
    return run_process([sys.executable, "-c", code, *args])


# ---------------------------------------------------------------- section: shrink
SHRINK_MODELS = {  # name: (arch, kwargs, input shape)
    "pix2pix ResNet-9": ("pix2pix-resnet-g", {"input_nc": 3, "output_nc": 3, "ngf": 64, "n_blocks": 9,
                                               "norm": "instance", "use_dropout": False}, (3, 128, 128)),
    "pix2pix U-Net": ("pix2pix-unet-g", {"input_nc": 3, "output_nc": 3, "num_downs": 8, "ngf": 64,
                                         "norm": "batch", "use_dropout": False}, (3, 256, 256)),
    "RRDBNet x4": ("rrdbnet-g", {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64,
                                  "num_block": 6, "num_grow_ch": 32}, (3, 32, 32)),
    "RRDBNet x2": ("rrdbnet-g", {"num_in_ch": 3, "num_out_ch": 3, "scale": 2, "num_feat": 64,
                                  "num_block": 6, "num_grow_ch": 32}, (3, 32, 32)),
}


PEER_SHRINK = """
import sys, time, torch
from torch import nn
import torch_pruning as tp
import gancompress

model = gancompress.load(sys.argv[1]).eval()
x = torch.randn(1, *[int(s) for s in sys.argv[3].split(",")])
t0 = time.perf_counter()
graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
for conv in [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]:
    dim = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
    w = conv.weight.detach()
    zero = (w.abs().sum(dim=[d for d in range(w.dim()) if d != dim]) == 0).nonzero().flatten().tolist()
    if zero and len(zero) < w.shape[dim]:
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=zero)
        if graph.check_pruning_group(group):
            group.prune()
torch.save(model, sys.argv[2])  # Torch-Pruning's way to keep a pruned model: a whole-module pickle
print(time.perf_counter() - t0)
"""


def trained_like(model: nn.Module) -> nn.Module:
    """Give norm layers the non-trivial statistics and affine terms of a trained network (seeded)."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.affine:
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
    return model


def section_shrink(tmp: Path, repeats: int) -> list[dict]:
    rows = []
    for label, (arch, kwargs, shape) in SHRINK_MODELS.items():
        src = save_state(trained_like(build_builtin(arch, **kwargs)), tmp / "model.pth")
        cli("prune", str(src), "-s", "0.5", "-g", "filter", "--coupled", "--force", "-o", str(tmp / "p.safetensors"))
        ours_s = statistics.median(cli("export", str(tmp / "p.safetensors"), "--format", "shrunk", "--force",
                                       "-o", str(tmp / "s.safetensors"))[0] for _ in range(repeats))
        masked, ours = load_generator(tmp / "p.safetensors"), load_generator(tmp / "s.safetensors")
        x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
        row = {"model": label, "dense_macs": macs(masked, x), "ours_macs": macs(ours, x),
               "ours_s": ours_s, "ours_ms": latency_ms(lambda: ours(x), repeats),
               "masked_ms": latency_ms(lambda: masked(x), repeats), "ours_err": max_diff(ours, masked, x)}
        row.update(_peer_shrink(tmp, masked, x, repeats))
        rows.append(row)
    return rows


def _peer_shrink(tmp: Path, masked: nn.Module, x: torch.Tensor, repeats: int) -> dict:
    if not have("torch_pruning"):
        return {"peer": f"Torch-Pruning not installed ({BENCH_EXTRA})"}
    name = f"Torch-Pruning {importlib.metadata.version('torch-pruning')}"
    shape = ",".join(str(s) for s in x.shape[1:])
    try:
        runs = [python_code_args(PEER_SHRINK, str(tmp / "p.safetensors"), str(tmp / "peer.pt"), shape)[0]
                for _ in range(repeats)]
        peer = torch.load(tmp / "peer.pt", weights_only=False).eval()  # our own file, written just now
        err = max_diff(peer, masked, x)
    except Exception as exc:  # the peer's failure is a result to report, not a crash
        return {"peer": f"{name}: failed ({type(exc).__name__}: {str(exc)[-160:]})"}
    return {"peer": name, "peer_s": statistics.median(runs), "peer_macs": macs(peer, x),
            "peer_ms": latency_ms(lambda: peer(x), repeats), "peer_err": err}


# ---------------------------------------------------------------- section: sparse files
def section_sparse(tmp: Path) -> list[dict]:
    model = build_builtin("pix2pix-resnet-g", **SHRINK_MODELS["pix2pix ResNet-9"][1])
    src = save_state(model, tmp / "resnet.pth")
    cases = [("element 50%", ["-s", "0.5"]), ("element 75%", ["-s", "0.75"]), ("element 90%", ["-s", "0.9"]),
             ("2:4", ["-g", "nm", "--nm", "2:4"])]
    dense_bytes = sum(p.numel() * 4 for p in model.state_dict().values())
    rows = []
    for label, flags in cases:
        cli("prune", str(src), *flags, "--force", "-o", str(tmp / "p.safetensors"))
        ours = tmp / "ours.sparse.safetensors"
        cli("export", str(tmp / "p.safetensors"), "--format", "sparse", "--force", "-o", str(ours))
        compat = tmp / "ours.bitmask.safetensors"  # --encodings bitmask: the layout compressed-tensors reads
        cli("export", str(tmp / "p.safetensors"), "--format", "sparse", "--encodings", "bitmask", "--force", "-o", str(compat))
        masked_sd = load_generator(tmp / "p.safetensors").state_dict()
        row = {"case": label, "dense_bytes": dense_bytes, "ours_bytes": ours.stat().st_size,
               "ours_bitmask_bytes": compat.stat().st_size}
        row.update(_peer_sparse(masked_sd, ours, tmp))
        if have("compressed_tensors"):
            row["peer_reads_ours_bitmask"] = _peer_reads(compat, masked_sd)
        rows.append(row)
    return rows


def _peer_sparse(masked_sd: dict[str, torch.Tensor], ours: Path, tmp: Path) -> dict:
    if not have("compressed_tensors"):
        return {"peer": f"compressed-tensors not installed ({BENCH_EXTRA})"}
    from safetensors.torch import load_file, save_file

    from compressed_tensors.compressors.sparse_compressors.sparse_bitmask import BitmaskTensor

    peer_file = tmp / "peer.safetensors"
    tensors = {}
    for name, w in masked_sd.items():
        if w.dim() >= 2 and name.endswith("weight"):
            tensors.update(BitmaskTensor.from_dense(w).dict(name))  # its own way: the tensor as it is
        else:
            tensors[name] = w.contiguous()
    save_file(tensors, str(peer_file))
    return {"peer": "compressed-tensors 0.14 sparse-bitmask", "peer_bytes": peer_file.stat().st_size,
            "peer_reads_ours": _peer_reads(ours, masked_sd), "ours_reads_peer": _ours_reads(peer_file, masked_sd)}


def _peer_reads(path: Path, masked_sd: dict[str, torch.Tensor]) -> str:
    from safetensors.torch import load_file

    from compressed_tensors.compressors.sparse_compressors.sparse_bitmask import BitmaskTensor

    stored = load_file(str(path))
    decoded = 0
    try:
        for name, w in masked_sd.items():
            if f"{name}.bitmask" not in stored:
                continue
            parts = {k: stored[f"{name}.{k}"] for k in ("shape", "compressed", "bitmask", "row_offsets")}
            got = BitmaskTensor(**parts).decompress()
            if not torch.equal(got.reshape(w.shape), w):
                return f"no: {name} decodes to other values"
            decoded += 1
    except Exception as exc:
        return f"no ({type(exc).__name__}: {str(exc)[:80]})"
    weights = sum(1 for w in masked_sd.values() if w.dim() >= 2)
    if decoded < weights:  # dense layers and other encodings (N:M, slices) are not its layout
        return f"exact for the {decoded} bitmask-encoded of {weights} weights (others: other encodings)"
    return "yes, exact"


def _ours_reads(path: Path, masked_sd: dict[str, torch.Tensor]) -> str:
    try:
        got = load_generator(path).state_dict()
    except Exception as exc:  # gancompress's one-line error is the answer
        return f"no ({str(exc)[:100]})"
    same = all(torch.equal(got[k], v) for k, v in masked_sd.items())
    return "yes, exact" if same else "no: other values"


# ---------------------------------------------------------------- section: FID throughput
PEER_FID = """
import json, sys, torch, torch_fidelity
import gancompress
from gancompress.metrics.extractors import get_extractor
from gancompress.data.digits import digits_images

n, cache = int(sys.argv[1]), sys.argv[2]
g = gancompress.load("builtin:digits-dcgan")


class Uint8(torch.nn.Module):  # what a user writes: torch-fidelity wants uint8 images
    def __init__(self, g):
        super().__init__()
        self.g = g

    def forward(self, z):
        with torch.no_grad():
            return ((self.g(z.view(-1, 32, 1, 1)) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


class Real(torch.utils.data.Dataset):
    def __init__(self):
        self.x = ((digits_images() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


wrapped = torch_fidelity.GenerativeModelModuleWrapper(Uint8(g), 32, "normal", 0)
m = torch_fidelity.calculate_metrics(
    input1=wrapped, input1_model_num_samples=n, input2=Real(), fid=True, verbose=False, cuda=False,
    feature_extractor=get_extractor("digits").fidelity_name, batch_size=64, rng_seed=0,
    cache_root=cache, input2_cache_name="peer-digits-real", cache=True)
print(json.dumps({"fid": m["frechet_inception_distance"]}))
"""


def section_fid(tmp: Path, samples: int) -> list[dict]:
    args = ("evaluate", "builtin:digits-dcgan", "--fid", "--extractor", "digits", "--num-samples", str(samples),
            "--json")
    cli(*args)  # warm: real statistics cached, imports compiled; then time one run of each
    ours_s, _, out = cli(*args)
    ours_fid = _find_fid(json.loads(out))
    return [{"case": f"digits-FID, {samples} samples", "ours_s": ours_s, "ours_fid": ours_fid,
             **_peer_fid(samples, tmp)}]


def _find_fid(report) -> float | None:
    """The first ``fid`` value anywhere in an evaluate --json report."""
    if isinstance(report, dict):
        if isinstance(report.get("fid"), (int, float)):
            return round(float(report["fid"]), 3)
        values = report.values()
    elif isinstance(report, list):
        values = report
    else:
        return None
    for value in values:
        found = _find_fid(value)
        if found is not None:
            return found
    return None


def _peer_fid(samples: int, tmp: Path) -> dict:
    import torch_fidelity

    try:
        python_code_args(PEER_FID, str(samples), str(tmp / "fid-cache"))
        seconds, _, out = python_code_args(PEER_FID, str(samples), str(tmp / "fid-cache"))
    except RuntimeError as exc:
        return {"peer": f"torch-fidelity failed ({str(exc)[-120:]})"}
    return {"peer": f"torch-fidelity {torch_fidelity.__version__} calculate_metrics", "peer_s": seconds,
            "peer_fid": round(json.loads(out.strip().splitlines()[-1])["fid"], 3)}


# ---------------------------------------------------------------- section: latency
def section_latency(tmp: Path, repeats: int) -> list[dict]:
    arch, kwargs, shape = SHRINK_MODELS["pix2pix ResNet-9"]
    src = save_state(build_builtin(arch, **kwargs), tmp / "resnet.pth")
    cli("prune", str(src), "-s", "0.5", "-g", "filter", "--coupled", "--force", "-o", str(tmp / "p.safetensors"))
    cli("export", str(tmp / "p.safetensors"), "--format", "shrunk", "--force", "-o", str(tmp / "s.safetensors"))
    models = {"dense": build_builtin(arch, **kwargs), "masked": load_generator(tmp / "p.safetensors"),
              "shrunk": load_generator(tmp / "s.safetensors")}
    rows = []
    for batch in (1, 16):
        x = torch.randn(batch, *shape[:1], 64, 64)
        row = {"batch": batch}
        for name, model in models.items():
            row[f"{name}_torch_ms"] = latency_ms(lambda m=model: _no_grad(m, x), repeats)
            row[f"{name}_ort_ms"] = _ort_latency(model, x, tmp / f"{name}.onnx", repeats)
        rows.append(row)
    return rows


def _no_grad(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def _ort_latency(model: nn.Module, x: torch.Tensor, path: Path, repeats: int) -> float | None:
    if not have("onnxruntime"):
        return None
    import onnxruntime as ort

    if not path.exists():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x[:1],), str(path), input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {"input": x.numpy()}
    return latency_ms(lambda: session.run(None, feed), repeats)


# ---------------------------------------------------------------- tables
def _r(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def print_tables(results: dict[str, list[dict]]) -> None:
    if "prune" in results:
        print("\n### Pruning: gancompress prune vs torch.nn.utils.prune (90%, whole process)\n")
        print("| case | peer | wall ours/peer | peak RSS ours/peer | same zeros | rules coincide |")
        print("|---|---|---|---|---|---|")
        for r in results["prune"]:
            print(f"| {r['case']} | {r['peer']} | {r['wall_ratio']:.2f}x ({r['ours_s']:.1f} s vs {r['peer_s']:.1f} s) | "
                  f"{r['rss_ratio']:.2f}x | {r['same_zeros']:.2%} | {'yes' if r['rules_coincide'] else 'no (ours normalises per layer)'} |")
    if "shrink" in results:
        print("\n### Structural shrink at 50% coupled filter sparsity: export --format shrunk vs Torch-Pruning\n")
        print("| model | peer | whole process ours/peer | MACs ours/peer (ours/dense) | latency ours/peer | max error ours | max error peer |")
        print("|---|---|---|---|---|---|---|")
        for r in results["shrink"]:
            print(f"| {r['model']} | {r['peer']} | {_r(r['ours_s'], r.get('peer_s'))} | "
                  f"{_r(r['ours_macs'], r.get('peer_macs'))} ({r['ours_macs'] / r['dense_macs']:.2f}) | "
                  f"{_r(r['ours_ms'], r.get('peer_ms'))} | {r['ours_err']:.1e} | "
                  f"{'%.1e' % r['peer_err'] if 'peer_err' in r else '-'} |")
    if "sparse" in results:
        print("\n### Sparse files: export --format sparse vs compressed-tensors sparse-bitmask (ResNet-9)\n")
        print("| case | peer | size ours/peer | ours / dense | peer reads ours | ours reads peer | "
              "`--encodings bitmask`: size ours/peer, peer reads it |")
        print("|---|---|---|---|---|---|---|")
        for r in results["sparse"]:
            print(f"| {r['case']} | {r['peer']} | {_r(r['ours_bytes'], r.get('peer_bytes'))} | "
                  f"{r['ours_bytes'] / r['dense_bytes']:.3f}x | {r.get('peer_reads_ours', '-')} | {r.get('ours_reads_peer', '-')} | "
                  f"{_r(r['ours_bitmask_bytes'], r.get('peer_bytes'))}, {r.get('peer_reads_ours_bitmask', '-')} |")
    if "fid" in results:
        print("\n### FID throughput: gancompress evaluate vs torch-fidelity calculate_metrics\n")
        print("| case | peer | wall ours/peer | FID ours | FID peer |")
        print("|---|---|---|---|---|")
        for r in results["fid"]:
            print(f"| {r['case']} | {r['peer']} | {_r(r['ours_s'], r.get('peer_s'))} ({r['ours_s']:.1f} s) | "
                  f"{r.get('ours_fid', '-')} | {r.get('peer_fid', '-')} |")
    if "latency" in results:
        print("\n### Latency, pix2pix ResNet-9 at 64x64, 50% coupled filter sparsity (ratio to dense, same backend)\n")
        print("| batch | backend | dense ms | masked / dense | shrunk / dense |")
        print("|---|---|---|---|---|")
        for r in results["latency"]:
            for backend in ("torch", "ort"):
                d = r.get(f"dense_{backend}_ms")
                if d is None:
                    print(f"| {r['batch']} | onnxruntime | not installed ({BENCH_EXTRA}) | - | - |")
                    continue
                name = "torch eager" if backend == "torch" else "onnxruntime"
                print(f"| {r['batch']} | {name} | {d:.1f} | {_r(r[f'masked_{backend}_ms'], d)} | {_r(r[f'shrunk_{backend}_ms'], d)} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    ap.add_argument("--scale", type=float, default=1.0, help="width scale of the prune section's DCGAN (1.0: ~50M params)")
    ap.add_argument("--repeats", type=int, default=3, help="paired repeats per measurement (median)")
    ap.add_argument("--samples", type=int, default=2000, help="generated samples for the FID section")
    ap.add_argument("--json", type=Path, help="also write every measurement as JSON here")
    args = ap.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    torch.set_num_threads(1)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, 1 thread per process; "
          f"Torch-Pruning {'installed' if have('torch_pruning') else 'not installed'}, "
          f"compressed-tensors {'installed' if have('compressed_tensors') else 'not installed'}")
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name in sections:
            t0 = time.perf_counter()
            if name == "prune":
                results[name] = section_prune(tmp, args.scale, args.repeats)
            elif name == "shrink":
                results[name] = section_shrink(tmp, args.repeats)
            elif name == "sparse":
                results[name] = section_sparse(tmp)
            elif name == "fid":
                results[name] = section_fid(tmp, args.samples)
            else:
                results[name] = section_latency(tmp, args.repeats)
            print(f"[{name}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr)
    print_tables(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
