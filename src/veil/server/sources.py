"""Frame sources for the gateway's cameras: one generator of Frames per camera.

:func:`open_frames` is the gateway's default ``FrameSourceFactory``. It picks the reader
from the camera's ``source``:

- ``demo``: the built-in synthetic scene (veil.media.synthetic), generated live at the
  camera's width, height and frame rate, endlessly (the camera paces it);
- a file path: played in a loop (the camera paces it to its ``fps``);
- ``rtsp://`` / ``rtsps://``: read over the camera's ``transport`` (TCP or UDP);
- ``http://`` / ``https://``: MJPEG or any stream FFmpeg reads;
- ``webcam:/dev/videoN``: a local V4L2 device via PyAV.

Frames keep the decoder's ``corrupt`` flag (the masker then masks them fully) and are
stamped with the camera id; file loops are renumbered so index and pts keep increasing.
A source that fails raises; the camera reconnects with back-off.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.error
import av.logging

from veil.core.errors import MediaDecodeError, MediaError, MediaNotFoundError
from veil.core.frame import Frame
from veil.media.source import VideoSource, open_source
from veil.media.synthetic import scene_frames
from veil.server.site_config import CameraConfig, Transport

log = logging.getLogger(__name__)

DEMO = "demo"
WEBCAM_PREFIX = "webcam:"
_URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")
_OPEN_TIMEOUT_S = 10.0
_READ_TIMEOUT_S = 10.0
_ENDLESS = 2**62


def redact_source(source: str) -> str:
    """The source with any password in a URL replaced by ``***`` (for lists and logs)."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@:]*):[^/@]*@", r"\1\2:***@", source)


def open_frames(config: CameraConfig) -> Iterator[Frame]:
    """Frames of the camera's source; see the module docstring."""
    source = config.source.strip()
    if source == DEMO:
        return _demo_frames(config)
    if source.startswith(WEBCAM_PREFIX):
        return _webcam_frames(config, source[len(WEBCAM_PREFIX) :])
    match = _URL.match(source)
    if match is None:
        return _file_frames(config, Path(source))
    scheme = match["scheme"].lower()
    if scheme in ("rtsp", "rtsps"):
        return _rtsp_frames(config, source)
    return _stamped(config, _read_once(open_source(source)))


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _demo_frames(config: CameraConfig) -> Iterator[Frame]:
    rate = _rate(config.fps)
    time_base = 1 / rate
    images = scene_frames(config.width, config.height, _ENDLESS, rate)
    for index, image in enumerate(images):
        yield Frame(image=image, pts=index, time_base=time_base, index=index, camera_id=config.id)


def _read_once(source: VideoSource) -> Iterator[Frame]:
    with source:
        yield from source.frames()


def _stamped(config: CameraConfig, frames: Iterator[Frame]) -> Iterator[Frame]:
    for frame in frames:
        yield frame.replace(camera_id=config.id)


def _file_frames(config: CameraConfig, path: Path) -> Iterator[Frame]:
    """The file over and over, renumbered at the camera's frame rate."""
    if not path.is_file():
        raise MediaNotFoundError(
            f"camera {config.id}: the source file {path} does not exist",
            hint="give an existing video file, 'demo', rtsp://..., http://... or webcam:/dev/...",
        )
    rate = _rate(config.fps)
    time_base = 1 / rate
    index = 0
    while True:
        before = index
        for frame in _read_once(open_source(path)):
            yield Frame(
                image=frame.image,
                pts=index,
                time_base=time_base,
                index=index,
                camera_id=config.id,
                corrupt=frame.corrupt,
            )
            index += 1
        if index == before:
            raise MediaDecodeError(f"camera {config.id}: {path} holds no frames")


def _count_decoder_errors() -> None:
    """As open_source does: FFmpeg's ERROR messages must reach PyAV's error counter, the only
    sign of concealed damage (a damaged frame is then fully masked)."""
    level = av.logging.get_level()
    if level is None or level < av.logging.ERROR:
        av.logging.set_level(av.logging.ERROR)
    libav = logging.getLogger("libav")
    if not any(isinstance(h, logging.NullHandler) for h in libav.handlers):
        libav.addHandler(logging.NullHandler())


def _open_av(uri: str, fmt: str | None, options: dict[str, str]) -> VideoSource:
    _count_decoder_errors()
    try:
        container = av.open(
            uri, mode="r", format=fmt, options=options, timeout=(_OPEN_TIMEOUT_S, _READ_TIMEOUT_S)
        )
    except av.error.FFmpegError as error:
        raise MediaError(
            f"cannot open {redact_source(uri)}: {error.strerror or error}",
            hint="check the address, the credentials and that the camera is on",
        ) from error
    streams = container.streams.video
    if not streams:
        container.close()
        raise MediaDecodeError(f"{redact_source(uri)} has no video stream")
    return VideoSource(uri, container, streams[0])


def _rtsp_frames(config: CameraConfig, uri: str) -> Iterator[Frame]:
    if config.transport is Transport.TCP:
        # open_source reads RTSP over TCP (and counts decoder damage).
        return _stamped(config, _read_once(open_source(uri)))
    options = {"rtsp_transport": "udp", "buffer_size": str(4 * 1024 * 1024)}
    return _stamped(config, _read_once(_open_av(uri, None, options)))


def _webcam_frames(config: CameraConfig, device: str) -> Iterator[Frame]:
    if not device.startswith("/dev/"):
        raise MediaNotFoundError(
            f"camera {config.id}: webcam source {device!r} is not a device path",
            hint="write it as webcam:/dev/video0",
        )
    if not Path(device).exists():
        raise MediaNotFoundError(
            f"camera {config.id}: no webcam at {device}",
            hint="list devices with 'ls /dev/video*'; is the camera plugged in?",
        )
    options = {
        "framerate": str(_rate(config.fps)),
        "video_size": f"{config.width}x{config.height}",
    }
    return _stamped(config, _read_once(_open_av(device, "v4l2", options)))
