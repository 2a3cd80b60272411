"""A decoded video frame with its exact timestamp."""

from __future__ import annotations

from fractions import Fraction
from types import EllipsisType

import numpy as np
from numpy.typing import NDArray

from veil.core.errors import ShapeError

Image = NDArray[np.uint8]
"""A BGR image, ``(height, width, 3)`` and ``uint8``, as OpenCV uses."""


def check_image(image: NDArray[np.generic], what: str = "image") -> Image:
    """Return ``image`` if it is an ``(H, W, 3)`` uint8 array, else raise ShapeError."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ShapeError(
            f"{what} must be a (height, width, 3) uint8 BGR array, "
            f"got shape {image.shape} and dtype {image.dtype}"
        )
    return image  # type: ignore[return-value]


I420 = NDArray[np.uint8]
"""A 4:2:0 picture as one ``(height * 3 // 2, width)`` uint8 array: the Y plane, then the
U and V planes (each ``height // 2`` by ``width // 2``) flattened after it, as FFmpeg's
``yuv420p`` and OpenCV's ``I420`` lay it out. Limited-range BT.601, even width and height."""


def i420_planes(i420: I420) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8]]:
    """Views of the Y, U and V planes of an :data:`I420` array (no copy)."""
    height = i420.shape[0] * 2 // 3
    width = i420.shape[1]
    quarter = height // 4
    y = i420[:height]
    u = i420[height : height + quarter].reshape(height // 2, width // 2)
    v = i420[height + quarter : height + 2 * quarter].reshape(height // 2, width // 2)
    return y, u, v


def check_i420(i420: NDArray[np.generic], what: str = "I420 picture") -> I420:
    """Return ``i420`` if it is a contiguous ``(H * 3 / 2, W)`` uint8 array with even H and W."""
    rows = i420.shape[0] if i420.ndim == 2 else 0
    if (
        i420.dtype != np.uint8
        or i420.ndim != 2
        or rows % 3
        or (rows * 2 // 3) & 1
        or i420.shape[1] & 1
        or not i420.flags.c_contiguous
    ):
        raise ShapeError(
            f"{what} must be a contiguous (height * 3 / 2, width) uint8 I420 array with even "
            f"height and width, got shape {i420.shape} and dtype {i420.dtype}"
        )
    return i420  # type: ignore[return-value]


def _read_only(array: NDArray[np.uint8]) -> NDArray[np.uint8]:
    if not array.flags.writeable:
        return array
    view = array.view()
    view.flags.writeable = False
    return view


class Frame:
    """One frame of one camera.

    ``image`` is BGR uint8 and read-only: stages return new frames instead of
    writing into their input (a renderer that forgot to copy would otherwise
    leak the mask into the original kept for authorised viewers).

    A frame may instead be made from the decoder's own 4:2:0 planes (``i420``, also
    read-only). Its BGR ``image`` is then converted on first use and kept. This lets a
    pipeline that never looks at pixels (static masks only) render the masks into the
    planes and hand them to a 4:2:0 encoder without converting to BGR and back, which
    costs more than the masking itself.

    ``pts`` and ``time_base`` are the frame's exact presentation time as the
    container gave it (``pts * time_base`` seconds); ``index`` counts decoded frames
    from 0. ``corrupt`` is True when the decoder reported damage in this frame; it is
    then fully masked.
    """

    __slots__ = ("_i420", "_image", "camera_id", "corrupt", "index", "pts", "time_base")

    _image: Image | None
    _i420: I420 | None
    pts: int | None
    time_base: Fraction
    index: int
    camera_id: str
    corrupt: bool

    def __init__(
        self,
        image: Image | None,
        pts: int | None,
        time_base: Fraction,
        index: int,
        camera_id: str = "",
        corrupt: bool = False,
        *,
        i420: I420 | None = None,
    ) -> None:
        if image is None and i420 is None:
            raise ShapeError("a Frame needs a BGR image or I420 planes")
        set_ = object.__setattr__
        if image is not None:
            image = _read_only(check_image(image, "Frame.image"))
        if i420 is not None:
            i420 = _read_only(check_i420(i420, "Frame.i420"))
        set_(self, "_image", image)
        set_(self, "_i420", i420)
        if image is not None and i420 is not None:
            w, h = image.shape[1], image.shape[0]
            if (i420.shape[1], i420.shape[0] * 2 // 3) != (w, h):
                raise ShapeError(f"Frame.i420 is not {w}x{h} like Frame.image")
        set_(self, "pts", pts)
        set_(self, "time_base", time_base)
        set_(self, "index", index)
        set_(self, "camera_id", camera_id)
        set_(self, "corrupt", corrupt)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Frame is read-only: make a new one instead of setting {name}")

    def __repr__(self) -> str:
        kind = "BGR" if self._image is not None else "I420"
        return (
            f"Frame({self.width}x{self.height} {kind}, pts={self.pts}, "
            f"time_base={self.time_base}, index={self.index}, camera_id={self.camera_id!r}, "
            f"corrupt={self.corrupt})"
        )

    @property
    def image(self) -> Image:
        """The picture, BGR (converted from the I420 planes on first use, then kept)."""
        if self._image is None:
            # Imported here: veil.core must not depend on OpenCV at import time for
            # frames that are BGR from the start.
            import cv2

            assert self._i420 is not None
            bgr = np.asarray(cv2.cvtColor(self._i420, cv2.COLOR_YUV2BGR_I420), dtype=np.uint8)
            object.__setattr__(self, "_image", _read_only(bgr))
            assert self._image is not None
        return self._image

    @property
    def i420(self) -> I420 | None:
        """The decoder's 4:2:0 planes when the frame was made from them and nothing has
        needed its BGR picture yet; otherwise None (use :attr:`image`)."""
        return self._i420 if self._image is None else None

    @property
    def width(self) -> int:
        if self._image is not None:
            return int(self._image.shape[1])
        assert self._i420 is not None
        return int(self._i420.shape[1])

    @property
    def height(self) -> int:
        if self._image is not None:
            return int(self._image.shape[0])
        assert self._i420 is not None
        return int(self._i420.shape[0]) * 2 // 3

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, or None when the source gave no pts."""
        if self.pts is None:
            return None
        return float(self.pts * self.time_base)

    def with_image(self, image: Image) -> Frame:
        """A new frame with the same timing and a different picture."""
        return Frame(image, self.pts, self.time_base, self.index, self.camera_id, self.corrupt)

    def with_i420(self, i420: I420) -> Frame:
        """A new frame with the same timing and a different picture, as I420 planes."""
        return Frame(
            None, self.pts, self.time_base, self.index, self.camera_id, self.corrupt, i420=i420
        )

    def replace(
        self,
        *,
        camera_id: str | None = None,
        index: int | None = None,
        pts: int | EllipsisType | None = ...,
    ) -> Frame:
        """The same picture with a different camera, index or ``pts`` (``...``: keep)."""
        return Frame(
            self._image,
            self.pts if isinstance(pts, EllipsisType) else pts,
            self.time_base,
            self.index if index is None else index,
            self.camera_id if camera_id is None else camera_id,
            self.corrupt,
            i420=self._i420,
        )
