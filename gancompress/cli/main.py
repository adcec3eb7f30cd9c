"""The Typer application. Each command lives in its own module and calls one library function."""
from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from ..version import __version__
from .cmd_demo import demo
from .cmd_evaluate import evaluate
from .cmd_export import export
from .cmd_finetune import finetune
from .cmd_inspect import inspect
from .cmd_prune import prune
from .cmd_sweep import sweep

app = typer.Typer(
    name="gancompress",
    help="Compress pretrained GAN generators, with their own discriminator as the judge.\n\n"
         "Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input, 3 a quality gate failed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gancompress {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks (also GANCOMPRESS_DEBUG=1).")] = False,
) -> None:
    if debug:
        os.environ["GANCOMPRESS_DEBUG"] = "1"


app.command("inspect")(inspect)
app.command("prune")(prune)
app.command("finetune")(finetune)
app.command("evaluate")(evaluate)
app.command("export")(export)
app.command("demo")(demo)
app.command("sweep")(sweep)
