"""--extractor inception with a weights file given by the user (random weights stand in for the
real file, which cannot be downloaded here), and the refusal of a weights pickle that runs code."""
import json
import math
import os
import pickle

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gancompress.archs import ArchSpec, build
from gancompress.formats.checkpoint import GanBundle, save_bundle
from gancompress.cli.main import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A state dict with the keys and shapes of torch-fidelity's Inception, randomly initialised."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    cls = fe.FeatureExtractorInceptionV3
    original = cls.load_state_dict
    cls.load_state_dict = lambda self, *a, **k: None
    real_load = fe.torch.load
    fe.torch.load = lambda *a, **k: {}
    try:
        model = cls("inception-v3-compat", ["2048"], feature_extractor_weights_path="unused")
    finally:
        cls.load_state_dict, fe.torch.load = original, real_load
    path = tmp_path_factory.mktemp("w") / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def model_and_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GANCOMPRESS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    spec = ArchSpec("dcgan-g", {"widths": [8, 16, 8, 4, 3]})
    path = save_bundle(GanBundle(build(spec).eval(), spec), tmp_path / "g.safetensors")
    real = tmp_path / "real"
    real.mkdir()
    for i in range(12):
        Image.fromarray((torch.rand(32, 32, 3) * 255).to(torch.uint8).numpy()).save(real / f"{i}.png")
    return path, real


def test_fid_with_user_inception_weights(weights, model_and_data):
    path, real = model_and_data
    r = runner.invoke(app, ["evaluate", str(path), "--fid", "--extractor", "inception", "--inception-weights", str(weights),
                            "--real", str(real), "-n", "12", "--batch-size", "6", "--device", "cpu", "--json", "-q"])
    assert r.exit_code == 0, r.output
    fid = json.loads(r.stdout)["rows"][0]["fid"]
    assert isinstance(fid, float) and math.isfinite(fid) and fid > 0


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_weights_pickle_that_runs_code_is_refused(tmp_path, model_and_data):
    path, real = model_and_data
    evil = _Evil()
    evil.marker = tmp_path / "pwned"
    bad = tmp_path / "weights.pth"
    with open(bad, "wb") as f:
        pickle.dump({"x": evil}, f)
    r = runner.invoke(app, ["evaluate", str(path), "--fid", "--extractor", "inception", "--inception-weights", str(bad),
                            "--real", str(real), "-n", "12", "--device", "cpu"])
    assert r.exit_code == 2 and "run code" in r.output
    assert not evil.marker.exists()


def test_few_inception_samples_are_called_biased_and_not_comparable(weights, model_and_data):
    path, real = model_and_data
    r = runner.invoke(app, ["evaluate", str(path), "--fid", "--inception-weights", str(weights), "--data", str(real),
                            "-n", "12", "--batch-size", "6", "--device", "cpu", "--json", "-q"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["settings"]["extractor"] == "inception" and doc["settings"]["num_samples"] == 12  # inception by default
    assert any("biased" in n and "not comparable" in n and "50,000" in n for n in doc["notes"]), doc["notes"]


def test_default_sample_counts_follow_the_extractor(tmp_path):
    from gancompress.evaluate.config import EvaluateConfig
    from gancompress.evaluate.plan import plan_metrics
    from gancompress.generation import GeneratorInfo

    Image.fromarray((torch.rand(8, 8, 3) * 255).to(torch.uint8).numpy()).save(tmp_path / "a.png")
    rgb = GeneratorInfo("noise", (8, 1, 1), (3, 32, 32), (-1.0, 1.0))
    digits = GeneratorInfo("noise", (8, 1, 1), (1, 16, 16), (-1.0, 1.0))
    plan = plan_metrics(EvaluateConfig.from_options(sources=["g"], fid=True, real=str(tmp_path)), rgb, early={})
    assert plan.extractor.name == "inception" and plan.num_samples == 10_000
    assert plan.notes == ["FID from 10,000 samples: papers use 50,000 (-n 50000); compare only with FIDs from the "
                          "same count and real data"]
    plan = plan_metrics(EvaluateConfig.from_options(sources=["g"], fid=True), digits, early=None)
    assert plan.extractor.name == "digits" and plan.num_samples == 2_000
    config = EvaluateConfig.from_options(sources=["g"], fid=True, real=str(tmp_path), num_samples=50_000)
    plan = plan_metrics(config, rgb, early={})
    assert plan.notes == []
