"""One live camera in the gateway: read, mask, publish, record.

Four named threads per camera, joined on stop:

- ``read``: opens the source (reconnecting with back-off), paces file and demo
  sources to their frame rate, and leaves the newest frame in a one-slot mailbox (a
  frame the masker has not taken yet is replaced: live video never queues up);
- ``mask``: takes the newest frame, masks it, publishes the masked and the original
  picture, and hands both to the recorder;
- ``record``: encodes masked and original segments from a bounded queue (about a
  second of video), so encoding never delays masking; if it falls that far behind, frames
  are left out of the recording (counted in ``frames_unrecorded``), never out of the live
  outputs, and memory stays bounded;
- ``watchdog``: when no masked frame was published for ``stall_timeout`` seconds,
  publishes a "no signal" frame, so a stalled camera never leaves a stale picture up.

Fail-closed rules: only the masker's output or a no-signal frame is ever published
on the masked stream; a frame that took longer than ``max_latency`` to mask (the
pipeline fell behind) is published fully masked; a new masking configuration is
built (and validated) first and swapped in between two frames, and if building it
fails the running one stays.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from veil.config.schema import VeilConfig
from veil.core.frame import Frame, Image
from veil.server.latest import LatestFrame
from veil.server.recorder import SegmentRecorder
from veil.server.site_config import CameraConfig

log = logging.getLogger(__name__)


class Masker(Protocol):
    """A compiled masking configuration."""

    def process(self, frame: Frame) -> Frame: ...

    def reset_background(self) -> None: ...


_FIRST_RETRY_S = 0.5
_STABLE_S = 10.0
"""A source that ran this long before failing is retried after the first delay again."""

MaskerFactory = Callable[[VeilConfig, float], Masker]
FrameSourceFactory = Callable[[CameraConfig], Iterator[Frame]]


class CameraState(str, Enum):
    STARTING = "starting"
    LIVE = "live"
    NO_SIGNAL = "no-signal"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class CameraStatus:
    state: CameraState = CameraState.STARTING
    frames_in: int = 0
    frames_out: int = 0
    frames_dropped: int = 0
    """Frames replaced in the mailbox before the masker took them."""
    frames_late: int = 0
    """Frames published fully masked because masking fell behind."""
    no_signal_frames: int = 0
    frames_unrecorded: int = 0
    """Frames left out of the recordings because encoding fell behind."""
    reconnects: int = 0
    last_error: str = ""
    latency_ms_p50: float = 0.0
    latency_ms_p95: float = 0.0


def no_signal_image(width: int, height: int, text: str = "NO SIGNAL") -> Image:
    """A dark grey frame that says why there is nothing to see."""
    image = np.full((height, width, 3), 32, dtype=np.uint8)
    scale = max(0.5, width / 800)
    size, _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    origin = ((width - size[0]) // 2, (height + size[1]) // 2)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (200, 200, 200), 2)
    return image


class _Mailbox:
    """A one-slot box: put replaces, take waits for something new."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: tuple[Frame, float] | None = None
        self.replaced = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._item is not None:
                self.replaced += 1
            self._item = (frame, time.monotonic())
            self._cond.notify()

    def take(self, timeout: float) -> tuple[Frame, float] | None:
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item


class CameraRuntime:
    """Runs one camera; see the module docstring."""

    def __init__(
        self,
        config: CameraConfig,
        build_masker: MaskerFactory,
        open_frames: FrameSourceFactory,
        *,
        recorder: SegmentRecorder | None = None,
        original_recorder: SegmentRecorder | None = None,
        stall_timeout: float = 2.0,
        max_latency: float = 1.0,
        reconnect_max_delay: float = 30.0,
    ) -> None:
        self.config = config
        self.masked = LatestFrame()
        self.original = LatestFrame()
        """Unmasked pictures: only for the authorised view, never for a masked output."""
        self._build_masker = build_masker
        self._open_frames = open_frames
        self._masker = build_masker(config.masking, config.fps)
        self._masker_lock = threading.Lock()
        self._recorder = recorder
        self._original_recorder = original_recorder
        self._stall_timeout = stall_timeout
        self._max_latency = max_latency
        self._reconnect_max_delay = reconnect_max_delay
        self._mailbox = _Mailbox()
        # About a second of video: enough to ride out a slow encode, and at most
        # 2 x fps pictures held (about 80 MB at 720p, 15 fps) when encoding falls behind.
        self._to_record: queue.Queue[tuple[Image, Image]] = queue.Queue(
            maxsize=max(2, round(config.fps))
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._status = CameraStatus()
        self._status_lock = threading.Lock()
        self._latencies: list[float] = []
        self._last_size = (config.width, config.height)
        self._last_publish = time.monotonic()

    # -- control --------------------------------------------------------------

    @property
    def camera_id(self) -> str:
        return self.config.id

    def status(self) -> CameraStatus:
        with self._status_lock:
            return self._status

    def start(self) -> None:
        for name, target in (
            ("read", self._read_loop),
            ("mask", self._mask_loop),
            ("watchdog", self._watchdog_loop),
            ("record", self._record_loop),
        ):
            thread = threading.Thread(target=target, name=f"camera-{self.camera_id}-{name}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        try:
            for thread in self._threads:
                thread.join(timeout=10)
        finally:
            self._threads.clear()
            for recorder in (self._recorder, self._original_recorder):
                if recorder is not None:
                    recorder.close()
            self._set(state=CameraState.STOPPED)

    def apply_masking(self, masking: VeilConfig) -> None:
        """Build the new configuration, then swap it in between two frames.

        Raises whatever building raises (ConfigError, ModelError): the running
        configuration stays in that case.
        """
        self.swap_masker(self.prepare_masker(masking), masking)

    def prepare_masker(self, masking: VeilConfig) -> Masker:
        """Build (and so validate) a masker for ``masking`` without touching the running one."""
        return self._build_masker(masking, self.config.fps)

    def swap_masker(self, masker: Masker, masking: VeilConfig) -> None:
        """Swap in a masker built by :meth:`prepare_masker`, between two frames."""
        with self._masker_lock:
            self._masker = masker
            self.config = self.config.model_copy(update={"masking": masking})

    def reset_background(self) -> None:
        with self._masker_lock:
            self._masker.reset_background()

    # -- threads ----------------------------------------------------------------

    def _read_loop(self) -> None:
        delay = _FIRST_RETRY_S
        while not self._stop.is_set():
            opened = time.monotonic()
            try:
                period = 1.0 / self.config.fps if self._paced() else 0.0
                next_at = time.monotonic()
                for frame in self._open_frames(self.config):
                    if self._stop.is_set():
                        return
                    self._mailbox.put(frame)
                    self._bump(frames_in=1)
                    if period:
                        next_at += period
                        self._stop.wait(max(0.0, next_at - time.monotonic()))
                raise EOFError("the source ended")
            except Exception as error:  # noqa: BLE001 - any source failure: reconnect
                # The back-off starts again only after a connection that lasted: a camera
                # that sends two frames and drops is not reopened twice a second forever.
                if time.monotonic() - opened >= _STABLE_S:
                    delay = _FIRST_RETRY_S
                log.warning("camera %s: %s; reconnecting in %.1f s", self.camera_id, error, delay)
                self._set(last_error=str(error))
                self._bump(reconnects=1)
                self._stop.wait(delay)
                delay = min(delay * 2, self._reconnect_max_delay)

    def _paced(self) -> bool:
        source = self.config.source
        return source == "demo" or ("://" not in source and not source.startswith("webcam:"))

    def _mask_loop(self) -> None:
        while not self._stop.is_set():
            item = self._mailbox.take(timeout=0.2)
            if item is None:
                continue
            frame, arrived = item
            # Held while masking: a swap or a background reset happens between two frames,
            # never while a masker is half way through one.
            with self._masker_lock:
                try:
                    masked = self._masker.process(frame).image
                except Exception:  # the pipeline already fails closed; this is a last guard
                    log.exception("camera %s: masking failed", self.camera_id)
                    masked = no_signal_image(frame.width, frame.height, "MASKING ERROR")
            latency = time.monotonic() - arrived
            if latency > self._max_latency:
                masked = no_signal_image(frame.width, frame.height, "MASKED: FELL BEHIND")
                self._bump(frames_late=1)
            self._last_size = (frame.width, frame.height)
            self.masked.publish(masked)
            self.original.publish(frame.image)
            self._last_publish = time.monotonic()
            self._record_latency(latency)
            self._bump(frames_out=1)
            self._set(state=CameraState.LIVE, frames_dropped=self._mailbox.replaced)
            if self._recorder is not None or self._original_recorder is not None:
                try:
                    self._to_record.put_nowait((masked, frame.image))
                except queue.Full:
                    self._bump(frames_unrecorded=1)

    def _record_loop(self) -> None:
        """Encode queued frames; after stop, finish what is queued, then end."""
        while True:
            try:
                masked, original = self._to_record.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            self._record(masked, original)

    def _record(self, masked: Image, original: Image) -> None:
        try:
            if self._recorder is not None:
                self._recorder.write(masked)
            if self._original_recorder is not None:
                self._original_recorder.write(np.ascontiguousarray(original))
        except Exception as error:  # recording trouble must not stop live masking
            log.exception("camera %s: recording failed", self.camera_id)
            self._set(last_error=f"recording: {error}")

    def _watchdog_loop(self) -> None:
        while not self._stop.wait(self._stall_timeout / 4):
            if time.monotonic() - self._last_publish > self._stall_timeout:
                w, h = self._last_size
                self.masked.publish(no_signal_image(w, h))
                self.original.publish(no_signal_image(w, h))
                self._bump(no_signal_frames=1)
                self._set(state=CameraState.NO_SIGNAL)

    # -- status ---------------------------------------------------------------

    def _record_latency(self, latency: float) -> None:
        self._latencies.append(latency * 1000)
        if len(self._latencies) > 300:
            del self._latencies[:100]
        arr = np.asarray(self._latencies)
        self._set(
            latency_ms_p50=float(np.percentile(arr, 50)),
            latency_ms_p95=float(np.percentile(arr, 95)),
        )

    def _bump(self, **counts: int) -> None:
        with self._status_lock:
            updates = {k: getattr(self._status, k) + v for k, v in counts.items()}
            self._status = replace(self._status, **updates)

    def _set(self, **values: object) -> None:
        with self._status_lock:
            self._status = replace(self._status, **values)  # type: ignore[arg-type]


def frame_from_image(image: Image, index: int, fps: float, camera_id: str) -> Frame:
    """A Frame for a generated picture, timed at the camera's frame rate."""
    rate = Fraction(fps).limit_denominator(1001)
    return Frame(image=image, pts=index, time_base=1 / rate, index=index, camera_id=camera_id)


def recordings_root(data_dir: Path) -> Path:
    return Path(data_dir) / "recordings"
