"""MaskPlan: what to hide in one frame, how, and why."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from veil.core.region import BBox, BoolMask
from veil.core.style import Style


class MaskReason(str, Enum):
    """Why an area is hidden; recorded so outputs and audits can say why."""

    STATIC = "static"
    MOTION = "motion"
    PERSON = "person"
    FACE = "face"
    BACKGROUND = "background"
    REDACTION = "redaction"
    FAIL_CLOSED = "fail-closed"
    """The whole frame, because the pipeline could not prove what is safe to show."""


@dataclass(frozen=True, slots=True, eq=False)
class MaskLayer:
    """One area drawn in one style.

    ``coverage`` is a boolean mask of the pixels inside ``bbox`` only (shape
    ``(bbox.height, bbox.width)``), so small masks cost little on large frames.
    """

    bbox: BBox
    coverage: BoolMask
    style: Style
    reason: MaskReason
    label: str = ""

    def __post_init__(self) -> None:
        if self.coverage.shape != (self.bbox.height, self.bbox.width):
            raise ValueError(
                f"coverage shape {self.coverage.shape} does not match bbox "
                f"{(self.bbox.height, self.bbox.width)}"
            )

    @classmethod
    def full_frame(cls, width: int, height: int, style: Style, reason: MaskReason) -> MaskLayer:
        return cls(
            bbox=BBox(0, 0, width, height),
            coverage=np.ones((height, width), dtype=np.bool_),
            style=style,
            reason=reason,
            label=reason.value,
        )

    @classmethod
    def from_full_mask(
        cls, mask: BoolMask, style: Style, reason: MaskReason, label: str = ""
    ) -> MaskLayer | None:
        """A layer from a full-frame mask, cropped to its bounding box; None if empty."""
        rows = np.flatnonzero(mask.any(axis=1))
        if len(rows) == 0:
            return None
        cols = np.flatnonzero(mask.any(axis=0))
        box = BBox(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        return cls(box, mask[box.slices()].copy(), style, reason, label)


@dataclass(frozen=True, slots=True)
class MaskPlan:
    """Every layer to draw on one ``width`` x ``height`` frame, in drawing order."""

    width: int
    height: int
    layers: tuple[MaskLayer, ...] = ()

    def union(self) -> BoolMask:
        """All hidden pixels as one full-frame mask."""
        out = np.zeros((self.height, self.width), dtype=np.bool_)
        for layer in self.layers:
            out[layer.bbox.slices()] |= layer.coverage
        return out

    @property
    def fully_masked(self) -> bool:
        return any(
            layer.bbox == BBox(0, 0, self.width, self.height) and bool(layer.coverage.all())
            for layer in self.layers
        )

    def plus(self, *layers: MaskLayer) -> MaskPlan:
        return MaskPlan(self.width, self.height, self.layers + layers)
