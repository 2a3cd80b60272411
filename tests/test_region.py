"""Polygon rasterisation: every pixel whose centre lies inside is covered, at any size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from veil.core.errors import ShapeError
from veil.core.region import BBox, Region


def _inside_nonzero(points: NDArray[np.float64], x: float, y: float) -> bool:
    """Reference point-in-polygon by winding number (strictly inside only)."""
    winding = 0
    n = len(points)
    for k in range(n):
        x0, y0 = points[k]
        x1, y1 = points[(k + 1) % n]
        cross = (x1 - x0) * (y - y0) - (x - x0) * (y1 - y0)
        if y0 <= y < y1 and cross > 0:
            winding += 1
        elif y1 <= y < y0 and cross < 0:
            winding -= 1
    return winding != 0


def _distance_to_boundary(points: NDArray[np.float64], x: float, y: float) -> float:
    best = np.inf
    n = len(points)
    for k in range(n):
        a = points[k]
        b = points[(k + 1) % n]
        ab = b - a
        denom = float(ab @ ab)
        t = 0.0 if denom == 0 else float(np.clip(((x, y) - a) @ ab / denom, 0, 1))
        best = min(best, float(np.hypot(*((x, y) - (a + t * ab)))))
    return best


coordinate = st.floats(min_value=-0.2, max_value=1.2, allow_nan=False, allow_infinity=False)
polygons = st.lists(st.tuples(coordinate, coordinate), min_size=3, max_size=12)
sizes = st.tuples(st.integers(1, 48), st.integers(1, 48))


@settings(max_examples=150, deadline=None)
@given(polygons, sizes)
def test_every_pixel_centre_inside_is_covered(
    points: list[tuple[float, float]], size: tuple[int, int]
) -> None:
    width, height = size
    region = Region(np.array(points))
    mask = region.rasterize(width, height)
    assert mask.shape == (height, width)
    px = region.to_pixels(width, height)
    for j in range(height):
        for i in range(width):
            cx, cy = i + 0.5, j + 0.5
            inside = _inside_nonzero(px, cx, cy)
            if inside:
                assert mask[j, i], f"centre ({cx}, {cy}) is inside but not covered"
            elif mask[j, i]:
                # Covered pixels that are not strictly inside must lie on the boundary.
                assert _distance_to_boundary(px, cx, cy) < 1e-6


def test_rectangle_covers_exact_pixels() -> None:
    # 0.25..0.75 of 8 px is pixels 2..5 (centres 2.5..5.5).
    mask = Region.rect(0.25, 0.25, 0.5, 0.5).rasterize(8, 8)
    expected = np.zeros((8, 8), bool)
    expected[2:6, 2:6] = True
    assert np.array_equal(mask, expected)


def test_self_intersecting_polygon_has_no_hole() -> None:
    # A pentagram: even-odd would leave its centre open; non-zero covers it.
    angles = np.deg2rad(np.arange(5) * 144 - 90)
    star = np.stack([0.5 + 0.45 * np.cos(angles), 0.5 + 0.45 * np.sin(angles)], axis=1)
    mask = Region(star).rasterize(101, 101)
    assert mask[50, 50]


def test_polygon_past_the_edge_is_clipped() -> None:
    mask = Region.rect(-0.5, -0.5, 1.0, 1.0).rasterize(10, 10)
    assert mask[:5, :5].all()
    assert not mask[5:, :].any()
    assert not mask[:, 5:].any()


def test_rasterize_in_matches_full_raster() -> None:
    region = Region(np.array([[0.1, 0.2], [0.8, 0.1], [0.6, 0.9]]))
    full = region.rasterize(64, 48)
    box = region.bbox(64, 48)
    assert np.array_equal(full[box.slices()], region.rasterize_in(box, 64, 48))
    assert not full.sum() - full[box.slices()].sum()


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[0, 0], [1, 1]], "at least 3 points"),
        ([[0, 0, 0], [1, 1, 1], [0, 1, 0]], "shape (N, 2)"),
        ([[0, 0], [np.nan, 1], [0, 1]], "finite"),
    ],
)
def test_bad_polygons_are_refused(points: list[list[float]], message: str) -> None:
    with pytest.raises(ShapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Region(np.array(points, dtype=float))


def test_points_are_immutable() -> None:
    source = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    region = Region(source)
    source[0, 0] = 0.5
    assert region.points[0, 0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        region.points[0, 0] = 0.3


def test_bbox_union_and_clip() -> None:
    a = BBox(0, 0, 4, 4)
    b = BBox(2, 3, 10, 12)
    assert a.union(b) == BBox(0, 0, 10, 12)
    assert BBox(-3, -3, 50, 50).clip(20, 10) == BBox(0, 0, 20, 10)
    assert BBox(5, 5, 5, 9).empty
