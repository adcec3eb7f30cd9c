"""The zoo's training loop (examples/zoo/zoo_train.py): early stop on a plateau, best G/D restored, seeded runs repeat."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from gancompress.archs import ArchSpec
from gancompress.archs.digits import DigitsDiscriminator, DigitsGenerator

ZOO = Path(__file__).resolve().parents[1] / "examples" / "zoo"
sys.path.insert(0, str(ZOO))
import zoo_train  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _task(scores: list[float], seen: list[dict]) -> zoo_train.Task:
    """A task whose score follows ``scores`` and that remembers G's weights at every evaluation."""
    real = zoo_train.digits_real()
    calls = iter(scores)

    def score(g) -> float:
        seen.append({k: v.clone() for k, v in g.state_dict().items()})
        return next(calls)
    return zoo_train.Task(real=real, inputs=zoo_train.latents((8, 1, 1)), score=score)


def _nets():
    torch.manual_seed(0)
    return DigitsGenerator(8, 2, 1), DigitsDiscriminator(2, 1)


def test_stops_after_patience_evaluations_without_improvement_and_restores_the_best():
    g, d = _nets()
    seen: list[dict] = []
    cfg = zoo_train.LoopConfig(max_steps=100, batch=4, eval_every=2, patience=3, min_delta=0.05)
    # 10 -> 8 is better; 7.9 is not 5% better (no reset) but is kept as the best; two more stale evaluations stop it
    prov = zoo_train.train(g, d, _task([10.0, 8.0, 7.9, 9.0, 8.5, 1.0], seen), cfg, log=lambda line: None)
    assert prov["steps"] == 10 and prov["stopped_early"] and len(prov["curve"]) == 5
    assert prov["best_step"] == 6 and prov["best_score"] == 7.9
    assert [r["step"] for r in prov["curve"]] == [2, 4, 6, 8, 10]
    for key, value in g.state_dict().items():
        assert torch.equal(value, seen[2][key]), key
    assert not all(torch.equal(v, seen[-1][k]) for k, v in g.state_dict().items())


def test_runs_to_max_steps_while_improving_and_repeats_for_a_seed():
    results = []
    for _ in range(2):
        g, d = _nets()
        prov = zoo_train.train(g, d, _task([5.0, 4.0, 3.0], []), zoo_train.LoopConfig(max_steps=6, batch=4, eval_every=2),
                               log=lambda line: None)
        assert prov["steps"] == 6 and not prov["stopped_early"] and prov["best_step"] == 6
        results.append((g.state_dict(), d.state_dict()))
    for first, second in zip(*results):
        for key in first:
            assert torch.equal(first[key], second[key]), key


def test_hinge_and_non_saturating_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert zoo_train.d_loss("hinge", real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1.5) / 2)
    assert zoo_train.g_loss("hinge", fake).item() == pytest.approx(0.75)
    assert zoo_train.d_loss("ns", real, fake).item() == pytest.approx(
        (torch.nn.functional.softplus(-real).mean() + torch.nn.functional.softplus(fake).mean()).item())
    with pytest.raises(ValueError, match="loss"):
        zoo_train.LoopConfig(loss="wgan")


@pytest.mark.parametrize("g_name, g_kw, d_name, d_kw, x", [
    ("UpsampleGenerator", {"nz": 8, "ngf": 2}, "SNDiscriminator", {"ndf": 2}, (3, 8)),
    ("ConditionalGenerator", {"nz": 8, "ngf": 2, "num_classes": 10}, "ProjectionDiscriminator", {"ndf": 2, "num_classes": 10},
     (3, 9)),
    ("SRGenerator", {"nf": 4, "blocks": 1, "patch": 8}, "SRDiscriminator", {"ndf": 2}, (3, 3, 8, 8)),
])
def test_zoo_networks_round_trip_through_the_custom_network_contract(tmp_path, g_name, g_kw, d_name, d_kw, x):
    """A member saved as the scripts save it loads back with --arch/--d-arch and computes the same outputs."""
    import zoo_nets

    from gancompress.formats.checkpoint import GanBundle, save_bundle
    from gancompress.generation import generator_info
    from gancompress.loading import LoadOptions, load_bundle

    torch.manual_seed(0)
    g, d = getattr(zoo_nets, g_name)(**g_kw).eval(), getattr(zoo_nets, d_name)(**d_kw).eval()
    path = save_bundle(GanBundle(g, zoo_train.custom_spec(f"zoo_nets:{g_name}", g_kw), d,
                                 zoo_train.custom_spec(f"zoo_nets:{d_name}", d_kw, "discriminator")), tmp_path / "m.safetensors")
    bundle = load_bundle(LoadOptions(source=str(path), arch=f"zoo_nets:{g_name}", d_arch=f"zoo_nets:{d_name}"))
    inputs = torch.rand(*x)
    if "num_classes" in g_kw:
        inputs[:, -1] = torch.tensor([0.0, 3.0, 9.0])
        expected = g(inputs[:, :-1], inputs[:, -1].long())
    else:
        expected = g(inputs)
    with torch.no_grad():
        assert torch.allclose(bundle.generator(inputs), expected, atol=1e-6)
    info = generator_info(bundle)
    assert info.input_kind == ("image" if g_name == "SRGenerator" else "noise")
    assert info.num_classes == g_kw.get("num_classes")
    assert type(bundle.discriminator).__name__ == d_name


def test_continuing_scores_the_start_first_and_keeps_it_when_nothing_beats_it_by_min_delta():
    """The plateau check: step 0 is the checkpoint's own score, the best to beat; gains under min_delta are no gain."""
    g, d = _nets()
    start = {k: v.clone() for k, v in g.state_dict().items()}
    cfg = zoo_train.LoopConfig(max_steps=100, batch=4, eval_every=2, patience=3, min_delta=0.05)
    prov = zoo_train.train(g, d, _task([10.0, 9.8, 11.0, 10.5, 1.0], []), cfg, log=lambda line: None, baseline=True)
    assert [r["step"] for r in prov["curve"]] == [0, 2, 4, 6] and prov["stopped_early"] and prov["steps"] == 6
    verdict = zoo_train.plateau_verdict(prov)
    assert verdict["at_plateau"] and verdict["start_score"] == 10.0 and verdict["best_score"] == 9.8
    assert verdict["relative_gain"] == pytest.approx(0.02)
    g2, d2 = _nets()
    prov = zoo_train.train(g2, d2, _task([10.0, 12.0, 9.0, 11.0, 11.0, 11.0], []), cfg, log=lambda line: None,
                           baseline=True)
    verdict = zoo_train.plateau_verdict(prov)
    assert not verdict["at_plateau"] and verdict["best_step"] == 4 and verdict["relative_gain"] == pytest.approx(0.1)
    # nothing beat the start at all: G is the checkpoint continued from, bit for bit
    g3, d3 = _nets()
    prov = zoo_train.train(g3, d3, _task([10.0, 11.0, 12.0, 13.0], []), cfg, log=lambda line: None, baseline=True)
    assert prov["best_step"] == 0 and zoo_train.plateau_verdict(prov)["relative_gain"] == 0.0
    for key, value in g3.state_dict().items():
        assert torch.equal(value, start[key]), key


def test_the_digits_script_continues_a_saved_member_and_records_the_verdict(tmp_path, capsys):
    import json

    import train_digits_member as script

    from gancompress.formats.checkpoint import GanBundle, save_bundle

    torch.manual_seed(1)
    (g, g_spec), (d, d_spec) = (script.build(*script.MEMBERS["narrow-dcgan"][role], name)
                                for role, name in (("g", "generator"), ("d", "discriminator")))
    trained = {"best_step": 10, "curve": [{"step": 10, "score": 50.0}]}
    source = save_bundle(GanBundle(g.eval(), g_spec, d.eval(), d_spec, meta={"provenance": trained}),
                         tmp_path / "member.safetensors")
    out = tmp_path / "continued.safetensors"
    assert script.main(["--member", "narrow-dcgan", "--continue-from", str(source), "--max-steps", "4",
                        "--eval-every", "2", "--fid-samples", "64", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    record = json.loads((tmp_path / "continued.train.json").read_text())
    verdict = record["continued_from"]
    assert verdict["checkpoint"] == str(source) and record["curve"][0]["step"] == 0
    assert verdict["source_curve"] == [[10, 50.0]] and record["trained_steps"] == 10 + record["best_step"]
    assert ("at a plateau" if verdict["at_plateau"] else "NOT at a plateau") in said
    # step 0 scored the saved weights: they were loaded, not the script's fresh initialisation
    torch.manual_seed(0)
    fresh, _ = script.build(*script.MEMBERS["narrow-dcgan"]["g"], "generator")
    fid = zoo_train.DigitsFid(64)
    assert record["curve"][0]["score"] == pytest.approx(fid(g.eval()), abs=1e-3)
    assert record["curve"][0]["score"] != pytest.approx(fid(fresh.eval()), abs=1e-3)
    assert out.exists() and not (tmp_path / "member.safetensors").samefile(out)


def test_reduce_on_plateau_goes_back_to_the_best_with_smaller_learning_rates_then_stops(monkeypatch):
    g, d = _nets()
    seen: list[dict] = []
    made = []
    real_optimizers = zoo_train._optimizers

    def optimizers(g_, d_, cfg, scale=1.0):
        made.append((scale, {k: v.clone() for k, v in g_.state_dict().items()}))
        opt_g, opt_d = real_optimizers(g_, d_, cfg, scale)
        made[-1] += (opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"])
        return opt_g, opt_d
    monkeypatch.setattr(zoo_train, "_optimizers", optimizers)
    cfg = zoo_train.LoopConfig(max_steps=100, batch=4, eval_every=2, patience=2, min_delta=0.05, lr_decays=1,
                               r1_gamma=0.0, lr_g=1e-3, lr_d=4e-3)
    # 10 at step 2 is the best; two stale evaluations: back to it at half the rates; 8 is better; two stale: stop
    prov = zoo_train.train(g, d, _task([10.0, 11.0, 12.0, 8.0, 9.0, 9.5, 1.0], seen), cfg, log=lambda line: None)
    assert prov["steps"] == 12 and prov["stopped_early"] and prov["best_step"] == 8 and prov["best_score"] == 8.0
    assert [r["lr_scale"] for r in prov["curve"]] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    assert [m[0] for m in made] == [1.0, 0.5] and made[1][2:] == (5e-4, 2e-3)
    for key, value in made[1][1].items():  # the second optimizers were made on the best G (step 2), not the last
        assert torch.equal(value, seen[0][key]), key
    assert not all(torch.equal(v, seen[2][k]) for k, v in made[1][1].items())
    with pytest.raises(ValueError, match="lr_decay"):
        zoo_train.LoopConfig(lr_decay=1.0)


def test_source_curve_reads_either_trainers_record(tmp_path):
    from gancompress.formats.checkpoint import GanBundle, save_bundle

    g, d = _nets()
    spec, d_spec = ArchSpec("digits-dcgan-g", {"nz": 8, "ngf": 2, "nc": 1}), ArchSpec("digits-dcgan-d", {"ndf": 2, "nc": 1})

    def _read_back(path):  # the provenance, as the plateau check reads it with the weights
        return zoo_train.load_member(path, *_nets(), "digits-dcgan-g", "digits-dcgan-d")
    curve = [{"step": 2, "score": 9.0}, {"step": 4, "score": 7.5}]
    history = str([{"step": 500, "fid": 20.0}, {"step": 1000, "fid": 12.5}])  # the bundled trainer writes a repr
    for meta, points, best in (({"best_step": 4, "curve": curve}, [[2, 9.0], [4, 7.5]], 4),
                               ({"best_step": 1000, "fid_history": history}, [[500, 20.0], [1000, 12.5]], 1000)):
        path = save_bundle(GanBundle(g, spec, d, d_spec, meta={"provenance": meta}), tmp_path / f"m{best}.safetensors")
        assert zoo_train.source_curve(_read_back(path)) == {"source_curve": points, "source_best_step": best}
    assert zoo_train.source_curve(_read_back(save_bundle(GanBundle(g, spec, d, d_spec), tmp_path / "bare.safetensors"))) == {}


def test_the_plateau_check_refuses_a_wrong_or_missing_checkpoint_in_one_line(tmp_path, capsys):
    import train_digits_member as script

    from gancompress.formats.checkpoint import GanBundle, save_bundle

    (g, g_spec), (d, d_spec) = (script.build(*script.MEMBERS["narrow-dcgan"][role], name)
                                for role, name in (("g", "generator"), ("d", "discriminator")))
    narrow = save_bundle(GanBundle(g.eval(), g_spec, d.eval(), d_spec), tmp_path / "narrow.safetensors")
    no_d = save_bundle(GanBundle(g.eval(), g_spec), tmp_path / "no-d.safetensors")
    cases = [(["--member", "bundled", "--continue-from", str(narrow)], "not this member's"),
             # a member of another family: the loader's advice (--arch) is not this script's flag
             (["--member", "conditional", "--continue-from", str(narrow)], "pass the --member it was trained as"),
             (["--member", "narrow-dcgan", "--continue-from", str(no_d)], "holds no discriminator"),
             (["--member", "narrow-dcgan", "--continue-from", str(tmp_path / "none.safetensors")], "none.safetensors"),
             (["--member", "narrow-dcgan", "--lr-decay", "1.5"], "lr_decay in (0, 1)")]
    for argv, message in cases:
        out = tmp_path / "out.safetensors"
        code = zoo_train.cli(lambda: script.main(argv + ["--max-steps", "2", "--eval-every", "2", "--fid-samples", "64",
                                                          "--out", str(out)]))
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
        assert "--arch" not in err
        assert not out.exists()


def test_the_digits_script_help_lists_the_loop_options_with_the_members_defaults(capsys):
    import train_digits_member as script

    with pytest.raises(SystemExit) as ended:
        script.main(["--member", "upsample-sn", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ended.value.code == 0
    # upsample-sn trains with hinge and lr_g 1e-4, not LoopConfig's ns and 2e-4
    assert "--lr-decays" in text and "(default: hinge)" in text and "(default: 0.0001)" in text


def test_keep_zeros_trains_a_pruned_member_with_its_zeros_held(tmp_path):
    """The own-loop control: a pruned checkpoint continued with --keep-zeros keeps exactly its zeros, trains the rest."""
    import json

    import train_digits_member as script

    from gancompress.formats.checkpoint import GanBundle, save_bundle
    from gancompress.loading import load_bundle

    torch.manual_seed(2)
    (g, g_spec), (d, d_spec) = (script.build(*script.MEMBERS["narrow-dcgan"][role], name)
                                for role, name in (("g", "generator"), ("d", "discriminator")))
    with torch.no_grad():  # 90% of the first two layers' weights zero, by magnitude
        for layer in (g.net[0], g.net[3]):
            layer.weight.mul_(layer.weight.abs() >= layer.weight.abs().flatten().kthvalue(
                int(0.9 * layer.weight.numel())).values)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    source = save_bundle(GanBundle(g.eval(), g_spec, d.eval(), d_spec), tmp_path / "pruned.safetensors")
    out = tmp_path / "ceiling.safetensors"
    assert script.main(["--member", "narrow-dcgan", "--continue-from", str(source), "--keep-zeros", "--max-steps", "4",
                        "--eval-every", "2", "--patience", "9", "--fid-samples", "64", "--out", str(out)]) == 0
    after = load_bundle(str(out)).generator.state_dict()
    for key in ("net.0.weight", "net.3.weight"):
        zero = before[key] == 0
        assert 0.85 < zero.float().mean() < 0.95
        assert torch.equal(after[key] == 0, zero)  # the same zeros, no more, no fewer
        assert not torch.equal(after[key], before[key])  # and the kept weights trained
    assert set(after) == set(before)  # plain weights again, no weight_orig / weight_mask in the file
    record = json.loads((tmp_path / "ceiling.train.json").read_text())
    assert record["kept_zeros"]["layers"] == 2 and record["best_step"] in (2, 4)  # a trained state was kept


def test_keep_zeros_refuses_a_run_it_cannot_hold_in_one_line(tmp_path, capsys):
    import train_digits_member as script

    from gancompress.formats.checkpoint import GanBundle, save_bundle

    (g, g_spec), (d, d_spec) = (script.build(*script.MEMBERS["narrow-dcgan"][role], name)
                                for role, name in (("g", "generator"), ("d", "discriminator")))
    dense = save_bundle(GanBundle(g.eval(), g_spec, d.eval(), d_spec), tmp_path / "dense.safetensors")
    for argv, message in ((["--keep-zeros"], "give it with --continue-from"),
                          (["--keep-zeros", "--continue-from", str(dense)], "prune it first")):
        out = tmp_path / "out.safetensors"
        code = zoo_train.cli(lambda: script.main(["--member", "narrow-dcgan", *argv, "--max-steps", "2",
                                                  "--fid-samples", "64", "--out", str(out)]))
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert not out.exists()


def test_the_sr_script_writes_its_photographs_without_training(tmp_path, capsys):
    """``--photos-only``: the zoo's photographs for the committed SR member in seconds, the same pixels the script
    trains and scores on, no member written; without ``--write-photos`` one line and exit 2."""
    import numpy as np
    import train_sr_member as script
    from PIL import Image

    out = tmp_path / "sr.safetensors"
    assert script.main(["--photos-only", "--write-photos", str(tmp_path / "photos"), "--out", str(out)]) == 0
    assert not out.exists()
    for part, names in (("train", script.TRAIN), ("heldout", script.HELDOUT)):
        files = sorted((tmp_path / "photos" / part).glob("*.png"))
        assert [f.stem for f in files] == sorted(names)
        first = script.photos(names[:1])[0]
        written = np.asarray(Image.open(tmp_path / "photos" / part / f"{names[0]}.png"), dtype=np.float32) / 255
        assert written.shape == tuple(first.permute(1, 2, 0).shape)
        assert np.abs(written - first.permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
    code = zoo_train.cli(lambda: script.main(["--photos-only", "--out", str(out)]))
    err = capsys.readouterr().err
    assert code == 2 and "--write-photos DIR" in err and err.count("\n") == 1, err
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for argv in (["--photos-only"], ["--max-steps", "2"]):  # refused before any training, the file untouched
        code = zoo_train.cli(lambda: script.main([*argv, "--write-photos", str(a_file), "--out", str(out)]))
        err = capsys.readouterr().err
        assert code == 2 and "is a file: give a folder" in err and err.count("\n") == 1, err
        assert a_file.read_text() == "mine" and not out.exists()
