"""The PTZ API: moves with ONVIF's semantics, presets, go-to-mask and scene masks.

Everything is under ``/api/cameras/{camera_id}/ptz``; reading needs the ``view`` scope,
moving the camera and changing presets or masks the ``configure`` scope (as the rest of the
API: session cookie with CSRF token, or an API token)::

    GET    /status                  position, moving, velocity, fields of view, limits
    GET    /position                the position only (cheap, for polling)
    POST   /absolute-move           {pan, tilt, zoom, speed, space}   (ONVIF AbsoluteMove)
    POST   /relative-move           {pan, tilt, zoom, speed, space}   (ONVIF RelativeMove)
    POST   /continuous-move         {pan, tilt, zoom, timeout_s, space}  (ContinuousMove)
    POST   /stop                    {pan_tilt, zoom}                  (ONVIF Stop)
    GET    /presets                 ONVIF GetPresets
    POST   /presets                 {name, token?}: save the position (SetPreset; 409 moving)
    POST   /presets/{token}/goto    {speed}                           (GotoPreset)
    DELETE /presets/{token}         RemovePreset
    POST   /go-to-mask              {name, fill, speed}: point at a scene mask to check it
    GET    /masks                   the scene masks (pan/tilt degrees)
    PUT    /masks                   {masks: [...]}: replace them; a mask is given in degrees
                                    ("vertices") or as a polygon drawn on a view ("drawn":
                                    normalised points and the position of that view)
    POST   /masks/from-view         convert a drawn polygon to pan/tilt corners (no change)
    GET    /masks/view              the masks' outlines in the view now (or at ?pan&tilt&zoom)

``space`` is ``degrees`` (pan and tilt in degrees, zoom 0..1, velocities in degrees per
second) or ``generic`` (ONVIF's generic spaces: -1..1 of the pan and tilt range or of full
speed). ``speed`` is ONVIF's generic speed 0..1; left out, the camera's default (instant
unless ``ptz.virtual.default_speed`` is set). Refusals: 404 no PTZ or unknown preset or mask,
409 while moving (presets) or a taken name, 422 out of range.

Wiring: ``app.include_router(ptz_routes.router)`` and ``app.state.ptz = PTZHub(...)`` (the
gateway's hub); see veil.ptz.runtime.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from veil.config.schema import StyleConfig
from veil.core.region import MAX_VERTICES, MIN_VERTICES
from veil.ptz.camera import PTZState
from veil.ptz.config import MASK_NAME_PATTERN, LensConfig, SceneMaskConfig
from veil.ptz.runtime import PTZCamera, PTZHub, PTZRequestError, PTZUnavailableError
from veil.ptz.virtual import Preset
from veil.server.auth import Operator, Viewer, get_gateway

router = APIRouter(prefix="/api/cameras/{camera_id}/ptz", tags=["ptz"])

CameraId = Annotated[str, Path(min_length=1, max_length=64, description="The camera's id.")]
Token = Annotated[str, Path(min_length=1, max_length=64, description="A preset's token.")]
Speed = Annotated[
    float | None,
    Field(default=None, gt=0, le=1, description="Generic speed 0..1; default: the camera's."),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Space(StrEnum):
    """Units of a move: degrees, or ONVIF's generic spaces."""

    DEGREES = "degrees"
    GENERIC = "generic"


class Position(_Model):
    pan_deg: float
    tilt_deg: float
    zoom: float


class GenericPosition(_Model):
    x: float = Field(description="Pan, -1..1 for -180..180 degrees.")
    y: float = Field(description="Tilt, -1..1 over the tilt range.")
    zoom: float


class Velocity(_Model):
    pan_deg_s: float
    tilt_deg_s: float
    zoom_per_s: float


class PositionInfo(_Model):
    position: Position
    moving: bool | None = Field(description="ONVIF MoveStatus: moving, idle or null (unknown).")


class PTZStatusInfo(PositionInfo):
    camera_id: str
    virtual: bool = Field(description="A virtual camera, moved by Veil itself.")
    generic: GenericPosition
    velocity: Velocity | None
    hfov_deg: float
    vfov_deg: float
    width: int
    height: int
    lens: LensConfig
    tilt_min_deg: float
    tilt_max_deg: float
    max_speed_deg_s: float
    max_zoom_speed: float
    presets: int
    masks: int


class AbsoluteMove(_Model):
    pan: float | None = Field(default=None, description="Left out: pan stays.")
    tilt: float | None = Field(default=None, description="Left out: tilt stays.")
    zoom: float | None = Field(default=None, ge=0, le=1, description="Left out: zoom stays.")
    speed: Speed = None
    space: Space = Space.DEGREES


class RelativeMove(_Model):
    pan: float = Field(default=0.0, ge=-360, le=360, description="Right is positive.")
    tilt: float = Field(default=0.0, ge=-180, le=180, description="Up is positive.")
    zoom: float = Field(default=0.0, ge=-1, le=1, description="Tele is positive.")
    speed: Speed = None
    space: Space = Space.DEGREES


class ContinuousMove(_Model):
    pan: float = Field(default=0.0, ge=-1000, le=1000)
    tilt: float = Field(default=0.0, ge=-1000, le=1000)
    zoom: float = Field(default=0.0, ge=-100, le=100)
    timeout_s: float | None = Field(
        default=None, gt=0, le=3600, description="Default: the camera's default timeout."
    )
    space: Space = Space.DEGREES


class StopRequest(_Model):
    pan_tilt: bool = True
    zoom: bool = True


class PresetInfo(_Model):
    token: str
    name: str
    position: Position


class PresetCreate(_Model):
    name: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_.\- ]*$")
    token: str | None = Field(
        default=None, min_length=1, max_length=64, description="Overwrite this preset."
    )


class GotoRequest(_Model):
    speed: Speed = None


class GoToMask(_Model):
    name: str = Field(min_length=1, max_length=64)
    fill: float = Field(default=0.8, gt=0, le=1, description="Part of the picture it spans.")
    speed: Speed = None


class GoToMaskReply(_Model):
    target: Position


Point = tuple[float, float]
ViewCoordinate = Annotated[float, Field(ge=-1, le=2, allow_inf_nan=False)]
ViewPoint = tuple[ViewCoordinate, ViewCoordinate]
"""A normalised picture point; up to a picture's size beyond its edges."""


class DrawnPolygon(_Model):
    """A polygon drawn on a view: normalised picture points, and the position of that view
    (default: the camera's position now; give it, since the camera may have moved)."""

    polygon: list[ViewPoint] = Field(min_length=MIN_VERTICES, max_length=MAX_VERTICES)
    position: Position | None = None


class SceneMaskInput(StyleConfig):
    """A scene mask to store: corners in degrees (``vertices``), or ``drawn`` on a view."""

    name: str = Field(min_length=1, max_length=64, pattern=MASK_NAME_PATTERN)
    enabled: bool = True
    vertices: list[Point] | None = None
    drawn: DrawnPolygon | None = None
    min_zoom: float = Field(default=0.0, ge=0, le=1)
    margin_deg: float = Field(default=0.0, ge=0, le=30)
    margin_px: float = Field(default=0.0, ge=0, le=500)

    @model_validator(mode="after")
    def _one_shape(self) -> SceneMaskInput:
        if (self.vertices is None) == (self.drawn is None):
            raise ValueError("give either 'vertices' (pan/tilt degrees) or 'drawn', not both")
        return self


class MasksUpdate(_Model):
    masks: list[SceneMaskInput] = Field(max_length=256)


class Corners(_Model):
    vertices: list[Point] = Field(description="[pan, tilt] corners in degrees.")


class MaskOutline(_Model):
    name: str
    enabled: bool
    active: bool = Field(description="Drawn at this zoom (enabled and zoom >= min_zoom).")
    color: str
    polygon: list[Point] = Field(description="Normalised picture points (may run past 0..1).")


class MasksView(_Model):
    position: Position
    width: int
    height: int
    outlines: list[MaskOutline]


# -- helpers ----------------------------------------------------------------------------------


def _hub(request: Request) -> PTZHub | None:
    hub = getattr(request.app.state, "ptz", None)
    if hub is None:
        hub = getattr(get_gateway(request), "ptz", None)
    return hub if isinstance(hub, PTZHub) else None


def _camera(request: Request, camera_id: str) -> PTZCamera:
    get_gateway(request).camera(camera_id)  # 404 for an unknown camera
    hub = _hub(request)
    if hub is None:
        raise PTZUnavailableError(
            "this gateway has no pan-tilt-zoom cameras",
            hint="give a camera a 'ptz' section (source: ptz-demo for a virtual one)",
        )
    return hub.camera(camera_id)


def _position(state: PTZState) -> Position:
    return Position(pan_deg=state.pan_deg, tilt_deg=state.tilt_deg, zoom=state.zoom)


def _position_now(camera: PTZCamera) -> PositionInfo:
    """Where ``camera`` is now: every move route replies with it (the target when the
    move is instant)."""
    reading = camera.read()
    return PositionInfo(position=_position(reading.state), moving=reading.moving)


def _state(position: Position) -> PTZState:
    try:
        return PTZState(position.pan_deg, position.tilt_deg, position.zoom)
    except ValueError as error:
        raise PTZRequestError(str(error)) from None


def _preset(preset: Preset) -> PresetInfo:
    return PresetInfo(token=preset.token, name=preset.name, position=_position(preset.state))


def _audit(request: Request, caller: Operator, action: str, camera_id: str, **details: Any) -> None:
    get_gateway(request).audit.append(
        caller.principal.label, action, f"camera:{camera_id}", details or None
    )


# -- status and moves -------------------------------------------------------------------------


@router.get("/status", response_model=PTZStatusInfo)
def ptz_status(request: Request, camera_id: CameraId, caller: Viewer) -> PTZStatusInfo:
    """Where the camera points, whether it moves, and what it can do."""
    s = _camera(request, camera_id).status()
    r = s.reading
    v = r.velocity
    return PTZStatusInfo(
        camera_id=s.camera_id,
        virtual=s.virtual,
        position=_position(r.state),
        moving=r.moving,
        generic=GenericPosition(x=s.generic[0], y=s.generic[1], zoom=s.generic[2]),
        velocity=None
        if v is None
        else Velocity(pan_deg_s=v.pan_deg_s, tilt_deg_s=v.tilt_deg_s, zoom_per_s=v.zoom_per_s),
        hfov_deg=s.hfov_deg,
        vfov_deg=s.vfov_deg,
        width=s.width,
        height=s.height,
        lens=LensConfig(hfov_wide_deg=s.lens.hfov_wide_deg, hfov_tele_deg=s.lens.hfov_tele_deg),
        tilt_min_deg=s.tilt_min_deg,
        tilt_max_deg=s.tilt_max_deg,
        max_speed_deg_s=s.max_speed_deg_s,
        max_zoom_speed=s.max_zoom_speed,
        presets=s.presets,
        masks=s.masks,
    )


@router.get("/position", response_model=PositionInfo)
def ptz_position(request: Request, camera_id: CameraId, caller: Viewer) -> PositionInfo:
    return _position_now(_camera(request, camera_id))


@router.post("/absolute-move", response_model=PositionInfo)
def absolute_move(
    request: Request, camera_id: CameraId, caller: Operator, body: AbsoluteMove
) -> PositionInfo:
    """ONVIF AbsoluteMove: to a position, the shorter way round in pan; tilt clamped to the
    limits. Interrupts any other move. The reply is the position now (the target when the
    move is instant)."""
    camera = _camera(request, camera_id)
    camera.absolute_move(
        body.pan, body.tilt, body.zoom, speed=body.speed, generic=body.space is Space.GENERIC
    )
    return _position_now(camera)


@router.post("/relative-move", response_model=PositionInfo)
def relative_move(
    request: Request, camera_id: CameraId, caller: Operator, body: RelativeMove
) -> PositionInfo:
    """ONVIF RelativeMove: by a translation from the current position."""
    camera = _camera(request, camera_id)
    camera.relative_move(
        body.pan, body.tilt, body.zoom, speed=body.speed, generic=body.space is Space.GENERIC
    )
    return _position_now(camera)


@router.post("/continuous-move", response_model=PositionInfo)
def continuous_move(
    request: Request, camera_id: CameraId, caller: Operator, body: ContinuousMove
) -> PositionInfo:
    """ONVIF ContinuousMove: at a velocity until the timeout, a stop or another move; zero
    on every axis stops."""
    camera = _camera(request, camera_id)
    camera.continuous_move(
        body.pan,
        body.tilt,
        body.zoom,
        timeout_s=body.timeout_s,
        generic=body.space is Space.GENERIC,
    )
    return _position_now(camera)


@router.post("/stop", response_model=PositionInfo)
def stop(
    request: Request, camera_id: CameraId, caller: Operator, body: StopRequest
) -> PositionInfo:
    """ONVIF Stop: pan/tilt, zoom, or both (default)."""
    camera = _camera(request, camera_id)
    camera.stop(pan_tilt=body.pan_tilt, zoom=body.zoom)
    return _position_now(camera)


# -- presets ----------------------------------------------------------------------------------


@router.get("/presets", response_model=list[PresetInfo])
def list_presets(request: Request, camera_id: CameraId, caller: Viewer) -> list[PresetInfo]:
    return [_preset(p) for p in _camera(request, camera_id).presets()]


@router.post("/presets", response_model=PresetInfo, status_code=201)
def set_preset(
    request: Request, camera_id: CameraId, caller: Operator, body: PresetCreate
) -> PresetInfo:
    """ONVIF SetPreset: save the current position (409 while the camera moves)."""
    preset = _camera(request, camera_id).set_preset(body.name, body.token)
    _audit(request, caller, "ptz.preset.set", camera_id, token=preset.token, name=preset.name)
    return _preset(preset)


@router.post("/presets/{token}/goto", response_model=PresetInfo)
def goto_preset(
    request: Request, camera_id: CameraId, token: Token, caller: Operator, body: GotoRequest
) -> PresetInfo:
    """ONVIF GotoPreset."""
    return _preset(_camera(request, camera_id).goto_preset(token, body.speed))


@router.delete("/presets/{token}", response_model=list[PresetInfo])
def remove_preset(
    request: Request, camera_id: CameraId, token: Token, caller: Operator
) -> list[PresetInfo]:
    """ONVIF RemovePreset; the reply is the presets left."""
    camera = _camera(request, camera_id)
    camera.remove_preset(token)
    _audit(request, caller, "ptz.preset.remove", camera_id, token=token)
    return [_preset(p) for p in camera.presets()]


# -- masks ------------------------------------------------------------------------------------


@router.post("/go-to-mask", response_model=GoToMaskReply)
def go_to_mask(
    request: Request, camera_id: CameraId, caller: Operator, body: GoToMask
) -> GoToMaskReply:
    """Point the camera at a scene mask, centred and zoomed so it spans ``fill`` of the
    picture (as far as the lens allows), to check it."""
    target = _camera(request, camera_id).go_to_mask(body.name, body.fill, body.speed)
    return GoToMaskReply(target=_position(target))


@router.get("/masks", response_model=list[SceneMaskConfig])
def get_masks(request: Request, camera_id: CameraId, caller: Viewer) -> list[SceneMaskConfig]:
    """The scene masks, corners in pan/tilt degrees."""
    return list(_camera(request, camera_id).config.masks)


def _to_config(camera: PTZCamera, mask: SceneMaskInput) -> SceneMaskConfig:
    fields = mask.model_dump(exclude={"vertices", "drawn"})
    if mask.drawn is not None:
        position = mask.drawn.position
        state = None if position is None else _state(position)
        return camera.mask_from_view(mask.drawn.polygon, state, **fields)
    try:
        return SceneMaskConfig.model_validate({**fields, "vertices": mask.vertices})
    except ValueError as error:
        raise PTZRequestError(f"mask {mask.name}: {error}", hint="fix its corners") from None


@router.put("/masks", response_model=list[SceneMaskConfig])
def put_masks(
    request: Request, camera_id: CameraId, caller: Operator, body: MasksUpdate
) -> list[SceneMaskConfig]:
    """Replace the scene masks. Drawn polygons are converted to pan/tilt corners at the
    position they were drawn on; everything is validated and built before it replaces the
    running masks. Audited with what changed."""
    camera = _camera(request, camera_id)
    old = [m.model_dump(mode="json") for m in camera.config.masks]
    config = camera.set_masks([_to_config(camera, m) for m in body.masks])
    new = [m.model_dump(mode="json") for m in config.masks]
    get_gateway(request).audit.record_config_change(
        caller.principal.label, f"camera:{camera_id}:ptz-masks", {"masks": old}, {"masks": new}
    )
    return list(config.masks)


@router.post("/masks/from-view", response_model=Corners)
def mask_from_view(
    request: Request, camera_id: CameraId, caller: Viewer, body: DrawnPolygon
) -> Corners:
    """The pan/tilt corners of a polygon drawn on a view (nothing is stored)."""
    camera = _camera(request, camera_id)
    state = None if body.position is None else _state(body.position)
    converted = camera.mask_from_view(body.polygon, state, name="drawn")
    return Corners(vertices=converted.vertices)


@router.get("/masks/view", response_model=MasksView)
def masks_view(
    request: Request,
    camera_id: CameraId,
    caller: Viewer,
    pan: Annotated[float | None, Query(ge=-360, le=360)] = None,
    tilt: Annotated[float | None, Query(ge=-90, le=90)] = None,
    zoom: Annotated[float | None, Query(ge=0, le=1)] = None,
) -> MasksView:
    """The masks' outlines (no margin) in the view now, or at the position given, for
    drawing them over the picture."""
    camera = _camera(request, camera_id)
    now = camera.read().state
    state = PTZState(
        now.pan_deg if pan is None else pan,
        now.tilt_deg if tilt is None else tilt,
        now.zoom if zoom is None else zoom,
    )
    width, height = camera.size
    outlines = [
        MaskOutline(
            name=mask.name,
            enabled=mask.enabled,
            active=mask.enabled and state.zoom >= mask.min_zoom,
            color=mask.color,
            polygon=[(float(x), float(y)) for x, y in region.points],
        )
        for mask, region in camera.outlines(state)
    ]
    return MasksView(position=_position(state), width=width, height=height, outlines=outlines)
