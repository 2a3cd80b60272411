"""The margin ("blur size") added around each dynamic object."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from veil.config.schema import MARGIN_PRESETS

_PIXELS = re.compile(r"^(\d+(?:\.\d+)?)\s*px$")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)\s*%$")


@dataclass(frozen=True, slots=True)
class Margin:
    """Extra pixels on each side of a box: ``pixels`` plus ``fraction`` of the box's width
    on the left and right, and of its height above and below.

    Proportional per axis, so a tall, thin person gets a margin that hides the top of
    the head (where detector boxes are often short) without a wide band of masked
    street beside them; a fixed pixel margin is there for users who want one.
    """

    pixels: float = 0.0
    fraction: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Margin:
        value = text.strip().lower()
        if value in MARGIN_PRESETS:
            return cls(fraction=MARGIN_PRESETS[value])
        if m := _PIXELS.match(value):
            return cls(pixels=float(m.group(1)))
        if m := _PERCENT.match(value):
            return cls(fraction=float(m.group(1)) / 100.0)
        raise ValueError(f"margin {text!r} is not small, medium, large, 'Npx' or 'N%'")

    def grow(self, xyxy: NDArray[np.float32], extra: NDArray[np.float32]) -> NDArray[np.float32]:
        """Boxes grown by the margin plus ``extra`` pixels (per box) on every side."""
        if len(xyxy) == 0:
            return xyxy.astype(np.float32)
        w = xyxy[:, 2] - xyxy[:, 0]
        h = xyxy[:, 3] - xyxy[:, 1]
        pad_x = (self.pixels + self.fraction * w + extra).astype(np.float32)
        pad_y = (self.pixels + self.fraction * h + extra).astype(np.float32)
        out = xyxy.astype(np.float32).copy()
        out[:, 0] -= pad_x
        out[:, 2] += pad_x
        out[:, 1] -= pad_y
        out[:, 3] += pad_y
        return out
