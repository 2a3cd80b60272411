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
    """Extra pixels on each side of a box: ``pixels + fraction * max(box w, box h)``.

    Sized by the object's larger side so a tall, thin person still gets a margin
    that hides an arm held out; a fixed pixel margin is there for users who want one.
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
        size = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
        pad = (self.pixels + self.fraction * size + extra).astype(np.float32)
        out = xyxy.astype(np.float32).copy()
        out[:, :2] -= pad[:, None]
        out[:, 2:] += pad[:, None]
        return out
