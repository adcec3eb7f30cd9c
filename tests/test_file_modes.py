"""Every file a run writes (checkpoints, the resume state, logs, grids, TensorBoard events, reports,
plots, statistics, sweep and demo folders) gets the permissions of a normal file under the umask:
under umask 027 that is 0640, neither a temp file's 0600 nor a fixed 0644."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gancompress.demo import DemoConfig, run_demo
from gancompress.finetune import FinetuneInterrupted, run_finetune
from hostile_files import cli
from test_finetune import _stop_after, config, make_project

pytestmark = pytest.mark.usefixtures("one_thread")


def _modes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


def test_every_written_file_follows_the_umask(tmp_path):
    project = make_project(tmp_path / "in")  # inputs, made before the umask changes
    out = tmp_path / "out"
    out.mkdir()
    old = os.umask(0o027)
    try:
        with pytest.raises(FinetuneInterrupted):  # leaves the resume state, the log, grids and events
            run_finetune(config(project, output=out / "ft.safetensors", steps=3, sample_every=1, save_every=1,
                                tensorboard=out / "tb"), *_stop_after(2))
        src, dense = str(project["pruned"]), str(project["dense"])
        runs = [["evaluate", src, "--reference", dense, "-n", "8", "--out", out / "report.json", "--markdown",
                 out / "report.md", "--samples", out / "grid.png"],
                ["evaluate", dense, "-n", "8", "--data", project["images"], "--save-stats", out / "real.npz", "--fid"],
                ["sensitivity", dense, "-s", "0.5", "-n", "4", "-o", out / "plan.json", "--plot", out / "plan.png"],
                ["sweep", dense, "--method", "distill", "-s", "0.5", "--steps", "1", "--num-samples", "16",
                 "--out-dir", out / "sweep", "--device", "cpu"]]
        for args in runs:
            result = cli(*args, "-q")
            assert result.exit_code == 0, (args[0], result.output)
        run_demo(DemoConfig.from_options(out_dir=out / "demo", steps=2, num_samples=32, device="cpu"))
    finally:
        os.umask(old)
    modes = _modes(out)
    expected = {"ft.safetensors", "ft.resume.pt", "ft.log.jsonl", "ft_samples/step_000001.png", "report.json",
                "report.md", "grid.png", "real.npz", "plan.json", "plan.png", "sweep/results.md", "sweep/sweep.json",
                "sweep/fid_vs_sparsity.png", "demo/recovered.sparse.safetensors", "demo/demo.json", "demo/samples.png"}
    assert expected <= set(modes), sorted(expected - set(modes))
    assert any(name.startswith("tb/events.out.tfevents") for name in modes)
    wrong = {name: oct(mode) for name, mode in modes.items() if mode != 0o640}
    assert not wrong, wrong
