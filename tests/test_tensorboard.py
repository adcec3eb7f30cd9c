"""--tensorboard DIR: the JSON-lines log's numbers and the sample grids as TensorBoard events, read back."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from gancompress.cli.main import app
from gancompress.finetune import RunPaths, run_finetune
from test_finetune import config, make_project, tensors

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def _events(folder: Path) -> tuple[dict[str, dict[int, float]], list[int]]:
    """{tag: {step: value}} of the scalars and the steps of the ``samples`` images in ``folder``."""
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    scalars: dict[str, dict[int, float]] = {}
    for tag in acc.Tags()["scalars"]:
        seen = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert len({s for s, _ in seen}) == len(seen), f"{tag}: a step twice"
        scalars[tag] = dict(seen)
    images = [e.step for e in acc.Images("samples")] if "samples" in acc.Tags()["images"] else []
    return scalars, images


def _from_log(log: Path) -> dict[str, dict[int, float]]:
    """The same shape from the JSON-lines log, each value as TensorBoard stores it (float32)."""
    expected: dict[str, dict[int, float]] = {}
    names = {"sparsity": "sparsity", "lr_g": "lr/g", "lr_d": "lr/d"}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record.get("event") == "start":
            continue
        for key, value in record.items():
            if key in ("step", "seconds"):
                continue
            tag = names.get(key, f"loss/{key}")
            expected.setdefault(tag, {})[record["step"]] = torch.tensor(value, dtype=torch.float32).item()
    return expected


def test_scalars_and_grids_match_the_log_and_change_nothing(project, tmp_path):
    board = tmp_path / "tb"
    kw = dict(source=str(project["dense"]), sparsity=0.5, steps=4, method="hybrid", log_every=1, sample_every=2,
              lr_schedule="cosine", lr_warmup=0)  # no warm-up: the cosine decay alone moves lr/g
    with_board = run_finetune(config(project, output=tmp_path / "a.safetensors", tensorboard=board, **kw))
    plain = run_finetune(config(project, output=tmp_path / "b.safetensors", **kw))
    a, b = tensors(with_board.output, ""), tensors(plain.output, "")
    assert all(torch.equal(a[k], b[k]) for k in a)  # writing events changes nothing learned

    scalars, images = _events(board)
    expected = _from_log(RunPaths.for_output(with_board.output).log)
    assert scalars == expected
    assert {"loss/L_GC", "loss/L_DC", "loss/d_loss", "lr/g", "lr/d", "sparsity"} <= set(scalars)
    assert scalars["lr/g"][1] > scalars["lr/g"][4]  # cosine: the rate each step really used
    assert images == [2, 4]


def test_a_resumed_run_replaces_the_steps_after_its_state(project, tmp_path):
    board = tmp_path / "tb"
    kw = dict(steps=5, method="hybrid", save_every=2, log_every=1, tensorboard=board)

    def crash(event):
        if event.done == 3:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        run_finetune(config(project, output=tmp_path / "part.safetensors", **kw), on_event=crash)
    assert set(_events(board)[0]["loss/g_loss"]) == {1, 2, 3}
    run_finetune(config(project, output=tmp_path / "part.safetensors", resume=True, **kw))
    scalars, _ = _events(board)
    assert scalars == _from_log(tmp_path / "part.log.jsonl")  # step 3 once, the resumed run's
    assert set(scalars["loss/g_loss"]) == {1, 2, 3, 4, 5}


def test_without_tensorboard_installed_one_line_before_any_work(project, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # ``import tensorboard`` now raises ImportError
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    board = project["out"].parent / "tb"
    result = CliRunner().invoke(app, ["finetune", str(project["pruned"]), "--data", str(project["images"]), "-o",
                                      str(project["out"]), "--steps", "2", "--device", "cpu", "--tensorboard", str(board)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --tensorboard needs the tensorboard package")
    assert "pip install 'gancompress[tensorboard]'" in lines[0]
    assert not project["out"].exists() and not board.exists() and not project["out"].with_suffix(".log.jsonl").exists()


def test_a_file_is_not_a_board_folder(project):
    result = CliRunner().invoke(app, ["finetune", str(project["pruned"]), "--data", str(project["images"]), "-o",
                                      str(project["out"]), "--steps", "2", "--device", "cpu", "--tensorboard",
                                      str(project["dense"])])
    assert result.exit_code == 2 and "is not a folder" in result.stderr and not project["out"].exists()
