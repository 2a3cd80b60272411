"""A decoded video frame with its exact timestamp."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
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


Plane = NDArray[np.uint8]
"""One plane of a picture, ``(rows, columns)`` uint8; may be a view with padded rows."""


@dataclass(frozen=True, slots=True, eq=False)
class I420:
    """A 4:2:0 picture as its three planes: Y ``(height, width)``, U and V ``(height / 2,
    width / 2)``, limited range (FFmpeg's ``yuv420p``, OpenCV's ``I420``), even sides, in the
    BT.601 matrix or, when ``bt709``, the BT.709 one (most HD cameras tag theirs so).

    The planes may be views of memory that ``owner`` holds: a PyAV frame the decoder made
    (so a frame that no mask touches goes to the encoder without a single copy), or one
    that ``allocate`` made to draw into. ``allocate(width, height)`` makes a blank writable
    picture of the same kind; without it, :meth:`writable_copy` uses numpy arrays.
    ``convert`` turns a BT.709 picture into BGR (OpenCV only knows BT.601); the media layer
    gives it, so that this module needs no FFmpeg.
    """

    y: Plane
    u: Plane
    v: Plane
    owner: object = None
    allocate: Callable[[int, int], I420] | None = None
    bt709: bool = False
    convert: Callable[[I420], NDArray[np.uint8]] | None = None

    def __post_init__(self) -> None:
        h, w = self.y.shape if self.y.ndim == 2 else (1, 1)
        planes_ok = all(p.dtype == np.uint8 and p.ndim == 2 for p in (self.y, self.u, self.v))
        chroma = (h // 2, w // 2)
        if not planes_ok or h & 1 or w & 1 or self.u.shape != chroma or self.v.shape != chroma:
            raise ShapeError(
                "an I420 picture needs uint8 planes Y (H, W), U and V (H/2, W/2) with even H "
                f"and W, got {self.y.shape}, {self.u.shape}, {self.v.shape}"
            )

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @classmethod
    def from_array(cls, i420: NDArray[np.uint8]) -> I420:
        """Views of the planes of one ``(height * 3 / 2, width)`` array (OpenCV's layout)."""
        rows = i420.shape[0] if i420.ndim == 2 else 0
        width = i420.shape[1] if i420.ndim == 2 else 0
        height = rows * 2 // 3
        if (
            i420.dtype != np.uint8
            or rows % 3
            or height & 1
            or width & 1
            or not i420.flags.c_contiguous
        ):
            raise ShapeError(
                "an I420 array must be a contiguous (height * 3 / 2, width) uint8 array with "
                f"even height and width, got shape {i420.shape} and dtype {i420.dtype}"
            )
        # The chroma planes follow the luma plane in memory, each a quarter of its size
        # (they need not start on a whole row of the array).
        flat = i420.reshape(-1)
        luma, chroma = height * width, height * width // 4
        u = flat[luma : luma + chroma].reshape(height // 2, width // 2)
        v = flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2)
        return cls(i420[:height], u, v)

    def to_array(self) -> NDArray[np.uint8]:
        """A contiguous copy in OpenCV's one-array layout."""
        out = np.empty((self.height * 3 // 2, self.width), np.uint8)
        target = I420.from_array(out)
        target.y[...] = self.y
        target.u[...] = self.u
        target.v[...] = self.v
        return out

    def writable_copy(self) -> I420:
        """A copy to draw into, made by ``allocate`` when there is one (one copy of each plane)."""
        if self.allocate is not None:
            blank = self.allocate(self.width, self.height)
        else:
            blank = I420.from_array(np.empty((self.height * 3 // 2, self.width), np.uint8))
        blank.y[...] = self.y
        blank.u[...] = self.u
        blank.v[...] = self.v
        return dataclasses.replace(blank, bt709=self.bt709, convert=self.convert)

    def to_bgr(self) -> NDArray[np.uint8]:
        """The picture as BGR, in its own matrix."""
        if self.bt709:
            if self.convert is None:
                raise ShapeError("a BT.709 picture needs a converter to BGR (see I420.convert)")
            return self.convert(self)
        # Imported here: veil.core needs OpenCV only for pictures made from 4:2:0 planes.
        import cv2

        bgr = cv2.cvtColor(self.to_array(), cv2.COLOR_YUV2BGR_I420)
        return np.asarray(bgr, dtype=np.uint8)

    def read_only(self) -> I420:
        """The same picture with read-only plane views."""
        if not any(p.flags.writeable for p in (self.y, self.u, self.v)):
            return self
        return dataclasses.replace(
            self, y=_read_only(self.y), u=_read_only(self.u), v=_read_only(self.v)
        )


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
    then fully masked. ``picture_type`` is how the source coded this picture (FFmpeg's
    numbers: 1 I, 2 P, 3 B; 0 unknown), a hint passed on to the encoder (see
    veil.media.planes.encoder_picture_type).
    """

    __slots__ = (
        "_i420",
        "_image",
        "camera_id",
        "corrupt",
        "index",
        "picture_type",
        "pts",
        "time_base",
    )

    _image: Image | None
    _i420: I420 | None
    pts: int | None
    time_base: Fraction
    index: int
    camera_id: str
    corrupt: bool
    picture_type: int

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
        picture_type: int = 0,
    ) -> None:
        if image is None and i420 is None:
            raise ShapeError("a Frame needs a BGR image or I420 planes")
        set_ = object.__setattr__
        if image is not None:
            image = _read_only(check_image(image, "Frame.image"))
        if i420 is not None:
            i420 = i420.read_only()
        set_(self, "_image", image)
        set_(self, "_i420", i420)
        if image is not None and i420 is not None:
            w, h = image.shape[1], image.shape[0]
            if (i420.width, i420.height) != (w, h):
                raise ShapeError(f"Frame.i420 is not {w}x{h} like Frame.image")
        set_(self, "pts", pts)
        set_(self, "time_base", time_base)
        set_(self, "index", index)
        set_(self, "camera_id", camera_id)
        set_(self, "corrupt", corrupt)
        set_(self, "picture_type", picture_type)

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
            assert self._i420 is not None
            object.__setattr__(self, "_image", _read_only(self._i420.to_bgr()))
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
        return self._i420.width

    @property
    def height(self) -> int:
        if self._image is not None:
            return int(self._image.shape[0])
        assert self._i420 is not None
        return self._i420.height

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, or None when the source gave no pts."""
        if self.pts is None:
            return None
        return float(self.pts * self.time_base)

    def with_image(self, image: Image) -> Frame:
        """A new frame with the same timing and a different picture."""
        return Frame(
            image,
            self.pts,
            self.time_base,
            self.index,
            self.camera_id,
            self.corrupt,
            picture_type=self.picture_type,
        )

    def blacked_out(self) -> Frame:
        """The frame with every pixel black, made without reading its picture: the fail-closed
        answer when masking it failed (converting or rendering may be what broke)."""
        return self.with_image(np.zeros((self.height, self.width, 3), np.uint8))

    def with_i420(self, i420: I420) -> Frame:
        """A new frame with the same timing and a different picture, as I420 planes."""
        return Frame(
            None,
            self.pts,
            self.time_base,
            self.index,
            self.camera_id,
            self.corrupt,
            i420=i420,
            picture_type=self.picture_type,
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
            picture_type=self.picture_type,
        )
