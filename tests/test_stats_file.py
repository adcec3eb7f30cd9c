"""FID statistics files (.npz mu/sigma, as pytorch-fid and clean-fid write): round trip against an
independent numpy computation, FID from a file equals FID from the images, hostile files refused."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from gancompress.errors import InputError
from gancompress.metrics.fidelity import (
    GeneratorSampler, MetricRequest, RealSet, distribution_metrics, generated_statistics, real_statistics,
)
from gancompress.metrics.stats_file import Statistics, frechet_distance, load_statistics, save_statistics
from test_metrics import NZ, TINY, TinyFeatures, tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")


def _real() -> RealSet:
    images = torch.rand(60, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return RealSet.from_tensor(images, "stats-test"), images


def _independent_stats(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The tiny extractor's features computed by hand: uint8 round trip, then numpy mean/cov."""
    u8 = ((images + 1) * 127.5).round().clamp(0, 255)
    with torch.no_grad():
        feats = TinyFeatures().features(u8 / 127.5 - 1).double().numpy()
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def test_round_trip_matches_an_independent_computation(tmp_path, monkeypatch):
    monkeypatch.setenv("GANCOMPRESS_CACHE", str(tmp_path / "cache"))
    real, images = _real()
    request = MetricRequest(fid=True, num_samples=60, batch_size=25, seed=0)
    stats = real_statistics(real, TINY, request)
    path = save_statistics(tmp_path / "real.npz", stats)
    with np.load(path) as f:  # what pytorch-fid's loader does
        mu, sigma = f["mu"], f["sigma"]
    want_mu, want_sigma = _independent_stats(images)
    np.testing.assert_allclose(mu, want_mu, atol=1e-5)
    np.testing.assert_allclose(sigma, want_sigma, atol=1e-5)
    back = load_statistics(path)
    assert back.meta["extractor"] == "tiny" and back.meta["count"] == 60
    np.testing.assert_array_equal(back.mu, mu)


def test_fid_from_a_file_equals_fid_from_the_images(tmp_path, monkeypatch):
    monkeypatch.setenv("GANCOMPRESS_CACHE", str(tmp_path / "cache"))
    real, images = _real()
    request = MetricRequest(fid=True, num_samples=40, batch_size=20, seed=3)
    g = tiny_generator(0)
    direct = distribution_metrics(GeneratorSampler(g, (NZ, 1, 1), (-1.0, 1.0)), real, TINY, request)["fid"]
    mu, sigma = _independent_stats(images)
    path = tmp_path / "foreign.npz"
    np.savez_compressed(path, mu=mu, sigma=sigma)  # a foreign file: no gancompress record
    fake = generated_statistics(GeneratorSampler(g, (NZ, 1, 1), (-1.0, 1.0)), TINY, request)
    assert frechet_distance(fake, load_statistics(path)) == pytest.approx(direct, rel=1e-4)


def test_other_dimension_is_refused_naming_the_extractor():
    a = Statistics(np.zeros(8), np.eye(8))
    with pytest.raises(InputError, match="--extractor"):
        frechet_distance(a, Statistics(np.zeros(2048), np.eye(2048)))


def _npz(tmp_path, **arrays) -> str:
    path = tmp_path / "x.npz"
    np.savez(path, **arrays)
    return path


def test_hostile_and_wrong_files_are_refused(tmp_path):
    with pytest.raises(InputError, match="no sigma"):
        load_statistics(_npz(tmp_path, mu=np.zeros(3)))
    with pytest.raises(InputError, match="float arrays, mu of shape"):
        load_statistics(_npz(tmp_path, mu=np.zeros(3, dtype=np.int64), sigma=np.eye(3)))
    with pytest.raises(InputError, match="shape"):
        load_statistics(_npz(tmp_path, mu=np.zeros(3), sigma=np.eye(4)))
    with pytest.raises(InputError, match="NaN"):
        load_statistics(_npz(tmp_path, mu=np.full(3, np.nan), sigma=np.eye(3)))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable"):
        load_statistics(tmp_path / "junk.npz")


def test_a_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (8192, 8192)})
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mu.npy", _npy(np.zeros(8192)))
        z.writestr("sigma.npy", buf.getvalue() + b"\0" * 64)
    with pytest.raises(InputError, match="claims"):
        load_statistics(path)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_save_refuses_other_suffix_and_overwrite(tmp_path):
    stats = Statistics(np.zeros(2), np.eye(2), {"extractor": "tiny"})
    save_statistics(tmp_path / "s.npz", stats)
    with pytest.raises(InputError, match="exists"):
        save_statistics(tmp_path / "s.npz", stats)
    with pytest.raises(InputError, match=".npz"):
        save_statistics(tmp_path / "s.npy", stats)
    assert json.loads(str(np.load(tmp_path / "s.npz")["gancompress"]))["extractor"] == "tiny"


def test_real_statistics_cache_is_keyed_by_extractor_data_and_count():
    from gancompress.metrics.extractors import get_extractor

    images = torch.zeros(4, 1, 16, 16)
    base = RealSet.from_tensor(images, "data-a")
    names = {base.cache_name(TINY), RealSet.from_tensor(images[:3], "data-a").cache_name(TINY),
             RealSet.from_tensor(images, "data-b").cache_name(TINY), base.cache_name(get_extractor("inception"))}
    assert len(names) == 4
    assert RealSet.from_tensor(images, "data-a").cache_name(TINY) == base.cache_name(TINY)
