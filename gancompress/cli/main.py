"""The Typer application. Each command lives in its own module and calls one library function."""
from __future__ import annotations

import os
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from ..version import __version__
from .cmd_demo import demo
from .cmd_evaluate import evaluate
from .cmd_export import export
from .cmd_finetune import finetune
from .cmd_inspect import inspect
from .cmd_prune import prune
from .cmd_sweep import sweep
from .errors import run_main
from .options import fill_choices


class _Group(TyperGroup):
    """Usage errors (unknown option, missing or extra argument, a value of the wrong type) print the
    same one-line ``error: ...`` as every other error and exit 2."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        return run_main(super().main, standalone_mode, *args, **kwargs)


class _Command(TyperCommand):
    """Fills the registries' names into the help texts when help is shown (see cli/options.py)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            help_text = getattr(param, "help", None)
            if help_text and "{choices:" in help_text:
                param.help = fill_choices(help_text)
        super().format_help(ctx, formatter)


app = typer.Typer(
    name="gancompress",
    cls=_Group,
    help="Compress pretrained GAN generators, with their own discriminator as the judge.\n\n"
         "Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input, 3 a quality gate failed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
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


for _name, _func in (("inspect", inspect), ("prune", prune), ("finetune", finetune), ("evaluate", evaluate),
                     ("export", export), ("demo", demo), ("sweep", sweep)):
    app.command(_name, cls=_Command)(_func)
