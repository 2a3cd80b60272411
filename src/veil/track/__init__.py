"""Tracking: detections followed over frames, with prediction while an object is unseen.

For privacy every detection is output in its own frame and a mask outlives its object's
last sighting; see :mod:`veil.track.tracker`.
"""

from veil.track.tracker import (
    DEFAULT_UNCERTAINTY_GROWTH,
    Tracker,
    TrackerSettings,
    TrackHistory,
    fill_gaps,
    iou_matrix,
    track_offline,
)

__all__ = [
    "DEFAULT_UNCERTAINTY_GROWTH",
    "TrackHistory",
    "Tracker",
    "TrackerSettings",
    "fill_gaps",
    "iou_matrix",
    "track_offline",
]
