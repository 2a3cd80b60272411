"""One renderer per style, and the FrameRenderer that applies a whole plan.

A renderer draws one :class:`MaskLayer` into a working copy of the picture, inside
the layer's bounding box only. :class:`FrameRenderer` makes that copy once per frame,
so the input frame is never written to.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from veil.core.frame import Frame, Image
from veil.core.plan import MaskLayer, MaskPlan
from veil.core.region import BBox
from veil.core.style import StyleKind


class Renderer(Protocol):
    """Draws one layer in place into ``canvas`` (a private copy of the frame)."""

    def render(self, canvas: Image, layer: MaskLayer) -> None: ...


def _coverage_u8(layer: MaskLayer) -> NDArray[np.uint8]:
    """The layer's coverage as the 0/1 uint8 mask OpenCV takes (a view, no copy)."""
    return np.ascontiguousarray(layer.coverage).view(np.uint8)


def _blend_into(canvas: Image, box: BBox, drawn: Image, layer: MaskLayer) -> None:
    region = canvas[box.slices()]
    if layer.coverage.all():
        region[...] = drawn
    else:
        # cv2.copyTo writes through the view in place; about 10x numpy's copyto(where=).
        cv2.copyTo(np.ascontiguousarray(drawn), _coverage_u8(layer), region)


class FillRenderer:
    """A solid colour: every covered pixel becomes ``style.color``."""

    def __init__(self) -> None:
        # A picture of each colour at each size, kept so a frame allocates nothing.
        self._solid: dict[tuple[tuple[int, int, int], tuple[int, ...]], Image] = {}

    def render(self, canvas: Image, layer: MaskLayer) -> None:
        region = canvas[layer.bbox.slices()]
        if layer.coverage.all():
            region[...] = layer.style.color
            return
        key = (layer.style.color, canvas.shape)
        solid = self._solid.get(key)
        if solid is None:
            solid = np.empty_like(canvas)
            solid[...] = layer.style.color
            self._solid[key] = solid
        cv2.copyTo(solid[layer.bbox.slices()], _coverage_u8(layer), region)


def _cell_grid(box: BBox, cell: int) -> BBox:
    """``box`` grown outward to whole cells of a grid anchored at the picture's origin,
    so that a mask's cells stay put when the mask moves or changes shape."""
    return BBox(
        (box.x0 // cell) * cell,
        (box.y0 // cell) * cell,
        -(-box.x1 // cell) * cell,
        -(-box.y1 // cell) * cell,
    )


def _cell_means(canvas: Image, grid: BBox, cell: int) -> Image:
    """Mean colour of each whole cell of ``grid`` (cells past the picture's edge
    average only their pixels inside it)."""
    h, w = canvas.shape[:2]
    if grid.x1 <= w and grid.y1 <= h:
        # Whole cells only: INTER_AREA at an integer factor is exactly each cell's mean.
        size = (grid.width // cell, grid.height // cell)
        small = cv2.resize(canvas[grid.slices()], size, interpolation=cv2.INTER_AREA)
        return np.asarray(small, dtype=np.uint8)
    inside = grid.clip(w, h)
    crop = canvas[inside.slices()].astype(np.float32)
    pad_b = grid.y1 - inside.y1
    pad_r = grid.x1 - inside.x1
    weights = np.ones(crop.shape[:2], np.float32)
    if pad_b or pad_r:
        crop = np.pad(crop, ((0, pad_b), (0, pad_r), (0, 0)))
        weights = np.pad(weights, ((0, pad_b), (0, pad_r)))
    rows, cols = grid.height // cell, grid.width // cell
    sums = crop.reshape(rows, cell, cols, cell, 3).sum(axis=(1, 3))
    counts = weights.reshape(rows, cell, cols, cell).sum(axis=(1, 3))
    means: Image = np.rint(sums / np.maximum(counts, 1.0)[:, :, None]).astype(np.uint8)
    return means


class MosaicRenderer:
    """Pixelation: each cell of ``style.cell_size`` pixels becomes its mean colour.

    Cells sit on a grid anchored at the picture's top-left corner, so every cell
    inside the mask is exactly one flat colour.
    """

    def render(self, canvas: Image, layer: MaskLayer) -> None:
        cell = layer.style.cell_size
        box = layer.bbox
        grid = _cell_grid(box, cell)
        means = _cell_means(canvas, grid, cell)
        big = np.asarray(
            cv2.resize(means, (grid.width, grid.height), interpolation=cv2.INTER_NEAREST),
            dtype=np.uint8,
        )
        drawn = big[box.y0 - grid.y0 : box.y1 - grid.y0, box.x0 - grid.x0 : box.x1 - grid.x0]
        _blend_into(canvas, box, drawn, layer)


class BlurRenderer:
    """A privacy-grade blur of radius ``style.blur_radius``.

    A Gaussian blur alone can be partly undone by deconvolution. Here the area is
    first reduced to cell means (as the mosaic does, with cells of the radius), which
    throws the fine detail away for good, then smoothed with a Gaussian as wide as a
    cell so no cell edges remain. What comes out keeps no detail finer than the radius.
    """

    def render(self, canvas: Image, layer: MaskLayer) -> None:
        radius = layer.style.blur_radius
        box = layer.bbox
        h, w = canvas.shape[:2]
        # Work on the box grown by one radius so the smoothing has context at the edge.
        grown = BBox(box.x0 - radius, box.y0 - radius, box.x1 + radius, box.y1 + radius)
        grid = _cell_grid(grown.clip(w, h), radius)
        means = _cell_means(canvas, grid, radius)
        # Smooth at cell resolution (sigma half a cell, as radius / 2 pixels was), then
        # interpolate up: the same look at about 1/radius^2 of the cost.
        soft = cv2.GaussianBlur(
            means, (0, 0), sigmaX=0.5, sigmaY=0.5, borderType=cv2.BORDER_REPLICATE
        )
        smooth = np.asarray(
            cv2.resize(soft, (grid.width, grid.height), interpolation=cv2.INTER_LINEAR),
            dtype=np.uint8,
        )
        drawn = smooth[box.y0 - grid.y0 : box.y1 - grid.y0, box.x0 - grid.x0 : box.x1 - grid.x0]
        _blend_into(canvas, box, np.ascontiguousarray(drawn), layer)


class FrameRenderer:
    """Applies a whole :class:`MaskPlan` to a frame and returns a new frame.

    Layers are drawn in plan order. Each renderer reads the canvas as left by the
    layers before it, so a blur drawn over a fill can only spread the fill colour,
    never original pixels from under it.
    """

    def __init__(self) -> None:
        fill = FillRenderer()
        self._by_kind: dict[StyleKind, Renderer] = {
            StyleKind.FILL: fill,
            StyleKind.SILHOUETTE: fill,
            StyleKind.MOSAIC: MosaicRenderer(),
            StyleKind.BLUR: BlurRenderer(),
        }

    def render(self, frame: Frame, plan: MaskPlan) -> Frame:
        if (plan.width, plan.height) != (frame.width, frame.height):
            raise ValueError(
                f"plan is for {plan.width}x{plan.height}, frame is {frame.width}x{frame.height}"
            )
        if not plan.layers:
            return frame
        canvas: Image = frame.image.copy()
        for layer in plan.layers:
            if not layer.bbox.empty:
                self._by_kind[layer.style.kind].render(canvas, layer)
        return frame.with_image(canvas)
