"""Tracks: detections followed over time."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from veil.core.detections import DetectionSource


class TrackState(str, Enum):
    """A track's life. All three states are masked: privacy never waits for
    confirmation, and a coasting track keeps its mask while its object is unseen."""

    TENTATIVE = "tentative"
    """Seen, not yet often enough to be sure it is real."""
    CONFIRMED = "confirmed"
    """Seen in enough frames; matched in this one."""
    COASTING = "coasting"
    """Not matched in this frame; its box is predicted from its motion."""


@dataclass(frozen=True, slots=True, eq=False)
class Track:
    """One followed object in one frame.

    ``xyxy`` is the box to mask in this frame (measured, or predicted while
    coasting), in pixels. ``uncertainty`` (pixels) grows while coasting and is added
    to the mask's margin, so a prediction that drifts still covers the object.
    """

    track_id: int
    state: TrackState
    xyxy: NDArray[np.float32]
    source: DetectionSource
    age: int
    """Frames since the track started."""
    frames_since_seen: int
    """0 when matched in this frame."""
    confidence: float = 1.0
    uncertainty: float = 0.0
    shape: NDArray[np.bool_] | None = None
    """The object's pixels in this frame where the detector gives them (motion)."""


Tracks = tuple[Track, ...]
