"""Where the camera is, and how sure we are: position readings and their uncertainty.

A real PTZ camera reports its position over ONVIF ``GetStatus`` (``Position`` with pan,
tilt and zoom, ``MoveStatus`` IDLE / MOVING / UNKNOWN, and the ``UtcTime`` of the report)
or over its own API. The masks must be drawn for the position the camera had when the
frame was exposed, which is never exactly the last reading: the reading is some time old
and the frame's pipeline adds its own delay. While the head moves, that gap is an angle.

:class:`PositionProvider` is the one interface the mask planner needs; the virtual camera
(:class:`veil.ptz.virtual.VirtualPTZ`) implements it exactly, and an ONVIF client can
implement it later by polling ``GetStatus``. :class:`MotionUncertainty` turns a reading
into an angle by which every mask grows (fail closed).

The uncertainty model
---------------------
Let ``tau = latency_s + age`` be the time between the reading and the frame, where
``age = now - reading.timestamp``. A rotation of the head by ``a`` degrees of pan and
``b`` degrees of tilt moves every scene direction in the picture by at most ``a + b``
degrees (each rotation moves any unit vector by at most its angle). So a mask grown by::

    delta = accuracy_deg + (v_pan + v_tilt) * tau + max_accel_deg_s2 * tau**2   (degrees)

covers the scene it hides wherever the head went in the meantime, where ``v_pan`` and
``v_tilt`` bound the speed during ``tau``:

- moving, with a measured velocity: ``|velocity|`` per axis (the acceleration term covers
  a change of speed within ``tau``, at the head's maximal acceleration; the term is the
  bound of ``a t**2 / 2`` for each of the two axes);
- moving, velocity unknown: ``max_speed_deg_s`` per axis;
- idle: 0 (the acceleration term still covers a move that starts right after the
  reading);
- unknown status (``moving is None``) or a reading older than ``stale_after_s``: the
  position is not known, :meth:`MotionUncertainty.angle_deg` returns ``inf`` and the
  planner masks the whole frame.

Zoom moves do not change where a direction is, but they change where it lands in the
picture; the planner converts the zoom uncertainty (``zoom_speed * tau``) into an angle
with :meth:`MotionUncertainty.zoom_span`.

Raising ``latency_s`` or ``max_speed_deg_s`` trades over-masking while the camera moves
for safety against a slow or bursty status feed; a camera that reports status at 10 Hz
and moves at 60 deg/s needs masks about 6 degrees wider while it moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from veil.ptz.camera import PTZState


@dataclass(frozen=True, slots=True)
class PTZVelocity:
    """Signed speeds: pan and tilt in degrees per second, zoom in generic units per second."""

    pan_deg_s: float = 0.0
    tilt_deg_s: float = 0.0
    zoom_per_s: float = 0.0

    @property
    def is_zero(self) -> bool:
        return self.pan_deg_s == 0.0 and self.tilt_deg_s == 0.0 and self.zoom_per_s == 0.0


@dataclass(frozen=True, slots=True)
class PTZReading:
    """One position report.

    ``timestamp`` is in seconds on the clock the planner is given (monotonic by default).
    ``moving`` is ONVIF's MoveStatus: True for MOVING, False for IDLE, None for UNKNOWN.
    ``velocity`` is the measured velocity when the source knows it (a virtual camera does;
    an ONVIF client can difference successive readings), else None.
    ``accuracy_deg`` overrides the model's accuracy when the source reports one.
    """

    state: PTZState
    moving: bool | None
    timestamp: float
    velocity: PTZVelocity | None = None
    accuracy_deg: float | None = None


class PositionProvider(Protocol):
    """Gives the camera's latest position; one verb, like every stage."""

    def read(self) -> PTZReading: ...


@dataclass(frozen=True, slots=True)
class FixedPosition:
    """A camera that never moves (or a test double): always the same idle reading."""

    state: PTZState
    timestamp: float = 0.0

    def read(self) -> PTZReading:
        return PTZReading(self.state, moving=False, timestamp=self.timestamp)


@dataclass(frozen=True, slots=True)
class MotionUncertainty:
    """How far the true position may be from a reading (see the module docstring).

    ``accuracy_deg``: repeatability of the head's reported position.
    ``latency_s``: delay between the reading and the frame it applies to, beyond the
    reading's age (status transport plus video pipeline).
    ``max_speed_deg_s``: the head's fastest pan or tilt, used when the velocity is unknown.
    ``max_accel_deg_s2``: the head's largest change of speed per second.
    ``max_zoom_speed``: generic zoom units per second at full zoom speed.
    ``stale_after_s``: a reading older than this no longer says where the camera is.
    """

    accuracy_deg: float = 0.1
    latency_s: float = 0.1
    max_speed_deg_s: float = 120.0
    max_accel_deg_s2: float = 300.0
    max_zoom_speed: float = 0.5
    stale_after_s: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "accuracy_deg",
            "latency_s",
            "max_speed_deg_s",
            "max_accel_deg_s2",
            "max_zoom_speed",
            "stale_after_s",
        ):
            value = getattr(self, name)
            if math.isnan(value) or value < 0.0 or (name != "stale_after_s" and math.isinf(value)):
                raise ValueError(f"{name} must be a number >= 0, got {value}")

    def _tau(self, reading: PTZReading, now: float) -> float:
        return self.latency_s + max(0.0, now - reading.timestamp)

    def _known(self, reading: PTZReading, now: float) -> bool:
        return reading.moving is not None and now - reading.timestamp <= self.stale_after_s

    def angle_deg(self, reading: PTZReading, now: float) -> float:
        """Bound on the angle between any direction's believed and true place in the
        picture, in degrees; ``inf`` when the position is unknown."""
        if not self._known(reading, now):
            return math.inf
        tau = self._tau(reading, now)
        accuracy = self.accuracy_deg if reading.accuracy_deg is None else reading.accuracy_deg
        if reading.moving:
            if reading.velocity is None:
                speed = 2.0 * self.max_speed_deg_s
            else:
                speed = abs(reading.velocity.pan_deg_s) + abs(reading.velocity.tilt_deg_s)
        else:
            speed = 0.0
        return accuracy + speed * tau + self.max_accel_deg_s2 * tau * tau

    def zoom_span(self, reading: PTZReading, now: float) -> tuple[float, float]:
        """The interval of zoom the camera may be at, clamped to 0..1."""
        zoom = reading.state.zoom
        if not self._known(reading, now):
            return 0.0, 1.0
        if not reading.moving:
            return zoom, zoom
        tau = self._tau(reading, now)
        if reading.velocity is None:
            speed = self.max_zoom_speed
        else:
            speed = abs(reading.velocity.zoom_per_s)
        dz = speed * tau
        return max(0.0, zoom - dz), min(1.0, zoom + dz)


EXACT = MotionUncertainty(
    accuracy_deg=0.0,
    latency_s=0.0,
    max_speed_deg_s=0.0,
    max_accel_deg_s2=0.0,
    max_zoom_speed=0.0,
    stale_after_s=math.inf,
)
"""No uncertainty at all: for a virtual camera whose frames are rendered at the exact
position it reports (tests and demos)."""
