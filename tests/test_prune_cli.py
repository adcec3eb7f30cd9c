"""`gancompress prune`: files, metadata, masks, exit codes, nothing written on bad input."""
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from gancompress.archs.dcgan import DCGANDiscriminator, DCGANGenerator
from gancompress.cli.main import app
from gancompress.loading import load_bundle

runner = CliRunner()


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "dc.pt"
    torch.save({"netG": DCGANGenerator([16, 32, 16, 8, 3]).state_dict(),
                "netD": DCGANDiscriminator([3, 8, 16, 32, 1]).state_dict()}, path)
    return path


def test_prune_writes_project_checkpoint(ckpt, tmp_path):
    out = tmp_path / "p.safetensors"
    r = runner.invoke(app, ["prune", str(ckpt), "--sparsity", "0.75", "--granularity", "block", "--block", "2x4", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().splitlines()[-1] == str(out)
    bundle = load_bundle(str(out))
    dense = load_bundle(str(ckpt))
    assert set(bundle.masks) == {"main.3.weight", "main.6.weight"}  # first and last stay dense
    for key, mask in bundle.masks.items():
        weight = bundle.generator.get_parameter(key)
        assert torch.all(weight[~mask] == 0)
        assert abs(1 - mask.float().mean().item() - 0.75) < 0.02
        kept = weight[mask]
        assert torch.equal(kept, dense.generator.get_parameter(key)[mask])  # kept weights untouched
    assert torch.equal(bundle.generator.main[0].weight, dense.generator.main[0].weight)
    pruning = bundle.meta["pruning"]
    assert pruning["granularity"] == "block" and pruning["block"] == [2, 4] and pruning["source"] == str(ckpt.resolve())
    assert bundle.discriminator is not None
    sd_d, sd_dense = bundle.discriminator.state_dict(), dense.discriminator.state_dict()
    assert all(torch.equal(sd_d[k], sd_dense[k]) for k in sd_d)  # D unchanged
    r = runner.invoke(app, ["inspect", str(out), "--json"])
    layers = {row["name"]: row for row in json.loads(r.stdout)["generator"]["layers"]}
    assert layers["main.3"]["structure"].startswith("block")


def test_reprune_keeps_old_zeros_and_teacher(ckpt, tmp_path):
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert runner.invoke(app, ["prune", str(ckpt), "-s", "0.5", "-o", str(first)]).exit_code == 0
    r = runner.invoke(app, ["prune", str(first), "-s", "0.8", "-o", str(second), "--json"])
    assert r.exit_code == 0, r.output
    a, b = load_bundle(str(first)), load_bundle(str(second))
    for key in a.masks:
        assert not torch.any(b.masks[key] & ~a.masks[key])  # nothing resurrected
    assert b.meta["pruning"]["source"] == str(ckpt.resolve())  # still the dense teacher
    report = json.loads(r.stdout)
    assert report["output"] == str(second) and abs(report["sparsity"]["pruned"] - 0.8) < 0.01


def test_default_output_name_and_no_overwrite(ckpt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["prune", str(ckpt), "-s", "0.9", "-g", "filter"])
    assert r.exit_code == 0, r.output
    expected = tmp_path / "dc.filter90.safetensors"
    assert expected.exists()
    before = expected.read_bytes()
    r = runner.invoke(app, ["prune", str(ckpt), "-s", "0.9", "-g", "filter", "--scope", "global"])
    assert r.exit_code == 2 and "--force" in r.output
    assert expected.read_bytes() == before
    r = runner.invoke(app, ["prune", str(expected), "-s", "0.95", "-o", str(expected), "--force"])
    assert r.exit_code == 2 and "overwrite the input" in r.output


@pytest.mark.parametrize("args,needle", [
    (["-s", "1.0"], "[0, 1)"), (["-s", "-0.1"], "[0, 1)"), (["-s", "abc"], "valid number"),
    (["-s", "0.5", "-g", "foo"], "unknown granularity"), (["-g", "nm", "--nm", "3:2"], "N:M"),
    (["-g", "block", "--block", "4x0", "-s", "0.5"], "4x0"), (["-g", "block", "--block", "64x64", "-s", "0.5"], "larger than layer"),
    (["-s", "0.5", "--exclude", "main.*"], "no layer left"), (["-g", "nm", "-s", "0.9"], "conflicts"),
    (["-s", "0.5", "--scope", "world"], "scope"),
])
def test_bad_input_exit_2_nothing_written(ckpt, tmp_path, args, needle):
    out = tmp_path / "never.safetensors"
    r = runner.invoke(app, ["prune", str(ckpt), *args, "-o", str(out)])
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output
    assert not out.exists() and not list(tmp_path.glob(".never*"))


def test_reprune_below_the_existing_masks_says_so_and_names_what_is_there(ckpt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["prune", str(ckpt), "-s", "0.9", "-g", "block", "-q"])
    assert r.exit_code == 0, r.stderr
    first = tmp_path / "dc.block90.safetensors"
    assert r.stdout == f"{first}\n"
    r = runner.invoke(app, ["prune", str(first), "-s", "0.5"])  # element 50% asked of a 90% block file
    assert r.exit_code == 0, r.stderr
    assert "already zero 90.0% of the pruned layers" in r.stderr and "nothing more was pruned" in r.stderr
    assert r.stdout == f"{first}\n" and "already is the result, nothing written" in r.stderr  # named after what is there
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dc.block90.safetensors", "dc.pt"]
    copy = tmp_path / "copy.safetensors"  # under another name, the unchanged masks are written as they were
    r = runner.invoke(app, ["prune", str(first), "-s", "0.5", "-o", str(copy)])
    assert r.exit_code == 0 and "nothing more was pruned" in r.stderr
    a, b = load_bundle(str(first)), load_bundle(str(copy))
    assert all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks)
    assert b.meta["pruning"]["granularity"] == "block" and b.meta["pruning"]["sparsity"] == 0.9
    renamed = tmp_path / "model.safetensors"
    first.rename(renamed)
    r = runner.invoke(app, ["prune", str(renamed), "-s", "0.5", "-q"])
    assert r.exit_code == 0 and r.stdout == f"{tmp_path / 'model.block90.safetensors'}\n"  # not model.element50


def test_reprune_to_a_higher_target_replaces_the_tag(ckpt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["prune", str(ckpt), "-s", "0.5", "-q"]).exit_code == 0
    r = runner.invoke(app, ["prune", "dc.element50.safetensors", "-s", "0.75", "-q"])
    assert r.exit_code == 0 and r.stdout.strip().endswith("dc.element75.safetensors"), r.stdout
    assert "nothing more was pruned" not in r.stderr


def test_missing_sparsity_says_the_option_is_required(ckpt, tmp_path):
    r = runner.invoke(app, ["prune", str(ckpt), "-o", str(tmp_path / "never.safetensors")])
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "--sparsity is required" in lines[0] and "None" not in lines[0]
    assert not (tmp_path / "never.safetensors").exists()
    r = runner.invoke(app, ["prune", str(ckpt), "-g", "nm", "-o", str(tmp_path / "nm.safetensors")])
    assert r.exit_code == 0, r.stderr  # N:M implies its sparsity


def test_dry_run_writes_nothing(ckpt, tmp_path):
    out = tmp_path / "d.safetensors"
    r = runner.invoke(app, ["prune", str(ckpt), "-s", "0.5", "-g", "kernel", "--dry-run", "-o", str(out)])
    assert r.exit_code == 0 and "dry run" in r.output and "main.3" in r.output
    assert not out.exists()


def test_nm_implied_sparsity(ckpt, tmp_path):
    out = tmp_path / "nm.safetensors"
    assert runner.invoke(app, ["prune", str(ckpt), "-g", "nm", "-o", str(out)]).exit_code == 0
    bundle = load_bundle(str(out))
    w = bundle.masks["main.3.weight"].transpose(0, 1).reshape(16, -1)  # ConvTranspose: (out, in*k*k) view
    assert torch.all(w.view(16, -1, 4).sum(-1) == 2)
