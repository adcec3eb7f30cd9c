"""`gancompress.load()` returns a generator that says what it eats and can sample itself."""
import pytest
import torch
from typer.testing import CliRunner

import gancompress
from gancompress.archs import build
from gancompress.formats.checkpoint import GanBundle, save_bundle
from gancompress.cli.main import app
from gancompress.errors import InputError
from gancompress.generation import noise
from img2img_fixtures import RESNET


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("load")
    pruned, sparse = tmp / "p.safetensors", tmp / "p.sparse.safetensors"
    assert CliRunner().invoke(app, ["prune", "builtin:digits-dcgan", "-s", "0.5", "-o", str(pruned), "-q"]).exit_code == 0
    assert CliRunner().invoke(app, ["export", str(pruned), "-o", str(sparse), "-q"]).exit_code == 0
    return {"checkpoint": pruned, "export": sparse}


@pytest.mark.parametrize("kind", ["checkpoint", "export"])
def test_loaded_generator_describes_its_input_and_samples(exported, kind):
    g = gancompress.load(str(exported[kind]))
    assert g.input_kind == "noise" and g.input_shape == (32, 1, 1)  # the bundled DCGAN: nz 32 latents
    a, b, c = g.sample(5, seed=3), g.sample(5, seed=3), g.sample(5, seed=4)
    assert a.shape == (5, 1, 16, 16) and torch.equal(a, b) and not torch.allclose(a, c)
    with torch.no_grad():
        assert torch.allclose(a, g(noise(5, (32, 1, 1), 3)))  # exactly the generator on the seeded latents
    assert not a.requires_grad
    with pytest.raises(InputError, match="positive whole number"):
        g.sample(0)


def test_state_dict_is_unchanged_by_the_helpers(exported):
    g = gancompress.load(str(exported["export"]))
    assert not any(k.startswith(("sample", "input_")) for k in g.state_dict())


def test_image_to_image_generator_says_to_call_it_on_images(tmp_path):
    torch.manual_seed(0)
    path = save_bundle(GanBundle(build(RESNET).eval(), RESNET, None, None), tmp_path / "i2i.safetensors")
    g = gancompress.load(str(path))
    assert g.input_kind == "image" and len(g.input_shape) == 3 and g.input_shape[0] == 3
    with pytest.raises(InputError, match="translates images"):
        g.sample(2)
