"""Metrics library: extractors, FID through torch-fidelity, similarity, cost, sample grids."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gancompress.metrics.extractors import (
    EXTRACTORS, extractor_class, get_extractor, register_builtin_extractors, register_module_extractor,
)
from gancompress.metrics.fidelity import GeneratorSampler, MetricRequest, RealSet, distribution_metrics
from gancompress.metrics.similarity import compare_models, json_number, psnr, ssim, ssim_per_image

NZ = 8


class TinyFeatures(nn.Module):
    """A fixed random 2-channel conv: 8 features (2 channels x 2x2 pooled) + a 10-way head."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.conv = nn.Conv2d(1, 2, 3, stride=2)
            self.head = nn.Linear(8, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=1, keepdim=True)
        return F.adaptive_avg_pool2d(torch.tanh(self.conv(x)), 2).flatten(1)


def register_tiny():
    return register_module_extractor("tiny", TinyFeatures)


TINY = register_tiny()


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANCOMPRESS_CACHE", str(tmp_path / "cache"))


def tiny_generator(seed: int = 0, nc: int = 1) -> nn.Module:
    from gancompress.archs.digits import DigitsGenerator

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return DigitsGenerator(nz=NZ, ngf=4, nc=nc).eval()


@torch.no_grad()
def samples_of(g: nn.Module, n: int, seed: int) -> torch.Tensor:
    z = torch.randn(n, NZ, 1, 1, generator=torch.Generator().manual_seed(seed))
    return g(z)


def fid_of(g: nn.Module, real: RealSet, batch_size: int = 50, n: int = 200) -> float:
    sampler = GeneratorSampler(g, (NZ, 1, 1), (-1.0, 1.0))
    request = MetricRequest(fid=True, num_samples=n, batch_size=batch_size, seed=3)
    return distribution_metrics(sampler, real, TINY, request)["fid"]


def test_registration_is_idempotent():
    assert register_tiny() is TINY
    register_builtin_extractors()
    register_builtin_extractors()
    assert {"digits", "inception", "tiny"} <= set(EXTRACTORS.names())
    assert get_extractor("tiny").fidelity_name == "gancompress-tiny"


def test_unknown_extractor_lists_choices():
    from gancompress.errors import InputError

    with pytest.raises(InputError, match="digits"):
        get_extractor("inceptoin")


def test_fid_own_distribution_near_zero_shifted_larger():
    g = tiny_generator()
    own = samples_of(g, 400, seed=11)
    same = fid_of(g, RealSet.from_tensor(own, "own"))
    shifted = fid_of(g, RealSet.from_tensor((own + 0.6).clamp(-1, 1), "shifted"))
    assert same < 0.01
    assert shifted > 20 * max(same, 1e-4)


def test_fid_independent_of_batch_size():
    g = tiny_generator()
    real = RealSet.from_tensor(samples_of(tiny_generator(1), 120, seed=5), "other")
    a, b = fid_of(g, real, batch_size=7, n=90), fid_of(g, real, batch_size=64, n=90)
    assert a > 0
    assert a == pytest.approx(b, rel=1e-4, abs=1e-6)


def test_reference_statistics_cached_on_second_run():
    g = tiny_generator()
    images = samples_of(tiny_generator(1), 100, seed=5)
    cls = extractor_class(TINY)
    first = RealSet.from_tensor(images, "cache-test")
    calls0 = cls.calls
    fid1 = fid_of(g, first, batch_size=50, n=100)
    assert first.dataset(None).loads == 1 and cls.calls - calls0 == 4  # 2 generated + 2 real batches
    second = RealSet.from_tensor(images, "cache-test")
    calls1 = cls.calls
    fid2 = fid_of(g, second, batch_size=50, n=100)
    assert second.dataset(None).loads == 0  # never loaded
    assert cls.calls - calls1 == 2  # only the generated batches
    assert fid2 == fid1


def test_digits_extractor_works_offline_through_torch_fidelity():
    import torch_fidelity

    from gancompress.data.digits import digits_images
    from gancompress.metrics.fidelity import RealImages

    digits = digits_images()[:64]
    sampler = GeneratorSampler(tiny_generator(), (NZ, 1, 1), (-1.0, 1.0))
    out = torch_fidelity.calculate_metrics(
        input1=sampler, input2=RealImages(lambda: digits, (-1.0, 1.0), None), fid=True, isc=True,
        feature_extractor="gancompress-digits", input1_model_num_samples=32, batch_size=32, cuda=False,
        verbose=False, cache=False, save_cpu_ram=True, isc_splits=2)
    assert out["frechet_inception_distance"] > 0 and out["inception_score_mean"] >= 1.0


def test_psnr_identical_is_inf_and_json_string():
    g = tiny_generator()
    z = [torch.randn(10, NZ, 1, 1, generator=torch.Generator().manual_seed(0))]
    sim = compare_models(g, g, z, 2.0)
    assert sim.psnr == math.inf and sim.ssim == pytest.approx(1.0) and sim.mean_abs_diff == 0.0
    assert sim.to_dict()["psnr"] == "inf" and json_number(-math.inf) == "-inf"
    x = torch.zeros(1, 1, 4, 4)
    assert psnr(x, x + 0.02, 2.0) == pytest.approx(10 * math.log10(4 / 0.0004))


def test_ssim_constant_images_by_hand():
    a, b = torch.full((1, 1, 16, 16), 0.2), torch.full((1, 1, 16, 16), 0.6)
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2 ** 2 + 0.6 ** 2 + c1)
    assert ssim(a, b, 1.0) == pytest.approx(expected, rel=1e-6)  # float32 inputs


def test_ssim_matches_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 24, 20, generator=g)
    b = (a + 0.15 * torch.randn(2, 3, 24, 20, generator=g)).clamp(0, 1)
    ours = ssim_per_image(a, b, 1.0)
    for i in range(2):
        ref = metrics.structural_similarity(a[i].numpy(), b[i].numpy(), data_range=1.0, channel_axis=0,
                                            gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert float(ours[i]) == pytest.approx(ref, abs=1e-6)


def test_effective_macs_drop_with_sparsity():
    from gancompress.metrics.cost import count_macs, parameter_counts

    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    dense = count_macs(model, (10,))
    assert dense.dense == dense.effective == 10 * 20 + 20 * 5
    with torch.no_grad():
        model[0].weight[:10] = 0  # half of the first layer
    sparse = count_macs(model, (10,))
    assert sparse.dense == 300 and sparse.effective == 100 + 100
    assert parameter_counts(model) == (325, 225)


def test_latency_reports_positive_numbers():
    from gancompress.metrics.cost import measure_latency

    lat = measure_latency(tiny_generator(), (NZ, 1, 1), "cpu", batch_size=4, warmup=1, repeats=3)
    assert lat.median_ms > 0 and lat.throughput > 0 and lat.device == "cpu"


@pytest.mark.parametrize("channels", [1, 3])
def test_grid_png_has_expected_size(tmp_path, channels):
    from PIL import Image

    from gancompress.evaluate.grids import save_grid

    rows = [("dense", torch.rand(8, channels, 16, 16) * 2 - 1), ("pruned", torch.rand(8, 1, 16, 16) * 2 - 1)]
    path = save_grid(rows, tmp_path / "grid.png", (-1.0, 1.0), scale=4, label_width=40)
    with Image.open(path) as im:
        assert im.size == (40 + 8 * (64 + 2) + 2, 2 * (64 + 2) + 2)
        assert im.mode == ("RGB" if channels == 3 else "L")
    from gancompress.errors import InputError

    with pytest.raises(InputError, match="--force"):
        save_grid(rows, path, (-1.0, 1.0))


def test_paired_similarity_against_ground_truth():
    from gancompress.metrics.similarity import compare_to_targets

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    identity = nn.Identity()
    assert compare_to_targets(identity, [(x, x)], 2.0).psnr == math.inf
    noisy = compare_to_targets(identity, [(x, x + 0.1), (x, x - 0.1)], 2.0)
    assert noisy.psnr == pytest.approx(10 * math.log10(4 / 0.01), rel=1e-5) and noisy.count == 8
    assert noisy.mean_abs_diff == pytest.approx(0.1, rel=1e-5)
