"""`veil config`: check a configuration, print its schema, exchange masks with ONVIF.

Errors print one line per problem on stderr and exit with the error's code (2 for a
bad configuration or usage, 1 for an unwritable output), whether the commands run
through ``veil``'s entry point or are invoked directly (tests, embedding).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from veil.cli.errors import fail
from veil.config.loader import dump_config, load_config, parse_config_dict, write_text_atomic
from veil.config.onvif import (
    DEFAULT_CONFIGURATION_TOKEN,
    masks_from_onvif_json,
    masks_from_onvif_xml,
    masks_to_onvif_json,
    masks_to_onvif_xml,
)
from veil.config.schema import MaskConfig, VeilConfig
from veil.core.errors import ConfigError, UsageError, VeilError

config_app = typer.Typer(
    name="config",
    help=(
        "Check configuration files, print their schema, and exchange masks with ONVIF "
        "cameras.\n\nExample: veil config validate masks.yaml"
    ),
    no_args_is_help=True,
)

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group to ``app``."""
    app.add_typer(config_app, name="config")


@config_app.command("validate")
def validate_command(
    file: Path = typer.Argument(..., help="The configuration file (YAML).", show_default=False),
) -> None:
    """Check a configuration file: every problem is listed with its line.

    Prints a summary when the file is valid; exits with 2 when it is not.

    Example: veil config validate masks.yaml
    """
    try:
        config = load_config(file)
    except VeilError as error:
        fail(error)
    enabled = sum(mask.enabled for mask in config.masks)
    methods = ", ".join(m.value for m in config.dynamic.methods) or "off"
    typer.echo(
        f"{file}: OK, {len(config.masks)} mask{'' if len(config.masks) == 1 else 's'} "
        f"({enabled} enabled), dynamic: {methods}"
    )
    if enabled == 0 and not config.dynamic.methods:
        _stderr.print(
            f"warning: {file} hides nothing: no enabled mask and no dynamic 'methods'",
            markup=False,
        )


@config_app.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of configuration files, with every key described.

    Editors that read JSON Schema (VS Code's YAML extension, for one) use it to
    complete and check configuration files as they are typed.

    Example: veil config schema > veil.schema.json
    """
    schema = VeilConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    typer.echo(json.dumps(schema, indent=2))


@config_app.command("import-onvif")
def import_onvif_command(
    source: Path = typer.Argument(
        ...,
        help="ONVIF masks: a GetMasksResponse (.xml) or its JSON form (.json).",
        show_default=False,
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="The configuration file to write (YAML).", show_default=False
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the output file if it exists."
    ),
) -> None:
    """Turn ONVIF Media2 privacy masks into a Veil configuration.

    Types map as Color -> fill, Pixelated -> mosaic, Blurred -> blur; each mask is
    named by its ONVIF token.

    Example: veil config import-onvif camera-masks.xml -o masks.yaml
    """
    try:
        masks = _read_onvif(source)
        if not masks:
            raise ConfigError(
                "the document holds no masks", location=str(source), hint="nothing to import"
            )
        config = parse_config_dict({"masks": [m.model_dump() for m in masks]}, str(source))
        dump_config(config, output, overwrite=overwrite)
    except VeilError as error:
        fail(error)
    typer.echo(f"{output}: wrote {len(masks)} mask{'' if len(masks) == 1 else 's'} from {source}")


@config_app.command("export-onvif")
def export_onvif_command(
    config_file: Path = typer.Argument(..., help="The configuration (YAML).", show_default=False),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Where to write: .xml (a tr2:GetMasksResponse) or .json.",
        show_default=False,
    ),
    token: str = typer.Option(
        DEFAULT_CONFIGURATION_TOKEN,
        "--token",
        help="The camera's video source configuration token (GetVideoSourceConfigurations).",
    ),
    width: int | None = typer.Option(
        None, "--width", min=1, help="Picture width, for masks in pixels."
    ),
    height: int | None = typer.Option(
        None, "--height", min=1, help="Picture height, for masks in pixels."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the output file if it exists."
    ),
) -> None:
    """Write a configuration's static masks in ONVIF Media2 form.

    Mosaic cell size and blur radius have no ONVIF field and are left out.

    Example: veil config export-onvif masks.yaml -o masks.xml --token VSC_1
    """
    try:
        if (width is None) != (height is None):
            raise UsageError("give both --width and --height, or neither")
        resolution = (width, height) if width is not None and height is not None else None
        config = load_config(config_file)
        if not config.masks:
            raise ConfigError(
                "the configuration has no static masks to export",
                location=str(config_file),
                hint="ONVIF masks are static; dynamic settings have no ONVIF form",
            )
        text = _write_onvif(config.masks, output, token, resolution)
        write_text_atomic(output, text, overwrite=overwrite)
    except VeilError as error:
        fail(error)
    count = len(config.masks)
    typer.echo(f"{output}: wrote {count} ONVIF mask{'' if count == 1 else 's'}")


def _read_onvif(source: Path) -> list[MaskConfig]:
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{str(source)!r} does not exist", hint="check the path of the ONVIF file"
        ) from None
    except OSError as error:
        raise ConfigError(f"cannot read {str(source)!r}: {error.strerror or error}") from None
    suffix = source.suffix.lower()
    # Without a telling extension, the first character decides: '<' is XML.
    is_xml = suffix == ".xml" or (suffix != ".json" and data.lstrip()[:1] == b"<")
    if is_xml:
        return masks_from_onvif_xml(data, str(source))
    return masks_from_onvif_json(data, str(source))


def _write_onvif(
    masks: list[MaskConfig], output: Path, token: str, resolution: tuple[int, int] | None
) -> str:
    suffix = output.suffix.lower()
    if suffix == ".xml":
        return masks_to_onvif_xml(masks, token, resolution=resolution)
    if suffix == ".json":
        return masks_to_onvif_json(masks, token, resolution=resolution)
    raise UsageError(
        f"cannot tell the ONVIF format of {str(output)!r}",
        hint="name the output .xml or .json",
    )
