"""Camera model: angles, lens, projection between directions and pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veil.core.errors import ShapeError
from veil.ptz.camera import (
    CameraView,
    Lens,
    PTZState,
    angles_to_direction,
    direction_to_angles,
    wrap_pan,
)

LENS = Lens(hfov_wide_deg=60.0, hfov_tele_deg=3.0)

pans = st.floats(-180.0, 180.0, allow_nan=False)
tilts = st.floats(-89.0, 89.0, allow_nan=False)
zooms = st.floats(0.0, 1.0, allow_nan=False)
states = st.builds(PTZState, pans, tilts, zooms)


@pytest.mark.parametrize(
    ("pan", "wrapped"),
    [(0.0, 0.0), (180.0, -180.0), (-180.0, -180.0), (190.0, -170.0), (-190.0, 170.0), (720.5, 0.5)],
)
def test_wrap_pan(pan: float, wrapped: float) -> None:
    assert wrap_pan(pan) == pytest.approx(wrapped)


def test_state_wraps_pan_so_equal_directions_compare_equal() -> None:
    assert PTZState(180.0, 0.0, 0.0) == PTZState(-180.0, 0.0, 0.0)
    assert PTZState(370.0, 5.0, 0.5).pan_deg == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("pan", "tilt", "zoom"),
    [(0.0, 91.0, 0.0), (0.0, -90.5, 0.0), (0.0, 0.0, 1.5), (0.0, 0.0, -0.1), (math.nan, 0, 0)],
)
def test_state_rejects_out_of_range(pan: float, tilt: float, zoom: float) -> None:
    with pytest.raises(ValueError, match="must"):
        PTZState(pan, tilt, zoom)


def test_lens_ends_and_rejects_bad_ranges() -> None:
    assert LENS.hfov_deg(0.0) == pytest.approx(60.0)
    assert LENS.hfov_deg(1.0) == pytest.approx(3.0)
    # Geometric in tan(hfov/2): half way is the geometric mean.
    mid = math.tan(math.radians(LENS.hfov_deg(0.5)) / 2)
    assert mid == pytest.approx(math.sqrt(math.tan(math.radians(30)) * math.tan(math.radians(1.5))))
    with pytest.raises(ValueError, match="fields of view"):
        Lens(hfov_wide_deg=10.0, hfov_tele_deg=20.0)
    with pytest.raises(ValueError, match="fields of view"):
        Lens(hfov_wide_deg=180.0, hfov_tele_deg=20.0)


@given(zooms, zooms)
def test_lens_field_of_view_shrinks_with_zoom_and_inverts(z1: float, z2: float) -> None:
    if z1 < z2:
        assert LENS.hfov_deg(z1) >= LENS.hfov_deg(z2)
    assert LENS.zoom_for_hfov(LENS.hfov_deg(z1)) == pytest.approx(z1, abs=1e-9)


@given(pans, st.floats(-90.0, 90.0))
def test_angles_round_trip(pan: float, tilt: float) -> None:
    d = angles_to_direction([pan], [tilt])
    assert np.linalg.norm(d) == pytest.approx(1.0)
    p, t = direction_to_angles(d)
    assert t[0] == pytest.approx(tilt, abs=1e-9)
    if abs(tilt) < 89.999:
        assert wrap_pan(p[0] - pan + 1e-12) == pytest.approx(0.0, abs=1e-7)


def test_angle_conventions_follow_onvif_spherical_space() -> None:
    """A larger pan turns right (objects move left in the picture); a larger tilt turns up
    (objects move down)."""
    point = angles_to_direction([20.0], [5.0])
    base = CameraView.create(PTZState(20.0, 5.0, 0.0), LENS, 640, 360)
    panned = CameraView.create(PTZState(25.0, 5.0, 0.0), LENS, 640, 360)
    tilted = CameraView.create(PTZState(20.0, 10.0, 0.0), LENS, 640, 360)
    (x0, y0), (x1, y1), (x2, y2) = (
        v.direction_to_pixel(point)[0][0] for v in (base, panned, tilted)
    )
    assert x1 < x0
    assert y1 == pytest.approx(y0, abs=1.0)
    assert y2 > y0
    assert x2 == pytest.approx(x0, abs=1e-6)
    # A point to the right of the camera (larger pan) is right of the centre.
    right = base.direction_to_pixel(angles_to_direction([30.0], [5.0]))[0][0]
    assert right[0] > 320.0


@given(states)
def test_optical_axis_projects_to_centre_and_fov_to_edges(state: PTZState) -> None:
    view = CameraView.create(state, LENS, 800, 450)
    px, ok = view.direction_to_pixel(state.direction)
    assert ok[0]
    np.testing.assert_allclose(px[0], [400.0, 225.0], atol=1e-6)
    # The left and right picture edges at mid-height are hfov/2 off the axis.
    edges = view.pixel_to_direction([[0.0, 225.0], [800.0, 225.0]])
    angles = np.degrees(np.arccos(np.clip(edges @ state.direction, -1, 1)))
    np.testing.assert_allclose(angles, view.hfov_deg / 2.0, atol=1e-6)


@settings(max_examples=50)
@given(states, st.floats(-200.0, 1000.0), st.floats(-200.0, 600.0))
def test_pixel_direction_round_trip(state: PTZState, x: float, y: float) -> None:
    view = CameraView.create(state, LENS, 800, 450)
    d = view.pixel_to_direction([[x, y]])
    assert np.linalg.norm(d[0]) == pytest.approx(1.0)
    px, ok = view.direction_to_pixel(d)
    assert ok[0]
    np.testing.assert_allclose(px[0], [x, y], atol=1e-6)
    norm = view.normalized_to_direction([[x / 800.0, y / 450.0]])
    np.testing.assert_allclose(norm, d, atol=1e-12)


@given(states)
def test_points_behind_the_camera_are_flagged(state: PTZState) -> None:
    view = CameraView.create(state, LENS, 320, 180)
    behind = -state.direction.reshape(1, 3)
    # 91 degrees off the axis, to the camera's right: just behind.
    a = math.radians(91.0)
    sideways = (math.cos(a) * view.rotation[2] + math.sin(a) * view.rotation[0]).reshape(1, 3)
    px, ok = view.direction_to_pixel(np.concatenate([behind, sideways]))
    assert not ok.any()
    assert np.isnan(px).all()


def test_rotation_is_orthonormal_and_never_rolls() -> None:
    for state in (PTZState(0, 0, 0), PTZState(123.0, -40.0, 0.3), PTZState(-60.0, 90.0, 1.0)):
        view = CameraView.create(state, LENS, 64, 48)
        np.testing.assert_allclose(view.rotation @ view.rotation.T, np.eye(3), atol=1e-12)
        # The camera's x axis stays horizontal (no roll).
        assert view.rotation[0, 1] == pytest.approx(0.0, abs=1e-12)


def test_pixel_centres_cover_the_picture_row_by_row() -> None:
    view = CameraView.create(PTZState(10.0, 20.0, 0.2), LENS, 8, 4)
    dirs = view.pixel_centres_directions()
    assert dirs.shape == (32, 3)
    np.testing.assert_allclose(dirs[9], view.pixel_to_direction([[1.5, 1.5]])[0])


def test_shapes_are_checked() -> None:
    view = CameraView.create(PTZState(), LENS, 8, 4)
    with pytest.raises(ShapeError, match=r"\(N, 3\)"):
        view.direction_to_pixel(np.zeros((2, 2)))
    with pytest.raises(ShapeError, match=r"\(N, 2\)"):
        view.pixel_to_direction(np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="same length"):
        angles_to_direction([1.0, 2.0], [1.0])
    with pytest.raises(ShapeError, match="positive"):
        CameraView.create(PTZState(), LENS, 0, 4)
