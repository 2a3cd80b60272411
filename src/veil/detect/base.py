"""The detector interface."""

from __future__ import annotations

from typing import Protocol

from veil.core.detections import Detections
from veil.core.frame import Frame


class Detector(Protocol):
    """Finds objects in one frame. Raises DetectorError on failure (the pipeline then
    masks the whole frame)."""

    def detect(self, frame: Frame) -> Detections: ...

    def reset(self) -> None:
        """Forget any state learned from earlier frames."""
        ...
