"""Configuration loading: every error names its file, line and fix; dumps load back equal."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veil.config import (
    DynamicConfig,
    MaskConfig,
    VeilConfig,
    dump_config,
    load_config,
    load_config_text,
    parse_config_dict,
)
from veil.config.loader import (
    MAX_REPORTED,
    ConfigValidationError,
    dump_config_text,
    format_path,
    write_text_atomic,
)
from veil.config.schema import Method, Units
from veil.core.errors import ConfigError, OutputError, VeilError
from veil.core.style import StyleKind


def write(tmp_path: Path, text: str, name: str = "masks.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value


GOOD = """
    version: 1
    masks:
      - name: door
        rect: [0.1, 0.1, 0.3, 0.2]
        color: red
      - name: window
        polygon: [[0.5, 0.5], [0.9, 0.5], [0.7, 0.9]]
        style: mosaic
        cell_size: 32
        enabled: false
      - name: sign
        units: pixels
        rect: [10, 20, 300, 40]
        style: blur
    dynamic:
      methods: [humans, faces]
      margin: 10%
"""


def test_a_valid_file_loads_with_every_value(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    door, window, sign = config.masks
    assert door == MaskConfig(name="door", rect=(0.1, 0.1, 0.3, 0.2), color="#ff0000")
    assert window.polygon == [(0.5, 0.5), (0.9, 0.5), (0.7, 0.9)]
    assert (window.style, window.cell_size, window.enabled) == (StyleKind.MOSAIC, 32, False)
    assert (sign.units, sign.rect, sign.style) == (Units.PIXELS, (10, 20, 300, 40), StyleKind.BLUR)
    assert config.dynamic.methods == [Method.HUMANS, Method.FACES]
    assert config.dynamic.margin == "10%"


def test_values_are_plain_python_types(tmp_path: Path) -> None:
    # ruamel's ScalarFloat and CommentedSeq must not leak into the validated config.
    config = load_config(write(tmp_path, GOOD))
    assert type(config.masks[0].rect[0]) is float  # type: ignore[index]
    assert type(config.masks[1].polygon) is list
    assert type(config.masks[1].cell_size) is int


# --- Files that cannot be read -------------------------------------------------------------


def test_missing_file_says_so_with_exit_code_2(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(caught.value)
    assert "does not exist" in str(caught.value)
    assert caught.value.exit_code == 2
    assert isinstance(caught.value, VeilError)


def test_a_folder_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_binary_file_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "video.yaml"
    path.write_bytes(b"masks:\n  - name: a\n\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8") as caught:
        load_config(path)
    assert caught.value.location == f"{path}:3"


def test_empty_file_is_an_error_not_an_empty_config(tmp_path: Path) -> None:
    # An empty config would mask nothing: a privacy tool must not accept it silently.
    error = load_error(tmp_path, "# only a comment\n")
    assert "empty" in str(error)
    assert "masks:" in str(error)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    error = load_error(tmp_path, "- name: door\n  rect: [0, 0, 1, 1]\n")
    assert str(error).startswith(f"{tmp_path / 'masks.yaml'}:1: the top level must be a mapping")
    assert "got a list" in str(error)


# --- YAML syntax -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "location", "words"),
    [
        ("masks:\n  - name: a\n    rect: [0.1, 0.1, 0.2\n  - name: b\n", ":4:", "flow sequence"),
        ("masks:\n  - name: a\n\trect: [0, 0, 1, 1]\n", ":3:1:", "'\\t'"),
        ("masks: []\nmasks: []\n", ":2:1:", "key 'masks' appears twice"),
        ("masks:\n  - name: a\n    rect: *nowhere\n", ":3:", "undefined alias"),
    ],
)
def test_yaml_syntax_errors_give_line_and_column(
    tmp_path: Path, text: str, location: str, words: str
) -> None:
    error = load_error(tmp_path, text)
    assert location in str(error)
    assert words in str(error)
    assert "masks.yaml" in str(error)


def test_yaml_tags_are_refused(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """
        masks:
          - name: a
            rect: !!python/object/apply:os.system ["echo owned"]
        """,
    )
    assert "masks.yaml:3" in str(error)
    assert "tags" in str(error)


# --- Validation errors, mapped to lines ------------------------------------------------------

BAD = """
    version: 1
    masks:
      - name: door
        rect: [0.1, 0.1, 0.3, 0.2]
        colour: red
      - name: window
        polygon: [[0.1, 0.1], [0.2, 0.2]]
        style: mosaik
      - name: sign
        rect: [0.5, 0.5, 0.9, 0.2]
        cell_size: 2
      - rect: [0.1, 0.1, 0.1, 0.1]
      - name: x
        polygon:
          - [0.1, 0.1]
          - [0.2, oops]
          - [0.3, 0.1]
    dynamic:
      methods: [humans, facez]
      margin: huge
"""


def test_every_problem_is_listed_with_its_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, BAD)
    assert isinstance(error, ConfigValidationError)
    src = str(tmp_path / "masks.yaml")
    lines = str(error).splitlines()
    assert lines == [
        f"{src}:5: unknown key 'colour' in masks[0]; did you mean 'color'?",
        f"{src}:7: masks[1].polygon: a polygon needs 3 to 64 points, got 2",
        f"{src}:8: masks[1].style: expected 'fill', 'mosaic', 'blur' or 'silhouette', "
        "got 'mosaik'; did you mean 'mosaic'?",
        f"{src}:10: masks[2].rect: normalised coordinates must be within 0..1, got 1.4 "
        "(use 'units: pixels' for pixel coordinates)",
        f"{src}:11: masks[2].cell_size: must be greater than or equal to 4, got 2",
        f"{src}:12: masks[3] needs the key 'name'",
        f"{src}:16: masks[4].polygon[1][1]: must be a valid number, unable to parse string "
        "as a number, got 'oops'",
        f"{src}:19: dynamic.methods[1]: expected 'motion', 'humans', 'faces' or 'background', "
        "got 'facez'; did you mean 'faces'?",
        f"{src}:20: dynamic.margin: margin 'huge' is not valid: use small, medium, large, "
        "pixels such as '12px' or a percentage of the object such as '10%'",
    ]
    assert error.location == f"{src}:5"
    assert [issue.line for issue in error.issues] == [5, 7, 8, 10, 11, 12, 16, 19, 20]
    assert error.exit_code == 2


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        # Unknown keys, with a suggestion or the list of valid keys.
        ("masks:\n  - name: a\n    rect: [0, 0, 1, 1]\n    colour: red\n", 4,
         "unknown key 'colour' in masks[0]; did you mean 'color'?"),
        ("mask:\n  - name: a\n", 1, "unknown key 'mask' in the top level; did you mean 'masks'?"),
        ("masks: []\nzzz: 1\n", 2, "valid keys: dynamic, masks, version"),
        ("dynamic:\n  person:\n    tile: 2\n", 3,
         "unknown key 'tile' in dynamic.person; did you mean 'tiles'?"),
        # Wrong types.
        ("masks:\n  name: a\n", 1,
         "masks: expected a list of masks, each starting with '- ', got a mapping"),
        ("masks:\n  - door\n", 2, "masks[0]: expected a mapping of keys, got 'door'"),
        ("masks:\n  - name: a\n    rect: 0.1,0.1,0.2,0.2\n", 3,
         "masks[0].rect: expected a list such as [x, y, width, height], got '0.1,0.1,0.2,0.2'"),
        ("masks:\n  - name: a\n    rect: [0, 0, 1, 1]\n    enabled: maybe\n", 4,
         "masks[0].enabled: must be a valid boolean"),
        ("masks:\n  - name: a\n    rect: [0, 0, 1, 1]\n    cell_size: 12.5\n", 4,
         "masks[0].cell_size: must be a valid integer, got a number with a fractional part"),
        ("masks:\n  - name: a\n    rect: [0, 0, 1, 1, 1]\n", 3, "masks[0].rect: tuple should have"),
        ("version: 2\nmasks: []\n", 1, "version: expected 1, got 2"),
        # Bounds and shape rules.
        ("masks:\n  - name: a\n    rect: [0, 0, 1, 1]\n    color: purpel\n", 4,
         "masks[0].color: unknown colour 'purpel'"),
        ("masks:\n  - name: a\n    rect: [0.1, 0.1, 0, 0.2]\n", 3,
         "masks[0].rect: rect width and height must be positive, got 0.0 x 0.2"),
        ("masks:\n  - name: a\n    units: pixels\n    rect: [-5, 0, 10, 10]\n", 4,
         "masks[0].rect: pixel coordinates must not be negative, got -5.0"),
        ("masks:\n  - name: a\n    units: pixels\n    rect: [0, 0, .inf, 10]\n", 4,
         "masks[0].rect: coordinates must be finite numbers, got inf"),
        ("masks:\n  - name: a\n    polygon: [[0, 0], [1, .nan], [1, 1]]\n", 3,
         "masks[0].polygon: coordinates must be finite numbers, got nan"),
        ("masks:\n  - name: a\n", 2,
         "masks[0]: mask 'a' needs exactly one of 'rect: [x, y, w, h]' or 'polygon: "),
        ("masks:\n  - name: a/b\n    rect: [0, 0, 1, 1]\n", 2,
         "masks[0].name: string should match"),
        ("masks:\n  - name: a\n    rect: [0, 0, 1, 1]\n  - name: a\n    rect: [0, 0, 1, 1]\n",
         1, "masks: masks[0] and masks[1] are both named 'a': names must be unique"),
        ("dynamic:\n  methods: [motion, motion]\n", 2,
         "dynamic.methods: each method may appear once in 'methods'"),
        ("dynamic:\n  exclude: [[[0, 0], [2, 0], [1, 1]]]\n", 2,
         "dynamic.exclude: area points must be normalised 0..1, got [2.0, 0.0]"),
        ("dynamic:\n  person: {input_size: 650}\n", 2,
         "dynamic.person.input_size: must be a multiple of 32, got 650"),
    ],
)  # fmt: skip
def test_each_validation_error_has_its_line_and_message(
    tmp_path: Path, body: str, line: int, message: str
) -> None:
    error = load_error(tmp_path, body)
    first = str(error).splitlines()[0]
    assert first.startswith(f"{tmp_path / 'masks.yaml'}:{line}: ")
    assert message in first


def test_errors_in_merged_keys_point_at_the_mapping_that_merges_them(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """
        masks:
          - &base
            name: a
            style: mosaik
            rect: [0, 0, 1, 1]
          - <<: *base
            name: b
        """,
    )
    src = tmp_path / "masks.yaml"
    assert str(error).splitlines() == [
        f"{src}:4: masks[0].style: expected 'fill', 'mosaic', 'blur' or 'silhouette', "
        "got 'mosaik'; did you mean 'mosaic'?",
        f"{src}:6: masks[1].style: expected 'fill', 'mosaic', 'blur' or 'silhouette', "
        "got 'mosaik'; did you mean 'mosaic'?",
    ]


def test_polygon_with_65_points_is_refused(tmp_path: Path) -> None:
    points = ", ".join(f"[{i / 100}, 0.5]" for i in range(65))
    error = load_error(tmp_path, f"masks:\n  - name: a\n    polygon: [{points}]\n")
    assert "masks[0].polygon: a polygon needs 3 to 64 points, got 65" in str(error)


def test_many_errors_are_capped_and_counted(tmp_path: Path) -> None:
    body = "masks:\n" + "".join(
        f"  - name: m{i}\n    rect: [0, 0, 1, 1]\n    colr: red\n" for i in range(MAX_REPORTED + 3)
    )
    error = load_error(tmp_path, body)
    lines = str(error).splitlines()
    assert len(lines) == MAX_REPORTED + 1
    assert lines[-1] == "... and 3 more problems"
    assert isinstance(error, ConfigValidationError)
    assert len(error.issues) == MAX_REPORTED + 3


def test_load_config_text_names_the_given_source() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text("masks:\n  - name: a\n    rect: [0, 0, 2, 1]\n", "camera-3")
    assert str(caught.value).startswith("camera-3:3: masks[0].rect: ")


def test_parse_config_dict_gives_the_same_messages_without_lines() -> None:
    with pytest.raises(ConfigValidationError) as caught:
        parse_config_dict(
            {"masks": [{"name": "cli", "polygon": [[0.1, 0.1], [0.2, 0.2]], "colour": "red"}]},
            "--polygon",
        )
    assert str(caught.value).splitlines() == [
        "--polygon: masks[0].polygon: a polygon needs 3 to 64 points, got 2",
        "--polygon: unknown key 'colour' in masks[0]; did you mean 'color'?",
    ]
    assert all(issue.line is None for issue in caught.value.issues)


def test_parse_config_dict_accepts_a_valid_dict() -> None:
    config = parse_config_dict({"masks": [{"name": "a", "rect": [0, 0, 0.5, 0.5]}]})
    assert config.masks[0].rect == (0, 0, 0.5, 0.5)


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        ((), ""),
        (("masks", 1, "polygon", 0, 1), "masks[1].polygon[0][1]"),
        (("dynamic",), "dynamic"),
    ],
)
def test_format_path(loc: tuple[int | str, ...], text: str) -> None:
    assert format_path(loc) == text


# --- Dumping -----------------------------------------------------------------------------

CONFIGS = [
    VeilConfig(),
    VeilConfig(masks=[MaskConfig(name="door", rect=(0.1, 0.2, 0.3, 0.4))]),
    VeilConfig(
        masks=[
            MaskConfig(name="a b", rect=(0.7, 0.0, 0.3, 1.0), color="#12abef", enabled=False),
            MaskConfig(
                name="poly",
                polygon=[(0.1, 0.1), (0.9, 0.1), (0.123456789, 0.987654321)],
                style=StyleKind.MOSAIC,
                cell_size=40,
            ),
            MaskConfig(
                name="px", units=Units.PIXELS, rect=(10, 20, 300, 40), style=StyleKind.BLUR,
                blur_radius=64,
            ),
        ],
        dynamic=DynamicConfig(
            methods=[Method.HUMANS, Method.MOTION],
            sensitivity=80,
            margin="12px",
            exclude=[[(0.0, 0.0), (1.0, 0.0), (1.0, 0.25)]],
            style=StyleKind.SILHOUETTE,
        ),
    ),
]  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS)
def test_dump_then_load_gives_the_same_config(tmp_path: Path, config: VeilConfig) -> None:
    path = tmp_path / "out.yaml"
    dump_config(config, path)
    assert load_config(path) == config
    assert load_config_text(dump_config_text(config)) == config


def test_dump_is_readable_yaml(tmp_path: Path) -> None:
    text = dump_config_text(CONFIGS[1])
    assert "version: 1" in text
    # Name first, coordinates as one flow list, defaults left out.
    assert "  - name: door\n    rect: [0.1, 0.2, 0.3, 0.4]\n" in text
    assert "cell_size" not in text
    assert "dynamic" not in text


def test_dump_replaces_atomically_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "masks.yaml"
    path.write_text("old", encoding="utf-8")
    path.chmod(0o640)
    dump_config(CONFIGS[1], path)
    assert load_config(path) == CONFIGS[1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.yaml"]  # no temp file left


def test_dump_refuses_to_overwrite_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "masks.yaml"
    path.write_text("keep me", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"already exists.*--overwrite"):
        dump_config(CONFIGS[1], path, overwrite=False)
    assert path.read_text(encoding="utf-8") == "keep me"


def test_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "masks.yaml"
    path.write_text("old config", encoding="utf-8")

    def no_space(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OutputError, match="No space left on device"):
        write_text_atomic(path, "new config", overwrite=True)
    assert path.read_text(encoding="utf-8") == "old config"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.yaml"]


def test_dump_into_a_missing_folder_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        dump_config(CONFIGS[1], tmp_path / "nowhere" / "masks.yaml")


# --- The JSON schema ---------------------------------------------------------------------


def test_json_schema_describes_every_key_and_forbids_extra_keys() -> None:
    schema = VeilConfig.model_json_schema()
    models = [schema, *(m for m in schema["$defs"].values() if "properties" in m)]
    assert {m.get("title") for m in models} >= {"VeilConfig", "MaskConfig", "DynamicConfig"}
    for model in models:
        assert model["additionalProperties"] is False, model.get("title")
        assert model.get("description"), model.get("title")
        for key, prop in model["properties"].items():
            assert prop.get("description"), f"{model.get('title')}.{key} has no description"


_unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def _configs(draw: st.DrawFn) -> VeilConfig:
    masks = []
    for index in range(draw(st.integers(min_value=0, max_value=4))):
        style = draw(st.sampled_from(list(StyleKind)))
        common = {
            "name": f"mask {index}",
            "style": style,
            "enabled": draw(st.booleans()),
            "cell_size": draw(st.integers(min_value=4, max_value=512)),
            "blur_radius": draw(st.integers(min_value=4, max_value=512)),
            "color": "#" + "".join(draw(st.sampled_from("0123456789abcdef")) for _ in range(6)),
        }
        if draw(st.booleans()):
            points = draw(st.lists(st.tuples(_unit, _unit), min_size=3, max_size=64))
            masks.append(MaskConfig(polygon=points, **common))
        else:
            size = st.floats(min_value=1e-6, max_value=4000, allow_nan=False)
            rect = (draw(size), draw(size), draw(size), draw(size))
            masks.append(MaskConfig(units=Units.PIXELS, rect=rect, **common))
    methods = draw(st.lists(st.sampled_from(list(Method)), unique=True))
    dynamic = DynamicConfig(
        methods=methods,
        sensitivity=draw(st.integers(min_value=0, max_value=100)),
        min_object_size=draw(st.floats(min_value=0, max_value=0.5)),
        margin=draw(st.sampled_from(["small", "large", "12px", "7.5%"])),
    )
    return VeilConfig(masks=masks, dynamic=dynamic)


@settings(max_examples=40, deadline=None)
@given(config=_configs())
def test_any_config_survives_dump_and_load(config: VeilConfig) -> None:
    assert load_config_text(dump_config_text(config)) == config
