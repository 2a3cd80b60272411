"""Video sinks on PyAV: mp4/mov (H.264), mkv/avi (FFV1, lossless), PNG image sequences.

Nothing that looks finished appears until the output is complete:

- A video file is written to a hidden temporary name in the output's folder
  (``.NAME.partial-XXXX.EXT``, keeping the extension so FFmpeg picks the muxer) and
  renamed over the final name by :meth:`VideoSink.close` (one atomic ``os.replace``).
- An image sequence (``out/%06d.png``) is written into a hidden temporary folder beside
  the output folder. When the output folder does not exist yet, the whole folder is
  renamed into place at once (atomic). When it exists, the files are moved in one by one
  at the end; each file appears whole, but a crash while moving can leave part of the
  sequence, so prefer a new folder.
- On failure (:meth:`VideoSink.abort`, or an exception inside ``with``) the temporary
  file or folder is removed. An existing output is replaced only with ``overwrite=True``.

Encoder choices (the trade-off in one line each):

- ``.mp4``/``.mov``: H.264 (libx264, crf 18, preset veryfast, yuv420p; yuv444p when the
  picture has an odd width or height), AAC audio. Small, plays everywhere; masks are
  exact up to codec noise at their edges.
- ``.mkv``/``.avi``: FFV1 level 3 with slice CRCs in ``bgr0``, exactly lossless for BGR
  frames, FLAC (mkv) or PCM (avi) audio. Large; the pixels are exactly Veil's.
- ``%d`` pattern with ``.png``: one lossless PNG per frame; no timestamps, no audio.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import av.error
import cv2
import numpy as np
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from veil.core.errors import OutputError, UsageError
from veil.core.frame import I420, Frame, Image
from veil.core.resources import Committing
from veil.media.planes import (
    BT709,
    LIMITED_RANGE,
    SMPTE170M,
    bgr_to_bt709,
    encoder_picture_type,
    to_video_frame,
)
from veil.media.source import AudioChunk, is_image_sequence


class StreamTemplate(Protocol):
    """What a sink copies from its input: a VideoSource, or a :class:`StreamSpec`."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def fps(self) -> Fraction: ...
    @property
    def time_base(self) -> Fraction: ...
    @property
    def audio_stream(self) -> AudioStream | None: ...


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A template for sinks whose frames do not come from a VideoSource."""

    width: int
    height: int
    fps: Fraction = Fraction(25)
    time_base: Fraction = Fraction(1, 25)
    audio_stream: AudioStream | None = None


@dataclass(frozen=True, slots=True)
class _Encoding:
    codec: str
    pix_fmt: str
    audio_codec: str | None
    options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)


_H264 = _Encoding(
    codec="libx264",
    pix_fmt="yuv420p",
    audio_codec="aac",
    options={"crf": "18", "preset": "veryfast"},
    # The index goes first so the file plays while it downloads.
    container_options={"movflags": "+faststart"},
)
# Level 3 adds a CRC to each slice so damage in our own outputs is detected on reading;
# g=1 makes every frame a keyframe, so one damaged frame never spreads.
_FFV1_OPTIONS = {"level": "3", "slicecrc": "1", "g": "1"}
ENCODINGS: dict[str, _Encoding] = {
    ".mp4": _H264,
    ".mov": _H264,
    ".mkv": _Encoding("ffv1", "bgr0", "flac", _FFV1_OPTIONS),
    ".avi": _Encoding("ffv1", "bgr0", "pcm_s16le", _FFV1_OPTIONS),
}
"""Output encoding by file extension."""

SEQUENCE_EXTENSIONS = (".png",)


class VideoSink(Committing):
    """Where masked frames go. Use :func:`open_sink`; call :meth:`close` to finish.

    As a context manager it closes (commits) on success and aborts on an exception.
    """

    path: Path
    """The final output path (for an image sequence, the pattern)."""

    @abstractmethod
    def write(self, frame: Frame) -> None:
        """Encode one frame (frames must come in presentation order)."""

    def write_audio(self, chunk: AudioChunk) -> None:
        """Encode decoded audio; ignored when the sink was opened without audio."""

    @property
    def wants_audio(self) -> bool:
        return False

    @property
    def takes_i420(self) -> bool:
        """True when the sink encodes 4:2:0 and takes frames' I420 planes as they are
        (:attr:`Frame.i420`); the pipeline then asks the source to keep them."""
        return False

    def encode_as_bt709(self) -> None:
        """Before the first frame: write 4:2:0 in the BT.709 matrix, as the input's planes
        are, so they pass through unconverted (BGR frames are converted to match)."""

    @property
    @abstractmethod
    def frames_written(self) -> int: ...

    @abstractmethod
    def close(self) -> None:
        """Finish the output and move it into place."""

    @abstractmethod
    def abort(self) -> None:
        """Drop everything written so far; the final path is left untouched."""


def add_video_stream(
    container: OutputContainer, codec: str, rate: Fraction, options: dict[str, str]
) -> VideoStream:
    """``container.add_stream`` narrowed to video (PyAV types it as any stream)."""
    stream = container.add_stream(codec, rate=rate, options=options)
    if not isinstance(stream, VideoStream):
        raise OutputError(f"{codec} is not a video encoder")
    return stream


def add_audio_stream(container: OutputContainer, codec: str, rate: int) -> AudioStream:
    """``container.add_stream`` narrowed to audio."""
    stream = container.add_stream(codec, rate=rate)
    if not isinstance(stream, AudioStream):
        raise OutputError(f"{codec} is not an audio encoder")
    return stream


def from_bgr(image: Image, pix_fmt: str | None) -> VideoFrame:
    """A PyAV frame for an encoder taking ``pix_fmt``; the inverse of ``source.to_bgr``."""
    height, width = image.shape[:2]
    if pix_fmt == "yuv420p" and not (width | height) & 1:
        planes = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
        return to_video_frame(I420.from_array(planes))
    return VideoFrame.from_ndarray(image, format="bgr24")


def _output_error(path: Path, error: BaseException) -> OutputError:
    code = getattr(error, "errno", None)
    if code == errno.ENOSPC:
        return OutputError(f"{path}: the disk is full", hint="free some space or write elsewhere")
    if code == errno.EFBIG:
        return OutputError(
            f"{path}: the file grew past the size this disk or account allows",
            hint="free some space, raise the limit (ulimit -f) or write elsewhere",
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(
            f"{path.parent}: cannot write in this folder (permission denied)",
            hint="choose a folder you can write to",
        )
    return OutputError(f"{path}: cannot write the output ({error})")


@contextlib.contextmanager
def _aborting_on_failure(
    sink: VideoSink,
    expected: tuple[type[Exception], ...],
    to_output_error: Callable[[Exception], OutputError],
) -> Iterator[None]:
    """Abort ``sink`` when the block fails, so no temporary output is left behind.

    ``expected`` errors are reported as ``to_output_error(error)``; anything else (a
    bug, Ctrl-C) aborts the sink too and propagates as it is.
    """
    try:
        yield
    except expected as error:
        sink.abort()
        raise to_output_error(error) from error
    except BaseException:
        sink.abort()
        raise


def _setup_error(path: Path) -> Callable[[Exception], OutputError]:
    """How an encoder that cannot be opened for ``path`` is reported."""
    return lambda error: OutputError(f"{path}: cannot set up the encoder ({error})")


def _close_quietly(container: OutputContainer | None) -> None:
    """Close a container that is being given up: its own errors no longer matter."""
    if container is not None:
        with contextlib.suppress(Exception):
            container.close()


def _temp_name(base: Path, suffix: str) -> Path:
    return base.with_name(f"{base.name}.partial-{secrets.token_hex(4)}{suffix}")


def _create_temp_file(path: Path) -> Path:
    """A new empty hidden file beside ``path``, keeping its extension.

    Created with the usual 0666-minus-umask mode (``mkstemp`` would make it 0600, and
    the finished output would keep that after the rename).
    """
    for _ in range(100):
        tmp = _temp_name(path.with_name(f".{path.stem}"), path.suffix)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise OutputError(f"{path.parent}: cannot create a temporary file")


def _create_temp_folder(base: Path) -> Path:
    """A new hidden folder named after ``base`` (usual 0777-minus-umask mode)."""
    for _ in range(100):
        tmp = _temp_name(base, "")
        try:
            tmp.mkdir(0o777)
        except FileExistsError:
            continue
        return tmp
    raise OutputError(f"{base.parent}: cannot create a temporary folder")


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise OutputError(
            f"{folder}: the output folder does not exist", hint="create it first (mkdir -p)"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(
            f"{folder}: cannot write in this folder (permission denied)",
            hint="choose a folder you can write to",
        )


class FileSink(VideoSink):
    """A video file written through a temporary name."""

    def __init__(
        self, path: Path, like: StreamTemplate, encoding: _Encoding, keep_audio: bool
    ) -> None:
        self.path = path
        self._count = 0
        self._last_pts: int | None = None
        self._done = False
        self._bt709 = False
        self._tmp = _create_temp_file(path)
        with _aborting_on_failure(self, (av.error.FFmpegError,), _setup_error(path)):
            self._container: OutputContainer = av.open(
                str(self._tmp), mode="w", container_options=encoding.container_options
            )
            self._video = self._add_video(like, encoding)
            self._audio = self._add_audio(like, encoding) if keep_audio else None

    def _add_video(self, like: StreamTemplate, encoding: _Encoding) -> VideoStream:
        stream = add_video_stream(self._container, encoding.codec, like.fps, dict(encoding.options))
        stream.width = like.width
        stream.height = like.height
        odd = like.width % 2 or like.height % 2
        # 4:2:0 needs even sizes; 4:4:4 keeps odd ones at some cost in compatibility.
        stream.pix_fmt = "yuv444p" if odd and encoding.pix_fmt == "yuv420p" else encoding.pix_fmt
        if stream.pix_fmt.startswith("yuv"):
            # Say which matrix the pictures were converted with (BT.601, limited range, as
            # OpenCV and swscale do by default): untagged HD video is shown as BT.709 by
            # most players, which would shift every colour of an exported recording.
            stream.codec_context.colorspace = SMPTE170M
            stream.codec_context.color_range = LIMITED_RANGE
        # The input's time base, so every pts is copied exactly.
        self.time_base = like.time_base
        stream.codec_context.time_base = like.time_base
        stream.time_base = like.time_base
        return stream

    def _add_audio(self, like: StreamTemplate, encoding: _Encoding) -> AudioStream | None:
        source = like.audio_stream
        if source is None or encoding.audio_codec is None:
            return None
        ctx = source.codec_context
        stream = add_audio_stream(self._container, encoding.audio_codec, ctx.sample_rate)
        stream.layout = ctx.layout.name
        return stream

    @property
    def wants_audio(self) -> bool:
        return self._audio is not None

    @property
    def frames_written(self) -> int:
        return self._count

    def _next_pts(self, frame: Frame) -> int:
        if frame.pts is None:
            pts = round(self._count / self._fps_guess() / self.time_base)
        else:
            pts = round(frame.pts * frame.time_base / self.time_base)
        # Muxers refuse repeated or backward timestamps; nudge rather than fail.
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def _fps_guess(self) -> Fraction:
        rate = self._video.codec_context.framerate
        return Fraction(rate) if rate else Fraction(25)

    @property
    def takes_i420(self) -> bool:
        return self._video.pix_fmt == "yuv420p"

    def encode_as_bt709(self) -> None:
        if self._count:
            raise UsageError(f"{self.path}: the colour matrix is chosen before the first frame")
        if self.takes_i420:
            self._bt709 = True
            self._video.codec_context.colorspace = BT709

    def write(self, frame: Frame) -> None:
        i420 = frame.i420
        if i420 is not None and self.takes_i420 and i420.bt709 == self._bt709:
            # Decoded as 4:2:0 and masked in its planes: straight to the encoder.
            video_frame = to_video_frame(i420)
        elif self._bt709:
            video_frame = bgr_to_bt709(frame.image)
        else:
            video_frame = from_bgr(frame.image, self._video.pix_fmt)
        encoder_picture_type(video_frame, frame.picture_type)
        video_frame.pts = self._next_pts(frame)
        video_frame.time_base = self.time_base
        try:
            self._container.mux(self._video.encode(video_frame))
        except av.error.FFmpegError as error:
            raise _output_error(self.path, error) from error
        self._count += 1

    def write_audio(self, chunk: AudioChunk) -> None:
        if self._audio is None:
            return
        try:
            for audio_frame in chunk.frames:
                self._container.mux(self._audio.encode(audio_frame))
        except av.error.FFmpegError as error:
            raise _output_error(self.path, error) from error

    def close(self) -> None:
        if self._done:
            return
        with _aborting_on_failure(
            self, (av.error.FFmpegError, OSError), lambda error: _output_error(self.path, error)
        ):
            self._container.mux(self._video.encode(None))
            if self._audio is not None:
                self._container.mux(self._audio.encode(None))
            self._container.close()
            os.replace(self._tmp, self.path)
        self._done = True

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        # Absent when the sink failed before its container was opened.
        _close_quietly(getattr(self, "_container", None))
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


def sequence_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching the file names an image sequence pattern produces."""
    name = Path(pattern).name
    parts = re.split(r"(%0?\d*d)", name)
    out = []
    for part in parts:
        spec = re.fullmatch(r"%0?(\d*)d", part)
        if spec:
            width = int(spec.group(1) or 1)
            out.append(rf"\d{{{width},}}")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


class SequenceSink(VideoSink):
    """A PNG image sequence, written into a hidden folder and moved in at the end."""

    def __init__(self, pattern: Path, like: StreamTemplate, overwrite: bool) -> None:
        self.path = pattern
        self._folder = pattern.parent
        self._regex = sequence_regex(str(pattern))
        self._overwrite = overwrite
        self._count = 0
        self._done = False
        parent = self._folder.parent
        self._tmpdir = _create_temp_folder(parent / f".{self._folder.name or 'frames'}")
        with _aborting_on_failure(self, (av.error.FFmpegError,), _setup_error(pattern)):
            self._container: OutputContainer = av.open(
                str(self._tmpdir / pattern.name), mode="w", format="image2"
            )
            stream = add_video_stream(self._container, "png", like.fps, {})
            stream.width = like.width
            stream.height = like.height
            stream.pix_fmt = "rgb24"
            self._stream = stream

    @property
    def frames_written(self) -> int:
        return self._count

    def existing_files(self) -> list[Path]:
        if not self._folder.is_dir():
            return []
        return sorted(p for p in self._folder.iterdir() if self._regex.fullmatch(p.name))

    def write(self, frame: Frame) -> None:
        video_frame = VideoFrame.from_ndarray(frame.image, format="bgr24")
        video_frame.pts = self._count
        try:
            self._container.mux(self._stream.encode(video_frame))
        except av.error.FFmpegError as error:
            raise _output_error(self.path, error) from error
        self._count += 1

    def close(self) -> None:
        if self._done:
            return
        with _aborting_on_failure(
            self, (av.error.FFmpegError, OSError), lambda error: _output_error(self.path, error)
        ):
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._commit()
        self._done = True

    def _commit(self) -> None:
        if not self._folder.exists():
            os.replace(self._tmpdir, self._folder)
            return
        if self._overwrite:
            # Stale frames from a longer earlier run would otherwise look like ours.
            for old in self.existing_files():
                old.unlink()
        for new in sorted(self._tmpdir.iterdir()):
            os.replace(new, self._folder / new.name)
        self._tmpdir.rmdir()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        # Absent when the sink failed before its container was opened.
        _close_quietly(getattr(self, "_container", None))
        shutil.rmtree(self._tmpdir, ignore_errors=True)


def open_sink(
    path: str | os.PathLike[str],
    like: StreamTemplate,
    *,
    overwrite: bool = False,
    keep_audio: bool = False,
) -> VideoSink:
    """Open an output for masked frames; the encoding follows the extension.

    ``.mp4``/``.mov``: H.264; ``.mkv``/``.avi``: FFV1 lossless; ``name/%06d.png``: PNG
    images. Resolution, frame rate and timestamps are copied from ``like``. Audio is
    written only with ``keep_audio`` (audio can identify people too).

    Example::

        with open_source("in.mp4") as source, open_sink("out.mkv", source) as sink:
            for frame in source.frames():
                sink.write(frame)
    """
    text = os.fspath(path)
    target = Path(text)
    if is_image_sequence(text):
        return _open_sequence(target, like, overwrite, keep_audio)
    encoding = ENCODINGS.get(target.suffix.lower())
    if encoding is None:
        known = ", ".join(ENCODINGS)
        raise UsageError(
            f"{text}: unknown output type {target.suffix or '(no extension)'!r}",
            hint=f"use one of {known}, or an image sequence such as out/%06d.png",
        )
    _check_folder(target.parent)
    if target.is_dir():
        raise OutputError(f"{text}: is a folder", hint="give a file name such as out.mp4")
    if target.exists() and not overwrite:
        raise OutputError(f"{text}: already exists", hint="use --overwrite to replace it")
    try:
        return FileSink(target, like, encoding, keep_audio)
    except OSError as error:
        if isinstance(error, OutputError):
            raise
        raise _output_error(target, error) from error


def _open_sequence(
    pattern: Path, like: StreamTemplate, overwrite: bool, keep_audio: bool
) -> SequenceSink:
    if pattern.suffix.lower() not in SEQUENCE_EXTENSIONS:
        raise UsageError(
            f"{pattern}: image sequences are written as PNG",
            hint="end the pattern with .png, for example out/%06d.png",
        )
    if keep_audio:
        raise UsageError(
            "an image sequence cannot hold audio",
            hint="drop --keep-audio, or write .mp4 or .mkv",
        )
    _check_folder(pattern.parent.parent)
    try:
        sink = SequenceSink(pattern, like, overwrite)
    except OutputError:
        raise
    except OSError as error:
        raise _output_error(pattern, error) from error
    if sink.existing_files() and not overwrite:
        sink.abort()
        raise OutputError(
            f"{pattern.parent}: already holds frames matching {pattern.name}",
            hint="use --overwrite to replace them, or choose a new folder",
        )
    return sink
