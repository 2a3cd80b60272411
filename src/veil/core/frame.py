"""A decoded video frame with its exact timestamp."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

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


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of one camera.

    ``image`` is BGR uint8 and read-only: stages return new frames instead of
    writing into their input (a renderer that forgot to copy would otherwise
    leak the mask into the original kept for authorised viewers).

    ``pts`` and ``time_base`` are the frame's exact presentation time as the
    container gave it (``pts * time_base`` seconds); ``index`` counts decoded frames
    from 0.
    """

    image: Image
    pts: int | None
    time_base: Fraction
    index: int
    camera_id: str = ""
    corrupt: bool = field(default=False)
    """True when the decoder reported damage in this frame; it is then fully masked."""

    def __post_init__(self) -> None:
        check_image(self.image, "Frame.image")
        if self.image.flags.writeable:
            view = self.image.view()
            view.flags.writeable = False
            object.__setattr__(self, "image", view)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, or None when the source gave no pts."""
        if self.pts is None:
            return None
        return float(self.pts * self.time_base)

    def with_image(self, image: Image) -> Frame:
        """A new frame with the same timing and a different picture."""
        return Frame(
            image=image,
            pts=self.pts,
            time_base=self.time_base,
            index=self.index,
            camera_id=self.camera_id,
            corrupt=self.corrupt,
        )
