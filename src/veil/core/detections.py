"""Detections: what a detector found in one frame, as column arrays."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from veil.core.errors import ShapeError


class DetectionSource(IntEnum):
    """Which detector produced a detection."""

    MOTION = 0
    PERSON = 1
    FACE = 2
    MANUAL = 3


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """N detections as columns.

    ``xyxy``: ``(N, 4)`` float32 pixel boxes ``x0, y0, x1, y1``.
    ``confidence``: ``(N,)`` float32 in 0..1.
    ``class_id``: ``(N,)`` int32 (COCO class for persons, 0 otherwise).
    ``source``: ``(N,)`` int8 :class:`DetectionSource` values.
    ``mask``: optional ``(N, H, W)`` bool shapes (motion blobs), for silhouettes.
    """

    xyxy: NDArray[np.float32]
    confidence: NDArray[np.float32]
    class_id: NDArray[np.int32]
    source: NDArray[np.int8]
    mask: NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ShapeError(f"xyxy must have shape (N, 4), got {self.xyxy.shape}")
        for name in ("confidence", "class_id", "source"):
            col = getattr(self, name)
            if col.shape != (n,):
                raise ShapeError(f"{name} must have shape ({n},), got {col.shape}")
        if self.mask is not None and (self.mask.ndim != 3 or len(self.mask) != n):
            raise ShapeError(f"mask must have shape ({n}, H, W), got {self.mask.shape}")

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            class_id=np.zeros((0,), np.int32),
            source=np.zeros((0,), np.int8),
        )

    @classmethod
    def from_boxes(
        cls,
        xyxy: NDArray[np.floating] | list[list[float]],
        source: DetectionSource,
        confidence: NDArray[np.floating] | list[float] | None = None,
        class_id: int = 0,
        mask: NDArray[np.bool_] | None = None,
    ) -> Detections:
        boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(boxes)
        conf = (
            np.ones((n,), np.float32)
            if confidence is None
            else np.asarray(confidence, dtype=np.float32).reshape(n)
        )
        return cls(
            xyxy=boxes,
            confidence=conf,
            class_id=np.full((n,), class_id, np.int32),
            source=np.full((n,), int(source), np.int8),
            mask=mask,
        )

    def __getitem__(self, index: NDArray[np.bool_] | NDArray[np.intp]) -> Detections:
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            source=self.source[index],
            mask=None if self.mask is None else self.mask[index],
        )

    @staticmethod
    def merge(parts: list[Detections]) -> Detections:
        """Concatenate detections; shapes are kept only if every part has them."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections.empty()
        masks = [p.mask for p in parts]
        merged_mask = (
            np.concatenate([m for m in masks if m is not None])
            if all(m is not None for m in masks)
            else None
        )
        return Detections(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            source=np.concatenate([p.source for p in parts]),
            mask=merged_mask,
        )
