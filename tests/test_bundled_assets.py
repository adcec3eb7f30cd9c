"""The weights shipped in gancompress/assets: the digits classifier and the digits DCGAN."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gancompress.data.digits import N_DIGITS, digits_images, digits_labels, digits_split
from gancompress.metrics.digits_classifier import DigitsClassifier, default_weights_path, load_digits_classifier

ASSETS = Path(__file__).resolve().parents[1] / "gancompress" / "assets"
GAN_PATH = ASSETS / "digits_dcgan.safetensors"

# Measured when the assets were trained (examples/train_*.py): classifier test accuracy 0.997;
# 500 GAN samples (seed 0): 10/10 classes, largest class 12.8%, mean max-softmax 0.75 (the
# classifier is trained with label smoothing, so ~0.95 is its ceiling on real digits).
# An untrained generator scores 1/10 classes (100% one class), mean max-softmax 0.36.
MIN_TEST_ACCURACY = 0.97
MIN_CLASSES = 9
MIN_MEAN_CONFIDENCE = 0.65
MAX_CLASS_SHARE = 0.25


@pytest.fixture(scope="module")
def classifier() -> DigitsClassifier:
    torch.manual_seed(0)
    return load_digits_classifier()


@pytest.fixture(scope="module")
def gan_bundle():
    from safetensors import safe_open
    from safetensors.torch import load_file

    from gancompress.formats.checkpoint import bundle_from_tensors

    tensors = load_file(str(GAN_PATH))
    with safe_open(str(GAN_PATH), framework="pt") as f:
        metadata = f.metadata()
    return bundle_from_tensors(tensors, metadata, str(GAN_PATH))


@pytest.fixture(scope="module")
def gan_samples(gan_bundle) -> torch.Tensor:
    g = gan_bundle.generator.eval()
    nz = gan_bundle.g_spec.kwargs["nz"]
    z = torch.randn(500, nz, 1, 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return g(z)


def test_digits_images_shape_range_and_determinism():
    x = digits_images(16)
    assert x.shape == (N_DIGITS, 1, 16, 16) and x.dtype == torch.float32
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert torch.equal(x, digits_images(16))
    x3 = digits_images(16, channels=3)
    assert x3.shape == (N_DIGITS, 3, 16, 16) and torch.equal(x3[:, 1:2], x)
    x8 = digits_images(8)
    assert torch.allclose((x8 + 1) * 8, torch.round((x8 + 1) * 8))  # 0..16 integers at native size
    assert digits_labels().shape == (N_DIGITS,) and set(digits_labels().tolist()) == set(range(10))
    tr, te = digits_split()
    assert len(tr) + len(te) == N_DIGITS and not set(tr.tolist()) & set(te.tolist())


def test_classifier_asset_is_bundled_in_package():
    assert default_weights_path().is_file()
    assert default_weights_path().stat().st_size < 4 * 2**20


def test_classifier_held_out_accuracy(classifier):
    _, te = digits_split(seed=0)
    x, y = digits_images(16)[te], digits_labels()[te]
    with torch.no_grad():
        acc = (classifier(x).argmax(1) == y).float().mean().item()
    assert acc >= MIN_TEST_ACCURACY, acc


def test_classifier_features_and_other_input_shapes(classifier):
    x = digits_images(16)[:32]
    with torch.no_grad():
        f = classifier.features(x)
        assert f.shape == (32, classifier.feature_dim) and torch.isfinite(f).all()
        logits16 = classifier(x)
        logits_rgb32 = classifier(digits_images(32, channels=3)[:32])
    assert logits16.shape == (32, 10)
    # a 3-channel 32x32 copy of the same digits is classified the same way
    assert (logits16.argmax(1) == logits_rgb32.argmax(1)).float().mean().item() >= 0.9


def test_gan_bundle_loads_with_project_reader(gan_bundle):
    assert gan_bundle.g_spec.name == "digits-dcgan-g"
    assert gan_bundle.d_spec is not None and gan_bundle.d_spec.name == "digits-dcgan-d"
    assert gan_bundle.discriminator is not None
    prov = gan_bundle.meta["provenance"]
    for key in ("steps", "seed", "fid_digits", "best_step"):
        assert key in prov
    assert GAN_PATH.stat().st_size < 8 * 2**20


def test_gan_generator_output_shape_and_range(gan_samples):
    assert gan_samples.shape == (500, 1, 16, 16)
    assert torch.isfinite(gan_samples).all()
    assert gan_samples.min().item() >= -1.0 and gan_samples.max().item() <= 1.0
    # not collapsed to one image: per-pixel spread across samples is substantial
    assert gan_samples.std(dim=0).mean().item() > 0.2


def test_gan_samples_are_diverse_confident_digits(gan_samples, classifier):
    with torch.no_grad():
        probs = classifier(gan_samples).softmax(1)
    conf, pred = probs.max(1)
    counts = torch.bincount(pred, minlength=10)
    assert (counts > 0).sum().item() >= MIN_CLASSES, counts.tolist()
    assert counts.max().item() / len(pred) <= MAX_CLASS_SHARE, counts.tolist()
    assert conf.mean().item() >= MIN_MEAN_CONFIDENCE, conf.mean().item()


def test_gan_discriminator_prefers_real_digits(gan_bundle, gan_samples):
    d = gan_bundle.discriminator.eval()
    real = digits_images(16)[:500]
    with torch.no_grad():
        assert d(real).shape == (500,)
        assert torch.isfinite(d(gan_samples)).all()
