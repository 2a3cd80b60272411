"""Masking quality against ground truth, from the hidden pixels of each frame.

Everything here is pure: give it, per 0-based frame index, the boolean mask of the pixels
the output hides, and the :class:`~veil.eval.groundtruth.GroundTruth`. Definitions:

- **Pixels of a box.** A pixel belongs to a box when its centre lies inside the box or on
  its edge (the rule :class:`veil.core.region.Region` rasterises by), after clipping the
  box to the frame: the part of a person outside the picture cannot leak.
- **Coverage** of a person in a frame: the masked share of its clipped box. A box that lies
  wholly outside the frame has no coverage and is counted in ``boxes_outside`` only.
- **Recall**: the share of boxes at least :data:`RECALL_COVERAGE` (90%) masked, overall
  and by the box's height in pixels (unclipped: a tall person cut by the edge is still
  large): small below :data:`SMALL_MAX_HEIGHT` (50), medium from 50 to below
  :data:`LARGE_MIN_HEIGHT` (150), large from 150.
- **Head recall**: the same for the head region, the top sixth of the box and the middle
  half of its width, clipped to the frame. A head wholly outside the frame is not counted.
- **Leaks**: a person is leaked in a frame when its coverage is below
  :data:`LEAK_COVERAGE` (50%). ``leaked_frames`` lists the frames with any leaked person;
  a leak run is a stretch of consecutive frame numbers in which one person id is leaked
  (a frame where that id has no counted box ends the run).
- **Over-masking**: per frame, the share of all its pixels that are masked but lie
  outside every ground-truth box (counted boxes and ignored person boxes alike), averaged
  over frames. People the ground truth leaves out count here too: an upper bound.

Example::

    report = compute_metrics({0: mask0, 1: mask1}, gt)
    report.recall, report.longest_leak_run
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich import box as rich_box
from rich.console import Group
from rich.table import Table

from veil.core.errors import ShapeError, UsageError
from veil.core.region import BoolMask
from veil.eval.groundtruth import GroundTruth

RECALL_COVERAGE = 0.9
"""A box at least this share masked counts as recalled."""
LEAK_COVERAGE = 0.5
"""A box less than this share masked is a leak."""
SMALL_MAX_HEIGHT = 50.0
"""Boxes lower than this (pixels) are small."""
LARGE_MIN_HEIGHT = 150.0
"""Boxes at least this high (pixels) are large; the rest are medium."""
INTEGRAL_MIN_BOXES = 32
"""With this many boxes or more, and boxes that add up to more than the frame's area,
counts come from one integral image instead of a slice per box."""

_EPS = 1e-9

PixelBoxes = NDArray[np.int64]
"""``(N, 4)`` half-open pixel boxes ``x0, y0, x1, y1`` clipped to the frame."""


class HeightBucket(str, Enum):
    """A person's size class by box height."""

    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"

    @staticmethod
    def of(height: float) -> HeightBucket:
        if height < SMALL_MAX_HEIGHT:
            return HeightBucket.SMALL
        if height < LARGE_MIN_HEIGHT:
            return HeightBucket.MEDIUM
        return HeightBucket.LARGE


def pixel_boxes(xywh: NDArray[np.float64], width: int, height: int) -> PixelBoxes:
    """Pixel boxes of ``(N, 4)`` left, top, width, height boxes, clipped to the frame.

    Pixel ``i`` is inside when its centre ``i + 0.5`` lies within ``[left, left + width]``.
    An empty result has ``x1 <= x0`` or ``y1 <= y0``.
    """
    xywh = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    x0 = np.ceil(xywh[:, 0] - 0.5)
    y0 = np.ceil(xywh[:, 1] - 0.5)
    x1 = np.floor(xywh[:, 0] + xywh[:, 2] - 0.5) + 1
    y1 = np.floor(xywh[:, 1] + xywh[:, 3] - 0.5) + 1
    out = np.stack(
        [
            np.clip(x0, 0, width),
            np.clip(y0, 0, height),
            np.clip(x1, 0, width),
            np.clip(y1, 0, height),
        ],
        axis=1,
    )
    return out.astype(np.int64)


def head_regions(xywh: NDArray[np.float64]) -> NDArray[np.float64]:
    """The head region of each box: the top sixth, the middle half of the width."""
    xywh = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    x, y, w, h = xywh[:, 0], xywh[:, 1], xywh[:, 2], xywh[:, 3]
    return np.stack([x + w / 4, y, w / 2, h / 6], axis=1)


def box_areas(boxes: PixelBoxes) -> NDArray[np.int64]:
    """Pixels in each pixel box (0 for an empty one)."""
    widths = np.maximum(boxes[:, 2] - boxes[:, 0], 0)
    heights = np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    areas: NDArray[np.int64] = (widths * heights).astype(np.int64)
    return areas


def masked_counts(mask: BoolMask, boxes: PixelBoxes) -> NDArray[np.int64]:
    """The number of masked pixels in each pixel box.

    Boxes are counted on slices, which costs about their total area; when many boxes
    add up to more than the frame (a crowd, overlapping), from one integral image,
    whose cost does not grow with the number of boxes.
    """
    out = np.zeros((len(boxes),), dtype=np.int64)
    if len(boxes) == 0:
        return out
    if len(boxes) < INTEGRAL_MIN_BOXES or int(box_areas(boxes).sum()) <= mask.size:
        for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            if x1 > x0 and y1 > y0:
                out[i] = np.count_nonzero(mask[y0:y1, x0:x1])
        return out
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int32)
    np.cumsum(mask, axis=0, dtype=np.int32, out=integral[1:, 1:])
    np.cumsum(integral[1:, 1:], axis=1, out=integral[1:, 1:])
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = np.maximum(boxes[:, 2], x0), np.maximum(boxes[:, 3], y0)
    counts = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return counts.astype(np.int64)


def coverage(mask: BoolMask, boxes: PixelBoxes) -> NDArray[np.float64]:
    """The masked share of each pixel box; NaN for an empty box."""
    areas = box_areas(boxes)
    counts = masked_counts(mask, boxes)
    out = np.full((len(boxes),), np.nan, dtype=np.float64)
    nonempty = areas > 0
    out[nonempty] = counts[nonempty] / areas[nonempty]
    return out


def over_masked_share(mask: BoolMask, boxes: PixelBoxes) -> float:
    """The share of the frame's pixels that are masked outside all ``boxes``."""
    inside = np.zeros(mask.shape, dtype=np.bool_)
    for x0, y0, x1, y1 in boxes.tolist():
        if x1 > x0 and y1 > y0:
            inside[y0:y1, x0:x1] = True
    outside = np.count_nonzero(mask) - np.count_nonzero(mask & inside)
    return float(outside) / float(mask.size) if mask.size else 0.0


# --------------------------------------------------------------------------- report


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class RecallStats:
    """How many boxes of a kind were evaluated, and how many of them were recalled."""

    name: str
    boxes: int
    recalled: int

    @property
    def recall(self) -> float | None:
        """``recalled / boxes``; None when there were no boxes."""
        return _ratio(self.recalled, self.boxes)


@dataclass(frozen=True, slots=True)
class LeakRun:
    """Consecutive frames (1-based, inclusive) in which one person stayed leaked."""

    person_id: int
    first_frame: int
    last_frame: int
    min_coverage: float

    @property
    def length(self) -> int:
        return self.last_frame - self.first_frame + 1


@dataclass(frozen=True, slots=True)
class PersonStats:
    """One ground-truth person (id) over the whole sequence."""

    person_id: int
    boxes: int
    recalled: int
    mean_coverage: float
    min_coverage: float
    head_boxes: int
    head_recalled: int
    leaked_frames: int
    longest_leak_run: int

    @property
    def recall(self) -> float | None:
        return _ratio(self.recalled, self.boxes)

    @property
    def head_recall(self) -> float | None:
        return _ratio(self.head_recalled, self.head_boxes)


@dataclass(frozen=True, slots=True)
class BoxResult:
    """One evaluated ground-truth box. ``head_coverage`` is None for an unseen head."""

    frame: int
    person_id: int
    height: float
    coverage: float
    head_coverage: float | None


@dataclass(frozen=True, slots=True)
class EvalReport:
    """The result of one evaluation (see the module docstring for the definitions).

    ``persons`` is sorted worst first (lowest recall, then lowest coverage); ``leak_runs``
    longest first. ``processing_fps`` counts the planners' time only (no decoding).
    ``frames_failed`` frames were fully masked because a planner raised (fail closed);
    ``first_failure`` says why the first of them was.
    """

    video: str
    ground_truth: str
    gt_format: str
    frames: int
    boxes: int
    boxes_ignored: int
    boxes_outside: int
    overall: RecallStats
    by_height: tuple[RecallStats, ...]
    head: RecallStats
    mean_coverage: float | None
    leaked_frames: tuple[int, ...]
    leak_runs: tuple[LeakRun, ...]
    persons: tuple[PersonStats, ...]
    over_masking: float | None
    over_masking_max: float | None
    masked_share: float | None
    processing_fps: float | None = None
    frames_failed: int = 0
    first_failure: str | None = None
    per_box: tuple[BoxResult, ...] = ()

    @property
    def recall(self) -> float | None:
        return self.overall.recall

    @property
    def head_recall(self) -> float | None:
        return self.head.recall

    @property
    def longest_leak_run(self) -> int:
        """The most consecutive frames one person stayed leaked; 0 when none was."""
        return self.leak_runs[0].length if self.leak_runs else 0

    def bucket(self, bucket: HeightBucket) -> RecallStats:
        """The recall of one height bucket."""
        return next(s for s in self.by_height if s.name == bucket.value)

    def to_dict(self) -> dict[str, Any]:
        """Everything, as JSON-ready values (floats rounded to 6 digits)."""

        def r(value: float | None) -> float | None:
            return None if value is None else round(float(value), 6)

        def stats(s: RecallStats) -> dict[str, Any]:
            return {"boxes": s.boxes, "recalled": s.recalled, "recall": r(s.recall)}

        return {
            "video": self.video,
            "ground_truth": self.ground_truth,
            "gt_format": self.gt_format,
            "thresholds": {
                "recall_coverage": RECALL_COVERAGE,
                "leak_coverage": LEAK_COVERAGE,
                "small_below_px": SMALL_MAX_HEIGHT,
                "large_from_px": LARGE_MIN_HEIGHT,
            },
            "frames": self.frames,
            "frames_failed": self.frames_failed,
            "first_failure": self.first_failure,
            "boxes": self.boxes,
            "boxes_ignored": self.boxes_ignored,
            "boxes_outside": self.boxes_outside,
            "recall": r(self.recall),
            "recalled": self.overall.recalled,
            "recall_by_height": {s.name: stats(s) for s in self.by_height},
            "head_recall": r(self.head_recall),
            "head": stats(self.head),
            "mean_coverage": r(self.mean_coverage),
            "leaked_frame_count": len(self.leaked_frames),
            "leaked_frames": list(self.leaked_frames),
            "longest_leak_run": self.longest_leak_run,
            "leak_runs": [
                {
                    "person_id": run.person_id,
                    "first_frame": run.first_frame,
                    "last_frame": run.last_frame,
                    "length": run.length,
                    "min_coverage": r(run.min_coverage),
                }
                for run in self.leak_runs
            ],
            "over_masking": r(self.over_masking),
            "over_masking_max": r(self.over_masking_max),
            "masked_share": r(self.masked_share),
            "processing_fps": r(self.processing_fps),
            "persons": [
                {
                    "person_id": p.person_id,
                    "boxes": p.boxes,
                    "recall": r(p.recall),
                    "head_recall": r(p.head_recall),
                    "mean_coverage": r(p.mean_coverage),
                    "min_coverage": r(p.min_coverage),
                    "leaked_frames": p.leaked_frames,
                    "longest_leak_run": p.longest_leak_run,
                }
                for p in self.persons
            ],
            "per_box": [
                {
                    "frame": b.frame,
                    "person_id": b.person_id,
                    "height": r(b.height),
                    "coverage": r(b.coverage),
                    "head_coverage": r(b.head_coverage),
                }
                for b in self.per_box
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self, worst: int = 10) -> Group:
        """A readable summary (rich tables): the figures, the ``worst`` persons and the
        ``worst`` longest leak runs. Print it with a rich Console."""
        figures = Table(title=f"veil eval: {self.video or '(frames)'}", box=rich_box.SIMPLE)
        figures.add_column("measure")
        figures.add_column("value", justify="right")
        figures.add_row("frames", f"{self.frames} ({self.frames_failed} failed: fully masked)")
        figures.add_row(
            "boxes", f"{self.boxes} (ignored {self.boxes_ignored}, outside {self.boxes_outside})"
        )
        figures.add_row(f"recall (>= {RECALL_COVERAGE:.0%} masked)", _fraction(self.overall))
        for s in self.by_height:
            figures.add_row(f"  {s.name} ({_bucket_range(s.name)})", _fraction(s))
        figures.add_row("head recall", _fraction(self.head))
        figures.add_row("mean coverage", _percent(self.mean_coverage))
        figures.add_row(
            f"leaked frames (a person < {LEAK_COVERAGE:.0%} masked)", str(len(self.leaked_frames))
        )
        longest = self.leak_runs[0] if self.leak_runs else None
        figures.add_row(
            "longest leak run",
            "0"
            if longest is None
            else f"{longest.length} (person {longest.person_id}, frames "
            f"{longest.first_frame}-{longest.last_frame})",
        )
        figures.add_row(
            "over-masking (upper bound)",
            f"{_percent(self.over_masking)} (max {_percent(self.over_masking_max)})",
        )
        figures.add_row("masked share of frame", _percent(self.masked_share))
        figures.add_row(
            "processing fps", "-" if self.processing_fps is None else f"{self.processing_fps:.1f}"
        )
        parts: list[Table] = [figures]
        persons = [p for p in self.persons if p.recalled < p.boxes or p.leaked_frames][:worst]
        if persons:
            table = Table(title="worst persons", box=rich_box.SIMPLE)
            for name in ("id", "boxes", "recall", "head", "mean cov", "min cov", "leaked", "run"):
                table.add_column(name, justify="right")
            for p in persons:
                table.add_row(
                    str(p.person_id),
                    str(p.boxes),
                    _percent(p.recall),
                    _percent(p.head_recall),
                    _percent(p.mean_coverage),
                    _percent(p.min_coverage),
                    str(p.leaked_frames),
                    str(p.longest_leak_run),
                )
            parts.append(table)
        if self.leak_runs:
            table = Table(title="longest leaks", box=rich_box.SIMPLE)
            for name in ("id", "frames", "length", "min cov"):
                table.add_column(name, justify="right")
            for run in self.leak_runs[:worst]:
                table.add_row(
                    str(run.person_id),
                    f"{run.first_frame}-{run.last_frame}",
                    str(run.length),
                    _percent(run.min_coverage),
                )
            parts.append(table)
        return Group(*parts)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _fraction(s: RecallStats) -> str:
    return f"{_percent(s.recall)} ({s.recalled}/{s.boxes})"


def _bucket_range(name: str) -> str:
    if name == HeightBucket.SMALL.value:
        return f"< {SMALL_MAX_HEIGHT:.0f} px"
    if name == HeightBucket.MEDIUM.value:
        return f"{SMALL_MAX_HEIGHT:.0f}-{LARGE_MIN_HEIGHT:.0f} px"
    return f">= {LARGE_MIN_HEIGHT:.0f} px"


# ------------------------------------------------------------------------ accumulate


class MetricsAccumulator:
    """Collects per-frame measurements, so masks need not be kept in memory.

    Call :meth:`add` once per frame (any order), then :meth:`report`. Boxes of frames
    never added are not evaluated.
    """

    def __init__(self, gt: GroundTruth) -> None:
        self._gt = gt
        n = len(gt)
        self._coverage = np.full((n,), np.nan, dtype=np.float64)
        self._head = np.full((n,), np.nan, dtype=np.float64)
        self._seen = np.zeros((n,), dtype=np.bool_)
        self._frames: set[int] = set()
        self._over: list[float] = []
        self._masked: list[float] = []

    @property
    def frames(self) -> int:
        return len(self._frames)

    def add(self, frame_index: int, mask: BoolMask) -> None:
        """Measure one frame: ``mask`` is ``(height, width)`` bool, True where hidden."""
        if mask.ndim != 2 or mask.dtype != np.bool_:
            raise ShapeError(
                f"mask must be a (height, width) bool array, got {mask.shape} {mask.dtype}"
            )
        if frame_index < 0:
            raise UsageError(f"frame index must be >= 0, got {frame_index}")
        if frame_index in self._frames:
            raise UsageError(f"frame index {frame_index} was added twice")
        self._frames.add(frame_index)
        height, width = mask.shape
        gt = self._gt
        number = frame_index + 1
        rows = gt.rows(number)
        boxes = pixel_boxes(gt.xywh[rows], width, height)
        if len(rows):
            self._seen[rows] = True
            heads = pixel_boxes(head_regions(gt.xywh[rows]), width, height)
            both = coverage(mask, np.concatenate([boxes, heads]))
            self._coverage[rows] = both[: len(rows)]
            self._head[rows] = both[len(rows) :]
        ignored = pixel_boxes(gt.ignored_xywh[gt.ignored_rows(number)], width, height)
        self._over.append(over_masked_share(mask, np.concatenate([boxes, ignored])))
        self._masked.append(float(np.count_nonzero(mask)) / mask.size if mask.size else 0.0)

    def report(
        self,
        *,
        video: str = "",
        processing_fps: float | None = None,
        frames_failed: int = 0,
        first_failure: str | None = None,
    ) -> EvalReport:
        """The report over every frame added so far."""
        gt = self._gt
        seen = self._seen
        evaluated = seen & ~np.isnan(self._coverage)
        cov = self._coverage[evaluated]
        head = self._head[evaluated]
        frames = gt.frame[evaluated]
        ids = gt.person_id[evaluated]
        heights = gt.xywh[evaluated, 3]
        recalled = cov + _EPS >= RECALL_COVERAGE
        head_seen = ~np.isnan(head)
        head_recalled = head_seen & (np.nan_to_num(head, nan=0.0) + _EPS >= RECALL_COVERAGE)
        leaked = cov < LEAK_COVERAGE

        buckets = np.array([HeightBucket.of(float(h)).value for h in heights], dtype=object)
        by_height = tuple(
            RecallStats(
                b.value,
                int(np.count_nonzero(buckets == b.value)),
                int(np.count_nonzero(recalled & (buckets == b.value))),
            )
            for b in HeightBucket
        )
        runs = _leak_runs(frames[leaked], ids[leaked], cov[leaked])
        longest_by_id: dict[int, int] = {}
        for run in runs:
            longest_by_id[run.person_id] = max(longest_by_id.get(run.person_id, 0), run.length)
        persons = []
        for pid in np.unique(ids).tolist():
            sel = ids == pid
            persons.append(
                PersonStats(
                    person_id=int(pid),
                    boxes=int(np.count_nonzero(sel)),
                    recalled=int(np.count_nonzero(recalled & sel)),
                    mean_coverage=float(cov[sel].mean()),
                    min_coverage=float(cov[sel].min()),
                    head_boxes=int(np.count_nonzero(head_seen & sel)),
                    head_recalled=int(np.count_nonzero(head_recalled & sel)),
                    leaked_frames=int(np.count_nonzero(leaked & sel)),
                    longest_leak_run=longest_by_id.get(int(pid), 0),
                )
            )
        persons.sort(key=lambda p: (p.recall or 0.0, p.min_coverage, p.person_id))
        per_box = tuple(
            BoxResult(
                frame=int(f),
                person_id=int(i),
                height=float(h),
                coverage=float(c),
                head_coverage=None if np.isnan(hc) else float(hc),
            )
            for f, i, h, c, hc in zip(
                frames.tolist(),
                ids.tolist(),
                heights.tolist(),
                cov.tolist(),
                head.tolist(),
                strict=True,
            )
        )
        return EvalReport(
            video=video,
            ground_truth=gt.source,
            gt_format=gt.format.value,
            frames=len(self._frames),
            boxes=int(np.count_nonzero(evaluated)),
            boxes_ignored=sum(gt.dropped.values()),
            boxes_outside=int(np.count_nonzero(seen & ~evaluated)),
            overall=RecallStats("all", len(cov), int(np.count_nonzero(recalled))),
            by_height=by_height,
            head=RecallStats(
                "head", int(np.count_nonzero(head_seen)), int(np.count_nonzero(head_recalled))
            ),
            mean_coverage=float(cov.mean()) if len(cov) else None,
            leaked_frames=tuple(sorted({int(f) for f in frames[leaked].tolist()})),
            leak_runs=runs,
            persons=tuple(persons),
            over_masking=float(np.mean(self._over)) if self._over else None,
            over_masking_max=max(self._over) if self._over else None,
            masked_share=float(np.mean(self._masked)) if self._masked else None,
            processing_fps=processing_fps,
            frames_failed=frames_failed,
            first_failure=first_failure,
            per_box=per_box,
        )


def _leak_runs(
    frames: NDArray[np.int64], ids: NDArray[np.int64], cov: NDArray[np.float64]
) -> tuple[LeakRun, ...]:
    """Runs of consecutive leaked frames per person, longest first."""
    order = np.lexsort((frames, ids))
    runs: list[LeakRun] = []
    start = 0
    f, i, c = frames[order].tolist(), ids[order].tolist(), cov[order].tolist()
    for k in range(1, len(order) + 1):
        if k == len(order) or i[k] != i[start] or f[k] != f[k - 1] + 1:
            runs.append(LeakRun(int(i[start]), int(f[start]), int(f[k - 1]), min(c[start:k])))
            start = k
    runs.sort(key=lambda run: (-run.length, run.person_id, run.first_frame))
    return tuple(runs)


def compute_metrics(
    masks: Mapping[int, BoolMask], gt: GroundTruth, *, video: str = ""
) -> EvalReport:
    """The report for hidden-pixel ``masks`` keyed by 0-based frame index.

    Ground-truth boxes of frames that have no mask are not evaluated.
    """
    acc = MetricsAccumulator(gt)
    for index in sorted(masks):
        acc.add(index, masks[index])
    return acc.report(video=video)


# ------------------------------------------------------------------------ gates


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Bars a report must meet (None: not checked), for CI gates.

    Example: ``Thresholds(min_recall=0.998, max_leaked_frames=0).check(report)`` is empty
    when both bars are met, else one message per missed bar.
    """

    min_recall: float | None = None
    min_head_recall: float | None = None
    max_leaked_frames: int | None = None
    max_leak_run: int | None = None
    max_over_masking: float | None = None
    min_fps: float | None = None

    def check(self, report: EvalReport) -> tuple[str, ...]:
        """One message per bar ``report`` misses; empty when all are met."""
        failures: list[str] = []

        def at_least(name: str, value: float | None, bar: float | None, pct: bool) -> None:
            if bar is None:
                return
            if value is None:
                failures.append(f"{name}: nothing was measured (needs at least {_show(bar, pct)})")
            elif value + _EPS < bar:
                failures.append(f"{name} {_show(value, pct)} is below {_show(bar, pct)}")

        def at_most(name: str, value: float | None, bar: float | None, pct: bool) -> None:
            if bar is None:
                return
            if value is None:
                failures.append(f"{name}: nothing was measured (needs at most {_show(bar, pct)})")
            elif value > bar + _EPS:
                failures.append(f"{name} {_show(value, pct)} is above {_show(bar, pct)}")

        at_least("recall", report.recall, self.min_recall, True)
        at_least("head recall", report.head_recall, self.min_head_recall, True)
        at_most("leaked frames", len(report.leaked_frames), self.max_leaked_frames, False)
        at_most("longest leak run", report.longest_leak_run, self.max_leak_run, False)
        at_most("over-masking", report.over_masking, self.max_over_masking, True)
        at_least("processing fps", report.processing_fps, self.min_fps, False)
        return tuple(failures)


def _show(value: float, percent: bool) -> str:
    return f"{100 * value:.2f}%" if percent else f"{value:g}"
