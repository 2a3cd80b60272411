"""How the command line reports a :class:`VeilError`: one line on stderr, then its exit code."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from veil.core.errors import VeilError

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def print_error(error: VeilError) -> None:
    """``error:`` and the message (with its hint) on stderr."""
    # Escaped: messages hold brackets ("masks[1]", "[x, y]") that rich would eat as markup.
    stderr.print(f"[bold red]error:[/] {escape(str(error))}", markup=True)


def fail(error: VeilError) -> NoReturn:
    """End a command on ``error``: print it and exit with its exit code."""
    print_error(error)
    raise typer.Exit(code=error.exit_code)
