"""The configuration file's schema (pydantic).

Everything here is declarative: no I/O, no runtime state. ``veil.config.compile``
turns a validated config into runtime objects. Unknown keys are rejected and every
field says what it does and what it trades off (``veil config schema`` prints it).
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from veil.config.colors import parse_color_rgb, rgb_to_hex
from veil.core.region import MAX_VERTICES, MIN_VERTICES
from veil.core.style import DEFAULT_BLUR_RADIUS, DEFAULT_MOSAIC_CELL, StyleKind


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


Color = Annotated[
    str,
    Field(
        description="A colour: #rrggbb, #rgb, 'r,g,b' (0-255) or a CSS name such as black.",
        examples=["#000000", "gray", "255,0,255"],
    ),
]


def _normalise_color(value: str) -> str:
    return rgb_to_hex(parse_color_rgb(value))


class Units(StrEnum):
    """How mask coordinates are given."""

    NORMALIZED = "normalized"
    """0..1 across the picture: the mask fits any resolution (recommended)."""
    PIXELS = "pixels"
    """Pixels of the source picture; converted using the source's size."""


class StyleConfig(Strict):
    """How a masked area is drawn."""

    style: StyleKind = Field(
        default=StyleKind.FILL,
        description=(
            "fill: solid colour (nothing survives); mosaic: flat cells (movement "
            "visible, identity not); blur: privacy-grade blur; silhouette: moving shapes "
            "filled flat (dynamic masks; like fill for static masks)."
        ),
    )
    color: Color = Field(default="#000000", description="Colour for fill and silhouette.")
    cell_size: int = Field(
        default=DEFAULT_MOSAIC_CELL,
        ge=4,
        le=512,
        description=(
            "Mosaic cell in pixels. Larger hides more: at the default a face 100 px "
            "tall becomes about 4 x 4 flat cells."
        ),
    )
    blur_radius: int = Field(
        default=DEFAULT_BLUR_RADIUS,
        ge=4,
        le=512,
        description="Blur radius in pixels: no detail finer than this survives.",
    )

    @field_validator("color")
    @classmethod
    def _check_color(cls, value: str) -> str:
        # Stored as #rrggbb so equal colours compare equal and dumps are uniform.
        return _normalise_color(value)


Point = tuple[float, float]


class MaskConfig(StyleConfig):
    """A static privacy mask: a rectangle or polygon burned into every output."""

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\- ]+$",
        description="A unique name, used to enable or disable the mask.",
    )
    enabled: bool = Field(default=True, description="Disabled masks are kept but not drawn.")
    units: Units = Field(default=Units.NORMALIZED, description="Coordinate units.")
    rect: tuple[float, float, float, float] | None = Field(
        default=None,
        description="A rectangle: x, y (top-left corner), width, height.",
    )
    polygon: list[Point] | None = Field(
        default=None,
        description=f"A polygon: {MIN_VERTICES} to {MAX_VERTICES} [x, y] points in order.",
    )

    # Each check is a field validator where it can be, so a validation error's location
    # (``masks.1.polygon``) points at the offending key and the loader can name its line.
    @field_validator("rect")
    @classmethod
    def _check_rect(
        cls, rect: tuple[float, float, float, float] | None, info: ValidationInfo
    ) -> tuple[float, float, float, float] | None:
        if rect is None:
            return None
        x, y, w, h = rect
        if w <= 0 or h <= 0:
            raise ValueError(f"rect width and height must be positive, got {w} x {h}")
        _check_range([x, y, x + w, y + h], info.data.get("units"))
        return rect

    @field_validator("polygon")
    @classmethod
    def _check_polygon(
        cls, polygon: list[Point] | None, info: ValidationInfo
    ) -> list[Point] | None:
        if polygon is None:
            return None
        if not MIN_VERTICES <= len(polygon) <= MAX_VERTICES:
            raise ValueError(
                f"a polygon needs {MIN_VERTICES} to {MAX_VERTICES} points, got {len(polygon)}"
            )
        _check_range([c for p in polygon for c in p], info.data.get("units"))
        return polygon

    @model_validator(mode="after")
    def _one_shape(self) -> MaskConfig:
        if (self.rect is None) == (self.polygon is None):
            raise ValueError(
                f"mask {self.name!r} needs exactly one of 'rect: [x, y, w, h]' or "
                "'polygon: [[x, y], ...]'"
            )
        return self


_EPSILON = 1e-9


def _check_range(values: list[float], units: object) -> None:
    """Coordinates must lie on the picture; ``units`` is absent when it failed to validate."""
    not_finite = [v for v in values if not math.isfinite(v)]
    if not_finite:
        raise ValueError(f"coordinates must be finite numbers, got {not_finite[0]}")
    if units is Units.NORMALIZED:
        # A hair of tolerance: x + w of a rectangle touching the edge can come out as
        # 1.0000000000000002 in floating point (0.7 + 0.3 does).
        bad = [v for v in values if not -_EPSILON <= v <= 1.0 + _EPSILON]
        if bad:
            raise ValueError(
                f"normalised coordinates must be within 0..1, got {bad[0]} "
                "(use 'units: pixels' for pixel coordinates)"
            )
    elif units is Units.PIXELS:
        bad = [v for v in values if v < 0]
        if bad:
            raise ValueError(f"pixel coordinates must not be negative, got {bad[0]}")


class Method(StrEnum):
    """What dynamic masking hides."""

    MOTION = "motion"
    """Anything that moves against the learned background."""
    HUMANS = "humans"
    """People found by the person detector (whole body)."""
    FACES = "faces"
    """Faces found by the face detector, plus the head region of each person."""
    BACKGROUND = "background"
    """Everything except people: the inverse of humans."""


MARGIN_PRESETS: dict[str, float] = {"small": 0.05, "medium": 0.10, "large": 0.25}
"""Named margins as a fraction of the object's size."""

_MARGIN_RE = re.compile(r"^(?P<value>\d+(\.\d+)?)\s*(?P<unit>px|%)$")


class PersonDetectorConfig(Strict):
    """Settings of the person detector (YOLOX-nano)."""

    input_size: int | str = Field(
        default="auto",
        description=(
            "Longest side the picture is scaled to for the detector (a multiple of 32). "
            "Larger finds smaller people, slower. 'auto': 0.85 of the picture's longest side "
            "within 800..1280 (1088 for 720p, 800 for 640x480)."
        ),
    )

    @field_validator("input_size")
    @classmethod
    def _check_input_size(cls, value: int | str) -> int | str:
        if isinstance(value, str):
            if value != "auto":
                raise ValueError(f"must be 'auto' or a multiple of 32, got {value!r}")
            return value
        if value % 32:
            raise ValueError(f"must be a multiple of 32, got {value}")
        if not 160 <= value <= 1920:
            raise ValueError(f"must be within 160..1920, got {value}")
        return value

    tiles: int = Field(
        default=1,
        ge=1,
        le=4,
        description=(
            "Split the picture into tiles x tiles overlapping parts as well as the whole, "
            "to find small, distant people; each tile costs one more detector run."
        ),
    )


class DynamicConfig(StyleConfig):
    """Masking that follows movement and people."""

    methods: list[Method] = Field(
        default_factory=list,
        description="Empty: dynamic masking is off. Combine freely, e.g. [humans, faces].",
    )
    sensitivity: int = Field(
        default=50,
        ge=0,
        le=100,
        description=(
            "Higher masks more, including things that are not people. Motion: how little "
            "change counts as movement. Humans/faces: the detector's score threshold "
            "0.7 * (100 - sensitivity) / 100, clipped to 0.05..0.95 (0.35 at the default 50)."
        ),
    )
    background_merge_time: float = Field(
        default=3600.0,
        gt=0,
        le=7 * 24 * 3600,
        description=(
            "Seconds something must stay still before motion masking takes it as the new "
            "normal background."
        ),
    )
    learning_time: float = Field(
        default=2.0,
        ge=0,
        le=600,
        description=(
            "Seconds at start, after a reset or a sudden light change during which the "
            "whole frame is masked while the motion model learns the scene."
        ),
    )
    min_object_size: float = Field(
        default=0.001,
        ge=0,
        le=0.5,
        description="Motion blobs smaller than this share of the frame are noise.",
    )
    margin: str = Field(
        default="medium",
        description=(
            "Extra area around each object ('blur size'): small, medium, large, "
            "'12px' or '10%' of the object's size. Larger leaks less at the edges."
        ),
    )
    hold_time: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Seconds a mask stays after its object was last seen.",
    )
    include: list[list[Point]] = Field(
        default_factory=list,
        description="Polygons (normalised): only these areas are masked dynamically. Empty: all.",
    )
    exclude: list[list[Point]] = Field(
        default_factory=list,
        description="Polygons (normalised): never masked dynamically (static masks still apply).",
    )
    person: PersonDetectorConfig = Field(
        default_factory=PersonDetectorConfig,
        description="Person detector settings, for the humans, faces and background methods.",
    )
    model_dir: str | None = Field(
        default=None,
        description="Folder with detector weights; else VEIL_MODEL_DIR, else the user cache.",
    )

    @field_validator("margin")
    @classmethod
    def _check_margin(cls, value: str) -> str:
        v = value.strip().lower()
        if v in MARGIN_PRESETS or _MARGIN_RE.match(v):
            return v
        raise ValueError(
            f"margin {value!r} is not valid: use small, medium, large, pixels such as '12px' "
            "or a percentage of the object such as '10%'"
        )

    @field_validator("include", "exclude")
    @classmethod
    def _check_areas(cls, areas: list[list[Point]]) -> list[list[Point]]:
        for area in areas:
            if not MIN_VERTICES <= len(area) <= MAX_VERTICES:
                raise ValueError(
                    f"an area needs {MIN_VERTICES} to {MAX_VERTICES} points, got {len(area)}"
                )
            for x, y in area:
                if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                    raise ValueError(f"area points must be normalised 0..1, got {[x, y]}")
        return areas

    @field_validator("methods")
    @classmethod
    def _no_duplicate_methods(cls, methods: list[Method]) -> list[Method]:
        if len(set(methods)) != len(methods):
            raise ValueError("each method may appear once in 'methods'")
        return methods


class VeilConfig(Strict):
    """A Veil masking configuration."""

    version: Literal[1] = Field(default=1, description="Configuration format version.")
    masks: list[MaskConfig] = Field(
        default_factory=list, description="Static privacy masks, drawn in this order."
    )
    dynamic: DynamicConfig = Field(
        default_factory=DynamicConfig,
        description="Masks that follow movement and people; off unless 'methods' is set.",
    )

    @field_validator("masks")
    @classmethod
    def _unique_names(cls, masks: list[MaskConfig]) -> list[MaskConfig]:
        seen: dict[str, int] = {}
        for index, mask in enumerate(masks):
            if mask.name in seen:
                raise ValueError(
                    f"masks[{seen[mask.name]}] and masks[{index}] are both named "
                    f"{mask.name!r}: names must be unique"
                )
            seen[mask.name] = index
        return masks
