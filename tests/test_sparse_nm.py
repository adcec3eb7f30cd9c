"""The ``nm_dim`` encoding: N:M weights along the input channels stored as values + in-run indices,
decoded bit for bit by the library and by the numpy-only decoder of docs/sparse_format.md."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gancompress.api import load
from gancompress.cli.main import app
from gancompress.errors import InputError
from gancompress.formats import sparse as sf
from gancompress.prune import GRANULARITIES

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"conv": ((8, 16, 3, 3), 1), "conv_transpose": ((16, 8, 4, 4), 0), "linear": ((6, 12), 1)}


def nm_weight(kind: str, nm=(2, 4), dtype=torch.float32) -> np.ndarray:
    shape, _ = LAYERS[kind]
    w = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    return w.masked_fill(~GRANULARITIES.get("nm").mask(w, None, kind, nm=nm), 0).to(dtype).numpy()


@pytest.mark.parametrize("kind", ["conv", "conv_transpose"])
@pytest.mark.parametrize("nm", [(2, 4), (1, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_input_channel_nm_takes_the_compact_layout_and_round_trips(kind, nm, dtype):
    a = nm_weight(kind, nm, dtype)
    best = sf.choose(a)
    bitmask = next(c for c in sf.candidates(a) if c.encoding == "bitmask")
    assert best.encoding == "nm_dim" and best.params == {"dim": LAYERS[kind][1], "n": nm[0], "m": nm[1]}
    assert best.size < bitmask.size
    enc = sf.encode(a, best)
    assert enc.arrays["compressed"].size == a.size * nm[0] // nm[1]  # only the kept values
    assert enc.arrays["indices"].nbytes == -(-enc.arrays["compressed"].size * 2 // 8)  # 2 bits each for m=4
    out = sf.DECODERS["nm_dim"]("w", {"shape": list(a.shape), **best.params}, enc.arrays)
    assert out.tobytes() == a.tobytes()


def test_damaged_nm_dim_is_refused():
    a = nm_weight("conv")
    enc = sf.encode(a, sf.choose(a))
    for bad in ({"dim": 7}, {"dim": True}, {"dim": 0}, {"m": 3}):
        with pytest.raises(InputError, match="damaged"):
            sf.DECODERS["nm_dim"]("w", {"shape": list(a.shape), "dim": 1, "n": 2, "m": 4, **bad}, enc.arrays)
    broken = {**enc.arrays, "indices": enc.arrays["indices"][:-1]}
    with pytest.raises(InputError, match="damaged"):
        sf.DECODERS["nm_dim"]("w", {"shape": list(a.shape), "dim": 1, "n": 2, "m": 4}, broken)


def test_exported_nm_file_decodes_the_same_in_the_numpy_decoder(tmp_path):
    pruned, sparse = tmp_path / "nm.safetensors", tmp_path / "nm.sparse.safetensors"
    runner = CliRunner()
    assert runner.invoke(app, ["prune", "builtin:digits-dcgan", "-g", "nm", "-o", str(pruned), "-q"]).exit_code == 0
    r = runner.invoke(app, ["export", str(pruned), "-o", str(sparse), "--json"])
    assert r.exit_code == 0, r.output
    assert "nm_dim" in r.stdout
    namespace: dict = {}
    source = (ROOT / "gancompress" / "export" / "_numpy_decoder.py").read_text(encoding="utf-8")
    exec(compile(source, "_numpy_decoder.py", "exec"), namespace)  # noqa: S102 - our own code
    state = namespace["load_state"](str(sparse))
    want = load(str(pruned)).state_dict()
    assert set(state) >= set(want)
    for k, v in want.items():
        assert np.asarray(state[k]).tobytes() == v.numpy().tobytes(), k
    assert sparse.stat().st_size < 0.62 * pruned.stat().st_size  # half the values + 2-bit indices
