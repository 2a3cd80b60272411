"""A virtual PTZ camera: views of a 360 degree picture, moved like an ONVIF PTZ camera.

:class:`VirtualPTZ` renders, from an equirectangular source (360 degrees of pan across its
width, 180 degrees of tilt down its height, pan -180 at the left edge and tilt +90 at the
top), the pinhole view of its current pan, tilt and zoom (:mod:`veil.ptz.camera`). It
implements :class:`veil.ptz.onvif_status.PositionProvider`, so the mask planner follows it
exactly, and it moves with the semantics of the ONVIF PTZ service:

- ``absolute_move``: to a position; ``relative_move``: by a translation from the current
  position; both travel at a speed (ONVIF's generic speed 0..1 of the head's full speed;
  omitted, the configured default speed, which may be "instant").
- ``continuous_move``: at a velocity until its timeout (omitted: the default timeout,
  like ONVIF's ``DefaultPTZTimeout``) or until ``stop`` or another move; a zero velocity on
  an axis stops that axis; where the velocity would leave the range, the camera moves
  along its border.
- ``stop``: pan/tilt, zoom, or both.
- presets: ``set_preset`` (fails while moving, as ONVIF's ``MovingPTZ`` fault),
  ``goto_preset``, ``presets``, ``remove_preset``; unknown tokens fail like ``NoToken``.
- ``go_to_mask``: points the camera at a scene mask, centred and zoomed to fit.

Pan wraps at +-180 degrees and absolute moves take the shorter way round; tilt is clamped to
the configured limits, zoom to 0..1. Time comes from an injectable clock and motion is
integrated lazily whenever the camera is read, so tests step a fake clock and get exact
positions.

ONVIF's generic spaces map as follows: position x -1..1 is pan -180..180, y -1..1 is the
tilt range, zoom 0..1 is zoom; a generic translation is a difference of generic positions
(x 1.0 = 180 degrees of pan); a generic velocity of 1 is the head's full speed.

Rendering uses ``cv2.remap`` with maps computed once per position and picture size and
kept in a small cache, so a camera standing still costs one remap per frame.
"""

from __future__ import annotations

import builtins
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from veil.core.errors import VeilError
from veil.core.frame import Frame, Image, check_image
from veil.ptz.camera import CameraView, Lens, PTZState, wrap_pan
from veil.ptz.masks import SceneMask, state_for_mask
from veil.ptz.onvif_status import PTZReading, PTZVelocity


class PTZCommandError(VeilError, builtins.ValueError):
    """A PTZ command was refused. ``fault`` is ONVIF's subcode (``NoToken``,
    ``MovingPTZ``, ``TooManyPresets``, ``InvalidPosition``, ``InvalidSpeed``...)."""

    exit_code = 2

    def __init__(self, message: str, *, fault: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.fault = fault


# --------------------------------------------------------------------------- source


def equirect_maps(
    view: CameraView, source_width: int, source_height: int, pad: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``cv2.remap`` maps ``(height, width)`` giving, for each pixel of ``view``, where its
    centre's direction falls in an equirectangular source (shifted right by ``pad``
    columns, for a source padded with wrapped columns)."""
    # The ray through pixel (i, j) is x_i * right + y_j * down + forward (rows of the
    # rotation), computed by broadcasting a column and a row in float32.
    rot = view.rotation.astype(np.float32)
    xs = ((np.arange(view.width, dtype=np.float32) + 0.5 - view.cx) / view.focal_px)[None, :]
    ys = ((np.arange(view.height, dtype=np.float32) + 0.5 - view.cy) / view.focal_px)[:, None]
    wx = xs * rot[0, 0] + (ys * rot[1, 0] + rot[2, 0])
    wy = xs * rot[0, 1] + (ys * rot[1, 1] + rot[2, 1])
    wz = xs * rot[0, 2] + (ys * rot[1, 2] + rot[2, 2])
    pan = np.arctan2(wx, wz)
    tilt = np.arctan2(wy, np.hypot(wx, wz))
    map_x = (pan + np.float32(np.pi)) * np.float32(source_width / (2.0 * np.pi)) + np.float32(
        pad - 0.5
    )
    map_y = (np.float32(np.pi / 2.0) - tilt) * np.float32(source_height / np.pi) - np.float32(0.5)
    return map_x.astype(np.float32, copy=False), map_y.astype(np.float32, copy=False)


SYNTHETIC_TILE_DEG = 30
"""Tile size of :func:`synthetic_equirect`: 12 columns of pan by 6 rows of tilt."""


def tile_at(pan_deg: float, tilt_deg: float, tile_deg: int = SYNTHETIC_TILE_DEG) -> tuple[int, int]:
    """``(column, row)`` of the synthetic scene's tile at a direction (row 0 at the top)."""
    cols, rows = 360 // tile_deg, 180 // tile_deg
    col = min(int((wrap_pan(pan_deg) + 180.0) // tile_deg), cols - 1)
    row = min(max(int((90.0 - tilt_deg) // tile_deg), 0), rows - 1)
    return col, row


def tile_color(col: int, row: int, tile_deg: int = SYNTHETIC_TILE_DEG) -> tuple[int, int, int]:
    """The BGR colour of a synthetic tile: hue by column, saturation and value by row, so
    every tile differs from every other by at least 30 in some channel."""
    cols = 360 // tile_deg
    hue = round(col * 180 / cols) % 180
    sat = 255 if row % 2 == 0 else 140
    val = 250 - 25 * (row // 2) * 2
    hsv = np.array([[[hue, sat, val]]], dtype=np.uint8)
    b, g, r = (int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])
    return b, g, r


def synthetic_equirect(
    width: int = 2048, height: int = 1024, tile_deg: int = SYNTHETIC_TILE_DEG
) -> Image:
    """A labelled test scene: a grid of coloured tiles of ``tile_deg`` degrees, dark grid
    lines at the tile borders, and each tile's ``column,row`` written near its top-left
    corner (the tile's centre is left plain so tests can read its colour there)."""
    if 360 % tile_deg or 180 % tile_deg:
        raise ValueError(f"tile_deg must divide 180, got {tile_deg}")
    img = np.zeros((height, width, 3), dtype=np.uint8)
    cols, rows = 360 // tile_deg, 180 // tile_deg
    xs = np.round(np.arange(cols + 1) * width / cols).astype(int)
    ys = np.round(np.arange(rows + 1) * height / rows).astype(int)
    for r in range(rows):
        for c in range(cols):
            img[ys[r] : ys[r + 1], xs[c] : xs[c + 1]] = tile_color(c, r, tile_deg)
            scale = max(0.3, (xs[c + 1] - xs[c]) / 200.0)
            cv2.putText(
                img,
                f"{c},{r}",
                (int(xs[c]) + 4, int(ys[r]) + int(22 * scale) + 2),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (20, 20, 20),
                max(1, int(2 * scale)),
                cv2.LINE_AA,
            )
    line = max(1, width // 1024)
    for x in xs:
        img[:, max(0, x - line) : x + line] = (40, 40, 40)
    for y in ys:
        img[max(0, y - line) : y + line, :] = (40, 40, 40)
    return img


# --------------------------------------------------------------------------- motion


@dataclass(frozen=True, slots=True)
class PTZLimits:
    """The head's range and speeds. Pan always wraps (a 360 degree head)."""

    tilt_min_deg: float = -90.0
    tilt_max_deg: float = 90.0
    max_speed_deg_s: float = 90.0
    """Full pan or tilt speed (generic velocity or speed 1)."""
    max_zoom_speed: float = 0.5
    """Full zoom speed in generic zoom units per second."""

    def __post_init__(self) -> None:
        if not -90.0 <= self.tilt_min_deg <= self.tilt_max_deg <= 90.0:
            raise ValueError(
                f"tilt limits must satisfy -90 <= min <= max <= 90, got "
                f"{self.tilt_min_deg}, {self.tilt_max_deg}"
            )
        if self.max_speed_deg_s <= 0.0 or self.max_zoom_speed <= 0.0:
            raise ValueError("maximal speeds must be positive")

    def clamp(self, pan_deg: float, tilt_deg: float, zoom: float) -> PTZState:
        return PTZState(
            pan_deg,
            min(max(tilt_deg, self.tilt_min_deg), self.tilt_max_deg),
            min(max(zoom, 0.0), 1.0),
        )


@dataclass(frozen=True, slots=True)
class Preset:
    """A saved position: ONVIF's PTZPreset (token, name, position)."""

    token: str
    name: str
    state: PTZState


@dataclass(frozen=True, slots=True)
class _Continuous:
    velocity: PTZVelocity
    until: float


@dataclass(frozen=True, slots=True)
class _Target:
    target: PTZState
    pan_tilt_speed: float  # deg/s, inf for instant
    zoom_speed: float  # generic/s, inf for instant
    move_pan_tilt: bool = True
    move_zoom: bool = True


_Motion = _Continuous | _Target
_Map = NDArray[np.integer[Any]]


def _step(current: float, target: float, max_step: float) -> float:
    delta = target - current
    if abs(delta) <= max_step:
        return target
    return current + math.copysign(max_step, delta)


class VirtualPTZ:
    """A PTZ camera simulated from an equirectangular picture (see the module docstring).

    ``source``: the 360 x 180 degree picture (BGR). ``output_size``: ``(width, height)`` of
    the rendered views. ``default_speed``: generic speed 0..1 of absolute, relative and
    preset moves when none is given; None moves instantly. ``default_timeout_s``: how long
    a continuous move lasts when it gives no timeout. ``max_presets``: like ONVIF's
    ``MaximumNumberOfPresets``. ``clock``: seconds, monotonic; inject a fake one in tests.

    Example::

        >>> cam = VirtualPTZ(synthetic_equirect(512, 256), output_size=(320, 180),
        ...                  clock=lambda: 0.0)
        >>> cam.absolute_move(PTZState(pan_deg=45.0, tilt_deg=10.0, zoom=0.5))
        >>> cam.relative_move(pan_deg=-15.0)
        >>> cam.state
        PTZState(pan_deg=30.0, tilt_deg=10.0, zoom=0.5)
        >>> cam.render().shape
        (180, 320, 3)
    """

    def __init__(
        self,
        source: Image,
        lens: Lens | None = None,
        output_size: tuple[int, int] = (1280, 720),
        *,
        limits: PTZLimits | None = None,
        initial: PTZState | None = None,
        default_speed: float | None = None,
        default_timeout_s: float = 10.0,
        max_presets: int = 100,
        clock: Callable[[], float] = time.monotonic,
        map_cache_size: int = 8,
    ) -> None:
        if output_size[0] < 1 or output_size[1] < 1:
            raise ValueError(f"output size must be positive, got {output_size}")
        if default_speed is not None and not 0.0 < default_speed <= 1.0:
            raise ValueError(f"default speed must lie in (0, 1], got {default_speed}")
        self._pad = 2
        self._source_size = (0, 0)
        self._padded = np.zeros((1, 1, 3), np.uint8)
        self._maps: OrderedDict[tuple[PTZState, int, int], tuple[_Map, _Map]] = OrderedDict()
        self.set_source(source)
        self.lens = lens if lens is not None else Lens()
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self.limits = limits if limits is not None else PTZLimits()
        self._clock = clock
        self._default_speed = default_speed
        self._default_timeout_s = default_timeout_s
        self._max_presets = max_presets
        self._map_cache_size = map_cache_size
        start = initial if initial is not None else PTZState()
        self._state = self.limits.clamp(start.pan_deg, start.tilt_deg, start.zoom)
        self._time = clock()
        self._motion: _Motion | None = None
        self._presets: dict[str, Preset] = {}
        self._last_capture: PTZReading | None = None
        self._next_token = 1

    def set_source(self, source: Image) -> None:
        """Replace the 360 degree picture (the next frame of a 360 degree video). Maps are
        kept when the size is unchanged."""
        check_image(source, "equirectangular source")
        size = (int(source.shape[1]), int(source.shape[0]))
        if size != self._source_size:
            self._maps.clear()
            self._source_size = size
        # Two wrapped columns on each side, so bilinear sampling wraps across pan 180.
        pad = self._pad
        padded = np.concatenate([source[:, -pad:], source, source[:, :pad]], axis=1)
        padded.flags.writeable = False
        self._padded = padded

    # ----------------------------------------------------------------- reading

    @property
    def state(self) -> PTZState:
        """The position now."""
        self._advance()
        return self._state

    @property
    def moving(self) -> bool:
        self._advance()
        return self._motion is not None

    def read(self) -> PTZReading:
        """The position now, as ONVIF GetStatus would report it (a PositionProvider)."""
        self._advance()
        return PTZReading(
            self._state,
            moving=self._motion is not None,
            timestamp=self._time,
            velocity=self._velocity(),
            accuracy_deg=0.0,
        )

    def captured_position(self) -> CapturedPosition:
        """A position provider giving the reading of the last :meth:`capture`: exactly the
        position each frame was rendered at, even when the clock runs on between the
        capture and the planning (a live loop)."""
        return CapturedPosition(self)

    @property
    def last_capture(self) -> PTZReading | None:
        """The reading of the last :meth:`capture`, or None before the first."""
        return self._last_capture

    def _velocity(self) -> PTZVelocity:
        motion = self._motion
        if motion is None:
            return PTZVelocity()
        if isinstance(motion, _Continuous):
            return motion.velocity
        s, t = self._state, motion.target
        dp = wrap_pan(t.pan_deg - s.pan_deg)
        dt = t.tilt_deg - s.tilt_deg
        dz = t.zoom - s.zoom
        v = motion.pan_tilt_speed
        vz = motion.zoom_speed
        return PTZVelocity(
            math.copysign(v, dp) if dp and motion.move_pan_tilt else 0.0,
            math.copysign(v, dt) if dt and motion.move_pan_tilt else 0.0,
            math.copysign(vz, dz) if dz and motion.move_zoom else 0.0,
        )

    def _advance(self) -> None:
        now = self._clock()
        if now <= self._time:
            return
        motion = self._motion
        if isinstance(motion, _Continuous):
            end = min(now, motion.until)
            dt = end - self._time
            v = motion.velocity
            s = self._state
            self._state = self.limits.clamp(
                s.pan_deg + v.pan_deg_s * dt,
                s.tilt_deg + v.tilt_deg_s * dt,
                s.zoom + v.zoom_per_s * dt,
            )
            if now >= motion.until:
                self._motion = None
        elif isinstance(motion, _Target):
            dt = now - self._time
            s, t = self._state, motion.target
            pan, tilt, zoom = s.pan_deg, s.tilt_deg, s.zoom
            if motion.move_pan_tilt:
                step = motion.pan_tilt_speed * dt
                pan = s.pan_deg + _step(0.0, wrap_pan(t.pan_deg - s.pan_deg), step)
                tilt = _step(s.tilt_deg, t.tilt_deg, step)
            if motion.move_zoom:
                zoom = _step(s.zoom, t.zoom, motion.zoom_speed * dt)
            self._state = self.limits.clamp(pan, tilt, zoom)
            pt_done = not motion.move_pan_tilt or (
                abs(wrap_pan(t.pan_deg - self._state.pan_deg)) <= 1e-9
                and self._state.tilt_deg == t.tilt_deg
            )
            z_done = not motion.move_zoom or self._state.zoom == t.zoom
            if pt_done and z_done:
                self._state = replace(
                    self._state,
                    pan_deg=t.pan_deg if motion.move_pan_tilt else self._state.pan_deg,
                )
                self._motion = None
        self._time = now

    # ----------------------------------------------------------------- moves

    def _speeds(self, speed: float | None) -> tuple[float, float]:
        s = self._default_speed if speed is None else speed
        if s is None:
            return math.inf, math.inf
        if not 0.0 < s <= 1.0:
            raise PTZCommandError(f"speed must lie in (0, 1], got {s}", fault="InvalidSpeed")
        return s * self.limits.max_speed_deg_s, s * self.limits.max_zoom_speed

    def _move_to(
        self, target: PTZState, speed: float | None, *, pan_tilt: bool = True, zoom: bool = True
    ) -> None:
        self._advance()
        target = self.limits.clamp(target.pan_deg, target.tilt_deg, target.zoom)
        v, vz = self._speeds(speed)
        self._motion = _Target(target, v, vz, pan_tilt, zoom)
        if math.isinf(v) and math.isinf(vz):
            # Instant: jump now, so reading the camera at the same clock time sees it there.
            self._state = PTZState(
                target.pan_deg if pan_tilt else self._state.pan_deg,
                target.tilt_deg if pan_tilt else self._state.tilt_deg,
                target.zoom if zoom else self._state.zoom,
            )
            self._motion = None

    def absolute_move(self, position: PTZState, speed: float | None = None) -> None:
        """ONVIF AbsoluteMove: go to ``position`` (tilt clamped to the limits), the shorter
        way round in pan. Interrupts any other move."""
        self._move_to(position, speed)

    def relative_move(
        self,
        pan_deg: float = 0.0,
        tilt_deg: float = 0.0,
        zoom: float = 0.0,
        speed: float | None = None,
    ) -> None:
        """ONVIF RelativeMove: go by a translation from the current position (positive is
        right, up and tele). A translation past the range stops at its border."""
        self._advance()
        s = self._state
        self._move_to(
            PTZState(
                wrap_pan(s.pan_deg + pan_deg),
                min(max(s.tilt_deg + tilt_deg, -90.0), 90.0),
                min(max(s.zoom + zoom, 0.0), 1.0),
            ),
            speed,
            pan_tilt=pan_deg != 0.0 or tilt_deg != 0.0,
            zoom=zoom != 0.0,
        )

    def continuous_move(
        self,
        pan_deg_s: float = 0.0,
        tilt_deg_s: float = 0.0,
        zoom_per_s: float = 0.0,
        timeout_s: float | None = None,
    ) -> None:
        """ONVIF ContinuousMove in degrees per second (and generic zoom units per second):
        moves until ``timeout_s`` has passed (default: the camera's default timeout), or
        until ``stop`` or another move. All-zero velocities stop the camera."""
        self._advance()
        timeout = self._default_timeout_s if timeout_s is None else timeout_s
        if not timeout > 0.0:
            raise PTZCommandError(
                f"timeout must be positive, got {timeout}", fault="TimeoutNotSupported"
            )
        velocity = PTZVelocity(float(pan_deg_s), float(tilt_deg_s), float(zoom_per_s))
        self._motion = None if velocity.is_zero else _Continuous(velocity, self._time + timeout)

    def stop(self, pan_tilt: bool = True, zoom: bool = True) -> None:
        """ONVIF Stop: stop pan/tilt, zoom, or (default) both."""
        self._advance()
        motion = self._motion
        if motion is None or (pan_tilt and zoom):
            self._motion = None
            return
        if isinstance(motion, _Continuous):
            v = motion.velocity
            v = PTZVelocity(
                0.0 if pan_tilt else v.pan_deg_s,
                0.0 if pan_tilt else v.tilt_deg_s,
                0.0 if zoom else v.zoom_per_s,
            )
            self._motion = None if v.is_zero else _Continuous(v, motion.until)
        else:
            keep_pt = motion.move_pan_tilt and not pan_tilt
            keep_z = motion.move_zoom and not zoom
            self._motion = (
                replace(motion, move_pan_tilt=keep_pt, move_zoom=keep_z)
                if keep_pt or keep_z
                else None
            )

    # ----------------------------------------------------------------- generic spaces

    def to_generic(self, state: PTZState) -> tuple[float, float, float]:
        """A position in ONVIF's generic spaces: pan and tilt -1..1, zoom 0..1."""
        lo, hi = self.limits.tilt_min_deg, self.limits.tilt_max_deg
        y = 0.0 if hi == lo else 2.0 * (state.tilt_deg - lo) / (hi - lo) - 1.0
        return state.pan_deg / 180.0, y, state.zoom

    def from_generic(self, x: float, y: float, zoom: float) -> PTZState:
        """The position at generic coordinates (see :meth:`to_generic`)."""
        if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0 and 0.0 <= zoom <= 1.0):
            raise PTZCommandError(
                f"generic position out of range: ({x}, {y}, {zoom})", fault="InvalidPosition"
            )
        lo, hi = self.limits.tilt_min_deg, self.limits.tilt_max_deg
        return PTZState(x * 180.0, lo + (y + 1.0) / 2.0 * (hi - lo), zoom)

    def absolute_move_generic(
        self, x: float, y: float, zoom: float, speed: float | None = None
    ) -> None:
        self.absolute_move(self.from_generic(x, y, zoom), speed)

    def relative_move_generic(
        self, dx: float, dy: float = 0.0, dzoom: float = 0.0, speed: float | None = None
    ) -> None:
        """RelativeMove in the generic translation space (a difference of generic
        positions: ``dx`` 1.0 is 180 degrees of pan, ``dy`` 1.0 half the tilt range)."""
        if not (-1.0 <= dx <= 1.0 and -1.0 <= dy <= 1.0 and -1.0 <= dzoom <= 1.0):
            raise PTZCommandError(
                f"generic translation out of range: ({dx}, {dy}, {dzoom})",
                fault="InvalidTranslation",
            )
        half_tilt = (self.limits.tilt_max_deg - self.limits.tilt_min_deg) / 2.0
        self.relative_move(dx * 180.0, dy * half_tilt, dzoom, speed)

    def continuous_move_generic(
        self, x: float, y: float = 0.0, zoom: float = 0.0, timeout_s: float | None = None
    ) -> None:
        """ContinuousMove in the generic velocity space: -1..1 of full speed per axis."""
        if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0 and -1.0 <= zoom <= 1.0):
            raise PTZCommandError(
                f"generic velocity out of range: ({x}, {y}, {zoom})", fault="InvalidVelocity"
            )
        v = self.limits.max_speed_deg_s
        self.continuous_move(x * v, y * v, zoom * self.limits.max_zoom_speed, timeout_s)

    # ----------------------------------------------------------------- presets

    def set_preset(self, name: str = "", token: str | None = None) -> str:
        """ONVIF SetPreset: save the current position; returns the preset's token. With a
        token, overwrites that preset. Fails while the camera moves."""
        if self.moving:
            raise PTZCommandError("cannot set a preset while moving", fault="MovingPTZ")
        if token is None:
            if len(self._presets) >= self._max_presets:
                raise PTZCommandError(
                    f"at most {self._max_presets} presets", fault="TooManyPresets"
                )
            token = f"preset-{self._next_token}"
            self._next_token += 1
        elif token not in self._presets:
            raise PTZCommandError(f"no preset with token {token!r}", fault="NoToken")
        if name and any(p.name == name and p.token != token for p in self._presets.values()):
            raise PTZCommandError(f"a preset is already named {name!r}", fault="PresetExist")
        self._presets[token] = Preset(token, name or token, self._state)
        return token

    def presets(self) -> tuple[Preset, ...]:
        """ONVIF GetPresets, in creation order."""
        return tuple(self._presets.values())

    def goto_preset(self, token: str, speed: float | None = None) -> None:
        """ONVIF GotoPreset: an absolute move to the preset's position."""
        preset = self._presets.get(token)
        if preset is None:
            raise PTZCommandError(f"no preset with token {token!r}", fault="NoToken")
        self.absolute_move(preset.state, speed)

    def remove_preset(self, token: str) -> None:
        """ONVIF RemovePreset."""
        if self._presets.pop(token, None) is None:
            raise PTZCommandError(f"no preset with token {token!r}", fault="NoToken")

    def go_to_mask(self, mask: SceneMask, fill: float = 0.8, speed: float | None = None) -> None:
        """Point at ``mask``: centred, zoomed so it spans ``fill`` of the picture (as far
        as the lens allows), to check it."""
        width, height = self.output_size
        self.absolute_move(state_for_mask(mask, self.lens, width, height, fill), speed)

    # ----------------------------------------------------------------- rendering

    def view(self, state: PTZState | None = None) -> CameraView:
        width, height = self.output_size
        return CameraView.create(
            state if state is not None else self.state, self.lens, width, height
        )

    def render(self, state: PTZState | None = None) -> Image:
        """The view at ``state`` (default: the position now), BGR ``(height, width, 3)``."""
        view = self.view(state)
        key = (view.state, view.width, view.height)
        cached = self._maps.get(key)
        if cached is None:
            map_x, map_y = equirect_maps(view, *self._source_size, pad=self._pad)
            m1, m2 = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
            maps: tuple[_Map, _Map] = (np.asarray(m1), np.asarray(m2))
            self._maps[key] = maps
            while len(self._maps) > self._map_cache_size:
                self._maps.popitem(last=False)
        else:
            maps = cached
            self._maps.move_to_end(key)
        out = cv2.remap(
            self._padded, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return check_image(np.asarray(out), "rendered view")

    def capture(
        self, index: int, time_base: Fraction = Fraction(1, 1000), camera_id: str = "virtual-ptz"
    ) -> tuple[Frame, PTZReading]:
        """A frame of the view now and the reading it was rendered at (pts in
        ``time_base`` units of the camera's clock)."""
        reading = self.read()
        self._last_capture = reading
        image = self.render(reading.state)
        pts = round(reading.timestamp / time_base)
        return Frame(image, pts=pts, time_base=time_base, index=index, camera_id=camera_id), reading


class CapturedPosition:
    """The position of a :class:`VirtualPTZ` when it captured its last frame (a
    PositionProvider); before the first capture, its position now."""

    def __init__(self, camera: VirtualPTZ) -> None:
        self._camera = camera

    def read(self) -> PTZReading:
        last = self._camera.last_capture
        return last if last is not None else self._camera.read()
