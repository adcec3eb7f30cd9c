"""A file of a few MB never pushes peak memory above a small multiple of its size.

Each hostile file is a copy of the bundled 3 MB checkpoint (or its sparse export) whose header
claims far more than its bytes hold. A subprocess loads a valid file first (so every code path is
warm), caps its address space at 1 GiB above what it already maps, then loads the hostile file and
reports the growth of its peak resident set. Not a timing test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hostile_files import cli, edit_metadata, strip_digest

ROOT = Path(__file__).resolve().parents[1]
PROBE = r"""
import json, resource, sys
from gancompress.api import load
from gancompress.errors import GanCompressError, InputError

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

valid, cases = sys.argv[1], json.loads(sys.argv[2])
for path in valid.split(","):
    load(path)
vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))
out = {}
for name, path in cases.items():
    before = peak_mb()
    try:
        load(path)
        outcome = "loaded"
    except GanCompressError as exc:
        # refused as bad input (InputError or a subtype such as NetworkMismatch), or something else
        outcome = f"{'InputError' if isinstance(exc, InputError) else type(exc).__name__}: {exc}"
    except MemoryError:
        outcome = "MemoryError"
    out[name] = [outcome, peak_mb() - before]
print(json.dumps(out))
"""


def _table(meta: dict[str, str], edit) -> None:
    strip_digest(meta)
    table = json.loads(meta["tensors"])
    edit(table)
    meta["tensors"] = json.dumps(table)


def _hostile_files(tmp_path: Path) -> tuple[list[Path], dict[str, Path]]:
    from gancompress.sources import builtin_path

    ckpt = builtin_path("digits-dcgan")
    pruned = tmp_path / "pruned.safetensors"
    assert cli("prune", "builtin:digits-dcgan", "-g", "filter", "-s", "0.5", "-o", pruned, "-q").exit_code == 0
    sparse = tmp_path / "sparse.safetensors"
    assert cli("export", pruned, "-o", sparse, "-q").exit_code == 0

    def arch(meta, kwargs):
        strip_digest(meta)
        meta["g_arch"] = json.dumps({"name": "digits-dcgan-g", "kwargs": kwargs})

    def masks(meta):
        strip_digest(meta)
        shapes = json.loads(meta["mask_shapes"])
        meta["mask_shapes"] = json.dumps({k: [v[0] * 4096, *v[1:]] for k, v in shapes.items()})

    def widen(table):  # every slices tensor claims 4096x the rows, with no more slices kept
        for info in table.values():
            info["shape"][info.get("axis", 0)] *= 4096

    hostile = {
        "wide-arch": edit_metadata(ckpt, tmp_path / "a.safetensors", lambda m: arch(m, {"nz": 32, "ngf": 65536, "nc": 1})),
        "deep-latent": edit_metadata(ckpt, tmp_path / "b.safetensors", lambda m: arch(m, {"nz": 2 ** 24, "ngf": 64, "nc": 1})),
        "mask-shapes": edit_metadata(pruned, tmp_path / "c.safetensors", masks),
        "sparse-table": edit_metadata(sparse, tmp_path / "d.safetensors", lambda m: _table(m, widen)),
        "sparse-arch": edit_metadata(sparse, tmp_path / "e.safetensors", lambda m: arch(m, {"nz": 32, "ngf": 65536, "nc": 1})),
    }
    return [Path(ckpt), pruned, sparse], hostile


def test_hostile_headers_cannot_take_memory(tmp_path):
    valid, hostile = _hostile_files(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", PROBE, ",".join(map(str, valid)),
                        json.dumps({k: str(v) for k, v in hostile.items()})],
                       capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    for name, (outcome, grown_mb) in json.loads(r.stdout.splitlines()[-1]).items():
        size_mb = hostile[name].stat().st_size / 2 ** 20
        assert outcome.startswith("InputError"), (name, outcome)
        assert grown_mb <= 4 * size_mb + 32, (name, grown_mb, size_mb)
