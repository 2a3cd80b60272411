"""Dynamic masking: hide what moves, people, faces, or everything but people.

One frame goes through: detectors -> tracker -> boxes grown by margin and by each
track's uncertainty -> include/exclude areas -> one MaskLayer.

Fail-closed rules, each tested:
- a detector that raises, or the motion model while it learns, masks the whole frame;
- a detection the tracker cannot match still becomes a (tentative) track and is masked;
- a track unseen for less than the hold time keeps its predicted, widened mask.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from veil.core.detections import Detections, DetectionSource
from veil.core.frame import Frame
from veil.core.plan import MaskLayer, MaskPlan, MaskReason
from veil.core.region import BoolMask, Region
from veil.core.style import Style
from veil.core.tracks import Track, Tracks
from veil.policy.margin import Margin

log = logging.getLogger(__name__)

BoolMask3 = NDArray[np.bool_]

# Head region of a person box used by the `faces` method when the face detector
# cannot see the face (too small, turned away). Generous on purpose: the top fifth
# of the box and its middle 70 %, before the margin is added.
HEAD_HEIGHT_FRACTION = 0.2
HEAD_WIDTH_FRACTION = 0.7


class FrameDetector(Protocol):
    def detect(self, frame: Frame) -> Detections: ...

    def reset(self) -> None: ...


class LearningDetector(FrameDetector, Protocol):
    """A detector with a learning phase (the motion model)."""

    @property
    def learning(self) -> bool: ...

    def shapes(self) -> BoolMask3:
        """The last frame's detections as ``(N, H, W)`` shapes, for silhouettes."""
        ...


class TrackerLike(Protocol):
    def update(self, detections: Detections | None, frame_size: tuple[int, int]) -> Tracks: ...

    def reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DynamicSettings:
    """What to hide and how; compiled from ``DynamicConfig``."""

    hide_motion: bool = False
    hide_persons: bool = False
    hide_faces: bool = False
    hide_background: bool = False
    margin: Margin = field(default_factory=Margin)
    style: Style = field(default_factory=Style)
    silhouette: bool = False
    include: tuple[Region, ...] = ()
    exclude: tuple[Region, ...] = ()
    detect_budget_s: float | None = None
    """Live use: a frame whose detectors take longer than this is fully masked."""
    after_learning_frames: int = 0
    """Frames the whole picture stays masked after the motion model ends learning: a person
    present while it learned is part of its background until they move away, so the
    first moments after learning are not trusted either (the hold time, by default)."""


class DynamicPlanner:
    """A FramePlanner for dynamic masking (see the module docstring)."""

    def __init__(
        self,
        settings: DynamicSettings,
        tracker: TrackerLike,
        *,
        motion: LearningDetector | None = None,
        persons: FrameDetector | None = None,
        faces: FrameDetector | None = None,
    ) -> None:
        self.settings = settings
        self._tracker = tracker
        self._motion = motion
        self._detectors: list[FrameDetector] = [d for d in (motion, persons, faces) if d]
        self._areas_cache: dict[tuple[int, int], tuple[BoolMask | None, BoolMask | None]] = {}
        self.failed_frames = 0
        """Frames masked whole because a detector failed or ran late."""
        self._since_learning = 0

    def reset_background(self) -> None:
        """Take the current picture as the new normal. The motion model re-learns, and
        masks the whole frame while it does."""
        if self._motion is not None:
            self._motion.reset()

    def plan(self, frame: Frame) -> MaskPlan:
        w, h = frame.width, frame.height
        detections, failed = self._detect(frame)
        # Tracks must keep coasting through a failed frame, so update with None.
        tracks = self._tracker.update(None if failed else detections, (w, h))
        if failed or self._motion_untrusted():
            return MaskPlan(w, h, (self._full_frame(w, h),))
        hidden = self._hidden_pixels(tracks, w, h)
        layer = MaskLayer.from_full_mask(hidden, self.settings.style, self._reason(), "dynamic")
        return MaskPlan(w, h, (layer,) if layer else ())

    # -- stages ---------------------------------------------------------------

    def _motion_untrusted(self) -> bool:
        """True while the motion model learns and for a while after (see settings)."""
        if self._motion is None:
            return False
        if self._motion.learning:
            self._since_learning = 0
            return True
        self._since_learning += 1
        return self._since_learning <= self.settings.after_learning_frames

    def _detect(self, frame: Frame) -> tuple[Detections, bool]:
        parts: list[Detections] = []
        start = time.perf_counter()
        for detector in self._detectors:
            try:
                found = detector.detect(frame)
                if detector is self._motion:
                    if self._motion.learning:
                        # The whole frame is masked anyway; a learning model's
                        # whole-frame box must not become a track that outlives it.
                        continue
                    if self.settings.silhouette and len(found):
                        found = replace(found, mask=self._motion.shapes())
                parts.append(found)
            except Exception:  # any failure must fail closed, whatever it is
                log.exception(
                    "detector %s failed on frame %d", type(detector).__name__, frame.index
                )
                self.failed_frames += 1
                return Detections.empty(), True
        budget = self.settings.detect_budget_s
        if budget is not None and time.perf_counter() - start > budget:
            self.failed_frames += 1
            return Detections.merge(parts), True
        return Detections.merge(parts), False

    def _full_frame(self, w: int, h: int) -> MaskLayer:
        return MaskLayer.full_frame(w, h, self.settings.style, MaskReason.FAIL_CLOSED)

    def _reason(self) -> MaskReason:
        s = self.settings
        if s.hide_background:
            return MaskReason.BACKGROUND
        if s.hide_persons:
            return MaskReason.PERSON
        if s.hide_faces:
            return MaskReason.FACE
        return MaskReason.MOTION

    def _hidden_pixels(self, tracks: Tracks, w: int, h: int) -> BoolMask:
        s = self.settings
        hidden = np.zeros((h, w), dtype=np.bool_)
        persons = [t for t in tracks if t.source is DetectionSource.PERSON]
        if s.hide_persons:
            _fill_boxes(hidden, self._grown(persons))
        if s.hide_faces:
            faces = [t for t in tracks if t.source is DetectionSource.FACE]
            _fill_boxes(hidden, self._grown(faces))
            _fill_boxes(hidden, self._grown(persons, head_only=True))
        if s.hide_motion:
            moving = [t for t in tracks if t.source is DetectionSource.MOTION]
            # A silhouette is only exact in the frame its shape was seen in; a coasting
            # track's shape is stale, so it falls back to its widened box.
            fresh = [
                t
                for t in moving
                if s.silhouette and t.shape is not None and not t.frames_since_seen
            ]
            self._fill_shapes(hidden, fresh)
            _fill_boxes(hidden, self._grown([t for t in moving if t not in fresh]))
        include, exclude = self._areas(w, h)
        if s.hide_background:
            # Everything but the people: their boxes (without margin) stay visible,
            # and a person the detector lost keeps coasting, so it stays visible too.
            people = np.zeros((h, w), dtype=np.bool_)
            _fill_boxes(people, _boxes(persons))
            hidden |= ~people
        if include is not None:
            hidden &= include
        if exclude is not None:
            hidden &= ~exclude
        return hidden

    def _grown(self, tracks: Sequence[Track], head_only: bool = False) -> NDArray[np.float32]:
        boxes = _boxes(tracks)
        if head_only and len(boxes):
            boxes = _head_boxes(boxes)
        extra = np.array([t.uncertainty for t in tracks], dtype=np.float32)
        return self.settings.margin.grow(boxes, extra)

    def _fill_shapes(self, hidden: BoolMask, tracks: Sequence[Track]) -> None:
        """Each moving shape, dilated by the margin (computed as for its box)."""
        for track in tracks:
            assert track.shape is not None
            grown = self._grown([track])[0]
            pad = int(np.ceil(track.xyxy[0] - grown[0]))
            shape: NDArray[np.uint8] = track.shape.astype(np.uint8)
            if pad > 0:
                kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pad + 1, 2 * pad + 1))
                shape = np.asarray(cv2.dilate(shape, kernel), dtype=np.uint8)
            hidden |= shape.astype(np.bool_)

    def _areas(self, w: int, h: int) -> tuple[BoolMask | None, BoolMask | None]:
        cached = self._areas_cache.get((w, h))
        if cached is None:
            s = self.settings
            include = _union(s.include, w, h) if s.include else None
            exclude = _union(s.exclude, w, h) if s.exclude else None
            cached = (include, exclude)
            self._areas_cache[(w, h)] = cached
        return cached


def _boxes(tracks: Sequence[Track]) -> NDArray[np.float32]:
    if not tracks:
        return np.zeros((0, 4), np.float32)
    return np.stack([t.xyxy for t in tracks]).astype(np.float32)


def _head_boxes(boxes: NDArray[np.float32]) -> NDArray[np.float32]:
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    half = w * HEAD_WIDTH_FRACTION / 2
    return np.stack([cx - half, boxes[:, 1], cx + half, boxes[:, 1] + h * HEAD_HEIGHT_FRACTION], 1)


def _fill_boxes(mask: BoolMask, boxes: NDArray[np.float32]) -> None:
    """Cover every pixel that a box touches at all (outward rounding: never less)."""
    h, w = mask.shape
    for x0, y0, x1, y1 in boxes:
        c0 = max(0, int(np.floor(x0)))
        r0 = max(0, int(np.floor(y0)))
        c1 = min(w, int(np.ceil(x1)))
        r1 = min(h, int(np.ceil(y1)))
        if c1 > c0 and r1 > r0:
            mask[r0:r1, c0:c1] = True


def _union(regions: Sequence[Region], w: int, h: int) -> BoolMask:
    out = np.zeros((h, w), dtype=np.bool_)
    for region in regions:
        out |= region.rasterize(w, h)
    return out


class ScheduledReset:
    """A DynamicPlanner whose background is reset at given times (seconds of video),
    as `veil mask --reset-background-at` asks."""

    def __init__(self, planner: DynamicPlanner, times: Sequence[float], fps: float) -> None:
        self._planner = planner
        self._pending = sorted(times)
        self._fps = fps

    def plan(self, frame: Frame) -> MaskPlan:
        # A frame without a timestamp is placed by its index at the source's frame rate.
        now = frame.time if frame.time is not None else frame.index / self._fps
        if self._pending and now >= self._pending[0]:
            while self._pending and now >= self._pending[0]:
                self._pending.pop(0)
            self._planner.reset_background()
        return self._planner.plan(frame)
