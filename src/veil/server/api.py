"""The gateway's REST API (all under ``/api``); the OpenAPI description is /api/openapi.json.

Roles and what they reach (scopes in brackets):

- viewer [view]: cameras, masked snapshots and MJPEG streams, masked recordings;
- operator [+configure]: masking configuration, reset background;
- investigator [+unmask, +export]: unmask requests (with a reason), approvals, the unmasked
  snapshot and stream while a grant is active, decrypting originals (with a reason);
- admin [+manage_users]: users, roles, the audit log and its verification.

Every refusal is a JSON object ``{"detail": message, "hint": how to fix}`` with the right
status (401 not logged in, 403 not allowed or CSRF, 404 unknown camera, 413 body too big,
422 invalid input, 429 too many failed logins), and is logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from veil.config.schema import VeilConfig
from veil.core.errors import VeilError
from veil.core.frame import Image
from veil.server.auth import (
    SESSION_COOKIE,
    Admin,
    AnyUser,
    Caller,
    Exporter,
    Investigator,
    Operator,
    Viewer,
    get_gateway,
)
from veil.server.camera import CameraRuntime, CameraState, no_signal_image
from veil.server.gateway import Gateway
from veil.server.mjpeg import (
    MEDIA_TYPE,
    MjpegResponse,
    check_room,
    encode_jpeg,
    jpeg_of,
    mjpeg_parts,
)
from veil.server.sources import redact_source
from veil.vault.audit import AuditEntry
from veil.vault.users import (
    ApiToken,
    AuthError,
    Principal,
    Role,
    Scope,
    UnmaskError,
    UnmaskGrant,
    User,
    UserNotFoundError,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api")

CameraId = Annotated[str, Path(min_length=1, max_length=64, description="The camera's id.")]
GrantId = Annotated[int, Path(ge=1, le=2**62, description="An unmask grant's id.")]
TokenId = Annotated[int, Path(ge=1, le=2**62, description="An API token's id.")]
Username = Annotated[str, Path(min_length=1, max_length=64, description="A username.")]
SegmentName = Annotated[str, Path(min_length=1, max_length=200, description="A segment file.")]
MaxFrames = Annotated[
    int | None, Query(ge=1, le=100_000, description="End the stream after this many pictures.")
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- models -----------------------------------------------------------------------------------


class LoginRequest(_Model):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class Me(_Model):
    username: str
    role: Role | None
    scopes: list[Scope]
    method: str
    csrf_token: str | None = Field(
        default=None, description="Send it as X-CSRF-Token on every change (session logins)."
    )


class PasswordChange(_Model):
    current: str = Field(min_length=1, max_length=1024, description="Your current password.")
    new: str = Field(min_length=1, max_length=1024, description="At least 12 characters.")


class CameraInfo(_Model):
    id: str
    name: str
    source: str = Field(description="The source, with any password hidden.")
    width: int
    height: int
    fps: float
    state: str
    frames_in: int
    frames_out: int
    frames_dropped: int
    frames_late: int
    no_signal_frames: int
    frames_unrecorded: int
    reconnects: int
    last_error: str
    latency_ms_p50: float
    latency_ms_p95: float
    rtsp_url: str | None
    record_original: bool


class UnmaskRequest(_Model):
    reason: str = Field(
        min_length=1, max_length=500, description="Why: a case or incident number, say."
    )
    minutes: float | None = Field(
        default=None, gt=0, le=24 * 60, description="How long the view may stay open."
    )


class GrantInfo(_Model):
    id: int
    username: str
    camera_id: str
    reason: str
    status: str
    duration_s: float
    requested_at: datetime
    approver: str | None
    starts_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None


class RecordingInfo(_Model):
    camera_id: str
    name: str
    start: datetime
    sequence: int
    size: int


class DecryptRequest(_Model):
    reason: str = Field(min_length=1, max_length=500, description="A case or incident number.")


class AuditEntryInfo(_Model):
    seq: int
    time: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    hash: str


class AuditVerifyInfo(_Model):
    ok: bool
    entries: int
    first_bad_seq: int | None
    problem: str | None
    head_hash: str | None
    keyed: bool


class UserInfo(_Model):
    username: str
    role: Role
    disabled: bool
    created_at: datetime


class UserCreate(_Model):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: Role


class UserUpdate(_Model):
    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)


class TokenCreate(_Model):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] | None = Field(
        default=None, description="Limit the token to these scopes; default: all of yours."
    )
    expires_days: float | None = Field(default=None, gt=0, le=3650)


class TokenInfo(_Model):
    id: int
    username: str
    name: str
    scopes: list[Scope] | None
    created_at: datetime
    expires_at: datetime | None
    last_used: datetime | None
    revoked_at: datetime | None


class NewToken(_Model):
    token: str = Field(description="Shown once: it cannot be recovered.")
    info: TokenInfo


class Ok(_Model):
    ok: bool = True


# -- helpers ----------------------------------------------------------------------------------


class NotFoundError(VeilError, LookupError):
    http_status = 404


class ForbiddenError(VeilError, PermissionError):
    http_status = 403


class WrongPasswordError(VeilError, ValueError):
    """The current password given to change it is wrong (400: the session itself is fine)."""

    http_status = 400


def _me(caller: Caller) -> Me:
    p = caller.principal
    return Me(
        username=p.username,
        role=p.role,
        scopes=sorted(p.scopes),
        method=str(p.method),
        csrf_token=caller.session.csrf_token if caller.session is not None else None,
    )


def _camera_info(gateway: Gateway, runtime: CameraRuntime) -> CameraInfo:
    c = runtime.config
    s = runtime.status()
    return CameraInfo(
        id=c.id,
        name=c.name or c.id,
        source=redact_source(c.source),
        width=c.width,
        height=c.height,
        fps=c.fps,
        state=str(s.state.value),
        frames_in=s.frames_in,
        frames_out=s.frames_out,
        frames_dropped=s.frames_dropped,
        frames_late=s.frames_late,
        no_signal_frames=s.no_signal_frames,
        frames_unrecorded=s.frames_unrecorded,
        reconnects=s.reconnects,
        last_error=s.last_error,
        latency_ms_p50=s.latency_ms_p50,
        latency_ms_p95=s.latency_ms_p95,
        rtsp_url=gateway.rtsp_url(c.id),
        record_original=c.record_original,
    )


def _grant_info(grant: UnmaskGrant) -> GrantInfo:
    return GrantInfo(
        id=grant.id,
        username=grant.username,
        camera_id=grant.camera_id,
        reason=grant.reason,
        status=str(grant.status),
        duration_s=grant.duration.total_seconds(),
        requested_at=grant.requested_at,
        approver=grant.approver,
        starts_at=grant.starts_at,
        expires_at=grant.expires_at,
        ended_at=grant.ended_at,
    )


def _user_info(user: User) -> UserInfo:
    return UserInfo(
        username=user.username, role=user.role, disabled=user.disabled, created_at=user.created_at
    )


def _token_info(token: ApiToken) -> TokenInfo:
    return TokenInfo(
        id=token.id,
        username=token.username,
        name=token.name,
        scopes=None if token.scopes is None else sorted(token.scopes),
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used=token.last_used,
        revoked_at=token.revoked_at,
    )


def _entry_info(entry: AuditEntry) -> AuditEntryInfo:
    return AuditEntryInfo(
        seq=entry.seq,
        time=entry.time,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        details=dict(entry.details),
        hash=entry.hash,
    )


def _grant(gateway: Gateway, grant_id: int) -> UnmaskGrant:
    try:
        return gateway.grants.get(grant_id)
    except UnmaskError as error:
        raise NotFoundError(str(error.message), hint="list the grants: GET /api/unmask") from None


def _latest_or_blank(runtime: CameraRuntime, masked: bool) -> Image:
    frames = runtime.masked if masked else runtime.original
    published = frames.latest()
    if published is None:
        c = runtime.config
        return no_signal_image(c.width, c.height, "NO SIGNAL YET")
    return published.image


def _active_grant(gateway: Gateway, principal: Principal, camera_id: str) -> UnmaskGrant:
    grant = gateway.grants.active_grant(principal, camera_id)
    if grant is None:
        gateway.audit.append(
            principal.label,
            "unmask.refused",
            f"camera:{camera_id}",
            {"why": "no active unmask grant"},
        )
        raise ForbiddenError(
            f"{principal.username} has no active unmask grant for camera {camera_id}",
            hint=f"request one with POST /api/cameras/{camera_id}/unmask and a reason "
            "(it may need a second investigator's approval)",
        )
    return grant


def _audit_unmask_view(
    gateway: Gateway, principal: Principal, camera_id: str, grant: UnmaskGrant, kind: str
) -> None:
    """Record that ``principal`` opened an unmasked view (``kind``: snapshot or stream)."""
    gateway.audit.append(
        principal.label,
        "unmask.view",
        f"camera:{camera_id}",
        {"grant": grant.id, "reason": grant.reason, "kind": kind},
    )


def _clear_session_cookie(request: Request, response: Response) -> None:
    """Drop the session cookie. The browser only deletes a cookie whose attributes
    match those it was set with (see ``login``), so they are repeated here."""
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=bool(request.app.state.tls),
        httponly=True,
        samesite="strict",
    )


_JPEG_HEADERS = {"Cache-Control": "no-store"}


# -- session ----------------------------------------------------------------------------------


@router.post("/login", response_model=Me, tags=["session"])
def login(request: Request, response: Response, body: LoginRequest) -> Me:
    """Log in: sets the session cookie; the reply holds the CSRF token for changes."""
    gateway = get_gateway(request)
    remote = request.client.host if request.client else None
    new = gateway.sessions.login(body.username, body.password, remote_addr=remote)
    lifetime = gateway.auth_settings.session_lifetime
    response.set_cookie(
        SESSION_COOKIE,
        new.token,
        max_age=int(lifetime.total_seconds()),
        path="/",
        secure=bool(request.app.state.tls),
        httponly=True,
        samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return _me(Caller(new.session.principal, new.session, new.token))


@router.post("/logout", response_model=Ok, tags=["session"])
def logout(request: Request, response: Response, caller: AnyUser) -> Ok:
    """End this session (API tokens are revoked with DELETE /api/tokens/{id} instead)."""
    if caller.token is not None:
        get_gateway(request).sessions.logout(caller.token)
    _clear_session_cookie(request, response)
    return Ok()


@router.get("/me", response_model=Me, tags=["session"])
def me(caller: AnyUser) -> Me:
    """Who is logged in, with which scopes (and the session's CSRF token)."""
    return _me(caller)


@router.post("/me/password", response_model=Ok, tags=["session"])
def change_password(
    request: Request, response: Response, caller: AnyUser, body: PasswordChange
) -> Ok:
    """Change your own password (proving the current one). Every session of yours ends,
    this one included: log in again with the new password."""
    users = get_gateway(request).users
    try:
        users.change_own_password(caller.principal, body.current, body.new)
    except AuthError as error:
        raise WrongPasswordError(error.message, hint=error.hint) from None
    _clear_session_cookie(request, response)
    return Ok()


class Health(_Model):
    ok: bool = Field(description="Every camera is live.")
    cameras: int
    live: int


@router.get("/health", response_model=Health, tags=["session"])
def health(request: Request) -> Health:
    """For monitoring, without login: how many cameras are live (no names, no pictures)."""
    runtimes = get_gateway(request).cameras
    live = sum(1 for r in runtimes if r.status().state is CameraState.LIVE)
    return Health(ok=live == len(runtimes), cameras=len(runtimes), live=live)


# -- cameras ----------------------------------------------------------------------------------


@router.get("/cameras", response_model=list[CameraInfo], tags=["cameras"])
def list_cameras(request: Request, caller: Viewer) -> list[CameraInfo]:
    gateway = get_gateway(request)
    return [_camera_info(gateway, runtime) for runtime in gateway.cameras]


@router.get("/cameras/{camera_id}", response_model=CameraInfo, tags=["cameras"])
def camera_status(request: Request, camera_id: CameraId, caller: Viewer) -> CameraInfo:
    gateway = get_gateway(request)
    return _camera_info(gateway, gateway.camera(camera_id))


@router.get(
    "/cameras/{camera_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
    tags=["cameras"],
)
def snapshot(request: Request, camera_id: CameraId, caller: Viewer) -> Response:
    """The newest masked picture as JPEG (a "no signal" picture before the first one)."""
    runtime = get_gateway(request).camera(camera_id)
    published = runtime.masked.latest()
    if published is None:
        jpeg = encode_jpeg(_latest_or_blank(runtime, masked=True))
    else:
        jpeg = jpeg_of(runtime.masked, published)
    return Response(jpeg, media_type="image/jpeg", headers=_JPEG_HEADERS)


@router.get(
    "/cameras/{camera_id}/stream.mjpeg",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPE: {}}}},
    tags=["cameras"],
)
def stream(
    request: Request, camera_id: CameraId, caller: Viewer, max_frames: MaxFrames = None
) -> StreamingResponse:
    """The masked live picture as MJPEG: always the newest picture, never a backlog."""
    gateway = get_gateway(request)
    runtime = gateway.camera(camera_id)
    check_room(runtime.masked, f"camera {camera_id}")
    parts = mjpeg_parts(runtime.masked, stopped=lambda: gateway.stopping, max_frames=max_frames)
    return MjpegResponse(parts, headers=_JPEG_HEADERS)


@router.get("/cameras/{camera_id}/masking", response_model=VeilConfig, tags=["masking"])
def get_masking(request: Request, camera_id: CameraId, caller: Viewer) -> VeilConfig:
    """The camera's running masking configuration."""
    return get_gateway(request).camera(camera_id).config.masking


@router.put("/cameras/{camera_id}/masking", response_model=VeilConfig, tags=["masking"])
def put_masking(
    request: Request, camera_id: CameraId, caller: Operator, masking: VeilConfig
) -> VeilConfig:
    """Replace the masking configuration. It is built first; one that fails is refused
    (422, with the reason) and the running one stays. Audited with what changed."""
    return get_gateway(request).update_masking(caller.principal, camera_id, masking)


@router.post("/cameras/{camera_id}/reset-background", response_model=Ok, tags=["masking"])
def reset_background(request: Request, camera_id: CameraId, caller: Operator) -> Ok:
    """Motion masking learns the scene again (the whole picture is masked meanwhile)."""
    get_gateway(request).reset_background(caller.principal, camera_id)
    return Ok()


# -- unmasking --------------------------------------------------------------------------------


@router.post("/cameras/{camera_id}/unmask", response_model=GrantInfo, tags=["unmask"])
def request_unmask(
    request: Request, camera_id: CameraId, caller: Investigator, body: UnmaskRequest
) -> GrantInfo:
    """Ask to see the original picture, with a reason. Active at once, or pending until a
    second investigator approves when the site demands it. Audited."""
    gateway = get_gateway(request)
    gateway.camera(camera_id)
    duration = None if body.minutes is None else timedelta(minutes=body.minutes)
    grant = gateway.grants.request_unmask(
        caller.principal, camera_id, body.reason, duration=duration
    )
    return _grant_info(grant)


@router.get("/unmask", response_model=list[GrantInfo], tags=["unmask"])
def list_grants(
    request: Request,
    caller: Investigator,
    status: Annotated[str | None, Query(max_length=16)] = None,
) -> list[GrantInfo]:
    """Unmask grants: pending ones to approve, and the history."""
    gateway = get_gateway(request)
    grants = gateway.grants.list_grants()
    if status is not None:
        grants = [g for g in grants if str(g.status) == status]
    return [_grant_info(g) for g in grants[:500]]


@router.post("/unmask/{grant_id}/approve", response_model=GrantInfo, tags=["unmask"])
def approve_unmask(request: Request, grant_id: GrantId, caller: Investigator) -> GrantInfo:
    """A second investigator approves a pending request; its time limit starts now."""
    gateway = get_gateway(request)
    _grant(gateway, grant_id)
    return _grant_info(gateway.grants.approve_unmask(caller.principal, grant_id))


@router.post("/unmask/{grant_id}/deny", response_model=GrantInfo, tags=["unmask"])
def deny_unmask(request: Request, grant_id: GrantId, caller: Investigator) -> GrantInfo:
    gateway = get_gateway(request)
    _grant(gateway, grant_id)
    return _grant_info(gateway.grants.deny_unmask(caller.principal, grant_id))


@router.post("/unmask/{grant_id}/end", response_model=GrantInfo, tags=["unmask"])
def end_unmask(request: Request, grant_id: GrantId, caller: AnyUser) -> GrantInfo:
    """End an unmasked view now (its user, its approver or an admin). Audited."""
    gateway = get_gateway(request)
    _grant(gateway, grant_id)
    return _grant_info(gateway.grants.end_unmask(caller.principal, grant_id))


@router.get(
    "/cameras/{camera_id}/unmasked/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
    tags=["unmask"],
)
def unmasked_snapshot(request: Request, camera_id: CameraId, caller: Investigator) -> Response:
    """The original picture, only with an active unmask grant for this camera. Audited."""
    gateway = get_gateway(request)
    runtime = gateway.camera(camera_id)
    grant = _active_grant(gateway, caller.principal, camera_id)
    _audit_unmask_view(gateway, caller.principal, camera_id, grant, "snapshot")
    jpeg = encode_jpeg(_latest_or_blank(runtime, masked=False))
    return Response(jpeg, media_type="image/jpeg", headers=_JPEG_HEADERS)


@router.get(
    "/cameras/{camera_id}/unmasked/stream.mjpeg",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPE: {}}}},
    tags=["unmask"],
)
def unmasked_stream(
    request: Request, camera_id: CameraId, caller: Investigator, max_frames: MaxFrames = None
) -> StreamingResponse:
    """The original live picture while the grant lasts: the stream ends when it expires or
    is ended. Audited when it opens."""
    gateway = get_gateway(request)
    runtime = gateway.camera(camera_id)
    principal = caller.principal
    grant = _active_grant(gateway, principal, camera_id)
    check_room(runtime.original, f"the unmasked view of camera {camera_id}")
    _audit_unmask_view(gateway, principal, camera_id, grant, "stream")

    def allowed() -> bool:
        return gateway.grants.active_grant(principal, camera_id) is not None

    def closed(frames: int, seconds: float) -> None:
        if gateway.stopping:
            return  # the database may be closed already; the grant's own end is audited
        gateway.audit.append(
            principal.label,
            "unmask.view.end",
            f"camera:{camera_id}",
            {"grant": grant.id, "frames": frames, "seconds": round(seconds, 3)},
        )

    parts = mjpeg_parts(
        runtime.original,
        stopped=lambda: gateway.stopping,
        allowed=allowed,
        max_frames=max_frames,
        on_close=closed,
    )
    return MjpegResponse(parts, headers=_JPEG_HEADERS)


# -- recordings -------------------------------------------------------------------------------


@router.get("/recordings", response_model=list[RecordingInfo], tags=["recordings"])
def list_recordings(
    request: Request,
    caller: Viewer,
    camera: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="Segments starting at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Segments starting before.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="The newest this many.")] = 2000,
) -> list[RecordingInfo]:
    """Finished masked segments in a time window, oldest first (the newest ``limit``)."""
    found = get_gateway(request).recordings(camera or None)
    if since is not None:
        found = [s for s in found if s.start >= _aware(since)]
    if until is not None:
        found = [s for s in found if s.start < _aware(until)]
    return [
        RecordingInfo(
            camera_id=s.camera_id, name=s.path.name, start=s.start, sequence=s.sequence, size=s.size
        )
        for s in found[-limit:]
    ]


def _aware(moment: datetime) -> datetime:
    """A time without a zone is taken as UTC (the recordings' zone)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@router.get(
    "/recordings/{camera_id}/{name}",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}}},
    tags=["recordings"],
)
def download_recording(
    request: Request, camera_id: CameraId, name: SegmentName, caller: Viewer
) -> FileResponse:
    """One masked segment (MP4)."""
    path = get_gateway(request).recording_path(camera_id, name)
    return FileResponse(path, media_type="video/mp4", filename=name)


@router.get("/originals", response_model=list[RecordingInfo], tags=["recordings"])
def list_originals(
    request: Request,
    caller: Investigator,
    camera: Annotated[str | None, Query(max_length=64)] = None,
) -> list[RecordingInfo]:
    """Encrypted original segments (listing reveals no picture)."""
    listed: list[RecordingInfo] = []
    for s in get_gateway(request).originals(camera or None):
        try:
            size = s.path.stat().st_size
        except FileNotFoundError:  # pruned meanwhile
            continue
        listed.append(
            RecordingInfo(
                camera_id=s.segment.camera_id,
                name=s.path.name,
                start=s.segment.start,
                sequence=s.segment.sequence,
                size=size,
            )
        )
    return listed


@router.post(
    "/originals/{camera_id}/{name}/decrypt",
    response_class=Response,
    responses={200: {"content": {"video/mp4": {}}}},
    tags=["recordings"],
)
def decrypt_original(
    request: Request,
    camera_id: CameraId,
    name: SegmentName,
    caller: Exporter,
    body: DecryptRequest,
) -> Response:
    """Decrypt one original segment (MP4), with a reason. Audited before it is sent."""
    data = get_gateway(request).decrypt_original(caller.principal, camera_id, name, body.reason)
    stem = name.removesuffix(".vseg")
    return Response(
        data,
        media_type="video/mp4",
        headers={
            "Content-Disposition": f'attachment; filename="{stem}.mp4"',
            "Cache-Control": "no-store",
        },
    )


# -- audit ------------------------------------------------------------------------------------


@router.get("/audit", response_model=list[AuditEntryInfo], tags=["audit"])
def list_audit(
    request: Request,
    caller: Admin,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
) -> list[AuditEntryInfo]:
    """Audit entries, newest first."""
    entries = get_gateway(request).audit.entries(limit=limit, action=action, actor=actor)
    return [_entry_info(e) for e in entries]


@router.get("/audit/verify", response_model=AuditVerifyInfo, tags=["audit"])
def verify_audit(request: Request, caller: Admin) -> AuditVerifyInfo:
    """Recompute the hash chain; names the first entry changed, deleted or reordered."""
    result = get_gateway(request).audit.verify_chain()
    return AuditVerifyInfo(
        ok=result.ok,
        entries=result.entries,
        first_bad_seq=result.first_bad_seq,
        problem=result.problem,
        head_hash=result.head_hash,
        keyed=result.keyed,
    )


# -- users and tokens -------------------------------------------------------------------------


@router.get("/users", response_model=list[UserInfo], tags=["users"])
def list_users(request: Request, caller: Admin) -> list[UserInfo]:
    return [_user_info(u) for u in get_gateway(request).users.list_users()]


@router.post("/users", response_model=UserInfo, status_code=201, tags=["users"])
def create_user(request: Request, caller: Admin, body: UserCreate) -> UserInfo:
    users = get_gateway(request).users
    return _user_info(users.create(caller.principal, body.username, body.password, body.role))


@router.patch("/users/{username}", response_model=UserInfo, tags=["users"])
def update_user(request: Request, username: Username, caller: Admin, body: UserUpdate) -> UserInfo:
    """Change a user's role, disable or enable them, or set their password."""
    users = get_gateway(request).users
    if users.get(username) is None:
        raise UserNotFoundError(f"there is no user {username!r}", hint="list the users")
    if body.password is not None:
        users.set_password(caller.principal, username, body.password)
    if body.role is not None:
        users.set_role(caller.principal, username, body.role)
    if body.disabled is not None:
        users.set_disabled(caller.principal, username, body.disabled)
    user = users.get(username)
    assert user is not None
    return _user_info(user)


@router.delete("/users/{username}", response_model=Ok, tags=["users"])
def delete_user(request: Request, username: Username, caller: Admin) -> Ok:
    get_gateway(request).users.delete(caller.principal, username)
    return Ok()


@router.get("/tokens", response_model=list[TokenInfo], tags=["users"])
def list_tokens(request: Request, caller: AnyUser) -> list[TokenInfo]:
    """Your own API tokens."""
    return [_token_info(t) for t in get_gateway(request).tokens.list_tokens(caller.principal)]


@router.post("/tokens", response_model=NewToken, status_code=201, tags=["users"])
def create_token(
    request: Request, caller: AnyUser, body: Annotated[TokenCreate, Body()]
) -> NewToken:
    """Create an API token for yourself; the token is shown once."""
    expires = None if body.expires_days is None else timedelta(days=body.expires_days)
    new = get_gateway(request).tokens.create(
        caller.principal, body.name, scopes=body.scopes, expires_in=expires
    )
    return NewToken(token=new.token, info=_token_info(new.info))


@router.delete("/tokens/{token_id}", response_model=TokenInfo, tags=["users"])
def revoke_token(request: Request, token_id: TokenId, caller: AnyUser) -> TokenInfo:
    """Revoke a token (your own; an admin may revoke anyone's)."""
    return _token_info(get_gateway(request).tokens.revoke(caller.principal, token_id))
