"""Scene masks: projection into every view, rasterisation, margins, uncertainty, planner.

The central property (issue 6): for random masks and random pan/tilt/zoom sequences of the
virtual camera, every pixel whose centre looks at a point inside a mask is masked, and no
pixel farther from the mask than its margin is. Inside and distance are computed here on
the sphere, independently of the projection code under test.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from veil.core.errors import ShapeError
from veil.core.frame import Frame
from veil.core.plan import MaskReason
from veil.core.region import Region
from veil.core.style import Style
from veil.ptz.camera import CameraView, Lens, PTZState, angles_to_direction, direction_to_angles
from veil.ptz.masks import (
    _ARC_STEPS,
    DISC_EXCESS,
    PTZMaskPlanner,
    SceneMask,
    _grown_edges,
    margin_pixels,
    project_mask,
    project_region,
    rasterize_grown,
    rasterize_many,
)
from veil.ptz.onvif_status import (
    EXACT,
    FixedPosition,
    MotionUncertainty,
    PTZReading,
    PTZVelocity,
)
from veil.ptz.virtual import VirtualPTZ, synthetic_equirect
from veil.render.renderers import FrameRenderer

LENS = Lens(hfov_wide_deg=60.0, hfov_tele_deg=3.0)
W, H = 192, 108
SCENE = synthetic_equirect(256, 128)
COLOR = (255, 0, 255)

Dirs = NDArray[np.float64]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def frame_of(image: NDArray[np.uint8], index: int = 0) -> Frame:
    return Frame(image, pts=index, time_base=Fraction(1, 25), index=index)


def blank(width: int = W, height: int = H) -> Frame:
    return frame_of(np.zeros((height, width, 3), np.uint8))


# ----------------------------------------------------------------- independent geometry


def convex_polygon(pan: float, tilt: float, radius_deg: float, phis: list[float]) -> Dirs:
    """Unit vertices of a convex spherical polygon: points of a small circle of
    ``radius_deg`` around (pan, tilt), at the sorted angles ``phis``."""
    c = angles_to_direction([pan], [tilt])[0]
    ref = np.array([0.0, 1.0, 0.0]) if abs(c[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(ref, c)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(c, e1)
    t = math.tan(math.radians(radius_deg))
    angles = np.array(sorted(phis))
    pts = c + t * (np.cos(angles)[:, None] * e1 + np.sin(angles)[:, None] * e2)
    out: Dirs = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    return out


def mask_from_dirs(dirs: Dirs, **kwargs: float) -> SceneMask:
    pan, tilt = direction_to_angles(dirs)
    return SceneMask(np.stack([pan, tilt], axis=1), **kwargs)  # type: ignore[arg-type]


def _edge_normals(verts: Dirs) -> Dirs:
    n = np.cross(verts, np.roll(verts, -1, axis=0))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    # Orient inward: the vertices' mean is inside a convex polygon.
    centre = verts.mean(axis=0)
    out: Dirs = n * np.sign(n @ centre)[:, None]
    return out


def inside_convex(verts: Dirs, dirs: Dirs, tol: float = 1e-9) -> NDArray[np.bool_]:
    """Directions strictly inside a convex spherical polygon (by more than ``tol``)."""
    out: NDArray[np.bool_] = np.all(dirs @ _edge_normals(verts).T > tol, axis=1)
    return out


def angular_distance(verts: Dirs, dirs: Dirs) -> NDArray[np.float64]:
    """Angle (radians) from each direction to a convex spherical polygon (0 inside)."""
    normals = _edge_normals(verts)
    a, b = verts, np.roll(verts, -1, axis=0)
    best = np.full(len(dirs), np.inf)
    for i in range(len(verts)):
        n = normals[i]
        s = dirs @ n
        foot = dirs - s[:, None] * n
        foot /= np.maximum(np.linalg.norm(foot, axis=1, keepdims=True), 1e-300)
        on_arc = (np.cross(a[i], foot) @ np.cross(a[i], b[i]) >= 0) & (
            np.cross(foot, b[i]) @ np.cross(a[i], b[i]) >= 0
        )
        d_arc = np.where(on_arc, np.arcsin(np.clip(np.abs(s), 0, 1)), np.inf)
        d_a = np.arccos(np.clip(dirs @ a[i], -1, 1))
        d_b = np.arccos(np.clip(dirs @ b[i], -1, 1))
        best = np.minimum(best, np.minimum(d_arc, np.minimum(d_a, d_b)))
    inside = np.all(dirs @ normals.T >= 0, axis=1)
    out: NDArray[np.float64] = np.where(inside, 0.0, best)
    return out


def check_view(
    view: CameraView, verts: Dirs, mask: SceneMask, masked: NDArray[np.bool_], extra_deg: float
) -> None:
    """The issue's proof for one view, pixel by pixel."""
    dirs = view.pixel_centres_directions()
    flat = masked.ravel()
    inside = inside_convex(verts, dirs)
    assert flat[inside].all(), "a pixel looking inside the mask is not masked"
    dist = angular_distance(verts, dirs)
    within_margin = dist < math.radians(mask.margin_deg + extra_deg) - 1e-9
    assert flat[within_margin].all(), "a pixel within the angular margin is not masked"
    limit = margin_pixels(view, mask, extra_deg) * DISC_EXCESS / view.focal_px + 1e-9
    assert (dist[flat] <= limit).all(), "a pixel beyond the mask's margin is masked"


# ----------------------------------------------------------------- strategies

radius_st = st.floats(1.0, 40.0)
phis_st = st.lists(st.floats(0.0, 2 * math.pi - 1e-3), min_size=3, max_size=8, unique=True).filter(
    lambda p: (
        np.diff(sorted(p)).min() > 0.05
        and max(np.diff(sorted(p)).max(), 2 * math.pi - max(p) + min(p)) < math.pi * 0.95
    )
)


@st.composite
def convex_masks(draw: st.DrawFn) -> tuple[Dirs, SceneMask]:
    pan = draw(st.floats(-180.0, 180.0))
    tilt = draw(st.floats(-80.0, 80.0))
    verts = convex_polygon(pan, tilt, draw(radius_st), draw(phis_st))
    margin_deg = draw(st.sampled_from([0.0, 0.0, 0.5, 2.0]))
    margin_px = draw(st.sampled_from([0.0, 0.0, 1.5, 4.0]))
    return verts, mask_from_dirs(verts, margin_deg=margin_deg, margin_px=margin_px)


moves_st = st.lists(
    st.tuples(
        st.sampled_from(["absolute", "relative", "continuous"]),
        st.floats(-60.0, 60.0),
        st.floats(-50.0, 50.0),
        st.floats(0.0, 1.0),
    ),
    min_size=1,
    max_size=4,
)


def apply_move(
    cam: VirtualPTZ,
    clock: FakeClock,
    centre: tuple[float, float],
    move: tuple[str, float, float, float],
) -> None:
    kind, a, b, c = move
    if kind == "absolute":
        tilt = min(max(centre[1] + b, -90.0), 90.0)
        cam.absolute_move(PTZState(centre[0] + a, tilt, c))
    elif kind == "relative":
        cam.relative_move(a / 2.0, b / 2.0, c - 0.5)
    else:
        cam.continuous_move(a, b, (c - 0.5) * 0.4, timeout_s=1.0)
        clock.now += 0.5


# ----------------------------------------------------------------- the central property


@settings(max_examples=40, deadline=None)
@given(convex_masks(), moves_st)
def test_scene_points_inside_a_mask_are_masked_in_every_view(
    mask_case: tuple[Dirs, SceneMask], moves: list[tuple[str, float, float, float]]
) -> None:
    verts, mask = mask_case
    clock = FakeClock()
    centre = mask.centre_angles()
    cam = VirtualPTZ(SCENE, LENS, (W, H), clock=clock, initial=PTZState(centre[0], 0.0, 0.0))
    planner = PTZMaskPlanner([mask], LENS, cam, Style(color=COLOR), EXACT, clock=clock)
    renderer = FrameRenderer()
    for index, move in enumerate(moves):
        apply_move(cam, clock, centre, move)
        frame, reading = cam.capture(index)
        plan = planner.plan(frame)
        masked = plan.union()
        check_view(cam.view(reading.state), verts, mask, masked, 0.0)
        # And the rendered frame hides exactly those pixels.
        out = renderer.render(frame, plan).image
        assert (out[masked] == COLOR).all()


def test_the_property_sees_masks_in_view_often() -> None:
    """Guard against a vacuous property: the moves above do put masks in view."""
    rng = np.random.default_rng(1)
    seen = 0
    for _ in range(40):
        pan, tilt = rng.uniform(-180, 180), rng.uniform(-80, 80)
        verts = convex_polygon(pan, tilt, rng.uniform(1, 40), list(rng.uniform(0, 6.28, 5)))
        cam_tilt = min(max(tilt + rng.uniform(-25, 25), -90.0), 90.0)
        view = CameraView.create(PTZState(pan + rng.uniform(-30, 30), cam_tilt, 0.0), LENS, W, H)
        seen += bool(inside_convex(verts, view.pixel_centres_directions()).any())
    assert seen >= 20


# ----------------------------------------------------------------- hard cases, explicitly


def planned(mask: SceneMask, state: PTZState, width: int = W, height: int = H) -> NDArray[np.bool_]:
    planner = PTZMaskPlanner([mask], LENS, FixedPosition(state), Style())
    return planner.plan(blank(width, height)).union()


def test_mask_straddling_the_picture_edge() -> None:
    verts = convex_polygon(-30.0, 0.0, 8.0, [0.3, 1.9, 3.5, 5.0])  # centred on the left edge
    mask = mask_from_dirs(verts)
    state = PTZState(0.0, 0.0, 0.0)
    masked = planned(mask, state)
    assert masked[:, 0].any()
    assert not masked[:, W // 2].any()
    check_view(CameraView.create(state, LENS, W, H), verts, mask, masked, 0.0)


def test_mask_partly_behind_the_camera() -> None:
    """Vertices behind the camera: naive projection of the vertices would flip them
    through the centre; clipping in 3-D keeps exactly the part in front."""
    mask = SceneMask(
        np.array([[10.0, -10.0], [170.0, -10.0], [170.0, 10.0], [10.0, 10.0]], dtype=float)
    )
    state = PTZState(0.0, 0.0, 0.0)
    view = CameraView.create(state, LENS, W, H)
    _, in_front = view.direction_to_pixel(mask.directions)
    assert not in_front.all()
    masked = planned(mask, state)
    check_view(view, mask.directions, mask, masked, 0.0)
    # The right part of the picture (pan 10..30) is masked, the left is not.
    assert masked[H // 2, -1]
    assert not masked[H // 2, 0]


def test_mask_around_the_optical_axis_reaching_behind_covers_the_picture() -> None:
    verts = convex_polygon(0.0, 0.0, 80.0, [0.1, 1.7, 3.3, 4.9])
    mask = mask_from_dirs(verts)
    masked = planned(mask, PTZState(0.0, 0.0, 0.0))
    assert masked.all()


@pytest.mark.parametrize("camera_pan", [180.0, -179.0, 179.0, 175.0])
def test_mask_across_pan_180(camera_pan: float) -> None:
    mask = SceneMask(
        np.array([[170.0, -10.0], [-170.0, -10.0], [-170.0, 10.0], [170.0, 10.0]], dtype=float)
    )
    state = PTZState(camera_pan, 0.0, 0.3)
    masked = planned(mask, state)
    assert masked[H // 2, W // 2]
    check_view(CameraView.create(state, LENS, W, H), mask.directions, mask, masked, 0.0)
    assert not planned(mask, PTZState(0.0, 0.0, 0.0)).any()


def test_min_zoom_activates_the_mask_only_when_zoomed_in() -> None:
    mask = SceneMask(np.array([[-2, -2], [2, -2], [2, 2], [-2, 2]], dtype=float), min_zoom=0.5)
    assert not planned(mask, PTZState(0.0, 0.0, 0.49)).any()
    assert planned(mask, PTZState(0.0, 0.0, 0.5))[H // 2, W // 2]


def test_mask_drawn_on_the_view_round_trips() -> None:
    state = PTZState(40.0, 15.0, 0.4)
    view = CameraView.create(state, LENS, 640, 360)
    drawn = np.array([[0.2, 0.3], [0.6, 0.25], [0.7, 0.8], [0.25, 0.7]])
    mask = SceneMask.from_view(drawn, view, name="door")
    region = project_region(view, mask)
    assert region is not None
    np.testing.assert_allclose(region.points, drawn, atol=1e-9)
    # Straight edges on the picture are exact: the raster equals the drawn region's.
    outline = project_mask(view, mask)
    assert outline is not None
    box, coverage = rasterize_grown(outline, 0.0, 640, 360)
    full = np.zeros((360, 640), bool)
    full[box.slices()] = coverage
    assert np.array_equal(full, Region(drawn).rasterize(640, 360))


def test_masks_out_of_view_give_no_layer() -> None:
    mask = SceneMask(np.array([[80, -5], [90, -5], [90, 5], [80, 5]], dtype=float))
    assert project_mask(CameraView.create(PTZState(), LENS, W, H), mask) is None
    assert not planned(mask, PTZState()).any()


# ----------------------------------------------------------------- uncertainty


@settings(max_examples=25, deadline=None)
@given(
    convex_masks(),
    st.floats(-30.0, 30.0),
    st.floats(-20.0, 20.0),
    st.floats(-60.0, 60.0),
    st.floats(-30.0, 30.0),
    st.floats(0.0, 0.8),
    st.floats(-0.5, 0.5),
)
def test_moving_camera_masks_cover_every_true_position(
    mask_case: tuple[Dirs, SceneMask],
    d_pan: float,
    d_tilt: float,
    v_pan: float,
    v_tilt: float,
    zoom: float,
    v_zoom: float,
) -> None:
    """Fail closed: while the head moves, the masks drawn at the last reading cover the
    mask wherever the head may be when the frame is exposed."""
    verts, mask = mask_case
    pan, tilt = mask.centre_angles()
    state = PTZState(pan + d_pan, min(max(tilt + d_tilt, -85.0), 85.0), zoom)
    model = MotionUncertainty(accuracy_deg=0.0, latency_s=0.1, max_accel_deg_s2=0.0)
    reading = PTZReading(state, True, 0.0, PTZVelocity(v_pan, v_tilt, v_zoom))
    planner = PTZMaskPlanner([mask], LENS, FixedPosition(state), Style(), model)
    plan = planner.plan_for(reading, W, H, now=0.05)
    if plan.layers and plan.layers[0].reason is MaskReason.FAIL_CLOSED:
        return
    masked = plan.union().ravel()
    tau = 0.15
    true = PTZState(
        state.pan_deg + v_pan * tau,
        min(max(state.tilt_deg + v_tilt * tau, -90.0), 90.0),
        min(max(state.zoom + v_zoom * tau, 0.0), 1.0),
    )
    true_dirs = CameraView.create(true, LENS, W, H).pixel_centres_directions()
    assert masked[inside_convex(verts, true_dirs)].all()


def test_uncertainty_grows_masks_while_moving_and_fails_closed_when_unknown() -> None:
    mask = SceneMask(np.array([[-3, -3], [3, -3], [3, 3], [-3, 3]], dtype=float), name="w")
    state = PTZState(0.0, 0.0, 0.2)
    model = MotionUncertainty(accuracy_deg=0.1, latency_s=0.1, stale_after_s=1.0)
    planner = PTZMaskPlanner([mask], LENS, FixedPosition(state), Style(), model)
    idle = planner.plan_for(PTZReading(state, False, 10.0), W, H, now=10.0).union()
    moving = planner.plan_for(
        PTZReading(state, True, 10.0, PTZVelocity(30.0, 0.0, 0.0)), W, H, now=10.0
    ).union()
    assert idle.sum() > 0
    assert moving.sum() > idle.sum()
    assert not (idle & ~moving).any()
    for reading, now in [
        (PTZReading(state, None, 10.0), 10.0),  # MoveStatus UNKNOWN
        (PTZReading(state, False, 10.0), 12.0),  # stale
        (PTZReading(state, True, 10.0), 10.9),  # moving, speed unknown: > 30 degrees
    ]:
        plan = planner.plan_for(reading, W, H, now=now)
        assert plan.fully_masked
        assert plan.layers[0].reason is MaskReason.FAIL_CLOSED


def test_uncertainty_model_figures() -> None:
    model = MotionUncertainty(accuracy_deg=0.2, latency_s=0.1, max_accel_deg_s2=100.0)
    state = PTZState()
    assert model.angle_deg(PTZReading(state, False, 0.0), 0.0) == pytest.approx(0.2 + 100 * 0.01)
    moving = PTZReading(state, True, 0.0, PTZVelocity(30.0, -10.0, 0.0))
    # accuracy + (|30| + |-10|) * tau + a * tau**2, tau = latency + age = 0.3
    assert model.angle_deg(moving, 0.2) == pytest.approx(0.2 + 40 * 0.3 + 100 * 0.09)
    assert model.zoom_span(PTZReading(PTZState(zoom=0.5), True, 0.0), 0.0) == pytest.approx(
        (0.45, 0.55)
    )
    assert math.isinf(model.angle_deg(PTZReading(state, None, 0.0), 0.0))
    assert EXACT.angle_deg(PTZReading(state, True, 0.0, PTZVelocity(50.0)), 0.0) == 0.0
    with pytest.raises(ValueError, match="latency_s"):
        MotionUncertainty(latency_s=-1.0)


# ----------------------------------------------------------------- planner behaviour


def test_planner_caches_the_plan_while_the_camera_stands_still() -> None:
    mask = SceneMask(np.array([[-3, -3], [3, -3], [3, 3], [-3, 3]], dtype=float), name="w")
    clock = FakeClock()
    cam = VirtualPTZ(SCENE, LENS, (W, H), clock=clock)
    planner = PTZMaskPlanner([mask], LENS, cam, Style(), EXACT, clock=clock)
    first = planner.plan(blank())
    assert planner.plan(blank()) is first
    assert not first.layers[0].coverage.flags.writeable
    cam.relative_move(pan_deg=1.0)
    moved = planner.plan(blank())
    assert moved is not first
    assert first.layers[0].label == "w"
    assert first.layers[0].reason is MaskReason.STATIC


def test_planner_without_masks_plans_nothing_even_when_lost() -> None:
    planner = PTZMaskPlanner([], LENS, FixedPosition(PTZState()))
    assert planner.plan_for(PTZReading(PTZState(), None, 0.0), W, H, 0.0).layers == ()


def test_per_mask_style_and_many_masks_in_one_pass() -> None:
    red = Style(color=(0, 0, 255))
    masks = [
        SceneMask(
            np.array([[p - 2, -2], [p + 2, -2], [p + 2, 2], [p - 2, 2]], dtype=float),
            name=f"m{p}",
            style=red,
        )
        for p in range(-20, 21, 8)
    ]
    plan = PTZMaskPlanner(masks, LENS, FixedPosition(PTZState())).plan(blank())
    assert [layer.label for layer in plan.layers] == [m.name for m in masks]
    assert all(layer.style == red for layer in plan.layers)
    for mask, layer in zip(masks, plan.layers, strict=True):
        alone = planned(mask, PTZState())
        full = np.zeros((H, W), bool)
        full[layer.bbox.slices()] = layer.coverage
        assert np.array_equal(full, alone)


@pytest.mark.parametrize(
    ("vertices", "message"),
    [
        ([[0, 0], [1, 0]], "3 to 64"),
        ([[0, 0], [1, 0], [1, 95]], "tilts"),
        ([[0, 0], [0, 0], [1, 1]], "distinct"),
        ([[-100, 0], [0, 10], [100, 0], [180, -10]], "within"),
    ],
)
def test_scene_mask_validation(vertices: list[list[float]], message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        SceneMask(np.array(vertices, dtype=float))


def test_margin_pixels_bound() -> None:
    view = CameraView.create(PTZState(zoom=0.0), LENS, 1920, 1080)
    mask = SceneMask(
        np.array([[-3, -3], [3, -3], [3, 3], [-3, 3]], dtype=float), margin_px=3.0, margin_deg=1.0
    )
    m = margin_pixels(view, mask)
    # At least f * angle + px, and no more than the corner's stretch allows.
    assert m >= 3.0 + math.radians(1.0) * view.focal_px
    assert m <= 3.0 + math.radians(1.0) * view.focal_px * 1.5
    assert math.isinf(margin_pixels(view, mask, extra_deg=86.0))
    # In a corner, the stretch there counts.
    corner = SceneMask(
        np.array([[28.0, 14.0], [29.0, 14.0], [29.0, 15.0], [28.0, 15.0]]), margin_deg=1.0
    )
    assert margin_pixels(view, corner) > 1.3 * math.radians(1.0) * view.focal_px


# ----------------------------------------------------------------- rasteriser


polygon_st = st.lists(
    st.tuples(
        st.one_of(st.floats(-6.0, 46.0), st.integers(-12, 92).map(lambda v: v / 2.0)),
        st.one_of(st.floats(-6.0, 46.0), st.integers(-12, 92).map(lambda v: v / 2.0)),
    ),
    min_size=3,
    max_size=9,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(polygon_st, min_size=1, max_size=4))
def test_rasterizer_follows_region_rule_pixel_for_pixel(
    polys: list[list[tuple[float, float]]],
) -> None:
    regions = [Region(np.array(p, dtype=np.float64) / 40.0) for p in polys]
    # The very pixel coordinates Region works with (x / 40 * 40 may differ from x).
    arrays = [r.to_pixels(40, 40) for r in regions]
    rasters = rasterize_many(arrays, [0.0] * len(arrays), 40, 40)
    gx, gy = np.meshgrid(np.arange(40) + 0.5, np.arange(40) + 0.5)
    centres = np.stack([gx.ravel(), gy.ravel()], axis=1)
    for region, px, (box, coverage) in zip(regions, arrays, rasters, strict=True):
        full = np.zeros((40, 40), bool)
        full[box.slices()] = coverage
        reference = region.rasterize(40, 40)
        assert not (reference & ~full).any(), "a pixel Region covers is not covered"
        extra = (full & ~reference).ravel()
        # Only centres on the outline (within rounding) may be added: fail closed.
        assert (_distance_to_outline(px, centres[extra]) <= 1e-6).all()


def _winding(pts: NDArray[np.float64], q: NDArray[np.float64]) -> NDArray[np.float64]:
    a = pts[None, :, :] - q[:, None, :]
    b = np.roll(pts, -1, axis=0)[None, :, :] - q[:, None, :]
    cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    dot = (a * b).sum(axis=2)
    out: NDArray[np.float64] = np.arctan2(cross, dot).sum(axis=1) / (2 * math.pi)
    return out


def _distance_to_outline(pts: NDArray[np.float64], q: NDArray[np.float64]) -> NDArray[np.float64]:
    a, b = pts, np.roll(pts, -1, axis=0)
    ab = b - a
    t = ((q[:, None, :] - a[None]) * ab[None]).sum(axis=2) / np.maximum(
        (ab * ab).sum(axis=1), 1e-300
    )
    t = np.clip(t, 0, 1)
    nearest = a[None] + t[..., None] * ab[None]
    out: NDArray[np.float64] = np.linalg.norm(q[:, None, :] - nearest, axis=2).min(axis=1)
    return out


def check_grown(pts: NDArray[np.float64], margin: float) -> None:
    """Every centre within ``margin`` of the polygon is covered, none beyond the margin
    times the corner polygons' reach."""
    box, coverage = rasterize_grown(pts, margin, 40, 40)
    full = np.zeros((40, 40), bool)
    full[box.slices()] = coverage
    gx, gy = np.meshgrid(np.arange(40) + 0.5, np.arange(40) + 0.5)
    q = np.stack([gx.ravel(), gy.ravel()], axis=1)
    inside = np.abs(np.round(_winding(pts, q))) > 0
    dist = np.where(inside, 0.0, _distance_to_outline(pts, q))
    flat = full.ravel()
    assert flat[dist <= margin - 1e-9].all()
    assert (dist[flat] <= margin * DISC_EXCESS + 1e-9).all()


@settings(max_examples=60, deadline=None)
@given(polygon_st, st.floats(0.3, 6.0))
def test_grown_raster_is_the_polygon_plus_its_margin(
    poly: list[tuple[float, float]], margin: float
) -> None:
    check_grown(np.array(poly, dtype=np.float64), margin)


convex_pixel_polygon_st = st.builds(
    lambda cx, cy, r, phis, flip: [
        (cx + r * math.cos(p), cy + (-1 if flip else 1) * r * math.sin(p)) for p in sorted(phis)
    ],
    st.floats(0.0, 40.0),
    st.floats(0.0, 40.0),
    st.floats(0.5, 25.0),
    st.lists(st.floats(0.0, 2 * math.pi - 1e-3), min_size=3, max_size=9, unique=True).filter(
        lambda p: (
            np.diff(sorted(p)).min() > 1e-3
            and max(np.diff(sorted(p)).max(), 2 * math.pi - max(p) + min(p)) < math.pi * 0.99
        )
    ),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(convex_pixel_polygon_st, st.floats(0.3, 8.0))
def test_grown_convex_outline_is_the_polygon_plus_its_margin(
    poly: list[tuple[float, float]], margin: float
) -> None:
    """Convex polygons take the single grown outline; same guarantee, either turning."""
    pts = np.array(poly, dtype=np.float64)
    edges = _grown_edges([pts], np.array([margin]))
    assert len(edges.a) == len(pts) * (_ARC_STEPS + 2)  # the outline path was taken
    check_grown(pts, margin)


def test_outlines_give_regions_for_drawing() -> None:
    masks = [
        SceneMask(np.array([[-5.0, -5.0], [5.0, -5.0], [5.0, 5.0], [-5.0, 5.0]]), name="a"),
        SceneMask(np.array([[-5.0, -5.0], [5.0, -5.0], [0.0, 5.0]]), name="b", min_zoom=0.9),
        SceneMask(np.array([[90.0, -5.0], [95.0, -5.0], [95.0, 5.0]]), name="c"),
    ]
    planner = PTZMaskPlanner(masks, LENS, FixedPosition(PTZState()))
    outlines = planner.outlines(PTZState(), W, H)
    assert [m.name for m, _ in outlines] == ["a"]
    region = outlines[0][1]
    centre = region.points.mean(axis=0)
    np.testing.assert_allclose(centre, [0.5, 0.5], atol=1e-9)
