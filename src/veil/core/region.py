"""Regions of the picture: polygons in normalised coordinates, and their rasters.

A region is a closed polygon whose vertices are in normalised image coordinates:
``(0, 0)`` is the top-left corner of the picture and ``(1, 1)`` the bottom-right
corner, so the same region fits any resolution. Pixel ``(i, j)`` has its centre at
normalised ``((i + 0.5) / W, (j + 0.5) / H)``.

Rasterising follows one rule, chosen for privacy: a pixel is covered when its
centre lies inside the polygon or on its edge, under the non-zero winding rule (a
self-intersecting polygon never gets holes). Nothing whose centre is inside is left
out; a pixel is only covered when its centre is inside or on the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from veil.core.errors import ShapeError

BoolMask = NDArray[np.bool_]
Points = NDArray[np.float64]

MIN_VERTICES = 3
MAX_VERTICES = 64
BOUNDARY_EPS = 1e-7
"""Pixels: a centre this close to the boundary counts as on it (and is covered)."""


@dataclass(frozen=True, slots=True)
class BBox:
    """A pixel box, half-open: columns ``x0 <= x < x1``, rows ``y0 <= y < y1``."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0

    @property
    def width(self) -> int:
        return max(0, self.x1 - self.x0)

    @property
    def height(self) -> int:
        return max(0, self.y1 - self.y0)

    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices for indexing an image."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def union(self, other: BBox) -> BBox:
        if self.empty:
            return other
        if other.empty:
            return self
        return BBox(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )

    def clip(self, width: int, height: int) -> BBox:
        return BBox(
            max(0, min(self.x0, width)),
            max(0, min(self.y0, height)),
            max(0, min(self.x1, width)),
            max(0, min(self.y1, height)),
        )


def _as_points(points: object) -> Points:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ShapeError(f"polygon points must have shape (N, 2), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ShapeError("polygon points must be finite numbers")
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class Region:
    """A closed polygon in normalised coordinates (see the module docstring).

    Vertices may lie outside ``0..1`` (a dynamic box grown by its margin can run
    past the edge); configuration checks the 0..1 bound for user-drawn masks.
    """

    points: Points

    def __post_init__(self) -> None:
        pts = _as_points(self.points)
        if len(pts) < MIN_VERTICES:
            raise ShapeError(f"a polygon needs at least {MIN_VERTICES} points, got {len(pts)}")
        pts = pts.copy()
        pts.flags.writeable = False
        object.__setattr__(self, "points", pts)

    @classmethod
    def rect(cls, x: float, y: float, w: float, h: float) -> Region:
        """A rectangle from its top-left corner and size, normalised."""
        return cls(np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64))

    @classmethod
    def from_pixels(cls, points: object, width: int, height: int) -> Region:
        """A region from pixel coordinates in a ``width`` x ``height`` picture."""
        pts = _as_points(points)
        return cls(pts / np.array([width, height], dtype=np.float64))

    def to_pixels(self, width: int, height: int) -> Points:
        return self.points * np.array([width, height], dtype=np.float64)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Region) and np.array_equal(self.points, other.points)

    def __hash__(self) -> int:
        return hash(self.points.tobytes())

    def bbox(self, width: int, height: int) -> BBox:
        """The pixel box that holds every covered pixel, clipped to the picture."""
        px = self.to_pixels(width, height)
        x0 = int(np.floor(px[:, 0].min() - 0.5))
        y0 = int(np.floor(px[:, 1].min() - 0.5))
        x1 = int(np.ceil(px[:, 0].max() + 0.5)) + 1
        y1 = int(np.ceil(px[:, 1].max() + 0.5)) + 1
        return BBox(x0, y0, x1, y1).clip(width, height)

    def rasterize(self, width: int, height: int) -> BoolMask:
        """A ``(height, width)`` boolean mask of the covered pixels."""
        out = np.zeros((height, width), dtype=np.bool_)
        box = self.bbox(width, height)
        if not box.empty:
            out[box.slices()] = self.rasterize_in(box, width, height)
        return out

    def rasterize_in(self, box: BBox, width: int, height: int) -> BoolMask:
        """The covered pixels inside ``box`` only, shape ``(box.height, box.width)``.

        A scanline fill at each pixel row's centre: the polygon's edges are crossed
        at exact x positions, crossings are summed by direction (non-zero winding),
        and the pixels whose centres lie inside, or on the boundary, are covered.
        All rows at once: each crossing adds its direction to a running sum from the
        first pixel centre right of it, so a pixel's winding number is one cumulative sum.
        """
        crop = np.zeros((box.height, box.width), dtype=np.bool_)
        if box.empty:
            return crop
        a = self.to_pixels(width, height)
        b = np.roll(a, -1, axis=0)
        yc = (np.arange(box.y0, box.y1, dtype=np.float64) + 0.5)[:, None]  # (rows, 1)
        ay, by = a[None, :, 1], b[None, :, 1]  # (1, edges)
        # Half-open rule on y so a vertex exactly on the scanline counts once.
        up = (ay <= yc) & (by > yc)
        down = (by <= yc) & (ay > yc)
        rows, edges = np.nonzero(up | down)
        if len(rows):
            a_e, b_e, y_r = a[edges], b[edges], yc[rows, 0]
            t = (y_r - a_e[:, 1]) / (b_e[:, 1] - a_e[:, 1])
            xs = a_e[:, 0] + t * (b_e[:, 0] - a_e[:, 0]) - box.x0  # in crop pixels
            winding = np.where(up[rows, edges], 1, -1)
            # Pixel i's centre i + 0.5 is right of x from i = floor(x - 0.5) + 1 on.
            start = np.clip(np.floor(xs - 0.5).astype(np.int64) + 1, 0, box.width)
            sums = np.zeros((box.height, box.width + 1), np.int64)
            np.add.at(sums, (rows, start), winding)
            crop |= np.cumsum(sums, axis=1)[:, : box.width] != 0
            # Centres on a crossing point belong to the boundary: covered (the hair of
            # BOUNDARY_EPS absorbs floating-point rounding).
            nearest = np.round(xs - 0.5)
            on = (np.abs(xs - 0.5 - nearest) <= BOUNDARY_EPS) & (nearest >= 0)
            on &= nearest < box.width
            crop[rows[on], nearest[on].astype(np.int64)] = True
        # Edges that lie exactly on a scanline are boundary: their centres count.
        flat_rows, flat_edges = np.nonzero((ay == yc) & (by == yc))
        for row, edge in zip(flat_rows, flat_edges, strict=True):
            _cover_span(crop[row], a[edge, 0], b[edge, 0], box.x0)
        return crop


def _cover_span(row: NDArray[np.bool_], ax: float, bx: float, x_offset: int) -> None:
    """Cover the pixels whose centres lie on the horizontal segment from ``ax`` to ``bx``."""
    n = len(row)
    lo_x, hi_x = min(ax, bx), max(ax, bx)
    lo = max(int(np.ceil(lo_x - 0.5 - BOUNDARY_EPS)) - x_offset, 0)
    hi = min(int(np.floor(hi_x - 0.5 + BOUNDARY_EPS)) - x_offset, n - 1)
    if hi >= lo:
        row[lo : hi + 1] = True
