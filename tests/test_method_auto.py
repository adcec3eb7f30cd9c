"""The default method, auto: hybrid when a discriminator and real images are at hand, distill otherwise.

The zoo (docs/zoo.md) found hybrid the best recipe by mean and worst case, but it needs a discriminator and data;
auto is chosen per run once the inputs are known, says which it took, and every record names the method that ran.
"""
from __future__ import annotations

import json

import pytest

from gancompress.errors import InputError
from gancompress.finetune import FinetuneInterrupted, run_finetune
from gancompress.finetune.defaults import DEFAULT_METHOD
from gancompress.finetune.methods import get_method, names, resolve_method
from gancompress.sweep import SweepConfig, sweep
from test_finetune import config, make_project

pytestmark = pytest.mark.usefixtures("one_thread")


def test_auto_is_the_default_and_picks_hybrid_only_with_both_inputs():
    assert DEFAULT_METHOD == "auto"
    picks = {(d, x): resolve_method("auto", has_discriminator=d, has_data=x)[0] for d in (True, False) for x in (True, False)}
    assert picks == {(True, True): "hybrid", (True, False): "distill", (False, True): "distill", (False, False): "distill"}
    assert "no discriminator and no --data" in resolve_method("auto", has_discriminator=False, has_data=False)[1]
    for name in names():  # every other method is itself, with no note
        if name != "auto":
            assert resolve_method(name, has_discriminator=True, has_data=True) == (name, None)
    with pytest.raises(InputError, match="unknown method"):
        resolve_method("hybird", has_discriminator=True, has_data=True)


def test_auto_promises_no_more_than_its_candidates():
    """Checked before the inputs are loaded: what auto claims must hold for whichever it picks."""
    auto = get_method("auto")
    for candidate in ("hybrid", "distill"):
        m = get_method(candidate)
        assert m.trains_generator and m.uses_teacher and m.stays_at_teacher
    assert auto.trains_generator and auto.uses_teacher and auto.stays_at_teacher
    assert not auto.uses_d  # so neither --data nor a discriminator is demanded up front


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("auto"))


@pytest.fixture(scope="module")
def no_d(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("auto_no_d"), with_d=False)


def test_finetune_takes_hybrid_with_a_discriminator_and_data(project, tmp_path):
    run = run_finetune(config(project, method="auto", output=tmp_path / "o.safetensors"))
    assert run.method == "hybrid"
    assert run.notes[0] == "--method auto chose hybrid (a discriminator and real images are at hand)"
    log = [json.loads(line) for line in run.log.read_text().splitlines()]
    assert any("L_GC" in row for row in log)  # the consistency terms really ran


@pytest.mark.parametrize("case", ["no --data", "no discriminator"])
def test_finetune_falls_back_to_distill_and_says_why(project, no_d, tmp_path, case):
    p, data = (project, None) if case == "no --data" else (no_d, str(no_d["images"]))
    run = run_finetune(config(p, method="auto", data=data, output=tmp_path / "o.safetensors"))
    assert run.method == "distill" and f"({case}: hybrid needs both)" in run.notes[0]


def test_a_discriminator_file_counts(no_d, project, tmp_path):
    run = run_finetune(config(no_d, method="auto", teacher=str(no_d["dense"]), discriminator=str(project["dense"]),
                              output=tmp_path / "o.safetensors"))
    assert run.method == "hybrid"


def test_an_interrupted_auto_run_resumes_under_either_spelling(project, tmp_path):
    kw = dict(method="auto", steps=4, output=tmp_path / "part.safetensors")
    done = []

    def on_event(event):
        done.append(event.done)

    with pytest.raises(FinetuneInterrupted):
        run_finetune(config(project, **kw), on_event=on_event, should_stop=lambda: bool(done) and done[-1] == 2)
    resumed = run_finetune(config(project, resume=True, **{**kw, "method": "hybrid"}))  # what auto chose
    assert resumed.method == "hybrid" and resumed.steps == 4


def test_sweep_names_the_chosen_method_and_runs_it_once(project, tmp_path):
    base = dict(source=str(project["dense"]), sparsities=(0.5,), granularities=("element",), steps=2, batch_size=8,
                num_samples=32, device="cpu", grid_columns=2)
    events = []
    result = sweep(SweepConfig.from_options(out_dir=tmp_path / "s", methods=("auto", "distill"), **base),
                   on_event=lambda e: events.append(e.info))
    assert [c["method"] for c in result.cells] == ["distill"]  # no --data: auto is distill, run once
    assert {"event": "note", "note": "--method auto chose distill (no --data: hybrid needs both)"} in events
    with_data = sweep(SweepConfig.from_options(out_dir=tmp_path / "t", methods=("auto",), data=str(project["images"]),
                                               **base))
    assert [c["method"] for c in with_data.cells] == ["hybrid"]
    assert json.loads((tmp_path / "t" / "sweep.json").read_text())["config"]["methods"] == ["hybrid"]


def test_d_trains_at_the_methods_own_rate_unless_lr_d_is_given(tmp_path):
    """hybrid's D rate is 10x below every other method's (the zoo's pick); auto that picks hybrid takes it
    too; --lr-d sets D's rate for any method. Read back from the optimiser's rate in the run's log."""
    from gancompress.finetune.defaults import DEFAULT_LR_D, DEFAULT_LR_D_HYBRID

    assert DEFAULT_LR_D_HYBRID == pytest.approx(DEFAULT_LR_D / 10)
    p = make_project(tmp_path)

    def rate(name: str, **kw) -> float:
        out = tmp_path / f"{name}-{len(kw)}.safetensors"
        run_finetune(config(p, method=name, steps=2, log_every=1, output=out, **kw))
        rows = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
        return {r["lr_d"] for r in rows if "lr_d" in r}.pop()

    assert rate("hybrid") == pytest.approx(DEFAULT_LR_D_HYBRID)
    assert rate("auto") == pytest.approx(DEFAULT_LR_D_HYBRID)  # auto chose hybrid: a D and --data are at hand
    assert rate("distill-adv") == pytest.approx(DEFAULT_LR_D)
    assert rate("hybrid", lr_d=1e-3) == rate("distill-adv", lr_d=1e-3) == pytest.approx(1e-3)
    with pytest.raises(InputError, match="--lr-d must be a positive number"):
        config(p, lr_d=0.0)


def test_each_method_runs_at_its_own_batch_unless_batch_size_is_given(tmp_path, monkeypatch):
    """hybrid's batch is twice every other method's (the zoo's pick); auto that picks hybrid takes it too;
    --batch-size sets the batch for any method. Read back from the sampler that feeds each step."""
    from gancompress.data.batches import Sampler
    from gancompress.finetune.defaults import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE_HYBRID

    assert DEFAULT_BATCH_SIZE_HYBRID == 2 * DEFAULT_BATCH_SIZE
    p = make_project(tmp_path, images=DEFAULT_BATCH_SIZE_HYBRID + 3)  # more images than either batch: no cap
    sizes: list[int] = []
    draw = Sampler.draw

    def counted(self, step, device):
        sizes.append(self.size)
        return draw(self, step, device)

    monkeypatch.setattr(Sampler, "draw", counted)

    def batch(name: str, given: int | None = None) -> set[int]:
        sizes.clear()
        run_finetune(config(p, method=name, steps=1, batch_size=given, output=tmp_path / f"{name}-{given}.safetensors"))
        return set(sizes)

    assert batch("hybrid") == {DEFAULT_BATCH_SIZE_HYBRID}
    assert batch("auto") == {DEFAULT_BATCH_SIZE_HYBRID}  # auto chose hybrid: a D and --data are at hand
    assert batch("distill") == batch("distill-adv") == {DEFAULT_BATCH_SIZE}
    assert batch("hybrid", 8) == batch("distill", 8) == {8}
    with pytest.raises(InputError, match="--batch-size must be a positive integer"):
        config(p, batch_size=0)


def test_the_sweep_record_names_the_batch_each_method_ran_at(project, tmp_path):
    """batch_size None in sweep.json means "each method's own"; batch_size_by_method spells it out."""
    from gancompress.finetune.defaults import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE_HYBRID

    base = dict(source=str(project["dense"]), out_dir=tmp_path / "s", data=str(project["images"]), sparsities=(0.5,),
                granularities=("element",), methods=("hybrid", "distill"), steps=2, num_samples=32, device="cpu")
    own = SweepConfig.from_options(**base).record()
    assert own["batch_size"] is None
    assert own["batch_size_by_method"] == {"hybrid": DEFAULT_BATCH_SIZE_HYBRID, "distill": DEFAULT_BATCH_SIZE}
    given = SweepConfig.from_options(**base, batch_size=16).record()
    assert given["batch_size_by_method"] == {"hybrid": 16, "distill": 16}


def test_a_run_resumes_when_the_batch_and_d_rate_it_ran_at_are_the_same_however_spelled(project, tmp_path):
    """An interrupted run given its method's own batch (or D rate) explicitly resumes without it, and the
    other way round: the resume compares the values the run trains at; another value is still refused."""
    from gancompress.finetune.defaults import DEFAULT_BATCH_SIZE, DEFAULT_LR_D_HYBRID

    out = tmp_path / "part.safetensors"
    done = []

    def interrupted(**kw):
        done.clear()
        with pytest.raises(FinetuneInterrupted):
            run_finetune(config(project, steps=4, output=out, force=True, **kw), on_event=lambda e: done.append(e.done),
                         should_stop=lambda: bool(done) and done[-1] == 2)

    interrupted(method="distill", batch_size=DEFAULT_BATCH_SIZE)
    assert run_finetune(config(project, method="distill", batch_size=None, steps=4, output=out, resume=True)).steps == 4
    interrupted(method="hybrid", lr_d=DEFAULT_LR_D_HYBRID)
    assert run_finetune(config(project, method="hybrid", steps=4, output=out, resume=True)).steps == 4
    interrupted(method="distill", batch_size=None)
    with pytest.raises(InputError, match=rf"batch_size: {DEFAULT_BATCH_SIZE} -> 16"):
        run_finetune(config(project, method="distill", batch_size=16, steps=4, output=out, resume=True))


def test_a_state_saved_with_the_methods_own_batch_as_none_reads_as_this_methods_own(project):
    """States saved before the resume key named the values (batch None: "the method's own") still resume."""
    from gancompress.finetune.defaults import DEFAULT_BATCH_SIZE_HYBRID

    hybrid = config(project, method="hybrid", batch_size=None)
    saved = hybrid.resume_key()
    saved["recovery"]["batch_size"] = None
    saved["recovery"]["rates"]["lr_d"] = None
    assert hybrid.resolve_saved_key(saved) == hybrid.resume_key()
    assert hybrid.resume_key()["recovery"]["batch_size"] == DEFAULT_BATCH_SIZE_HYBRID
    other = config(project, method="distill", batch_size=None)  # another method: its difference is reported as it is
    assert other.resolve_saved_key(saved) == saved


def test_a_sweep_resumes_at_the_values_each_method_ran_at_however_spelled(project, tmp_path):
    """sweep.json's <key>_by_method decide: an explicit --batch-size equal to hybrid's own resumes without it;
    a record from before the per-method batch (one number for every method) resumes only the methods it fits;
    a record made when hybrid's own D rate was another is refused, not mixed."""
    from gancompress.finetune.defaults import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE_HYBRID, DEFAULT_LR_D_HYBRID
    from gancompress.sweep import STATE_FILE, _load_state

    base = dict(source=str(project["dense"]), data=str(project["images"]), sparsities=(0.5,), granularities=("element",),
                steps=2, num_samples=32, device="cpu")

    def record(out, **kw) -> None:
        out.mkdir()
        rec = SweepConfig.from_options(out_dir=out, **{**base, **kw}).record()
        (out / STATE_FILE).write_text(json.dumps({"config": rec, "dense": None, "cells": {}}))

    def load(out, **kw) -> dict:
        return _load_state(SweepConfig.from_options(out_dir=out, **{**base, **kw}))["config"]

    record(tmp_path / "given", methods=("hybrid",), batch_size=DEFAULT_BATCH_SIZE_HYBRID, lr_d=DEFAULT_LR_D_HYBRID)
    assert load(tmp_path / "given", methods=("hybrid",))["batch_size_by_method"] == {"hybrid": DEFAULT_BATCH_SIZE_HYBRID}
    with pytest.raises(InputError, match=rf"batch_size: {{'hybrid': {DEFAULT_BATCH_SIZE_HYBRID}}} -> {{'hybrid': 32}}"):
        load(tmp_path / "given", methods=("hybrid",), batch_size=32)

    record(tmp_path / "before", methods=("hybrid", "distill"), batch_size=DEFAULT_BATCH_SIZE)
    path = tmp_path / "before" / STATE_FILE
    doc = json.loads(path.read_text())
    del doc["config"]["batch_size_by_method"]  # written before sweeps recorded it: 64 for every method
    path.write_text(json.dumps(doc))
    assert load(tmp_path / "before", methods=("distill",))["batch_size_by_method"] == {"hybrid": DEFAULT_BATCH_SIZE,
                                                                                       "distill": DEFAULT_BATCH_SIZE}
    with pytest.raises(InputError, match="batch_size: "):
        load(tmp_path / "before", methods=("hybrid",))  # hybrid's own is 128 now: those cells ran at 64

    record(tmp_path / "older-d", methods=("hybrid",))
    path = tmp_path / "older-d" / STATE_FILE
    doc = json.loads(path.read_text())
    doc["config"]["lr_d_by_method"] = {"hybrid": 2e-4}  # hybrid's own D rate when that sweep ran
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="lr_d: "):
        load(tmp_path / "older-d", methods=("hybrid",))
