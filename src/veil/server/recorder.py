"""Recording live video in segments: masked MP4 files, and encrypted originals.

Each segment is encoded in memory and stored whole when it ends, so a crash or kill
loses at most the segment being written, and nothing half-written ever looks like a
finished recording. Masked segments are MP4 files written under a temporary name and
renamed; originals are encrypted (AES-256-GCM, see veil.vault.segments) before they
touch the disk, so the unmasked video is never stored in the clear.
"""

from __future__ import annotations

import io
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av

from veil.core.frame import Image
from veil.vault.keys import MasterKey
from veil.vault.segments import SegmentId, encrypt_segment

log = logging.getLogger(__name__)

_MASKED_NAME = re.compile(r"^(?P<start>\d{8}T\d{6}\d{6})Z_(?P<seq>\d{8})\.mp4$")


class SegmentStore(Protocol):
    """Where a finished segment goes."""

    def store(self, start: datetime, sequence: int, data: bytes) -> Path: ...


@dataclass(frozen=True, slots=True)
class RecordedSegment:
    """A finished masked segment on disk."""

    path: Path
    camera_id: str
    start: datetime
    sequence: int
    size: int


class MaskedSegmentStore:
    """Masked segments as ``DIR/<camera>/<YYYYmmddTHHMMSSffffff>Z_<seq>.mp4``."""

    def __init__(self, root: Path, camera_id: str) -> None:
        self.directory = Path(root) / camera_id
        self.camera_id = camera_id
        self.directory.mkdir(parents=True, exist_ok=True)

    def store(self, start: datetime, sequence: int, data: bytes) -> Path:
        name = f"{start.astimezone(UTC):%Y%m%dT%H%M%S%f}Z_{sequence:08d}.mp4"
        final = self.directory / name
        partial = self.directory / f".{name}.partial"
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, final)
        return final

    def segments(self) -> list[RecordedSegment]:
        found: list[RecordedSegment] = []
        for path in sorted(self.directory.glob("*.mp4")):
            match = _MASKED_NAME.match(path.name)
            if match is None:
                continue
            start = datetime.strptime(match["start"], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
            try:
                size = path.stat().st_size
            except FileNotFoundError:  # pruned meanwhile
                continue
            found.append(RecordedSegment(path, self.camera_id, start, int(match["seq"]), size))
        return found

    def prune(self, retention: timedelta, now: datetime | None = None) -> list[Path]:
        cutoff = (now or datetime.now(UTC)) - retention
        removed = []
        for segment in self.segments():
            if segment.start < cutoff:
                segment.path.unlink(missing_ok=True)
                removed.append(segment.path)
        return removed


class EncryptedSegmentStore:
    """Originals, each segment encrypted under its own key wrapped by the master key."""

    def __init__(self, root: Path, camera_id: str, master_key: MasterKey) -> None:
        self.directory = Path(root)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.camera_id = camera_id
        self._key = master_key

    def store(self, start: datetime, sequence: int, data: bytes) -> Path:
        segment = SegmentId(self.camera_id, start, sequence)
        return encrypt_segment(self.directory, segment, data, self._key)


class SegmentRecorder:
    """Encodes frames into H.264 MP4 segments of ``segment_seconds`` each.

    ``write`` is called from the camera's processing thread; encoding happens there
    (PyAV releases the GIL while x264 works). ``close`` finishes the open segment.
    """

    def __init__(
        self,
        store: SegmentStore,
        *,
        fps: float,
        segment_seconds: float,
        preset: str = "ultrafast",
    ) -> None:
        self._store = store
        self._rate = Fraction(fps).limit_denominator(1001)
        self._frames_per_segment = max(1, round(segment_seconds * fps))
        self._preset = preset
        self._buffer: io.BytesIO | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._count = 0
        self._start = datetime.now(UTC)
        self._sequence = 0
        self._size: tuple[int, int] | None = None

    def write(self, image: Image) -> None:
        h, w = image.shape[:2]
        if self._container is not None and (self._size != (w, h) or self._full()):
            self._finish()
        if self._container is None:
            self._begin(w, h)
        assert self._container is not None
        assert self._stream is not None
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self._count
        frame.time_base = Fraction(1) / self._rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._count += 1

    def close(self) -> None:
        if self._container is not None:
            self._finish()

    def _full(self) -> bool:
        return self._count >= self._frames_per_segment

    def _begin(self, width: int, height: int) -> None:
        self._buffer = io.BytesIO()
        container = av.open(self._buffer, mode="w", format="mp4")
        stream = container.add_stream("libx264", rate=self._rate)
        stream.width = width - width % 2
        stream.height = height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": self._preset, "crf": "23", "tune": "zerolatency"}
        self._container, self._stream = container, stream
        self._size = (width, height)
        self._count = 0
        self._start = datetime.now(UTC)

    def _finish(self) -> None:
        assert self._container is not None
        assert self._stream is not None
        assert self._buffer is not None
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
        data = self._buffer.getvalue()
        self._container = self._stream = self._buffer = None
        if self._count:
            path = self._store.store(self._start, self._sequence, data)
            log.debug("stored segment %s (%d frames)", path, self._count)
            self._sequence += 1
