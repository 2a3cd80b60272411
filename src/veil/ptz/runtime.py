"""PTZ cameras in the gateway: a virtual PTZ source, its moves, and its scene masks.

A :class:`PTZHub` holds one :class:`PTZCamera` per PTZ camera of a site. It gives the
gateway two wrappers:

- :meth:`PTZHub.source_factory`: a camera with a virtual head gets frames rendered by its
  :class:`~veil.ptz.virtual.VirtualPTZ` (the camera runtime paces them to the camera's
  frame rate), numbered with an index that never repeats, and the position each frame was
  rendered at is remembered under that index;
- :meth:`PTZHub.masker_factory`: wraps any masker (dynamic and picture masks) so that, after
  it, the camera's scene masks are drawn, planned at the exact position the frame was
  rendered at (looked up by the frame's camera id and index). A frame whose position is not
  known (not rendered by this camera, forgotten, or a real camera whose position Veil cannot
  read yet) is masked whole: fail closed.

Moves, presets and mask edits (:mod:`veil.server.ptz_routes`) go through :class:`PTZCamera`,
which serialises them with a lock; the frame source takes the lock only to read the position,
and renders outside it, so a move never waits for a render.

Wiring in the gateway::

    hub = PTZHub.from_cameras(site.cameras)      # 'ptz-demo' sources and 'ptz' sections
    masker_factory = hub.masker_factory(masker_factory)
    source_factory = hub.source_factory(source_factory)
    for camera_id in hub.ids:                    # save mask and preset changes
        hub.camera(camera_id).on_change = save_ptz_section
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from veil.core.errors import ConfigError, VeilError
from veil.core.frame import Frame, Image
from veil.core.plan import MaskLayer, MaskPlan, MaskReason
from veil.core.region import Region
from veil.core.style import Style, StyleKind
from veil.pipeline import MaskingPipeline
from veil.ptz.camera import CameraView, Lens, PTZState, wrap_pan
from veil.ptz.config import (
    PresetConfig,
    PTZConfig,
    SceneMaskConfig,
    VirtualConfig,
    build_planner,
    compile_ptz,
)
from veil.ptz.masks import PTZMaskPlanner, SceneMask, project_region, state_for_mask
from veil.ptz.onvif_status import PositionProvider, PTZReading
from veil.ptz.virtual import Preset, PTZCommandError, VirtualPTZ
from veil.render.renderers import FrameRenderer

log = logging.getLogger(__name__)

PTZ_DEMO = "ptz-demo"
"""A camera ``source`` for a virtual PTZ camera (its scene comes from ``ptz.virtual``)."""

READINGS_KEPT = 512
"""Positions of this many recent frames are kept (at 60 fps, about 8 s of frames waiting
between the source and the masker: far more than the one-slot mailbox ever holds)."""

FAIL_CLOSED_STYLE = Style(kind=StyleKind.FILL, color=(0, 0, 0))


class PTZUnavailableError(VeilError, LookupError):
    """The camera has no PTZ (or no such camera)."""

    http_status = 404


class PTZConflictError(VeilError, ValueError):
    """The command cannot run now (moving, a name taken, too many presets, no virtual head)."""

    http_status = 409


class PTZRequestError(VeilError, ValueError):
    """The command's values are out of range."""

    http_status = 422


_CONFLICTS = frozenset({"MovingPTZ", "PresetExist", "TooManyPresets"})


def _translate(error: PTZCommandError) -> VeilError:
    if error.fault == "NoToken":
        return PTZUnavailableError(error.message, hint="list the presets")
    if error.fault in _CONFLICTS:
        return PTZConflictError(error.message, hint=error.hint)
    return PTZRequestError(error.message, hint=error.hint)


class Masker(Protocol):
    """The gateway's masker interface (as veil.server.camera.Masker)."""

    def process(self, frame: Frame) -> Frame: ...

    def reset_background(self) -> None: ...


class UnknownPosition:
    """A PTZ camera whose position Veil cannot read (no ONVIF reader yet): every reading
    is unknown, so its scene masks mask the whole picture (fail closed)."""

    def read(self) -> PTZReading:
        return PTZReading(PTZState(), moving=None, timestamp=-math.inf)


@dataclass(frozen=True, slots=True)
class PTZStatus:
    """Where a PTZ camera is and what it can do."""

    camera_id: str
    virtual: bool
    reading: PTZReading
    generic: tuple[float, float, float]
    """ONVIF's generic position: pan and tilt -1..1, zoom 0..1."""
    hfov_deg: float
    vfov_deg: float
    width: int
    height: int
    lens: Lens
    tilt_min_deg: float
    tilt_max_deg: float
    max_speed_deg_s: float
    max_zoom_speed: float
    presets: int
    masks: int


class PTZCamera:
    """One PTZ camera of the gateway: its virtual head (None for a real camera), its scene
    masks and their planner. Thread safe; see the module docstring."""

    def __init__(
        self,
        camera_id: str,
        config: PTZConfig,
        width: int,
        height: int,
        *,
        fps: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        source: Image | None = None,
        position: PositionProvider | None = None,
    ) -> None:
        if config.virtual is None and position is None:
            position = UnknownPosition()
        compiled = compile_ptz(config, width, height, clock=clock, source=source, position=position)
        self.camera_id = camera_id
        self.fps = fps
        self._config = config
        self._head = compiled.camera
        self._planner = compiled.planner
        self._position = position
        self.on_change: Callable[[str, PTZConfig], None] | None = None
        """Called with the camera id and the new configuration when masks or presets change
        (the gateway writes it to the site file); for masks, before they are swapped in, so a
        change that cannot be saved is refused."""
        self._clock = clock
        self._size = compiled.camera.output_size if compiled.camera is not None else (width, height)
        self._lock = threading.RLock()
        self._render_lock = threading.Lock()
        self._readings: OrderedDict[int, PTZReading] = OrderedDict()
        self._next_index = 0
        rate = Fraction(fps).limit_denominator(1001)
        self._time_base = 1 / rate

    def close(self) -> None:
        """Stop the position provider's polling, if it has any (an ONVIF reader)."""
        close = getattr(self._position, "close", None)
        if callable(close):
            close()

    # ----------------------------------------------------------------- properties

    @property
    def config(self) -> PTZConfig:
        with self._lock:
            return self._config

    @property
    def virtual(self) -> bool:
        return self._head is not None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the rendered views."""
        return self._size

    @property
    def lens(self) -> Lens:
        return self._planner.lens

    @property
    def planner(self) -> PTZMaskPlanner:
        with self._lock:
            return self._planner

    def _require_head(self) -> VirtualPTZ:
        if self._head is None:
            raise PTZConflictError(
                f"camera {self.camera_id}'s head cannot be moved from Veil",
                hint="only virtual PTZ cameras (source: ptz-demo) move through Veil so far",
            )
        return self._head

    def _virtual_config(self) -> VirtualConfig:
        virtual = self._config.virtual
        assert virtual is not None
        return virtual

    # ----------------------------------------------------------------- frames

    def capture(self) -> Frame:
        """Render the view now; its position is remembered under the frame's index."""
        head = self._require_head()
        with self._lock:
            reading = head.read()
            index = self._next_index
            self._next_index += 1
            self._readings[index] = reading
            while len(self._readings) > READINGS_KEPT:
                self._readings.popitem(last=False)
        with self._render_lock:  # the head's map cache is for one renderer at a time
            image = head.render(reading.state)
        return Frame(
            image, pts=index, time_base=self._time_base, index=index, camera_id=self.camera_id
        )

    def frames(self, *, pace: bool = False) -> Iterator[Frame]:
        """Frames rendered endlessly (paced to ``fps`` when ``pace``: the gateway's camera
        runtime paces ``ptz-demo`` sources itself)."""
        self._require_head()
        period = 1.0 / self.fps
        next_at = time.monotonic()
        while True:
            yield self.capture()
            if pace:
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))

    def reading_for(self, frame: Frame) -> PTZReading | None:
        """The position ``frame`` was captured at (None when unknown: fail closed)."""
        if self._head is None:
            assert self._position is not None
            return self._position.read()
        with self._lock:
            return self._readings.get(frame.index)

    def plan(self, frame: Frame) -> MaskPlan:
        """The scene masks of ``frame``, at the position it was rendered at."""
        with self._lock:
            planner = self._planner
        reading = self.reading_for(frame)
        if reading is None:
            return MaskPlan(
                frame.width,
                frame.height,
                (
                    MaskLayer.full_frame(
                        frame.width, frame.height, FAIL_CLOSED_STYLE, MaskReason.FAIL_CLOSED
                    ),
                ),
            )
        # A virtual camera's frame was rendered at its reading's time exactly: the reading
        # is no older than the frame (a real camera's reading ages until the frame is masked).
        now = reading.timestamp if self._head is not None else self._clock()
        return planner.plan_for(reading, frame.width, frame.height, now)

    # ----------------------------------------------------------------- status

    def read(self) -> PTZReading:
        if self._head is None:
            assert self._position is not None
            return self._position.read()
        with self._lock:
            return self._head.read()

    def status(self) -> PTZStatus:
        with self._lock:
            reading = self.read()
            width, height = self._size
            view = CameraView.create(reading.state, self.lens, width, height)
            virtual = self._config.virtual
            head = self._head
            return PTZStatus(
                camera_id=self.camera_id,
                virtual=head is not None,
                reading=reading,
                generic=head.to_generic(reading.state) if head is not None else (0.0, 0.0, 0.0),
                hfov_deg=view.hfov_deg,
                vfov_deg=view.vfov_deg,
                width=width,
                height=height,
                lens=self.lens,
                tilt_min_deg=virtual.tilt_min_deg if virtual is not None else -90.0,
                tilt_max_deg=virtual.tilt_max_deg if virtual is not None else 90.0,
                max_speed_deg_s=virtual.max_speed_deg_s if virtual is not None else 0.0,
                max_zoom_speed=virtual.max_zoom_speed if virtual is not None else 0.0,
                presets=len(head.presets()) if head is not None else 0,
                masks=len(self._config.masks),
            )

    # ----------------------------------------------------------------- moves

    def _speed(self, speed: float | None) -> float | None:
        return self._virtual_config().default_speed if speed is None else speed

    def absolute_move(
        self,
        pan: float | None = None,
        tilt: float | None = None,
        zoom: float | None = None,
        *,
        speed: float | None = None,
        generic: bool = False,
    ) -> None:
        """ONVIF AbsoluteMove; an axis left out keeps its current value. ``generic``: pan
        and tilt in -1..1 (pan -180..180, tilt over the tilt range), as ONVIF's generic
        position space."""
        head = self._require_head()
        with self._lock:
            try:
                current = head.state
                if generic:
                    gx, gy, gz = head.to_generic(current)
                    target = head.from_generic(
                        gx if pan is None else pan,
                        gy if tilt is None else tilt,
                        gz if zoom is None else zoom,
                    )
                else:
                    target = PTZState(
                        current.pan_deg if pan is None else wrap_pan(pan),
                        current.tilt_deg if tilt is None else tilt,
                        current.zoom if zoom is None else zoom,
                    )
                head.absolute_move(target, self._speed(speed))
            except PTZCommandError as error:
                raise _translate(error) from None
            except ValueError as error:
                raise PTZRequestError(str(error)) from None

    def relative_move(
        self,
        pan: float = 0.0,
        tilt: float = 0.0,
        zoom: float = 0.0,
        *,
        speed: float | None = None,
        generic: bool = False,
    ) -> None:
        """ONVIF RelativeMove by a translation (right, up and tele are positive)."""
        head = self._require_head()
        with self._lock:
            try:
                if generic:
                    head.relative_move_generic(pan, tilt, zoom, self._speed(speed))
                else:
                    head.relative_move(pan, tilt, zoom, self._speed(speed))
            except PTZCommandError as error:
                raise _translate(error) from None

    def continuous_move(
        self,
        pan: float = 0.0,
        tilt: float = 0.0,
        zoom: float = 0.0,
        *,
        timeout_s: float | None = None,
        generic: bool = False,
    ) -> None:
        """ONVIF ContinuousMove: degrees (zoom units) per second, or with ``generic`` a
        fraction -1..1 of full speed per axis; until the timeout, a stop or another move."""
        head = self._require_head()
        with self._lock:
            try:
                if generic:
                    head.continuous_move_generic(pan, tilt, zoom, timeout_s)
                else:
                    head.continuous_move(pan, tilt, zoom, timeout_s)
            except PTZCommandError as error:
                raise _translate(error) from None

    def stop(self, *, pan_tilt: bool = True, zoom: bool = True) -> None:
        head = self._require_head()
        with self._lock:
            head.stop(pan_tilt=pan_tilt, zoom=zoom)

    # ----------------------------------------------------------------- presets

    def presets(self) -> tuple[Preset, ...]:
        if self._head is None:
            return ()
        with self._lock:
            return self._head.presets()

    def set_preset(self, name: str = "", token: str | None = None) -> Preset:
        """Save the current position (fails while moving); returns the preset."""
        head = self._require_head()
        with self._lock:
            try:
                saved = head.set_preset(name, token)
            except PTZCommandError as error:
                raise _translate(error) from None
            self._presets_changed(head)
            return next(p for p in head.presets() if p.token == saved)

    def goto_preset(self, token: str, speed: float | None = None) -> Preset:
        head = self._require_head()
        with self._lock:
            try:
                head.goto_preset(token, self._speed(speed))
            except PTZCommandError as error:
                raise _translate(error) from None
            return next(p for p in head.presets() if p.token == token)

    def remove_preset(self, token: str) -> None:
        head = self._require_head()
        with self._lock:
            try:
                head.remove_preset(token)
            except PTZCommandError as error:
                raise _translate(error) from None
            self._presets_changed(head)

    def _presets_changed(self, head: VirtualPTZ) -> None:
        """Keep the configuration's presets in step with the head's (for saving)."""
        presets = [
            PresetConfig(
                name=p.name, pan_deg=p.state.pan_deg, tilt_deg=p.state.tilt_deg, zoom=p.state.zoom
            )
            for p in head.presets()
        ]
        self._config = self._config.model_copy(update={"presets": presets})
        if self.on_change is not None:
            self.on_change(self.camera_id, self._config)

    # ----------------------------------------------------------------- masks

    def mask_config(self, name: str) -> SceneMaskConfig:
        with self._lock:
            for mask in self._config.masks:
                if mask.name == name:
                    return mask
        raise PTZUnavailableError(
            f"camera {self.camera_id} has no scene mask {name!r}", hint="list the masks"
        )

    def go_to_mask(self, name: str, fill: float = 0.8, speed: float | None = None) -> PTZState:
        """Point at a mask (enabled or not), centred and zoomed to span ``fill`` of the
        picture; returns the target position."""
        head = self._require_head()
        mask = self.mask_config(name).scene_mask()
        with self._lock:
            try:
                head.go_to_mask(mask, fill, self._speed(speed))
            except PTZCommandError as error:
                raise _translate(error) from None
            except ValueError as error:
                raise PTZRequestError(str(error)) from None
            width, height = head.output_size
            target = state_for_mask(mask, head.lens, width, height, fill)
            return head.limits.clamp(target.pan_deg, target.tilt_deg, target.zoom)

    def set_masks(self, masks: Sequence[SceneMaskConfig]) -> PTZConfig:
        """Replace the scene masks (validated and built first; the planner is swapped in
        between two frames). Returns the new configuration."""
        with self._lock:
            data = self._config.model_dump()
            data["masks"] = [m.model_dump() for m in masks]
            try:
                config = PTZConfig.model_validate(data)
            except ValueError as error:
                raise PTZRequestError(str(error), hint="fix the masks") from None
            position: PositionProvider = (
                self._head.captured_position() if self._head is not None else self._position_()
            )
            planner = build_planner(config, position, clock=self._clock)
            if self.on_change is not None:
                self.on_change(self.camera_id, config)
            self._config = config
            self._planner = planner
            return config

    def _position_(self) -> PositionProvider:
        assert self._position is not None
        return self._position

    def view(self, state: PTZState | None = None) -> CameraView:
        """The view at ``state`` (default: the position now) at the rendered size."""
        width, height = self._size
        return CameraView.create(state or self.read().state, self.lens, width, height)

    def mask_from_view(
        self, points: ArrayLike, state: PTZState | None = None, **fields: object
    ) -> SceneMaskConfig:
        """A mask from a polygon drawn on the view at ``state`` (default: the position now),
        in normalised picture coordinates; ``fields`` are the mask's other keys (name,
        style, colour, margins...)."""
        pts = np.asarray(points, dtype=np.float64)
        if not np.all(np.isfinite(pts)) or np.abs(pts).max(initial=0.0) > 1e3:
            raise PTZRequestError("drawn points must be finite normalised coordinates")
        try:
            mask = SceneMask.from_view(pts, self.view(state))
            return SceneMaskConfig.from_scene_mask(mask, **fields)
        except ValueError as error:
            raise PTZRequestError(str(error), hint="draw at least 3 distinct points") from None

    def outlines(self, state: PTZState | None = None) -> list[tuple[SceneMaskConfig, Region]]:
        """Every mask (enabled or not, active or not) seen from ``state`` (default: now),
        as a region of the picture (no margin; may run past 0..1); masks out of view are
        left out."""
        view = self.view(state)
        out = []
        for config in self.config.masks:
            region = project_region(view, config.scene_mask())
            if region is not None:
                out.append((config, region))
        return out


# --------------------------------------------------------------------------- the gateway


class ScenePlanner:
    """A ``FramePlanner``: the scene masks of the frame's PTZ camera (none for other
    cameras), at the position the frame was rendered at."""

    def __init__(self, hub: PTZHub) -> None:
        self._hub = hub

    def plan(self, frame: Frame) -> MaskPlan:
        camera = self._hub.get(frame.camera_id)
        if camera is None:
            return MaskPlan(frame.width, frame.height)
        return camera.plan(frame)


class PTZMasker:
    """A masker followed by the scene masks of the frame's PTZ camera.

    When ``inner`` exposes its planners (``veil.policy.build.CompiledMasker`` does), they
    and the scene masks share one pipeline: one drawing pass, scene masks drawn last, and
    any failure masks the whole frame (the pipeline's rule). Otherwise the scene masks are
    drawn over ``inner``'s output, and their failure too masks the whole frame.
    """

    def __init__(self, inner: Masker, hub: PTZHub) -> None:
        self.inner = inner
        self._scene = ScenePlanner(hub)
        planners = getattr(inner, "planners", None)
        self.pipeline = (
            MaskingPipeline([*planners, self._scene]) if isinstance(planners, list) else None
        )
        self._renderer = FrameRenderer()
        self.failed_closed = 0

    def process(self, frame: Frame) -> Frame:
        if self.pipeline is not None:
            return self.pipeline.process(frame)
        masked = self.inner.process(frame)
        try:
            plan = self._scene.plan(frame)
            if not plan.layers:
                return masked
            return self._renderer.render(masked, plan)
        except Exception:
            if self.failed_closed == 0:
                log.exception("camera %s: scene masks failed; whole frame masked", frame.camera_id)
            self.failed_closed += 1
            return frame.blacked_out()

    def reset_background(self) -> None:
        self.inner.reset_background()


class _Config(Protocol):
    """What the hub reads from a camera's configuration (CameraConfig)."""

    @property
    def id(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def fps(self) -> float: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...


_C = TypeVar("_C", bound=_Config)
_V = TypeVar("_V")


class PTZHub:
    """The PTZ cameras of a gateway, by camera id."""

    def __init__(self, cameras: Iterable[PTZCamera] = ()) -> None:
        self._cameras: dict[str, PTZCamera] = {}
        self._lock = threading.Lock()
        for camera in cameras:
            self.add(camera)

    def add(self, camera: PTZCamera) -> PTZCamera:
        with self._lock:
            self._cameras[camera.camera_id] = camera
        return camera

    def get(self, camera_id: str) -> PTZCamera | None:
        with self._lock:
            return self._cameras.get(camera_id)

    def camera(self, camera_id: str) -> PTZCamera:
        found = self.get(camera_id)
        if found is None:
            raise PTZUnavailableError(
                f"camera {camera_id} has no pan-tilt-zoom control",
                hint="give the camera a 'ptz' section (source: ptz-demo for a virtual one)",
            )
        return found

    @property
    def ids(self) -> list[str]:
        with self._lock:
            return list(self._cameras)

    def close(self) -> None:
        """Stop every camera's position polling (ONVIF readers' threads)."""
        for camera_id in self.ids:
            camera = self.get(camera_id)
            if camera is not None:
                camera.close()

    @classmethod
    def from_cameras(
        cls, cameras: Iterable[object], *, clock: Callable[[], float] = time.monotonic
    ) -> PTZHub:
        """A hub for every camera whose source is ``ptz-demo`` (virtual; its ``ptz``
        section, if any, sets lens, masks and scene) or that has a ``ptz`` section (a real
        head: its position is read over ONVIF when ``ptz.onvif`` is set, else its scene masks
        mask the whole picture)."""
        hub = cls()
        for camera in cameras:
            ptz = getattr(camera, "ptz", None)
            source = str(getattr(camera, "source", ""))
            if source != PTZ_DEMO and ptz is None:
                continue
            config = ptz if isinstance(ptz, PTZConfig) else PTZConfig()
            camera_id = str(getattr(camera, "id"))  # noqa: B009 - any object with these fields
            width = int(getattr(camera, "width"))  # noqa: B009
            height = int(getattr(camera, "height"))  # noqa: B009
            if source == PTZ_DEMO and config.virtual is None:
                config = config.model_copy(update={"virtual": VirtualConfig()})
            elif source != PTZ_DEMO and config.virtual is not None:
                config = config.model_copy(update={"virtual": None})
            virtual = config.virtual
            if virtual is not None and (
                virtual.output_width or width,
                virtual.output_height or height,
            ) != (width, height):
                raise ConfigError(
                    f"camera {camera_id}: ptz.virtual's output size differs from the camera's "
                    f"{width}x{height}",
                    hint="leave ptz.virtual.output_width and output_height out, or set the "
                    "camera's width and height instead (the outputs use the camera's size)",
                )
            fps = float(getattr(camera, "fps"))  # noqa: B009
            position = None
            if config.virtual is None and config.onvif is not None:
                position = config.onvif.provider(clock=clock)
            elif config.onvif is not None:
                raise ConfigError(
                    f"camera {camera_id}: ptz.onvif is for real cameras, not source: {PTZ_DEMO}",
                    hint="remove ptz.onvif, or set the camera's real source",
                )
            hub.add(
                PTZCamera(camera_id, config, width, height, fps=fps, clock=clock, position=position)
            )
        return hub

    def source_factory(
        self, fallback: Callable[[_C], Iterator[Frame]]
    ) -> Callable[[_C], Iterator[Frame]]:
        """Frames of the virtual PTZ cameras; every other camera from ``fallback``."""

        def open_frames(config: _C) -> Iterator[Frame]:
            camera = self.get(config.id)
            if camera is None or not camera.virtual:
                return fallback(config)
            return camera.frames(pace=_paced_elsewhere(config.source))

        return open_frames

    def masker_factory(
        self, base: Callable[[_V, float], Masker]
    ) -> Callable[[_V, float], PTZMasker]:
        """Maskers from ``base`` (dynamic and picture masks), each followed by the scene
        masks of the frame's PTZ camera."""

        def build(config: _V, fps: float) -> PTZMasker:
            return PTZMasker(base(config, fps), self)

        return build


def _paced_elsewhere(source: str) -> bool:
    """Whether the camera runtime does not pace this source (it paces 'demo' and anything
    that is not a URL or a webcam, as veil.server.camera.CameraRuntime does), so the PTZ
    frames must pace themselves."""
    return "://" in source or source.startswith("webcam:")
