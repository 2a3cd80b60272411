"""`veil eval`: measure masking against MOTChallenge ground truth, with CI gates."""

from __future__ import annotations

import sys
from importlib import import_module
from pathlib import Path

import typer
from rich.console import Console

from veil.core.errors import OutputError, VeilError
from veil.eval.metrics import Thresholds
from veil.eval.runner import PlannerFactory, evaluate
from veil.policy.base import FramePlanner

GATE_FAILED_EXIT = 3
"""Exit code when the evaluation ran but missed a ``--min-*`` / ``--max-*`` bar."""

HELP = "\n\n".join(
    [
        "Measure masking quality against MOTChallenge ground truth.",
        "Runs the masking of --config over --video (a file or an image sequence such as "
        "img1/%06d.jpg) and compares the hidden pixels with the ground-truth boxes (MOT15 or "
        "MOT17 gt.txt): coverage per person, recall (boxes at least 90% masked) overall and by "
        "height, head recall, leaked frames (a person under 50% masked), over-masking (an upper "
        "bound) and processing speed.",
        f"Bars given with --min-* and --max-* make the exit code {GATE_FAILED_EXIT} when missed, "
        "for CI.",
        'Example: veil eval --gt TUD/gt/gt.txt --video "TUD/img1/%06d.jpg" -c humans.yaml '
        "--min-recall 0.998 --min-head-recall 1 --max-leaked-frames 0 --json report.json",
    ]
)


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command to ``app``."""
    app.command("eval", help=HELP, no_args_is_help=True)(eval_command)


def _planner_factory(config_path: Path) -> PlannerFactory:
    """A function of the frame rate that builds the planners of the config at ``config_path``.

    ``veil.policy.build`` is imported here, not at module level, so that this module
    loads even where planner building is not available.
    """
    from veil.config import load_config
    from veil.config.schema import VeilConfig

    config: VeilConfig = load_config(config_path)
    try:
        build = import_module("veil.policy.build").build_planners
    except (ImportError, AttributeError) as error:
        raise VeilError(
            f"building planners from a config is not available: {error}",
            hint="this Veil is incomplete; reinstall it",
        ) from error

    def factory(fps: float) -> list[FramePlanner]:
        planners: list[FramePlanner] = list(build(config, fps))
        return planners

    return factory


def eval_command(
    gt: Path = typer.Option(
        ..., "--gt", help="MOTChallenge ground truth (gt/gt.txt), MOT15 or MOT17 format."
    ),
    video: str = typer.Option(
        ..., "--video", "-i", help="The video, or an image sequence such as img1/%06d.jpg."
    ),
    config: Path = typer.Option(..., "--config", "-c", help="The masking configuration (YAML)."),
    json_out: str | None = typer.Option(
        None, "--json", help="Write the full report as JSON to this file ('-': stdout)."
    ),
    fps: float | None = typer.Option(
        None,
        "--fps",
        min=0.001,
        help="Frame rate; default: the sequence's seqinfo.ini, else the video's own.",
    ),
    max_frames: int | None = typer.Option(
        None, "--max-frames", min=1, help="Evaluate only the first N frames."
    ),
    min_recall: float | None = typer.Option(
        None, "--min-recall", min=0.0, max=1.0, help="Fail (exit 3) when recall is below this."
    ),
    min_head_recall: float | None = typer.Option(
        None, "--min-head-recall", min=0.0, max=1.0, help="Fail when head recall is below this."
    ),
    max_leaked_frames: int | None = typer.Option(
        None, "--max-leaked-frames", min=0, help="Fail when more frames than this leak a person."
    ),
    max_leak_run: int | None = typer.Option(
        None,
        "--max-leak-run",
        min=0,
        help="Fail when one person stays leaked for more consecutive frames than this.",
    ),
    max_over_masking: float | None = typer.Option(
        None,
        "--max-over-masking",
        min=0.0,
        max=1.0,
        help="Fail when the mean share of the frame masked outside all people is above this.",
    ),
    min_fps: float | None = typer.Option(
        None, "--min-fps", min=0.0, help="Fail when processing is slower than this (frames/s)."
    ),
    worst: int = typer.Option(
        10, "--worst", min=0, help="How many worst persons and leaks to list."
    ),
) -> None:
    thresholds = Thresholds(
        min_recall=min_recall,
        min_head_recall=min_head_recall,
        max_leaked_frames=max_leaked_frames,
        max_leak_run=max_leak_run,
        max_over_masking=max_over_masking,
        min_fps=min_fps,
    )
    report = evaluate(video, gt, _planner_factory(config), fps=fps, max_frames=max_frames)
    to_stdout = json_out == "-"
    console = Console(stderr=to_stdout, highlight=False)
    console.print(report.summary(worst))
    if report.first_failure:
        console.print(
            f"{report.frames_failed} frames were fully masked (fail closed); first: "
            f"{report.first_failure}"
        )
    if json_out is not None:
        text = report.to_json() + "\n"
        if to_stdout:
            sys.stdout.write(text)
        else:
            try:
                Path(json_out).write_text(text, encoding="utf-8")
            except OSError as error:
                raise OutputError(f"{json_out}: cannot write the report ({error})") from error
    failures = thresholds.check(report)
    if failures:
        errors = Console(stderr=True, highlight=False)
        for failure in failures:
            errors.print(f"[bold red]failed:[/] {failure}")
        raise typer.Exit(GATE_FAILED_EXIT)
