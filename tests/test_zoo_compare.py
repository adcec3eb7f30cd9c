"""benchmarks/zoo_compare.py: settings side by side per zoo cell, each seed against its own dense control, and the
per-member mean / worst over the cells every setting ran."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(sparsity: float, method: str, seed: int, fid: float, granularity: str = "element") -> dict:
    return {"granularity": granularity, "sparsity": sparsity, "method": method, "seed": seed,
            "achieved_sparsity": sparsity, "seconds": 1.0, "fid": fid}


def _write(folder: Path, cells: list[dict], teacher: float = 5.0) -> Path:
    zoo = _module("zoo")
    run = {"member": "narrow", "dense": {"fid": teacher}, "metric": "fid", "cells": cells}
    folder.mkdir(parents=True)
    (folder / "zoo.json").write_text(json.dumps({"members": [run], "rows": zoo.rows(run)}))
    return folder


def test_compare_puts_settings_side_by_side_and_summarises_the_shared_cells(tmp_path, capsys):
    compare = _module("zoo_compare")
    a = _write(tmp_path / "a", [_cell(0.0, "distill", 0, 5.0), _cell(0.0, "distill", 1, 5.0),
                                _cell(0.9, "distill", 0, 7.5), _cell(0.9, "distill", 1, 6.0),
                                _cell(0.5, "distill", 0, 100.0, "filter")])
    b = _write(tmp_path / "b", [_cell(0.0, "distill", 0, 5.0), _cell(0.9, "distill", 0, 8.0), _cell(0.9, "distill", 1, 7.0)])
    assert compare.main([f"none={a}", f"ten={b}", "--method", "distill"]) == 0
    out = capsys.readouterr().out
    assert "| narrow | element 90% | distill | 1.50 / 1.20 (mean 1.35, worst 1.50) | 1.60 / 1.40t (mean 1.50, worst 1.60) |" in out
    assert "| narrow | filter 50% | distill | 20.00 (seed 0) | not run |" in out
    # only the 90% cell is shared; b's seed 1 has no control run, and the teacher stands in for distill's
    assert "| narrow | 1 | 1.35 / 1.50 | 1.50 / 1.60 |" in out


def test_the_teacher_stands_in_for_a_missing_distill_control_only(tmp_path, capsys):
    compare = _module("zoo_compare")
    b = _write(tmp_path / "b", [_cell(0.9, "distill", 0, 8.0), _cell(0.9, "distill-adv", 0, 6.0)])
    assert compare.main([f"ten={b}"]) == 0
    out = capsys.readouterr().out
    assert "| narrow | element 90% | distill | 1.60t (seed 0) |" in out
    assert "| narrow | element 90% | distill-adv | no usable control |" in out  # another method's control is never assumed


def test_compare_needs_each_folders_report(tmp_path):
    compare = _module("zoo_compare")
    with pytest.raises(SystemExit, match="--report-only"):
        compare.main([f"x={tmp_path}"])
    with pytest.raises(SystemExit):
        compare.main(["no-label-here"])
