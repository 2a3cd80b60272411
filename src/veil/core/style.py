"""How a masked area is drawn."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class StyleKind(str, Enum):
    """The ways to hide an area.

    - ``fill``: a solid colour; nothing of the original survives.
    - ``mosaic``: pixelation into square cells of one flat colour each (movement
      stays visible, identity does not).
    - ``blur``: a privacy-grade blur; the area is reduced to cells and smoothed, so
      no detail finer than the radius survives and it cannot be deconvolved.
    - ``silhouette``: for dynamic masks, the moving shape filled flat; for static
      masks it draws like ``fill``.
    """

    FILL = "fill"
    MOSAIC = "mosaic"
    BLUR = "blur"
    SILHOUETTE = "silhouette"


BGR = tuple[int, int, int]

DEFAULT_COLOR_BGR: BGR = (0, 0, 0)
DEFAULT_MOSAIC_CELL = 24
"""Default mosaic cell in pixels: a face 100 px tall becomes about 4 x 4 flat cells."""
DEFAULT_BLUR_RADIUS = 24
"""Default blur radius in pixels: on a face 100 px tall no feature finer than an eye survives."""


@dataclass(frozen=True, slots=True)
class Style:
    """A style with its parameters; ``color`` is BGR."""

    kind: StyleKind = StyleKind.FILL
    color: BGR = DEFAULT_COLOR_BGR
    cell_size: int = DEFAULT_MOSAIC_CELL
    blur_radius: int = DEFAULT_BLUR_RADIUS

    def __post_init__(self) -> None:
        if self.cell_size < 2:
            raise ValueError(f"mosaic cell size must be at least 2 px, got {self.cell_size}")
        if self.blur_radius < 2:
            raise ValueError(f"blur radius must be at least 2 px, got {self.blur_radius}")
        if len(self.color) != 3 or any(not 0 <= c <= 255 for c in self.color):
            raise ValueError(f"colour must be three values 0..255, got {self.color}")
