"""Redaction before export, from the gateway's encrypted originals (all under /api/redact).

Every route needs ``unmask`` and ``export`` (the investigator role); a refusal is 403 and
written to the audit log. The job bookkeeping is :class:`veil.server.redact_jobs.RedactJobs`.

    POST   /api/redact/jobs                         {camera_id, name, reason} -> 202, analysing
    GET    /api/redact/jobs                         your jobs, newest first
    GET    /api/redact/jobs/{id}                    state and progress (frames done / total)
    DELETE /api/redact/jobs/{id}                    stop it, remove its files (plaintext too)
    GET    /api/redact/jobs/{id}/tracks             id, kind, first and last frame, thumbnail
    GET    /api/redact/jobs/{id}/tracks/{t}/thumbnail.jpg
    GET    /api/redact/jobs/{id}/preview.jpg?frame=..&mode=..&tracks=3,7&style=..
    POST   /api/redact/jobs/{id}/preview.jpg        {frame, labels, ...a selection}
    POST   /api/redact/jobs/{id}/selection          a selection -> its tracks after merges and
                                                    splits, its regions and trimmed frames
    POST   /api/redact/jobs/{id}/exports            {...a selection, reason}

A selection (:class:`SelectionRequest`) is ``veil redact``'s selection file as JSON: mode,
tracks (ids, or split parts such as "4b"), merges ([[3, 9]], or with parts [[5, "4b"]]),
splits ([{track, frame}]), manual regions with keyframes (boxes or polygons, interpolated
between keyframes, masked in both modes), a trim (start_frame / end_frame, inclusive), style,
colour and margin. A bad one is refused with 422 naming the problem (an unknown track, a split
outside its track...).
    GET    /api/redact/jobs/{id}/exports/{n}/video.mp4 | manifest.json | manifest.html
    GET    /api/redact/jobs/{id}/exports/{n}/verify

Pictures (thumbnails, previews) show unmasked people: they are sent with
``Cache-Control: no-store`` so no browser or proxy keeps them.

Wiring (done by :func:`veil.server.app.build_app`)::

    app.include_router(redact_routes.router)
    app.state.redact_jobs = RedactJobs(gateway, settings=...)   # optional: made on first use
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from veil.core.style import StyleKind
from veil.redact.selection import Mode, Selection, parse_selection
from veil.server.auth import Exporter
from veil.server.redact_jobs import (
    ExportRecord,
    JobState,
    JobStatus,
    RedactJob,
    RedactJobs,
)

JobId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{12}$", description="A redaction job's id (12 hex digits).")
]
TrackId = Annotated[int, Path(ge=0, le=2**62, description="A track id of the job's analysis.")]
ExportNumber = Annotated[int, Path(ge=1, le=100_000, description="An export's number.")]
_NO_STORE = {"Cache-Control": "no-store"}
_jobs_lock = threading.Lock()


def jobs_of(app: FastAPI) -> RedactJobs:
    """The application's :class:`RedactJobs` (made for its gateway on first use)."""
    with _jobs_lock:
        jobs = getattr(app.state, "redact_jobs", None)
        if not isinstance(jobs, RedactJobs):
            jobs = RedactJobs(app.state.gateway)
            app.state.redact_jobs = jobs
        return jobs


def _jobs(request: Request) -> RedactJobs:
    return jobs_of(request.app)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Stop a running analysis and join its thread when the server shuts down."""
    try:
        yield
    finally:
        jobs = getattr(app.state, "redact_jobs", None)
        if isinstance(jobs, RedactJobs):
            jobs.close()


router = APIRouter(prefix="/api/redact", tags=["redaction"], lifespan=_lifespan)


# -- models -----------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobCreate(_Model):
    camera_id: str = Field(min_length=1, max_length=64, description="The original's camera.")
    name: str = Field(
        min_length=1, max_length=200, description="The original segment (GET /api/originals)."
    )
    reason: str = Field(
        min_length=1, max_length=500, description="Why: a case or request number, say. Audited."
    )


class ExportInfo(_Model):
    number: int
    output: str = Field(description="The exported MP4's file name.")
    frames: int
    output_sha256: str
    fingerprint: str = Field(description="The signing key's fingerprint.")
    mode: Mode
    tracks: list[str] = Field(description="The tracks masked (or kept, in mask-all-except).")
    reason: str
    exported_by: str
    exported_at: str
    audit_seq: int | None
    regions: list[str] = Field(description="The manual regions masked, by name.")
    first_frame: int | None = Field(description="The first frame exported (the trim).")
    last_frame: int | None
    video_url: str
    manifest_url: str
    manifest_html_url: str
    verify_url: str


class JobInfo(_Model):
    id: str
    camera_id: str
    segment: str
    segment_start: str
    owner: str
    reason: str
    created_at: str
    state: JobState
    frames_done: int
    frames_total: int | None = Field(description="None while the container does not say.")
    error: str | None
    hint: str | None
    width: int | None
    height: int | None
    fps: float | None
    tracks: int | None
    exports: list[ExportInfo]


class TrackInfo(_Model):
    id: int
    kind: str = Field(description="person, face or motion (another moving object).")
    first_frame: int
    last_frame: int
    detected_frames: int = Field(description="Frames it was seen in (the rest are predicted).")
    confidence: float
    best_frame: int
    parent: int | None = Field(description="For a track only predicted: the track it came from.")
    thumbnail_url: str | None


class SplitRequest(_Model):
    track: int = Field(ge=0, le=2**62, description="The track cut in two (a merged one too).")
    frame: int = Field(
        ge=1, le=10_000_000, description="The first frame of the second part ('4b')."
    )


class KeyframeRequest(_Model):
    frame: int = Field(ge=0, le=10_000_000, description="0-based frame index.")
    box: tuple[float, float, float, float] | None = Field(
        default=None, description="x0, y0, x1, y1 (pixels, or 0..1 with units 'normalised')."
    )
    polygon: list[tuple[float, float]] | None = Field(
        default=None, min_length=3, max_length=64, description="The points (x, y)."
    )


class RegionRequest(_Model):
    name: str = Field(default="", max_length=100, description="Default: region-<n>.")
    units: Literal["pixels", "normalised"] = "pixels"
    keyframes: list[KeyframeRequest] = Field(
        min_length=1,
        max_length=10_000,
        description="Its shape at some frames; present from the first keyframe to the last, "
        "moving linearly between them.",
    )


class SelectionRequest(_Model):
    """What to redact (``veil redact``'s selection file, as JSON)."""

    mode: Mode = Field(
        default=Mode.MASK_SELECTED,
        description="mask-selected: mask the listed tracks; mask-all-except: mask everything "
        "but the listed tracks (persons of interest).",
    )
    tracks: list[int | str] = Field(default_factory=list, max_length=10_000)
    style: StyleKind = StyleKind.FILL
    color: str = Field(default="black", max_length=32)
    margin: str = Field(default="medium", max_length=16, description="small, medium, large...")
    merges: list[Annotated[list[int | str], Field(min_length=2, max_length=1000)]] = Field(
        default_factory=list,
        max_length=1000,
        description="Groups of tracks (ids, or split parts such as '4b') that are one object: "
        "each acts as one track, named by its first member (smallest id or ref).",
    )
    splits: list[SplitRequest] = Field(
        default_factory=list,
        max_length=1000,
        description="Tracks that are two objects: parts named <id>a, <id>b... in frame order.",
    )
    regions: list[RegionRequest] = Field(
        default_factory=list, max_length=200, description="Manual masks (in both modes)."
    )
    start_frame: int | None = Field(default=None, ge=0, description="Trim: the first frame.")
    end_frame: int | None = Field(default=None, ge=0, description="Trim: the last frame.")

    @model_validator(mode="after")
    def _trim_in_order(self) -> SelectionRequest:
        if (
            self.start_frame is not None
            and self.end_frame is not None
            and self.end_frame < self.start_frame
        ):
            raise ValueError(
                f"trim: the end frame {self.end_frame} is before the start frame {self.start_frame}"
            )
        return self


class PreviewRequest(SelectionRequest):
    frame: int = Field(default=0, ge=0, le=10_000_000, description="0-based frame index.")
    labels: bool = Field(default=False, description="Outline every track with its ref.")


class ExportRequest(SelectionRequest):
    reason: str = Field(
        min_length=1, max_length=500, description="Why it is exported; in the manifest, audited."
    )


class ResolvedTrackInfo(_Model):
    ref: str = Field(description="The ref a selection uses: '3', or a split part '4b'.")
    kind: str
    first_frame: int
    last_frame: int
    frames: int = Field(description="Frames it has a box in.")
    sources: list[int] = Field(description="The analysis tracks it is made of (merges).")
    chosen: bool = Field(description="Masked (mask-selected) or kept (mask-all-except).")
    thumbnail_url: str | None = Field(description="The thumbnail of its first source.")


class ResolvedRegionInfo(_Model):
    name: str
    first_frame: int
    last_frame: int
    keyframes: list[int]


class SelectionInfo(_Model):
    tracks: list[ResolvedTrackInfo]
    regions: list[ResolvedRegionInfo]
    first_frame: int = Field(description="The first frame exported (after the trim).")
    last_frame: int


class VerifyInfo(_Model):
    ok: bool
    message: str
    fingerprint: str | None


class Ok(_Model):
    ok: bool = True


# -- helpers ----------------------------------------------------------------------------------


def _selection(body: SelectionRequest, reason: str = "") -> Selection:
    data: dict[str, Any] = {
        "mode": body.mode.value,
        "tracks": body.tracks,
        "style": body.style.value,
        "color": body.color,
        "margin": body.margin,
        "reason": reason,
    }
    if body.merges:
        data["merges"] = body.merges
    if body.splits:
        data["splits"] = [s.model_dump() for s in body.splits]
    if body.regions:
        data["regions"] = [r.model_dump(exclude_none=True) for r in body.regions]
    if body.start_frame is not None or body.end_frame is not None:
        data["trim"] = {"start_frame": body.start_frame, "end_frame": body.end_frame}
    # A SelectionError (422) names each bad field.
    return parse_selection(data, "the selection")


def _base(job_id: str) -> str:
    return f"/api/redact/jobs/{job_id}"


def _export_info(job_id: str, e: ExportRecord) -> ExportInfo:
    base = f"{_base(job_id)}/exports/{e.number}"
    return ExportInfo(
        number=e.number,
        output=e.output,
        frames=e.frames,
        output_sha256=e.output_sha256,
        fingerprint=e.fingerprint,
        mode=Mode(e.mode),
        tracks=list(e.tracks),
        reason=e.reason,
        exported_by=e.exported_by,
        exported_at=e.exported_at,
        audit_seq=e.audit_seq,
        regions=list(e.regions),
        first_frame=e.first_frame,
        last_frame=e.last_frame,
        video_url=f"{base}/video.mp4",
        manifest_url=f"{base}/manifest.json",
        manifest_html_url=f"{base}/manifest.html",
        verify_url=f"{base}/verify",
    )


def _job_info(s: JobStatus) -> JobInfo:
    return JobInfo(
        id=s.id,
        camera_id=s.camera_id,
        segment=s.segment,
        segment_start=s.segment_start,
        owner=s.owner,
        reason=s.reason,
        created_at=s.created_at,
        state=s.state,
        frames_done=s.frames_done,
        frames_total=s.frames_total,
        error=s.error,
        hint=s.hint,
        width=s.width,
        height=s.height,
        fps=s.fps,
        tracks=s.tracks,
        exports=[_export_info(s.id, e) for e in s.exports],
    )


def _tracks(job: RedactJob) -> list[TrackInfo]:
    analysis = job.analysis()
    return [
        TrackInfo(
            id=t.track_id,
            kind=t.kind.value,
            first_frame=t.first_frame,
            last_frame=t.last_frame,
            detected_frames=t.detected_frames,
            confidence=round(float(t.confidence), 3),
            best_frame=t.best_frame,
            parent=t.parent,
            thumbnail_url=(
                f"{_base(job.id)}/tracks/{t.track_id}/thumbnail.jpg"
                if t.track_id in analysis.thumbnails
                else None
            ),
        )
        for t in analysis.tracks
    ]


# -- routes -----------------------------------------------------------------------------------


@router.post("/jobs", response_model=JobInfo, status_code=202)
def create_job(request: Request, caller: Exporter, body: JobCreate) -> JobInfo:
    """Decrypt an original (audited, with the reason) into a private job folder and start
    analysing it in the background. The gateway analyses one original at a time (409 while
    another runs) and keeps a limited number of jobs (409 until older ones are deleted)."""
    job = _jobs(request).create(caller.principal, body.camera_id, body.name, body.reason)
    return _job_info(job.status())


@router.get("/jobs", response_model=list[JobInfo])
def list_jobs(request: Request, caller: Exporter) -> list[JobInfo]:
    """Your redaction jobs, newest first (an admin sees everyone's)."""
    return [_job_info(s) for s in _jobs(request).list_jobs(caller.principal)]


@router.get("/jobs/{job_id}", response_model=JobInfo)
def job_status(request: Request, job_id: JobId, caller: Exporter) -> JobInfo:
    """A job's state: analysing (frames done of the total), ready, or failed (and why)."""
    return _job_info(_jobs(request).get(caller.principal, job_id).status())


@router.delete("/jobs/{job_id}", response_model=Ok)
def delete_job(request: Request, job_id: JobId, caller: Exporter) -> Ok:
    """Stop the job's analysis and delete its files, the decrypted original included.
    Audited."""
    _jobs(request).delete(caller.principal, job_id)
    return Ok()


@router.get("/jobs/{job_id}/tracks", response_model=list[TrackInfo])
def list_tracks(request: Request, job_id: JobId, caller: Exporter) -> list[TrackInfo]:
    """Every track the analysis found (409 while it runs)."""
    return _tracks(_jobs(request).get(caller.principal, job_id))


@router.get(
    "/jobs/{job_id}/tracks/{track_id}/thumbnail.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def track_thumbnail(
    request: Request, job_id: JobId, track_id: TrackId, caller: Exporter
) -> Response:
    """The track's best view (unmasked, so never cached)."""
    jpeg = _jobs(request).thumbnail(caller.principal, job_id, track_id)
    return Response(jpeg, media_type="image/jpeg", headers=_NO_STORE)


@router.get(
    "/jobs/{job_id}/preview.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def preview(
    request: Request,
    job_id: JobId,
    caller: Exporter,
    frame: Annotated[int, Query(ge=0, le=10_000_000, description="0-based frame index.")] = 0,
    mode: Mode = Mode.MASK_SELECTED,
    tracks: Annotated[
        str, Query(max_length=20_000, description="Track refs, comma-separated: 3,7,12b")
    ] = "",
    style: StyleKind = StyleKind.FILL,
    color: Annotated[str, Query(max_length=32)] = "black",
    margin: Annotated[str, Query(max_length=16)] = "medium",
    labels: Annotated[
        bool, Query(description="Outline every track with its id (for choosing).")
    ] = False,
) -> Response:
    """One frame with the redaction applied, as JPEG (never cached)."""
    refs: list[int | str] = [t.strip() for t in tracks.split(",") if t.strip()]
    body = SelectionRequest(mode=mode, tracks=refs, style=style, color=color, margin=margin)
    jpeg = _jobs(request).preview(caller.principal, job_id, _selection(body), frame, labels=labels)
    return Response(jpeg, media_type="image/jpeg", headers=_NO_STORE)


@router.post(
    "/jobs/{job_id}/preview.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def preview_selection(
    request: Request, job_id: JobId, caller: Exporter, body: PreviewRequest
) -> Response:
    """One frame with a whole selection applied (merges, splits, regions), as JPEG (never
    cached)."""
    jobs = _jobs(request)
    jpeg = jobs.preview(caller.principal, job_id, _selection(body), body.frame, labels=body.labels)
    return Response(jpeg, media_type="image/jpeg", headers=_NO_STORE)


@router.post("/jobs/{job_id}/selection", response_model=SelectionInfo)
def check_selection(
    request: Request, job_id: JobId, caller: Exporter, body: SelectionRequest
) -> SelectionInfo:
    """Check a selection against the job's analysis: its tracks after merges and splits
    (with the refs to choose them by), its regions and the frames a trim keeps; 422 naming
    what is wrong."""
    jobs = _jobs(request)
    job = jobs.get(caller.principal, job_id)
    analysis, resolved = jobs.check(caller.principal, job_id, _selection(body))
    tracks = [
        ResolvedTrackInfo(
            ref=t.ref,
            kind=t.track.kind.value,
            first_frame=t.track.first_frame,
            last_frame=t.track.last_frame,
            frames=len(t.track),
            sources=list(t.sources),
            chosen=t.ref in resolved.chosen,
            thumbnail_url=next(
                (
                    f"{_base(job.id)}/tracks/{s}/thumbnail.jpg"
                    for s in t.sources
                    if s in analysis.thumbnails
                ),
                None,
            ),
        )
        for t in resolved.tracks
    ]
    regions = [
        ResolvedRegionInfo(
            name=r.name,
            first_frame=r.first_frame,
            last_frame=r.last_frame,
            keyframes=[f for f, _ in r.keyframes],
        )
        for r in resolved.regions
    ]
    return SelectionInfo(
        tracks=tracks,
        regions=regions,
        first_frame=resolved.first_frame,
        last_frame=resolved.last_frame,
    )


@router.post("/jobs/{job_id}/exports", response_model=ExportInfo, status_code=201)
def export(request: Request, job_id: JobId, caller: Exporter, body: ExportRequest) -> ExportInfo:
    """Export the job's video with the redaction burned in: an MP4 and its Ed25519-signed
    manifest (JSON and HTML), recorded in the audit log with you as the operator."""
    selection = _selection(body, body.reason)
    record = _jobs(request).export(caller.principal, job_id, selection)
    return _export_info(job_id, record)


@router.get("/jobs/{job_id}/exports/{number}/verify", response_model=VerifyInfo)
def verify(request: Request, job_id: JobId, number: ExportNumber, caller: Exporter) -> VerifyInfo:
    """Check the exported MP4 against its signed manifest (SHA-256 and signature)."""
    result = _jobs(request).verify(caller.principal, job_id, number)
    return VerifyInfo(ok=result.ok, message=result.message, fingerprint=result.fingerprint)


_MEDIA = {
    "video.mp4": ("video", "video/mp4"),
    "manifest.json": ("manifest.json", "application/json"),
    "manifest.html": ("manifest.html", "text/html"),
}


@router.get(
    "/jobs/{job_id}/exports/{number}/{file}",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}, "application/json": {}, "text/html": {}}}},
)
def export_file(
    request: Request,
    job_id: JobId,
    number: ExportNumber,
    file: Annotated[
        Literal["video.mp4", "manifest.json", "manifest.html"], Path(description="Which file.")
    ],
    caller: Exporter,
) -> FileResponse:
    """Download an export: the MP4, or its manifest (JSON, or the readable HTML page)."""
    kind, media_type = _MEDIA[file]
    path, _record = _jobs(request).export_file(caller.principal, job_id, number, kind)
    # An attachment: the HTML manifest has its own inline style, and is never shown inside
    # the gateway's page.
    return FileResponse(path, media_type=media_type, filename=path.name, headers=_NO_STORE)
