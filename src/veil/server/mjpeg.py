"""Live pictures over HTTP: JPEG snapshots and MJPEG (multipart/x-mixed-replace) streams.

A stream reads :meth:`LatestFrame.wait_newer`: each viewer gets the newest picture when it
is ready for one, so a slow viewer skips pictures instead of queueing them (no buffer grows,
whatever the number of viewers). Waiting and JPEG encoding run in worker threads, so the
event loop never blocks on them, and viewers of one stream share each picture's encoding
(:func:`jpeg_of`).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable

import anyio
import cv2
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from veil.core.errors import MediaError, VeilError
from veil.core.frame import Image
from veil.server.latest import LatestFrame, Published

MAX_VIEWERS = 32
"""Open MJPEG streams per picture source; more get 503 (each costs a worker thread now and
then, and a JPEG encoding per picture shared by all)."""

BOUNDARY = "veilframe"
MEDIA_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
JPEG_QUALITY = 85


def encode_jpeg(image: Image, quality: int = JPEG_QUALITY) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MediaError("the picture could not be encoded as JPEG")
    return bytes(buffer.tobytes())


_cache: weakref.WeakKeyDictionary[LatestFrame, tuple[int, int, bytes]] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def jpeg_of(frames: LatestFrame, published: Published, quality: int = JPEG_QUALITY) -> bytes:
    """``published`` as JPEG, encoded once however many viewers ask for it."""
    with _cache_lock:
        cached = _cache.get(frames)
    if cached is not None and cached[0] == published.seq and cached[1] == quality:
        return cached[2]
    data = encode_jpeg(published.image, quality)
    with _cache_lock:
        current = _cache.get(frames)
        if current is None or current[0] < published.seq:
            _cache[frames] = (published.seq, quality, data)
    return data


class TooManyViewersError(VeilError):
    """A stream already has MAX_VIEWERS viewers."""

    http_status = 503


_viewers: weakref.WeakKeyDictionary[LatestFrame, int] = weakref.WeakKeyDictionary()


def check_room(frames: LatestFrame, what: str) -> None:
    """Refuse (503) a new viewer of ``frames`` when MAX_VIEWERS are watching already."""
    with _cache_lock:
        watching = _viewers.get(frames, 0)
    if watching >= MAX_VIEWERS:
        raise TooManyViewersError(
            f"{what} has {watching} viewers already (at most {MAX_VIEWERS})",
            hint="try again later, or use the RTSP output for many viewers",
        )


def viewers(frames: LatestFrame) -> int:
    """How many MJPEG streams of ``frames`` are open."""
    with _cache_lock:
        return _viewers.get(frames, 0)


def _seat(frames: LatestFrame, change: int) -> None:
    with _cache_lock:
        _viewers[frames] = max(0, _viewers.get(frames, 0) + change)


def part(jpeg: bytes) -> bytes:
    """One multipart part holding a JPEG picture."""
    head = (
        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    ).encode("ascii")
    return head + jpeg + b"\r\n"


class MjpegResponse(StreamingResponse):
    """A StreamingResponse that always closes its stream when the response ends.

    When a viewer leaves, the server's ``send`` fails while the stream waits at its
    ``yield``; Starlette then drops the stream without closing it, and its ``finally`` (the
    viewer count, the audit of an unmasked view's end) would run whenever the garbage
    collector gets to it. Closing it here runs it at once.
    """

    def __init__(self, parts: AsyncIterator[bytes], headers: dict[str, str]) -> None:
        super().__init__(parts, media_type=MEDIA_TYPE, headers=headers)
        self._parts = parts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self._parts, "aclose", None)
            if close is not None:
                await close()


async def mjpeg_parts(
    frames: LatestFrame,
    *,
    stopped: Callable[[], bool],
    allowed: Callable[[], bool] | None = None,
    max_frames: int | None = None,
    recheck_s: float = 1.0,
    quality: int = JPEG_QUALITY,
    on_close: Callable[[int, float], None] | None = None,
) -> AsyncIterator[bytes]:
    """Parts of an MJPEG stream of ``frames``, newest picture first, until ``stopped()``.

    ``allowed`` is called in a worker thread at most every ``recheck_s`` seconds (and before
    the first picture); the stream ends as soon as it returns False (an unmask grant that
    expired or was ended). ``max_frames`` ends it after that many pictures. ``on_close`` is
    called with the pictures sent and the seconds open when the stream ends for any reason
    (the viewer left, the grant ended, the server stops).
    """
    seq = 0
    sent = 0
    opened = time.monotonic()
    checked_at = float("-inf")
    _seat(frames, +1)
    try:
        while not stopped():
            if allowed is not None and anyio.current_time() - checked_at >= recheck_s:
                if not await anyio.to_thread.run_sync(allowed):
                    return
                checked_at = anyio.current_time()
            published = await anyio.to_thread.run_sync(frames.wait_newer, seq, 0.5)
            if published is None:
                continue
            seq = published.seq
            jpeg = await anyio.to_thread.run_sync(jpeg_of, frames, published, quality)
            yield part(jpeg)
            sent += 1
            if max_frames is not None and sent >= max_frames:
                return
    finally:
        _seat(frames, -1)
        if on_close is not None:
            on_close(sent, time.monotonic() - opened)
