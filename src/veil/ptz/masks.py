"""Privacy masks fixed to the scene of a pan-tilt-zoom camera.

A :class:`SceneMask` is a polygon on the sphere of directions around the camera: its
vertices are pan and tilt angles in degrees, its edges are great-circle arcs. Each frame,
:class:`PTZMaskPlanner` projects every mask into the current view and rasterises it, so the
mask stays on the scene as the camera pans, tilts and zooms.

Why great-circle edges
----------------------
A pinhole camera maps every great circle to a straight line (a great circle is a plane
through the centre of projection, and a plane through the centre meets the image plane
in a line). So projecting a mask's vertices and joining them with straight lines is the
*exact* image of the mask, at every pan, tilt and zoom, with no sampling of the edges.
The price: an edge between two points at the same tilt bulges towards the nearer pole
(as a long-haul flight route does); add vertices along the edge to follow a line of
constant tilt more closely. A polygon drawn on the picture and converted with
:meth:`SceneMask.from_view` has exactly the edges that were drawn.

Projection, including masks behind the camera
---------------------------------------------
The directions inside a mask form a cone from the camera's centre; it is the cone over
the polygon whose corners are the vertices' unit vectors (any point of a chord between
two vertices lies on the ray through the arc between them). Before projecting, that
polygon is clipped (Sutherland-Hodgman) against the four planes through the camera's
centre that bound the picture, widened by a border. Clipping against planes *through the
centre* keeps the cone exact, and the four planes together keep only directions in front
of the camera, so a mask partly behind the camera, straddling the picture's edge, or
crossing pan +-180 degrees is cut exactly where the view ends and every remaining corner
projects to a finite pixel. (Clipping a near plane ``z = epsilon`` instead, as
rasterisers of 3-D scenes do, is not exact here: the section of the cone by that plane
is unbounded for a mask that reaches behind the camera.)

A mask must fit in an open hemisphere (every vertex within 85 degrees of the mask's mean
direction), so that its inside is the smaller of the two regions its outline bounds.

Margins and rasterisation
-------------------------
A mask grows by ``margin_px`` pixels plus ``margin_deg`` degrees plus the position's
uncertainty (see :mod:`veil.ptz.onvif_status`). Angles become pixels with the largest
scale of the projection over the picture grown by that angle, ``f / cos(theta)**2`` at
``theta`` = half diagonal plus margin, so that every direction within the angle of the
mask is covered (fail closed); near the picture's centre the margin is up to
``1 / cos(theta)**2`` wider than asked (1.44 at a 60 degree field of view, 1.00 at 3).

The grown shape is the projected polygon's Minkowski sum with a disc of the margin. A
convex outline becomes one polygon: its edges moved out by the margin, joined at each
corner by segments tangent to the margin's circle. Any other outline is drawn as the
union of itself, a rectangle along each edge and a 16-gon around each vertex. Either way
the shape reaches at most 2 % beyond the margin, at corners only. Pixels are covered by
the rule of :class:`veil.core.region.Region` (centre inside or on the boundary, non-zero
winding), for all visible masks in one vectorised scanline pass; ``tests/test_ptz_masks.py``
checks it against ``Region.rasterize`` pixel for pixel, and the margins against exact
distances.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from veil.core.errors import ShapeError
from veil.core.frame import Frame
from veil.core.plan import MaskLayer, MaskPlan, MaskReason
from veil.core.region import BOUNDARY_EPS, MAX_VERTICES, MIN_VERTICES, BBox, BoolMask, Region
from veil.core.style import Style
from veil.ptz.camera import (
    CameraView,
    Lens,
    Pixels,
    PTZState,
    Vectors,
    angles_to_direction,
    direction_to_angles,
)
from veil.ptz.onvif_status import EXACT, MotionUncertainty, PositionProvider, PTZReading

MAX_MASK_RADIUS_DEG = 85.0
"""Every vertex of a mask lies within this angle of the mask's mean direction."""

DISC_SIDES = 16
"""Sides of the polygon drawn around the margin's disc at each vertex."""
DISC_EXCESS = 1.0 / math.cos(math.pi / DISC_SIDES)
"""How far the corners of that polygon reach, as a multiple of the margin (1.0196)."""

MAX_VIEW_ANGLE_DEG = 89.0
"""A margin that would reach this far off the optical axis masks the whole picture."""

BORDER_PX = 2.0
"""Extra border beyond the grown margin when clipping, in pixels."""

BOUNDARY_TOL = BOUNDARY_EPS
"""Pixels whose centre lies this close (in pixels) to an edge count as on it: covered. Exact
comparison would let rounding decide, and drop boundary pixels Region's rule covers."""

_WINDING_MAIN = 1 << 16
"""Weight of the mask polygon's crossings: above the number of margin shapes that can
overlap (2 per vertex, at most 128); windings stay far inside int32."""


@dataclass(frozen=True, slots=True, eq=False)
class SceneMask:
    """A privacy mask fixed to the scene (see the module docstring).

    ``vertices_deg``: ``(N, 2)`` pan and tilt angles in degrees, 3 to 64 vertices; edges
    are great-circle arcs between consecutive vertices (and from the last to the first).
    ``min_zoom``: the mask is active only when the camera's zoom is at least this (cameras
    offer such zoom limits for masks that matter only when zoomed in); 0 means always.
    ``margin_deg``: growth fixed to the scene, in degrees; it shrinks on screen as the
    camera zooms out. ``margin_px``: growth fixed to the picture, in pixels.
    ``style``: how to draw it; None uses the planner's style.
    """

    vertices_deg: NDArray[np.float64]
    name: str = ""
    min_zoom: float = 0.0
    margin_deg: float = 0.0
    margin_px: float = 0.0
    style: Style | None = None
    directions: Vectors = field(init=False, repr=False)
    """``(N, 3)`` unit vectors of the vertices."""
    centre: NDArray[np.float64] = field(init=False, repr=False)
    """Unit mean direction of the vertices."""
    radius_rad: float = field(init=False)
    """Largest angle between the centre and a vertex (the mask lies inside this cap)."""

    def __post_init__(self) -> None:
        pts = np.array(self.vertices_deg, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ShapeError(f"mask vertices must have shape (N, 2), got {pts.shape}")
        if not MIN_VERTICES <= len(pts) <= MAX_VERTICES:
            raise ShapeError(
                f"a mask needs {MIN_VERTICES} to {MAX_VERTICES} vertices, got {len(pts)}"
            )
        if not np.all(np.isfinite(pts)):
            raise ShapeError("mask vertices must be finite numbers")
        if np.any(np.abs(pts[:, 1]) > 90.0):
            raise ShapeError("mask tilts must lie in [-90, 90] degrees")
        if not 0.0 <= self.min_zoom <= 1.0:
            raise ValueError(f"min_zoom must lie in [0, 1], got {self.min_zoom}")
        for name in ("margin_deg", "margin_px"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        dirs = angles_to_direction(pts[:, 0], pts[:, 1])
        nxt = np.roll(dirs, -1, axis=0)
        if np.any(np.linalg.norm(np.cross(dirs, nxt), axis=1) < 1e-9):
            raise ShapeError("consecutive mask vertices must be distinct and not opposite")
        mean = dirs.sum(axis=0)
        norm = float(np.linalg.norm(mean))
        if norm < 1e-9:
            raise ShapeError("a mask must lie within a hemisphere")
        centre = mean / norm
        radius = float(np.arccos(np.clip((dirs @ centre).min(), -1.0, 1.0)))
        if radius > math.radians(MAX_MASK_RADIUS_DEG):
            raise ShapeError(
                f"every vertex of a mask must lie within {MAX_MASK_RADIUS_DEG} degrees of "
                f"its mean direction; the farthest is {math.degrees(radius):.1f} degrees away",
                hint="split large masks in several",
            )
        for arr in (pts, dirs, centre):
            arr.flags.writeable = False
        object.__setattr__(self, "vertices_deg", pts)
        object.__setattr__(self, "directions", dirs)
        object.__setattr__(self, "centre", centre)
        object.__setattr__(self, "radius_rad", radius)

    @classmethod
    def from_view(
        cls,
        points: ArrayLike,
        view: CameraView,
        *,
        name: str = "",
        min_zoom: float = 0.0,
        margin_deg: float = 0.0,
        margin_px: float = 0.0,
        style: Style | None = None,
    ) -> SceneMask:
        """A mask from a polygon drawn on ``view``, in normalised picture coordinates.

        Straight edges on the picture are great-circle arcs, so the mask is exactly the
        drawn polygon in this view and follows the scene in every other.
        """
        dirs = view.normalized_to_direction(points)
        pan, tilt = direction_to_angles(dirs)
        return cls(
            np.stack([pan, tilt], axis=1),
            name=name,
            min_zoom=min_zoom,
            margin_deg=margin_deg,
            margin_px=margin_px,
            style=style,
        )

    def active_at(self, zoom: float) -> bool:
        return zoom >= self.min_zoom

    def centre_angles(self) -> tuple[float, float]:
        """Pan and tilt of the mask's mean direction, degrees."""
        pan, tilt = direction_to_angles(self.centre.reshape(1, 3))
        return float(pan[0]), float(tilt[0])


# --------------------------------------------------------------------------- projection


def _clip_planes(view: CameraView, border_px: float) -> NDArray[np.float64]:
    """Normals ``(4, 3)`` (camera frame) of the planes through the centre bounding the
    picture grown by ``border_px``; inside is ``normal . p >= 0``."""
    f = view.focal_px
    b = border_px
    return np.array(
        [
            [f, 0.0, view.cx + b],  # u >= -b
            [-f, 0.0, view.width + b - view.cx],  # u <= width + b
            [0.0, f, view.cy + b],  # v >= -b
            [0.0, -f, view.height + b - view.cy],  # v <= height + b
        ],
        dtype=np.float64,
    )


def clip_polygon(points: Vectors, normal: NDArray[np.float64]) -> Vectors:
    """Sutherland-Hodgman: the part of a closed 3-D polygon with ``normal . p >= 0``.

    Vectorised: for each edge it keeps its start point if inside, and the crossing point if
    the edge crosses the plane, in order. A plane through the origin cuts the cone over
    the polygon exactly (crossing points stay on the rays of the arcs).
    """
    d = points @ normal
    inside = d >= 0.0
    if inside.all():
        return points
    if not inside.any():
        return points[:0]
    nxt = np.roll(points, -1, axis=0)
    d_next = np.roll(d, -1)
    crosses = inside != np.roll(inside, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crosses, d / (d - d_next), 0.0)
    crossing = points + t[:, None] * (nxt - points)
    candidates = np.stack([points, crossing], axis=1).reshape(-1, 3)
    keep = np.stack([inside, crosses], axis=1).reshape(-1)
    out: Vectors = candidates[keep]
    return out


def project_mask(view: CameraView, mask: SceneMask, border_px: float = 0.0) -> Pixels | None:
    """The mask's outline in ``view`` as pixel coordinates ``(K, 2)``, or None if no part of
    it falls in the picture grown by ``border_px``.

    The outline is clipped to that grown picture (see the module docstring), so every
    vertex is finite; an outline that covers the whole view becomes the grown picture's
    rectangle.
    """
    cam = view.world_to_camera(mask.directions)
    return _project_cam(view, cam, border_px)


def _project_cam(view: CameraView, cam: Vectors, border_px: float) -> Pixels | None:
    planes = _clip_planes(view, border_px)
    if not np.all(cam @ planes.T >= 0.0):
        for normal in planes:
            cam = clip_polygon(cam, normal)
            if len(cam) < MIN_VERTICES:
                return None
    px: Pixels = view.camera_to_pixel(cam)
    return px


def project_region(view: CameraView, mask: SceneMask) -> Region | None:
    """The mask's outline in ``view`` as a :class:`Region` (normalised coordinates, may
    run past 0..1), without margin; None if it is not in view. For drawing masks on a
    picture, e.g. in the web page."""
    px = project_mask(view, mask, border_px=BORDER_PX)
    if px is None:
        return None
    return Region.from_pixels(px, view.width, view.height)


def margin_pixels(view: CameraView, mask: SceneMask, extra_deg: float = 0.0) -> float:
    """The pixel margin that covers ``mask.margin_px`` pixels plus ``mask.margin_deg +
    extra_deg`` degrees around ``mask`` in ``view`` (inf when that angle reaches too far off
    the optical axis to be drawn; the planner then masks the whole picture).

    The angle becomes pixels at the projection's largest scale, ``f / cos(theta)**2``, over
    the arcs joining a pixel to the mask points within the angle of it: all such arcs stay
    within ``theta = min(half diagonal, farthest vertex) + angle`` of the optical axis.
    """
    delta = math.radians(mask.margin_deg + extra_deg)
    if delta <= 0.0:
        return mask.margin_px
    z_min = float(view.world_to_camera(mask.directions)[:, 2].min())
    theta = min(view.half_diagonal_rad, math.acos(min(max(z_min, -1.0), 1.0))) + delta
    if theta >= math.radians(MAX_VIEW_ANGLE_DEG):
        return math.inf
    return mask.margin_px + delta * view.focal_px / math.cos(theta) ** 2


# --------------------------------------------------------------------------- rasterising

_DISC_UNIT = np.stack(
    [
        np.cos(-2.0 * np.pi * np.arange(DISC_SIDES) / DISC_SIDES),
        np.sin(-2.0 * np.pi * np.arange(DISC_SIDES) / DISC_SIDES),
    ],
    axis=1,
)
"""A unit-circumradius 16-gon, in the same turning sense as the edge rectangles below."""


@dataclass(frozen=True, slots=True)
class _Edges:
    """Directed edges of many closed shapes, each tagged with the polygon it draws."""

    a: Pixels
    b: Pixels
    weight: NDArray[np.int32]
    owner: NDArray[np.int64]


_ARC_STEPS = 8
"""Segments per corner of a grown convex polygon: at most pi / 8 each, so the corner's
polygon reaches at most ``DISC_EXCESS`` times the margin, as the 16-gon does."""


def _grown_edges(polygons: Sequence[Pixels], margins: NDArray[np.float64]) -> _Edges:
    """Edges and winding weights of every polygon grown by its margin, all together.

    A convex polygon (turning one way, once) with a margin is replaced by its outline
    grown by the margin: edges moved out by the margin, joined at each corner by segments
    tangent to the margin's circle (2 crossings per row). Any other polygon keeps its own
    edges, weighing ``2**16``, plus margin shapes weighing 1 and all turning the same way:
    a rectangle along each edge and a 16-gon around each vertex; a non-zero total winding
    is then exactly the union of the polygon (non-zero rule) and its margin.
    """
    sizes = np.array([len(p) for p in polygons], dtype=np.int64)
    verts = np.concatenate(polygons)
    owner = np.repeat(np.arange(len(polygons)), sizes)
    starts = np.cumsum(sizes) - sizes
    nxt = np.arange(len(verts)) + 1
    nxt[starts + sizes - 1] = starts
    prv = np.arange(len(verts)) - 1
    prv[starts] = starts + sizes - 1
    a, b = verts, verts[nxt]
    m = margins[owner]
    d = b - a
    length = np.hypot(d[:, 0], d[:, 1])
    d_in = d[prv]
    cross = d_in[:, 0] * d[:, 1] - d_in[:, 1] * d[:, 0]
    turn = np.arctan2(cross, (d_in * d).sum(axis=1))
    total = np.add.reduceat(turn, starts)
    sign = np.sign(total)
    convex_poly = (
        (np.minimum.reduceat(length, starts) > BOUNDARY_TOL)
        & (np.abs(np.abs(total) - 2.0 * np.pi) < 1e-6)
        & (np.minimum.reduceat(turn * sign[owner], starts) >= -1e-12)
        & (margins > 0.0)
    )
    outline_v = convex_poly[owner]
    plain = ~outline_v
    parts_a, parts_b = [a[plain]], [b[plain]]
    parts_w = [np.full(int(plain.sum()), _WINDING_MAIN, dtype=np.int64)]
    parts_o = [owner[plain]]
    if outline_v.any():
        oa, ob, oo = _convex_outlines(verts, d, length, turn, sign, m, owner, nxt, outline_v)
        parts_a.append(oa)
        parts_b.append(ob)
        parts_w.append(np.ones(len(oa), dtype=np.int64))
        parts_o.append(oo)
    grow = plain & (m > 0.0) & (length > BOUNDARY_TOL)  # shorter edges lie inside the discs
    if grow.any():
        scale = m[grow] / length[grow]
        n = np.stack([-d[grow, 1] * scale, d[grow, 0] * scale], axis=1)
        ag, bg = a[grow], b[grow]
        rects = np.stack([ag + n, bg + n, bg - n, ag - n], axis=1)  # (K, 4, 2)
        parts_a.append(rects.reshape(-1, 2))
        parts_b.append(rects[:, [1, 2, 3, 0]].reshape(-1, 2))
        parts_w.append(np.ones(4 * len(rects), dtype=np.int64))
        parts_o.append(np.repeat(owner[grow], 4))
    has_disc = plain & (m > 0.0)
    if has_disc.any():
        radius = (m[has_disc] * DISC_EXCESS)[:, None, None]
        discs = a[has_disc][:, None, :] + radius * _DISC_UNIT[None, :, :]  # (K, 16, 2)
        parts_a.append(discs.reshape(-1, 2))
        parts_b.append(np.roll(discs, -1, axis=1).reshape(-1, 2))
        parts_w.append(np.ones(DISC_SIDES * len(discs), dtype=np.int64))
        parts_o.append(np.repeat(owner[has_disc], DISC_SIDES))
    return _Edges(
        np.concatenate(parts_a),
        np.concatenate(parts_b),
        np.concatenate(parts_w).astype(np.int32),
        np.concatenate(parts_o),
    )


def _convex_outlines(
    verts: Pixels,
    d: Pixels,
    length: NDArray[np.float64],
    turn: NDArray[np.float64],
    sign: NDArray[np.float64],
    m: NDArray[np.float64],
    owner: NDArray[np.int64],
    nxt: NDArray[np.int64],
    selected: NDArray[np.bool_],
) -> tuple[Pixels, Pixels, NDArray[np.int64]]:
    """Edges of the grown outlines of the selected vertices' (convex) polygons.

    At each vertex the outward normal turns from the incoming edge's to the outgoing
    edge's by the vertex's turning angle; the corner is drawn with ``_ARC_STEPS`` segments
    tangent to the circle of radius ``m`` around the vertex, from the end of the incoming
    edge moved out by ``m`` to the start of the outgoing one.
    """
    idx = np.flatnonzero(selected)
    s = sign[owner[idx]]
    normal = s[:, None] * np.stack([d[idx, 1], -d[idx, 0]], axis=1) / length[idx, None]
    alpha_out = np.arctan2(normal[:, 1], normal[:, 0])
    step = turn[idx] / _ARC_STEPS
    alpha_in = alpha_out - turn[idx]
    j = np.arange(_ARC_STEPS) + 0.5
    angles = np.concatenate(
        [alpha_in[:, None], alpha_in[:, None] + j[None, :] * step[:, None], alpha_out[:, None]],
        axis=1,
    )  # (K, STEPS + 2)
    radius = np.concatenate(
        [
            m[idx, None],
            np.repeat((m[idx] / np.cos(step / 2.0))[:, None], _ARC_STEPS, axis=1),
            m[idx, None],
        ],
        axis=1,
    )
    pts = verts[idx, None, :] + radius[..., None] * np.stack(
        [np.cos(angles), np.sin(angles)], axis=2
    )
    per = _ARC_STEPS + 2
    compact = np.cumsum(selected) - 1
    flat_next = np.arange(len(idx) * per).reshape(len(idx), per) + 1
    flat_next[:, -1] = compact[nxt[idx]] * per
    out_a = pts.reshape(-1, 2)
    return out_a, out_a[flat_next.reshape(-1)], np.repeat(owner[idx], per)


def _boxes(
    polygons: Sequence[Pixels], margins: NDArray[np.float64], width: int, height: int
) -> NDArray[np.int64]:
    """``(count, 4)`` pixel boxes ``x0, y0, x1, y1`` holding every pixel each grown polygon
    can cover (as ``Region.bbox``, with the margin's reach), clipped to the picture."""
    sizes = np.array([len(p) for p in polygons], dtype=np.int64)
    verts = np.concatenate(polygons)
    starts = np.cumsum(sizes) - sizes
    reach = (margins * DISC_EXCESS)[:, None]
    lo = np.minimum.reduceat(verts, starts, axis=0) - reach
    hi = np.maximum.reduceat(verts, starts, axis=0) + reach
    box = np.empty((len(polygons), 4), dtype=np.int64)
    box[:, 0:2] = np.floor(lo - 0.5)
    box[:, 2:4] = np.ceil(hi + 0.5) + 1
    box[:, 0::2] = np.clip(box[:, 0::2], 0, width)
    box[:, 1::2] = np.clip(box[:, 1::2], 0, height)
    return box


def rasterize_many(
    polygons: Sequence[Pixels], margins: ArrayLike, width: int, height: int
) -> list[tuple[BBox, BoolMask]]:
    """Rasterise each pixel polygon grown by its margin, in one vectorised pass.

    A pixel is covered when its centre has a non-zero winding number or lies on an edge:
    the rule of :class:`Region`, with on-edge meaning within ``BOUNDARY_TOL`` pixels so
    that rounding never uncovers a boundary pixel (``tests/test_ptz_masks.py`` checks it
    covers what ``Region.rasterize`` covers, and more only within that distance). Each edge
    crosses the rows whose centre ``yc`` has ``min(ay, by) <= yc < max(ay, by)`` (half-open,
    so a vertex on a row counts once); a crossing adds its signed weight at the first
    pixel whose centre is at or right of it, in a difference array holding every
    polygon's box row after row, each row one column wider than its box (crossings right
    of the box land there). The crossings of closed shapes on a row sum to zero, so one
    cumulative sum over the whole array gives every pixel's winding number.

    Returns, per polygon, its box and the read-only coverage inside it (views into one
    buffer).
    """
    count = len(polygons)
    if count == 0:
        return []
    m = np.broadcast_to(np.asarray(margins, dtype=np.float64), (count,))
    edges = _grown_edges(polygons, m)
    box = _boxes(polygons, m, width, height)
    x0, y0 = box[:, 0], box[:, 1]
    rows = np.maximum(box[:, 3] - y0, 0)
    cols = np.maximum(box[:, 2] - x0, 0)
    stride = cols + 1
    sizes = np.where(cols > 0, rows * stride, 0)
    offsets = np.cumsum(sizes) - sizes
    total_size = int(sizes.sum())
    owner = edges.owner
    ay, by = edges.a[:, 1], edges.b[:, 1]
    base = (y0 + 0.5)[owner]
    e_rows = rows[owner]
    r_start = np.clip(np.ceil(np.minimum(ay, by) - base), 0, e_rows).astype(np.int64)
    r_end = np.clip(np.ceil(np.maximum(ay, by) - base), 0, e_rows).astype(np.int64)
    counts = np.where(cols[owner] > 0, r_end - r_start, 0)
    n_cross = int(counts.sum())
    diff = np.zeros(total_size + 1, dtype=np.int32)
    exact_at = np.zeros(0, dtype=np.int64)
    if n_cross:
        edge = np.repeat(np.arange(len(owner)), counts)
        first = np.cumsum(counts) - counts
        row = r_start[edge] + (np.arange(n_cross) - first[edge])
        ax, bx = edges.a[edge, 0], edges.b[edge, 0]
        ay_e, by_e = ay[edge], by[edge]
        # The same arithmetic as Region, so boundary cases round the same way.
        xs = ax + (row + base[edge] - ay_e) / (by_e - ay_e) * (bx - ax)
        sign = np.where(by_e > ay_e, edges.weight[edge], -edges.weight[edge])
        pos = np.ceil(xs - 0.5)
        own = owner[edge]
        rel = pos - x0[own]
        col = np.clip(rel, 0, cols[own]).astype(np.int64)
        flat = offsets[own] + row * stride[own] + col
        np.add.at(diff, flat, sign)
        # A centre on a crossing (to within BOUNDARY_TOL) is on the boundary: covered.
        nearest = np.rint(xs - 0.5)
        near_rel = nearest - x0[own]
        on_edge = (
            (np.abs(xs - 0.5 - nearest) <= BOUNDARY_TOL) & (near_rel >= 0) & (near_rel < cols[own])
        )
        exact_at = (offsets[own] + row * stride[own] + near_rel.astype(np.int64))[on_edge]
    wind = diff[:total_size]
    np.cumsum(wind, out=wind)  # in place: one pass fewer over the boxes
    covered = wind != 0
    covered[exact_at] = True
    _cover_flat_edges(covered, edges, box, offsets, stride)
    covered.flags.writeable = False
    out = []
    for k in range(count):
        bb = BBox(int(box[k, 0]), int(box[k, 1]), int(box[k, 2]), int(box[k, 3]))
        if sizes[k] == 0:
            out.append((bb, np.zeros((bb.height, bb.width), dtype=np.bool_)))
            continue
        block = covered[offsets[k] : offsets[k] + sizes[k]].reshape(int(rows[k]), -1)
        out.append((bb, block[:, : int(cols[k])]))
    return out


def _cover_flat_edges(
    covered: BoolMask,
    edges: _Edges,
    box: NDArray[np.int64],
    offsets: NDArray[np.int64],
    stride: NDArray[np.int64],
) -> None:
    """Horizontal edges lying on a row of centres (to within BOUNDARY_TOL) are boundary:
    covered."""
    a, b = edges.a, edges.b
    row_a = np.rint(a[:, 1] - 0.5)
    flat = (np.abs(a[:, 1] - 0.5 - row_a) <= BOUNDARY_TOL) & (
        np.abs(b[:, 1] - 0.5 - row_a) <= BOUNDARY_TOL
    )
    for i in np.flatnonzero(flat):
        k = int(edges.owner[i])
        x0, y0, x1, y1 = (int(v) for v in box[k])
        r = int(row_a[i]) - y0
        if not 0 <= r < y1 - y0 or x1 <= x0:
            continue
        lo_x, hi_x = sorted((float(a[i, 0]), float(b[i, 0])))
        c0 = max(math.ceil(lo_x - 0.5 - BOUNDARY_TOL) - x0, 0)
        c1 = min(math.floor(hi_x - 0.5 + BOUNDARY_TOL) - x0, x1 - x0 - 1)
        if c1 >= c0:
            start = int(offsets[k]) + r * int(stride[k])
            covered[start + c0 : start + c1 + 1] = True


def rasterize_grown(
    polygon: Pixels, margin_px: float, width: int, height: int
) -> tuple[BBox, BoolMask]:
    """The pixels of a ``width`` x ``height`` picture covered by ``polygon`` grown by
    ``margin_px``: its box and the coverage inside it (see :func:`rasterize_many`)."""
    return rasterize_many([polygon], [margin_px], width, height)[0]


# --------------------------------------------------------------------------- planner


@dataclass(frozen=True, slots=True)
class _PlanKey:
    state: PTZState
    width: int
    height: int
    extra_deg: float
    active: tuple[int, ...]


class PTZMaskPlanner:
    """Plans the scene masks of a PTZ camera for each frame (a ``FramePlanner``).

    Each call reads the camera's position from ``position``, grows the masks by the
    position's uncertainty (``uncertainty``, see :mod:`veil.ptz.onvif_status`), projects
    and rasterises every mask that is active at the current zoom and in view, and returns
    one :class:`MaskLayer` per visible mask (reason ``STATIC``, label the mask's name).
    When the position is unknown or too uncertain (over ``max_uncertainty_deg``), the whole
    frame is masked (reason ``FAIL_CLOSED``). While the position and the uncertainty do not
    change, the previous plan is returned as is (its coverage arrays are read-only).

    Example::

        >>> from fractions import Fraction
        >>> from veil.ptz.onvif_status import FixedPosition
        >>> mask = SceneMask([[-5, -5], [5, -5], [5, 5], [-5, 5]], name="window")
        >>> planner = PTZMaskPlanner([mask], Lens(), FixedPosition(PTZState()))
        >>> image = np.zeros((360, 640, 3), np.uint8)
        >>> plan = planner.plan(Frame(image, pts=0, time_base=Fraction(1, 25), index=0))
        >>> [layer.label for layer in plan.layers], bool(plan.union()[180, 320])
        (['window'], True)
    """

    def __init__(
        self,
        masks: Sequence[SceneMask],
        lens: Lens,
        position: PositionProvider,
        style: Style | None = None,
        uncertainty: MotionUncertainty = EXACT,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_uncertainty_deg: float = 30.0,
    ) -> None:
        self._masks = tuple(masks)
        self._lens = lens
        self._position = position
        self._style = style if style is not None else Style()
        self._uncertainty = uncertainty
        self._clock = clock
        self._max_uncertainty_deg = max_uncertainty_deg
        self._cache: tuple[_PlanKey, MaskPlan] | None = None
        n = len(self._masks)
        self._dirs = (
            np.concatenate([m.directions for m in self._masks])
            if n
            else np.zeros((0, 3), np.float64)
        )
        self._offsets = np.cumsum([0] + [len(m.directions) for m in self._masks])
        self._centres = (
            np.stack([m.centre for m in self._masks]) if n else np.zeros((0, 3), np.float64)
        )
        self._radii = np.array([m.radius_rad for m in self._masks], dtype=np.float64)
        self._min_zoom = np.array([m.min_zoom for m in self._masks], dtype=np.float64)
        self._margin_deg = np.array([m.margin_deg for m in self._masks], dtype=np.float64)
        self._margin_px = np.array([m.margin_px for m in self._masks], dtype=np.float64)
        self._owner = np.repeat(np.arange(n), [len(m.directions) for m in self._masks])

    @property
    def masks(self) -> tuple[SceneMask, ...]:
        return self._masks

    @property
    def lens(self) -> Lens:
        return self._lens

    def outlines(self, state: PTZState, width: int, height: int) -> list[tuple[SceneMask, Region]]:
        """The active masks' outlines at ``state`` as regions of a ``width`` x ``height``
        picture (no margin; coordinates may run past 0..1), for drawing them on a view."""
        view = CameraView.create(state, self._lens, width, height)
        out = []
        for mask in self._masks:
            if mask.active_at(state.zoom):
                region = project_region(view, mask)
                if region is not None:
                    out.append((mask, region))
        return out

    def plan(self, frame: Frame) -> MaskPlan:
        reading = self._position.read()
        return self.plan_for(reading, frame.width, frame.height, self._clock())

    def extra_angle_deg(self, reading: PTZReading, width: int, height: int, now: float) -> float:
        """Degrees every mask grows by for this reading: the motion uncertainty plus the
        zoom uncertainty expressed as an angle (inf when the position is unknown)."""
        motion = self._uncertainty.angle_deg(reading, now)
        if not math.isfinite(motion):
            return math.inf
        z_lo, z_hi = self._uncertainty.zoom_span(reading, now)
        return motion + _zoom_angle_deg(self._lens, reading.state.zoom, z_lo, z_hi, width, height)

    def plan_for(self, reading: PTZReading, width: int, height: int, now: float) -> MaskPlan:
        """The plan for a ``width`` x ``height`` frame taken at ``reading``'s position."""
        if not self._masks:
            return MaskPlan(width, height)
        extra = self.extra_angle_deg(reading, width, height, now)
        if extra > self._max_uncertainty_deg:
            return self._fail_closed(width, height)
        _, z_hi = self._uncertainty.zoom_span(reading, now)
        active = tuple(int(i) for i in np.flatnonzero(self._min_zoom <= z_hi))
        key = _PlanKey(reading.state, width, height, extra, active)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        view = CameraView.create(reading.state, self._lens, width, height)
        layers = self._layers(view, extra, active)
        plan = (
            self._fail_closed(width, height)
            if layers is None
            else MaskPlan(width, height, tuple(layers))
        )
        self._cache = (key, plan)
        return plan

    def _fail_closed(self, width: int, height: int) -> MaskPlan:
        return MaskPlan(
            width,
            height,
            (MaskLayer.full_frame(width, height, self._style, MaskReason.FAIL_CLOSED),),
        )

    def _layers(
        self, view: CameraView, extra_deg: float, active: tuple[int, ...]
    ) -> list[MaskLayer] | None:
        if not active:
            return []
        idx = np.array(active, dtype=np.int64)
        # Cull: a mask is out of view when its bounding cap is farther from the optical
        # axis than the half diagonal plus its margin as an angle (a pixel margin m is at
        # most m / f radians: pixels are at least f * angle apart).
        axis = view.rotation[2]
        cos_off = np.clip(self._centres[idx] @ axis, -1.0, 1.0)
        reach = (
            self._radii[idx]
            + view.half_diagonal_rad
            + np.radians(self._margin_deg[idx] + extra_deg)
            + self._margin_px[idx] / view.focal_px
        )
        idx = idx[np.arccos(cos_off) <= reach + 1e-9]
        if len(idx) == 0:
            return []
        cam_all = self._dirs @ view.rotation.T
        z_min = np.minimum.reduceat(cam_all[:, 2], self._offsets[:-1])
        margins = self._margins(view, extra_deg, z_min)[idx]
        if not np.all(np.isfinite(margins)):
            return None
        # A mask whose every vertex lies inside the clipping planes needs no clipping.
        borders = np.zeros(len(self._masks))
        borders[idx] = margins + BORDER_PX
        inside = self._inside(view, cam_all, borders[self._owner])
        all_inside = np.logical_and.reduceat(inside, self._offsets[:-1])
        px_all = view.camera_to_pixel(cam_all)
        polygons: list[Pixels] = []
        kept: list[int] = []
        kept_margins: list[float] = []
        for i, margin in zip(idx.tolist(), margins.tolist(), strict=True):
            lo, hi = self._offsets[i], self._offsets[i + 1]
            polygon: Pixels | None
            if all_inside[i]:
                polygon = px_all[lo:hi]
            else:
                polygon = _project_cam(view, cam_all[lo:hi], margin + BORDER_PX)
            if polygon is not None:
                polygons.append(polygon)
                kept.append(i)
                kept_margins.append(margin)
        layers: list[MaskLayer] = []
        rasters = rasterize_many(polygons, kept_margins, view.width, view.height)
        for i, (box, coverage) in zip(kept, rasters, strict=True):
            if box.empty or not coverage.any():
                continue
            mask = self._masks[i]
            style = mask.style if mask.style is not None else self._style
            layers.append(MaskLayer(box, coverage, style, MaskReason.STATIC, mask.name))
        return layers

    def _margins(
        self, view: CameraView, extra_deg: float, z_min: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Every mask's margin in pixels (vectorised :func:`margin_pixels`); ``z_min`` is
        each mask's smallest vertex z in the camera frame."""
        delta = np.radians(self._margin_deg + extra_deg)
        farthest = np.arccos(np.clip(z_min, -1.0, 1.0))
        theta = np.minimum(view.half_diagonal_rad, farthest) + delta
        with np.errstate(over="ignore"):
            scale = view.focal_px / np.cos(np.minimum(theta, np.pi / 2.0)) ** 2
        grown = np.where(delta > 0.0, delta * scale, 0.0)
        out = np.where(
            (delta > 0.0) & (theta >= math.radians(MAX_VIEW_ANGLE_DEG)),
            np.inf,
            self._margin_px + grown,
        )
        result: NDArray[np.float64] = out
        return result

    @staticmethod
    def _inside(view: CameraView, cam: Vectors, border: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Which camera-frame points lie inside the picture grown by ``border`` pixels
        (per point), as the clipping planes of :func:`project_mask` decide."""
        f, z = view.focal_px, cam[:, 2]
        fx, fy = f * cam[:, 0], f * cam[:, 1]
        bz = border * z
        ok: NDArray[np.bool_] = (
            (fx + view.cx * z + bz >= 0.0)
            & (-fx + (view.width - view.cx) * z + bz >= 0.0)
            & (fy + view.cy * z + bz >= 0.0)
            & (-fy + (view.height - view.cy) * z + bz >= 0.0)
        )
        return ok


def _zoom_angle_deg(
    lens: Lens, zoom: float, z_lo: float, z_hi: float, width: int, height: int
) -> float:
    """Largest angle, over the picture, between the directions a pixel has at the believed
    zoom and at any zoom in ``[z_lo, z_hi]``."""
    if z_lo == z_hi == zoom:
        return 0.0
    f = lens.focal_px(zoom, width)
    r_max = math.hypot(width / 2.0, height / 2.0)
    worst = 0.0
    for other in (z_lo, z_hi):
        g = lens.focal_px(other, width)
        r = min(math.sqrt(f * g), r_max)
        worst = max(worst, abs(math.atan(r / f) - math.atan(r / g)))
    return math.degrees(worst)


def state_for_mask(
    mask: SceneMask, lens: Lens, width: int, height: int, fill: float = 0.8
) -> PTZState:
    """The position that centres ``mask`` in a ``width`` x ``height`` view and zooms so it
    spans ``fill`` of the picture's width or height ("go to mask").

    The centre is the middle of the mask's extent on the tangent plane at its mean
    direction (refined twice); the zoom is the widest field of view that still fits it,
    clamped to the lens's range (a mask larger than the wide view stays cut off).
    """
    if not 0.0 < fill <= 1.0:
        raise ValueError(f"fill must lie in (0, 1], got {fill}")
    pan, tilt = mask.centre_angles()
    for _ in range(3):
        tilt = min(max(tilt, -90.0), 90.0)
        view = CameraView.create(PTZState(pan, tilt, 0.0), lens, width, height)
        cam = view.world_to_camera(mask.directions)
        tx, ty = cam[:, 0] / cam[:, 2], cam[:, 1] / cam[:, 2]
        mid = np.array([(tx.min() + tx.max()) / 2.0, (ty.min() + ty.max()) / 2.0, 1.0])
        centre = mid @ view.rotation
        p, t = direction_to_angles(centre.reshape(1, 3))
        pan, tilt = float(p[0]), float(t[0])
    view = CameraView.create(PTZState(pan, min(max(tilt, -90.0), 90.0), 0.0), lens, width, height)
    cam = view.world_to_camera(mask.directions)
    half_x = float(np.abs(cam[:, 0] / cam[:, 2]).max())
    half_y = float(np.abs(cam[:, 1] / cam[:, 2]).max())
    tan_half_h = max(half_x, half_y * width / height) / fill
    hfov = math.degrees(2.0 * math.atan(tan_half_h))
    return PTZState(pan, min(max(tilt, -90.0), 90.0), lens.zoom_for_hfov(hfov))
