"""Multi-object tracking for privacy: every detection is masked, and a mask outlives its
object's last sighting by ``hold_time``.

The tracker differs from a tracker built for counting (ByteTrack, SORT) in what it does
with doubt, because here a dropped box is a leaked person:

- Every detection is in the output of the frame it appears in. A detection no track
  claims starts a TENTATIVE track that is output at once: privacy never waits for
  confirmation (:attr:`TrackerSettings.confirm_hits` only decides when the state says
  CONFIRMED).
- A track that is not matched COASTS for ``hold_time`` seconds: its box is predicted,
  ``frames_since_seen`` counts up, and ``uncertainty`` (pixels, for the caller to add to
  the mask's margin) grows by ``uncertainty_growth`` box sizes per frame.
- A matched track outputs the detection's own box, not a smoothed one (smoothing lags, and
  a lagging box leaks the leading edge of a moving person). When the detection is much
  smaller than the track's predicted box (a detector shrinks its box on partial occlusion)
  the output is the union of both.

Prediction while coasting: a constant-velocity Kalman filter on the box centre
(:mod:`veil.track.kalman`) gives a smoothed velocity, limited to ``max_speed`` box sizes per
frame. The coasting box is the union of two hypotheses: the object keeps its velocity, and
the object slows down (velocity damped by ``velocity_damping`` per frame). The damped one
never moves further than ``v * d / (1 - d)`` from the last sighting, so a coasting box
cannot fly away; the constant-velocity one keeps a steady walker covered. Predicted centres
stay within the frame (a box may hang half outside; the caller clips), and the box size is
the larger of the last detection's and the smoothed size.

Matching is per source (a face never continues a person track) and greedy: candidate
pairs are taken best first, pairs whose IoU with a predicted box reaches ``iou_match``
before pairs that only pass the distance gates. Those catch fast movers and small boxes whose
predicted and detected boxes do not overlap: the centre distance, less the track's
uncertainty, at most ``centre_match`` box sizes, and plausible under the track's Kalman
filter (``motion_gate``), so a track whose motion is known does not jump to another object
nearby while a new track, whose velocity is unknown, can follow a fast mover. Greedy
matching is not optimal where several assignments compete; a full Hungarian solver would
improve id stability, not masking.

A missed match cannot leak: the detection starts its own track and the unclaimed track
coasts. A wrong match could: when a track takes the detection of another object (a
newcomer next to a missed person, a larger box around it, two people crossing), the object
it followed would lose its mask. So whenever the matched detection does not agree with the
track's prediction (IoU under ``fork_iou``), a copy of the track, a ghost with a new id,
goes on COASTING at the prediction and ends like any coasting track unless a later
detection matches it. A real change of motion costs one extra coasting mask; a wrong match
costs no leak. (What a ghost cannot catch: two people who cross while both are missed, where
the boxes agree with both tracks' predictions.) Tracks of motion blobs do not fork by default
(``fork_sources``): their boxes are too noisy to tell a wrong match from a right one.

Frames the detector skipped (``update(None)``): every track coasts, and the frame counts
towards ``hold_time`` like a miss (time passes; ``frames_since_seen`` and ``uncertainty`` grow
the same way). But a track is only removed on a frame where the detector ran and did not
see it: a skipped frame is no evidence that the object left, so the tracker fails closed.

>>> from veil.core.detections import Detections, DetectionSource
>>> tracker = Tracker(TrackerSettings(fps=25.0, hold_time=0.2))
>>> person = Detections.from_boxes([[100, 50, 140, 150]], DetectionSource.PERSON)
>>> [t.state.value for t in tracker.update(person, (640, 480))]
['tentative']
>>> [t.state.value for t in tracker.update(Detections.empty(), (640, 480))]
['coasting']
>>> tracker.settings.max_coast_frames
5
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from veil.core.detections import Detections, DetectionSource
from veil.core.errors import ConfigError, ShapeError
from veil.core.tracks import Track, Tracks, TrackState
from veil.track.kalman import CentreKalman

Boxes = NDArray[np.float64]
"""``(N, 4)`` boxes ``x0, y0, x1, y1`` in pixels."""

DEFAULT_UNCERTAINTY_GROWTH = 0.04
"""Box sizes (larger side) of extra margin per frame unseen: at 25 fps, a coasting box has
gained a full size on every side after one second."""

_SIZE_ALPHA = 0.5
"""Weight of a new detection in the smoothed box size."""

_MAX_AREA_RATIO = 4.0
"""Centre-distance matching refuses pairs whose areas differ more than this."""

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """How long masks outlive their objects, and how detections join tracks.

    Longer ``hold_time`` and faster ``uncertainty_growth`` leak less when a detector misses
    an object for a while, and mask more of the frame after objects have really left.
    """

    fps: float
    """Frames per second of the video: turns ``hold_time`` into frames."""
    hold_time: float = 1.0
    """Seconds a track keeps its mask after its object was last seen."""
    confirm_hits: int = 3
    """Sightings before a track is CONFIRMED. Only the state depends on it, never masking."""
    iou_match: float = 0.2
    """Least IoU between a detection and a track's predicted box to match by overlap."""
    centre_match: float = 1.0
    """Largest centre distance, in box sizes (the larger side, after the track's uncertainty
    is taken off), to match by distance when the boxes do not overlap enough. Larger follows
    faster objects; smaller swaps fewer ids between people walking close together."""
    uncertainty_growth: float = DEFAULT_UNCERTAINTY_GROWTH
    """Margin added per frame unseen, in box sizes (larger side); per frame, so a video at a
    lower frame rate needs a larger value for the same margin per second."""
    velocity_damping: float = 0.9
    """Per-frame factor on the velocity of the slowing-down hypothesis while coasting."""
    max_speed: float = 1.0
    """Velocity limit in box sizes per frame, against a velocity spoilt by a bad match. Half
    of it is also the velocity uncertainty of a new track, which sets how far its second
    sighting may be (see ``motion_gate``)."""
    shrink_union: float = 0.5
    """A matched detection whose area is under this share of the predicted box's area is
    output united with the predicted box (the detector cut the object short). 0 disables."""
    motion_gate: float = 13.8
    """Largest squared Mahalanobis distance (Kalman filter) between a detection's centre and
    a track's predicted centre for a match by distance: 13.8 lets 99.9% of the detections
    that follow the motion model through. A track whose velocity is well known then cannot
    jump to another object nearby (which would unmask the object it followed); a new track,
    whose velocity is unknown, still can follow a fast mover. ``math.inf`` turns it off."""
    fork_iou: float = 0.5
    """When a matched detection's IoU with the track's predicted box is under this, a copy
    of the track (a new id, COASTING) goes on at the prediction for the hold time. A
    detection of another object nearby, or a larger box around it, can then take the track
    over without unmasking the object the track followed (matching cannot know which it
    is); the cost is an extra mask where an object really moved or changed size
    unexpectedly. 0 disables."""
    fork_sources: frozenset[DetectionSource] = frozenset(
        {DetectionSource.PERSON, DetectionSource.FACE, DetectionSource.MANUAL}
    )
    """Sources whose tracks fork (see ``fork_iou``). Not motion by default: the boxes of
    motion blobs change size by a fifth or more from frame to frame, so their tracks would
    fork often and their ghosts would mask a trail behind every moving object."""
    tentative_hold_time: float | None = None
    """Hold time of tracks never confirmed (None: ``hold_time``). Lower masks a one-frame
    false detection for less long, and leaks a real object missed after one sighting."""
    measurement_noise: float = 0.05
    """Detector jitter of the box centre, as a share of the box's width (x) and height (y)
    (Kalman measurement noise)."""
    acceleration_noise: float = 0.01
    """Unmodelled acceleration in box sizes (larger side) per frame squared (Kalman process
    noise): smaller gives a smoother velocity that reacts more slowly to turns."""

    def __post_init__(self) -> None:
        checks: list[tuple[str, float, float, float]] = [
            ("fps", self.fps, _EPS, math.inf),
            ("hold_time", self.hold_time, 0.0, math.inf),
            ("confirm_hits", self.confirm_hits, 1, math.inf),
            ("iou_match", self.iou_match, _EPS, 1.0),
            ("centre_match", self.centre_match, 0.0, math.inf),
            ("uncertainty_growth", self.uncertainty_growth, 0.0, math.inf),
            ("velocity_damping", self.velocity_damping, 0.0, 1.0),
            ("max_speed", self.max_speed, 0.0, math.inf),
            ("shrink_union", self.shrink_union, 0.0, 1.0),
            ("fork_iou", self.fork_iou, 0.0, 1.0),
            ("measurement_noise", self.measurement_noise, _EPS, math.inf),
            ("motion_gate", self.motion_gate, 0.0, math.inf),
            ("acceleration_noise", self.acceleration_noise, 0.0, math.inf),
        ]
        if self.tentative_hold_time is not None:
            checks.append(("tentative_hold_time", self.tentative_hold_time, 0.0, math.inf))
        gates = {"centre_match", "motion_gate"}  # infinity turns a gate off
        for name, value, low, high in checks:
            finite = math.isfinite(value) or (name in gates and value == math.inf)
            if not (finite and low <= value <= high):
                bounds = f"at least {low}" if high == math.inf else f"in [{low}, {high}]"
                raise ConfigError(f"tracker setting {name} must be {bounds}, got {value!r}")
        if int(self.confirm_hits) != self.confirm_hits:
            raise ConfigError(f"confirm_hits must be a whole number, got {self.confirm_hits!r}")

    @property
    def max_coast_frames(self) -> int:
        """Frames a track is output after its last sighting: ``ceil(hold_time * fps)``."""
        return _frames(self.hold_time, self.fps)

    @property
    def tentative_coast_frames(self) -> int:
        """The same for tracks never confirmed."""
        hold = self.hold_time if self.tentative_hold_time is None else self.tentative_hold_time
        return _frames(hold, self.fps)


def _frames(seconds: float, fps: float) -> int:
    # The small tolerance keeps 1.0 s at 25 fps at 25 frames despite float rounding.
    return max(0, math.ceil(seconds * fps - 1e-6))


class _Tracklet:
    """One track's mutable state between frames (private to the tracker)."""

    __slots__ = (
        "age",
        "confidence",
        "confirmed",
        "frames_since_seen",
        "hits",
        "kf",
        "last_size",
        "size",
        "source",
        "track_id",
    )

    def __init__(
        self,
        track_id: int,
        source: DetectionSource,
        box: NDArray[np.float64],
        confidence: float,
        settings: TrackerSettings,
    ) -> None:
        centre, size = _centre_size(box)
        self.track_id = track_id
        self.source = source
        self.kf = CentreKalman(
            centre,
            size,
            measurement_noise=settings.measurement_noise,
            acceleration_noise=settings.acceleration_noise,
            initial_velocity_std=settings.max_speed / 2.0,
        )
        self.size = size
        self.last_size = size
        self.hits = 1
        self.age = 0
        self.frames_since_seen = 0
        self.confirmed = settings.confirm_hits <= 1
        self.confidence = confidence

    def fork(self, track_id: int) -> _Tracklet:
        """A copy under a new id that keeps following this track's prediction."""
        ghost = copy.copy(self)
        ghost.track_id = track_id
        ghost.kf = self.kf.copy()
        return ghost


@dataclass(frozen=True, slots=True)
class _Prediction:
    """Where a group of tracks are expected ``k`` frames after their last update."""

    damped: Boxes
    steady: Boxes
    uncertainty: NDArray[np.float64]
    variance: NDArray[np.float64]
    """``(N, 2)`` Kalman variance of a detection's centre around the predicted one (x, y)."""

    @property
    def union(self) -> Boxes:
        return _union(self.damped, self.steady)


class Tracker:
    """Follows detections over frames; see the module documentation for the rules.

    ``update`` is called once per frame, in order; ``reset`` forgets every track (for a
    scene cut or a camera move). Track ids start at 1, increase, and are never reused, even
    after ``reset``.
    """

    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        self._tracks: list[_Tracklet] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget all tracks. Ids keep increasing."""
        self._tracks = []

    def update(self, detections: Detections | None, frame_size: tuple[int, int]) -> Tracks:
        """Advance one frame and return every track to mask in it, ordered by id.

        ``detections`` None means the detector did not run on this frame: every track
        coasts, and none is removed. An empty :class:`Detections` means it ran and found
        nothing. ``frame_size`` is ``(width, height)`` in pixels.
        """
        width, height = _check_frame_size(frame_size)
        out: list[Track] = []
        survivors: list[_Tracklet] = []
        claimed: set[int] = set()
        ghosts: list[_Tracklet] = []
        if detections is not None:
            boxes = _check_boxes(detections)
            sources = _check_sources(detections)
            matched_dets: set[int] = set()
            for source in sorted(set(sources.tolist())):
                det_idx = np.flatnonzero(sources == source)
                tracks = [t for t in self._tracks if t.source == source]
                matches, pred, iou = self._match(tracks, boxes[det_idx], width, height)
                for ti, di in matches:
                    track = tracks[ti]
                    d = int(det_idx[di])
                    output, ghost = self._correct(
                        track, detections, d, boxes[d], pred.steady[ti], float(iou[ti, di])
                    )
                    out.append(output)
                    if ghost is not None:
                        ghosts.append(ghost)
                    claimed.add(id(track))
                    survivors.append(track)
                    matched_dets.add(d)
            # Every detection no track claimed starts a track, output at once; new ids
            # follow the detections' order.
            for d in range(len(detections)):
                if d not in matched_dets:
                    track = self._start(detections, d, boxes[d])
                    survivors.append(track)
                    out.append(self._emit(track, boxes[d], 0.0, detections, d))
        coasting: list[_Tracklet] = []
        for track in self._tracks + ghosts:
            if id(track) in claimed:
                continue
            track.age += 1
            track.frames_since_seen += 1
            limit = (
                self.settings.max_coast_frames
                if track.confirmed
                else self.settings.tentative_coast_frames
            )
            if detections is not None and track.frames_since_seen > limit:
                continue  # removed: the detector looked and has not seen it for hold_time
            coasting.append(track)
        k = np.array([t.frames_since_seen for t in coasting], np.int64)
        pred = self._predict(coasting, k, width, height)
        for track, box, uncertainty in zip(coasting, pred.union, pred.uncertainty, strict=True):
            out.append(self._emit(track, box, float(uncertainty)))
            survivors.append(track)
        survivors.sort(key=lambda t: t.track_id)
        self._tracks = survivors
        out.sort(key=lambda t: t.track_id)
        return tuple(out)

    # -- steps -------------------------------------------------------------------------

    def _start(self, detections: Detections, index: int, box: NDArray[np.float64]) -> _Tracklet:
        track = _Tracklet(
            self._next_id,
            DetectionSource(int(detections.source[index])),
            box,
            float(detections.confidence[index]),
            self.settings,
        )
        self._next_id += 1
        return track

    def _correct(
        self,
        track: _Tracklet,
        detections: Detections,
        index: int,
        box: NDArray[np.float64],
        predicted: NDArray[np.float64],
        agreement: float,
    ) -> tuple[Track, _Tracklet | None]:
        """Update a matched track with its detection, given the track's constant-velocity
        predicted box and the detection's IoU with the prediction; return what to output,
        and the track's ghost when the detection does not agree with the prediction."""
        k = track.frames_since_seen + 1
        ghost = None
        if agreement < self.settings.fork_iou and track.source in self.settings.fork_sources:
            ghost = track.fork(self._next_id)
            self._next_id += 1
        output = box
        if (
            track.confirmed
            and self.settings.shrink_union > 0.0
            and _area(box) < self.settings.shrink_union * _area(predicted)
        ):
            output = _union(box[None, :], predicted[None, :])[0]
        centre, size = _centre_size(box)
        track.kf.predict(k)
        track.kf.update(centre, size)
        track.size = _SIZE_ALPHA * size + (1.0 - _SIZE_ALPHA) * track.size
        track.last_size = size
        track.hits += 1
        track.age += 1
        track.frames_since_seen = 0
        track.confidence = float(detections.confidence[index])
        if track.hits >= self.settings.confirm_hits:
            track.confirmed = True
        return self._emit(track, output, 0.0, detections, index), ghost

    def _emit(
        self,
        track: _Tracklet,
        box: NDArray[np.float64],
        uncertainty: float,
        detections: Detections | None = None,
        index: int = -1,
    ) -> Track:
        if track.frames_since_seen > 0:
            state = TrackState.COASTING
        elif track.confirmed:
            state = TrackState.CONFIRMED
        else:
            state = TrackState.TENTATIVE
        shape = None
        if detections is not None and detections.mask is not None:
            shape = detections.mask[index]
        return Track(
            track_id=track.track_id,
            state=state,
            xyxy=np.asarray(box, np.float32).copy(),
            source=track.source,
            age=track.age,
            frames_since_seen=track.frames_since_seen,
            confidence=track.confidence,
            uncertainty=uncertainty,
            shape=shape,
        )

    def _predict(
        self, tracks: Sequence[_Tracklet], k: int | NDArray[np.int64], width: int, height: int
    ) -> _Prediction:
        """Predicted boxes ``k`` frames after each track's last update (not stored)."""
        n = len(tracks)
        if n == 0:
            empty = np.zeros((0, 4), np.float64)
            return _Prediction(empty, empty, np.zeros((0,), np.float64), np.zeros((0, 2)))
        s = self.settings
        kk = np.broadcast_to(np.asarray(k, np.float64), (n,))[:, None]
        pos = np.array([t.kf.position for t in tracks], np.float64)
        vel = np.array([t.kf.velocity for t in tracks], np.float64)
        size = np.maximum(
            np.array([t.size for t in tracks], np.float64),
            np.array([t.last_size for t in tracks], np.float64),
        )
        big = size.max(axis=1, keepdims=True)
        limit = s.max_speed * big
        vel = np.clip(vel, -limit, limit)
        d = s.velocity_damping
        travelled = kk if d >= 1.0 else d * (1.0 - d**kk) / (1.0 - d)
        low = np.minimum(pos, 0.0)
        high = np.maximum(pos, np.array([width, height], np.float64))
        steady = np.clip(pos + vel * kk, low, high)
        damped = np.clip(pos + vel * travelled, low, high)
        uncertainty = s.uncertainty_growth * big[:, 0] * kk[:, 0]
        variance = np.array(
            [t.kf.innovation_variance(int(dt)) for t, dt in zip(tracks, kk[:, 0], strict=True)],
            np.float64,
        )
        return _Prediction(_boxes(damped, size), _boxes(steady, size), uncertainty, variance)

    def _match(
        self, tracks: Sequence[_Tracklet], boxes: Boxes, width: int, height: int
    ) -> tuple[list[tuple[int, int]], _Prediction, NDArray[np.float64]]:
        """Greedy matching of tracks (rows) to detections (columns), best pair first; also
        the tracks' predictions for this frame and each pair's IoU (the better of the
        damped and the constant-velocity prediction)."""
        k = np.array([t.frames_since_seen + 1 for t in tracks], np.int64)
        pred = self._predict(tracks, k, width, height)
        if not tracks or len(boxes) == 0:
            return [], pred, np.zeros((len(tracks), len(boxes)), np.float64)
        iou = np.maximum(iou_matrix(pred.damped, boxes), iou_matrix(pred.steady, boxes))
        dist, mahalanobis = _centre_distance(pred, boxes)
        area_t = _areas(pred.steady)[:, None]
        area_d = _areas(boxes)[None, :]
        ratio = np.maximum(area_t, area_d) / np.maximum(np.minimum(area_t, area_d), _EPS)
        by_iou = iou >= self.settings.iou_match
        plausible = mahalanobis <= self.settings.motion_gate
        by_dist = (dist <= self.settings.centre_match) & (ratio <= _MAX_AREA_RATIO) & plausible
        # Overlap matches rank above distance matches; within each, best first.
        affinity = np.where(by_iou, 2.0 + iou, np.where(by_dist, 1.0 - dist / (1.0 + dist), -1.0))
        rows, cols = np.nonzero(affinity > 0.0)
        order = np.lexsort((cols, rows, -affinity[rows, cols]))
        used_t: set[int] = set()
        used_d: set[int] = set()
        matches: list[tuple[int, int]] = []
        for i in order.tolist():
            r, c = int(rows[i]), int(cols[i])
            if r in used_t or c in used_d:
                continue
            used_t.add(r)
            used_d.add(c)
            matches.append((r, c))
        return matches, pred, iou


# -- geometry -------------------------------------------------------------------------


def iou_matrix(a: NDArray[np.floating[Any]], b: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """Intersection over union of every box in ``a`` with every box in ``b`` (``xyxy`` rows,
    any float type)."""
    a64: Boxes = np.asarray(a, np.float64)
    b64: Boxes = np.asarray(b, np.float64)
    x0 = np.maximum(a64[:, None, 0], b64[None, :, 0])
    y0 = np.maximum(a64[:, None, 1], b64[None, :, 1])
    x1 = np.minimum(a64[:, None, 2], b64[None, :, 2])
    y1 = np.minimum(a64[:, None, 3], b64[None, :, 3])
    inter = np.clip(x1 - x0, 0.0, None) * np.clip(y1 - y0, 0.0, None)
    union = _areas(a64)[:, None] + _areas(b64)[None, :] - inter
    result: NDArray[np.float64] = inter / np.maximum(union, _EPS)
    return result


def _centre_distance(
    pred: _Prediction, boxes: Boxes
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Distance from each detection's centre to the segment between a track's damped and
    steady predicted centres, less the track's uncertainty, in box sizes (the mean of the
    two boxes' larger sides, the same in both directions: a person's width alone would gate
    out ordinary walking, which is mostly sideways); and the squared Mahalanobis distance of
    the same offset under the tracks' Kalman filters."""
    cd = (pred.damped[:, :2] + pred.damped[:, 2:]) / 2.0
    cs = (pred.steady[:, :2] + pred.steady[:, 2:]) / 2.0
    tsize = pred.steady[:, 2:] - pred.steady[:, :2]
    dc = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    dsize = boxes[:, 2:] - boxes[:, :2]
    seg = (cs - cd)[:, None, :]
    rel = dc[None, :, :] - cd[:, None, :]
    seg_len2 = np.maximum((seg**2).sum(axis=2), _EPS)
    t = np.clip((rel * seg).sum(axis=2) / seg_len2, 0.0, 1.0)
    delta = rel - t[:, :, None] * seg
    excess = np.maximum(np.abs(delta) - pred.uncertainty[:, None, None], 0.0)
    norm = np.maximum((tsize.max(axis=1)[:, None] + dsize.max(axis=1)[None, :]) / 2.0, 1.0)
    distance: NDArray[np.float64] = np.sqrt((excess**2).sum(axis=2)) / norm
    mahalanobis: NDArray[np.float64] = (delta**2 / pred.variance[:, None, :]).sum(axis=2)
    return distance, mahalanobis


def _centre_size(box: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    return (box[:2] + box[2:]) / 2.0, np.maximum(box[2:] - box[:2], 1.0)


def _boxes(centre: NDArray[np.float64], size: NDArray[np.float64]) -> Boxes:
    return np.concatenate([centre - size / 2.0, centre + size / 2.0], axis=1)


def _union(a: Boxes, b: Boxes) -> Boxes:
    return np.concatenate([np.minimum(a[:, :2], b[:, :2]), np.maximum(a[:, 2:], b[:, 2:])], axis=1)


def _areas(boxes: Boxes) -> NDArray[np.float64]:
    result: NDArray[np.float64] = np.clip(boxes[:, 2] - boxes[:, 0], 0.0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0.0, None
    )
    return result


def _area(box: NDArray[np.float64]) -> float:
    return float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))


# -- input checks ---------------------------------------------------------------------


def _check_frame_size(frame_size: tuple[int, int]) -> tuple[int, int]:
    if len(frame_size) != 2 or min(frame_size) <= 0:
        raise ShapeError(f"frame_size must be (width, height) > 0, got {frame_size!r}")
    return int(frame_size[0]), int(frame_size[1])


def _check_boxes(detections: Detections) -> Boxes:
    boxes = np.asarray(detections.xyxy, np.float64)
    if not np.isfinite(boxes).all():
        raise ShapeError("detection boxes must be finite numbers, got NaN or infinity")
    # A box given corner-swapped still marks the same area: order its corners.
    return np.concatenate(
        [np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], axis=1
    )


def _check_sources(detections: Detections) -> NDArray[np.int64]:
    sources = np.asarray(detections.source, np.int64)
    known = {int(s) for s in DetectionSource}
    unknown = sorted(set(sources.tolist()) - known)
    if unknown:
        raise ShapeError(
            f"detection source must be one of {sorted(known)} (DetectionSource), got {unknown}"
        )
    return sources


# -- offline (redaction) -------------------------------------------------------------

TrackHistory = dict[int, list[tuple[int, Track]]]
"""Per track id, ``(frame index, Track)`` for every frame the track was output, in order."""


def track_offline(
    detections_per_frame: Sequence[Detections | None],
    frame_size: tuple[int, int],
    settings: TrackerSettings,
) -> TrackHistory:
    """Run the online tracker over a whole video's detections and group its output by id.

    Sightings have ``frames_since_seen == 0``; the other entries are coasting frames, as
    the live tracker would mask them. ``None`` marks a frame the detector skipped.
    """
    tracker = Tracker(settings)
    history: TrackHistory = {}
    for index, detections in enumerate(detections_per_frame):
        for track in tracker.update(detections, frame_size):
            history.setdefault(track.track_id, []).append((index, track))
    return history


def fill_gaps(
    tracks_by_id: Mapping[int, Sequence[tuple[int, Track]]],
    max_gap: int,
    *,
    uncertainty_growth: float = DEFAULT_UNCERTAINTY_GROWTH,
) -> TrackHistory:
    """Bridge gaps of at most ``max_gap`` frames between two sightings of a track.

    Offline both ends of a gap are known, so each frame in it gets the box interpolated
    linearly between the sightings before and after (state COASTING), with an uncertainty
    of ``uncertainty_growth`` box sizes per frame to the *nearer* sighting: smaller than a
    forward-only prediction. This replaces the coasting boxes the online tracker gave in
    such gaps. Longer gaps, and frames after a track's last sighting, are kept as they are.
    Returns a new mapping; the input is not modified.
    """
    if max_gap < 0:
        raise ConfigError(f"max_gap must be at least 0, got {max_gap!r}")
    result: TrackHistory = {}
    for track_id, entries in tracks_by_id.items():
        ordered = sorted(entries, key=lambda e: e[0])
        sightings = [(f, t) for f, t in ordered if t.frames_since_seen == 0]
        filled: dict[int, Track] = dict(ordered)
        for (f1, t1), (f2, t2) in itertools.pairwise(sightings):
            gap = f2 - f1 - 1
            if gap < 1 or gap > max_gap:
                continue
            b1 = np.asarray(t1.xyxy, np.float64)
            b2 = np.asarray(t2.xyxy, np.float64)
            for f in range(f1 + 1, f2):
                a = (f - f1) / (f2 - f1)
                box = (1.0 - a) * b1 + a * b2
                size = float(max(box[2] - box[0], box[3] - box[1]))
                filled[f] = Track(
                    track_id=track_id,
                    state=TrackState.COASTING,
                    xyxy=box.astype(np.float32),
                    source=t1.source,
                    age=t1.age + (f - f1),
                    frames_since_seen=f - f1,
                    confidence=min(t1.confidence, t2.confidence),
                    uncertainty=uncertainty_growth * size * min(f - f1, f2 - f),
                )
        result[track_id] = sorted(filled.items())
    return result
