"""A constant-velocity Kalman filter for a box centre, one frame per time step.

The two axes are independent and each has a 2x2 covariance (position, velocity), so the
filter is a handful of float operations per frame instead of 4x4 matrix products.

Noise is relative to the box: the measurement noise of the x axis is
``measurement_noise * width`` and that of the y axis ``measurement_noise * height`` (a
detector's jitter scales with the object), and the process noise (unmodelled acceleration)
is ``acceleration_noise * size`` per frame squared, ``size`` being the larger side. Smaller
``acceleration_noise`` gives a smoother, slower-to-react velocity; larger follows turns
faster and jitters more.

>>> import numpy as np
>>> kf = CentreKalman(np.array([10.0, 20.0]), np.array([4.0, 8.0]))
>>> for t in range(1, 6):
...     kf.predict(1)
...     kf.update(np.array([10.0 + 2 * t, 20.0]), np.array([4.0, 8.0]))
>>> bool(abs(kf.velocity[0] - 2.0) < 0.3)
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Vec2 = NDArray[np.float64]
"""Two floats, one per axis (x, y)."""

INITIAL_VELOCITY_STD = 0.5
"""Default velocity uncertainty of a new track, in box sizes (larger side) per frame: large,
so that the second sighting sets the velocity almost on its own."""


class CentreKalman:
    """Position and velocity of a box centre, per axis, with their covariance.

    ``scale`` (per axis: the box width for x, its height for y) sets the noise levels: the
    measurement noise per axis, the velocity and acceleration noise from the larger side.
    """

    __slots__ = (
        "_accel",
        "_meas",
        "p00",
        "p01",
        "p11",
        "position",
        "scale",
        "velocity",
    )

    def __init__(
        self,
        position: Vec2,
        scale: Vec2,
        *,
        measurement_noise: float = 0.05,
        acceleration_noise: float = 0.01,
        initial_velocity_std: float = INITIAL_VELOCITY_STD,
    ) -> None:
        self._meas = float(measurement_noise)
        self._accel = float(acceleration_noise)
        s = np.maximum(np.asarray(scale, np.float64), 1.0)
        self.scale: Vec2 = s
        """The last measured box (width, height): sets the noise levels."""
        self.position: Vec2 = np.asarray(position, np.float64).copy()
        self.velocity: Vec2 = np.zeros(2, np.float64)
        self.p00: Vec2 = (self._meas * s) ** 2
        self.p01: Vec2 = np.zeros(2, np.float64)
        # Objects move in proportion to their larger side (a person walks about a body
        # height per second whether seen from the front or the side), in either direction.
        self.p11: Vec2 = np.full(2, (initial_velocity_std * float(s.max())) ** 2)

    def copy(self) -> CentreKalman:
        """An independent copy (the arrays are replaced, never written in place)."""
        twin = CentreKalman.__new__(CentreKalman)
        for name in CentreKalman.__slots__:
            setattr(twin, name, getattr(self, name))
        return twin

    def innovation_variance(self, dt: int) -> Vec2:
        """Variance, per axis, of a measured centre ``dt`` frames after the last update
        around the predicted one: prediction uncertainty plus measurement noise. The
        squared innovation divided by it, summed over the axes, is the Mahalanobis gate."""
        q = (self._accel * float(np.max(self.scale))) ** 2
        r = (self._meas * self.scale) ** 2
        result: Vec2 = self.p00 + 2.0 * dt * self.p01 + dt * dt * self.p11 + q * dt**3 / 3.0 + r
        return result

    def predict(self, dt: int) -> None:
        """Advance ``dt`` frames at constant velocity; the covariance grows with ``dt``.

        Process noise is continuous white acceleration: ``q dt^3/3``, ``q dt^2/2``, ``q dt``.
        """
        if dt <= 0:
            return
        q = (self._accel * float(np.max(self.scale))) ** 2
        self.position = self.position + self.velocity * dt
        self.p00 = self.p00 + 2.0 * dt * self.p01 + dt * dt * self.p11 + q * dt**3 / 3.0
        self.p01 = self.p01 + dt * self.p11 + q * dt**2 / 2.0
        self.p11 = self.p11 + q * dt

    def update(self, measured: Vec2, scale: Vec2) -> None:
        """Correct with a measured centre; ``scale`` is the measured box's (width, height)."""
        s = np.maximum(np.asarray(scale, np.float64), 1.0)
        self.scale = s
        r = (self._meas * s) ** 2
        innovation = np.asarray(measured, np.float64) - self.position
        denom = self.p00 + r
        k0 = self.p00 / denom
        k1 = self.p01 / denom
        self.position = self.position + k0 * innovation
        self.velocity = self.velocity + k1 * innovation
        p00, p01, p11 = self.p00, self.p01, self.p11
        self.p00 = (1.0 - k0) * p00
        self.p01 = (1.0 - k0) * p01
        self.p11 = p11 - k1 * p01
