"""Offline tracking for redaction: the whole video is known, so do better than live masking.

Live masking sees each frame once and can only predict forwards. Redaction runs after the
fact, so :func:`build_tracks`:

1. runs the live :class:`~veil.track.tracker.Tracker` forwards over every frame's detections
   (with ``shrink_union`` off, so each sighting is exactly one detection and can be named);
2. runs it again backwards (last frame first);
3. merges forward fragments that the backward pass followed as one object: when a backward
   track goes from the last sighting of forward track A straight to the first sighting of
   forward track B (B starting after A ended), A and B are one object;
4. fills every gap between two sightings of a track by interpolating the box linearly from
   both ends, with an uncertainty (pixels, added to the mask margin) that grows with the
   distance to the *nearer* sighting;
5. extends each track before its first sighting with the backward tracker's coasting boxes
   (the object was there, unseen, before the detector found it) and after its last one with
   the forward tracker's, each with the tracker's growing uncertainty.

Every box carries a :class:`BoxFlag`: detected, interpolated (between two sightings) or
extrapolated (before the first or after the last). Nothing is ever dropped: every detection is
in exactly one track.

Example::

    tracks = build_tracks(detections_per_frame, (1280, 720), OfflineSettings(fps=25.0))
    for track in tracks:
        print(track.track_id, track.kind.value, track.first_frame, track.last_frame)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from veil.core.detections import Detections, DetectionSource
from veil.core.errors import ConfigError, ShapeError
from veil.track.tracker import (
    DEFAULT_UNCERTAINTY_GROWTH,
    Tracker,
    TrackerSettings,
    iou_matrix,
)

__all__ = [
    "BoxFlag",
    "OfflineSettings",
    "OfflineTrack",
    "TrackKind",
    "TrackerPass",
    "build_tracks",
    "interpolate_boxes",
]


class TrackKind(StrEnum):
    """What a track follows."""

    PERSON = "person"
    FACE = "face"
    MOTION = "motion"
    """Another moving object (the motion detector), not covered by a person box."""

    @classmethod
    def of(cls, source: DetectionSource) -> TrackKind:
        if source is DetectionSource.PERSON:
            return cls.PERSON
        if source is DetectionSource.FACE:
            return cls.FACE
        return cls.MOTION


class BoxFlag(StrEnum):
    """How a track's box in one frame is known; one letter each in the analysis file."""

    DETECTED = "d"
    INTERPOLATED = "i"
    """Between two sightings: interpolated from both ends."""
    EXTRAPOLATED = "e"
    """Before the first or after the last sighting: predicted by a tracker."""


_FLAG_CODES: tuple[BoxFlag, ...] = (BoxFlag.DETECTED, BoxFlag.INTERPOLATED, BoxFlag.EXTRAPOLATED)


def flag_code(flag: BoxFlag) -> int:
    return _FLAG_CODES.index(flag)


def flag_of(code: int) -> BoxFlag:
    return _FLAG_CODES[code]


@dataclass(frozen=True, slots=True, eq=False)
class OfflineTrack:
    """One object over the whole video, as columns (one row per frame it is in).

    ``frames`` ``(N,)`` int64, strictly increasing 0-based frame indices; ``xyxy`` ``(N, 4)``
    float32 pixel boxes; ``flags`` ``(N,)`` int8 codes of :class:`BoxFlag` (0 detected,
    1 interpolated, 2 extrapolated); ``uncertainty`` ``(N,)`` float32 pixels of extra margin.
    """

    track_id: int
    kind: TrackKind
    frames: NDArray[np.int64]
    xyxy: NDArray[np.float32]
    flags: NDArray[np.int8]
    uncertainty: NDArray[np.float32]
    confidence: float = 1.0
    """Best detector confidence of the track's sightings."""
    best_frame: int = -1
    """The frame whose detected box is the track's best view (for its thumbnail)."""
    parts: tuple[int, ...] = field(default_factory=tuple)
    """Ids of the forward tracker's tracks this one was made from."""
    parent: int | None = None
    """For a track never seen itself (only predicted: a tracker's "ghost", left where an
    object was when its track was taken over by another detection), the id of the track it
    split from. Selecting that track to mask selects this one too."""
    segments: NDArray[np.int32] | None = None
    """``(N,)`` int32: rows joined by links both tracking passes agree on share a number
    (from 0); -1 marks rows not on such a chain (extrapolated, or interpolated across a link
    only one pass made). A person of interest is kept visible on one chain only, so an
    identity switch (one track jumping to another person) does not reveal that person."""

    def __post_init__(self) -> None:
        n = len(self.frames)
        if self.xyxy.shape != (n, 4):
            raise ShapeError(f"track xyxy must have shape ({n}, 4), got {self.xyxy.shape}")
        for name in ("flags", "uncertainty"):
            col = getattr(self, name)
            if col.shape != (n,):
                raise ShapeError(f"track {name} must have shape ({n},), got {col.shape}")
        if self.segments is not None and self.segments.shape != (n,):
            raise ShapeError(f"track segments must have shape ({n},), got {self.segments.shape}")
        if n and np.any(np.diff(self.frames) <= 0):
            raise ShapeError(f"track {self.track_id}: frames must be strictly increasing")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def first_frame(self) -> int:
        return int(self.frames[0]) if len(self.frames) else -1

    @property
    def last_frame(self) -> int:
        return int(self.frames[-1]) if len(self.frames) else -1

    @property
    def detected_frames(self) -> int:
        return int(np.count_nonzero(self.flags == flag_code(BoxFlag.DETECTED)))

    def segment_column(self) -> NDArray[np.int32]:
        """``segments``, or one chain (0) for every non-extrapolated row when not known."""
        if self.segments is not None:
            return self.segments
        return np.where(self.flags == flag_code(BoxFlag.EXTRAPOLATED), -1, 0).astype(np.int32)

    def row(self, frame: int) -> int | None:
        """The row of ``frame``, or None when the track is not in that frame."""
        i = int(np.searchsorted(self.frames, frame))
        if i < len(self.frames) and int(self.frames[i]) == frame:
            return i
        return None

    def ranges(self) -> list[tuple[int, int]]:
        """The frames the track is in, as inclusive ``(first, last)`` runs."""
        return frame_ranges(self.frames)


def frame_ranges(frames: NDArray[np.int64] | Sequence[int]) -> list[tuple[int, int]]:
    """Sorted frame numbers as inclusive ``(first, last)`` runs of consecutive frames."""
    values = [int(f) for f in frames]
    runs: list[tuple[int, int]] = []
    for f in values:
        if runs and f == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], f)
        else:
            runs.append((f, f))
    return runs


@dataclass(frozen=True, slots=True)
class OfflineSettings:
    """How detections become tracks offline.

    ``hold_time`` (s): how long the trackers keep following an object they no longer see,
    forwards after its last sighting and backwards before its first. Also the longest gap
    the trackers bridge, so every gap inside a track is filled. Longer masks longer around
    missed detections and more background after an object left.
    ``uncertainty_growth``: extra margin per frame away from the nearest sighting, in box
    sizes (larger side). Larger covers a box that drifts; masks more.
    ``iou_match`` and ``centre_match``: as in :class:`~veil.track.tracker.TrackerSettings`.
    """

    fps: float
    hold_time: float = 1.0
    uncertainty_growth: float = DEFAULT_UNCERTAINTY_GROWTH
    iou_match: float = 0.2
    centre_match: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ConfigError(f"fps must be positive, got {self.fps!r}")
        if not (math.isfinite(self.hold_time) and 0.0 <= self.hold_time <= 60.0):
            raise ConfigError(f"hold_time must be within 0..60 s, got {self.hold_time!r}")

    def tracker_settings(self) -> TrackerSettings:
        return TrackerSettings(
            fps=self.fps,
            hold_time=self.hold_time,
            uncertainty_growth=self.uncertainty_growth,
            iou_match=self.iou_match,
            centre_match=self.centre_match,
            # Each sighting must be exactly one detection, so the passes can be joined.
            shrink_union=0.0,
        )


DetKey = tuple[int, int]
"""A detection: (frame index, row in that frame's Detections)."""


@dataclass(slots=True)
class _PassTrack:
    """One tracker id in one pass: its sightings and the coasting boxes after the last."""

    source: DetectionSource
    sightings: list[DetKey] = field(default_factory=list)
    coast: list[tuple[int, NDArray[np.float32], float]] = field(default_factory=list)
    """(frame, box, uncertainty) after the latest sighting (reset at each sighting)."""


def _match_rows(boxes: NDArray[np.float32], det_xyxy: NDArray[np.float32]) -> list[int]:
    """For each output box, the row of the detection it is (exact equality; each row once)."""
    rows: list[int] = []
    used: set[int] = set()
    for box in boxes:
        hits = np.flatnonzero(np.all(det_xyxy == box[None, :], axis=1))
        row = next((int(h) for h in hits if int(h) not in used), -1)
        if row < 0:  # cannot happen with shrink_union off; nearest as a fallback
            d = np.abs(det_xyxy - box[None, :]).sum(axis=1)
            d[list(used)] = np.inf
            row = int(np.argmin(d))
        used.add(row)
        rows.append(row)
    return rows


class TrackerPass:
    """One run of the live tracker over the frames in a given order, remembering which
    detection each track saw. Feed frames with :meth:`update`; analysis runs the forward pass
    while decoding (to keep the best thumbnail of each track) and hands it to
    :func:`build_tracks`."""

    def __init__(self, frame_size: tuple[int, int], settings: TrackerSettings) -> None:
        self._tracker = Tracker(settings)
        self._frame_size = frame_size
        self.tracks: dict[int, _PassTrack] = {}
        self.frames = 0

    def update(self, frame: int, dets: Detections | None) -> list[tuple[int, int]]:
        """Track one frame; return ``(track id, detection row)`` for each sighting."""
        out = self._tracker.update(dets, self._frame_size)
        self.frames += 1
        seen = [t for t in out if t.frames_since_seen == 0]
        rows = (
            _match_rows(np.stack([t.xyxy for t in seen]), dets.xyxy.astype(np.float32))
            if seen and dets is not None
            else []
        )
        result: list[tuple[int, int]] = []
        for track, row in zip(seen, rows, strict=True):
            entry = self.tracks.setdefault(track.track_id, _PassTrack(track.source))
            entry.sightings.append((frame, row))
            entry.coast = []
            result.append((track.track_id, row))
        for track in out:
            if track.frames_since_seen > 0:
                entry = self.tracks.setdefault(track.track_id, _PassTrack(track.source))
                entry.coast.append((frame, track.xyxy.copy(), float(track.uncertainty)))
        return result


def _run_pass(
    detections: Sequence[Detections | None],
    order: Sequence[int],
    frame_size: tuple[int, int],
    settings: TrackerSettings,
) -> dict[int, _PassTrack]:
    run = TrackerPass(frame_size, settings)
    for frame in order:
        run.update(frame, detections[frame])
    return run.tracks


class _UnionFind:
    def __init__(self, items: Sequence[int]) -> None:
        self.parent = {i: i for i in items}

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def interpolate_boxes(
    f1: int, b1: NDArray[np.float64], f2: int, b2: NDArray[np.float64], growth: float
) -> list[tuple[int, NDArray[np.float32], float]]:
    """Boxes for the frames strictly between ``f1`` and ``f2``, linear between ``b1`` and
    ``b2``, each with ``growth`` box sizes of uncertainty per frame to the nearer end."""
    out: list[tuple[int, NDArray[np.float32], float]] = []
    for f in range(f1 + 1, f2):
        a = (f - f1) / (f2 - f1)
        box = (1.0 - a) * b1 + a * b2
        size = float(max(box[2] - box[0], box[3] - box[1]))
        out.append((f, box.astype(np.float32), growth * size * min(f - f1, f2 - f)))
    return out


def build_tracks(
    detections: Sequence[Detections | None],
    frame_size: tuple[int, int],
    settings: OfflineSettings,
    *,
    forward_pass: TrackerPass | None = None,
) -> list[OfflineTrack]:
    """Tracks over a whole video (see the module docstring), ids from 1 by first frame.

    ``detections[i]`` are frame ``i``'s detections, or None when the detector did not run on
    it (the trackers then coast through it). ``forward_pass``: the forward pass already run
    over all frames in order with ``settings.tracker_settings()`` (else it is run here).
    Each track's ``parts`` are the forward pass's ids it was made from.
    """
    n = len(detections)
    tracker_settings = settings.tracker_settings()
    if forward_pass is not None and forward_pass.frames != n:
        raise ShapeError(f"the forward pass saw {forward_pass.frames} frames, expected {n}")
    forward = (
        forward_pass.tracks
        if forward_pass is not None
        else _run_pass(detections, range(n), frame_size, tracker_settings)
    )
    backward = _run_pass(detections, range(n - 1, -1, -1), frame_size, tracker_settings)
    owner: dict[DetKey, int] = {}
    for fid, track in forward.items():
        for key in track.sightings:
            owner[key] = fid
    # Join forward fragments that one backward track runs through, end to start.
    groups = _UnionFind(sorted(forward))
    for btrack in backward.values():
        keys = sorted(btrack.sightings)
        for k1, k2 in itertools.pairwise(keys):
            a, b = owner.get(k1), owner.get(k2)
            if a is None or b is None or a == b:
                continue
            if forward[a].sightings[-1] == k1 and forward[b].sightings[0] == k2:
                groups.union(a, b)
    # The backward track holding each detection, for extending starts, and each detection's
    # successor in it (in forward time), for the links both passes agree on.
    back_owner: dict[DetKey, int] = {}
    back_next: dict[DetKey, DetKey] = {}
    for bid, btrack in backward.items():
        for key in btrack.sightings:
            back_owner[key] = bid
        ordered = sorted(btrack.sightings)
        back_next.update(itertools.pairwise(ordered))
    links = _Links(
        forward={k1: k2 for t in forward.values() for k1, k2 in itertools.pairwise(t.sightings)},
        backward=back_next,
    )
    members: dict[int, list[int]] = {}
    for fid in sorted(forward):
        members.setdefault(groups.find(fid), []).append(fid)
    built = [
        _assemble(
            [forward[f] for f in parts],
            tuple(parts),
            detections,
            backward,
            back_owner,
            links,
            settings,
            n,
        )
        for parts in members.values()
    ]
    built = [t for t in built if len(t)]
    built.sort(key=lambda t: (t.first_frame, t.parts))
    final_id = {fid: i for i, t in enumerate(built, 1) for fid in t.parts}
    parents = {
        fid: _ghost_parent(forward, fid, detections)
        for fid, track in forward.items()
        if not track.sightings and track.coast
    }
    return [
        OfflineTrack(
            track_id=i,
            parent=None
            if t.detected_frames or (p := parents.get(t.parts[0])) is None
            else final_id.get(p),
            kind=t.kind,
            frames=t.frames,
            xyxy=t.xyxy,
            flags=t.flags,
            uncertainty=t.uncertainty,
            confidence=t.confidence,
            best_frame=t.best_frame,
            parts=t.parts,
            segments=t.segments,
        )
        for i, t in enumerate(built, 1)
    ]


class _Links:
    """Which detection follows which, in each pass (forward time)."""

    def __init__(self, forward: dict[DetKey, DetKey], backward: dict[DetKey, DetKey]) -> None:
        self.next = (forward, backward)
        self.prev = ({b: a for a, b in forward.items()}, {b: a for a, b in backward.items()})

    def disputed(self, k1: DetKey, k2: DetKey) -> bool:
        """False only when both passes link ``k1`` straight to ``k2``. Strict on purpose: a
        link only one pass made (the forward tracker lost the object, the backward one
        bridged the gap) may be an identity switch both trackers would make alike, and a
        person of interest is shown only along links that cannot be one (measured on
        TUD-Stadtmitte: accepting links the other pass merely did not make let two people
        through in except mode)."""
        return any(nxt.get(k1) != k2 for nxt in self.next)


def _ghost_parent(
    forward: dict[int, _PassTrack], ghost: int, detections: Sequence[Detections | None]
) -> int | None:
    """The forward track a ghost split from: seen in the frame the ghost starts, with the
    sighting before that overlapping the ghost's first box most."""
    start, box, _ = forward[ghost].coast[0]
    source = forward[ghost].source
    best: tuple[float, int | None] = (0.0, None)
    for fid, track in forward.items():
        if track.source is not source or not track.sightings:
            continue
        keys = track.sightings
        i = next((k for k, key in enumerate(keys) if key[0] == start), None)
        if i is None or i == 0:
            continue
        frame, row = keys[i - 1]
        dets = detections[frame]
        if dets is None:
            continue
        overlap = float(
            iou_matrix(box[None].astype(np.float64), dets.xyxy[row][None].astype(np.float64))[0, 0]
        )
        if overlap > best[0]:
            best = (overlap, fid)
    return best[1]


def _assemble(
    parts: list[_PassTrack],
    part_ids: tuple[int, ...],
    detections: Sequence[Detections | None],
    backward: dict[int, _PassTrack],
    back_owner: dict[DetKey, int],
    links: _Links,
    settings: OfflineSettings,
    n_frames: int,
) -> OfflineTrack:
    sightings = sorted(k for p in parts for k in p.sightings)
    rows: dict[int, _Row] = {}
    if not sightings:
        # A tracker "ghost": the prediction of an object its track left for another one.
        # Never seen itself, it is kept as an extrapolated track (masked when selected).
        for part in parts:
            for frame, box, unc in part.coast:
                if 0 <= frame < n_frames:
                    rows[frame] = (box, flag_code(BoxFlag.EXTRAPOLATED), unc, -1)
        return _finish(rows, parts[0].source, [], part_ids, -1, detections)
    segment_of: dict[int, int] = {}
    segment = 0
    for k1, k2 in itertools.pairwise(sightings):
        segment_of.setdefault(k1[0], segment)
        if links.disputed(k1, k2):
            segment += 1
        segment_of[k2[0]] = segment
    segment_of.setdefault(sightings[0][0], 0)
    best = (-1.0, -1)
    for frame, row in sightings:
        dets = detections[frame]
        assert dets is not None
        box = dets.xyxy[row].astype(np.float32)
        conf = float(dets.confidence[row])
        if frame in rows:  # two fragments in one frame (cannot happen; kept safe): union
            old = rows[frame][0]
            box = np.concatenate([np.minimum(old[:2], box[:2]), np.maximum(old[2:], box[2:])])
        rows[frame] = (box, flag_code(BoxFlag.DETECTED), 0.0, segment_of[frame])
        area = float((box[2] - box[0]) * (box[3] - box[1]))
        score = conf * math.sqrt(max(area, 1.0))
        if score > best[0]:
            best = (score, frame)
    frames_seen = sorted(rows)
    growth = settings.uncertainty_growth
    for f1, f2 in itertools.pairwise(frames_seen):
        if f2 - f1 > 1:
            b1 = rows[f1][0].astype(np.float64)
            b2 = rows[f2][0].astype(np.float64)
            same = rows[f1][3] if rows[f1][3] == rows[f2][3] else -1
            for f, box, unc in interpolate_boxes(f1, b1, f2, b2, growth):
                rows[f] = (box, flag_code(BoxFlag.INTERPOLATED), unc, same)
    # After the last sighting: the forward tracker's coasting boxes.
    last_part = max(parts, key=lambda p: p.sightings[-1])
    for frame, box, unc in last_part.coast:
        if frame > frames_seen[-1] and frame < n_frames:
            rows[frame] = (box, flag_code(BoxFlag.EXTRAPOLATED), unc, -1)
    # Before the first sighting: the backward tracker's coasting boxes, if the backward
    # track that holds the first sighting has it as its last (in reverse: earliest) one.
    bid = back_owner.get(sightings[0])
    if bid is not None and min(backward[bid].sightings) == sightings[0]:
        for frame, box, unc in backward[bid].coast:
            if 0 <= frame < frames_seen[0]:
                rows[frame] = (box, flag_code(BoxFlag.EXTRAPOLATED), unc, -1)
    return _finish(rows, parts[0].source, sightings, part_ids, best[1], detections)


_Row = tuple[NDArray[np.float32], int, float, int]
"""(box, flag code, uncertainty, segment) of one frame."""


def _finish(
    rows: dict[int, _Row],
    source: DetectionSource,
    sightings: list[DetKey],
    part_ids: tuple[int, ...],
    best_frame: int,
    detections: Sequence[Detections | None],
) -> OfflineTrack:
    ordered = sorted(rows)
    confs = [float(d.confidence[r]) for f, r in sightings if (d := detections[f]) is not None]
    return OfflineTrack(
        track_id=0,
        kind=TrackKind.of(source),
        frames=np.asarray(ordered, np.int64),
        xyxy=np.stack([rows[f][0] for f in ordered]).astype(np.float32)
        if ordered
        else np.zeros((0, 4), np.float32),
        flags=np.asarray([rows[f][1] for f in ordered], np.int8),
        uncertainty=np.asarray([rows[f][2] for f in ordered], np.float32),
        confidence=max(confs) if confs else 0.0,
        best_frame=best_frame,
        parts=part_ids,
        segments=np.asarray([rows[f][3] for f in ordered], np.int32),
    )
