"""Analyse a video once for redaction: every person, face and other moving object, as tracks.

:func:`analyse_video` decodes the video once (in a reader thread), runs the person detector,
the face detector and the motion detector on every frame, then tracks offline
(:mod:`veil.redact.offline_tracks`: forwards and backwards, gaps filled from both ends). The
result, an :class:`Analysis`, is saved as JSON beside the video
(``VIDEO.veil-analysis.json``) with the video's SHA-256, so choosing differently and exporting
again never detects again, and a video changed after analysis is refused.

Offline analysis uses a lower person score threshold than live masking (0.3 against 0.5): a
missed person leaks, while a false detection only adds a track nobody selects (or one more
masked box when all persons are masked).

Motion: the background model needs ``learning_time`` to learn the scene. Live masking hides
the whole frame meanwhile; offline, the first frames are kept (scaled down) and detected again
once the model has learned, so the first seconds get motion tracks too. Motion detections that
lie mostly inside a person box are left out: the person track covers them.

A frame on which a detector failed, or that the decoder marked corrupt, is listed in
``unsafe_frames``; exports mask it whole.

Example::

    analysis = analyse_video("cam1.mp4", AnalysisSettings())
    analysis.save(default_analysis_path("cam1.mp4"))
    again = Analysis.load(default_analysis_path("cam1.mp4"))
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from veil import __version__
from veil.config.schema import VeilConfig
from veil.core.detections import Detections, DetectionSource
from veil.core.errors import ConfigError, MediaDecodeError, OutputError, VeilError
from veil.core.files import replace_atomically
from veil.core.frame import Frame, Image
from veil.media.sink import sequence_regex
from veil.media.source import VideoSource, is_image_sequence, open_source
from veil.pipeline import put_unless_stopped
from veil.redact.offline_tracks import (
    BoxFlag,
    OfflineSettings,
    OfflineTrack,
    TrackerPass,
    TrackKind,
    build_tracks,
    flag_code,
)

log = logging.getLogger(__name__)

ANALYSIS_FORMAT = "veil-redaction-analysis"
ANALYSIS_VERSION = 1
ANALYSIS_SUFFIX = ".veil-analysis.json"
THUMBNAIL_SIDE = 96
"""Thumbnails are at most this many pixels on their longer side."""
_MOTION_WIDTH = 480
_MOTION_INSIDE_PERSON = 0.5
_QUEUE = 8

ProgressCallback = Callable[[int], None]


class AnalysisError(VeilError):
    """An analysis file is unreadable, or does not belong to the video."""

    exit_code = 1


class VideoChangedError(AnalysisError):
    """The video's SHA-256 differs from the one the analysis was made from."""


_counters = {"frames_detected": 0}


def frames_detected() -> int:
    """Frames run through the detectors in this process so far (a test and bench counter:
    exporting from a saved analysis must not raise it)."""
    return _counters["frames_detected"]


# --------------------------------------------------------------------------- the video


def default_analysis_path(video: str | os.PathLike[str]) -> Path:
    """``VIDEO.veil-analysis.json`` beside the video (for ``dir/%06d.jpg``: ``dir.veil-...``)."""
    text = os.fspath(video)
    if is_image_sequence(text):
        folder = Path(text).parent
        return folder.parent / f"{folder.name}{ANALYSIS_SUFFIX}"
    return Path(text + ANALYSIS_SUFFIX)


def sequence_files(pattern: str) -> list[Path]:
    """The files of an image sequence pattern such as ``img1/%06d.jpg``, in order."""
    folder = Path(pattern).parent
    regex = sequence_regex(pattern)
    if not folder.is_dir():
        raise MediaDecodeError(f"{pattern}: the folder {folder} does not exist")
    files = [p for p in folder.iterdir() if regex.fullmatch(p.name)]
    return sorted(files, key=lambda p: (len(p.name), p.name))


def video_digest(video: str | os.PathLike[str]) -> tuple[str, int]:
    """SHA-256 (hex) and size in bytes of a video file, or of an image sequence's files
    (each file's name and bytes, in order)."""
    text = os.fspath(video)
    digest = hashlib.sha256()
    size = 0
    paths = sequence_files(text) if is_image_sequence(text) else [Path(text)]
    for path in paths:
        if is_image_sequence(text):
            digest.update(path.name.encode() + b"\0")
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            raise MediaDecodeError(f"{path}: no such file", hint="check the path") from None
    return digest.hexdigest(), size


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """The analysed video: where it was, its hash, and its geometry and timing."""

    path: str
    sha256: str
    size: int
    frame_count: int
    fps: str
    """Frames per second as an exact fraction text ("25", "30000/1001")."""
    width: int
    height: int

    @property
    def fps_value(self) -> float:
        return float(Fraction(self.fps))


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """What the analysis runs, each with what it trades off.

    ``person_input_size``: YOLOX input side (multiple of 32). 640 finds people down to about
    25 px tall in 720p and runs at about 45 fps on two cores; 416 is 4x faster and misses
    half the small, distant people in an elevated view.
    ``person_tiles``: also run ``tiles x tiles`` overlapping tiles (each costs one more run);
    for small people in large pictures, when time allows.
    ``person_threshold``: lower than live masking's 0.5, because offline a false detection
    only costs a track nobody selects, while a miss leaks.
    ``faces``/``face_threshold``/``face_input_size``: YuNet face tracks (a face seen without
    its body). YuNet runs on the picture scaled to ``face_input_size`` (longer side): 320 costs
    a third of 640 and misses faces under about 20 px in 720p, which person tracks cover.
    ``motion``: tracks of other moving objects (vehicles, bags), to select them.
    ``hold_time``: seconds tracks are followed unseen, before and after (see
    :class:`~veil.redact.offline_tracks.OfflineSettings`).
    ``model_dir``: folder with the weights (else VEIL_MODEL_DIR, else the user cache).
    """

    person_input_size: int = 640
    person_tiles: int = 1
    person_threshold: float = 0.3
    faces: bool = True
    face_threshold: float = 0.6
    face_input_size: int = 320
    motion: bool = True
    motion_sensitivity: float = 50.0
    hold_time: float = 1.0
    model_dir: str | None = None
    threads: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.person_threshold < 1.0:
            raise ConfigError(f"person_threshold must be within 0..1, got {self.person_threshold}")
        if not 0.0 < self.face_threshold < 1.0:
            raise ConfigError(f"face_threshold must be within 0..1, got {self.face_threshold}")

    @classmethod
    def from_config(cls, config: VeilConfig) -> AnalysisSettings:
        """Settings from a Veil configuration's ``dynamic`` section: person input size and
        tiles, hold time, motion sensitivity and model folder. The person score threshold
        stays the offline one unless the configured sensitivity asks for a lower one."""
        from veil.detect.persons import sensitivity_to_threshold

        dynamic = config.dynamic
        return cls(
            person_input_size=(
                dynamic.person.input_size if isinstance(dynamic.person.input_size, int) else 640
            ),
            person_tiles=dynamic.person.tiles,
            person_threshold=min(0.3, sensitivity_to_threshold(dynamic.sensitivity)),
            motion_sensitivity=float(dynamic.sensitivity),
            hold_time=max(1.0, dynamic.hold_time),
            model_dir=dynamic.model_dir,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisSettings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True, slots=True, eq=False)
class Analysis:
    """The tracks of one video, with what is needed to check the video is the same."""

    video: VideoInfo
    settings: AnalysisSettings
    tracks: tuple[OfflineTrack, ...]
    unsafe_frames: tuple[int, ...] = ()
    """Frames a detector failed on or the decoder marked corrupt: exported fully masked."""
    thumbnails: dict[int, str] = field(default_factory=dict)
    """Track id -> base64 JPEG."""
    created: str = ""
    seconds: float = 0.0
    """Wall time of the analysis."""
    veil_version: str = __version__

    def track(self, track_id: int) -> OfflineTrack:
        for t in self.tracks:
            if t.track_id == track_id:
                return t
        raise KeyError(track_id)

    @property
    def track_ids(self) -> tuple[int, ...]:
        return tuple(t.track_id for t in self.tracks)

    def check_video(self, video: str | os.PathLike[str]) -> None:
        """Raise :class:`VideoChangedError` unless ``video`` has the analysed SHA-256."""
        digest, size = video_digest(video)
        if digest != self.video.sha256:
            raise VideoChangedError(
                f"{os.fspath(video)} is not the video that was analysed: its SHA-256 is "
                f"{digest[:16]}..., the analysis was made from {self.video.sha256[:16]}... "
                f"({self.video.size} bytes; this file has {size})",
                hint="run `veil redact analyse` on this video again (or give the right video)",
            )

    # -- JSON ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ANALYSIS_FORMAT,
            "version": ANALYSIS_VERSION,
            "veil_version": self.veil_version,
            "created": self.created,
            "seconds": round(self.seconds, 3),
            "video": asdict(self.video),
            "settings": self.settings.to_dict(),
            "unsafe_frames": list(self.unsafe_frames),
            "tracks": [_track_to_dict(t, self.thumbnails.get(t.track_id)) for t in self.tracks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write the analysis atomically (temporary name, then rename)."""
        target = Path(path)
        write_atomic(target, self.to_json().encode(), overwrite=overwrite)
        return target

    @classmethod
    def from_dict(cls, data: Any, source: str = "analysis") -> Analysis:
        if not isinstance(data, dict) or data.get("format") != ANALYSIS_FORMAT:
            raise AnalysisError(
                f"{source} is not a Veil redaction analysis",
                hint="make one with `veil redact analyse VIDEO`",
            )
        if data.get("version") != ANALYSIS_VERSION:
            raise AnalysisError(
                f"{source} has analysis version {data.get('version')!r}; this Veil reads "
                f"version {ANALYSIS_VERSION}",
                hint="run `veil redact analyse` again",
            )
        try:
            video = VideoInfo(**data["video"])
            settings = AnalysisSettings.from_dict(data["settings"])
            tracks = []
            thumbs: dict[int, str] = {}
            for item in data["tracks"]:
                track = _track_from_dict(item)
                tracks.append(track)
                if item.get("thumbnail"):
                    thumbs[track.track_id] = str(item["thumbnail"])
            return cls(
                video=video,
                settings=settings,
                tracks=tuple(tracks),
                unsafe_frames=tuple(int(f) for f in data.get("unsafe_frames", [])),
                thumbnails=thumbs,
                created=str(data.get("created", "")),
                seconds=float(data.get("seconds", 0.0)),
                veil_version=str(data.get("veil_version", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise AnalysisError(
                f"{source} is damaged: {type(error).__name__}: {error}",
                hint="run `veil redact analyse` again",
            ) from error

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Analysis:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise AnalysisError(
                f"no analysis at {p}", hint="make it with `veil redact analyse VIDEO`"
            ) from None
        except OSError as error:
            raise AnalysisError(f"cannot read {p}: {error}") from error
        try:
            data = json.loads(text)
        except ValueError as error:
            raise AnalysisError(
                f"{p} is not JSON ({error})", hint="run `veil redact analyse` again"
            ) from error
        return cls.from_dict(data, str(p))


def _track_to_dict(track: OfflineTrack, thumbnail: str | None) -> dict[str, Any]:
    return {
        "id": track.track_id,
        "kind": track.kind.value,
        "first_frame": track.first_frame,
        "last_frame": track.last_frame,
        "detected_frames": track.detected_frames,
        "confidence": round(track.confidence, 4),
        "best_frame": track.best_frame,
        "parent": track.parent,
        "frames": [int(f) for f in track.frames],
        "boxes": np.round(track.xyxy.astype(np.float64), 1).tolist(),
        "flags": "".join(
            (BoxFlag.DETECTED, BoxFlag.INTERPOLATED, BoxFlag.EXTRAPOLATED)[int(c)].value
            for c in track.flags
        ),
        "uncertainty": np.round(track.uncertainty.astype(np.float64), 1).tolist(),
        "segments": [int(v) for v in track.segment_column()],
        "thumbnail": thumbnail,
    }


def _track_from_dict(item: dict[str, Any]) -> OfflineTrack:
    flags_text = str(item["flags"])
    codes = [flag_code(BoxFlag(c)) for c in flags_text]
    frames = np.asarray(item["frames"], np.int64).reshape(-1)
    return OfflineTrack(
        track_id=int(item["id"]),
        kind=TrackKind(item["kind"]),
        frames=frames,
        xyxy=np.asarray(item["boxes"], np.float32).reshape(-1, 4),
        flags=np.asarray(codes, np.int8).reshape(-1),
        uncertainty=np.asarray(item["uncertainty"], np.float32).reshape(-1),
        confidence=float(item.get("confidence", 1.0)),
        best_frame=int(item.get("best_frame", -1)),
        parent=None if item.get("parent") is None else int(item["parent"]),
        segments=np.asarray(item["segments"], np.int32).reshape(-1) if "segments" in item else None,
    )


def write_atomic(target: Path, data: bytes, *, overwrite: bool = True, mode: int = 0o644) -> None:
    """Write ``data`` to a temporary file beside ``target`` and rename it into place."""
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: already exists", hint="use --overwrite to replace it")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{folder}: the output folder does not exist", hint="create it first")
    try:
        replace_atomically(target, data, mode)
    except OSError as error:
        raise OutputError(f"cannot write {target}: {error.strerror or error}") from error


# --------------------------------------------------------------------------- analysing


class _Detectors:
    """The detectors of one analysis, loaded once."""

    def __init__(self, settings: AnalysisSettings, fps: float) -> None:
        from veil.detect.faces import FaceDetector, FaceSettings
        from veil.detect.motion import MotionDetector, MotionSettings
        from veil.detect.persons import PersonDetector, PersonSettings

        self.persons = PersonDetector.load(
            PersonSettings(
                input_size=settings.person_input_size,
                tiles=settings.person_tiles,
                score_threshold=settings.person_threshold,
                threads=settings.threads,
            ),
            settings.model_dir,
        )
        self.faces = (
            FaceDetector.load(
                FaceSettings(
                    score_threshold=settings.face_threshold, input_size=settings.face_input_size
                ),
                settings.model_dir,
            )
            if settings.faces
            else None
        )
        self.motion = (
            MotionDetector(
                MotionSettings(
                    fps=fps,
                    sensitivity=settings.motion_sensitivity,
                    processing_width=_MOTION_WIDTH,
                )
            )
            if settings.motion
            else None
        )


def _drop_inside_persons(motion: Detections, persons: Detections) -> Detections:
    """Motion boxes less than half outside every person box (the person track covers them)."""
    if len(motion) == 0 or len(persons) == 0:
        return motion
    m = motion.xyxy.astype(np.float64)
    p = persons.xyxy.astype(np.float64)
    iw = np.clip(
        np.minimum(m[:, None, 2], p[None, :, 2]) - np.maximum(m[:, None, 0], p[None, :, 0]), 0, None
    )
    ih = np.clip(
        np.minimum(m[:, None, 3], p[None, :, 3]) - np.maximum(m[:, None, 1], p[None, :, 1]), 0, None
    )
    area = np.maximum((m[:, 2] - m[:, 0]) * (m[:, 3] - m[:, 1]), 1e-9)
    inside = (iw * ih).max(axis=1) / area
    keep = inside < _MOTION_INSIDE_PERSON
    return motion[keep]


def _crop(image: Image, box: NDArray[np.float32]) -> Image | None:
    """A copy of the box and a little around it (encoded only if it stays the best view)."""
    h, w = image.shape[:2]
    bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
    pad = 0.1 * max(bw, bh)
    x0 = max(0, int(box[0] - pad))
    y0 = max(0, int(box[1] - pad))
    x1 = min(w, int(np.ceil(box[2] + pad)))
    y1 = min(h, int(np.ceil(box[3] + pad)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return np.array(image[y0:y1, x0:x1])


def _encode(crop: Image) -> bytes | None:
    """A JPEG at most THUMBNAIL_SIDE pixels on its longer side."""
    h, w = crop.shape[:2]
    scale = THUMBNAIL_SIDE / max(w, h)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        crop = np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), np.uint8)
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return bytes(data.tobytes()) if ok else None


class _End:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def _frames_threaded(source: VideoSource) -> Generator[Frame, None, None]:
    """The source's frames, decoded in a thread ahead of the caller (bounded queue)."""
    items: queue.Queue[Frame | _End] = queue.Queue(maxsize=_QUEUE)
    stop = threading.Event()

    def run() -> None:
        end = _End()
        reader = source.frames()
        try:
            for frame in reader:
                if not put_unless_stopped(items, frame, stop):
                    return
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            end = _End(error)
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()
            put_unless_stopped(items, end, stop)

    thread = threading.Thread(target=run, name="veil-redact-decode")
    thread.start()
    try:
        while True:
            item = items.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                items.get_nowait()
        thread.join()


def analyse_video(
    video: str | os.PathLike[str],
    settings: AnalysisSettings | None = None,
    *,
    progress: ProgressCallback | None = None,
    fps: Fraction | None = None,
) -> Analysis:
    """Detect and track everything in ``video`` (see the module docstring).

    ``fps`` sets the frame rate of an image sequence (default 25). Raises
    :class:`~veil.core.errors.ModelError` when weights are missing, MediaError when the
    video cannot be read.
    """
    settings = settings or AnalysisSettings()
    text = os.fspath(video)
    started = time.perf_counter()
    digest, size = video_digest(text)
    with (
        open_source(text, fps=fps) as source,
        ThreadPoolExecutor(1, thread_name_prefix="veil-redact-side") as pool,
        contextlib.closing(_frames_threaded(source)) as frames,
    ):
        rate = float(source.fps) if source.fps else 25.0
        detectors = _Detectors(settings, rate)
        offline = OfflineSettings(fps=rate, hold_time=settings.hold_time)
        frame_size = (source.width, source.height)
        forward = TrackerPass(frame_size, offline.tracker_settings())
        per_frame: list[Detections | None] = []
        unsafe: list[int] = []
        best: _Best = {}
        pending: list[_Pending] = []
        count = 0
        for frame in frames:
            if frame.index != count:
                raise MediaDecodeError(f"{text}: frame {count} came as {frame.index}")
            dets, failed, small = _detect(detectors, frame, pool)
            if failed or frame.corrupt:
                unsafe.append(frame.index)
            per_frame.append(dets)
            count += 1
            _counters["frames_detected"] += 1
            if small is not None and detectors.motion is not None and detectors.motion.learning:
                # Tracked once the motion model has learned and these frames are detected
                # again; their crops are kept for the thumbnails meanwhile.
                crops = [_crop(frame.image, box) for box in dets.xyxy]
                pending.append(_Pending(frame.index, small, crops))
            else:
                if pending:
                    _replay(detectors, pending, per_frame, frame_size, forward, best)
                    pending = []
                for track_id, row in forward.update(frame.index, dets):
                    _keep_best(best, track_id, frame.image, dets, row)
            if progress is not None:
                progress(count)
        if count == 0:
            raise MediaDecodeError(f"{text}: no frames could be read")
        if pending:
            _replay(detectors, pending, per_frame, frame_size, forward, best)
        if source.report.truncated:
            log.warning("%s: reading stopped early; the analysis covers %d frames", text, count)
    tracks = build_tracks(per_frame, frame_size, offline, forward_pass=forward)
    thumbnails: dict[int, str] = {}
    for track in tracks:
        views = [best[p] for p in track.parts if p in best]
        if views:
            view = max(views, key=lambda v: v[0])[1]
            data = view if isinstance(view, bytes) else _encode(view)
            if data is not None:
                thumbnails[track.track_id] = base64.b64encode(data).decode()
    info = VideoInfo(
        path=str(Path(text).resolve()) if not is_image_sequence(text) else text,
        sha256=digest,
        size=size,
        frame_count=count,
        fps=str(Fraction(rate).limit_denominator(100000)),
        width=frame_size[0],
        height=frame_size[1],
    )
    return Analysis(
        video=info,
        settings=settings,
        tracks=tuple(tracks),
        unsafe_frames=tuple(unsafe),
        thumbnails=thumbnails,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True, slots=True)
class _Side:
    """What the side thread found in one frame: faces, motion, and the motion-scale frame."""

    faces: Detections | None
    failed: bool
    small: Frame | None
    motion: Detections | None


def _side(detectors: _Detectors, frame: Frame) -> _Side:
    faces = None
    failed = False
    if detectors.faces is not None:
        try:
            faces = detectors.faces.detect(frame)
        except Exception:
            log.exception("face detector failed on frame %d", frame.index)
            failed = True
    small = motion = None
    if detectors.motion is not None:
        small = _motion_frame(frame)
        motion = _motion_detect(detectors, small, frame.width)
    return _Side(faces, failed, small, motion)


def _detect(
    detectors: _Detectors, frame: Frame, pool: ThreadPoolExecutor
) -> tuple[Detections, bool, Frame | None]:
    """Detections of one frame, whether a detector failed, and the motion-scale frame.

    Faces and motion run in the side thread while the person detector runs here (both
    release the GIL); each frame is finished before the next starts, so the motion model
    still sees the frames in order."""
    side = pool.submit(_side, detectors, frame)
    failed = False
    try:
        persons = detectors.persons.detect(frame)
    except Exception:
        log.exception("person detector failed on frame %d", frame.index)
        persons = Detections.empty()
        failed = True
    found = side.result()
    parts = [persons]
    if found.faces is not None:
        parts.append(found.faces)
    if found.motion is not None:
        parts.append(_drop_inside_persons(found.motion, persons))
    return Detections.merge(parts), failed or found.failed, found.small


def _motion_frame(frame: Frame) -> Frame:
    if frame.width <= _MOTION_WIDTH:
        return frame
    height = max(1, round(frame.height * _MOTION_WIDTH / frame.width))
    image = np.asarray(
        cv2.resize(frame.image, (_MOTION_WIDTH, height), interpolation=cv2.INTER_AREA), np.uint8
    )
    return frame.with_image(image)


def _motion_detect(detectors: _Detectors, small: Frame, full_width: int) -> Detections | None:
    """Motion boxes in full-frame pixels; None while the model learns (or if it failed)."""
    assert detectors.motion is not None
    try:
        found = detectors.motion.detect(small)
    except Exception:
        log.exception("motion detector failed on frame %d", small.index)
        return None
    if detectors.motion.learning:
        return None
    scale = full_width / small.width
    return Detections.from_boxes(
        found.xyxy * np.float32(scale), DetectionSource.MOTION, found.confidence
    )


@dataclass(frozen=True, slots=True)
class _Pending:
    """A frame seen while the motion model was learning: tracked after it has learned."""

    index: int
    small: Frame
    crops: list[Image | None]


_Best = dict[int, tuple[float, "bytes | Image"]]
"""Forward track id -> (score, JPEG or picture crop) of its best view so far."""


def _replay(
    detectors: _Detectors,
    pending: list[_Pending],
    per_frame: list[Detections | None],
    frame_size: tuple[int, int],
    forward: TrackerPass,
    best: _Best,
) -> None:
    """Detect motion again on the frames seen while learning (the model has learned now, or
    the video ended), then track them, in order."""
    for item in pending:
        dets = per_frame[item.index]
        assert dets is not None
        if detectors.motion is not None and not detectors.motion.learning:
            motion = _motion_detect(detectors, item.small, frame_size[0])
            if motion is not None and len(motion):
                persons = dets[dets.source == int(DetectionSource.PERSON)]
                dets = Detections.merge([dets, _drop_inside_persons(motion, persons)])
                per_frame[item.index] = dets
        for track_id, row in forward.update(item.index, dets):
            crop = item.crops[row] if row < len(item.crops) else None
            if crop is not None:
                _offer(best, track_id, dets, row, functools.partial(_same, crop))


def _same(value: Image) -> Image:
    return value


def _score(dets: Detections, row: int) -> float:
    box = dets.xyxy[row]
    area = float((box[2] - box[0]) * (box[3] - box[1]))
    return float(dets.confidence[row]) * float(np.sqrt(max(area, 1.0)))


def _offer(
    best: _Best,
    track_id: int,
    dets: Detections,
    row: int,
    crop: Callable[[], bytes | Image | None],
) -> None:
    score = _score(dets, row)
    if track_id in best and best[track_id][0] >= score:
        return
    data = crop()
    if data is not None:
        best[track_id] = (score, data)


def _keep_best(best: _Best, track_id: int, image: Image, dets: Detections, row: int) -> None:
    _offer(best, track_id, dets, row, lambda: _crop(image, dets.xyxy[row]))


def load_or_analyse(
    video: str | os.PathLike[str],
    analysis_path: str | os.PathLike[str] | None = None,
    settings: AnalysisSettings | None = None,
    *,
    progress: ProgressCallback | None = None,
    force: bool = False,
) -> tuple[Analysis, bool]:
    """The saved analysis of ``video`` when it matches the video (hash) and settings, else a
    new one, saved. Returns the analysis and whether it was reused."""
    path = Path(analysis_path) if analysis_path is not None else default_analysis_path(video)
    settings = settings or AnalysisSettings()
    if path.exists() and not force:
        try:
            saved = Analysis.load(path)
            saved.check_video(video)
            if saved.settings == settings:
                return saved, True
        except AnalysisError as error:
            log.info("analysing again: %s", error)
    analysis = analyse_video(video, settings, progress=progress)
    analysis.save(path)
    return analysis, False
