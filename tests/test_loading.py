"""Checkpoint layouts users bring, detected and rebuilt with identical outputs."""
import json
import sys

import pytest
import torch
from safetensors.torch import save_file

from gancompress.archs.dcgan import DCGANDiscriminator, DCGANGenerator
from gancompress.archs.digits import DigitsDiscriminator, DigitsGenerator
from gancompress.formats.checkpoint import save_bundle
from gancompress.errors import InputError, NetworkMismatch
from gancompress.loading import LoadOptions, load_bundle

Z = torch.randn(3, 16, 1, 1, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def dcgan():
    torch.manual_seed(0)
    g, d = DCGANGenerator([16, 32, 16, 8, 3]).eval(), DCGANDiscriminator([3, 8, 16, 32, 1]).eval()
    for m in list(g.modules()) + list(d.modules()):  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return g, d


def _same(bundle, g, d=None):
    with torch.no_grad():
        assert torch.equal(bundle.generator(Z), g(Z))
        if d is not None:
            x = torch.randn(2, 3, 32, 32)
            assert torch.equal(bundle.discriminator(x), d(x))


@pytest.mark.parametrize("layout", ["plain", "netG_netD", "G_D", "lightning", "params_ema", "lightweight", "module_prefix_dir"])
def test_dcgan_layouts(tmp_path, dcgan, layout):
    g, d = dcgan
    gs, ds = g.state_dict(), d.state_dict()
    path = tmp_path / "ckpt.pt"
    if layout == "plain":
        torch.save(gs, path)
    elif layout == "netG_netD":
        torch.save({"netG": gs, "netD": ds, "epoch": 3}, path)
    elif layout == "G_D":
        torch.save({"G": gs, "D": ds}, path)
    elif layout == "lightning":
        sd = {**{f"generator.{k}": v for k, v in gs.items()}, **{f"discriminator.{k}": v for k, v in ds.items()}}
        torch.save({"state_dict": sd, "epoch": 1, "global_step": 10}, path)
    elif layout == "params_ema":
        torch.save({"params_ema": gs, "params": {k: v * 0 for k, v in gs.items()}}, path)
    elif layout == "lightweight":
        torch.save({"GAN": {**{f"G.{k}": v for k, v in gs.items()}, **{f"D.{k}": v for k, v in ds.items()}}}, path)
    elif layout == "module_prefix_dir":
        path = tmp_path
        torch.save(gs, tmp_path / "netG_epoch_24.pth")
        torch.save(ds, tmp_path / "netD_epoch_24.pth")
    bundle = load_bundle(str(path))
    assert bundle.g_spec.name == "dcgan-g"
    assert bundle.g_spec.kwargs["widths"] == [16, 32, 16, 8, 3]
    has_d = layout not in ("plain", "params_ema")
    assert (bundle.discriminator is not None) == has_d
    _same(bundle, g, d if has_d else None)


def test_safetensors_state_dict_and_project_roundtrip(tmp_path, dcgan):
    g, d = dcgan
    save_file({k: v.contiguous() for k, v in g.state_dict().items()}, str(tmp_path / "g.safetensors"))
    bundle = load_bundle(str(tmp_path / "g.safetensors"))
    _same(bundle, g)
    bundle = load_bundle(str(tmp_path / "g.safetensors"))
    bundle.discriminator, bundle.d_spec = d, load_bundle.__globals__["detect"](d.state_dict(), "discriminator")
    bundle.masks = {"main.3.weight": torch.rand_like(g.main[3].weight) > 0.5}
    out = save_bundle(bundle, tmp_path / "p.safetensors")
    again = load_bundle(str(out))
    _same(again, g, d)
    assert torch.equal(again.masks["main.3.weight"], bundle.masks["main.3.weight"])
    with pytest.raises(InputError, match="--force"):
        save_bundle(bundle, out)


def test_hub_mixin_directory_with_user_arch(tmp_path, monkeypatch):
    """config.json + model.safetensors (PyTorchModelHubMixin) with --arch module:Callable."""
    (tmp_path / "mynets.py").write_text(
        "import torch\n"
        "class Gen(torch.nn.Module):\n"
        "    input_shape = (4,)\n"
        "    def __init__(self, nz=4, hidden=8):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(nz, hidden)\n"
        "        self.out = torch.nn.Linear(hidden, 12)\n"
        "    def forward(self, z):\n"
        "        return torch.tanh(self.out(torch.relu(self.fc(z)))).view(-1, 3, 2, 2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import mynets

    ref = mynets.Gen(nz=4, hidden=6)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text(json.dumps({"nz": 4, "hidden": 6}))
    save_file(ref.state_dict(), str(repo / "model.safetensors"))
    # the weights not fitting a network is its own type (a script choosing networks by its own flag catches it)
    with pytest.raises(NetworkMismatch, match="--arch"):
        load_bundle(str(repo))
    bundle = load_bundle(str(repo), LoadOptions(arch="mynets:Gen"))
    z = torch.randn(2, 4)
    assert torch.equal(bundle.generator(z), ref(z))
    assert bundle.g_spec.kwargs == {"target": "mynets:Gen", "kwargs": {"nz": 4, "hidden": 6}}
    # wrong kwargs: a readable diff, not a traceback
    with pytest.raises(NetworkMismatch, match="wrong shape: fc.weight"):
        load_bundle(str(repo), LoadOptions(arch="mynets:Gen", arch_kwargs={"nz": 4, "hidden": 8}))
    # a project file naming a user module is rebuilt only when the user passes --arch again
    out = save_bundle(bundle, tmp_path / "custom.safetensors")
    with pytest.raises(NetworkMismatch, match="pass --arch mynets:Gen"):
        load_bundle(str(out))
    # a damaged file is bad input of another kind: not a network mismatch
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(out.read_bytes()[:100])
    with pytest.raises(InputError) as damaged:
        load_bundle(str(cut), LoadOptions(arch="mynets:Gen"))
    assert not isinstance(damaged.value, NetworkMismatch)
    assert torch.equal(load_bundle(str(out), LoadOptions(arch="mynets:Gen")).generator(z), ref(z))


def test_bad_arch_spec():
    with pytest.raises(InputError, match="module.path:Callable"):
        LoadOptions(arch="nocolon")
    with pytest.raises(InputError, match="needs --arch"):
        LoadOptions(arch_kwargs={"a": 1})
    with pytest.raises(InputError, match="cannot import"):
        from gancompress.archs.custom import build_custom

        build_custom("no_such_module_xyz:Gen")


def test_torchscript_loads_as_is(tmp_path, dcgan):
    g, _ = dcgan
    torch.jit.script(g).save(str(tmp_path / "g.pt"))
    bundle = load_bundle(str(tmp_path / "g.pt"))
    assert isinstance(bundle.generator, torch.jit.ScriptModule)
    with torch.no_grad():
        assert torch.allclose(bundle.generator(Z), g(Z))


def test_digits_dcgan_detected():
    g, d = DigitsGenerator(nz=8, ngf=4), DigitsDiscriminator(ndf=4)
    from gancompress.archs import detect

    assert detect(g.state_dict(), "generator").kwargs == {"nz": 8, "ngf": 4, "nc": 1}
    assert detect(d.state_dict(), "discriminator").kwargs == {"ndf": 4, "nc": 1}
