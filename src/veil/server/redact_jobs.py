"""Redaction jobs in the gateway: an encrypted original, decrypted for one investigator,
analysed once in the background, then previewed and exported with a redaction as often as
needed (the HTTP routes are in :mod:`veil.server.redact_routes`).

A job is made by :meth:`RedactJobs.create` for a user holding ``unmask`` and ``export``
(:meth:`Gateway.decrypt_original` checks both and audits the decryption with its reason). Its
files live in a private folder under the gateway's data directory::

    data_dir/redact/                       0700
      <job id>/                            0700, one per job
        job.json                           0600  who, when, which segment, why, state, exports
        original.mp4                       0600  the decrypted segment: the only plaintext
        original.mp4.veil-analysis.json    0600  the tracks and their thumbnails
        exports/<segment>-redacted-NN.mp4  0600  with .manifest.json and .manifest.html

The analysis is saved beside the plaintext, so choosing other tracks and exporting again never
detects again; jobs are read back from their folders when the gateway starts (a job whose
analysis was cut short by a stop is shown as failed, to be deleted and made again). Deleting a
job (:meth:`RedactJobs.delete`) removes its folder, the plaintext included.

Limits, each trading throughput for a gateway that keeps masking its live cameras:

- one analysis at a time in the whole gateway (an analysis keeps both detectors busy on every
  frame); while one runs, a new job is refused with 409, naming the running job and how far it
  is, *before* anything is decrypted;
- at most :data:`MAX_JOBS` jobs kept: each holds a plaintext original on disk, so finished
  ones should be deleted, and a new one is refused (409) until some are;
- an export runs in the request's worker thread (a segment is short: at twice real time a
  60 s segment takes 30 s), one at a time per job.

A job is seen only by the user who made it; an admin may list and delete every job (to remove
plaintext left behind), not use it. Exports are written to the gateway's audit log by
:func:`~veil.redact.export.export_redaction`, signed with the gateway's own Ed25519 key
(``data_dir/redaction-signing-key.pem``, 0600, made on first use).

Example::

    jobs = RedactJobs(gateway)
    job = jobs.create(principal, "cam", "cam_20261125T101500000000Z_00000001.vseg", "case 17")
    ...                                   # poll jobs.get(principal, job.id).status()
    record = jobs.export(principal, job.id, parse_selection({"mode": "mask-all-except",
                                                             "tracks": [3], "reason": "case 17"}))
    jobs.close()                          # stops a running analysis, joins its thread
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from veil.core.errors import ConfigError, VeilError
from veil.media.source import open_source
from veil.redact.analysis import (
    Analysis,
    AnalysisError,
    AnalysisSettings,
    analyse_video,
    default_analysis_path,
    write_atomic,
)
from veil.redact.export import export_redaction, preview_frame
from veil.redact.manifest import VerifyResult, verify_export
from veil.redact.selection import ResolvedSelection, Selection, SelectionError, resolve
from veil.server.gateway import Gateway
from veil.vault.audit import AuditAction
from veil.vault.users import Principal, Scope

log = logging.getLogger(__name__)

MAX_JOBS = 20
"""Jobs kept at once (each holds a decrypted original on disk until it is deleted)."""
JOBS_FOLDER = "redact"
SIGNING_KEY_NAME = "redaction-signing-key.pem"
VIDEO_NAME = "original.mp4"
JOB_FILE = "job.json"
EXPORTS_FOLDER = "exports"
_JOB_ID = re.compile(r"^[0-9a-f]{12}$")
_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600


# --------------------------------------------------------------------------- errors


class RedactJobError(VeilError):
    """A redaction job request that cannot be done as asked."""


class JobNotFoundError(RedactJobError, LookupError):
    """No such job (or not one of the caller's)."""

    http_status = 404


class JobBusyError(RedactJobError):
    """The gateway is analysing already, holds too many jobs, or the job is not ready."""

    http_status = 409


class JobInputError(ConfigError):
    """A request names things the job does not have, or misses its reason (422)."""

    http_status = 422


class _StopRequestedError(Exception):
    """Raised from the progress callback to end an analysis (job deleted, gateway stopping)."""


# --------------------------------------------------------------------------- records


class JobState(StrEnum):
    ANALYSING = "analysing"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ExportRecord:
    """One export of a job: its files (names inside the job's exports folder) and facts."""

    number: int
    output: str
    manifest_json: str
    manifest_html: str
    frames: int
    output_sha256: str
    fingerprint: str
    mode: str
    tracks: tuple[str, ...]
    reason: str
    exported_by: str
    exported_at: str
    audit_seq: int | None
    regions: tuple[str, ...] = ()
    """The names of the manual regions masked."""
    first_frame: int | None = None
    """The first frame exported (the trim's start; None in records made before trims)."""
    last_frame: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["tracks"] = tuple(str(t) for t in known.get("tracks", ()))
        known["regions"] = tuple(str(r) for r in known.get("regions", ()))
        return cls(**known)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A snapshot of a job, for the API."""

    id: str
    camera_id: str
    segment: str
    segment_start: str
    owner: str
    reason: str
    created_at: str
    state: JobState
    frames_done: int
    frames_total: int | None
    """The container's frame count (None when it does not say); the analysis' once done."""
    error: str | None
    hint: str | None
    width: int | None
    height: int | None
    fps: float | None
    tracks: int | None
    exports: tuple[ExportRecord, ...]


class RedactJob:
    """One job: its folder, its state (guarded by a lock) and its analysis once made."""

    def __init__(
        self,
        folder: Path,
        *,
        camera_id: str,
        segment: str,
        segment_start: str,
        owner: str,
        reason: str,
        created_at: str,
    ) -> None:
        self.folder = folder
        self.id = folder.name
        self.camera_id = camera_id
        self.segment = segment
        self.segment_start = segment_start
        self.owner = owner
        self.reason = reason
        self.created_at = created_at
        self.state = JobState.ANALYSING
        self.frames_done = 0
        self.frames_total: int | None = None
        self.error: str | None = None
        self.hint: str | None = None
        self.exports: list[ExportRecord] = []
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None
        self.export_lock = threading.Lock()
        """Held by an export and by deletion: one export at a time, never a half-deleted job."""
        self._lock = threading.Lock()
        self._analysis: Analysis | None = None

    @property
    def video(self) -> Path:
        return self.folder / VIDEO_NAME

    @property
    def analysis_path(self) -> Path:
        return default_analysis_path(self.video)

    @property
    def exports_dir(self) -> Path:
        return self.folder / EXPORTS_FOLDER

    @property
    def stem(self) -> str:
        """The segment's name without its extension (names the exported files)."""
        return self.segment.removesuffix(".vseg")

    def progressed(self, done: int) -> None:
        with self._lock:
            self.frames_done = done

    def finished(self, analysis: Analysis) -> None:
        with self._lock:
            self._analysis = analysis
            self.frames_done = analysis.video.frame_count
            self.frames_total = analysis.video.frame_count
            self.state = JobState.READY

    def failed(self, message: str, hint: str | None) -> None:
        with self._lock:
            self.state = JobState.FAILED
            self.error = message
            self.hint = hint

    def status(self) -> JobStatus:
        if self.state is JobState.READY and self._analysis is None:
            # Read back after a restart: the page needs the video's size, rate and tracks.
            with contextlib.suppress(JobBusyError):
                self.analysis()
        with self._lock:
            a = self._analysis
            return JobStatus(
                id=self.id,
                camera_id=self.camera_id,
                segment=self.segment,
                segment_start=self.segment_start,
                owner=self.owner,
                reason=self.reason,
                created_at=self.created_at,
                state=self.state,
                frames_done=self.frames_done,
                frames_total=self.frames_total,
                error=self.error,
                hint=self.hint,
                width=a.video.width if a else None,
                height=a.video.height if a else None,
                fps=a.video.fps_value if a else None,
                tracks=len(a.tracks) if a else None,
                exports=tuple(self.exports),
            )

    def analysis(self) -> Analysis:
        """The saved analysis (read once, then kept); JobBusyError while there is none."""
        with self._lock:
            state, done, total = self.state, self.frames_done, self.frames_total
            if self._analysis is not None:
                return self._analysis
        if state is JobState.ANALYSING:
            of = f" of {total}" if total else ""
            raise JobBusyError(
                f"redaction job {self.id} is still being analysed ({done}{of} frames done)",
                hint=f"poll GET /api/redact/jobs/{self.id} until its state is 'ready'",
            )
        if state is JobState.FAILED:
            raise JobBusyError(
                f"redaction job {self.id} has no analysis: {self.error}",
                hint="delete the job and create it again",
            )
        try:
            loaded = Analysis.load(self.analysis_path)
        except AnalysisError as error:
            self.failed(error.message, "delete the job and create it again")
            raise JobBusyError(
                f"redaction job {self.id}: its analysis cannot be read ({error.message})",
                hint="delete the job and create it again",
            ) from error
        with self._lock:
            self._analysis = loaded
        return loaded

    def add_export(self, record: ExportRecord) -> None:
        with self._lock:
            self.exports.append(record)

    def export_record(self, number: int) -> ExportRecord:
        with self._lock:
            for record in self.exports:
                if record.number == number:
                    return record
            numbers = [r.number for r in self.exports]
        raise JobNotFoundError(
            f"redaction job {self.id} has no export {number}",
            hint=f"its exports: {', '.join(map(str, numbers)) or 'none yet'}",
        )

    # -- job.json -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "camera_id": self.camera_id,
                "segment": self.segment,
                "segment_start": self.segment_start,
                "owner": self.owner,
                "reason": self.reason,
                "created_at": self.created_at,
                "state": self.state.value,
                "frames_done": self.frames_done,
                "frames_total": self.frames_total,
                "error": self.error,
                "hint": self.hint,
                "exports": [asdict(e) for e in self.exports],
            }

    def save(self) -> None:
        data = json.dumps(self.to_dict(), indent=1).encode()
        write_atomic(self.folder / JOB_FILE, data, mode=_PRIVATE_FILE)

    @classmethod
    def load(cls, folder: Path) -> RedactJob:
        data = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
        job = cls(
            folder,
            camera_id=str(data["camera_id"]),
            segment=str(data["segment"]),
            segment_start=str(data["segment_start"]),
            owner=str(data["owner"]),
            reason=str(data["reason"]),
            created_at=str(data["created_at"]),
        )
        job.frames_done = int(data.get("frames_done", 0))
        total = data.get("frames_total")
        job.frames_total = int(total) if total is not None else None
        job.exports = [ExportRecord.from_dict(e) for e in data.get("exports", [])]
        state = JobState(data.get("state", JobState.FAILED.value))
        if state is JobState.ANALYSING:
            # No analysis survives a stop: it ran in a thread of the gateway that stopped.
            job.failed(
                "the analysis was cut short when the gateway stopped",
                "delete this job and create it again",
            )
        elif state is JobState.FAILED:
            job.failed(str(data.get("error") or "the analysis failed"), data.get("hint"))
        elif not job.analysis_path.is_file():
            job.failed("its analysis file is missing", "delete this job and create it again")
        else:
            job.state = JobState.READY
        return job


# --------------------------------------------------------------------------- the jobs


SettingsFor = Callable[[str], AnalysisSettings]
"""The analysis settings for an original of a camera (by its id)."""


class RedactJobs:
    """Every redaction job of a gateway (see the module docstring).

    ``settings``: the analysis settings for every job; by default each camera's own
    (:meth:`AnalysisSettings.from_config` of its masking: model folder, person input size,
    tiles, sensitivity), so an export masks at least what live masking would find.
    """

    def __init__(self, gateway: Gateway, *, settings: AnalysisSettings | None = None) -> None:
        self._gateway = gateway
        self._settings = settings
        self.root = gateway.data_dir / JOBS_FOLDER
        _private_dir(self.root)
        self.signing_key_path = gateway.data_dir / SIGNING_KEY_NAME
        self._lock = threading.Lock()
        self._jobs: dict[str, RedactJob] = {}
        self._running: RedactJob | None = None
        """The job being analysed, or being decrypted for it (the one analysis slot)."""
        self._stop = threading.Event()
        for folder in sorted(self.root.iterdir()):
            if not (_JOB_ID.match(folder.name) and (folder / JOB_FILE).is_file()):
                continue
            try:
                self._jobs[folder.name] = RedactJob.load(folder)
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.warning("redaction job %s cannot be read (%s); left as it is", folder, error)

    # -- access -------------------------------------------------------------------------

    def list_jobs(self, principal: Principal) -> list[JobStatus]:
        """The caller's jobs (an admin's: everyone's), newest first."""
        with self._lock:
            jobs = list(self._jobs.values())
        mine = [j for j in jobs if _may_see(principal, j)]
        return sorted((j.status() for j in mine), key=lambda s: s.created_at, reverse=True)

    def get(self, principal: Principal, job_id: str, *, use: bool = True) -> RedactJob:
        """A job of the caller's (``use=False``: an admin may reach anyone's, to delete it)."""
        with self._lock:
            job = self._jobs.get(job_id)
        allowed = job is not None and (
            job.owner == principal.username or (not use and _may_see(principal, job))
        )
        if job is None or not allowed:
            # Someone else's job reads as missing: its existence is not the caller's business.
            raise JobNotFoundError(
                f"there is no redaction job {job_id!r} of yours",
                hint="list your jobs with GET /api/redact/jobs",
            )
        return job

    # -- creating -----------------------------------------------------------------------

    def create(self, principal: Principal, camera_id: str, segment: str, reason: str) -> RedactJob:
        """Decrypt ``segment`` of ``camera_id`` into a new job and start analysing it.

        The gateway checks ``unmask`` and ``export`` and audits the decryption with the
        reason; refused (409) while another analysis runs or :data:`MAX_JOBS` jobs are kept.
        """
        reason = reason.strip()
        if not reason:
            raise JobInputError(
                "a redaction job needs a reason", hint="give a case or incident number"
            )
        folder = self.root / secrets.token_hex(6)
        job = RedactJob(
            folder,
            camera_id=camera_id,
            segment=segment,
            segment_start="",
            owner=principal.username,
            reason=reason,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self._reserve(job)
        try:
            stored = next(
                (s for s in self._gateway.originals(camera_id) if s.path.name == segment), None
            )
            # Checks both scopes (audited), the reason and the segment; audits the decryption.
            data = self._gateway.decrypt_original(principal, camera_id, segment, reason)
            if stored is not None:
                job.segment_start = stored.segment.start.isoformat()
            _private_dir(folder)
            _write_private(job.video, data)
            del data
            job.frames_total = _frame_count(job.video)
            job.save()
            self._gateway.audit.append(
                principal.label,
                "redact.job.create",
                f"camera:{camera_id}",
                {"job": job.id, "segment": segment, "reason": reason},
            )
            with self._lock:
                self._jobs[job.id] = job
            thread = threading.Thread(
                target=self._analyse, args=(job,), name=f"veil-redact-analyse-{job.id}"
            )
            job.thread = thread
            thread.start()
        except BaseException:
            with self._lock:
                self._running = None
                self._jobs.pop(job.id, None)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        log.info("redaction job %s: %s of camera %s for %s", job.id, segment, camera_id, job.owner)
        return job

    def _reserve(self, job: RedactJob) -> None:
        """Take the one analysis slot for ``job``, or refuse (409) saying why."""
        with self._lock:
            running = self._running
            if running is not None:
                status = running.status()
                of = f" of {status.frames_total}" if status.frames_total else ""
                raise JobBusyError(
                    f"the gateway analyses one original at a time, and job {running.id} is "
                    f"being analysed ({status.frames_done}{of} frames done)",
                    hint="wait until it is ready, then try again (or delete that job)",
                )
            if len(self._jobs) >= MAX_JOBS:
                raise JobBusyError(
                    f"the gateway keeps at most {MAX_JOBS} redaction jobs, each with a "
                    "decrypted original on disk",
                    hint="delete finished jobs first (DELETE /api/redact/jobs/{id})",
                )
            self._running = job

    def _settings_for(self, camera_id: str) -> AnalysisSettings:
        if self._settings is not None:
            return self._settings
        return AnalysisSettings.from_config(self._gateway.camera(camera_id).config.masking)

    def _analyse(self, job: RedactJob) -> None:
        """The analysis thread: detect and track, save the analysis (0600), record the end."""

        def progress(done: int) -> None:
            job.progressed(done)
            if job.cancel.is_set() or self._stop.is_set():
                raise _StopRequestedError

        try:
            analysis = analyse_video(
                job.video, self._settings_for(job.camera_id), progress=progress
            )
            write_atomic(job.analysis_path, analysis.to_json().encode(), mode=_PRIVATE_FILE)
            job.finished(analysis)
            log.info(
                "redaction job %s analysed: %d frames, %d tracks in %.1f s",
                job.id,
                analysis.video.frame_count,
                len(analysis.tracks),
                analysis.seconds,
            )
        except _StopRequestedError:
            job.failed("the analysis was stopped", "delete this job and create it again")
        except VeilError as error:
            job.failed(f"the analysis failed: {error.message}", error.hint)
        except Exception as error:
            log.exception("redaction job %s: the analysis failed", job.id)
            job.failed(f"the analysis failed: {error}", "see the gateway's log")
        finally:
            with self._lock:
                if self._running is job:
                    self._running = None
            if not job.cancel.is_set():
                with contextlib.suppress(OSError):
                    job.save()

    # -- deleting and stopping ----------------------------------------------------------

    def delete(self, principal: Principal, job_id: str) -> None:
        """Stop the job's analysis, remove its folder (the plaintext with it); audited."""
        job = self.get(principal, job_id, use=False)
        job.cancel.set()
        if job.thread is not None:
            job.thread.join()
        with job.export_lock:
            with self._lock:
                self._jobs.pop(job.id, None)
            shutil.rmtree(job.folder, ignore_errors=True)
        self._gateway.audit.append(
            principal.label,
            "redact.job.delete",
            f"camera:{job.camera_id}",
            {"job": job.id, "segment": job.segment, "owner": job.owner},
        )
        log.info("redaction job %s deleted by %s", job.id, principal.label)

    def close(self) -> None:
        """Stop a running analysis and join its thread (the gateway is stopping)."""
        self._stop.set()
        with self._lock:
            threads = [j.thread for j in self._jobs.values() if j.thread is not None]
        for thread in threads:
            thread.join()

    # -- choosing and exporting ---------------------------------------------------------

    def resolve(self, job: RedactJob, selection: Selection) -> tuple[Analysis, ResolvedSelection]:
        """The selection checked against the job's analysis; unknown tracks are named."""
        analysis = job.analysis()
        ids = ", ".join(str(i) for i in analysis.track_ids[:40])
        more = ", ..." if len(analysis.track_ids) > 40 else ""
        hint = f"this job's tracks are {ids or 'none'}{more} (GET /api/redact/jobs/{job.id}/tracks)"
        try:
            resolved = resolve(selection, analysis)
        except SelectionError as error:
            # Unknown tracks: this job's (the library's hint names the command line's tool).
            cli = not error.hint or "veil redact" in error.hint
            raise JobInputError(error.message, hint=hint if cli else error.hint) from None
        _check_splits(resolved)
        _check_regions(resolved, analysis.video.frame_count)
        return analysis, resolved

    def check(
        self, principal: Principal, job_id: str, selection: Selection
    ) -> tuple[Analysis, ResolvedSelection]:
        """The selection resolved against the job's analysis (merges and splits applied):
        what the page lists as tracks; JobInputError (422) naming what is wrong."""
        return self.resolve(self.get(principal, job_id), selection)

    def thumbnail(self, principal: Principal, job_id: str, track_id: int) -> bytes:
        """A track's thumbnail (JPEG)."""
        job = self.get(principal, job_id)
        analysis = job.analysis()
        if track_id not in analysis.track_ids:
            raise JobNotFoundError(
                f"redaction job {job.id} has no track {track_id}",
                hint=f"list its tracks with GET /api/redact/jobs/{job.id}/tracks",
            )
        data = analysis.thumbnails.get(track_id)
        if data is None:
            raise JobNotFoundError(f"track {track_id} of job {job.id} has no thumbnail")
        return base64.b64decode(data)

    def preview(
        self,
        principal: Principal,
        job_id: str,
        selection: Selection,
        frame: int,
        *,
        labels: bool = False,
    ) -> bytes:
        """Frame ``frame`` with the redaction applied, as JPEG (``labels``: outlined tracks)."""
        job = self.get(principal, job_id)
        analysis, resolved = self.resolve(job, selection)
        count = analysis.video.frame_count
        if not 0 <= frame < count:
            raise JobInputError(
                f"frame {frame} is outside the video of job {job.id}",
                hint=f"give a frame from 0 to {count - 1}",
            )
        # A private temporary folder inside the job's: the picture is unmasked where the
        # selection leaves it so, and is gone when this returns.
        with tempfile.TemporaryDirectory(dir=job.folder, prefix=".preview-") as temp:
            path = preview_frame(
                job.video, analysis, resolved, frame, Path(temp) / "frame.jpg", labels=labels
            )
            return path.read_bytes()

    def export(self, principal: Principal, job_id: str, selection: Selection) -> ExportRecord:
        """Export the job's video redacted as ``selection`` says (its reason is required):
        MP4 and signed manifest, recorded in the audit log with the caller as operator."""
        job = self.get(principal, job_id)
        if not selection.reason.strip():
            raise JobInputError(
                "an export needs a reason", hint="give the request or case it is made for"
            )
        analysis, resolved = self.resolve(job, selection)
        key = self._signing_key()
        with job.export_lock:
            if not job.folder.is_dir():
                raise JobNotFoundError(f"redaction job {job.id} was deleted meanwhile")
            _private_dir(job.exports_dir)
            number = max((r.number for r in job.status().exports), default=0) + 1
            output = job.exports_dir / f"{job.stem}-redacted-{number:02d}.mp4"
            audit = self._gateway.audit

            def record(actor: str, details: dict[str, Any]) -> int:
                more = {**details, "job": job.id, "camera": job.camera_id, "segment": job.segment}
                return audit.append(actor, AuditAction.EXPORT, f"redaction:{job.id}", more).seq

            result = export_redaction(
                job.video,
                analysis,
                resolved,
                output,
                operator=principal.label,
                signing_key=key,
                audit=record,
                analysis_path=job.analysis_path,
            )
            for path in (result.output, result.manifest_json, result.manifest_html):
                os.chmod(path, _PRIVATE_FILE)
            manifest = json.loads(result.manifest_json.read_text(encoding="utf-8"))
            entry = ExportRecord(
                number=number,
                output=result.output.name,
                manifest_json=result.manifest_json.name,
                manifest_html=result.manifest_html.name,
                frames=result.frames,
                output_sha256=result.output_sha256,
                fingerprint=result.fingerprint,
                mode=resolved.mode.value,
                tracks=tuple(sorted(resolved.chosen)),
                reason=selection.reason,
                exported_by=str(manifest.get("exported_by", principal.label)),
                exported_at=str(manifest.get("exported_at", "")),
                audit_seq=result.audit_seq,
                regions=tuple(r.name for r in resolved.regions),
                first_frame=resolved.first_frame,
                last_frame=resolved.last_frame,
            )
            job.add_export(entry)
            job.save()
        log.info("redaction job %s: export %d by %s", job.id, number, principal.label)
        return entry

    def export_file(
        self, principal: Principal, job_id: str, number: int, kind: str
    ) -> tuple[Path, ExportRecord]:
        """The path of an export's ``video``, ``manifest.json`` or ``manifest.html``."""
        job = self.get(principal, job_id)
        record = job.export_record(number)
        name = {
            "video": record.output,
            "manifest.json": record.manifest_json,
            "manifest.html": record.manifest_html,
        }[kind]
        path = job.exports_dir / name
        if not path.is_file():
            raise JobNotFoundError(f"export {number} of job {job.id} has no file {name} any more")
        return path, record

    def verify(self, principal: Principal, job_id: str, number: int) -> VerifyResult:
        """Check an export against its signed manifest (as `veil redact verify` does)."""
        video, record = self.export_file(principal, job_id, number, "video")
        return verify_export(video, video.parent / record.manifest_json)

    def _signing_key(self) -> Path:
        """The gateway's Ed25519 signing key, made (0600) on first use."""
        path = self.signing_key_path
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            with contextlib.suppress(FileExistsError):  # made by another export meanwhile
                _write_private(path, pem)
                log.info("created the redaction signing key %s", path)
        return path


# --------------------------------------------------------------------------- helpers


def _check_splits(resolved: ResolvedSelection) -> None:
    """Each split cuts its track inside its frames: both parts have frames."""
    for split in resolved.selection.splits:
        parts = [t for t in resolved.tracks if split.track in t.sources and len(t.track)]
        first = min((t.track.first_frame for t in parts), default=-1)
        last = max((t.track.last_frame for t in parts), default=-1)
        if not first < split.frame <= last:
            raise JobInputError(
                f"the split of track {split.track} at frame {split.frame} is outside the "
                f"track (frames {first} to {last}): one part would be empty",
                hint=f"split track {split.track} at a frame from {first + 1} to {last}",
            )
    empty = [t.ref for t in resolved.tracks if not len(t.track)]
    if empty:
        raise JobInputError(
            f"the splits leave part(s) {', '.join(empty)} without frames",
            hint="give each split of a track a different frame inside the track",
        )


def _check_regions(resolved: ResolvedSelection, frame_count: int) -> None:
    """Each region's keyframes lie inside the video."""
    for region in resolved.regions:
        if region.last_frame >= frame_count:
            raise JobInputError(
                f"region {region.name!r} has a keyframe at frame {region.last_frame}, outside "
                f"the video",
                hint=f"give keyframes from frame 0 to {frame_count - 1}",
            )


def _may_see(principal: Principal, job: RedactJob) -> bool:
    return job.owner == principal.username or principal.has(Scope.MANAGE_USERS)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)
    os.chmod(path, _PRIVATE_DIR)  # mkdir's mode is reduced by the umask, and exist_ok keeps


def _write_private(path: Path, data: bytes) -> None:
    """A new file readable by the gateway's user only (never an existing one replaced)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def _frame_count(video: Path) -> int | None:
    """The container's frame count, for the progress bar (None when it does not say)."""
    try:
        with open_source(str(video)) as source:
            return source.frame_count
    except VeilError:
        return None  # the analysis says what is wrong with the video
