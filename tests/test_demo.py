"""`gancompress demo` end to end on the bundled GAN, with a tiny budget."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gancompress.demo import DemoConfig, fresh_dir, run_demo
from gancompress.errors import InputError


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    return run_demo(DemoConfig.from_options(out_dir=out, steps=40, num_samples=400, device="cpu"))


def test_demo_writes_every_file(demo_result):
    for key in ("pruned", "recovered", "export", "samples", "report"):
        assert Path(demo_result.files[key]).is_file(), key
    doc = json.loads(Path(demo_result.files["report"]).read_text())
    # the default method, auto, picks hybrid for the bundled GAN (it has its discriminator, the demo its digits) and says so
    assert [r["label"] for r in doc["rows"]] == ["dense", "pruned, no recovery", "pruned + hybrid"]
    assert doc["settings"]["method"] == "hybrid" and "auto chose hybrid" in doc["settings"]["method_choice"]


def test_demo_table_rows_and_recovery_helps(demo_result):
    dense, pruned, recovered = demo_result.rows
    assert dense.label == "dense" and dense.sparsity == 0 and dense.psnr is None
    # 90% of ALL conv weights are zero (the 288-weight output layer stays dense)
    assert abs(pruned.sparsity - 0.9) < 0.002 and abs(recovered.sparsity - 0.9) < 0.002
    assert abs(recovered.nonzeros - pruned.nonzeros) <= 0.01 * pruned.nonzeros and pruned.nonzeros < dense.nonzeros / 5
    assert recovered.fid < pruned.fid  # the whole point
    assert recovered.psnr > pruned.psnr
    assert recovered.file_bytes < dense.file_bytes / 2  # the sparse export


def test_demo_export_loads_and_matches_the_recovered_checkpoint(demo_result):
    import torch

    import gancompress
    from gancompress.loading import load_bundle

    g = gancompress.load(demo_result.files["export"]).eval()
    ref = load_bundle(demo_result.files["recovered"]).generator.eval()
    z = torch.randn(4, 32, 1, 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(g(z), ref(z), atol=1e-5)


def test_demo_prunes_exactly_as_prune_does_with_the_same_sparsity(demo_result, tmp_path):
    """``demo`` and ``prune -s 0.9`` (the demo's default sparsity) with the recipe's ranking zero the same weights."""
    from typer.testing import CliRunner

    from gancompress.cli.main import app
    from gancompress.loading import load_bundle

    out = tmp_path / "p.safetensors"
    from gancompress.finetune.defaults import DEFAULT_IMPORTANCE

    r = CliRunner().invoke(app, ["prune", "builtin:digits-dcgan", "-s", "0.9", "--importance", DEFAULT_IMPORTANCE,
                                 "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    by_prune, by_demo = load_bundle(str(out)).masks, load_bundle(demo_result.files["pruned"]).masks
    assert set(by_prune) == set(by_demo) and all(torch.equal(by_prune[k], by_demo[k]) for k in by_prune)


def test_fresh_dir_never_reuses_a_non_empty_folder(tmp_path):
    base = tmp_path / "gancompress-demo"
    assert fresh_dir(base) == base  # created
    assert fresh_dir(base) == base  # still empty: reused
    (base / "x").write_text("keep me")
    second = fresh_dir(base)
    assert second == tmp_path / "gancompress-demo-2" and second.is_dir()
    (second / "y").write_text("")
    assert fresh_dir(base) == tmp_path / "gancompress-demo-3"
    assert (base / "x").read_text() == "keep me"


def test_demo_rejects_bad_options(tmp_path):
    with pytest.raises(InputError):
        DemoConfig(out_dir=tmp_path, sparsity=1.5)
    with pytest.raises(InputError):
        DemoConfig(out_dir=tmp_path, method="none")
    with pytest.raises(InputError):
        DemoConfig(out_dir=tmp_path, steps=0)
    with pytest.raises(InputError, match="importance"):
        DemoConfig(out_dir=tmp_path, importance="random")


def test_demo_cli_prints_the_folder_only_on_stdout(tmp_path):
    from typer.testing import CliRunner

    from gancompress.cli.main import app

    out = tmp_path / "cli-demo"
    result = CliRunner().invoke(app, ["demo", "--out-dir", str(out), "--steps", "3", "--device", "cpu",
                                      "--progress-interval", "0", "--workers", "0", "--importance", "magnitude"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out)
    stages = [line.split(" | ")[0] for line in result.stderr.splitlines() if line[:1].isdigit()]
    assert stages[:3] == ["1/5 inspect...", "1/5 inspect 0/1 (0%)", "1/5 inspect 1/1 (100%)"]  # no terminal: plain lines
    assert "3/5 finetune 3/3 (100%)" in stages and stages[-1] == "5/5 export 1/1 (100%)"
    assert "\x1b[" not in result.stderr
    assert (out / "samples.png").is_file() and (out / "recovered.sparse.safetensors").is_file()
    assert json.loads((out / "demo.json").read_text())["settings"]["importance"] == "magnitude"
    plain = tmp_path / "plain.safetensors"  # prune's own default ranking is magnitude: the same zeros
    assert CliRunner().invoke(app, ["prune", "builtin:digits-dcgan", "-s", "0.9", "-o", str(plain), "-q"]).exit_code == 0
    from gancompress.loading import load_bundle

    by_prune, by_demo = load_bundle(str(plain)).masks, load_bundle(str(out / "pruned.safetensors")).masks
    assert set(by_prune) == set(by_demo) and all(torch.equal(by_prune[k], by_demo[k]) for k in by_prune)
    bad = CliRunner().invoke(app, ["demo", "--out-dir", str(tmp_path / "b"), "--sparsity", "2"])
    assert bad.exit_code == 2
