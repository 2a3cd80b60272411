"""Virtual PTZ camera: rendering from an equirectangular scene, ONVIF move semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veil.core.errors import VeilError
from veil.ptz.camera import Lens, PTZState, wrap_pan
from veil.ptz.masks import SceneMask, project_mask, state_for_mask
from veil.ptz.virtual import (
    PTZCommandError,
    PTZLimits,
    VirtualPTZ,
    synthetic_equirect,
    tile_at,
    tile_color,
)

LENS = Lens(hfov_wide_deg=60.0, hfov_tele_deg=3.0)
SCENE = synthetic_equirect(1024, 512)
W, H = 320, 180


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def camera(**kwargs: object) -> tuple[VirtualPTZ, FakeClock]:
    clock = FakeClock()
    cam = VirtualPTZ(SCENE, LENS, (W, H), clock=clock, **kwargs)  # type: ignore[arg-type]
    return cam, clock


def close_color(pixel: np.ndarray, color: tuple[int, int, int], tol: int = 6) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(color)).max() <= tol)


# ----------------------------------------------------------------- scene and rendering


def test_synthetic_tiles_all_differ() -> None:
    colors = {tile_color(c, r) for c in range(12) for r in range(6)}
    assert len(colors) == 72
    arr = np.array(sorted(colors), dtype=int)
    diffs = np.abs(arr[:, None, :] - arr[None, :, :]).max(axis=2)
    assert diffs[~np.eye(72, dtype=bool)].min() >= 20


@pytest.mark.parametrize(
    ("pan", "tilt"),
    [(15.0, 15.0), (-165.0, -45.0), (165.0, 45.0), (105.0, -15.0), (-75.0, 75.0), (45.0, -75.0)],
)
def test_view_centre_shows_the_tile_the_camera_points_at(pan: float, tilt: float) -> None:
    cam, _ = camera(initial=PTZState(pan, tilt, 0.5))
    image = cam.render()
    assert image.shape == (H, W, 3)
    assert close_color(image[H // 2, W // 2], tile_color(*tile_at(pan, tilt)))


def test_rendering_orientation_right_is_larger_pan_up_is_larger_tilt() -> None:
    cam, _ = camera(initial=PTZState(15.0, 15.0, 0.0))  # tile (6, 2) in the middle
    image = cam.render()
    # 25 degrees right of the centre is tile column 7; 25 degrees up is row 1.
    f = W / 2 / math.tan(math.radians(30.0))
    dx = int(f * math.tan(math.radians(20.0)))
    assert close_color(image[H // 2, W // 2 + dx], tile_color(7, 2))
    assert close_color(image[H // 2, W // 2 - dx], tile_color(5, 2))
    top = cam.render(PTZState(15.0, 40.0, 0.0))
    assert close_color(top[H // 2, W // 2], tile_color(6, 1))


def test_rendering_wraps_at_pan_180() -> None:
    cam, _ = camera()
    a = cam.render(PTZState(180.0, 0.0, 0.2))
    b = cam.render(PTZState(-180.0, 0.0, 0.2))
    assert np.array_equal(a, b)
    # Both halves of the seam are the scene's two outer tile columns.
    assert close_color(a[H // 4, 10], tile_color(11, 2))
    assert close_color(a[H // 4, W - 10], tile_color(0, 2))


def test_map_cache_is_bounded_and_reused() -> None:
    cam, _ = camera(map_cache_size=2)
    first = cam.render(PTZState(10.0, 0.0, 0.0))
    for pan in (20.0, 30.0, 40.0):
        cam.render(PTZState(pan, 0.0, 0.0))
    assert len(cam._maps) == 2
    assert np.array_equal(cam.render(PTZState(10.0, 0.0, 0.0)), first)


def test_capture_gives_frame_and_the_reading_it_was_rendered_at() -> None:
    cam, clock = camera(initial=PTZState(30.0, 0.0, 0.1))
    frame, reading = cam.capture(7)
    assert frame.index == 7
    assert frame.time == pytest.approx(clock.now)
    assert reading.state == PTZState(30.0, 0.0, 0.1)
    assert reading.moving is False
    assert np.array_equal(frame.image, cam.render(reading.state))


# ----------------------------------------------------------------- ONVIF moves


def test_absolute_move_instant_and_at_speed_takes_the_short_way() -> None:
    cam, clock = camera(initial=PTZState(170.0, 0.0, 0.0))
    cam.absolute_move(PTZState(-170.0, 10.0, 0.5), speed=0.5)  # 45 deg/s, 0.25 zoom/s
    assert cam.moving
    clock.now += 0.2
    s = cam.state
    assert s.pan_deg == pytest.approx(179.0)  # went right, across 180, not back through 0
    assert s.tilt_deg == pytest.approx(9.0)
    assert s.zoom == pytest.approx(0.05)
    reading = cam.read()
    assert reading.moving
    assert reading.velocity is not None
    assert reading.velocity.pan_deg_s == pytest.approx(45.0)
    clock.now += 2.0
    assert cam.state == PTZState(-170.0, 10.0, 0.5)
    assert not cam.moving
    cam.absolute_move(PTZState(0.0, -95.0 + 5.0, 1.0))
    assert cam.state == PTZState(0.0, -90.0, 1.0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-170, 170), st.floats(-40, 40), st.floats(-0.3, 0.3)),
        min_size=1,
        max_size=6,
    )
)
def test_relative_moves_add(steps: list[tuple[float, float, float]]) -> None:
    cam, _ = camera(initial=PTZState(0.0, 0.0, 0.5))
    pan, tilt, zoom = 0.0, 0.0, 0.5
    for dp, dt, dz in steps:
        cam.relative_move(dp, dt, dz)
        pan = wrap_pan(pan + dp)
        tilt = min(max(tilt + dt, -90.0), 90.0)
        zoom = min(max(zoom + dz, 0.0), 1.0)
    s = cam.state
    assert wrap_pan(s.pan_deg - pan + 1e-9) == pytest.approx(0.0, abs=1e-6)
    assert s.tilt_deg == pytest.approx(tilt)
    assert s.zoom == pytest.approx(zoom)


def test_relative_move_at_speed_leaves_untouched_axes_alone() -> None:
    cam, clock = camera(initial=PTZState(0.0, 0.0, 0.3))
    cam.relative_move(pan_deg=9.0, speed=0.1)  # 9 deg/s
    clock.now += 0.5
    assert cam.state == PTZState(4.5, 0.0, 0.3)
    clock.now += 1.0
    assert cam.state == PTZState(9.0, 0.0, 0.3)
    assert not cam.moving


def test_continuous_move_integrates_and_stops_at_timeout() -> None:
    cam, clock = camera(initial=PTZState(0.0, 0.0, 0.2))
    cam.continuous_move(10.0, -5.0, 0.1, timeout_s=2.0)
    clock.now += 0.5
    assert cam.state == PTZState(5.0, -2.5, 0.25)
    clock.now += 0.75
    assert cam.state.pan_deg == pytest.approx(12.5)
    clock.now += 5.0  # past the timeout: stopped at 2 s of motion
    s = cam.state
    assert (s.pan_deg, s.tilt_deg, s.zoom) == pytest.approx((20.0, -10.0, 0.4))
    assert not cam.moving


def test_continuous_move_default_timeout_stop_and_zero_velocity() -> None:
    cam, clock = camera(default_timeout_s=3.0)
    cam.continuous_move_generic(0.5)  # half of 90 deg/s
    clock.now += 10.0
    assert cam.state.pan_deg == pytest.approx(wrap_pan(45.0 * 3.0))
    cam.continuous_move(30.0)
    clock.now += 1.0
    cam.stop()
    stopped = cam.state
    clock.now += 1.0
    assert cam.state == stopped
    assert not cam.moving
    cam.continuous_move(30.0)
    clock.now += 0.5
    cam.continuous_move(0.0, 0.0, 0.0)  # ONVIF: zero velocity stops
    at = cam.state
    clock.now += 1.0
    assert cam.state == at


def test_stop_filters_pan_tilt_or_zoom() -> None:
    cam, clock = camera()
    cam.continuous_move(10.0, 0.0, 0.2, timeout_s=10.0)
    clock.now += 1.0
    cam.stop(pan_tilt=True, zoom=False)
    clock.now += 1.0
    s = cam.state
    assert s.pan_deg == pytest.approx(10.0)
    assert s.zoom == pytest.approx(0.4)
    cam.stop(pan_tilt=False, zoom=True)
    assert not cam.moving


def test_continuous_move_runs_along_the_tilt_border() -> None:
    cam, clock = camera(limits=PTZLimits(tilt_min_deg=-30.0, tilt_max_deg=30.0))
    cam.continuous_move(10.0, 40.0, timeout_s=5.0)
    clock.now += 2.0
    s = cam.state
    assert s.tilt_deg == 30.0
    assert s.pan_deg == pytest.approx(20.0)


def test_presets_round_trip() -> None:
    cam, clock = camera()
    cam.absolute_move(PTZState(42.0, -12.0, 0.6))
    door = cam.set_preset("door")
    cam.absolute_move(PTZState(-100.0, 5.0, 0.1))
    gate = cam.set_preset("gate")
    assert [(p.token, p.name) for p in cam.presets()] == [(door, "door"), (gate, "gate")]
    cam.goto_preset(door)
    assert cam.state == PTZState(42.0, -12.0, 0.6)
    cam.goto_preset(gate, speed=1.0)
    clock.now += 10.0
    assert cam.state == PTZState(-100.0, 5.0, 0.1)
    # Overwrite by token, then remove.
    cam.absolute_move(PTZState(1.0, 2.0, 0.3))
    assert cam.set_preset("door", token=door) == door
    cam.goto_preset(door)
    assert cam.state == PTZState(1.0, 2.0, 0.3)
    cam.remove_preset(door)
    assert [p.token for p in cam.presets()] == [gate]


@pytest.mark.parametrize(
    ("action", "fault"),
    [
        (lambda cam: cam.goto_preset("nope"), "NoToken"),
        (lambda cam: cam.remove_preset("nope"), "NoToken"),
        (lambda cam: cam.set_preset("x", token="nope"), "NoToken"),
        (lambda cam: (cam.continuous_move(5.0), cam.set_preset("x")), "MovingPTZ"),
        (lambda cam: [cam.set_preset(n) for n in "abc"], "TooManyPresets"),
        (
            lambda cam: (cam.set_preset("a"), cam.relative_move(1.0), cam.set_preset("a")),
            "PresetExist",
        ),
        (lambda cam: cam.absolute_move(PTZState(), speed=1.5), "InvalidSpeed"),
        (lambda cam: cam.continuous_move(1.0, timeout_s=0.0), "TimeoutNotSupported"),
        (lambda cam: cam.absolute_move_generic(1.5, 0.0, 0.0), "InvalidPosition"),
        (lambda cam: cam.relative_move_generic(2.0), "InvalidTranslation"),
        (lambda cam: cam.continuous_move_generic(-1.5), "InvalidVelocity"),
    ],
)
def test_refused_commands_raise_with_onvif_fault(action: object, fault: str) -> None:
    cam, _ = camera(max_presets=2)
    with pytest.raises(PTZCommandError) as info:
        action(cam)  # type: ignore[operator]
    assert info.value.fault == fault
    assert isinstance(info.value, VeilError)
    assert isinstance(info.value, ValueError)


def test_generic_spaces() -> None:
    cam, _ = camera(limits=PTZLimits(tilt_min_deg=-90.0, tilt_max_deg=30.0))
    state = cam.from_generic(0.5, 0.0, 0.25)
    assert state == PTZState(90.0, -30.0, 0.25)
    assert cam.to_generic(state) == pytest.approx((0.5, 0.0, 0.25))
    cam.absolute_move_generic(-1.0, 1.0, 1.0)
    assert cam.state == PTZState(-180.0, 30.0, 1.0)
    cam.relative_move_generic(0.5, -0.5, -0.5)  # 90 degrees pan, 30 tilt, half the zoom
    assert cam.state == PTZState(-90.0, 0.0, 0.5)


# ----------------------------------------------------------------- go to mask


@pytest.mark.parametrize(
    "vertices",
    [
        [[10.0, -5.0], [30.0, -5.0], [30.0, 8.0], [10.0, 8.0]],
        [[170.0, 20.0], [-175.0, 22.0], [-178.0, 30.0]],
        [[-60.0, -40.0], [-58.0, -40.0], [-58.0, -39.0], [-60.0, -39.0]],
    ],
)
def test_go_to_mask_centres_and_fits_the_mask(vertices: list[list[float]]) -> None:
    mask = SceneMask(np.array(vertices, dtype=float))
    cam, _ = camera()
    cam.go_to_mask(mask, fill=0.8)
    view = cam.view()
    px = project_mask(view, mask)
    assert px is not None
    lo, hi = px.min(axis=0), px.max(axis=0)
    np.testing.assert_allclose((lo + hi) / 2, [W / 2, H / 2], atol=0.5)
    # It fits, and spans 80 % of the width or the height (unless the lens cannot zoom so far).
    assert (lo >= 0).all()
    assert (hi <= [W, H]).all()
    span = max((hi[0] - lo[0]) / W, (hi[1] - lo[1]) / H)
    if view.state.zoom < 1.0:
        assert span == pytest.approx(0.8, abs=0.01)
    else:
        assert span < 0.8


def test_state_for_mask_is_pure_and_respects_fill() -> None:
    mask = SceneMask(np.array([[-5.0, -5.0], [5.0, -5.0], [5.0, 5.0], [-5.0, 5.0]], dtype=float))
    wide = state_for_mask(mask, LENS, W, H, fill=1.0)
    tight = state_for_mask(mask, LENS, W, H, fill=0.5)
    assert wide.zoom > tight.zoom
    with pytest.raises(ValueError, match="fill"):
        state_for_mask(mask, LENS, W, H, fill=0.0)


def test_set_source_replaces_the_picture_and_keeps_maps_for_the_same_size() -> None:
    cam, _ = camera(initial=PTZState(15.0, 15.0, 0.5))
    before = cam.render()
    cam.render(PTZState(40.0, 0.0, 0.0))
    cached = len(cam._maps)
    cam.set_source(np.full_like(SCENE, 77))
    assert len(cam._maps) == cached
    assert (cam.render() == 77).all()
    cam.set_source(SCENE)
    assert np.array_equal(cam.render(), before)
    cam.set_source(synthetic_equirect(512, 256))
    assert len(cam._maps) == 0  # another size: maps recomputed on the next render


def test_captured_position_follows_the_frames_not_the_clock() -> None:
    cam, clock = camera(initial=PTZState(0.0, 0.0, 0.0))
    provider = cam.captured_position()
    assert provider.read().state == PTZState()
    cam.continuous_move(10.0, timeout_s=10.0)
    clock.now += 1.0
    _, reading = cam.capture(0)
    clock.now += 0.5  # the planner runs later; the camera has moved on
    assert cam.state.pan_deg == pytest.approx(15.0)
    assert provider.read() == reading
    assert reading.state.pan_deg == pytest.approx(10.0)
    assert reading.moving
