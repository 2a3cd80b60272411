"""`veil config ...`: output, messages and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from veil.cli.config_cmd import register
from veil.config import MaskConfig, VeilConfig, dump_config, load_config
from veil.config.onvif import masks_to_onvif_xml
from veil.config.schema import Units
from veil.core.style import StyleKind

GOOD = """\
masks:
  - name: door
    rect: [0.1, 0.1, 0.3, 0.2]
  - name: window
    polygon: [[0.5, 0.5], [0.9, 0.5], [0.7, 0.9]]
    style: mosaic
    enabled: false
dynamic:
  methods: [humans, faces]
"""

BAD = """\
masks:
  - name: door
    rect: [0.1, 0.1, 0.3, 0.2]
    colour: red
  - name: window
    polygon: [[0.5, 0.5], [0.9, 0.5]]
"""


@pytest.fixture
def app() -> typer.Typer:
    """A root app holding only the config group, so these tests do not depend on the
    other command groups; ``test_the_real_veil_command_*`` cover the assembled CLI."""
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Root."""

    register(root)
    return root


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- validate --------------------------------------------------------------------------------


def test_validate_summarises_a_good_file(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    path = write(tmp_path / "masks.yaml", GOOD)
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: OK, 2 masks (1 enabled), dynamic: humans, faces\n"
    assert result.stderr == ""


def test_validate_lists_each_error_with_its_line_and_exits_2(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    path = write(tmp_path / "masks.yaml", BAD)
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {path}:4: unknown key 'colour' in masks[0]; did you mean 'color'?",
        f"{path}:6: masks[1].polygon: a polygon needs 3 to 64 points, got 2",
    ]


def test_validate_keeps_brackets_in_messages(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    # Rich would swallow "[x, y, width, height]" as markup if it were not escaped.
    path = write(tmp_path / "m.yaml", "masks:\n  - name: a\n    rect: 1\n")
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2
    assert "expected a list such as [x, y, width, height], got 1" in result.stderr


def test_validate_missing_file_exits_2(app: typer.Typer, runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "validate", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert "none.yaml' does not exist" in result.stderr


def test_validate_warns_when_nothing_is_hidden(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "m.yaml", "masks:\n  - name: a\n    rect: [0, 0, 1, 1]\n    enabled: no\n"
    )
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 0
    assert result.stdout == f"{path}: OK, 1 mask (0 enabled), dynamic: off\n"
    assert "hides nothing" in result.stderr


# --- schema ------------------------------------------------------------------------------


def test_schema_prints_the_json_schema(app: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(app, ["config", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "VeilConfig"
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["additionalProperties"] is False
    mask = schema["$defs"]["MaskConfig"]
    assert mask["additionalProperties"] is False
    assert "rectangle" in mask["properties"]["rect"]["description"]
    assert mask["properties"]["polygon"]["description"].startswith("A polygon: 3 to 64")


# --- import-onvif --------------------------------------------------------------------------

MASKS = [
    MaskConfig(name="door", rect=(0.1, 0.1, 0.3, 0.2), color="#00ff00"),
    MaskConfig(
        name="window",
        polygon=[(0.5, 0.5), (0.9, 0.5), (0.7, 0.9)],
        style=StyleKind.BLUR,
        enabled=False,
    ),
]


def test_import_onvif_xml_writes_a_config(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    source = write(tmp_path / "camera.xml", masks_to_onvif_xml(MASKS, "VSC_1"))
    out = tmp_path / "masks.yaml"
    result = runner.invoke(app, ["config", "import-onvif", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out}: wrote 2 masks from {source}\n"
    config = load_config(out)
    assert [m.name for m in config.masks] == ["door", "window"]
    assert config.masks[0].rect == pytest.approx((0.1, 0.1, 0.3, 0.2))
    assert config.masks[0].color == "#00ff00"
    assert (config.masks[1].style, config.masks[1].enabled) == (StyleKind.BLUR, False)


def test_import_onvif_refuses_to_overwrite_without_the_flag(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    source = write(tmp_path / "camera.xml", masks_to_onvif_xml(MASKS, "VSC_1"))
    out = write(tmp_path / "masks.yaml", "precious: true\n")
    result = runner.invoke(app, ["config", "import-onvif", str(source), "-o", str(out)])
    assert result.exit_code == 2
    assert "already exists" in result.stderr
    assert "--overwrite" in result.stderr
    assert out.read_text(encoding="utf-8") == "precious: true\n"

    result = runner.invoke(
        app, ["config", "import-onvif", str(source), "-o", str(out), "--overwrite"]
    )
    assert result.exit_code == 0
    assert len(load_config(out).masks) == 2


def test_import_onvif_json_and_sniffed_formats(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    document = {"Masks": [{"token": "m", "Polygon": {"Point": [
        {"x": -1, "y": 1}, {"x": 1, "y": 1}, {"x": 0, "y": -1}]}, "Type": "Pixelated",
        "Enabled": True}]}  # fmt: skip
    for name, text in [
        ("a.json", json.dumps(document)),
        ("b.txt", json.dumps(document)),
        ("c.txt", "\n " + masks_to_onvif_xml(MASKS[:1], "t")),
    ]:
        source = write(tmp_path / name, text)
        out = tmp_path / f"{name}.yaml"
        result = runner.invoke(app, ["config", "import-onvif", str(source), "-o", str(out)])
        assert result.exit_code == 0, (name, result.output)
        assert len(load_config(out).masks) == 1


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.xml", "<a><b></a>", "bad.xml:1:"),
        ("bad.json", '{"Masks": [}', "bad.json:1:"),
        ("empty.xml", f'<GetMasksResponse xmlns="{"http://www.onvif.org/ver20/media/wsdl"}"/>',
         "holds no masks"),
        ("evil.xml", '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "DOCTYPE"),
    ],
)  # fmt: skip
def test_import_onvif_bad_input_exits_2_and_writes_nothing(
    app: typer.Typer, runner: CliRunner, tmp_path: Path, name: str, text: str, message: str
) -> None:
    source = write(tmp_path / name, text)
    out = tmp_path / "out.yaml"
    result = runner.invoke(app, ["config", "import-onvif", str(source), "-o", str(out)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not out.exists()


def test_import_onvif_missing_source_exits_2(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["config", "import-onvif", str(tmp_path / "no.xml"), "-o", str(tmp_path / "o.yaml")]
    )
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


# --- export-onvif --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".xml", ".json"])
def test_export_then_import_gives_the_same_masks(
    app: typer.Typer, runner: CliRunner, tmp_path: Path, suffix: str
) -> None:
    config_file = tmp_path / "masks.yaml"
    dump_config(VeilConfig(masks=MASKS), config_file)
    exported = tmp_path / f"camera{suffix}"
    result = runner.invoke(
        app, ["config", "export-onvif", str(config_file), "-o", str(exported), "--token", "VSC_9"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{exported}: wrote 2 ONVIF masks\n"
    assert "VSC_9" in exported.read_text(encoding="utf-8")

    back = tmp_path / "back.yaml"
    result = runner.invoke(app, ["config", "import-onvif", str(exported), "-o", str(back)])
    assert result.exit_code == 0, result.output
    got = load_config(back).masks
    assert [m.model_dump(exclude={"rect"}) for m in got] == [
        m.model_dump(exclude={"rect"}) for m in MASKS
    ]
    assert got[0].rect == pytest.approx(MASKS[0].rect)


def test_export_pixel_masks_needs_width_and_height(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    config_file = tmp_path / "px.yaml"
    pixel_mask = MaskConfig(name="px", units=Units.PIXELS, rect=(160, 120, 320, 240))
    dump_config(VeilConfig(masks=[pixel_mask]), config_file)
    out = tmp_path / "o.xml"
    base = ["config", "export-onvif", str(config_file), "-o", str(out)]

    result = runner.invoke(app, base)
    assert result.exit_code == 2
    assert "'px' is in pixels" in result.stderr
    assert "--width 1920 --height 1080" in result.stderr

    result = runner.invoke(app, [*base, "--width", "640"])
    assert result.exit_code == 2
    assert "give both --width and --height" in result.stderr

    result = runner.invoke(app, [*base, "--width", "640", "--height", "480"])
    assert result.exit_code == 0, result.output
    assert 'x="-0.5" y="0.5"' in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("config_text", "output", "message"),
    [
        ("masks:\n  - name: a\n    rect: [0, 0, 1, 1]\n", "out.txt",
         "name the output .xml or .json"),
        ("dynamic:\n  methods: [humans]\n", "out.xml", "no static masks to export"),
        ("masks: 3\n", "out.xml", "masks: expected a list of masks"),
    ],
)  # fmt: skip
def test_export_onvif_errors_exit_2(
    app: typer.Typer,
    runner: CliRunner,
    tmp_path: Path,
    config_text: str,
    output: str,
    message: str,
) -> None:
    config_file = write(tmp_path / "c.yaml", config_text)
    out = tmp_path / output
    result = runner.invoke(app, ["config", "export-onvif", str(config_file), "-o", str(out)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not out.exists()


def test_export_onvif_refuses_to_overwrite(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    config_file = tmp_path / "masks.yaml"
    dump_config(VeilConfig(masks=MASKS), config_file)
    out = write(tmp_path / "o.json", "keep")
    result = runner.invoke(app, ["config", "export-onvif", str(config_file), "-o", str(out)])
    assert result.exit_code == 2
    assert out.read_text(encoding="utf-8") == "keep"


def test_export_into_a_missing_folder_exits_1(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    config_file = tmp_path / "masks.yaml"
    dump_config(VeilConfig(masks=MASKS), config_file)
    out = tmp_path / "no" / "o.xml"
    result = runner.invoke(app, ["config", "export-onvif", str(config_file), "-o", str(out)])
    assert result.exit_code == 1
    assert "does not exist" in result.stderr


# --- Help ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "schema", "import-onvif", "export-onvif"])
def test_every_command_has_help_with_an_example(
    app: typer.Typer, runner: CliRunner, command: str
) -> None:
    result = runner.invoke(app, ["config", command, "--help"])
    assert result.exit_code == 0
    assert f"Example: veil config {command}" in result.stdout


# --- The assembled `veil` command ----------------------------------------------------------


def test_the_real_veil_command_validates_through_cli_runner(
    runner: CliRunner, tmp_path: Path
) -> None:
    from veil.cli.app import app as veil_app

    path = write(tmp_path / "masks.yaml", GOOD)
    result = runner.invoke(veil_app, ["config", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "OK, 2 masks" in result.stdout


def test_the_real_veil_command_exits_2_on_a_bad_config(tmp_path: Path) -> None:
    path = write(tmp_path / "masks.yaml", BAD)
    done = subprocess.run(
        [sys.executable, "-m", "veil", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"{path}:6: masks[1].polygon: a polygon needs 3 to 64 points, got 2" in done.stderr
    assert "Traceback" not in done.stderr
