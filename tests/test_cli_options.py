"""One option vocabulary: every command spells a shared option the same way; usage errors are one line."""
import re

import pytest
from typer.testing import CliRunner

from gancompress.cli.main import app
from gancompress.cli.options import CHOICES, fill_choices
from gancompress.finetune import defaults as D
from gancompress.registry import check_choice, unknown_choice

runner = CliRunner()
COMMANDS = ("inspect", "prune", "finetune", "evaluate", "export", "demo", "sweep")
LOADERS = ("inspect", "prune", "finetune", "evaluate", "export", "sweep")
PRUNERS = ("prune", "finetune", "sweep", "demo")


def help_of(command: str) -> str:
    r = runner.invoke(app, [command, "--help"])
    assert r.exit_code == 0, r.output
    return r.stdout


def options_of(command: str) -> dict[str, str]:
    """{'--name': 'the help line that declares it'} for every option in COMMAND's help."""
    found = {}
    for line in help_of(command).splitlines():
        m = re.match(r"\s+((?:-\w, )?--[\w-]+(?:, (?:-\w|--[\w-]+))*)(.*)", line)
        if m:
            for name in m.group(1).split(", "):
                found[name] = line
    return found


@pytest.mark.parametrize("command", LOADERS)
def test_every_loading_command_takes_the_same_loading_options(command):
    opts = options_of(command)
    for name in ("--arch", "--arch-kwargs", "--d-arch", "--d-arch-kwargs", "--trust-pickle"):
        assert name in opts, (command, name)
    assert "MODULE:CALLABLE" in opts["--arch"] and "MODULE:CALLABLE" in opts["--d-arch"]


@pytest.mark.parametrize("command", PRUNERS)
def test_every_pruning_command_spells_sparsity_and_granularity_alike(command):
    opts = options_of(command)
    assert opts["-s"] == opts["--sparsity"] and opts["-g"] == opts["--granularity"]
    assert opts["--sparsity"].lstrip().startswith("-s, --sparsity")


def test_shared_spellings():
    for command in ("prune", "finetune", "export", "evaluate"):
        assert options_of(command)["-o"].lstrip().startswith("-o, --output"), command
    for command in ("sweep", "demo"):
        assert "--out-dir" in options_of(command)
    for command in ("finetune", "sweep", "evaluate"):
        assert "--data" in options_of(command), command
    for command in COMMANDS:
        opts = options_of(command)
        assert "--json" in opts and ("--quiet" in opts or command == "inspect"), command
    for command in ("finetune", "evaluate", "demo"):
        assert "--seed" in options_of(command)
    for command in ("finetune", "evaluate", "demo", "sweep"):
        assert "--device" in options_of(command)


def test_evaluate_keeps_real_and_pairs_as_hidden_spellings():
    opts = options_of("evaluate")
    assert "--real" not in opts and "--pairs" not in opts and "--out" in opts
    r = runner.invoke(app, ["evaluate", "x.safetensors", "--data", "a", "--pairs", "b"])
    assert r.exit_code == 2 and r.stderr.startswith("error: --data and --pairs (its older spelling)")
    r = runner.invoke(app, ["evaluate", "builtin:digits-dcgan", "--fid", "--data", "builtin:digits", "--real", "b"])
    assert r.exit_code == 2 and r.stderr.startswith("error: --data and --real (its older spelling)")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_no_bool_metavar_and_lists_registry_choices(command):
    text = help_of(command)
    assert "<bool>" not in text and "{choices:" not in text and "╭" not in text
    if command in PRUNERS:
        from gancompress.prune.granularity import GRANULARITIES

        assert ", ".join(GRANULARITIES.names()) in " ".join(text.split())


def test_help_lists_losses_extractors_archs_and_names_the_default_method():
    from gancompress.archs import ARCHITECTURES
    from gancompress.losses import LOSSES
    from gancompress.metrics.extractors import EXTRACTORS

    flat = " ".join(help_of("finetune").split())
    assert ", ".join(LOSSES.names()) in flat and ", ".join(ARCHITECTURES.names()) in flat
    assert f"[default: {D.DEFAULT_METHOD}]" in flat and f"The default method, {D.DEFAULT_METHOD}" in flat
    assert "self-supervised fine-tuning" not in flat
    assert ", ".join(EXTRACTORS.names()) in " ".join(help_of("evaluate").split())


def test_required_options_are_marked():
    from typer.core import TyperCommand

    import typer
    from typing import Annotated

    from gancompress.cli.main import _Command

    probe = typer.Typer()

    @probe.command(cls=_Command)
    def needs(x: Annotated[str, typer.Option("--x", help="a required one")]) -> None:  # noqa: ARG001
        pass

    r = CliRunner().invoke(probe, ["--help"])
    assert "[required]" in r.stdout
    assert issubclass(_Command, TyperCommand)


@pytest.mark.parametrize("args,needle", [
    (["prune", "--sparsty", "0.5"], "unknown option --sparsty (did you mean --sparsity?)"),
    (["inspect", "a", "b"], "unexpected extra argument"),
    (["finetune", "x", "--steps", "many"], "invalid value for '--steps'"),
    (["prune", "x", "-s", "half"], "invalid value for '--sparsity' / '-s'"),
    (["prune", "x", "-s"], "'-s' requires an argument"),
    (["nosuchcommand"], "no such command"),
])
def test_usage_errors_are_one_line_exit_2_no_box(args, needle):
    r = runner.invoke(app, args)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert needle in lines[0] and "Usage:" not in r.stderr and "╭" not in r.stderr and r.stdout == ""


def test_usage_error_names_where_to_read_the_options():
    r = runner.invoke(app, ["export", "--fromat", "dense"])
    assert r.stderr.strip().endswith("see 'gancompress export --help'")


def test_unknown_choice_is_worded_one_way_and_suggests_the_closest():
    err = unknown_choice("granularity", "filtr", ["element", "filter", "block"])
    assert str(err) == "unknown granularity 'filtr' (did you mean filter?); choose one of: element, filter, block"
    assert err.exit_code == 2
    assert check_choice("granularity", "block", ["element", "block"]) == "block"
    with pytest.raises(type(err), match="no close"):
        raise unknown_choice("no close", "zzz", ["a"])
    r = runner.invoke(app, ["prune", "builtin:digits-dcgan", "-s", "0.5", "-g", "blok", "--dry-run"])
    assert r.exit_code == 2
    assert r.stderr.strip() == ("error: unknown granularity 'blok' (did you mean block?); choose one of: "
                                + ", ".join(CHOICES["granularity"]()))


def test_fill_choices_reads_the_registries():
    from gancompress.prune.granularity import GRANULARITIES

    assert fill_choices("g: {choices:granularity}.") == f"g: {', '.join(GRANULARITIES.names())}."
    assert fill_choices("no placeholder") == "no placeholder"


def test_arch_options_never_silently_ignored(tmp_path, monkeypatch):
    """sweep's library config cannot take --arch yet: it refuses it in one line rather than ignore it."""
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["sweep", "builtin:digits-dcgan", "--arch", "mynets:G", "--data", "builtin:digits"])
    assert r.exit_code == 2 and r.stderr.startswith("error: --arch"), r.stderr
    assert not list(tmp_path.iterdir())


def test_bad_arch_kwargs_are_refused_everywhere():
    for command in LOADERS:
        r = runner.invoke(app, [command, "builtin:digits-dcgan", "--arch", "m:G", "--arch-kwargs", "{bad"])
        assert r.exit_code == 2 and "--arch-kwargs is not valid JSON" in r.stderr, (command, r.stderr)


UNKNOWN = re.compile(r"^error: unknown [\w (),-]+ '[^']+'( \(did you mean [^)]+\?\))?; choose one of: .+$")


@pytest.mark.parametrize("args,kind,suggestion", [
    (["prune", "builtin:digits-dcgan", "-s", "0.5", "--scope", "globl"], "scope", "global"),
    (["prune", "builtin:digits-dcgan", "-s", "0.5", "-g", "fliter"], "granularity", "filter"),
    (["export", "builtin:digits-dcgan", "--format", "sparce"], "export format", "sparse"),
    (["export", "builtin:digits-dcgan", "--dtype", "float61"], "dtype", "float16"),
    (["finetune", "builtin:digits-dcgan", "--method", "distil"], "method", "distill"),
    (["finetune", "builtin:digits-dcgan", "--lr-schedule", "cosin", "--method", "distill"], "--lr-schedule", "cosine"),
    (["finetune", "builtin:digits-dcgan", "--direction", "AtoC"], "direction", "AtoB"),
    (["finetune", "builtin:digits-dcgan", "--loss", "hinje", "--method", "distill"], "loss profile", "hinge"),
    (["evaluate", "builtin:digits-dcgan", "--fid", "--extractor", "digit"], "feature extractor", "digits"),
    (["demo", "--schedule", "onshot"], "schedule", "oneshot"),
    (["sweep", "builtin:digits-dcgan", "--granularity", "element,blok"], "granularity", "block"),
    (["inspect", "builtin:digits-dcgn"], "builtin model", "builtin:digits-dcgan"),
])
def test_every_unknown_choice_is_worded_the_same(tmp_path, monkeypatch, args, kind, suggestion):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, args)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1, r.stderr
    assert UNKNOWN.match(lines[0]) and kind in lines[0] and f"did you mean {suggestion}" in lines[0], lines[0]
    assert not list(tmp_path.iterdir())  # refused before anything is written
