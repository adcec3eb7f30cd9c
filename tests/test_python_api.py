"""The Python API on modules (gancompress.prune/recover/evaluate/save/export/load), the README's example
included, and each network of tests/custom_nets.py through it."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import custom_nets as nets
import gancompress
from gancompress.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def test_readme_python_api_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "example.py").write_text(code)
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("FID ") and (tmp_path / "generator.safetensors").is_file()


def test_options_are_checked_like_the_cli() -> None:
    g = nets.MLPGenerator()
    with pytest.raises(InputError, match="sparsity"):
        gancompress.prune(g, sparsity=1.5)
    with pytest.raises(InputError, match="unknown granularity 'elemnt'.*element"):
        gancompress.prune(g, sparsity=0.5, granularity="elemnt")
    with pytest.raises(TypeError):
        gancompress.prune(g, 0.5)  # keyword-only, like every option
    with pytest.raises(InputError, match="must be a torch.nn.Module"):
        gancompress.prune("g.pth", sparsity=0.5)
    with pytest.raises(InputError, match="method"):
        gancompress.recover(g, teacher=g, method="nope", steps=1)
    with pytest.raises(InputError, match="input_shape"):
        gancompress.export(nets.dcgan28(), "x.onnx", format="onnx")


def _labelled(n: int, size: int, channels: int, classes: int | None = None):
    torch.manual_seed(1)
    images = torch.rand(n, channels, size, size) * 2 - 1
    if classes is None:
        return images
    return torch.utils.data.TensorDataset(images, torch.arange(n) % classes)


# name: (generator, discriminator, real data, inputs, packed conditional input)
CASES = {
    "sequential-dcgan28": (lambda: _with(nets.dcgan28(), input_shape=(16, 1, 1)),
                           lambda: _with(nets.dcgan28_d(), d_output="probs"), (8, 28, 1), False),
    "mlp": (nets.MLPGenerator, nets.MLPDiscriminator, (8, 8, 1), False),
    "class-conditional": (nets.CondGenerator, nets.CondDiscriminator, (9, 16, 1), False),
    "sr-pixelshuffle-01": (nets.SRGenerator, nets.PatchD, (8, 16, 3), False),
    "encoder-decoder": (nets.EncoderDecoder, nets.PatchD, (8, 16, 3), True),
}


def _with(module: torch.nn.Module, **attributes) -> torch.nn.Module:
    for k, v in attributes.items():
        setattr(module, k, v)
    return module


@pytest.mark.parametrize("case", list(CASES))
def test_chain_through_the_python_api(case: str, tmp_path: Path) -> None:
    make_g, make_d, (n, size, channels), needs_inputs = CASES[case]
    torch.manual_seed(0)
    dense, critic = make_g(), make_d()
    classes = getattr(dense, "num_classes", None)
    data = _labelled(n, size, channels, classes)
    if isinstance(data, torch.Tensor) and getattr(dense, "output_range", (-1, 1)) == (0, 1):
        data = (data + 1) / 2
    inputs = _labelled(n, size, channels) if needs_inputs else None
    pruned = gancompress.prune(dense, sparsity=0.5, prune_first_last=True)
    assert sum(int((p == 0).sum()) for p in pruned.parameters()) > 0
    recovered = gancompress.recover(pruned, teacher=dense, discriminator=critic, data=data, inputs=inputs,
                                    steps=2, batch_size=4)
    from gancompress.prune import current_masks

    masks = current_masks(pruned)
    assert masks and all(bool((recovered.get_parameter(k)[~m] == 0).all()) for k, m in masks.items())  # stay zero
    assert any(not torch.equal(p, q) for p, q in zip(pruned.parameters(), recovered.parameters()))
    report = gancompress.evaluate(recovered, reference=dense, samples=tmp_path / "grid.png")
    assert report["rows"][0]["nonzeros"] < report["rows"][1]["nonzeros"] and (tmp_path / "grid.png").is_file()
    arch, arch_kwargs = ((f"custom_nets:{type(dense).__name__}", None) if case != "sequential-dcgan28" else
                         ("custom_nets:dcgan28", {"input_shape": [16, 1, 1]}))  # a factory + the contract's attribute
    _exports_load_back(recovered, tmp_path, arch, arch_kwargs)
    saved = gancompress.save(recovered, tmp_path / "model.safetensors", discriminator=critic,
                             arch=f"custom_nets:{type(dense).__name__}", d_arch=f"custom_nets:{type(critic).__name__}")
    assert saved.is_file()


def _exports_load_back(model: torch.nn.Module, tmp_path: Path, arch: str, arch_kwargs: dict | None = None) -> None:
    """export sparse/shrunk/onnx -> load(): each computes what ``model`` does on the same inputs (and labels),
    and sample(n, seed=) of a noise generator gives the same images. The sparse file records ``arch_kwargs``
    (a bare Sequential's factory gets its ``input_shape`` from them), so load() needs only ``arch``."""
    from gancompress.api import with_sampling

    args = nets.example_inputs(model)
    with torch.no_grad():
        want = model.eval()(*args)
    reference = with_sampling(model, None)
    for fmt in ("sparse", "shrunk", "onnx"):
        out = tmp_path / ("g.onnx" if fmt == "onnx" else f"g.{fmt}.safetensors")
        gancompress.export(model, out, format=fmt, arch=arch, arch_kwargs=arch_kwargs)
        loaded = gancompress.load(out, **({"arch": arch} if fmt == "sparse" else {}))
        with torch.no_grad():
            got = loaded(*args)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5), fmt
        if loaded.input_kind == "noise":
            assert torch.allclose(loaded.sample(3, seed=2), reference.sample(3, seed=2), atol=1e-5), fmt


def test_legacy_serialised_checkpoint_through_the_api(tmp_path: Path) -> None:
    """A pre-1.6 (legacy-serialised) file: load -> prune -> recover (distill-adv, with a D of the user's) ->
    evaluate -> export -> load."""
    torch.manual_seed(0)
    g = nets.MLPGenerator()
    torch.save(g.state_dict(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    loaded = gancompress.load(tmp_path / "legacy.pth", arch="custom_nets:MLPGenerator")
    z = torch.randn(3, 16)
    with torch.no_grad():
        assert torch.equal(loaded(z), g(z).reshape(3, 1, 8, 8))
    pruned = gancompress.prune(loaded, sparsity=0.75, prune_first_last=True)
    recovered = gancompress.recover(pruned, teacher=loaded, discriminator=nets.MLPDiscriminator(), data=_labelled(8, 8, 1),
                                    method="distill-adv", steps=2, batch_size=4)
    assert any(not torch.equal(p, q) for p, q in zip(pruned.parameters(), recovered.parameters()))
    report = gancompress.evaluate(recovered, reference=loaded, samples=tmp_path / "grid.png")
    assert report["rows"][0]["psnr"] > 0 and (tmp_path / "grid.png").is_file()
    _exports_load_back(recovered, tmp_path, "custom_nets:MLPGenerator")
