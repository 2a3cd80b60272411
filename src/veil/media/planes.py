"""4:2:0 pictures that live in PyAV frames: read without copying, drawn into, encoded.

The decoder's frames are viewed in place (:func:`i420_view`): a frame no mask touches goes
from the decoder to the encoder without one copy, and a masked one is copied once, into a
new PyAV frame (:func:`new_i420`), drawn into there and handed to the encoder as it is
(:func:`to_video_frame`). At 1080p each avoided copy of a picture saves about 0.25 ms of a
12 ms frame budget: memory traffic also slows x264's threads working beside it.
"""

from __future__ import annotations

import numpy as np
from av.video.frame import PictureType, VideoFrame
from av.video.plane import VideoPlane
from numpy.typing import NDArray

from veil.core.frame import I420, Plane


def _plane_view(plane: VideoPlane, rows: int, columns: int) -> Plane:
    """The plane's pixels as a (rows, columns) view; rows may be padded in memory."""
    flat = np.frombuffer(memoryview(plane), np.uint8, count=rows * plane.line_size)
    return flat.reshape(rows, plane.line_size)[:, :columns]


def _views(frame: VideoFrame) -> tuple[Plane, Plane, Plane]:
    w, h = frame.width, frame.height
    y, u, v = frame.planes
    return _plane_view(y, h, w), _plane_view(u, h // 2, w // 2), _plane_view(v, h // 2, w // 2)


# FFmpeg's colour tags (AVColorSpace, AVColorRange), as PyAV gives and takes them.
BT709 = 1
"""AVColorSpace: the BT.709 matrix (most HD cameras)."""
SMPTE170M = 6
"""AVColorSpace: the BT.601 matrix; what OpenCV's conversions and Veil's outputs use."""
BT601_OR_UNSPECIFIED = frozenset({2, 5, SMPTE170M})
"""AVColorSpace values the BT.601 matrix fits: unspecified, BT470BG, SMPTE170M."""
LIMITED_RANGE = 1
"""AVColorRange: MPEG / TV range (16-235)."""
FULL_RANGE = 2
"""AVColorRange: JPEG range (0-255)."""


def i420_matrix(frame: VideoFrame) -> str | None:
    """``"bt601"`` or ``"bt709"`` for limited-range 8-bit 4:2:0 with even sides in that
    matrix (untagged counts as BT.601); None for anything else (full range, 4:2:2, 10-bit,
    odd sides, other matrices), which is converted to BGR."""
    if (
        frame.format.name != "yuv420p"
        or (frame.width | frame.height) & 1
        or frame.color_range == FULL_RANGE
    ):
        return None
    if frame.colorspace in BT601_OR_UNSPECIFIED:
        return "bt601"
    if frame.colorspace == BT709:
        return "bt709"
    return None


def i420_view(frame: VideoFrame, bt709: bool = False) -> I420:
    """Read-only views of a ``yuv420p`` frame's planes (the frame is kept alive with them).
    ``bt709``: the frame's matrix is BT.709, not BT.601."""
    y, u, v = _views(frame)
    convert = bt709_to_bgr if bt709 else None
    picture = I420(y, u, v, owner=frame, allocate=new_i420, bt709=bt709, convert=convert)
    return picture.read_only()


def bt709_to_bgr(picture: I420) -> NDArray[np.uint8]:
    """A BT.709 limited-range picture as BGR, through swscale (OpenCV knows BT.601 only)."""
    frame = to_video_frame(picture)
    # Tag the frame with what its pixels are (a frame Veil drew into carries no tags), so
    # swscale uses the right matrix.
    frame.colorspace = BT709
    frame.color_range = LIMITED_RANGE
    return np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)


def bgr_to_bt709(image: NDArray[np.uint8]) -> VideoFrame:
    """A BGR picture as a BT.709 limited-range ``yuv420p`` PyAV frame, through swscale."""
    frame = VideoFrame.from_ndarray(image, format="bgr24")
    return frame.reformat(format="yuv420p", dst_colorspace="itu709", dst_color_range=LIMITED_RANGE)


def new_i420(width: int, height: int) -> I420:
    """A blank, writable ``yuv420p`` PyAV frame's planes."""
    frame = VideoFrame(width, height, "yuv420p")
    y, u, v = _views(frame)
    return I420(y, u, v, owner=frame, allocate=new_i420)


def encoder_picture_type(frame: VideoFrame, source_type: int) -> None:
    """Set the type the encoder codes ``frame`` as, from ``source_type``, the type the
    source coded that picture with (:attr:`veil.core.frame.Frame.picture_type`): P and B as
    the source had them, anything else (keyframes included) left to the encoder.

    libx264 codes a frame as the type it is given. Given the source's P and B types it skips
    its own frame-type analysis: 1.3 ms a frame at 720p on camera footage, more than static
    masking costs (a frame passed through from the decoder always carried its type, a masked
    copy carried none). Keyframes stay the encoder's choice: from an intra-only source
    (all-intra H.264 from some cameras) every output frame would otherwise be a keyframe,
    several times the size.
    """
    wanted = source_type if source_type in (PictureType.P, PictureType.B) else PictureType.NONE
    frame.pict_type = int(wanted)


def to_video_frame(picture: I420) -> VideoFrame:
    """The PyAV frame holding ``picture``: its own, or a copy when it has none."""
    owner = picture.owner
    if isinstance(owner, VideoFrame) and owner.format.name == "yuv420p":
        return owner
    return _copy_into_new(picture)


def _copy_into_new(picture: I420) -> VideoFrame:
    target = new_i420(picture.width, picture.height)
    target.y[...] = picture.y
    target.u[...] = picture.u
    target.v[...] = picture.v
    assert isinstance(target.owner, VideoFrame)
    return target.owner
