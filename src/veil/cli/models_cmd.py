"""`veil models`: list, fetch and verify detector weights.

Examples::

    veil models list
    veil models fetch                 # every model, into the first model folder
    veil models fetch yunet --dir ./models
    VEIL_MODEL_DIR=./models veil models verify
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from veil.models import (
    MODEL_DIR_ENV,
    REGISTRY,
    ModelState,
    default_fetch_dir,
    fetch_model,
    find_model,
    get_spec,
    model_dirs,
)

_DIR_HELP = f"Model folder; default: {MODEL_DIR_ENV}, else the user cache (~/.cache/veil/models)."

models_app = typer.Typer(
    name="models",
    help="List, download and verify the detector weights (YOLOX-nano, YuNet).",
    no_args_is_help=True,
    add_completion=False,
)


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


@models_app.command("list")
def list_models(
    model_dir: Path | None = typer.Option(None, "--dir", "-d", help=_DIR_HELP),
) -> None:
    """Show every model: where it was found, what it is, licence, input, source, sha256."""
    console = _console()
    for name in sorted(REGISTRY):
        status = find_model(name, model_dir)
        spec = status.spec
        if status.state is ModelState.OK:
            where = f"ok {status.path}"
        elif status.state is ModelState.CORRUPT:
            where = f"CORRUPT {status.path} ({status.detail})"
        else:
            where = "missing"
        console.print(f"{spec.name}: {where}")
        console.print(f"  {spec.description}; licence {spec.license}")
        console.print(f"  file: {spec.filename}; input: {spec.input}")
        console.print(f"  source: {spec.url}")
        console.print(f"  sha256: {spec.sha256}")
    console.print("searched: " + ", ".join(str(d) for d in model_dirs(model_dir)))


@models_app.command("fetch")
def fetch(
    name: str | None = typer.Argument(None, help="Model to fetch; all models when left out."),
    model_dir: Path | None = typer.Option(None, "--dir", "-d", help=_DIR_HELP),
    url: str | None = typer.Option(
        None, "--url", help="Download from this mirror instead (one model); sha256 still checked."
    ),
    force: bool = typer.Option(False, "--force", help="Download even if a good copy is there."),
) -> None:
    """Download models, check their sha256 and keep them in the model folder."""
    console = _console()
    names = [get_spec(name).name] if name else sorted(REGISTRY)
    if url is not None and len(names) != 1:
        raise typer.BadParameter("--url needs a model NAME", param_hint="--url")
    target = default_fetch_dir(model_dir)
    show_progress = sys.stderr.isatty()
    for model in names:
        if show_progress:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(stderr=True),
                transient=True,
            ) as bar:
                task = bar.add_task(model, total=None)

                def report(done: int, total: int | None, task_id: TaskID = task) -> None:
                    bar.update(task_id, completed=done, total=total)

                path = fetch_model(model, target, url=url, progress=report, force=force)
        else:
            path = fetch_model(model, target, url=url, force=force)
        console.print(f"{model}: ok {path}")


@models_app.command("verify")
def verify(
    model_dir: Path | None = typer.Option(None, "--dir", "-d", help=_DIR_HELP),
) -> None:
    """Hash every model file again and compare with the registry; exit 1 if any is bad."""
    console = _console()
    bad = 0
    for name in sorted(REGISTRY):
        status = find_model(name, model_dir, use_cache=False)
        if status.state is ModelState.OK:
            console.print(f"{name}: ok {status.path}")
            continue
        bad += 1
        if status.state is ModelState.CORRUPT:
            console.print(f"{name}: CORRUPT {status.path} ({status.detail})")
            console.print(f"  fix: delete it and run `veil models fetch {name}`")
        else:
            searched = ", ".join(str(d) for d in status.searched)
            console.print(f"{name}: MISSING (searched {searched})")
            console.print(f"  fix: run `veil models fetch {name}` or set {MODEL_DIR_ENV}")
    if bad:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the `models` command group to the root app."""
    app.add_typer(models_app, name="models")
