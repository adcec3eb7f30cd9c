"""A user's own generator and discriminator through every command (docs/custom_networks.md).

Each case: a checkpoint of networks from tests/custom_nets.py, then inspect -> prune -> finetune (the
default method, a few steps) -> evaluate (--samples) -> export sparse/shrunk/onnx -> load, with only
the flags the contract documents.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import custom_nets as nets
import gancompress
from gancompress.cli.main import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


def _images(folder: Path, n: int, size: int, channels: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = (rng.random((size, size, channels)) * 255).astype(np.uint8)
        Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(folder / f"{i:03d}.png")
    return folder


def _run(*args: str) -> str:
    """The command's stdout (the written path for commands that write a model)."""
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, (args, r.output)
    return r.stdout.strip()


def _labelled(folder: Path, classes: int, size: int) -> Path:
    """A labelled folder tree: one sub-folder per class."""
    for c in range(classes):
        _images(folder / f"class{c}", 3, size, 1, seed=c)
    return folder


# (G factory, G kwargs, D factory, D kwargs, image size, channels, input images needed, extractor check)
CASES = {
    "sequential-dcgan28": ("dcgan28", {"input_shape": [16, 1, 1]}, "dcgan28_d", {"d_output": "probs"}, 28, 1, False),
    "mlp": ("MLPGenerator", {}, "MLPDiscriminator", {}, 8, 1, False),
    "class-conditional": ("CondGenerator", {}, "CondDiscriminator", {}, 16, 1, False),
    "sr-pixelshuffle-01": ("SRGenerator", {}, "PatchD", {}, 16, 3, False),
    "encoder-decoder": ("EncoderDecoder", {}, "PatchD", {}, 16, 3, True),
}


def _flags(g: str, g_kwargs: dict, d: str, d_kwargs: dict) -> list[str]:
    flags = ["--arch", f"custom_nets:{g}", "--d-arch", f"custom_nets:{d}"]
    if g_kwargs:
        flags += ["--arch-kwargs", json.dumps(g_kwargs)]
    if d_kwargs:
        flags += ["--d-arch-kwargs", json.dumps(d_kwargs)]
    return flags


def _build(name: str, kwargs: dict, role: str) -> torch.nn.Module:
    from gancompress.archs.custom import build_custom

    return build_custom(f"custom_nets:{name}", kwargs, role)


@pytest.mark.parametrize("case", list(CASES))
def test_chain_through_the_cli(case: str, tmp_path: Path, monkeypatch) -> None:
    g, g_kw, d, d_kw, size, channels, needs_inputs = CASES[case]
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    gen, disc = _build(g, g_kw, "generator"), _build(d, d_kw, "discriminator")
    ckpt = tmp_path / "gan.pth"
    torch.save({"netG": gen.state_dict(), "netD": disc.state_dict()}, ckpt)
    data = _labelled(tmp_path / "real", 3, size) if case == "class-conditional" else _images(tmp_path / "real", 8, size, channels)
    extra = ["--inputs", str(_images(tmp_path / "inputs", 8, size, channels, 1))] if needs_inputs else []
    flags = _flags(g, g_kw, d, d_kw)

    report = json.loads(_run("inspect", ckpt, "--json", *flags))
    assert report["has_discriminator"] and report["generator"]["parameters"] == sum(p.numel() for p in gen.parameters())

    pruned = _run("prune", ckpt, "-s", "0.5", "--prune-first-last", "-o", tmp_path / "p.safetensors", *flags)
    without = runner.invoke(app, ["inspect", pruned])
    assert without.exit_code == 2 and f"--arch custom_nets:{g}" in without.output

    tuned = _run("finetune", pruned, "--data", data, *extra, "--steps", "2", "--batch-size", "4",
                 "--sample-every", "0", "-o", tmp_path / "f.safetensors", *flags)
    grid = tmp_path / "grid.png"
    _run("evaluate", tuned, "-r", pruned, "--samples", grid, *extra, *(["--pairs", data] if needs_inputs else []), *flags)
    assert Image.open(grid).size[0] > size

    _exports_match(tuned, tmp_path, flags, f"custom_nets:{g}", f"custom_nets:{d}", (channels, size, size))


def _exports_match(tuned: str, tmp_path: Path, flags: list[str], g_arch: str, d_arch: str | None,
                   image: tuple[int, int, int]) -> None:
    """Every export of ``tuned`` (sparse, shrunk, onnx) loads with gancompress.load() and computes what the
    tuned model computes on the same inputs (and labels); sample(n, seed=) gives the same images; the
    ONNX file also runs in onnxruntime directly (a class-conditional one takes z and labels)."""
    reference = gancompress.load(tuned, arch=g_arch, d_arch=d_arch)
    args = nets.example_inputs(reference)
    with torch.no_grad():
        want = reference(*args)
    assert want.shape[1:] == image
    noise = reference.input_kind == "noise"
    for fmt in ("sparse", "shrunk", "onnx"):
        name = "g.onnx" if fmt == "onnx" else f"g.{fmt}.safetensors"
        out = _run("export", tuned, "--format", fmt, "-o", tmp_path / name, *flags)
        loaded = gancompress.load(out, arch=g_arch)
        with torch.no_grad():
            got = loaded(*args)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4), fmt
        if noise:
            assert torch.allclose(loaded.sample(3, seed=5), reference.sample(3, seed=5), atol=1e-4), fmt
        if fmt == "onnx":
            import onnxruntime as ort

            session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
            assert [i.name for i in session.get_inputs()] == ["input", "labels"][:len(args)]
            direct = session.run(None, {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)})[0]
            assert torch.allclose(torch.from_numpy(direct), want, atol=1e-4)


def test_legacy_file_and_discriminator_in_its_own_file(tmp_path: Path, monkeypatch) -> None:
    """A pre-1.6 (legacy-serialised) generator file, its D in another file given with --discriminator/--d-arch."""
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    g_flags = ["--arch", "custom_nets:dcgan28", "--arch-kwargs", '{"input_shape": [16, 1, 1]}']
    d_flags = ["--d-arch", "custom_nets:dcgan28_d", "--d-arch-kwargs", '{"d_output": "probs"}']
    gen = _build("dcgan28", {"input_shape": [16, 1, 1]}, "generator")
    torch.save(gen.state_dict(), tmp_path / "netG.pth", _use_new_zipfile_serialization=False)
    torch.save(nets.dcgan28_d().state_dict(), tmp_path / "netD.pth", _use_new_zipfile_serialization=False)
    data = _images(tmp_path / "real", 8, 28, 1)
    report = json.loads(_run("inspect", tmp_path / "netG.pth", "--json", *g_flags))
    assert not report["has_discriminator"]
    pruned = _run("prune", tmp_path / "netG.pth", "-s", "0.5", "-o", tmp_path / "p.safetensors", *g_flags)
    missing = runner.invoke(app, ["finetune", pruned, "--data", str(data), "--steps", "1", "--method", "distill-adv",
                                  *g_flags])
    assert missing.exit_code == 2 and "--discriminator" in missing.output and "--d-arch" in missing.output
    tuned = _run("finetune", pruned, "--data", data, "--discriminator", tmp_path / "netD.pth", "--steps", "2",
                 "--method", "distill-adv",
                 "--batch-size", "4", "--sample-every", "0", "-o", tmp_path / "f.safetensors", *g_flags, *d_flags)
    from gancompress.loading import LoadOptions, load_bundle

    bundle = load_bundle(tuned, LoadOptions(arch="custom_nets:dcgan28", d_arch="custom_nets:dcgan28_d"))
    assert bundle.d_spec.kwargs["target"] == "custom_nets:dcgan28_d" and bundle.discriminator.d_output == "probs"
    assert bundle.meta["finetune"]["loss"] == "ns"
    _run("evaluate", tuned, "--samples", tmp_path / "grid.png", *g_flags, *d_flags)
    assert Image.open(tmp_path / "grid.png").size[0] > 28
    _exports_match(tuned, tmp_path, g_flags + d_flags, "custom_nets:dcgan28", "custom_nets:dcgan28_d", (1, 28, 28))


def _fails(*args: str) -> str:
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and "Traceback" not in r.output
    return r.output


def test_wrong_arch_names_the_module_and_what_is_wrong(tmp_path: Path, monkeypatch) -> None:
    ckpt = _saved(nets.MLPGenerator(), tmp_path, monkeypatch)
    assert "cannot import no_such_nets" in _fails("inspect", ckpt, "--arch", "no_such_nets:G")
    out = _fails("inspect", ckpt, "--arch", "custom_nets:NoSuchClass")
    assert "module custom_nets has no attribute NoSuchClass" in out and "MLPGenerator" in out
    out = _fails("inspect", ckpt, "--arch", "custom_nets:MLPGenerator", "--arch-kwargs", '{"hidden": 32}')
    assert "custom_nets:MLPGenerator" in out and "wrong shape" in out and "net.0.weight" in out
    out = _fails("inspect", ckpt, "--arch", "custom_nets:MLPGenerator", "--arch-kwargs", '{"nosuch": 1}')
    assert "cannot build it" in out and "nosuch" in out
    out = _fails("inspect", ckpt, "--arch", "custom_nets:SRGenerator")
    assert "custom_nets:SRGenerator" in out and "missing" in out
    out = _fails("prune", ckpt, "-s", "0.5", "--arch", "custom_nets:fails_to_build")
    assert "your code failed" in out and "deliberate failure in the user's constructor" in out


def _saved(module: torch.nn.Module, tmp_path: Path, monkeypatch) -> Path:
    """``module``'s state dict as ``g.pth`` in ``tmp_path``, the working folder."""
    monkeypatch.chdir(tmp_path)
    torch.save(module.state_dict(), tmp_path / "g.pth")
    return tmp_path / "g.pth"


def test_missing_contract_attribute_is_named(tmp_path: Path, monkeypatch) -> None:
    ckpt = _saved(nets.dcgan28(), tmp_path, monkeypatch)
    out = _fails("export", ckpt, "--format", "shrunk", "--arch", "custom_nets:dcgan28", "-o", tmp_path / "x.safetensors")
    assert "input_shape" in out and "--arch-kwargs" in out
    out = _fails("inspect", ckpt, "--arch", "custom_nets:dcgan28", "--arch-kwargs", '{"output_range": [0, 255]}')
    assert "output_range must be (-1, 1) or (0, 1)" in out
    assert not (tmp_path / "x.safetensors").exists()


def test_exception_in_user_forward_is_the_users_code_failing(tmp_path: Path, monkeypatch) -> None:
    ckpt = _saved(nets.Broken(), tmp_path, monkeypatch)
    out = _fails("export", ckpt, "--format", "onnx", "--arch", "custom_nets:Broken", "-o", tmp_path / "b.onnx")
    assert "your code custom_nets:Broken (custom_nets.py:" in out and "deliberate failure in the user's forward" in out


def test_builtin_digits_give_their_classes_to_a_ten_class_network() -> None:
    """The real digits' labels line up with the images load_real reads; other class counts get uniform labels."""
    from gancompress.data.digits import digits_labels
    from gancompress.data.images import folder_labels, load_real
    from gancompress.metrics.digits_classifier import load_digits_classifier

    labels = folder_labels("builtin:digits", 10)
    real = load_real("builtin:digits", size=16, channels=1)
    assert labels.shape == (len(real),) and torch.equal(labels, digits_labels())
    with torch.no_grad():  # the bundled classifier agrees with the labels on the images in the same order
        accuracy = (load_digits_classifier()(real[:300]).argmax(1) == labels[:300]).float().mean().item()
    assert accuracy > 0.9
    assert folder_labels("builtin:digits", 3) is None


def test_conditional_labels_reach_both_generators_and_the_discriminator(tmp_path: Path) -> None:
    """Teacher and student get the same latents and labels (one packed input); D gets the fakes' labels;
    real images get the labels of their class folder."""
    from gancompress.data.batches import Sampler
    from gancompress.data.images import folder_labels, load_real
    from gancompress.finetune.step import StepOptions, critic, fake_condition, real_condition
    from gancompress.generation import GeneratorInfo, labels_of

    gen = _build("CondGenerator", {}, "generator")
    data = _labelled(tmp_path / "real", 3, 16)
    real = load_real(str(data), size=16, channels=1)
    labels = folder_labels(str(data), 3)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(gancompress.errors.InputError, match="3 class folders but the networks take 4"):
        folder_labels(str(data), 4)
    sampler = Sampler(0, 4, "noise", (17,), real, None, False, 3, labels, packed=True)
    batch = sampler.draw(5, torch.device("cpu"))
    assert batch.x.shape == (4, 17) and torch.equal(batch.labels, labels_of(batch.x))
    picked = sampler.indices(5)
    assert torch.equal(batch.real_labels, labels[picked])
    with torch.no_grad():
        packed = gen(batch.x)
        direct = gen(batch.x[:, :16], batch.labels)
        other = gen(batch.x[:, :16], (batch.labels + 1) % 3)
    assert torch.equal(packed, direct) and not torch.allclose(packed, other)
    seen = []
    disc = _build("CondDiscriminator", {}, "discriminator")
    disc.register_forward_hook(lambda m, args, out: seen.append(args[1]))
    opts = StepOptions("distill-adv", 0.5, 1.0, True, class_labels=True)
    critic(disc, fake_condition(batch, opts))(packed)
    critic(disc, real_condition(batch, opts))(batch.real)
    assert torch.equal(seen[0], batch.labels) and torch.equal(seen[1], batch.real_labels)
    assert sampler.fixed(6, torch.device("cpu"))[:, -1].tolist() == [0, 1, 2, 0, 1, 2]
    assert GeneratorInfo("noise", (17,), (1, 16, 16), (-1.0, 1.0), 3).num_classes == 3


def test_conditional_sample_grid_has_one_row_per_class(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    gen = _build("CondGenerator", {}, "generator")
    torch.save(gen.state_dict(), tmp_path / "g.pth")
    grid = tmp_path / "grid.png"
    _run("evaluate", tmp_path / "g.pth", "--samples", grid, "--arch", "custom_nets:CondGenerator")
    plain = tmp_path / "plain.png"
    torch.save(nets.MLPGenerator(image_size=16).state_dict(), tmp_path / "m.pth")
    _run("evaluate", tmp_path / "m.pth", "--samples", plain, "--arch", "custom_nets:MLPGenerator",
         "--arch-kwargs", '{"image_size": 16}')
    one_row, three_rows = Image.open(plain).size[1], Image.open(grid).size[1]
    assert three_rows > 2.5 * one_row


@pytest.mark.parametrize("name", ["CondGenerator", "CondCatGenerator", "CondMLPGenerator"])
def test_shrunk_conditional_generator_equals_the_masked_one(name: str, tmp_path: Path) -> None:
    """Three public styles of label conditioning (embedding x latent, embedding concatenated on channels, one-hot
    concatenated to an MLP's noise): filter pruning removes channels, the label branch becomes a table, and the
    shrunk network (rebuilt from the file, without this module) computes what the masked one does for the same
    latents and labels."""
    from gancompress.formats.shrunk import LabelTable
    from gancompress.api import with_sampling

    torch.manual_seed(0)
    dense = _build(name, {}, "generator").eval()
    pruned = gancompress.prune(dense, sparsity=0.5, granularity="filter", prune_first_last=True).eval()
    gancompress.export(pruned, tmp_path / "s.safetensors", format="shrunk", arch=f"custom_nets:{name}")
    small = gancompress.load(tmp_path / "s.safetensors")
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in dense.parameters())
    assert any(isinstance(m, LabelTable) for m in small.modules())
    z = torch.randn(7, *dense.input_shape)
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 1])
    with torch.no_grad():
        want, got = pruned(z, labels), small(z, labels)
        assert not torch.allclose(want, pruned(z, (labels + 1) % 3))  # the labels matter
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(small.sample(4, seed=3), with_sampling(pruned, None).sample(4, seed=3), atol=1e-5)
    with pytest.raises(gancompress.errors.InputError, match="class-conditional: call it as model\\(z, labels\\)"):
        small.forward(z)
    from gancompress.metrics.latency import measure_backends  # evaluate --latency: the tool's packed input

    packed = (math.prod(dense.input_shape) + 1,)
    rows = measure_backends(small, packed, torch.device("cpu"), ["eager", "onnxruntime"], [2], repeats=2, num_classes=3)
    assert [r.note for r in rows] == [None, None] and rows[1].runtime.startswith("onnxruntime")


def test_sweep_on_your_own_conditional_networks(tmp_path: Path, monkeypatch) -> None:
    """`sweep --arch --d-arch` on a class-conditional G and D, FID with the offline digits extractor."""
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    torch.save({"netG": nets.CondGenerator().state_dict(), "netD": nets.CondDiscriminator().state_dict()}, "gan.pth")
    data = _labelled(tmp_path / "real", 3, 16)
    flags = _flags("CondGenerator", {}, "CondDiscriminator", {})
    doc = json.loads(_run("sweep", "gan.pth", "--data", data, "--sparsity", "0.5", "--steps", "2", "--batch-size", "4",
                          "--method", "distill-adv",
                          "--num-samples", "12", "--extractor", "digits", "--out-dir", "sw", "--device", "cpu",
                          "--json", *flags))
    cell = doc["cells"][0]
    assert doc["ran"] == 1 and cell["method"] == "distill-adv" and abs(cell["achieved_sparsity"] - 0.5) < 0.01
    assert cell["fid"] is not None and doc["dense"]["fid"] is not None
    assert json.loads((tmp_path / "sw" / "sweep.json").read_text())["config"]["extractor"] == "digits"
    out = _fails("sweep", "gan.pth", "--data", data, "--extractor", "nosuch", "--out-dir", "sw2", *flags)
    assert "nosuch" in out and "digits" in out and not (tmp_path / "sw2").exists()


def test_wrong_d_arch_names_the_module_and_what_is_wrong(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"netG": nets.MLPGenerator().state_dict(), "netD": nets.MLPDiscriminator().state_dict()}, "gan.pth")
    g = ["--arch", "custom_nets:MLPGenerator"]
    out = _fails("inspect", "gan.pth", *g, "--d-arch", "custom_nets:NoSuchD")
    assert "--d-arch custom_nets:NoSuchD" in out and "module custom_nets has no attribute NoSuchD" in out
    out = _fails("inspect", "gan.pth", *g, "--d-arch", "custom_nets:MLPDiscriminator", "--d-arch-kwargs", '{"hidden": 8}')
    assert "custom_nets:MLPDiscriminator" in out and "wrong shape" in out and "net.1.weight" in out
    out = _fails("inspect", "gan.pth", *g, "--d-arch", "custom_nets:MLPDiscriminator", "--d-arch-kwargs",
                 '{"d_output": "scores"}')
    assert "--d-arch custom_nets:MLPDiscriminator" in out and "d_output must be 'logits' or 'probs'" in out


def test_sweep_with_the_discriminator_in_its_own_file(tmp_path: Path, monkeypatch) -> None:
    """A generator-only (legacy-serialised) file, its D given with --discriminator/--d-arch: distill-adv
    trains against it in every cell."""
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    torch.save(nets.MLPGenerator(image_size=16).state_dict(), "g.pth", _use_new_zipfile_serialization=False)
    torch.save(nets.MLPDiscriminator(image_size=16).state_dict(), "d.pth")
    data = _images(tmp_path / "real", 8, 16, 1)
    args = ["sweep", "g.pth", "--data", data, "--sparsity", "0.5", "--steps", "2", "--batch-size", "4",
            "--method", "distill-adv",
            "--num-samples", "12", "--extractor", "digits", "--device", "cpu", "--arch", "custom_nets:MLPGenerator",
            "--arch-kwargs", '{"image_size": 16}']
    out = _fails(*args, "--out-dir", "none")
    assert "--discriminator" in out and not (tmp_path / "none" / "cells").exists()
    out = _fails(*args, "--discriminator", "g.pth", "--d-arch", "custom_nets:MLPDiscriminator", "--out-dir", "bad")
    assert "--discriminator g.pth" in out and "custom_nets:MLPDiscriminator" in out and not (tmp_path / "bad" / "cells").exists()
    d = ["--discriminator", "d.pth", "--d-arch", "custom_nets:MLPDiscriminator", "--d-arch-kwargs", '{"image_size": 16}']
    doc = json.loads(_run(*args, *d, "--out-dir", "sw", "--json"))
    assert doc["ran"] == 1 and doc["cells"][0]["method"] == "distill-adv" and doc["cells"][0]["fid"] is not None
    log = (tmp_path / "sw" / "cells" / "s50-element-distill-adv-seed0" / "model.safetensors")
    from gancompress.loading import LoadOptions, load_bundle

    tuned = load_bundle(str(log), LoadOptions(arch="custom_nets:MLPGenerator", d_arch="custom_nets:MLPDiscriminator"))
    assert tuned.d_spec.kwargs["target"] == "custom_nets:MLPDiscriminator" and tuned.meta["finetune"]["method"] == "distill-adv"
