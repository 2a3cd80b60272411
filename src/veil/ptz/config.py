"""A PTZ camera's configuration (pydantic) and its compilation to runtime objects.

In a site file, under a camera (once ``CameraConfig`` has its ``ptz`` key)::

    cameras:
      - id: lobby
        source: ptz-demo          # a virtual PTZ camera (see virtual: below)
        ptz:
          lens: {hfov_wide_deg: 60, hfov_tele_deg: 3}
          masks:
            - name: window
              vertices: [[0, 0], [30, 0], [30, 30], [0, 30]]   # pan, tilt in degrees
              min_zoom: 0.0
              margin_deg: 0.5
              color: "#ff00ff"
          presets: [{name: door, pan_deg: -40, tilt_deg: -5, zoom: 0.3}]
          virtual: {image: synthetic}

Masks are polygons on the sphere of directions around the camera (see
:mod:`veil.ptz.masks`): they stay on the scene while the camera pans, tilts and zooms.
``motion`` describes how uncertain a real camera's reported position is while it moves;
left out, positions are exact, which is right for a virtual camera (each frame is rendered at
the position it reports). :func:`compile_ptz` turns the configuration into a
:class:`~veil.ptz.virtual.VirtualPTZ` (for a virtual camera) and a
:class:`~veil.ptz.masks.PTZMaskPlanner`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from veil.config.schema import StyleConfig
from veil.core.errors import ConfigError, VeilError
from veil.core.frame import Image, check_image
from veil.core.region import MAX_VERTICES, MIN_VERTICES
from veil.policy.static import style_from_config
from veil.ptz.camera import MAX_HFOV_DEG, Lens, PTZState
from veil.ptz.masks import PTZMaskPlanner, SceneMask
from veil.ptz.onvif_client import OnvifPTZPosition
from veil.ptz.onvif_status import EXACT, MotionUncertainty, PositionProvider
from veil.ptz.virtual import PTZLimits, VirtualPTZ, synthetic_equirect

SYNTHETIC = "synthetic"
"""``virtual.image`` for the built-in labelled test scene (:func:`synthetic_equirect`)."""

MASK_NAME_PATTERN = r"^[A-Za-z0-9_.\- ]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LensConfig(_Strict):
    """The zoom lens: horizontal field of view at the widest and the longest zoom."""

    hfov_wide_deg: float = Field(
        default=60.0,
        gt=0,
        le=MAX_HFOV_DEG,
        description="Horizontal field of view at zoom 0 (wide), degrees.",
    )
    hfov_tele_deg: float = Field(
        default=3.0,
        gt=0,
        le=MAX_HFOV_DEG,
        description="Horizontal field of view at zoom 1 (tele), degrees; wide / tele is about "
        "the optical zoom factor.",
    )

    @model_validator(mode="after")
    def _order(self) -> LensConfig:
        if self.hfov_tele_deg > self.hfov_wide_deg:
            raise ValueError("hfov_tele_deg must not exceed hfov_wide_deg")
        return self

    def lens(self) -> Lens:
        return Lens(self.hfov_wide_deg, self.hfov_tele_deg)


PanTilt = tuple[float, float]


class SceneMaskConfig(StyleConfig):
    """A privacy mask fixed to the scene: a polygon of pan and tilt angles in degrees."""

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=MASK_NAME_PATTERN,
        description="A unique name (go-to-mask and the web page use it).",
    )
    enabled: bool = Field(default=True, description="Disabled masks are kept but not drawn.")
    vertices: list[PanTilt] = Field(
        description=(
            f"{MIN_VERTICES} to {MAX_VERTICES} [pan, tilt] corners in degrees, in order; "
            "edges are great-circle arcs (straight lines in every view). Every corner must lie "
            "within 85 degrees of the mask's mean direction: split larger masks."
        ),
    )
    min_zoom: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Active only from this zoom on (0..1); 0: always. Like a camera's zoom "
        "limit for masks that matter only when zoomed in.",
    )
    margin_deg: float = Field(
        default=0.0,
        ge=0,
        le=30,
        description="Growth fixed to the scene, degrees (covers the edges of what it hides).",
    )
    margin_px: float = Field(
        default=0.0, ge=0, le=500, description="Growth fixed to the picture, pixels."
    )

    @field_validator("vertices")
    @classmethod
    def _check_vertices(cls, vertices: list[PanTilt]) -> list[PanTilt]:
        if not MIN_VERTICES <= len(vertices) <= MAX_VERTICES:
            raise ValueError(
                f"a mask needs {MIN_VERTICES} to {MAX_VERTICES} corners, got {len(vertices)}"
            )
        for pan, tilt in vertices:
            if not (math.isfinite(pan) and math.isfinite(tilt)):
                raise ValueError("corners must be finite numbers")
            if not -360.0 <= pan <= 360.0:
                raise ValueError(f"pan must lie in [-360, 360] degrees, got {pan}")
            if not -90.0 <= tilt <= 90.0:
                raise ValueError(f"tilt must lie in [-90, 90] degrees, got {tilt}")
        try:
            SceneMask(np.asarray(vertices, dtype=np.float64))
        except VeilError as error:
            raise ValueError(str(error)) from None
        return vertices

    def scene_mask(self) -> SceneMask:
        return SceneMask(
            np.asarray(self.vertices, dtype=np.float64),
            name=self.name,
            min_zoom=self.min_zoom,
            margin_deg=self.margin_deg,
            margin_px=self.margin_px,
            style=style_from_config(self),
        )

    @classmethod
    def from_scene_mask(cls, mask: SceneMask, **style: object) -> SceneMaskConfig:
        """The configuration of ``mask`` (angles rounded to 1e-6 degree), with ``style``'s
        keys (style, color, cell_size, blur_radius, enabled) as given."""
        vertices = [(round(float(p), 6), round(float(t), 6)) for p, t in mask.vertices_deg]
        return cls.model_validate(
            {
                "name": mask.name,
                "vertices": vertices,
                "min_zoom": mask.min_zoom,
                "margin_deg": mask.margin_deg,
                "margin_px": mask.margin_px,
                **style,
            }
        )


class MotionConfig(_Strict):
    """How uncertain a reported position is (see veil.ptz.onvif_status); the masks grow by it
    while the camera moves and the whole picture is masked when the position is unknown."""

    accuracy_deg: float = Field(default=0.1, ge=0, le=30, description="Repeatability, degrees.")
    latency_s: float = Field(
        default=0.1, ge=0, le=10, description="Delay between a reading and its frame, seconds."
    )
    max_speed_deg_s: float = Field(
        default=120.0, ge=0, le=1000, description="Fastest pan or tilt, degrees per second."
    )
    max_accel_deg_s2: float = Field(
        default=300.0, ge=0, le=10000, description="Largest change of speed, degrees/s^2."
    )
    max_zoom_speed: float = Field(
        default=0.5, ge=0, le=100, description="Zoom units (0..1) per second at full speed."
    )
    stale_after_s: float = Field(
        default=1.0, gt=0, le=3600, description="A reading older than this is unknown."
    )

    def uncertainty(self) -> MotionUncertainty:
        return MotionUncertainty(
            accuracy_deg=self.accuracy_deg,
            latency_s=self.latency_s,
            max_speed_deg_s=self.max_speed_deg_s,
            max_accel_deg_s2=self.max_accel_deg_s2,
            max_zoom_speed=self.max_zoom_speed,
            stale_after_s=self.stale_after_s,
        )


class OnvifConfig(_Strict):
    """A real camera's ONVIF PTZ service, polled with GetStatus for the head's position
    (see veil.ptz.onvif_client). The password is read from an environment variable, never
    from the site file."""

    url: str = Field(description="PTZ service address, e.g. http://192.168.1.64/onvif/ptz_service")
    profile_token: str = Field(min_length=1, description="Media profile with the PTZ node.")
    username: str | None = Field(default=None, description="ONVIF user; unset: no WS-Security.")
    password_env: str | None = Field(
        default=None, description="Environment variable holding the ONVIF user's password."
    )
    tilt_min_deg: float = Field(default=-90.0, ge=-90, le=90, description="Tilt at generic y=-1.")
    tilt_max_deg: float = Field(default=90.0, ge=-90, le=90, description="Tilt at generic y=1.")
    poll_interval_s: float = Field(default=0.2, gt=0, le=10)
    timeout_s: float = Field(default=1.0, gt=0, le=30)
    stale_after_s: float = Field(
        default=1.0, gt=0, le=60, description="Older readings mask the whole picture."
    )

    @model_validator(mode="after")
    def _tilt_order(self) -> OnvifConfig:
        if self.tilt_min_deg >= self.tilt_max_deg:
            raise ValueError("tilt_min_deg must be below tilt_max_deg")
        return self

    def provider(self, *, clock: Callable[[], float] = time.monotonic) -> OnvifPTZPosition:
        """Start polling the camera (close the provider to stop)."""
        password = None
        if self.password_env is not None:
            password = os.environ.get(self.password_env)
            if password is None:
                raise ConfigError(
                    f"ptz.onvif.password_env: environment variable {self.password_env} is not set",
                    hint=f"export {self.password_env}=... before starting Veil",
                )
        return OnvifPTZPosition(
            self.url,
            self.profile_token,
            username=self.username,
            password=password,
            tilt_range_deg=(self.tilt_min_deg, self.tilt_max_deg),
            poll_interval_s=self.poll_interval_s,
            timeout_s=self.timeout_s,
            stale_after_s=self.stale_after_s,
            clock=clock,
        )


class PositionConfig(_Strict):
    """A position: pan and tilt in degrees, zoom 0 (wide) to 1 (tele)."""

    pan_deg: float = Field(default=0.0, ge=-360, le=360)
    tilt_deg: float = Field(default=0.0, ge=-90, le=90)
    zoom: float = Field(default=0.0, ge=0, le=1)

    def state(self) -> PTZState:
        return PTZState(self.pan_deg, self.tilt_deg, self.zoom)


class PresetConfig(PositionConfig):
    """A saved position (ONVIF preset)."""

    name: str = Field(min_length=1, max_length=64, pattern=MASK_NAME_PATTERN)


class VirtualConfig(_Strict):
    """A virtual PTZ camera: views rendered from a 360 x 180 degree picture."""

    image: str = Field(
        default=SYNTHETIC,
        min_length=1,
        description="An equirectangular picture (2:1, pan -180 at the left edge, tilt +90 at "
        "the top), or 'synthetic' for the built-in labelled grid of coloured tiles.",
    )
    synthetic_width: int = Field(
        default=2048, ge=64, le=16384, description="Width of the synthetic scene (2:1)."
    )
    output_width: int | None = Field(
        default=None, ge=16, le=7680, description="Rendered view width; default: the camera's."
    )
    output_height: int | None = Field(
        default=None, ge=16, le=4320, description="Rendered view height; default: the camera's."
    )
    initial: PositionConfig = Field(
        default_factory=PositionConfig, description="Where the camera points at start."
    )
    tilt_min_deg: float = Field(default=-90.0, ge=-90, le=90)
    tilt_max_deg: float = Field(default=90.0, ge=-90, le=90)
    max_speed_deg_s: float = Field(
        default=90.0, gt=0, le=1000, description="Full pan/tilt speed (generic speed 1)."
    )
    max_zoom_speed: float = Field(
        default=0.5, gt=0, le=100, description="Full zoom speed, zoom units per second."
    )
    default_speed: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Speed (0..1 of full) of absolute, relative and preset moves that give "
        "none; unset: such moves are instant.",
    )
    default_timeout_s: float = Field(
        default=10.0, gt=0, le=3600, description="How long a continuous move lasts."
    )
    max_presets: int = Field(default=100, ge=1, le=1000)

    @model_validator(mode="after")
    def _tilt_order(self) -> VirtualConfig:
        if self.tilt_min_deg > self.tilt_max_deg:
            raise ValueError("tilt_min_deg must not exceed tilt_max_deg")
        return self

    def limits(self) -> PTZLimits:
        return PTZLimits(
            self.tilt_min_deg, self.tilt_max_deg, self.max_speed_deg_s, self.max_zoom_speed
        )


class PTZConfig(_Strict):
    """A pan-tilt-zoom camera: its lens, its scene masks, presets and the virtual source."""

    lens: LensConfig = Field(default_factory=LensConfig)
    masks: list[SceneMaskConfig] = Field(
        default_factory=list, max_length=256, description="Masks fixed to the scene."
    )
    presets: list[PresetConfig] = Field(default_factory=list, max_length=1000)
    motion: MotionConfig | None = Field(
        default=None,
        description="Position uncertainty while moving; unset: exact (a virtual camera).",
    )
    max_uncertainty_deg: float = Field(
        default=30.0,
        gt=0,
        le=180,
        description="When the position is more uncertain than this, the whole picture is masked.",
    )
    virtual: VirtualConfig | None = Field(
        default_factory=VirtualConfig,
        description="The virtual camera's source; null for a real camera.",
    )
    onvif: OnvifConfig | None = Field(
        default=None,
        description="A real camera's ONVIF PTZ service, read for its position; unset: the "
        "position of a real head is unknown and its scene masks mask the whole picture.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> PTZConfig:
        for what, names in (
            ("mask", [m.name for m in self.masks]),
            ("preset", [p.name for p in self.presets]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} names must be unique, repeated: {', '.join(dupes)}")
        return self

    def scene_masks(self) -> list[SceneMask]:
        """The enabled masks, compiled."""
        return [m.scene_mask() for m in self.masks if m.enabled]

    def uncertainty(self) -> MotionUncertainty:
        if self.motion is not None:
            return self.motion.uncertainty()
        # a real head's readings are never exact: default margins while it moves
        return MotionUncertainty() if self.onvif is not None else EXACT


# --------------------------------------------------------------------------- compiling


def load_equirect(virtual: VirtualConfig) -> Image:
    """The virtual camera's 360 degree picture (BGR)."""
    if virtual.image == SYNTHETIC:
        return synthetic_equirect(virtual.synthetic_width, virtual.synthetic_width // 2)
    path = Path(virtual.image).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"ptz.virtual.image: {path} does not exist",
            hint="give an equirectangular picture (2:1) or 'synthetic'",
        )
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ConfigError(f"ptz.virtual.image: {path} is not a picture OpenCV can read")
    return check_image(np.asarray(image), "equirectangular picture")


def build_planner(
    config: PTZConfig,
    position: PositionProvider,
    *,
    clock: Callable[[], float] = time.monotonic,
    masks: Sequence[SceneMask] | None = None,
) -> PTZMaskPlanner:
    """The planner of ``config``'s enabled masks (or ``masks``) following ``position``."""
    return PTZMaskPlanner(
        config.scene_masks() if masks is None else masks,
        config.lens.lens(),
        position,
        uncertainty=config.uncertainty(),
        clock=clock,
        max_uncertainty_deg=config.max_uncertainty_deg,
    )


def build_virtual(
    config: PTZConfig,
    width: int,
    height: int,
    *,
    clock: Callable[[], float] = time.monotonic,
    source: Image | None = None,
) -> VirtualPTZ:
    """The virtual camera of ``config`` (pointing at ``virtual.initial``, presets loaded),
    rendering ``width`` x ``height`` views unless ``virtual`` sets another size.

    Its own default speed is "instant": :class:`veil.ptz.runtime.PTZCamera` applies
    ``virtual.default_speed`` itself, so presets load here without moving.
    """
    virtual = config.virtual
    if virtual is None:
        raise ConfigError("this PTZ camera has no virtual source (ptz.virtual is null)")
    size = (virtual.output_width or width, virtual.output_height or height)
    cam = VirtualPTZ(
        load_equirect(virtual) if source is None else source,
        config.lens.lens(),
        size,
        limits=virtual.limits(),
        default_speed=None,
        default_timeout_s=virtual.default_timeout_s,
        max_presets=max(virtual.max_presets, len(config.presets)),
        clock=clock,
    )
    for preset in config.presets:
        cam.absolute_move(preset.state())
        cam.set_preset(preset.name)
    cam.absolute_move(virtual.initial.state())
    return cam


@dataclass(frozen=True, slots=True)
class CompiledPTZ:
    """A PTZ configuration ready to run: the virtual camera (None for a real one) and the
    planner, which follows the virtual camera's captured positions."""

    config: PTZConfig
    camera: VirtualPTZ | None
    planner: PTZMaskPlanner


def compile_ptz(
    config: PTZConfig,
    width: int,
    height: int,
    *,
    clock: Callable[[], float] = time.monotonic,
    source: Image | None = None,
    position: PositionProvider | None = None,
) -> CompiledPTZ:
    """Build ``config``: a virtual camera when it has one, and the mask planner following
    it (each frame planned at the position it was captured at); for a real camera the
    planner follows ``position`` (required then)."""
    if config.virtual is not None:
        cam = build_virtual(config, width, height, clock=clock, source=source)
        provider: PositionProvider = cam.captured_position() if position is None else position
        return CompiledPTZ(config, cam, build_planner(config, provider, clock=clock))
    if position is None:
        raise ConfigError(
            "a PTZ camera without a virtual source needs a position provider",
            hint="set ptz.virtual, or read the camera's position over ONVIF",
        )
    return CompiledPTZ(config, None, build_planner(config, position, clock=clock))
