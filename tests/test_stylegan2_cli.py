"""StyleGAN2 through the CLI on the tiny parity model: evaluate with --truncation."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from gancompress.cli.main import app
from test_metrics import register_tiny

register_tiny()
FIXTURE = Path(__file__).parent / "fixtures" / "stylegan2_parity.safetensors"
FAST = ["--extractor", "tiny", "--real", "builtin:digits", "-n", "16", "--batch-size", "8", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def tiny_sg2(tmp_path_factory) -> str:
    """The parity fixture's networks as a reference-layout checkpoint {g_ema, d, latent_avg}."""
    t = load_file(str(FIXTURE))
    g = {k[len("g_ema."):]: v for k, v in t.items() if k.startswith("g_ema.")}
    d = {k[len("d."):]: v for k, v in t.items() if k.startswith("d.")}
    path = tmp_path_factory.mktemp("sg2") / "tiny-stylegan2.pt"
    torch.save({"g_ema": g, "d": d, "latent_avg": torch.zeros(16)}, path)
    return str(path)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GANCOMPRESS_CACHE", str(tmp_path_factory.getbasetemp() / "sg2-cache"))


def evaluate(*args: str):
    return CliRunner().invoke(app, ["evaluate", *args])


def _last_two_cells(png: Path, cell: int = 64, pad: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The two right-most samples of the first grid row (32 px images shown at scale 2)."""
    image = np.asarray(Image.open(png).convert("RGB"))
    right = image.shape[1] - pad
    last = image[pad:pad + cell, right - cell:right]
    return last, image[pad:pad + cell, right - 2 * cell - pad:right - cell - pad]


def test_evaluate_samples_and_fid_at_the_stated_truncation(tiny_sg2, tmp_path):
    full = evaluate(tiny_sg2, "--fid", "--json", "--samples", str(tmp_path / "full.png"), *FAST)
    assert full.exit_code == 0, full.stderr
    cut = evaluate(tiny_sg2, "--fid", "--json", "--truncation", "0", "--samples", str(tmp_path / "cut.png"), *FAST)
    assert cut.exit_code == 0, cut.stderr
    a, b = json.loads(full.stdout), json.loads(cut.stdout)
    assert a["settings"]["truncation"] == 1.0 and b["settings"]["truncation"] == 0.0
    assert a["rows"][0]["fid"] != b["rows"][0]["fid"]
    x, y = _last_two_cells(tmp_path / "full.png")
    assert np.abs(x.astype(int) - y).max() > 10  # different z, different images
    x, y = _last_two_cells(tmp_path / "cut.png")
    assert np.array_equal(x, y)  # psi 0: every sample is w_avg's image (same stored noise)


@pytest.mark.parametrize("psi", ["1.5", "-0.1"])
def test_truncation_out_of_range_is_one_line_usage_error(tiny_sg2, psi):
    result = evaluate(tiny_sg2, "--truncation", psi, *FAST)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "psi must be in [0, 1]" in result.stderr


def test_truncation_on_a_generator_without_mapping_network():
    result = evaluate("builtin:digits-dcgan", "--truncation", "0.7", *FAST)
    assert result.exit_code == 2 and "mapping network" in result.stderr


def cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (args, result.stderr)
    return result


def test_whole_chain_inspect_prune_finetune_evaluate_export_load(tiny_sg2, tmp_path):
    """Filter pruning at 50%, recovery with distill-adv against the checkpoint's D, then
    sparse (exact) and shrunk (thinner, equal to the masked generator) exports that load back."""
    import gancompress

    doc = json.loads(cli("inspect", tiny_sg2, "--json").stdout)
    assert doc["generator"]["architecture"] == "stylegan2-g" and doc["discriminator"]["architecture"] == "stylegan2-d"
    assert doc["generator"]["input_shape"] == [16] and doc["generator"]["output_shape"] == [3, 32, 32]
    pruned, tuned = tmp_path / "p.safetensors", tmp_path / "t.safetensors"
    cli("prune", tiny_sg2, "-s", "0.5", "-g", "filter", "-o", str(pruned), "-q")
    cli("finetune", str(pruned), "--data", "builtin:digits", "--steps", "2", "--batch-size", "4", "-o", str(tuned),
        "--method", "distill-adv", "--device", "cpu", "-q")
    report = json.loads(cli("evaluate", str(tuned), "--fid", "--json", "--samples", str(tmp_path / "g.png"), *FAST).stdout)
    assert report["rows"][0]["fid"] > 0 and (tmp_path / "g.png").is_file()
    masked = gancompress.load(tuned)
    z = torch.randn(6, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = masked(z)
        for fmt in ("sparse", "shrunk"):
            out = tmp_path / f"{fmt}.safetensors"
            cli("export", str(tuned), "--format", fmt, "-o", str(out), "-q")
            loaded = gancompress.load(out)
            assert (loaded(z) - expected).abs().max() < 1e-4, fmt
    thin = gancompress.load(tmp_path / "shrunk.safetensors")
    # -s 0.5 is half of all prunable weights (ToRGB and mapping stay dense): every styled conv loses at least half
    assert 0 < thin.conv1.conv.weight.shape[1] <= 8 and 0 < thin.convs[5].conv.weight.shape[1] <= 3
    assert sum(p.numel() for p in thin.parameters()) < 0.5 * sum(p.numel() for p in masked.parameters())


def test_mapping_and_torgb_prune_with_include_and_the_shrunk_export_stays_exact(tiny_sg2, tmp_path):
    """Dense by default, prunable by --include: filter pruning of the mapping network and every
    modulated conv (ToRGB included); the shrunk export still equals the masked generator."""
    import gancompress
    from gancompress.loading import load_bundle

    pruned, thin = tmp_path / "p.safetensors", tmp_path / "s.safetensors"
    for args in (["prune", tiny_sg2, "-s", "0.3", "-g", "filter", "--include", "*.conv", "--include", "style.*",
                  "--keep-dense", "none", "-o", str(pruned), "-q"],
                 ["export", str(pruned), "--format", "shrunk", "-o", str(thin), "-q"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.stderr
    masks = load_bundle(str(pruned)).masks
    for key in ("style.1.weight", "style.2.weight", "to_rgb1.conv.weight", "to_rgbs.2.conv.weight"):
        assert not masks[key].all(), key  # pruned where --include names them
    masked, small = gancompress.load(pruned), gancompress.load(thin)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (masked(z) - small(z)).abs().max() < 1e-4
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in masked.parameters())


def test_a_per_conv_plan_removes_that_share_of_every_conv_filters(tiny_sg2, tmp_path):
    """README: -s counts the dense mapping/affines/ToRGB; a plan of 0.5 per styled conv halves every width."""
    import gancompress

    names = ["conv1.conv"] + [f"convs.{i}.conv" for i in range(6)]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"format": "gancompress-sparsity-plan", "version": 1, "layers": {n: 0.5 for n in names}}))
    pruned, thin = tmp_path / "p.safetensors", tmp_path / "s.safetensors"
    for args in (["prune", tiny_sg2, "-g", "filter", "--plan", str(plan), "-o", str(pruned), "-q"],
                 ["export", str(pruned), "--format", "shrunk", "-o", str(thin), "-q"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.stderr
    g = gancompress.load(thin)
    assert [c.conv.weight.shape[1] for c in (g.conv1, *g.convs)] == [8, 6, 6, 4, 4, 3, 3]  # of 16, 12, 12, 8, 8, 6, 6
