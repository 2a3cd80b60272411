"""Static privacy masks: the same areas hidden in every frame.

:class:`StaticPlanner` turns the enabled masks of a configuration into regions once,
rasterises them once per frame size (the result is cached, so a frame costs only a
dictionary lookup), and returns one :class:`MaskLayer` per mask in configuration order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from veil.config.colors import parse_color_rgb, rgb_to_bgr
from veil.config.schema import MaskConfig, StyleConfig, Units
from veil.core.frame import Frame
from veil.core.plan import MaskLayer, MaskPlan, MaskReason
from veil.core.region import Region
from veil.core.style import Style


def style_from_config(config: StyleConfig) -> Style:
    """The runtime :class:`Style` of a configured style (colour RGB text -> BGR)."""
    return Style(
        kind=config.style,
        color=rgb_to_bgr(parse_color_rgb(config.color)),
        cell_size=config.cell_size,
        blur_radius=config.blur_radius,
    )


def region_from_config(mask: MaskConfig, width: int, height: int) -> Region:
    """The mask's polygon in normalised coordinates for a ``width`` x ``height`` picture.

    Pixel masks are converted with the picture's size, so a pixel mask drawn for one
    resolution lands on the same pixels at that resolution only.
    """
    if mask.rect is not None:
        x, y, w, h = mask.rect
        if mask.units is Units.PIXELS:
            return Region.from_pixels(
                [[x, y], [x + w, y], [x + w, y + h], [x, y + h]], width, height
            )
        return Region.rect(x, y, w, h)
    points = np.asarray(mask.polygon, dtype=np.float64)
    if mask.units is Units.PIXELS:
        return Region.from_pixels(points, width, height)
    return Region(points)


class StaticPlanner:
    """Plans the configured static masks for every frame.

    Disabled masks are left out. Layers come in configuration order, so a later mask
    is drawn over an earlier one where they overlap. Example::

        planner = StaticPlanner(config.masks)
        plan = planner.plan(frame)
    """

    reads_pixels = False
    """Static masks depend on the frame's size only."""

    def __init__(self, masks: Sequence[MaskConfig]) -> None:
        self._masks = tuple(m for m in masks if m.enabled)
        self._styles = tuple(style_from_config(m) for m in self._masks)
        self._cache: dict[tuple[int, int], tuple[MaskLayer, ...]] = {}

    @property
    def mask_count(self) -> int:
        """How many masks are drawn (enabled ones)."""
        return len(self._masks)

    def plan(self, frame: Frame) -> MaskPlan:
        size = (frame.width, frame.height)
        layers = self._cache.get(size)
        if layers is None:
            layers = self._rasterise(*size)
            self._cache[size] = layers
        return MaskPlan(frame.width, frame.height, layers)

    def _rasterise(self, width: int, height: int) -> tuple[MaskLayer, ...]:
        layers = []
        for mask, style in zip(self._masks, self._styles, strict=True):
            region = region_from_config(mask, width, height)
            box = region.bbox(width, height)
            if box.empty:
                # A pixel mask beyond this picture's edge: nothing of it is on screen.
                continue
            coverage = region.rasterize_in(box, width, height)
            coverage.flags.writeable = False
            layers.append(MaskLayer(box, coverage, style, MaskReason.STATIC, label=mask.name))
        return tuple(layers)
