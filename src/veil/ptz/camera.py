"""A pan-tilt-zoom camera: its position, its lens, and projection between scene and pixels.

Coordinates
-----------
The *world* frame is fixed to the camera's mount: ``x`` points right at pan 0, ``y`` up
and ``z`` forward (the direction at pan 0, tilt 0). A scene direction is a unit vector
in this frame, or equivalently a pan and a tilt angle in degrees::

    direction(pan, tilt) = (cos(tilt) sin(pan), sin(tilt), cos(tilt) cos(pan))

Angles follow ONVIF's spherical position space in degrees: a larger pan turns the camera
to the right (clockwise seen from above), so objects in the picture move left; a larger
tilt turns it up. Pan wraps at +-180 degrees, tilt runs from -90 (nadir) to +90 (zenith).

The *camera* frame is OpenCV's: ``x`` right, ``y`` down, ``z`` along the optical axis.
The camera first pans about the world's vertical axis, then tilts about its own
horizontal axis; it never rolls.

Pixels are continuous coordinates with ``(0, 0)`` at the top-left corner of the picture,
so pixel ``(i, j)`` has its centre at ``(i + 0.5, j + 0.5)``, as :mod:`veil.core.region`
uses. The principal point is the picture's centre and pixels are square.

Zoom
----
ONVIF's generic zoom space runs from 0 (wide) to 1 (tele) and says nothing about how it
maps to the field of view. :class:`Lens` interpolates ``log(tan(hfov / 2))`` linearly in
zoom: the focal length grows geometrically, so every step of zoom multiplies the
magnification by the same factor, as a motorised zoom lens driven at constant speed does.

Example::

    >>> lens = Lens(hfov_wide_deg=60.0, hfov_tele_deg=3.0)
    >>> view = CameraView.create(PTZState(pan_deg=30.0, tilt_deg=-10.0), lens, 1280, 720)
    >>> px, ok = view.direction_to_pixel(angles_to_direction([30.0], [-10.0]))
    >>> [round(float(v), 6) for v in px[0]], bool(ok[0])
    ([640.0, 360.0], True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from veil.core.errors import ShapeError

Vectors = NDArray[np.float64]
"""``(N, 3)`` float64 direction vectors."""
Pixels = NDArray[np.float64]
"""``(N, 2)`` float64 pixel coordinates ``(x, y)``."""

MAX_HFOV_DEG = 170.0
"""A pinhole view cannot reach 180 degrees; wider lenses need another model."""


def wrap_pan(pan_deg: float) -> float:
    """``pan_deg`` wrapped into ``[-180, 180)``."""
    wrapped = math.fmod(pan_deg + 180.0, 360.0)
    if wrapped < 0.0:
        wrapped += 360.0
    return wrapped - 180.0


def angles_to_direction(pan_deg: ArrayLike, tilt_deg: ArrayLike) -> Vectors:
    """Unit direction vectors ``(N, 3)`` for pan and tilt angles in degrees."""
    pan = np.radians(np.asarray(pan_deg, dtype=np.float64).reshape(-1))
    tilt = np.radians(np.asarray(tilt_deg, dtype=np.float64).reshape(-1))
    if pan.shape != tilt.shape:
        raise ShapeError(
            f"pan and tilt must have the same length, got {pan.shape} and {tilt.shape}"
        )
    ct = np.cos(tilt)
    out: Vectors = np.stack([ct * np.sin(pan), np.sin(tilt), ct * np.cos(pan)], axis=1)
    return out


def direction_to_angles(dirs: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Pan in ``[-180, 180]`` and tilt in ``[-90, 90]`` degrees of direction vectors.

    Vectors need not be unit length; at the zenith and nadir the pan is 0.
    """
    d = _as_vectors(dirs)
    norm = np.linalg.norm(d, axis=1)
    horiz = np.hypot(d[:, 0], d[:, 2])
    pan = np.degrees(np.arctan2(d[:, 0], d[:, 2]))
    pan = np.where(horiz > 1e-12 * np.maximum(norm, 1e-300), pan, 0.0)
    tilt = np.degrees(np.arctan2(d[:, 1], horiz))
    return pan, tilt


def _as_rows(values: ArrayLike, width: int, what: str) -> NDArray[np.float64]:
    """``values`` as an (N, ``width``) float array; a single row may be given flat."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1 and arr.shape == (width,):
        arr = arr.reshape(1, width)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ShapeError(f"{what} must have shape (N, {width}), got {arr.shape}")
    return arr


def _as_vectors(dirs: ArrayLike) -> Vectors:
    return _as_rows(dirs, 3, "directions")


def _as_pixels(points: ArrayLike) -> Pixels:
    return _as_rows(points, 2, "pixel points")


@dataclass(frozen=True, slots=True)
class PTZState:
    """Where the camera points: pan and tilt in degrees, zoom in ONVIF's generic 0..1.

    Pan is wrapped into ``[-180, 180)`` on construction, so two states that point the same
    way compare equal. Tilt must lie in ``[-90, 90]`` and zoom in ``[0, 1]``.
    """

    pan_deg: float = 0.0
    tilt_deg: float = 0.0
    zoom: float = 0.0

    def __post_init__(self) -> None:
        for name in ("pan_deg", "tilt_deg", "zoom"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
        if not -90.0 <= self.tilt_deg <= 90.0:
            raise ValueError(f"tilt must lie in [-90, 90] degrees, got {self.tilt_deg}")
        if not 0.0 <= self.zoom <= 1.0:
            raise ValueError(f"zoom must lie in [0, 1], got {self.zoom}")
        object.__setattr__(self, "pan_deg", wrap_pan(float(self.pan_deg)))
        object.__setattr__(self, "tilt_deg", float(self.tilt_deg))
        object.__setattr__(self, "zoom", float(self.zoom))

    @property
    def direction(self) -> Vectors:
        """The optical axis as a ``(3,)`` unit vector in the world frame."""
        out: Vectors = angles_to_direction([self.pan_deg], [self.tilt_deg]).reshape(3)
        return out


@dataclass(frozen=True, slots=True)
class Lens:
    """A zoom lens: horizontal field of view at zoom 0 (wide) and zoom 1 (tele).

    The field of view between them follows ``tan(hfov / 2)`` geometrically (see the module
    docstring). A wider ``hfov_wide_deg`` shows more of the scene at once but makes each
    pixel cover more of it; the ratio ``tan(wide / 2) / tan(tele / 2)`` is the optical zoom
    factor (60 to 3 degrees is about 19x).
    """

    hfov_wide_deg: float = 60.0
    hfov_tele_deg: float = 3.0

    def __post_init__(self) -> None:
        if not 0.0 < self.hfov_tele_deg <= self.hfov_wide_deg <= MAX_HFOV_DEG:
            raise ValueError(
                "fields of view must satisfy 0 < tele <= wide <= "
                f"{MAX_HFOV_DEG} degrees, got wide {self.hfov_wide_deg}, tele {self.hfov_tele_deg}"
            )

    def hfov_deg(self, zoom: float) -> float:
        """Horizontal field of view in degrees at generic ``zoom`` (clamped to 0..1)."""
        z = min(max(zoom, 0.0), 1.0)
        log_wide = math.log(math.tan(math.radians(self.hfov_wide_deg) / 2.0))
        log_tele = math.log(math.tan(math.radians(self.hfov_tele_deg) / 2.0))
        return math.degrees(2.0 * math.atan(math.exp((1.0 - z) * log_wide + z * log_tele)))

    def zoom_for_hfov(self, hfov_deg: float) -> float:
        """The generic zoom giving ``hfov_deg``, clamped to 0..1 (the inverse of hfov_deg)."""
        if hfov_deg >= self.hfov_wide_deg or self.hfov_wide_deg == self.hfov_tele_deg:
            return 0.0
        if hfov_deg <= self.hfov_tele_deg:
            return 1.0
        log_wide = math.log(math.tan(math.radians(self.hfov_wide_deg) / 2.0))
        log_tele = math.log(math.tan(math.radians(self.hfov_tele_deg) / 2.0))
        log_t = math.log(math.tan(math.radians(hfov_deg) / 2.0))
        return min(max((log_wide - log_t) / (log_wide - log_tele), 0.0), 1.0)

    def focal_px(self, zoom: float, width: int) -> float:
        """Focal length in pixels for a picture ``width`` pixels wide."""
        return (width / 2.0) / math.tan(math.radians(self.hfov_deg(zoom)) / 2.0)


def rotation_world_to_camera(pan_deg: float, tilt_deg: float) -> NDArray[np.float64]:
    """The ``(3, 3)`` matrix taking world vectors to camera vectors (rows: right, down,
    forward in world coordinates)."""
    p, t = math.radians(pan_deg), math.radians(tilt_deg)
    sp, cp, st, ct = math.sin(p), math.cos(p), math.sin(t), math.cos(t)
    right = (cp, 0.0, -sp)
    down = (st * sp, -ct, st * cp)
    forward = (ct * sp, st, ct * cp)
    return np.array([right, down, forward], dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class CameraView:
    """The pinhole view of one camera position at one picture size.

    Build it with :meth:`create`. Every method is vectorised over ``N`` points.
    """

    state: PTZState
    lens: Lens
    width: int
    height: int
    rotation: NDArray[np.float64] = field(repr=False)
    """World to camera, ``(3, 3)``."""
    focal_px: float

    @classmethod
    def create(cls, state: PTZState, lens: Lens, width: int, height: int) -> CameraView:
        if width < 1 or height < 1:
            raise ShapeError(f"picture size must be positive, got {width}x{height}")
        rot = rotation_world_to_camera(state.pan_deg, state.tilt_deg)
        rot.flags.writeable = False
        return cls(state, lens, width, height, rot, lens.focal_px(state.zoom, width))

    @property
    def cx(self) -> float:
        return self.width / 2.0

    @property
    def cy(self) -> float:
        return self.height / 2.0

    @property
    def hfov_deg(self) -> float:
        return self.lens.hfov_deg(self.state.zoom)

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.cy / self.focal_px))

    @property
    def half_diagonal_rad(self) -> float:
        """Angle between the optical axis and the picture's corners."""
        return math.atan(math.hypot(self.cx, self.cy) / self.focal_px)

    def world_to_camera(self, dirs: ArrayLike) -> Vectors:
        """Directions ``(N, 3)`` expressed in the camera frame."""
        out: Vectors = _as_vectors(dirs) @ self.rotation.T
        return out

    def camera_to_pixel(self, cam: Vectors) -> Pixels:
        """Pixels of camera-frame points with ``z > 0`` (others give inf or nan)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.focal_px * cam[:, 0] / cam[:, 2] + self.cx
            v = self.focal_px * cam[:, 1] / cam[:, 2] + self.cy
        return np.stack([u, v], axis=1)

    def direction_to_pixel(self, dirs: ArrayLike) -> tuple[Pixels, NDArray[np.bool_]]:
        """Pixel coordinates of world directions, and which are in front of the camera.

        Directions behind the camera (or exactly sideways, ``z <= 0`` in the camera frame)
        have no image: their pixels are NaN and their flag is False. A direction in front
        may still fall outside the picture.
        """
        cam = self.world_to_camera(dirs)
        in_front = cam[:, 2] > 0.0
        px = self.camera_to_pixel(np.where(in_front[:, None], cam, np.nan))
        return px, in_front

    def pixel_to_direction(self, pixels: ArrayLike) -> Vectors:
        """Unit world directions of the rays through pixel coordinates ``(N, 2)``."""
        px = _as_pixels(pixels)
        cam = np.empty((len(px), 3), dtype=np.float64)
        cam[:, 0] = (px[:, 0] - self.cx) / self.focal_px
        cam[:, 1] = (px[:, 1] - self.cy) / self.focal_px
        cam[:, 2] = 1.0
        cam /= np.linalg.norm(cam, axis=1, keepdims=True)
        out: Vectors = cam @ self.rotation
        return out

    def normalized_to_direction(self, points: ArrayLike) -> Vectors:
        """Like :meth:`pixel_to_direction` for normalised picture coordinates (0..1)."""
        return self.pixel_to_direction(
            _as_pixels(points) * np.array([self.width, self.height], dtype=np.float64)
        )

    def pixel_centres_directions(self) -> Vectors:
        """Directions of every pixel centre, ``(height * width, 3)``, row by row."""
        xs = np.arange(self.width, dtype=np.float64) + 0.5
        ys = np.arange(self.height, dtype=np.float64) + 0.5
        gx, gy = np.meshgrid(xs, ys)
        return self.pixel_to_direction(np.stack([gx.ravel(), gy.ravel()], axis=1))
