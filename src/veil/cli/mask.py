"""`veil mask`: burn privacy masks into a video file.

Masks come from a configuration file (``--config``), from the command line
(``--rect``, ``--polygon``, normalised 0..1 coordinates), or both: command-line masks
are added after the file's. Style options (``--style``, ``--color``, ``--cell-size``,
``--blur-radius``) override the style of every mask. The result goes through the same
validation as a configuration file, so a bad polygon or colour is reported the same way.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from veil.cli.errors import fail
from veil.config.loader import load_config, parse_config_dict
from veil.config.schema import VeilConfig
from veil.core.errors import ConfigError, MediaDecodeError, UsageError, VeilError
from veil.core.style import StyleKind
from veil.media.sink import open_sink
from veil.media.source import is_image_sequence, open_source
from veil.pipeline import MaskingPipeline, RunStats
from veil.policy.build import build_planners
from veil.policy.dynamic import DynamicPlanner, ScheduledReset

from .progress import FrameProgress

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)

CLI_SOURCE = "command line"


@dataclass(frozen=True, slots=True)
class StyleOverride:
    """Style options given on the command line; None leaves the configured value."""

    style: StyleKind | None = None
    color: str | None = None
    cell_size: int | None = None
    blur_radius: int | None = None

    def as_dict(self) -> dict[str, Any]:
        values = {
            "style": None if self.style is None else self.style.value,
            "color": self.color,
            "cell_size": self.cell_size,
            "blur_radius": self.blur_radius,
        }
        return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True)
class DynamicOverride:
    """Dynamic-masking options given on the command line; None keeps the configured value."""

    methods: Sequence[str] | None = None
    sensitivity: int | None = None
    background_merge_time: float | None = None
    margin: str | None = None
    hold_time: float | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    model_dir: str | None = None

    def apply(self, dynamic: dict[str, Any]) -> None:
        if self.methods is not None:
            # "--method humans,faces" and "--method humans --method faces" both work.
            dynamic["methods"] = [
                m.strip() for text in self.methods for m in text.split(",") if m.strip()
            ]
        for key in ("sensitivity", "background_merge_time", "margin", "hold_time", "model_dir"):
            value = getattr(self, key)
            if value is not None:
                dynamic[key] = value
        for key, texts in (("include", self.include), ("exclude", self.exclude)):
            for number, text in enumerate(texts, 1):
                values = parse_numbers(text, f"--{key}")
                if len(values) % 2:
                    raise ConfigError(
                        f"--{key} #{number}: an odd number of coordinates ({len(values)})",
                        hint="give x,y pairs, e.g. --include 0,0,0.5,0,0.5,1,0,1",
                    )
                dynamic[key] = [
                    *dynamic[key],
                    [values[i : i + 2] for i in range(0, len(values), 2)],
                ]


def parse_numbers(text: str, option: str) -> list[float]:
    """``"0.1,0.2,0.3"`` -> ``[0.1, 0.2, 0.3]``; UsageError naming the option otherwise."""
    try:
        return [float(part) for part in text.replace(" ", "").split(",") if part != ""]
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: expected numbers separated by commas",
            hint=f"for example {option} 0.1,0.1,0.3,0.2",
        ) from None


def _rect_mask(text: str, number: int) -> dict[str, Any]:
    values = parse_numbers(text, "--rect")
    if len(values) != 4:
        raise UsageError(
            f"--rect {text!r}: expected 4 numbers x,y,width,height, got {len(values)}",
            hint="for example --rect 0.1,0.1,0.3,0.2 (normalised 0..1)",
        )
    return {"name": f"cli-rect-{number}", "rect": values}


def _polygon_mask(text: str, number: int) -> dict[str, Any]:
    values = parse_numbers(text, "--polygon")
    if len(values) % 2:
        raise UsageError(
            f"--polygon {text!r}: expected x,y pairs, got an odd count of {len(values)} numbers",
            hint="for example --polygon 0.5,0.5,0.9,0.5,0.7,0.9",
        )
    points = [[values[i], values[i + 1]] for i in range(0, len(values), 2)]
    return {"name": f"cli-polygon-{number}", "polygon": points}


def _set_enabled(masks: list[dict[str, Any]], names: Sequence[str], enabled: bool) -> None:
    known = {str(mask["name"]): mask for mask in masks}
    for name in names:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            option = "--enable" if enabled else "--disable"
            raise ConfigError(
                f"{option} {name!r}: no mask has this name",
                hint=f"masks are: {listed}",
            )
        known[name]["enabled"] = enabled


def build_config(
    base: VeilConfig | None = None,
    *,
    rects: Sequence[str] = (),
    polygons: Sequence[str] = (),
    style: StyleOverride | None = None,
    enable: Sequence[str] = (),
    disable: Sequence[str] = (),
    dynamic: DynamicOverride | None = None,
) -> VeilConfig:
    """The configuration a command line asks for, validated like a file.

    Command-line masks are named ``cli-rect-1``, ``cli-polygon-1``, ... and added after
    ``base``'s masks; ``style`` applies to every mask; ``enable``/``disable`` name masks.
    """
    data = (base or VeilConfig()).model_dump(mode="json")
    masks: list[dict[str, Any]] = data["masks"]
    masks += [_rect_mask(text, i) for i, text in enumerate(rects, 1)]
    masks += [_polygon_mask(text, i) for i, text in enumerate(polygons, 1)]
    _set_enabled(masks, enable, True)
    _set_enabled(masks, disable, False)
    overrides = style.as_dict() if style else {}
    for mask in masks:
        mask.update(overrides)
    if dynamic is not None:
        dynamic.apply(data["dynamic"])
    # The style options set the dynamic masks' look too, so one --style covers all.
    data["dynamic"].update(overrides)
    return parse_config_dict(data, CLI_SOURCE)


def check_something_to_mask(config: VeilConfig) -> None:
    """ConfigError when ``config`` hides nothing: no enabled mask, no dynamic method."""
    if not any(mask.enabled for mask in config.masks) and not config.dynamic.methods:
        raise ConfigError(
            "nothing to mask: no enabled mask and no dynamic masking",
            hint="add --rect/--polygon, give --config with masks, or --enable a disabled mask",
        )


def mask_video(
    input_uri: str,
    output: str,
    config: VeilConfig,
    *,
    keep_audio: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    fps: Fraction | None = None,
    reset_background_at: Sequence[float] = (),
) -> RunStats:
    """Mask ``input_uri`` into ``output`` as ``config`` says; the output appears only when
    complete. Damage in the input is reported on stderr; the run still completes."""
    check_something_to_mask(config)
    if fps is not None and not is_image_sequence(input_uri):
        raise UsageError("--fps applies to image sequences only", hint="drop --fps")
    with open_source(input_uri, fps=fps) as source:
        # Dynamic planners learn over time, so they need the real frame rate.
        planners = build_planners(config, float(source.fps))
        if reset_background_at:
            planners = [
                ScheduledReset(p, reset_background_at, float(source.fps))
                if isinstance(p, DynamicPlanner)
                else p
                for p in planners
            ]
        with open_sink(output, source, overwrite=overwrite, keep_audio=keep_audio) as sink:
            stop = threading.Event()
            with (
                FrameProgress(source.frame_count, enabled=not quiet, console=_stderr) as bar,
                _ctrl_c_stops(stop, enabled=source.is_live),
            ):
                stats = MaskingPipeline(planners).run(source, sink, progress=bar, stop=stop)
            if stats.frames == 0:
                # Raised inside the sink's block so the empty output is dropped.
                raise MediaDecodeError(
                    f"{input_uri}: no frame could be decoded",
                    hint="the file may be truncated or corrupt; check it with ffprobe",
                )
        _report_damage(input_uri, stats, source.report.messages)
    return stats


@contextmanager
def _ctrl_c_stops(stop: threading.Event, *, enabled: bool) -> Iterator[None]:
    """For a live stream, Ctrl-C ends the recording and keeps it (a stream has no end);
    a second Ctrl-C aborts. For files Ctrl-C aborts, leaving no partial output."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def first_interrupt(signum: int, frame: FrameType | None) -> None:
        _stderr.print("stopping: finishing the output (Ctrl-C again to abort)")
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _report_damage(input_uri: str, stats: RunStats, messages: Sequence[str]) -> None:
    if stats.corrupt_frames or stats.decode_errors or stats.truncated:
        detail = f" (first problem: {messages[0]})" if messages else ""
        ended = "; the input ended early" if stats.truncated else ""
        _stderr.print(
            escape(
                f"warning: {input_uri}: {stats.decode_errors} decode error(s), "
                f"{stats.corrupt_frames} damaged frame(s) fully masked{ended}{detail}"
            )
        )
    if stats.failed_closed_frames:
        _stderr.print(
            escape(
                f"warning: masking failed on {stats.failed_closed_frames} frame(s); "
                "they were fully masked"
            )
        )


def mask_command(
    input_uri: str = typer.Argument(
        ...,
        metavar="INPUT",
        help="Video file, image sequence (frames/%06d.png), rtsp:// or http:// URL.",
        show_default=False,
    ),
    output: str = typer.Option(
        ...,
        "--output",
        "-o",
        help="Output: .mp4/.mov (H.264), .mkv/.avi (FFV1, lossless), or out/%06d.png.",
        show_default=False,
    ),
    config_file: Path | None = typer.Option(
        None, "--config", "-c", help="Configuration file (YAML) with the masks."
    ),
    rect: list[str] | None = typer.Option(
        None, "--rect", help="Add a rectangle x,y,width,height (normalised 0..1). Repeatable."
    ),
    polygon: list[str] | None = typer.Option(
        None,
        "--polygon",
        help="Add a polygon x1,y1,x2,y2,x3,y3,... (3 to 64 points, normalised). Repeatable.",
    ),
    style: StyleKind | None = typer.Option(
        None, "--style", help="Style of ALL masks (overrides the configuration)."
    ),
    color: str | None = typer.Option(
        None, "--color", help="Fill colour of ALL masks: #rrggbb, #rgb, r,g,b or a name."
    ),
    cell_size: int | None = typer.Option(
        None, "--cell-size", help="Mosaic cell in pixels for ALL masks (4-512)."
    ),
    blur_radius: int | None = typer.Option(
        None, "--blur-radius", help="Blur radius in pixels for ALL masks (4-512)."
    ),
    enable: list[str] | None = typer.Option(
        None, "--enable", help="Enable the mask with this name. Repeatable."
    ),
    disable: list[str] | None = typer.Option(
        None, "--disable", help="Disable the mask with this name. Repeatable."
    ),
    keep_audio: bool = typer.Option(
        False, "--keep-audio", help="Keep the audio (dropped by default: voices identify too)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, no summary."),
    fps: float | None = typer.Option(
        None, "--fps", help="Frame rate of an image sequence input (default 25)."
    ),
    method: list[str] | None = typer.Option(
        None,
        "--method",
        "-m",
        help="Dynamic masking: motion, humans, faces, background; combine with commas or "
        "repeat (e.g. humans,faces).",
    ),
    sensitivity: int | None = typer.Option(
        None,
        "--sensitivity",
        min=0,
        max=100,
        help="0-100 (default 50). Higher masks more, including things that are not people.",
    ),
    merge_time: float | None = typer.Option(
        None,
        "--merge-time",
        help="Background merge time in seconds (default 3600): how long something must "
        "stay still before motion masking takes it as background.",
    ),
    margin: str | None = typer.Option(
        None,
        "--margin",
        help="Blur size around each object: small, medium (default), large, '12px' or '10%'.",
    ),
    hold_time: float | None = typer.Option(
        None, "--hold-time", help="Seconds a mask stays after its object was last seen (1.0)."
    ),
    include: list[str] | None = typer.Option(
        None,
        "--include",
        help="Only mask dynamically inside this polygon x1,y1,x2,y2,... (normalised). Repeatable.",
    ),
    exclude: list[str] | None = typer.Option(
        None,
        "--exclude",
        help="Never mask dynamically inside this polygon (normalised). Repeatable.",
    ),
    reset_background_at: list[float] | None = typer.Option(
        None,
        "--reset-background-at",
        help="Take the picture at this time (seconds) as the new background. Repeatable.",
    ),
    model_dir: str | None = typer.Option(
        None, "--model-dir", help="Folder with detector weights (else VEIL_MODEL_DIR)."
    ),
) -> None:
    """Burn privacy masks into a video.

    Masks come from --config, plus --rect and --polygon (added after the file's masks).

    --style, --color, --cell-size and --blur-radius apply to ALL masks (they override the file).

    The output appears only when complete; an existing one is kept unless --overwrite is given.

    Example: veil mask in.mp4 -o out.mp4 --rect 0.1,0.1,0.3,0.2 --style mosaic

    Example: veil mask in.mp4 -o out.mkv --config masks.yaml --disable door --color "#ff00ff"

    Example: veil mask in.mp4 -o 'out/%06d.png' --method humans --style fill --color "#ff00ff"
    """
    try:
        base = load_config(config_file) if config_file is not None else None
        config = build_config(
            base,
            rects=rect or (),
            polygons=polygon or (),
            style=StyleOverride(style, color, cell_size, blur_radius),
            enable=enable or (),
            disable=disable or (),
            dynamic=DynamicOverride(
                methods=method,
                sensitivity=sensitivity,
                background_merge_time=merge_time,
                margin=margin,
                hold_time=hold_time,
                include=include or (),
                exclude=exclude or (),
                model_dir=model_dir,
            ),
        )
        if fps is not None and fps <= 0:
            raise UsageError(f"--fps must be positive, got {fps}")
        rate = None if fps is None else Fraction(fps).limit_denominator(1001)
        stats = mask_video(
            input_uri,
            output,
            config,
            keep_audio=keep_audio,
            overwrite=overwrite,
            quiet=quiet,
            fps=rate,
            reset_background_at=sorted(reset_background_at or ()),
        )
    except VeilError as error:
        fail(error)
    if not quiet:
        typer.echo(f"masked {stats.frames} frames at {stats.fps:.1f} fps -> {output}")


def register(app: typer.Typer) -> None:
    """Add ``veil mask`` to ``app``."""
    app.command("mask")(mask_command)
