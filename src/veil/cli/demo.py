"""`veil demo`: generate a demo clip, mask it with an example configuration, show where.

Needs nothing but Veil itself: the clip is a synthetic street scene with people walking
(:mod:`veil.media.synthetic`), so it works on a fresh machine without downloads.
"""

from __future__ import annotations

from pathlib import Path

import typer

from veil.cli.errors import fail
from veil.config.loader import dump_config, parse_config_dict
from veil.config.schema import VeilConfig
from veil.core.errors import OutputError, VeilError
from veil.media.synthetic import write_demo_clip

from .mask import mask_video

DEFAULT_OUTPUT_DIR = Path("veil-output")
INPUT_NAME = "demo-input.mp4"
OUTPUT_NAME = "demo-masked.mp4"
CONFIG_NAME = "demo-config.yaml"

DEMO_MASKS: list[dict[str, object]] = [
    {
        "name": "left-windows",
        "rect": [0.0, 0.30, 0.20, 0.30],
        "style": "fill",
        "color": "#303030",
    },
    {
        "name": "pavement-mosaic",
        "polygon": [[0.0, 0.55], [0.42, 0.55], [0.50, 1.0], [0.0, 1.0]],
        "style": "mosaic",
        "cell_size": 16,
    },
    {
        "name": "right-blur",
        "polygon": [[0.62, 0.30], [1.0, 0.30], [1.0, 1.0], [0.55, 1.0]],
        "style": "blur",
        "blur_radius": 16,
    },
    {
        "name": "tower",
        "polygon": [[0.74, 0.10], [0.87, 0.10], [0.87, 0.60], [0.74, 0.60]],
        "style": "fill",
        "color": "#ff00ff",
    },
]
"""The example masks: two fills, a mosaic and a blur, over where people walk.

Drawn in this order: the tower's fill comes last so the blur does not smear it."""


def demo_config() -> VeilConfig:
    """The built-in example configuration (validated like any other)."""
    return parse_config_dict({"masks": DEMO_MASKS}, "demo configuration")


def demo_command(
    output: Path = typer.Option(
        DEFAULT_OUTPUT_DIR, "--output", "-o", help="Folder for the demo's files."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Mask a built-in demo clip and say where the result is.

    Writes a 10 s synthetic street scene (640x360, people walking), the example
    configuration used, and the masked video into the output folder. Files from an
    earlier demo run are replaced.

    Example: veil demo --output /tmp/veil-demo
    """
    source = output / INPUT_NAME
    masked = output / OUTPUT_NAME
    config_path = output / CONFIG_NAME
    try:
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(
                f"{output}: cannot create the demo folder ({error.strerror})",
                hint="choose another folder with --output",
            ) from error
        config = demo_config()
        write_demo_clip(source)
        dump_config(config, config_path, overwrite=True)
        stats = mask_video(str(source), str(masked), config, overwrite=True, quiet=quiet)
    except VeilError as error:
        fail(error)
    typer.echo(f"demo input:   {source}")
    typer.echo(f"demo config:  {config_path}")
    typer.echo(f"masked video: {masked} ({stats.frames} frames at {stats.fps:.1f} fps)")
    typer.echo(f"try: veil mask {source} -o my-masked.mp4 --config {config_path}")


def register(app: typer.Typer) -> None:
    """Add ``veil demo`` to ``app``."""
    app.command("demo")(demo_command)
