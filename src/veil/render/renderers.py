"""One renderer per style, and the FrameRenderer that applies a whole plan.

A renderer draws one :class:`MaskLayer` into a working copy of the picture, inside
the layer's bounding box only. :class:`FrameRenderer` makes that copy once per frame,
so the input frame is never written to.

Each style is written once, as a function on one *plane*: a BGR picture (three channels)
or one plane of a 4:2:0 picture (Y, U or V). The BGR renderers call it on the picture;
:class:`I420Renderer` calls it on each of the three planes, with the chroma planes at half
size, so a frame that came from the decoder as 4:2:0 and goes to a 4:2:0 encoder is masked
without converting it to BGR and back (see :class:`veil.core.frame.Frame`).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from veil.core.frame import I420, Frame, Image
from veil.core.plan import MaskLayer, MaskPlan
from veil.core.region import BBox, BoolMask
from veil.core.style import Style, StyleKind

Plane = NDArray[np.uint8]
"""A picture or one plane of one: ``(H, W, 3)`` BGR, or ``(H, W)`` (Y, U or V)."""

PlaneValue = tuple[int, ...]
"""A colour in a plane's terms: three BGR values, or one Y, U or V value."""

STEADY_LEVELS: Final = 3
"""A mosaic or blur cell drawn into a 4:2:0 frame keeps the value it had in the previous
frame while its mean stays within this many levels of it (see :func:`_hold`)."""


class Renderer(Protocol):
    """Draws one layer in place into ``canvas`` (a private copy of the frame)."""

    def render(self, canvas: Image, layer: MaskLayer) -> None: ...


# --------------------------------------------------------------------------- on one plane


@dataclass(frozen=True, slots=True)
class PlaneArea:
    """Where one layer is drawn in one plane.

    ``box``: the pixels drawn (inside the plane). ``grid``: what the style computes over, with
    ``box`` inside it (for mosaic and blur, ``box`` grown to whole cells of a grid anchored at
    the plane's origin, so cells stay put when a mask moves; it may reach past the plane's
    edge). ``coverage``: the layer's coverage of ``box`` as the 0/1 uint8 mask OpenCV takes
    (a view, no copy), or None when all of ``box`` is covered.
    """

    box: BBox
    grid: BBox
    coverage: NDArray[np.uint8] | None

    @classmethod
    def of(cls, box: BBox, coverage: BoolMask, full: bool, grid: BBox) -> PlaneArea:
        return cls(box, grid, None if full else np.ascontiguousarray(coverage).view(np.uint8))


def fill_area(box: BBox, coverage: BoolMask, full: bool) -> PlaneArea:
    return PlaneArea.of(box, coverage, full, box)


def mosaic_area(box: BBox, coverage: BoolMask, full: bool, cell: int) -> PlaneArea:
    return PlaneArea.of(box, coverage, full, _cell_grid(box, cell))


def blur_area(box: BBox, coverage: BoolMask, full: bool, radius: int) -> PlaneArea:
    # Computed on the cells the box touches only: the smoothing repeats the edge cells
    # rather than reading a ring of cells outside the mask. Reading that ring too cost a
    # third more work (4 % of a 1080p transcode with 8 masks) for a softer edge only.
    return PlaneArea.of(box, coverage, full, _cell_grid(box, radius))


def _draw(plane: Plane, area: PlaneArea, drawn: Plane) -> None:
    """``drawn`` (covering ``area.grid`` from its top-left corner) into the covered pixels
    of ``area.box``."""
    box, grid = area.box, area.grid
    part = drawn[box.y0 - grid.y0 : box.y1 - grid.y0, box.x0 - grid.x0 : box.x1 - grid.x0]
    region = plane[box.slices()]
    if area.coverage is None:
        region[...] = part
    else:
        # cv2.copyTo writes through the view in place; about 10x numpy's copyto(where=).
        cv2.copyTo(part, area.coverage, region)


class _SolidPictures:
    """A picture of each value at each size, kept so a frame allocates nothing."""

    def __init__(self) -> None:
        self._pictures: dict[tuple[PlaneValue, tuple[int, ...]], Plane] = {}

    def get(self, value: PlaneValue, shape: tuple[int, ...]) -> Plane:
        key = (value, shape)
        solid = self._pictures.get(key)
        if solid is None:
            solid = np.empty(shape, np.uint8)
            solid[...] = value if len(value) > 1 else value[0]
            self._pictures[key] = solid
        return solid


def fill_plane(plane: Plane, area: PlaneArea, value: PlaneValue, solids: _SolidPictures) -> None:
    """Every covered pixel becomes ``value``."""
    if area.coverage is None:
        plane[area.box.slices()] = value if len(value) > 1 else value[0]
        return
    _draw(plane, area, solids.get(value, plane.shape)[area.box.slices()])


def _cell_grid(box: BBox, cell: int) -> BBox:
    """``box`` grown outward to whole cells of a grid anchored at the picture's origin,
    so that a mask's cells stay put when the mask moves or changes shape."""
    return BBox(
        (box.x0 // cell) * cell,
        (box.y0 // cell) * cell,
        -(-box.x1 // cell) * cell,
        -(-box.y1 // cell) * cell,
    )


def _cell_means(plane: Plane, grid: BBox, cell: int) -> Plane:
    """Mean value of each whole cell of ``grid`` (cells past the picture's edge
    average only their pixels inside it)."""
    h, w = plane.shape[:2]
    if grid.x1 <= w and grid.y1 <= h:
        # Whole cells only: INTER_AREA at an integer factor is exactly each cell's mean.
        size = (grid.width // cell, grid.height // cell)
        small = cv2.resize(plane[grid.slices()], size, interpolation=cv2.INTER_AREA)
        return np.asarray(small, dtype=np.uint8)
    inside = grid.clip(w, h)
    crop = plane[inside.slices()].astype(np.float32)
    channels = crop.shape[2:]
    pad_b = grid.y1 - inside.y1
    pad_r = grid.x1 - inside.x1
    weights = np.ones(crop.shape[:2], np.float32)
    if pad_b or pad_r:
        crop = np.pad(crop, ((0, pad_b), (0, pad_r), *[(0, 0)] * len(channels)))
        weights = np.pad(weights, ((0, pad_b), (0, pad_r)))
    rows, cols = grid.height // cell, grid.width // cell
    sums = crop.reshape(rows, cell, cols, cell, *channels).sum(axis=(1, 3))
    counts = weights.reshape(rows, cell, cols, cell).sum(axis=(1, 3))
    counts = np.maximum(counts, 1.0).reshape(rows, cols, *[1] * len(channels))
    means: Plane = np.rint(sums / counts).astype(np.uint8)
    return means


class HeldCells:
    """What a mosaic or blur drew into one plane of one layer in the previous frame: its
    cell values and the picture made from them. See :func:`_hold`."""

    __slots__ = ("drawn", "values")

    def __init__(self) -> None:
        self.values: Plane | None = None
        self.drawn: Plane | None = None


def _hold(means: Plane, held: HeldCells) -> bool:
    """Updates ``held.values`` to this frame's cell ``means``, except that a cell whose mean
    moved by at most :data:`STEADY_LEVELS` keeps its held value; True when any value changed.

    Each value is still one cell's own mean, of this frame or a recent one, and within
    :data:`STEADY_LEVELS` of this frame's: no finer detail than without it. But a cell over
    a still scene no longer flickers by a level with the decoder's or the camera's noise, so
    its pixels are the same as in the previous frame and the encoder skips them. With a
    camera's noise in the picture (``bench.bench_static --noise 3``) that saves 0.6 to 1 ms of
    CPU a frame at 1080p with 8 masks, 3 to 5 % of the transcode.
    """
    values = held.values
    if values is None or values.shape != means.shape:
        held.values, held.drawn = means, None
        return True
    _, moved = cv2.threshold(cv2.absdiff(means, values), STEADY_LEVELS, 255, cv2.THRESH_BINARY)
    if not cv2.countNonZero(moved):
        return False
    cv2.copyTo(means, moved, values)
    return True


def _held_drawing(
    plane: Plane, area: PlaneArea, means: Plane, held: HeldCells | None
) -> Plane | None:
    """The cell values to draw with (``means``, or the held ones), or None when ``held``
    says nothing changed and its picture has been drawn already."""
    if held is None:
        return means
    if not _hold(means, held) and held.drawn is not None:
        _draw(plane, area, held.drawn)
        return None
    return held.values


def mosaic_plane(plane: Plane, area: PlaneArea, cell: int, held: HeldCells | None = None) -> None:
    """Pixelation: each cell of the grid becomes its mean (one flat value). ``held``: what
    was drawn in the previous frame, kept steady (see :func:`_hold`) and updated."""
    grid = area.grid
    means = _held_drawing(plane, area, _cell_means(plane, grid, cell), held)
    if means is None:
        return
    if means.ndim == 2:
        # One channel: repeating each mean over its cell is 3x faster than a resize, and
        # 3x faster again along the short rows first, then whole rows down.
        big = means.repeat(cell, axis=1).repeat(cell, axis=0)
    else:
        # Three channels: the other way round.
        size = (grid.width, grid.height)
        big = np.asarray(cv2.resize(means, size, interpolation=cv2.INTER_NEAREST), np.uint8)
    if held is not None:
        held.drawn = big
    _draw(plane, area, big)


def blur_plane(plane: Plane, area: PlaneArea, radius: int, held: HeldCells | None = None) -> None:
    """Cell means of ``radius`` (fine detail thrown away for good), smoothed with a
    Gaussian as wide as a cell (see :class:`BlurRenderer`). ``held``: as for
    :func:`mosaic_plane`."""
    grid = area.grid
    means = _held_drawing(plane, area, _cell_means(plane, grid, radius), held)
    if means is None:
        return
    # Smooth at cell resolution (sigma half a cell, as radius / 2 pixels was), then
    # interpolate up: the same look at about 1/radius^2 of the cost.
    soft = cv2.GaussianBlur(means, (0, 0), sigmaX=0.5, sigmaY=0.5, borderType=cv2.BORDER_REPLICATE)
    size = (grid.width, grid.height)
    smooth: Plane = np.asarray(cv2.resize(soft, size, interpolation=cv2.INTER_LINEAR), np.uint8)
    if held is not None:
        held.drawn = smooth
    _draw(plane, area, smooth)


# --------------------------------------------------------------------------- BGR pictures


class FillRenderer:
    """A solid colour: every covered pixel becomes ``style.color``."""

    def __init__(self) -> None:
        self._solids = _SolidPictures()

    def render(self, canvas: Image, layer: MaskLayer) -> None:
        area = fill_area(layer.bbox, layer.coverage, bool(layer.coverage.all()))
        fill_plane(canvas, area, layer.style.color, self._solids)


class MosaicRenderer:
    """Pixelation: each cell of ``style.cell_size`` pixels becomes its mean colour.

    Cells sit on a grid anchored at the picture's top-left corner, so every cell
    inside the mask is exactly one flat colour.
    """

    def render(self, canvas: Image, layer: MaskLayer) -> None:
        cell = layer.style.cell_size
        full = bool(layer.coverage.all())
        mosaic_plane(canvas, mosaic_area(layer.bbox, layer.coverage, full, cell), cell)


class BlurRenderer:
    """A privacy-grade blur of radius ``style.blur_radius``.

    A Gaussian blur alone can be partly undone by deconvolution. Here the area is
    first reduced to cell means (as the mosaic does, with cells of the radius), which
    throws the fine detail away for good, then smoothed with a Gaussian as wide as a
    cell so no cell edges remain. What comes out keeps no detail finer than the radius.
    """

    def render(self, canvas: Image, layer: MaskLayer) -> None:
        radius = layer.style.blur_radius
        full = bool(layer.coverage.all())
        blur_plane(canvas, blur_area(layer.bbox, layer.coverage, full, radius), radius)


# --------------------------------------------------------------------------- 4:2:0 pictures


@functools.cache
def i420_color(bgr: tuple[int, int, int], bt709: bool = False) -> tuple[int, int, int]:
    """The Y, U, V values (limited range) of a flat patch of ``bgr``: BT.601 as the sink's
    own conversion gives them, or BT.709."""
    if not bt709:
        patch = np.empty((2, 2, 3), np.uint8)
        patch[...] = bgr
        planes = np.asarray(cv2.cvtColor(patch, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8).ravel()
        return int(planes[0]), int(planes[4]), int(planes[5])
    b, g, r = (c / 255.0 for c in bgr)
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b  # ITU-R BT.709
    y = 16 + 219 * luma
    u = 128 + 224 * (b - luma) / 1.8556
    v = 128 + 224 * (r - luma) / 1.5748
    y8, u8, v8 = (int(np.clip(round(c), 0, 255)) for c in (y, u, v))
    return y8, u8, v8


class _I420Areas:
    """Where a layer is drawn in each 4:2:0 plane: its coverage rounded outward to whole
    2 x 2 blocks, the luma area and the (shared) chroma area.

    In 4:2:0 four luma pixels share one chroma sample. A chroma sample is masked when any
    of its four pixels is, and so are all four of their luma values: every masked pixel is
    masked in all three planes, and the mask grows by at most one pixel at its edges (more
    mask, never less).
    """

    __slots__ = ("chroma", "empty", "held", "luma")

    def __init__(self, layer: MaskLayer, width: int, height: int) -> None:
        self.held = (HeldCells(), HeldCells(), HeldCells())
        """What a mosaic or blur drew last in Y, U and V (see :func:`_hold`)."""
        box = layer.bbox
        luma = BBox(box.x0 & ~1, box.y0 & ~1, (box.x1 + 1) & ~1, (box.y1 + 1) & ~1).clip(
            width, height
        )
        chroma = BBox(luma.x0 // 2, luma.y0 // 2, luma.x1 // 2, luma.y1 // 2)
        self.empty = luma.empty
        full = bool(layer.coverage.all())
        if full:
            chroma_coverage: BoolMask = np.ones((chroma.height, chroma.width), np.bool_)
            luma_coverage: BoolMask = np.ones((luma.height, luma.width), np.bool_)
        else:
            padded = np.zeros((luma.height, luma.width), np.bool_)
            padded[box.y0 - luma.y0 : box.y1 - luma.y0, box.x0 - luma.x0 : box.x1 - luma.x0] = (
                layer.coverage
            )
            blocks = padded.reshape(luma.height // 2, 2, luma.width // 2, 2).any(axis=(1, 3))
            chroma_coverage = np.ascontiguousarray(blocks)
            luma_coverage = np.ascontiguousarray(blocks.repeat(2, axis=0).repeat(2, axis=1))
        style = layer.style
        if style.kind is StyleKind.MOSAIC:
            cell = style.cell_size
            self.luma = mosaic_area(luma, luma_coverage, full, cell)
            self.chroma = mosaic_area(chroma, chroma_coverage, full, cell // 2)
        elif style.kind is StyleKind.BLUR:
            radius = style.blur_radius
            self.luma = blur_area(luma, luma_coverage, full, radius)
            self.chroma = blur_area(chroma, chroma_coverage, full, radius // 2)
        else:
            self.luma = fill_area(luma, luma_coverage, full)
            self.chroma = fill_area(chroma, chroma_coverage, full)


_AREA_CACHE_SIZE: Final = 256
"""Layers whose areas are kept: static and PTZ planners hand the same layer objects out
frame after frame, so their areas are worked out once."""


class I420Renderer:
    """Draws layers straight into 4:2:0 planes (see the module docstring).

    Only styles whose cells line up with the chroma samples are drawn here: fill and
    silhouette always, mosaic and blur when the cell size or radius is even (so a cell is
    whole chroma samples and stays one flat colour). :meth:`can_render` says whether a
    plan qualifies; otherwise the caller renders in BGR.
    """

    def __init__(self) -> None:
        self._solids = _SolidPictures()
        self._areas: OrderedDict[tuple[str, int], tuple[MaskLayer, _I420Areas]] = OrderedDict()

    @staticmethod
    def can_render(plan: MaskPlan) -> bool:
        return all(_i420_style(layer.style) for layer in plan.layers)

    def render(self, i420: I420, plan: MaskPlan, camera_id: str = "") -> I420:
        """A new picture with ``plan`` drawn into a copy of ``i420``. Mosaic and blur cells
        are held steady from one frame of ``camera_id`` to its next (see :func:`_hold`)."""
        canvas = i420.writable_copy()
        y, u, v = canvas.y, canvas.u, canvas.v
        for layer in plan.layers:
            if layer.bbox.empty:
                continue
            areas = self._areas_of(layer, plan.width, plan.height, camera_id)
            if areas.empty:
                continue
            luma, chroma, held = areas.luma, areas.chroma, areas.held
            style = layer.style
            if style.kind is StyleKind.MOSAIC or style.kind is StyleKind.BLUR:
                draw = mosaic_plane if style.kind is StyleKind.MOSAIC else blur_plane
                size = style.cell_size if style.kind is StyleKind.MOSAIC else style.blur_radius
                draw(y, luma, size, held[0])
                draw(u, chroma, size // 2, held[1])
                draw(v, chroma, size // 2, held[2])
            else:
                yv, uv, vv = i420_color(style.color, i420.bt709)
                fill_plane(y, luma, (yv,), self._solids)
                fill_plane(u, chroma, (uv,), self._solids)
                fill_plane(v, chroma, (vv,), self._solids)
        return canvas

    def _areas_of(self, layer: MaskLayer, width: int, height: int, camera_id: str) -> _I420Areas:
        # Per camera too: held cell values are one camera's own.
        key = (camera_id, id(layer))
        cached = self._areas.get(key)
        # The layer is kept with its areas, so its id cannot be reused while cached.
        if cached is not None and cached[0] is layer:
            self._areas.move_to_end(key)
            return cached[1]
        areas = _I420Areas(layer, width, height)
        self._areas[key] = (layer, areas)
        if len(self._areas) > _AREA_CACHE_SIZE:
            self._areas.popitem(last=False)
        return areas


def _i420_style(style: Style) -> bool:
    if style.kind in (StyleKind.FILL, StyleKind.SILHOUETTE):
        return True
    if style.kind is StyleKind.MOSAIC:
        return style.cell_size % 2 == 0
    if style.kind is StyleKind.BLUR:
        return style.blur_radius % 2 == 0
    return False


# --------------------------------------------------------------------------- whole frames


class FrameRenderer:
    """Applies a whole :class:`MaskPlan` to a frame and returns a new frame.

    Layers are drawn in plan order. Each renderer reads the canvas as left by the
    layers before it, so a blur drawn over a fill can only spread the fill colour,
    never original pixels from under it.

    A frame that still holds only its decoder's 4:2:0 planes is masked in those planes
    when every layer's style allows it (see :class:`I420Renderer`), and stays 4:2:0;
    any other frame is masked in BGR.
    """

    def __init__(self) -> None:
        fill = FillRenderer()
        self._by_kind: dict[StyleKind, Renderer] = {
            StyleKind.FILL: fill,
            StyleKind.SILHOUETTE: fill,
            StyleKind.MOSAIC: MosaicRenderer(),
            StyleKind.BLUR: BlurRenderer(),
        }
        self._i420 = I420Renderer()

    def render(self, frame: Frame, plan: MaskPlan) -> Frame:
        if (plan.width, plan.height) != (frame.width, frame.height):
            raise ValueError(
                f"plan is for {plan.width}x{plan.height}, frame is {frame.width}x{frame.height}"
            )
        if not plan.layers:
            return frame
        planes = frame.i420
        if planes is not None and self._i420.can_render(plan):
            return frame.with_i420(self._i420.render(planes, plan, frame.camera_id))
        canvas: Image = frame.image.copy()
        for layer in plan.layers:
            if not layer.bbox.empty:
                self._by_kind[layer.style.kind].render(canvas, layer)
        return frame.with_image(canvas)
