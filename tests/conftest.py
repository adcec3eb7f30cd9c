import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# nothing is ever downloaded in tests: the Inception weights URL points at a closed local port
# (tests of the download path serve the file from a local HTTP server instead)
os.environ["GANCOMPRESS_INCEPTION_URL"] = "http://127.0.0.1:9/weights-inception-2015-12-05-6726825d.pth"
os.environ["GANCOMPRESS_LPIPS_URL"] = "http://127.0.0.1:9/weights-vgg16-lpips.pth"
os.environ["GANCOMPRESS_VGG16_URL"] = "http://127.0.0.1:9/vgg16-397923af.pth"
torch.set_num_threads(min(2, torch.get_num_threads()))
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def tiny_digits_bundle():
    """A tiny digits GAN bundle with random weights (no bundled asset needed)."""
    from gancompress.archs import ArchSpec, build
    from gancompress.formats.checkpoint import GanBundle

    torch.manual_seed(0)
    g_spec, d_spec = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 4, "nc": 1}), ArchSpec("digits-dcgan-d", {"ndf": 4, "nc": 1})
    return GanBundle(build(g_spec).eval(), g_spec, build(d_spec).eval(), d_spec, source="tiny")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convolutions: one thread avoids OpenMP spin-waits on a busy 2-core machine (3-5x faster)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
