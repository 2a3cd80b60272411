"""Video sources on PyAV: files, image sequences, RTSP and HTTP streams.

:func:`open_source` opens anything FFmpeg reads and yields :class:`~veil.core.frame.Frame`
objects (BGR, exact ``pts`` and ``time_base``). Damage is never passed on silently:

- A packet the decoder rejects is skipped and counted.
- A frame the decoder flags as corrupt, or decoded while FFmpeg logged an error, is
  yielded with ``corrupt=True`` (the pipeline then masks it fully). So are the frames
  after it until the next clean keyframe, because they are predicted from damaged
  pictures and may show anything.

FFmpeg reports most damage only through its log (H.264 conceals broken macroblocks and
says so at ERROR level), so opening a source turns PyAV's error logging on and counts
error messages around each decode call. Decoding keeps PyAV's default slice threading:
with frame threading a worker's error could be logged after the frame that caused it was
handed out, and the damage would be attributed to the wrong frame.

The limit: damage that decodes as valid data is invisible. A few bytes changed inside an
H.264 slice can decode to a wrong picture without any error, so such a frame is not
flagged; it still gets every static and dynamic mask. Formats with checksums (FFV1 with
slice CRCs, Veil's own lossless outputs) have no such blind spot.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import av.error
import av.logging
import cv2
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from numpy.typing import NDArray

from veil.core.errors import MediaDecodeError, MediaError, MediaNotFoundError, UsageError
from veil.core.frame import Frame, check_image
from veil.core.resources import Closing
from veil.media.planes import BT709, FULL_RANGE, i420_matrix, i420_view

DEFAULT_SEQUENCE_FPS = Fraction(25)
"""Frame rate given to image sequences, which carry no timing of their own."""

_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_PATTERN_RE = re.compile(r"%0?\d*d")
_LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "udp", "rtp", "srt", "tcp")
_OPEN_TIMEOUT_S = 10.0
_READ_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


def is_image_sequence(uri: str) -> bool:
    """True for a printf-style pattern such as ``frames/%06d.png``."""
    return not _URL_RE.match(uri) and bool(_PATTERN_RE.search(uri))


def _enable_error_counting() -> None:
    """Make FFmpeg's ERROR messages reach PyAV's error counter.

    PyAV drops all of FFmpeg's log by default, and with it the only sign of concealed
    damage. ERROR is the least verbose level that keeps them; a NullHandler stops
    Python's last-resort handler from printing them (Veil reports the counts itself).
    """
    level = av.logging.get_level()
    if level is None or level < av.logging.ERROR:
        av.logging.set_level(av.logging.ERROR)
    libav_logger = logging.getLogger("libav")
    if not any(isinstance(h, logging.NullHandler) for h in libav_logger.handlers):
        libav_logger.addHandler(logging.NullHandler())


def _error_count() -> int:
    return av.logging.get_last_error()[0]


def _last_error_message() -> str | None:
    last = av.logging.get_last_error()[1]
    return None if last is None else last[2].strip()


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Decoded audio frames read along with the video (only with ``with_audio``)."""

    frames: tuple[AudioFrame, ...]


@dataclass(slots=True)
class DecodeReport:
    """Damage met while reading; updated as frames are read."""

    frames: int = 0
    corrupt_frames: int = 0
    decode_errors: int = 0
    """Packets the decoder rejected, plus decode calls during which FFmpeg logged an error."""
    truncated: bool = False
    """Reading stopped on an error before the end of the input."""
    messages: list[str] = field(default_factory=list)
    """The first few error messages, for the report."""

    def note(self, message: str | None) -> None:
        if message and len(self.messages) < 5 and message not in self.messages:
            self.messages.append(message)


class VideoSource(Closing):
    """One opened input. Iterate :meth:`frames` (or :meth:`read`) once.

    Use :func:`open_source` to create one. Example::

        with open_source("in.mp4") as source:
            for frame in source.frames():
                ...
    """

    def __init__(self, uri: str, container: InputContainer, stream: VideoStream) -> None:
        self.uri = uri
        self._container = container
        self._stream = stream
        self.report = DecodeReport()
        ctx = stream.codec_context
        self.width: int = ctx.width
        self.height: int = ctx.height
        self.time_base: Fraction = stream.time_base or Fraction(1, 90000)
        self.fps: Fraction = _frame_rate(stream)
        self.bt709: bool = ctx.colorspace == BT709 and ctx.color_range != FULL_RANGE
        """The stream says its pictures use the BT.709 matrix (most HD cameras)."""
        self.frame_count: int | None = stream.frames or None
        """Frames in the input when the container says, else None (streams, some files)."""
        self.is_live: bool = uri.split("://", 1)[0].lower() in _LIVE_SCHEMES
        audio = container.streams.audio
        self.audio_stream: AudioStream | None = audio[0] if audio else None
        self._consumed = False

    def frames(self) -> Iterator[Frame]:
        """The video frames, in presentation order."""
        for item in self.read(with_audio=False):
            if isinstance(item, Frame):
                yield item

    def read(
        self, with_audio: bool = False, *, keep_i420: bool = False
    ) -> Generator[Frame | AudioChunk, None, None]:
        """Video frames, and decoded audio when ``with_audio`` and there is audio.

        ``keep_i420``: hand out frames decoded as limited-range BT.601 4:2:0 as their
        planes (:attr:`Frame.i420`), converted to BGR only if something asks for
        :attr:`Frame.image`; for pipelines that never look at pixels. Other frames are
        BGR as always.
        """
        if self._consumed:
            raise UsageError(f"{self.uri}: a source can be read only once; open it again")
        self._consumed = True
        streams: list[VideoStream | AudioStream] = [self._stream]
        if with_audio and self.audio_stream is not None:
            streams.append(self.audio_stream)
        return self._read(tuple(streams), keep_i420)

    def _read(
        self, streams: tuple[VideoStream | AudioStream, ...], keep_i420: bool
    ) -> Generator[Frame | AudioChunk, None, None]:
        state = _DamageState()
        packets = self._container.demux(*streams)
        while True:
            before = _error_count()
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.EOFError:
                break
            except av.error.FFmpegError as error:
                self._damaged(f"reading stopped early: {error}")
                self.report.truncated = True
                break
            if isinstance(packet.stream, AudioStream):
                yield from self._decode_audio(cast("av.Packet[AudioStream]", packet))
                continue
            video_packet = cast("av.Packet[VideoStream]", packet)
            yield from self._decode_video(video_packet, state, before, keep_i420)
        # Flush the decoder: frames it still holds come out now.
        yield from self._decode_video(None, state, _error_count(), keep_i420)

    def _decode_audio(self, packet: av.Packet[AudioStream]) -> Iterator[AudioChunk]:
        try:
            decoded = packet.decode()
        except av.error.FFmpegError as error:
            # Broken audio is dropped; it cannot reveal more than silence would.
            self.report.note(f"audio: {error}")
            return
        frames = tuple(f for f in decoded if isinstance(f, AudioFrame))
        if frames:
            yield AudioChunk(frames)

    def _decode_video(
        self,
        packet: av.Packet[VideoStream] | None,
        state: _DamageState,
        errors_before: int,
        keep_i420: bool,
    ) -> Iterator[Frame]:
        try:
            decoded = self._stream.decode(packet)
        except av.error.EOFError:
            return
        except av.error.FFmpegError as error:
            # The packet is lost: skip it, and distrust what is predicted from it.
            self._damaged(f"undecodable packet skipped: {error}")
            state.mark_bad(packet.pts if packet is not None else None)
            return
        clean_call = _error_count() == errors_before and not (packet and packet.is_corrupt)
        if not clean_call:
            self._damaged(_last_error_message() or "the decoder reported damage")
            state.mark_bad(packet.pts if packet is not None else None)
        for video_frame in decoded:
            corrupt = state.judge(video_frame, clean_call)
            yield self._to_frame(video_frame, corrupt, keep_i420)

    def _to_frame(self, video_frame: VideoFrame, corrupt: bool, keep_i420: bool = False) -> Frame:
        index = self.report.frames
        self.report.frames += 1
        if corrupt:
            self.report.corrupt_frames += 1
        time_base = Fraction(video_frame.time_base or self.time_base)
        if keep_i420 and (matrix := i420_matrix(video_frame)) is not None:
            # No copy: the decoder's own picture, read-only.
            planes = i420_view(video_frame, bt709=matrix == "bt709")
            return Frame(
                None,
                video_frame.pts,
                time_base,
                index,
                corrupt=corrupt,
                i420=planes,
                picture_type=int(video_frame.pict_type),
            )
        image = check_image(to_bgr(video_frame), "decoded frame")
        return Frame(
            image,
            video_frame.pts,
            time_base,
            index,
            corrupt=corrupt,
            picture_type=int(video_frame.pict_type),
        )

    def _damaged(self, message: str) -> None:
        self.report.decode_errors += 1
        self.report.note(message)
        # Callers report the totals (DecodeReport); each event is detail.
        log.info("%s: %s", self.uri, message)

    def close(self) -> None:
        self._container.close()


def to_bgr(video_frame: VideoFrame) -> NDArray[np.uint8]:
    """The frame as BGR.

    Limited-range BT.601 4:2:0 (what encoders write unless told otherwise) goes through
    OpenCV: swscale's default path darkens every round trip by about 2 levels, OpenCV's
    is exact on average and no slower, and the sink uses the same matrix back. Anything
    else (BT.709, full range, 4:4:4, 10-bit) goes through swscale, which reads the tags.
    """
    if i420_matrix(video_frame) == "bt601":
        planes = video_frame.to_ndarray()
        return np.asarray(cv2.cvtColor(planes, cv2.COLOR_YUV2BGR_I420), dtype=np.uint8)
    return check_image(video_frame.to_ndarray(format="bgr24"), "decoded frame")


@dataclass(slots=True)
class _DamageState:
    """Which decoded frames can be trusted.

    Damage is noted per packet, but a decoder hands frames out later than it takes
    their packets (B-frame reordering), so a damaged packet is remembered by its pts and
    the frame is judged when it comes out. Every frame after damage is distrusted until
    a keyframe that is itself clean: only that one depends on nothing earlier.
    """

    damaged: bool = False
    bad_pts: set[int] = field(default_factory=set)
    hold: int = 0
    """Keyframes that may not end the damage: a bad packet without pts cannot be matched
    to its frame, which may come out after the next keyframe."""

    def mark_bad(self, pts: int | None) -> None:
        self.damaged = True
        if pts is None:
            self.hold = 2
        else:
            self.bad_pts.add(pts)

    def judge(self, frame: VideoFrame, clean_call: bool) -> bool:
        """True when ``frame`` must be treated as corrupt (fully masked)."""
        bad = frame.is_corrupt or not clean_call or frame.pts in self.bad_pts
        if frame.pts is not None:
            self.bad_pts.discard(frame.pts)
        if self.damaged and frame.key_frame and not bad:
            if self.hold == 0:
                self.damaged = False
            else:
                self.hold -= 1
        return bad or self.damaged


def _frame_rate(stream: VideoStream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return DEFAULT_SEQUENCE_FPS


def _open_options(uri: str, fps: Fraction | None) -> tuple[str | None, dict[str, str]]:
    """The demuxer to force (None: let FFmpeg probe) and its options."""
    scheme = uri.split("://", 1)[0].lower() if _URL_RE.match(uri) else ""
    if scheme in ("rtsp", "rtsps"):
        # TCP: UDP loses packets on busy networks, and every loss masks frames.
        return None, {"rtsp_transport": "tcp"}
    if is_image_sequence(uri):
        rate = fps or DEFAULT_SEQUENCE_FPS
        return "image2", {"framerate": str(rate)}
    return None, {}


def open_source(uri: str | os.PathLike[str], *, fps: Fraction | None = None) -> VideoSource:
    """Open a video for reading.

    ``uri`` is a file (mp4, mkv, avi, mov, ...), an image sequence pattern such as
    ``frames/%06d.png`` (read at ``fps``, default 25), or an ``rtsp://`` (over TCP) or
    ``http://`` URL. Raises :class:`MediaNotFoundError` when a file does not exist and
    :class:`MediaDecodeError` when the input is not a video FFmpeg can decode.

    Example::

        with open_source("frames/%06d.png", fps=Fraction(30)) as source:
            print(source.width, source.height, source.fps)
    """
    text = os.fspath(uri)
    if fps is not None and fps <= 0:
        raise UsageError(f"frame rate must be positive, got {fps}")
    is_url = bool(_URL_RE.match(text))
    if not is_url and not is_image_sequence(text):
        _check_file(text)
    _enable_error_counting()
    fmt, options = _open_options(text, fps)
    try:
        container = av.open(
            text,
            mode="r",
            format=fmt,
            options=options,
            timeout=(_OPEN_TIMEOUT_S, _READ_TIMEOUT_S) if is_url else None,
        )
    except av.error.FileNotFoundError as error:
        raise MediaNotFoundError(
            f"{text}: no such file", hint="check the path or the image sequence pattern"
        ) from error
    except av.error.FFmpegError as error:
        if is_url:
            raise MediaError(
                f"{text}: cannot open the stream ({error.strerror or error})",
                hint="check the URL, the network and that the camera or server is up",
            ) from error
        raise MediaDecodeError(
            f"{text}: cannot be read as video ({error.strerror or error})",
            hint="the file may be truncated, corrupt or not a video; check it with ffprobe",
        ) from error
    try:
        return VideoSource(text, container, _video_stream(text, container))
    except BaseException:
        container.close()
        raise


def _check_file(path: str) -> None:
    p = Path(path)
    if not p.exists():
        raise MediaNotFoundError(f"{path}: no such file", hint="check the path")
    if p.is_dir():
        raise MediaDecodeError(
            f"{path}: is a folder, not a video",
            hint="for an image sequence give a pattern such as folder/%06d.png",
        )
    if p.stat().st_size == 0:
        raise MediaDecodeError(f"{path}: the file is empty", hint="check that it was copied fully")


def _video_stream(uri: str, container: InputContainer) -> VideoStream:
    streams = container.streams.video
    if not streams:
        raise MediaDecodeError(
            f"{uri}: has no video stream",
            hint="give a file that contains video (ffprobe lists its streams)",
        )
    stream = streams[0]
    ctx = stream.codec_context
    if ctx is None or not ctx.width or not ctx.height:
        codec = getattr(ctx, "name", None) or "unknown"
        raise MediaDecodeError(
            f"{uri}: the video codec ({codec}) cannot be decoded",
            hint="convert the video with ffmpeg to H.264 or another common codec",
        )
    return stream
