"""Super-resolution layouts users bring: Real-ESRGAN's SRVGGNetCompact, the original ESRGAN's
old-arch RRDB keys, and SRGAN's common public generator. Each is built here from a reference
definition with the original key names and random weights, saved as released, detected,
compared output for output, then pruned and exported (sparse, shrunk) and loaded back."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mask_helpers import random_filter_masks
from torch import nn

from gancompress.api import load
from gancompress.archs import ARCHITECTURES
from gancompress.export import ExportConfig, export_bundle
from gancompress.generation import generator_info
from gancompress.loading import load_bundle

# ----------------------------------------------------------------------------- references


class RefSRVGG(nn.Module):
    """Real-ESRGAN's compact net: body is a ModuleList [conv, prelu, (conv, prelu) * n, conv]."""

    def __init__(self, ch=3, feat=8, n=4, up=4):
        super().__init__()
        self.up = up
        self.body = nn.ModuleList([nn.Conv2d(ch, feat, 3, 1, 1), nn.PReLU(feat)])
        for _ in range(n):
            self.body.extend([nn.Conv2d(feat, feat, 3, 1, 1), nn.PReLU(feat)])
        self.body.append(nn.Conv2d(feat, ch * up * up, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(up)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        out += F.interpolate(x, scale_factor=self.up, mode="nearest")
        return out


def _conv_act(cin, cout, act=True):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), *([nn.LeakyReLU(0.2)] if act else []))


class RefOldRDB(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"conv{i}", _conv_act(nf + (i - 1) * gc, gc))
        self.conv5 = _conv_act(nf + 4 * gc, nf, act=False)

    def forward(self, x):
        feats = [x]
        for i in range(1, 6):
            feats.append(getattr(self, f"conv{i}")(torch.cat(feats, 1)))
        return feats[-1].mul(0.2) + x


class RefOldRRDB(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.RDB1, self.RDB2, self.RDB3 = RefOldRDB(nf, gc), RefOldRDB(nf, gc), RefOldRDB(nf, gc)

    def forward(self, x):
        return self.RDB3(self.RDB2(self.RDB1(x))).mul(0.2) + x


class Shortcut(nn.Module):
    def __init__(self, sub):
        super().__init__()
        self.sub = sub

    def forward(self, x):
        return x + self.sub(x)


def ref_old_esrgan(nf=8, nb=2, gc=4, cin=3, cout=3):
    """The flattened ``model`` sequence of the original repository's RRDB_Net (x4, upconv)."""
    trunk = nn.Sequential(*[RefOldRRDB(nf, gc) for _ in range(nb)], nn.Conv2d(nf, nf, 3, 1, 1))
    up = lambda: [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(nf, nf, 3, 1, 1), nn.LeakyReLU(0.2)]
    model = nn.Sequential(nn.Conv2d(cin, nf, 3, 1, 1), Shortcut(trunk), *up(), *up(),
                          nn.Conv2d(nf, nf, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(nf, cout, 3, 1, 1))
    holder = nn.Module()
    holder.model = model
    holder.forward = model.forward
    return holder


class RefResidual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1, self.prelu = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.PReLU()
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x):
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class RefUp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv, self.pixel_shuffle, self.prelu = nn.Conv2d(c, c * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU()

    def forward(self, x):
        return self.prelu(self.pixel_shuffle(self.conv(x)))


class RefSRGAN(nn.Module):
    """The common public SRGAN generator: block1..block8 for 5 residual blocks."""

    def __init__(self, scale=4, c=8):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, c, 9, padding=4), nn.PReLU())
        self.block2, self.block3, self.block4, self.block5, self.block6 = (RefResidual(c) for _ in range(5))
        self.block7 = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.block8 = nn.Sequential(*[RefUp(c) for _ in range(scale.bit_length() - 1)], nn.Conv2d(c, 3, 9, padding=4))

    def forward(self, x):
        b1 = self.block1(x)
        b7 = self.block7(self.block6(self.block5(self.block4(self.block3(self.block2(b1))))))
        return (torch.tanh(self.block8(b1 + b7)) + 1) / 2


def _randomise(net: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)
            elif isinstance(m, nn.PReLU):
                m.weight.uniform_(0.0, 0.5)
            elif isinstance(m, nn.Conv2d):
                m.weight.mul_(0.5)
                m.bias.normal_(0, 0.1)
    return net.eval()


# ----------------------------------------------------------------------------- the cases


def _srvgg():
    return _randomise(RefSRVGG()), lambda sd: {"params": sd}, "realesr-animevideov3.pth"


def _old_esrgan():
    return _randomise(ref_old_esrgan()), lambda sd: sd, "RRDB_ESRGAN_x4.pth"


def _srgan():
    return _randomise(RefSRGAN()), lambda sd: sd, "netG_epoch_4_100.pth"


CASES = {
    "srvgg-g": (_srvgg, {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_conv": 4, "upscale": 4, "act_type": "prelu"}),
    "esrgan-old-g": (_old_esrgan, {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 8, "num_block": 2,
                                   "num_grow_ch": 4}),
    "srgan-g": (_srgan, {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 5, "upscale": 4}),
}


@pytest.fixture(params=list(CASES))
def released(request, tmp_path):
    make, kwargs = CASES[request.param]
    ref, wrap, filename = make()
    path = tmp_path / filename
    torch.save(wrap(ref.state_dict()), path)
    return request.param, kwargs, ref, path


def test_detected_with_identical_outputs_and_a_0_1_range(released):
    name, kwargs, ref, path = released
    bundle = load_bundle(str(path))
    assert bundle.g_spec.name == name and bundle.g_spec.kwargs == kwargs
    info = generator_info(bundle)
    assert info.input_kind == "image" and info.output_range == (0.0, 1.0)
    assert info.output_shape == (3, 4 * info.input_shape[1], 4 * info.input_shape[2])
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(bundle.generator(x), ref(x))


def test_pruned_export_sparse_and_shrunk_round_trip(released, tmp_path):
    name, _, _, path = released
    bundle = load_bundle(str(path))
    bundle.masks = random_filter_masks(bundle.generator, 0.5, seed=1)
    masked = bundle.masked_generator()
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = masked(x)
    for fmt in ("sparse", "shrunk"):
        report = export_bundle(bundle, ExportConfig(source=str(path), output=tmp_path / f"{fmt}.safetensors", format=fmt))
        again = load(tmp_path / f"{fmt}.safetensors")
        with torch.no_grad():
            got = again(x)
        assert got.shape == want.shape and float((got - want).abs().max()) <= 1e-5, fmt
        if fmt == "shrunk":
            assert report.shrink["removed"] > 0 and report.architecture == f"shrunk:{name}"
            shrunk = load_bundle(str(tmp_path / "shrunk.safetensors"))
            assert generator_info(shrunk).output_range == (0.0, 1.0)  # declared by the base layout


def test_released_compact_model_sizes_are_read_off_the_shapes():
    """realesr-animevideov3: 16 body convs; realesr-general-x4v3: 32 (64 features, PReLU, x4)."""
    for num_conv in (16, 32):
        with torch.device("meta"):
            sd = RefSRVGG(feat=64, n=num_conv).state_dict()
        assert len(sd) == 2 * (num_conv + 2) + (num_conv + 1)
        kwargs = ARCHITECTURES.get("srvgg-g").infer(sd)
        assert kwargs == {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": num_conv, "upscale": 4,
                          "act_type": "prelu"}


def test_old_arch_keys_are_the_original_names():
    sd = ref_old_esrgan(nf=8, nb=3).state_dict()
    assert {"model.0.weight", "model.1.sub.2.RDB3.conv5.0.weight", "model.1.sub.3.weight", "model.3.weight",
            "model.6.weight", "model.8.weight", "model.10.bias"} <= set(sd)
    assert ARCHITECTURES.get("esrgan-old-g").infer(sd)["num_block"] == 3


def test_srgan_x2_and_layout_facts():
    ref = _randomise(RefSRGAN(scale=2))
    assert "block8.0.prelu.weight" in ref.state_dict() and "block8.1.weight" in ref.state_dict()
    kwargs = ARCHITECTURES.get("srgan-g").infer(ref.state_dict())
    assert kwargs["upscale"] == 2 and kwargs["num_block"] == 5


def test_compact_model_without_prelu_is_not_guessed():
    """relu and leakyrelu leave no weights: the keys cannot say which one was used."""
    sd = {k: v for k, v in RefSRVGG().state_dict().items() if v.ndim == 4 or k.endswith("bias")}
    assert ARCHITECTURES.get("srvgg-g").infer(sd) is None


def test_pruned_shrunk_prelu_widths_follow_the_cut(tmp_path):
    """Per-channel PReLU slopes are cut with their channels; a shared one stays one number."""
    ref, wrap, _ = _srvgg()
    torch.save(wrap(ref.state_dict()), tmp_path / "g.pth")
    bundle = load_bundle(str(tmp_path / "g.pth"))
    bundle.masks = random_filter_masks(bundle.generator, 0.5, seed=2)
    export_bundle(bundle, ExportConfig(source="g", output=tmp_path / "s.safetensors", format="shrunk"))
    small = load(tmp_path / "s.safetensors")
    prelus = [m for m in small.modules() if isinstance(m, nn.PReLU)]
    assert prelus and all(m.num_parameters == 4 for m in prelus)  # 8 features, half of the filters cut

    ref, wrap, _ = _srgan()
    torch.save(ref.state_dict(), tmp_path / "srgan.pth")
    bundle = load_bundle(str(tmp_path / "srgan.pth"))
    bundle.masks = random_filter_masks(bundle.generator, 0.5, seed=2)
    export_bundle(bundle, ExportConfig(source="g", output=tmp_path / "t.safetensors", format="shrunk"))
    assert all(m.num_parameters == 1 for m in load(tmp_path / "t.safetensors").modules() if isinstance(m, nn.PReLU))


def test_each_layout_is_claimed_by_its_own_family_only():
    from gancompress.archs.dcgan import DCGANGenerator
    from gancompress.archs.detection import matches
    from gancompress.archs.esrgan import RRDBNet

    layouts = {name: make()[0].state_dict() for name, (make, _) in CASES.items()}
    layouts["dcgan-g"] = DCGANGenerator([16, 32, 16, 8, 3]).state_dict()
    layouts["rrdbnet-g"] = RRDBNet(num_feat=4, num_block=1, num_grow_ch=2).state_dict()
    for name, sd in layouts.items():
        claims = [n for n, a in ARCHITECTURES.items() if a.detectable and matches(a, sd) is not None]
        assert claims == [name]


def test_compact_model_through_the_commands(tmp_path):
    """inspect -> prune -> export shrunk -> inspect, on a {"params": ...} file as Real-ESRGAN releases them."""
    import json

    from typer.testing import CliRunner

    from gancompress.cli.main import app

    ref, wrap, name = _srvgg()
    torch.save(wrap(ref.state_dict()), tmp_path / name)
    run = lambda *a: CliRunner().invoke(app, [str(x) for x in a])
    shown = run("inspect", tmp_path / name, "--json")
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert report["generator"]["architecture"] == "srvgg-g" and report["generator"]["output_shape"] == [3, 256, 256]
    assert run("prune", tmp_path / name, "-s", "0.5", "--granularity", "filter", "-o", tmp_path / "p.safetensors").exit_code == 0
    exported = run("export", tmp_path / "p.safetensors", "--format", "shrunk", "-o", tmp_path / "s.safetensors")
    assert exported.exit_code == 0, exported.output
    small = json.loads(run("inspect", tmp_path / "s.safetensors", "--json").stdout)
    assert small["generator"]["architecture"] == "shrunk:srvgg-g"
    assert small["generator"]["parameters"] < report["generator"]["parameters"]
