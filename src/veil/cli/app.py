"""The root of the `veil` command line.

Each command group lives in its own module and registers itself here. Errors
Veil raises on purpose become one line on stderr and the error's exit code
(2: bad usage or configuration; 1: media or runtime error), never a traceback.
"""

from __future__ import annotations

import sys
from importlib import import_module

import typer
from rich.console import Console

from veil import __version__
from veil.cli.errors import print_error
from veil.core.errors import VeilError

app = typer.Typer(
    name="veil",
    help=(
        "Veil: privacy masking for video surveillance.\n\n"
        "Example: veil mask in.mp4 -o out.mp4 --rect 0.1,0.1,0.3,0.2 --style mosaic"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Modules that add commands to `app` (each defines `register(app)`).
COMMAND_MODULES: tuple[str, ...] = (
    "veil.cli.mask",
    "veil.cli.config_cmd",
    "veil.cli.demo",
    "veil.cli.eval_cmd",
    "veil.cli.audit_cmd",
    "veil.cli.models_cmd",
    "veil.cli.redact_cmd",
    "veil.cli.serve",
)

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"veil {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Veil: privacy masking for video surveillance."""


for _module in COMMAND_MODULES:
    import_module(_module).register(app)


def main() -> None:
    """Entry point of the `veil` command."""
    try:
        app()
    except VeilError as error:
        print_error(error)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(130)
