"""pix2pix/CycleGAN and ESRGAN layouts: detection, strict loading and identical outputs.

Each layout has an independent reference definition here, written from the public module
ordering (junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py``; BasicSR
``rrdbnet_arch.py``; Real-ESRGAN ``discriminator_arch.py``) so that key names match real
checkpoints. Models are tiny; full-size key counts are taken on the meta device.
"""
from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gancompress.archs import ARCHITECTURES, ArchSpec, build, detect, load_into
from gancompress.archs.base import prepare
from gancompress.archs.detection import matches
from gancompress.archs.dcgan import DCGANDiscriminator, DCGANGenerator
from gancompress.archs.digits import DigitsDiscriminator, DigitsGenerator
from gancompress.archs.pix2pix import patchgan_conditional
from gancompress.errors import InputError

# ----------------------------------------------------------------------------- references


def ref_norm(kind):
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)


def uses_bias(norm_layer):
    return norm_layer.func is nn.InstanceNorm2d


class RefResBlock(nn.Module):
    def __init__(self, dim, norm_layer, dropout, bias):
        super().__init__()
        seq = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=bias), norm_layer(dim), nn.ReLU(True)]
        if dropout:
            seq += [nn.Dropout(0.5)]
        seq += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*seq)

    def forward(self, x):
        return x + self.conv_block(x)


class RefResnetG(nn.Module):
    def __init__(self, input_nc, output_nc, ngf, norm, dropout, n_blocks):
        super().__init__()
        nl = ref_norm(norm)
        bias = uses_bias(nl)
        seq = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=bias), nl(ngf), nn.ReLU(True)]
        for i in range(2):
            m = 2**i
            seq += [nn.Conv2d(ngf * m, ngf * m * 2, kernel_size=3, stride=2, padding=1, bias=bias), nl(ngf * m * 2), nn.ReLU(True)]
        for _ in range(n_blocks):
            seq += [RefResBlock(ngf * 4, nl, dropout, bias)]
        for i in range(2):
            m = 2 ** (2 - i)
            seq += [
                nn.ConvTranspose2d(ngf * m, int(ngf * m / 2), kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias),
                nl(int(ngf * m / 2)),
                nn.ReLU(True),
            ]
        seq += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


class RefUnetBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 norm_layer=None, use_dropout=False):
        super().__init__()
        self.outermost = outermost
        bias = uses_bias(norm_layer)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            seq = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            seq = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, norm_layer(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            seq = [nn.LeakyReLU(0.2, True), downconv, norm_layer(inner_nc), submodule,
                   nn.ReLU(True), upconv, norm_layer(outer_nc)]
            if use_dropout:
                seq.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class RefUnetG(nn.Module):
    def __init__(self, input_nc, output_nc, num_downs, ngf, norm, dropout):
        super().__init__()
        nl = ref_norm(norm)
        blk = RefUnetBlock(ngf * 8, ngf * 8, norm_layer=nl, innermost=True)
        for _ in range(num_downs - 5):
            blk = RefUnetBlock(ngf * 8, ngf * 8, submodule=blk, norm_layer=nl, use_dropout=dropout)
        blk = RefUnetBlock(ngf * 4, ngf * 8, submodule=blk, norm_layer=nl)
        blk = RefUnetBlock(ngf * 2, ngf * 4, submodule=blk, norm_layer=nl)
        blk = RefUnetBlock(ngf, ngf * 2, submodule=blk, norm_layer=nl)
        self.model = RefUnetBlock(output_nc, ngf, input_nc=input_nc, submodule=blk, outermost=True, norm_layer=nl)

    def forward(self, x):
        return self.model(x)


class RefPatchD(nn.Module):
    def __init__(self, input_nc, ndf, n_layers, norm):
        super().__init__()
        nl = ref_norm(norm)
        bias = uses_bias(nl)
        seq = [nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        cur = 1
        for n in range(1, n_layers):
            prev, cur = cur, min(2**n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * cur, kernel_size=4, stride=2, padding=1, bias=bias), nl(ndf * cur), nn.LeakyReLU(0.2, True)]
        prev, cur = cur, min(2**n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * cur, kernel_size=4, stride=1, padding=1, bias=bias), nl(ndf * cur), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(ndf * cur, 1, kernel_size=4, stride=1, padding=1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


def ref_unshuffle(x, s):
    b, c, hh, ww = x.shape
    h, w = hh // s, ww // s
    return x.view(b, c, h, s, w, s).permute(0, 1, 3, 5, 2, 4).reshape(b, c * s * s, h, w)


class RefRDB(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)

    def forward(self, x):
        a = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        x1 = a(self.conv1(x))
        x2 = a(self.conv2(torch.cat((x, x1), 1)))
        x3 = a(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = a(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        return self.conv5(torch.cat((x, x1, x2, x3, x4), 1)) * 0.2 + x


class RefRRDB(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = RefRDB(nf, gc), RefRDB(nf, gc), RefRDB(nf, gc)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RefRRDBNet(nn.Module):
    def __init__(self, num_in_ch, num_out_ch, scale=4, num_feat=64, num_block=23, num_grow_ch=32):
        super().__init__()
        self.scale = scale
        cin = num_in_ch * {4: 1, 2: 4, 1: 16}[scale]
        self.conv_first = nn.Conv2d(cin, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RefRRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x):
        a = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        if self.scale == 4:
            feat = self.conv_first(x)
        else:
            feat = self.conv_first(ref_unshuffle(x, 2 if self.scale == 2 else 4))
        feat = feat + self.conv_body(self.body(feat))
        feat = a(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = a(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(a(self.conv_hr(feat)))


class RefUNetDSN(nn.Module):
    def __init__(self, num_in_ch, num_feat=64, skip_connection=True, sn=nn.utils.spectral_norm):
        super().__init__()
        self.skip = skip_connection
        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, kernel_size=3, stride=1, padding=1)
        self.conv1 = sn(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = sn(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = sn(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        self.conv4 = sn(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = sn(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = sn(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        self.conv7 = sn(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = sn(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x):
        a = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
        x0 = a(self.conv0(x))
        x1 = a(self.conv1(x0))
        x2 = a(self.conv2(x1))
        x3 = a(self.conv3(x2))
        x4 = a(self.conv4(up(x3)))
        x4 = x4 + x2 if self.skip else x4
        x5 = a(self.conv5(up(x4)))
        x5 = x5 + x1 if self.skip else x5
        x6 = a(self.conv6(up(x5)))
        x6 = x6 + x0 if self.skip else x6
        return self.conv9(a(self.conv8(a(self.conv7(x6)))))


# ----------------------------------------------------------------------------- helpers


def randomized(module, seed=0):
    """Fill every parameter and float buffer with random values (positive variances)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if not t.is_floating_point():
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith(("weight_u", "weight_v", "_u", "_v")):
                t.copy_(F.normalize(torch.randn(t.shape, generator=g), dim=0))
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)
    return module.eval()


def loaded(sd, role):
    """detect -> build -> prepare -> load_into, as the loader does."""
    spec = detect(sd, role)
    model = build(ArchSpec.from_json(spec.to_json()))
    load_into(model, prepare(ARCHITECTURES.get(spec.name), sd))
    return spec, model.eval()


def assert_same_outputs(ref, model, x):
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-6)


def on_meta(factory):
    with torch.device("meta"):
        return factory()


# ----------------------------------------------------------------------------- ResNet G


RESNET_CASES = [
    dict(n_blocks=9, norm="instance", use_dropout=False, input_nc=3, output_nc=3),
    dict(n_blocks=6, norm="instance", use_dropout=False, input_nc=1, output_nc=3),
    dict(n_blocks=9, norm="batch", use_dropout=False, input_nc=3, output_nc=3),
    dict(n_blocks=6, norm="batch", use_dropout=True, input_nc=3, output_nc=1),
    dict(n_blocks=9, norm="instance", use_dropout=True, input_nc=3, output_nc=3),
]


@pytest.mark.parametrize("case", RESNET_CASES, ids=lambda c: f"{c['n_blocks']}b-{c['norm']}-drop{int(c['use_dropout'])}")
def test_resnet_generator(case):
    ref = randomized(RefResnetG(case["input_nc"], case["output_nc"], 4, case["norm"], case["use_dropout"], case["n_blocks"]))
    sd = ref.state_dict()
    spec, model = loaded(sd, "generator")
    assert spec == ArchSpec("pix2pix-resnet-g", {**case, "ngf": 4})
    assert_same_outputs(ref, model, torch.randn(2, case["input_nc"], 32, 32))
    assert model.output_range == (-1.0, 1.0)


def test_resnet_layout_facts():
    sd = on_meta(lambda: RefResnetG(3, 3, 64, "instance", False, 9)).state_dict()
    assert len(sd) == 48
    assert {"model.1.weight", "model.4.weight", "model.7.weight", "model.10.conv_block.1.weight",
            "model.18.conv_block.5.weight", "model.19.weight", "model.22.weight", "model.26.weight"} <= set(sd)
    dropout = on_meta(lambda: RefResnetG(3, 3, 64, "instance", True, 9)).state_dict()
    assert "model.10.conv_block.6.weight" in dropout and "model.10.conv_block.5.weight" not in dropout
    arch = ARCHITECTURES.get("pix2pix-resnet-g")
    assert arch.input_kind == "image" and arch.loss == "pix2pix"
    assert arch.input_shape({"input_nc": 3}) == (3, 256, 256)


# ----------------------------------------------------------------------------- U-Net G


@pytest.mark.parametrize(
    "num_downs,norm,dropout",
    [(7, "batch", True), (8, "batch", False), (7, "instance", False), (8, "instance", True)],
)
def test_unet_generator(num_downs, norm, dropout):
    size = 2**num_downs
    ref = randomized(RefUnetG(3, 2, num_downs, 2, norm, dropout))
    spec, model = loaded(ref.state_dict(), "generator")
    expected = dict(input_nc=3, output_nc=2, num_downs=num_downs, ngf=2, norm=norm, use_dropout=False)
    assert spec == ArchSpec("pix2pix-unet-g", expected)
    assert_same_outputs(ref, model, torch.randn(1, 3, size, size))
    assert model.output_range == (-1.0, 1.0)


def test_unet_layout_facts():
    sd = on_meta(lambda: RefUnetG(3, 3, 8, 64, "batch", True)).state_dict()
    assert len(sd) == 82
    assert "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.1.weight" in sd
    assert len(on_meta(lambda: RefUnetG(3, 3, 7, 64, "batch", True)).state_dict()) == 82 - 12


# ----------------------------------------------------------------------------- PatchGAN D


@pytest.mark.parametrize("n_layers,norm,keys", [(3, "instance", 10), (3, "batch", 22), (2, "batch", 16),
                                                (2, "instance", 8), (4, "batch", None)])
def test_patchgan(n_layers, norm, keys):
    ref = randomized(RefPatchD(6, 4, n_layers, norm))
    sd = ref.state_dict()
    if keys is not None:
        assert len(sd) == keys
    spec, model = loaded(sd, "discriminator")
    assert spec == ArchSpec("patchgan-d", dict(input_nc=6, ndf=4, n_layers=n_layers, norm=norm))
    assert_same_outputs(ref, model, torch.randn(2, 6, 64, 64))


def test_patchgan_conditional_is_decided_at_use_time():
    arch = ARCHITECTURES.get("patchgan-d")
    assert arch.d_output == "logits" and "conditional" in arch.description
    assert patchgan_conditional({"input_nc": 6}, 3, 3)
    assert not patchgan_conditional({"input_nc": 3}, 3, 3)


# ----------------------------------------------------------------------------- quirks


def add_stale_instance_stats(ref, sd):
    out = dict(sd)
    for name, mod in ref.named_modules():
        if isinstance(mod, nn.InstanceNorm2d):
            out[f"{name}.running_mean"] = torch.zeros(mod.num_features)
            out[f"{name}.running_var"] = torch.ones(mod.num_features)
            out[f"{name}.num_batches_tracked"] = torch.tensor(0)
    return out


@pytest.mark.parametrize(
    "make,role,name",
    [
        (lambda: RefResnetG(3, 3, 4, "instance", False, 6), "generator", "pix2pix-resnet-g"),
        (lambda: RefUnetG(3, 3, 7, 2, "instance", False), "generator", "pix2pix-unet-g"),
        (lambda: RefPatchD(6, 4, 3, "instance"), "discriminator", "patchgan-d"),
    ],
)
def test_dataparallel_prefix_and_stale_instance_stats(make, role, name):
    ref = randomized(make())
    sd = add_stale_instance_stats(ref, ref.state_dict())
    assert len(sd) > len(ref.state_dict())
    sd = {f"module.{k}": v for k, v in sd.items()}
    spec, model = loaded(sd, role)
    assert spec.name == name and spec.kwargs["norm"] == "instance"
    size = 128 if name == "pix2pix-unet-g" else 32
    assert_same_outputs(ref, model, torch.randn(1, 3 if role == "generator" else 6, size, size))


def test_batchnorm_without_num_batches_tracked_loads():
    ref = randomized(RefPatchD(6, 4, 3, "batch"))
    sd = {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    spec, model = loaded(sd, "discriminator")
    assert spec.kwargs["norm"] == "batch"
    assert_same_outputs(ref, model, torch.randn(1, 6, 64, 64))


# ----------------------------------------------------------------------------- RRDBNet


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet(scale):
    ref = randomized(RefRRDBNet(3, 3, scale=scale, num_feat=8, num_block=2, num_grow_ch=4))
    sd = ref.state_dict()
    assert len(sd) == 30 * 2 + 12
    spec, model = loaded(sd, "generator")
    assert spec == ArchSpec("rrdbnet-g", dict(num_in_ch=3, num_out_ch=3, scale=scale, num_feat=8, num_block=2, num_grow_ch=4))
    x = torch.rand(1, 3, 16, 16)
    assert_same_outputs(ref, model, x)
    assert model(x).shape[-1] == 16 * scale
    assert model.output_range == (0.0, 1.0)


def test_rrdbnet_layout_facts_and_prefix():
    full = on_meta(lambda: RefRRDBNet(3, 3))
    assert len(full.state_dict()) == 702
    assert 16_600_000 < sum(p.numel() for p in full.parameters()) < 16_800_000
    assert on_meta(lambda: RefRRDBNet(3, 3, scale=2)).conv_first.weight.shape[1] == 12
    assert on_meta(lambda: RefRRDBNet(3, 3, scale=1)).conv_first.weight.shape[1] == 48
    ref = randomized(RefRRDBNet(3, 3, scale=4, num_feat=4, num_block=1, num_grow_ch=2))
    spec, model = loaded({f"module.{k}": v for k, v in ref.state_dict().items()}, "generator")
    assert spec.name == "rrdbnet-g"
    assert_same_outputs(ref, model, torch.rand(1, 3, 8, 8))
    arch = ARCHITECTURES.get("rrdbnet-g")
    assert arch.loss == "sr" and arch.input_shape(spec.kwargs) == (3, 128, 128)


# ----------------------------------------------------------------------------- UNetDiscriminatorSN


def test_unet_sn_discriminator():
    ref = randomized(RefUNetDSN(3, num_feat=4))
    sd = ref.state_dict()
    assert len(sd) == 28
    assert {"conv1.weight_orig", "conv1.weight_u", "conv1.weight_v", "conv9.bias"} <= set(sd)
    assert "conv1.weight" not in sd and "conv8.bias" not in sd
    spec, model = loaded(sd, "discriminator")
    assert spec == ArchSpec("unet-sn-d", dict(num_in_ch=3, num_feat=4, skip_connection=True))
    assert_same_outputs(ref, model, torch.rand(2, 3, 32, 32))
    assert ARCHITECTURES.get("unet-sn-d").d_output == "logits"


def test_unet_sn_discriminator_parametrized_form_loads():
    ref = randomized(RefUNetDSN(3, num_feat=4, sn=nn.utils.parametrizations.spectral_norm))
    sd = ref.state_dict()
    assert "conv1.parametrizations.weight.original" in sd
    spec, model = loaded(sd, "discriminator")
    assert spec.name == "unet-sn-d"
    assert_same_outputs(ref, model, torch.rand(1, 3, 32, 32))


# ----------------------------------------------------------------------------- no false matches


MINE = ["pix2pix-resnet-g", "pix2pix-unet-g", "patchgan-d", "rrdbnet-g", "unet-sn-d"]


@pytest.mark.parametrize(
    "module,role,name",
    [
        (DCGANGenerator([16, 32, 16, 8, 3]), "generator", "dcgan-g"),
        (DCGANDiscriminator([3, 8, 16, 32, 1]), "discriminator", "dcgan-d"),
        (DigitsGenerator(8, 2, 1), "generator", "digits-dcgan-g"),
        (DigitsDiscriminator(2, 1), "discriminator", "digits-dcgan-d"),
    ],
)
def test_existing_families_are_not_claimed(module, role, name):
    sd = module.state_dict()
    assert detect(sd, role).name == name
    for mine in MINE:
        assert matches(ARCHITECTURES.get(mine), sd) is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: RefResnetG(3, 3, 4, "batch", False, 6),
        lambda: RefUnetG(3, 3, 7, 2, "batch", False),
        lambda: RefPatchD(6, 4, 3, "batch"),
        lambda: RefRRDBNet(3, 3, num_feat=4, num_block=1, num_grow_ch=2),
        lambda: RefUNetDSN(3, num_feat=4),
    ],
)
def test_only_one_family_claims_each_layout(make):
    sd = make().state_dict()
    claims = [n for n in ARCHITECTURES.names() if matches(ARCHITECTURES.get(n), sd) is not None]
    assert len(claims) == 1 and claims[0] in MINE


def test_discriminators_are_not_generators():
    for make in (lambda: RefPatchD(6, 4, 3, "batch"), lambda: RefUNetDSN(3, num_feat=4)):
        sd = make().state_dict()
        generators = [a for _, a in ARCHITECTURES.items() if a.role == "generator"]
        assert all(matches(a, sd) is None for a in generators)


def test_garbage_is_refused_with_input_error():
    with pytest.raises(InputError):
        detect({"model.model.0.weight": torch.zeros(2, 3, 4, 4)}, "discriminator")
