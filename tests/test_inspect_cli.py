"""`gancompress inspect`: tables, JSON, structure detection, MACs, exit codes."""
import json

import torch
from typer.testing import CliRunner

from gancompress.archs.dcgan import DCGANDiscriminator, DCGANGenerator
from gancompress.cli.main import app

runner = CliRunner()


def _ckpt(tmp_path):
    torch.manual_seed(0)
    g, d = DCGANGenerator([16, 32, 16, 8, 3]), DCGANDiscriminator([3, 8, 16, 32, 1])
    with torch.no_grad():
        g.main[3].weight[:, ::2] = 0          # ConvTranspose2d: output channels are dim 1 -> filter pruning
        w = g.main[6].weight.view(16, 8, 16)  # 2:4 along the flattened inputs
        w[..., 0:2] = 0
        w[..., 4:6] = 0
        w[..., 8:10] = 0
        w[..., 12:14] = 0
    path = tmp_path / "dcgan.pt"
    torch.save({"netG": g.state_dict(), "netD": d.state_dict()}, path)
    return path


def test_inspect_json(tmp_path):
    path = _ckpt(tmp_path)
    r = runner.invoke(app, ["inspect", str(path), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    g = report["generator"]
    assert g["architecture"] == "dcgan-g" and report["has_discriminator"]
    layers = {row["name"]: row for row in g["layers"]}
    assert layers["main.3"]["structure"] == "filter"
    assert layers["main.3"]["zeros_pct"] == 50.0
    assert layers["main.0"]["structure"] == "none"
    # dense MACs of the four transposed convs: in*out*k*k*H_in*W_in
    assert g["macs_per_sample"] == 16 * 32 * 16 + 32 * 16 * 16 * 16 + 16 * 8 * 16 * 64 + 8 * 3 * 16 * 256
    assert g["parameters"] == sum(p.numel() for p in DCGANGenerator([16, 32, 16, 8, 3]).parameters())
    assert g["nonzeros"] < g["parameters"]
    assert report["file_size"] == path.stat().st_size
    assert report["discriminator"]["architecture"] == "dcgan-d"
    assert report["discriminator"]["macs_per_sample"] > 0


def test_inspect_table(tmp_path):
    r = runner.invoke(app, ["inspect", str(_ckpt(tmp_path))])
    assert r.exit_code == 0, r.output
    assert "generator: dcgan-g" in r.output and "main.3" in r.output and "filter" in r.output


def test_inspect_errors(tmp_path):
    r = runner.invoke(app, ["inspect", str(tmp_path / "missing.pt")])
    assert r.exit_code == 2 and "error:" in r.output and "no such file" in r.output
    r = runner.invoke(app, ["inspect"])
    assert r.exit_code == 2


def test_help_and_version():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("inspect", "prune", "finetune", "evaluate", "export"):
        assert cmd in r.output
    for cmd in ("inspect", "prune", "finetune", "evaluate", "export"):
        r = runner.invoke(app, [cmd, "--help"])
        assert r.exit_code == 0 and "Example:" in r.output, (cmd, r.output)
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("gancompress ")
