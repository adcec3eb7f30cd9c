"""A user's own generator and discriminator through every command (docs/custom_networks.md).

Each case: a checkpoint of networks from tests/custom_nets.py, then inspect -> prune -> finetune (the
default method, a few steps) -> evaluate (--samples) -> export sparse/shrunk/onnx -> load, with only
the flags the contract documents.
"""
from __future__ import annotations

import json
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


# (G factory, G kwargs, D factory, D kwargs, image size, channels, input images needed, extractor check)
CASES = {
    "sequential-dcgan28": ("dcgan28", {"input_shape": [16, 1, 1]}, "dcgan28_d", {"d_output": "probs"}, 28, 1, False),
    "mlp": ("MLPGenerator", {}, "MLPDiscriminator", {}, 8, 1, False),
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
    data = _images(tmp_path / "real", 8, size, channels)
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

    x = torch.randn(2, *gen.input_shape) if not needs_inputs and g != "SRGenerator" else torch.rand(2, *gen.input_shape)
    reference = gancompress.load(tuned, arch=f"custom_nets:{g}", d_arch=f"custom_nets:{d}")
    with torch.no_grad():
        want = reference(x)
    assert want.shape[1:] == (channels, size, size)
    for fmt in ("sparse", "shrunk", "onnx"):
        name = "g.onnx" if fmt == "onnx" else f"g.{fmt}.safetensors"
        out = _run("export", tuned, "--format", fmt, "-o", tmp_path / name, *flags)
        if fmt == "onnx":
            import onnxruntime as ort

            session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        else:
            with torch.no_grad():
                got = gancompress.load(out, arch=f"custom_nets:{g}")(x)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4), fmt


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
    missing = runner.invoke(app, ["finetune", pruned, "--data", str(data), "--steps", "1", *g_flags])
    assert missing.exit_code == 2 and "--discriminator" in missing.output and "--d-arch" in missing.output
    tuned = _run("finetune", pruned, "--data", data, "--discriminator", tmp_path / "netD.pth", "--steps", "2",
                 "--batch-size", "4", "--sample-every", "0", "-o", tmp_path / "f.safetensors", *g_flags, *d_flags)
    from gancompress.loading import LoadOptions, load_bundle

    bundle = load_bundle(tuned, LoadOptions(arch="custom_nets:dcgan28", d_arch="custom_nets:dcgan28_d"))
    assert bundle.d_spec.kwargs["target"] == "custom_nets:dcgan28_d" and bundle.discriminator.d_output == "probs"
    assert bundle.meta["finetune"]["loss"] == "ns"
    _run("evaluate", tuned, "--samples", tmp_path / "grid.png", *g_flags, *d_flags)
    out = _run("export", tuned, "--format", "shrunk", "-o", tmp_path / "g.safetensors", *g_flags, *d_flags)
    assert gancompress.load(out)(torch.randn(3, 16, 1, 1)).shape == (3, 1, 28, 28)


def _fails(*args: str) -> str:
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and "Traceback" not in r.output
    return r.output


def test_wrong_arch_names_the_module_and_what_is_wrong(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "g.pth"
    torch.save(nets.MLPGenerator().state_dict(), ckpt)
    assert "no module named no_such_nets" in _fails("inspect", ckpt, "--arch", "no_such_nets:G")
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


def test_missing_contract_attribute_is_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "g.pth"
    torch.save(nets.dcgan28().state_dict(), ckpt)
    out = _fails("export", ckpt, "--format", "shrunk", "--arch", "custom_nets:dcgan28", "-o", tmp_path / "x.safetensors")
    assert "input_shape" in out and "--arch-kwargs" in out
    out = _fails("inspect", ckpt, "--arch", "custom_nets:dcgan28", "--arch-kwargs", '{"output_range": [0, 255]}')
    assert "output_range must be (-1, 1) or (0, 1)" in out
    assert not (tmp_path / "x.safetensors").exists()


def test_exception_in_user_forward_is_the_users_code_failing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "g.pth"
    torch.save(nets.Broken().state_dict(), ckpt)
    out = _fails("export", ckpt, "--format", "onnx", "--arch", "custom_nets:Broken", "-o", tmp_path / "b.onnx")
    assert "your code custom_nets:Broken (custom_nets.py:" in out and "deliberate failure in the user's forward" in out
