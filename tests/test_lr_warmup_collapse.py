"""lr_g warm-up (``--lr-warmup``) and the end-of-run check for a collapsed generator (a dead tanh)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from gancompress.errors import InputError
from gancompress.finetune import run_finetune
from gancompress.finetune.config import Rates
from gancompress.finetune.guard import collapse
from gancompress.finetune.trainer import lr_factor
from gancompress.formats.checkpoint import GanBundle, save_bundle
from gancompress.loading import load_bundle
from gancompress.finetune.defaults import DEFAULT_LR_WARMUP
from gancompress.sweep import BEFORE_KEYS, SweepConfig

from test_finetune import config, make_project


def test_warmup_scales_the_first_steps_linearly_then_the_schedule_takes_over():
    assert [lr_factor("constant", d, 10, 0, 4) for d in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [lr_factor("cosine", d, 10, 5, 2) for d in range(3)] == [0.5, 1.0, 1.0]
    assert lr_factor("cosine", 7, 10, 5, 4) == lr_factor("cosine", 7, 10, 5)  # after the warm-up: unchanged
    assert lr_factor("cosine", 1, 10, 0, 4) == pytest.approx(0.5 * lr_factor("cosine", 1, 10, 0))  # both at once


@pytest.mark.parametrize("value", [-1, 1.5])
def test_a_bad_warmup_is_refused(value):
    with pytest.raises(InputError, match="--lr-warmup must be a non-negative integer"):
        Rates(lr_warmup=value)


def test_the_warmup_reaches_the_optimizer(tmp_path):
    p = make_project(tmp_path)
    run_finetune(config(p, method="distill", lr_g=1e-3, lr_warmup=4, lr_schedule="constant", steps=3, log_every=1))
    rates = [r["lr_g"] for r in map(json.loads, (tmp_path / "out.log.jsonl").read_text().splitlines()) if "lr_g" in r]
    assert rates == pytest.approx([2.5e-4, 5e-4, 7.5e-4])


def test_collapse_compares_the_spread_across_inputs_with_the_teachers():
    alive = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
    dead = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
    with torch.no_grad():
        dead[0].weight.zero_()
        dead[0].bias.fill_(-50.0)
    probe = torch.randn(4, 4)
    assert collapse(alive, alive, probe) is None
    mine, teacher = collapse(dead, alive, probe)
    assert mine == 0.0 and teacher > 0.05
    assert collapse(dead, alive, probe[:1]) is None  # one input has no spread to compare


def test_a_run_that_ends_with_a_dead_generator_says_so(tmp_path):
    p = make_project(tmp_path)
    healthy = run_finetune(config(p, method="distill", steps=2, lr_g=1e-6))
    assert not any("collapsed" in n for n in healthy.notes)
    bundle = load_bundle(str(p["dense"]))
    with torch.no_grad():
        bundle.generator.net[9].bias.fill_(-100.0)  # tanh(-100): the same black image for every latent
    dead = save_bundle(GanBundle(bundle.generator, bundle.g_spec, bundle.discriminator, bundle.d_spec), tmp_path / "dead.safetensors")
    result = run_finetune(config(p, source=str(dead), teacher=str(p["dense"]), method="distill", steps=2, lr_g=1e-6,
                                 output=tmp_path / "dead-out.safetensors", force=True))
    note = next(n for n in result.notes if "collapsed" in n)
    assert "--lr-warmup" in note


def test_sweep_records_the_warmup_and_an_old_record_resumes_without_one(tmp_path):
    cfg = SweepConfig.from_options(source="builtin:digits-dcgan", out_dir=tmp_path, sparsities=[0.5], lr_warmup=20)
    assert cfg.recovery.rates.lr_warmup == 20 and cfg.record()["lr_warmup"] == 20
    default = SweepConfig.from_options(source="builtin:digits-dcgan", out_dir=tmp_path, sparsities=[0.5])
    assert default.record()["lr_warmup"] == DEFAULT_LR_WARMUP == 10  # the zoo's choice (docs/zoo.md)
    assert BEFORE_KEYS["lr_warmup"] == 0  # a record from before the setting ran without a warm-up
