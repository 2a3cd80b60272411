"""The detector interface, and the failure guard the model detectors share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from veil.core.detections import Detections
from veil.core.errors import DetectorError, VeilError
from veil.core.frame import Frame, Image, check_image


class Detector(Protocol):
    """Finds objects in one frame. Raises DetectorError on failure (the pipeline then
    masks the whole frame)."""

    def detect(self, frame: Frame) -> Detections: ...

    def reset(self) -> None:
        """Forget any state learned from earlier frames."""
        ...


def detect_guarded(image: Image, what: str, detect: Callable[[Image], Detections]) -> Detections:
    """``detect(image)`` after checking the image, with any failure as a DetectorError.

    ``what`` names the detector in messages ("face", "person"). A model may fail in
    ways of its own (OpenCV, ONNX Runtime, numpy); whatever it raises must reach the
    pipeline as a DetectorError so the frame is masked whole rather than passed on.
    """
    check_image(image, f"{what} detector input")
    try:
        return detect(image)
    except VeilError:
        raise
    except Exception as error:  # any other failure must mask the frame, not pass it
        raise DetectorError(
            f"{what} detector failed: {type(error).__name__}: {error}",
            hint="the frame is masked whole",
        ) from error
