"""The ``rice`` encoding: kept positions as Golomb-Rice coded gaps (format version 2), bit-exact
round trips against a brute-force reference, the numpy-only decoder, and streams a writer cannot
have produced refused with one clear line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gancompress.errors import InputError
from gancompress.formats import gap_code
from gancompress.formats import sparse as sf
from hostile_files import cli, edit_metadata, one_error_line, read_raw, replace_tensor, strip_digest, tensor_bytes, tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _numpy_decoder():
    namespace: dict = {}
    source = (ROOT / "gancompress" / "export" / "_numpy_decoder.py").read_text(encoding="utf-8")
    exec(compile(source, "_numpy_decoder.py", "exec"), namespace)  # noqa: S102 - our own code
    return namespace


NUMPY_DECODER = _numpy_decoder()


def _sparse(shape, density, dtype=np.float32, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "i":
        values = np.clip(np.round(values * 40), -127, 127)
    return np.where(rng.random(shape) < density, values, 0).astype(dtype)


def _round_trip(a: np.ndarray, k: int) -> np.ndarray:
    enc = sf.encode(a, sf.Candidate("rice", 0, {"k": k}))
    info = {"encoding": "rice", "shape": list(a.shape), **enc.params}
    out = sf.decode("t", info, enc.arrays)
    named = {f"t.{s}": v for s, v in enc.arrays.items()}
    assert NUMPY_DECODER["decode_tensor"]("t", info, named).tobytes() == a.tobytes()
    return out


@st.composite
def arrays(draw):
    shape = tuple(draw(st.lists(st.integers(0, 12), min_size=1, max_size=4)))
    dtype = draw(st.sampled_from([np.float32, np.float16, np.int8, np.uint8]))  # uint8: fp8 codes' bit patterns
    a = _sparse(shape, draw(st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0])), dtype, draw(st.integers(0, 2 ** 16)))
    if a.size > 1 and a.dtype.kind == "f":
        a.flat[0] = -0.0  # a non-zero bit pattern: kept
    return a, draw(st.integers(0, 12))


@settings(max_examples=60, deadline=None)
@given(arrays())
def test_rice_round_trips_bit_exactly_for_any_k_and_agrees_with_the_numpy_decoder(case):
    a, k = case
    out = _round_trip(a, k)
    assert out.dtype == a.dtype and out.shape == a.shape and out.tobytes() == a.tobytes()


@pytest.mark.parametrize("shape, density", [((4, 64), 0.0), ((4, 64), 1.0), ((300,), 0.1), ((6, 5, 3, 3), 0.2),
                                            ((1, 1), 1.0), ((5, 0, 3), 0.5), ((2, 3, 4, 5, 6), 0.05)])
def test_edge_cases_round_trip(shape, density):
    a = _sparse(shape, density)
    a[:1] = 0  # an empty first row
    for k in (0, 1, 3, gap_code.MAX_K):
        assert _round_trip(a, k).tobytes() == a.tobytes()


def test_positions_against_brute_force():
    positions = np.array([0, 1, 5, 6, 100, 1000, 1001, 70000])
    for k in range(6):
        high, low = gap_code.encode_positions(positions, k)
        bits = [1 if i in set(np.cumsum((gap_code.gaps_of(positions) >> k) + 1) - 1) else 0 for i in range(high.size * 8)]
        assert np.unpackbits(high, bitorder="little").tolist() == bits  # q zeros, then a one, per gap
        assert gap_code.decode_positions(high, low, positions.size, k, 70001).tolist() == positions.tolist()
    with pytest.raises(ValueError, match="past the tensor"):
        gap_code.decode_positions(*gap_code.encode_positions(positions, 2), positions.size, 2, 70000)


def test_k_stays_in_range_for_gaps_beyond_2_to_the_32():
    positions = np.array([2 ** 40, 2 ** 40 + 5])
    k = gap_code.best_k(gap_code.gaps_of(positions))
    assert k == gap_code.MAX_K
    high, low = gap_code.encode_positions(positions, k)
    assert high.size == 33 and gap_code.decode_positions(high, low, 2, k, 2 ** 41).tolist() == positions.tolist()


def test_the_writer_picks_rice_for_sparse_tensors_and_keeps_the_bitmask_for_dense_ish_ones():
    sparse, halfway = _sparse((64, 32, 4, 4), 0.1), _sparse((64, 32, 4, 4), 0.5)
    best = sf.choose(sparse)
    assert best.encoding == "rice" and best.params["k"] == 3
    rice, bitmask = sf.encode(sparse, best).arrays, sf.encode_bitmask(sparse).arrays
    gap_bits = 8 * (rice["gaps_high"].size + rice["gaps_low"].size) / sparse.size
    assert 0.469 < gap_bits < 0.5 and bitmask["bitmask"].size * 8 == sparse.size  # entropy of 10%: 0.469 bit
    assert sf.choose(halfway).encoding == "bitmask"  # k = 0 would be the bitmask itself: not offered
    filters = _sparse((64, 32, 4, 4), 1.0)
    filters[np.arange(64) % 10 != 0] = 0  # 90% of the filters pruned
    assert sf.choose(filters).encoding == "slices"
    assert sf.choose(_sparse((64, 32, 4, 4), 0.1, np.int8)).encoding == "rice"


# ----------------------------------------------------------------------------- damaged streams


def _encoded(shape=(16, 40), density=0.1):
    a = _sparse(shape, density, seed=3)
    enc = sf.encode(a, sf.choose(a))
    assert enc.encoding == "rice"
    return a, {"encoding": "rice", "shape": list(shape), **enc.params}, dict(enc.arrays)


def _with_one_more_gap(high: np.ndarray) -> np.ndarray:
    bits = np.unpackbits(high, bitorder="little")
    bits[np.flatnonzero(bits == 0)[0]] = 1
    return np.packbits(bits, bitorder="little")


def _past_the_end(info, arrays):
    """Valid streams whose last position lies one past the tensor."""
    size = int(np.prod(info["shape"]))
    positions = np.array([3, size], dtype=np.int64)
    arrays["gaps_high"], arrays["gaps_low"] = gap_code.encode_positions(positions, info["k"])
    arrays["compressed"] = np.ones(2, np.float32)


DAMAGE = {
    "k-negative": (lambda i, a: i.update(k=-1), "rice parameter"),
    "k-bool": (lambda i, a: i.update(k=True), "rice parameter"),
    "k-huge": (lambda i, a: i.update(k=2 ** 40), "rice parameter"),
    "k-text": (lambda i, a: i.update(k="3"), "rice parameter"),
    "k-other": (lambda i, a: i.update(k=i["k"] + 1), "gaps_(high|low) holds"),
    "one-value-less": (lambda i, a: a.update(compressed=a["compressed"][:-1]), "closes"),
    "more-values-than-entries": (lambda i, a: a.update(compressed=np.ones(641, np.float32)), "do not fit"),
    "values-2d": (lambda i, a: a.update(compressed=a["compressed"].reshape(1, -1)), "do not fit"),
    "extra-gap": (lambda i, a: a.update(gaps_high=_with_one_more_gap(a["gaps_high"])), "closes"),
    "high-trailing-byte": (lambda i, a: a.update(gaps_high=np.append(a["gaps_high"], np.uint8(0))), "after its last gap"),
    "high-flood": (lambda i, a: a.update(gaps_high=np.zeros(10 ** 6, np.uint8)), "more than"),
    "high-int8": (lambda i, a: a.update(gaps_high=a["gaps_high"].view(np.int8)), "1-D uint8"),
    "high-2d": (lambda i, a: a.update(gaps_high=a["gaps_high"].reshape(1, -1)), "1-D uint8"),
    "low-short": (lambda i, a: a.update(gaps_low=a["gaps_low"][:-1]), "gaps_low holds"),
    "low-padding": (lambda i, a: a["gaps_low"].__setitem__(-1, 0xFF), "padding bits"),
    "past-the-end": (_past_the_end, "past the tensor"),
    "shape": (lambda i, a: a.update(shape=np.array([16, 41])), "does not match"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_streams_are_refused(case):
    _, info, arrays = _encoded()
    arrays = {k: v.copy() for k, v in arrays.items()}
    edit, message = DAMAGE[case]
    edit(info, arrays)
    with pytest.raises(InputError, match=message):
        sf.decode("w", info, arrays)


def test_large_gaps_past_a_large_tensor_are_refused():
    high = np.packbits(np.array([0] * 256 + [1] + [1], np.uint8), bitorder="little")  # quotients 256 and 0
    low = np.zeros(8, np.uint8)  # two gaps of 32 low bits: the first gap is 256 * 2**32 = 2**40
    with pytest.raises(ValueError, match="past the tensor"):
        gap_code.decode_positions(high, low, 2, 32, 2 ** 40)


# ----------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("rice")
    dense = tiny_checkpoint(root / "dense.safetensors", masks=False)
    out = {}
    for sparsity in ("0.9", "0.5"):
        pruned = root / f"p{sparsity}.safetensors"
        assert cli("prune", dense, "-s", sparsity, "--prune-first-last", "-o", pruned, "-q").exit_code == 0
        for scheme in (None, "int8", "fp8"):
            path = root / f"e{sparsity}-{scheme}.safetensors"
            args = ["--quantize", scheme] if scheme else []
            assert cli("export", pruned, "-o", path, *args, "-q").exit_code == 0
            out[(sparsity, scheme)] = path
    return out


def _meta(path: Path) -> dict:
    return read_raw(path)[0]["__metadata__"]


def test_files_declare_version_2_only_when_they_use_rice(files):
    for (sparsity, scheme), path in files.items():
        encodings = {i["encoding"] for i in json.loads(_meta(path)["tensors"]).values()}
        assert _meta(path)["format_version"] == ("2" if "rice" in encodings else "1"), (sparsity, scheme)
        assert ("rice" in encodings) == (sparsity == "0.9"), (sparsity, scheme, encodings)


def test_rice_files_load_in_the_library_and_the_numpy_decoder_alike(files):
    from gancompress.api import load

    for path in files.values():
        state = NUMPY_DECODER["load_state"](str(path))
        want = load(path).state_dict()
        assert all(np.asarray(state[k]).tobytes() == v.numpy().tobytes() for k, v in want.items()), path.name


def test_an_edited_rice_stream_without_digest_fails_in_one_line(files, tmp_path):
    src = edit_metadata(files[("0.9", "int8")], tmp_path / "plain.safetensors", strip_digest)
    table = json.loads(_meta(src)["tensors"])
    name = next(n for n, i in table.items() if i["encoding"] == "rice")
    raw = tensor_bytes(src, f"{name}.gaps_high") + b"\x00\x00"
    bad = replace_tensor(src, tmp_path / "bad.safetensors", f"{name}.gaps_high", raw, [len(raw)])
    line = one_error_line(cli("inspect", bad))
    assert name in line and "gaps_high" in line


@pytest.mark.parametrize("scheme", [None, "int8"])
def test_encodings_bitmask_writes_a_version_1_file_with_the_same_weights(files, tmp_path, scheme):
    """`--encodings bitmask` (compressed-tensors' layout, version-1 readers): no rice, the same decoded weights."""
    from gancompress.api import load

    pruned = files[("0.9", scheme)].parent / "p0.9.safetensors"
    path = tmp_path / "compat.safetensors"
    args = ["--quantize", scheme] if scheme else []
    assert cli("export", pruned, "-o", path, "--encodings", "bitmask", *args, "-q").exit_code == 0
    encodings = {i["encoding"] for i in json.loads(_meta(path)["tensors"]).values()}
    assert encodings == {"bitmask"} and _meta(path)["format_version"] == "1"
    assert path.stat().st_size > files[("0.9", scheme)].stat().st_size  # the gap code was the smaller one
    want, got = load(files[("0.9", scheme)]).state_dict(), load(path).state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)


@pytest.mark.parametrize("args, words", [(["--encodings", "bitmask,zip"], "zip"),
                                         (["--encodings", "bitmask", "--format", "dense"], "sparse only")])
def test_bad_encodings_fail_in_one_line_and_write_nothing(files, tmp_path, args, words):
    pruned = files[("0.9", None)].parent / "p0.9.safetensors"
    result = cli("export", pruned, "-o", tmp_path / "x.safetensors", *args)
    assert result.exit_code == 2 and words in one_error_line(result)
    assert not (tmp_path / "x.safetensors").exists()
