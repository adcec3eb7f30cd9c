"""Loading as PyTorch does, and detecting honestly: legacy files, running the candidate,
discriminator-only files, and what the no-match message says."""
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from gancompress.archs import detect
from gancompress.archs.dcgan import DCGANDiscriminator, DCGANGenerator
from gancompress.cli.main import app
from gancompress.errors import InputError
from gancompress.loading import DiscriminatorOnly, LoadOptions, load_bundle


def _randomise_bn(*modules: nn.Module) -> None:
    torch.manual_seed(0)
    for net in modules:
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)


def _without_batch_counts(sd):
    return {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def test_legacy_serialised_checkpoint_without_batch_counts_loads(tmp_path):
    """A pre-1.6 file: legacy (non-zip) serialisation, BatchNorm without num_batches_tracked."""
    g = DCGANGenerator([16, 32, 16, 8, 3]).eval()
    _randomise_bn(g)
    old = _without_batch_counts(g.state_dict())
    DCGANGenerator([16, 32, 16, 8, 3]).load_state_dict(old, strict=True)  # PyTorch accepts it
    path = tmp_path / "netG_epoch_24.pth"
    torch.save(old, path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:2] != b"PK"  # really the legacy format
    bundle = load_bundle(str(path))
    assert bundle.g_spec.name == "dcgan-g"
    z = torch.randn(2, 16, 1, 1)
    with torch.no_grad():
        assert torch.equal(bundle.generator(z), g(z))


def test_wrong_shapes_are_still_refused_with_a_readable_diff():
    from gancompress.archs import load_into

    sd = DCGANGenerator([16, 32, 16, 8, 3]).state_dict()
    with pytest.raises(InputError, match=r"wrong shape: main\.0\.weight"):
        load_into(DCGANGenerator([16, 64, 16, 8, 3]), sd, "generator")
    with pytest.raises(InputError, match=r"missing: main\.1\.running_mean"):
        load_into(DCGANGenerator([16, 32, 16, 8, 3]), {k: v for k, v in sd.items() if "running_mean" not in k})


class MnistD(nn.Module):
    """A 28 px DCGAN discriminator in the pytorch/examples style: 28 -> 14 -> 7 -> 3 -> 1,
    the last conv 4x4 stride 2. Its keys and shapes equal the 32 px dcgan-d's."""

    def __init__(self, ndf=8):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, 1, 4, 2, 1, bias=False), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.main(x).view(-1)


MNIST_G = """
from torch import nn


class MnistG(nn.Module):
    \"\"\"A 28 px generator: 1 -> 7 -> 14 -> 28 (not a built-in layout).\"\"\"

    input_shape = (16, 1, 1)

    def __init__(self, nz=16, ngf=8):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 7, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, z):
        return self.main(z)
"""


def test_28px_discriminator_is_not_taken_for_the_64px_layout(tmp_path, monkeypatch):
    d = MnistD()
    sd = d.state_dict()
    assert d(torch.zeros(1, 1, 28, 28)).shape == (1,)
    # Alone, nothing in the file tells 28 from 32 px: it is reported with the size it was confirmed at.
    spec = detect(sd, "discriminator")
    assert spec.name == "dcgan-d" and len(spec.kwargs["widths"]) == 5  # the 32 px variant, never the 64 px one
    # Beside its 28 px generator it is tried on what that generator makes, and refused.
    with pytest.raises(InputError) as info:
        detect(sd, "discriminator", [(1, 28, 28)])
    message = str(info.value)
    assert "dcgan-d: it does not run on 1x28x28 inputs" in message and "--arch module:Callable" in message
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "mnistnets.py").write_text(MNIST_G)
    from mnistnets import MnistG

    assert MnistG()(torch.zeros(1, 16, 1, 1)).shape == (1, 1, 28, 28)
    torch.save({"netG": MnistG().state_dict(), "netD": sd}, tmp_path / "pair.pt")
    bundle = load_bundle(str(tmp_path / "pair.pt"), LoadOptions(arch="mnistnets:MnistG"))
    assert bundle.discriminator is None  # not attached as a D that cannot judge 28 px images


def test_a_64px_discriminator_beside_a_32px_generator_is_not_attached(tmp_path):
    g, d = DCGANGenerator([16, 32, 16, 8, 3]), DCGANDiscriminator([3, 8, 16, 32, 64, 1])
    torch.save({"netG": g.state_dict(), "netD": d.state_dict()}, tmp_path / "mixed.pt")
    assert load_bundle(str(tmp_path / "mixed.pt")).discriminator is None
    d32 = DCGANDiscriminator([3, 8, 16, 32, 1])
    torch.save({"netG": g.state_dict(), "netD": d32.state_dict()}, tmp_path / "pair.pt")
    assert load_bundle(str(tmp_path / "pair.pt")).d_spec.name == "dcgan-d"


def test_a_generator_whose_output_is_not_an_image_is_not_accepted():
    """Same keys as dcgan-g, but the probe checks the output is C x 32 x 32."""
    from gancompress.archs import ARCHITECTURES
    from gancompress.archs.detection import try_architecture

    arch = ARCHITECTURES.get("dcgan-g")
    sd = DCGANGenerator([16, 32, 16, 8, 3]).state_dict()
    assert try_architecture(arch, sd).output_shape == (3, 32, 32)
    bent = type(arch)(**{**arch.__dict__, "output_shape": lambda kw: (3, 64, 64)})
    trial = try_architecture(bent, sd)
    assert trial.spec is None and "gives 1x3x32x32, not 1x3x64x64" in trial.reason


@pytest.fixture
def d_only(tmp_path):
    d = DCGANDiscriminator([3, 8, 16, 32, 1])
    _randomise_bn(d)
    path = tmp_path / "netD_epoch_5.pth"
    torch.save(d.state_dict(), path)
    return path


def test_discriminator_only_file_is_named_by_the_loader(d_only):
    with pytest.raises(DiscriminatorOnly, match="this is a discriminator \\(dcgan-d, 14 keys\\).*give the generator too") as info:
        load_bundle(str(d_only))
    assert info.value.spec.name == "dcgan-d" and info.value.exit_code == 2


def test_inspect_shows_a_discriminator_only_file(d_only):
    import json

    result = CliRunner().invoke(app, ["inspect", str(d_only), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["role"] == "discriminator" and report["generator"] is None
    assert report["discriminator"]["architecture"] == "dcgan-d"
    assert report["discriminator"]["parameters"] == sum(p.numel() for p in DCGANDiscriminator([3, 8, 16, 32, 1]).parameters())
    assert report["discriminator"]["input_shape"] == [3, 32, 32]
    text = CliRunner().invoke(app, ["inspect", str(d_only)])
    words = " ".join(text.output.split())  # the console may wrap lines
    assert text.exit_code == 0 and "discriminator: dcgan-d" in words and "give the generator too" in words
    assert "input 3x32x32 assumed from the layers" in words


@pytest.mark.parametrize("argv", [
    ["prune", "{src}", "-s", "0.5", "-o", "{out}"],
    ["evaluate", "{src}"],
    ["export", "{src}", "--format", "sparse", "-o", "{out}"],
    ["finetune", "{src}", "--steps", "1", "--method", "distill", "-o", "{out}"],
])
def test_other_commands_refuse_a_discriminator_only_file(d_only, tmp_path, argv):
    out = tmp_path / "out"
    args = [a.format(src=d_only, out=out) for a in argv]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "this is a discriminator" in lines[0]
    assert "give the generator too" in lines[0] and not out.exists()


def test_no_match_names_the_nearest_layout_and_what_to_do():
    sd = DCGANGenerator([16, 32, 16, 8, 3]).state_dict()
    sd["main.99.weight"] = torch.zeros(1)
    with pytest.raises(InputError) as info:
        detect(sd, "generator")
    message = str(info.value)
    assert "tried dcgan-g, digits-dcgan-g" in message and "dcgan-g: keys do not load (unexpected: main.99.weight)" in message
    assert message.endswith("see docs/custom_networks.md")


def test_hostile_shapes_are_refused_not_crashed_on():
    """Keys of a known layout with shapes no network has (zero channels, 1-d convs)."""
    bad = {"body.0.weight": torch.zeros(8, 0, 3, 3), "body.1.weight": torch.zeros(8), "body.2.weight": torch.zeros(48, 8, 3, 3)}
    with pytest.raises(InputError, match="matches no built-in layout"):
        detect(bad, "generator")
    with pytest.raises(InputError, match="matches no built-in layout"):
        detect({"main.0.weight": torch.zeros(3), "main.3.weight": torch.zeros(2, 2)}, None)
