"""One meaning of ``--sparsity`` in prune, finetune, sweep and demo: the fraction of ALL prunable
weights that are zero afterwards, with the same keep-dense policy."""
from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from gancompress.cli.main import app
from gancompress.finetune import FinetuneConfig, run_finetune
from gancompress.loading import load_bundle
from gancompress.prune import achieved_sparsity, apply_masks, compute_masks, plan_target
from gancompress.recipe import setting_prune_config

SOURCE = "builtin:digits-dcgan"


@pytest.mark.parametrize("sparsity,granularity", [(0.9, "element"), (0.7, "filter"), (0.5, "nm")])
@pytest.mark.parametrize("importance", [None, "magnitude"])
def test_the_same_sparsity_gives_the_same_zeros_in_every_command(tmp_path, sparsity, granularity, importance):
    """With the same ranking, prune, finetune and sweep/demo zero the same weights. ``None``: the recovery
    commands' default ranking, which ``prune`` (magnitude by default) is given explicitly."""
    from gancompress.finetune.defaults import DEFAULT_IMPORTANCE

    ranking = importance or DEFAULT_IMPORTANCE
    pruned = tmp_path / "p.safetensors"
    r = CliRunner().invoke(app, ["prune", SOURCE, "-s", str(sparsity), "-g", granularity, "--importance", ranking,
                                 "-o", str(pruned), "-q"])
    assert r.exit_code == 0, r.output
    by_prune = load_bundle(str(pruned))
    given = {} if importance is None else {"importance": importance}
    one_shot = run_finetune(FinetuneConfig.from_options(source=SOURCE, output=tmp_path / "f.safetensors", method="none",
                                           sparsity=sparsity, granularity=granularity, device="cpu", log_every=0,
                                           sample_every=0, save_every=0, **given))
    by_finetune = load_bundle(str(one_shot.output))
    dense = load_bundle(SOURCE)
    setting = setting_prune_config(sparsity, granularity, **given)  # what sweep and demo prune with
    masks = compute_masks(dense.generator, setting)
    apply_masks(dense.generator, masks)
    overall = [achieved_sparsity(b.generator, b.masks)["all"] for b in (by_prune, by_finetune)]
    overall.append(achieved_sparsity(dense.generator, masks)["all"])
    assert overall[0] == overall[1] == overall[2]
    assert abs(overall[0] - sparsity) < 0.005
    assert set(by_prune.masks) == set(by_finetune.masks) == set(masks)
    assert all(torch.equal(by_prune.masks[k], masks[k]) for k in masks)


def test_the_default_policy_keeps_the_tiny_output_layer_dense_and_says_why():
    dense = load_bundle(SOURCE)
    plan = plan_target(dense.generator, setting_prune_config(0.9))
    assert list(plan.dense) == ["net.9"] and "feeds the output" in plan.dense["net.9"]
    assert plan.target == round(0.9 * plan.total)
