"""StyleGAN2 truncation centre: the checkpoint's stored latent_avg, kept through our own files,
or (without one) the mapping's mean over seeded latents, and evaluate saying which."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import gancompress
from gancompress.archs.stylegan2 import CHECKPOINT_W_AVG, ESTIMATED_W_AVG, W_AVG_SAMPLES
from gancompress.cli.main import app
from gancompress.loading import load_bundle
from stylegan2_fixtures import reference_file
from test_metrics import register_tiny

register_tiny()
FAST = ["--extractor", "tiny", "--real", "builtin:digits", "-n", "8", "--batch-size", "8", "--device", "cpu", "-q"]
STORED = torch.linspace(-1.0, 1.0, 16)  # nothing like the mapping's mean: a test can tell them apart


def _reference_file(path: Path, latent_avg: torch.Tensor | None) -> str:
    return reference_file(path, latent_avg=latent_avg)


def cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (args, result.stderr)
    return result


def _psi0_image(g: torch.nn.Module) -> torch.Tensor:
    """At psi 0 every z gives the image of the centre itself."""
    g.set_truncation(0.0)
    with torch.no_grad():
        out = g(torch.randn(3, 16, generator=torch.Generator().manual_seed(1)))
    g.set_truncation(1.0)
    return out


def test_stored_latent_avg_is_the_truncation_centre(tmp_path):
    bundle = load_bundle(_reference_file(tmp_path / "sg2.pt", STORED))
    g = bundle.generator
    assert bundle.g_spec.kwargs["latent_avg"] is True and torch.equal(g.latent_avg, STORED)
    assert g.set_truncation(0.7) == CHECKPOINT_W_AVG
    flat = _psi0_image(g)
    with torch.no_grad():
        expected = g.synthesis(STORED.expand(3, -1))
    assert torch.allclose(flat, expected, atol=1e-6)


def test_without_latent_avg_the_mean_of_seeded_latents(tmp_path):
    g = load_bundle(_reference_file(tmp_path / "sg2.pt", None)).generator
    assert "latent_avg" not in g.state_dict()  # nothing invented is written to our files
    assert g.set_truncation(0.5) == ESTIMATED_W_AVG and str(W_AVG_SAMPLES // 1000) in ESTIMATED_W_AVG
    z = torch.randn(W_AVG_SAMPLES, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(g.latent_avg, g.style(z).mean(0), atol=1e-6)
    again = load_bundle(_reference_file(tmp_path / "sg2b.pt", None)).generator
    again.set_truncation(0.5)
    assert torch.equal(again.latent_avg, g.latent_avg)  # seeded: the same estimate every time


@pytest.mark.parametrize("bad", [torch.zeros(15), torch.full((16,), float("nan")), torch.zeros(16, dtype=torch.int64)])
def test_an_unusable_latent_avg_is_not_taken(tmp_path, bad):
    g = load_bundle(_reference_file(tmp_path / "sg2.pt", bad)).generator
    assert "latent_avg" not in g.state_dict() and g.set_truncation(0.5) == ESTIMATED_W_AVG


def test_latent_avg_survives_prune_finetune_export_and_load(tmp_path):
    source = _reference_file(tmp_path / "sg2.pt", STORED)
    pruned, tuned = tmp_path / "p.safetensors", tmp_path / "t.safetensors"
    cli("prune", source, "-s", "0.5", "-g", "filter", "-o", str(pruned), "-q")
    cli("finetune", str(pruned), "--method", "distill", "--steps", "1", "--batch-size", "2", "-o", str(tuned),
        "--device", "cpu", "-q", "--sample-every", "0", "--log-every", "0")
    files = [pruned, tuned]
    for fmt in ("sparse", "shrunk"):
        files.append(tmp_path / f"{fmt}.safetensors")
        cli("export", str(tuned), "--format", fmt, "-o", str(files[-1]), "-q")
    for path in files:
        g = gancompress.load(path)
        assert torch.equal(g.latent_avg.float(), STORED), path.name
        assert g.set_truncation(0.5) == CHECKPOINT_W_AVG, path.name


def test_evaluate_says_where_the_centre_came_from(tmp_path):
    stored = _reference_file(tmp_path / "stored.pt", STORED)
    plain = _reference_file(tmp_path / "plain.pt", None)
    doc = json.loads(cli("evaluate", stored, plain, "--label", "stored", "--label", "plain", "--truncation", "0.5",
                         "--json", *FAST).stdout)
    assert doc["settings"]["truncation_w_avg"] == {"stored": CHECKPOINT_W_AVG, "plain": ESTIMATED_W_AVG}
    text = cli("evaluate", stored, "--truncation", "0.5", *FAST).stdout
    assert "w_avg is the checkpoint's latent_avg" in text
    assert json.loads(cli("evaluate", stored, "--json", *FAST).stdout)["settings"]["truncation_w_avg"] is None


def test_inspect_says_where_the_centre_would_come_from(tmp_path):
    stored = json.loads(cli("inspect", _reference_file(tmp_path / "s.pt", STORED), "--json").stdout)
    plain = json.loads(cli("inspect", _reference_file(tmp_path / "p.pt", None), "--json").stdout)
    assert stored["generator"]["truncation_w_avg"] == CHECKPOINT_W_AVG
    assert plain["generator"]["truncation_w_avg"] == ESTIMATED_W_AVG
    assert "--truncation pulls w toward the checkpoint's latent_avg" in cli("inspect", str(tmp_path / "s.pt")).stdout


def test_a_non_finite_stored_centre_is_refused():
    """Our files' digest already refuses an edited latent_avg; a state dict built elsewhere still cannot
    turn every truncated sample into NaN."""
    from gancompress.archs.stylegan2 import StyleGAN2Generator
    from gancompress.errors import InputError
    from gancompress.generation import set_truncation

    g = StyleGAN2Generator(32, 16, 2, channels=[16, 12, 8, 6], latent_avg=True)
    g.load_state_dict({**g.state_dict(), "latent_avg": torch.full((16,), float("nan"))})
    with pytest.raises(InputError, match="NaN or Inf"):
        set_truncation(g, 0.5, "x.safetensors")
    set_truncation(g, 1.0)  # no truncation: the centre is not used
