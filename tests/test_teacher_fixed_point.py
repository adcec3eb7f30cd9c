"""A method whose every generator term is a difference to the teacher leaves an unpruned generator exactly as it is.

The zoo relies on it: for those methods the dense control is the teacher itself, so it is not run (``--no-controls``)
and the tables compare with the teacher (marked t). A method with the GAN's own loss (``adv``) must move instead.
"""
from __future__ import annotations

import pytest
import torch

from gancompress.finetune import run_finetune
from gancompress.finetune.methods import get_method, names
from test_finetune import config, make_project, tensors


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("fixed_point"))


def test_the_property_follows_the_terms():
    stays = {name for name in names() if get_method(name).stays_at_teacher}
    assert stays == {"auto", "distill", "hybrid", "self-supervised", "none"}  # auto: hybrid or distill


@pytest.mark.parametrize("method", names())
def test_the_unpruned_generator_moves_only_under_a_term_that_is_not_a_difference(project, tmp_path, method):
    run = run_finetune(config(project, source=str(project["dense"]), sparsity=0.0, method=method, steps=3,
                              output=tmp_path / "out.safetensors", lr_warmup=0))
    before, after = tensors(project["dense"], "G."), tensors(run.output, "G.")
    assert before.keys() == after.keys() and before
    unchanged = all(torch.equal(before[k], after[k]) for k in before)
    assert unchanged == get_method(method).stays_at_teacher
