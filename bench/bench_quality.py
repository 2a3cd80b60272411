"""Masking quality of the dynamic methods at their defaults, on TUD-Stadtmitte, on harder
variants of it with exact ground truth, and on walking.mp4 against pseudo ground truth.

Run: ``.venv/bin/python bench/bench_quality.py`` (``--variants NAME ...``, ``--methods ...``,
``--walking-frames N``, ``--json PATH``; ``--help`` for the rest, including the settings to
try other defaults with: ``--hold``, ``--growth``, ``--margin``, ``--input-size``, ``--tiles``,
``--sensitivity``).

Variants (:mod:`veil.eval.stress`): the original; a camera that pans, tilts and zooms; the
picture downscaled to 50 % and 33 % (people 61-123 and 41-82 px tall); a 6x4 mosaic of 33 %
copies (a 1272x636 view full of small, distant people); a crop that cuts people at the left,
right and top edges.

Methods, each measured with ``veil.eval`` (recall: box at least 90 % masked; head recall: the
top sixth, middle half; leaked frames: a person under 50 % masked; longest leak run: frames
in a row one person stays leaked; over-masking: share of the frame masked outside every
ground-truth box, an upper bound):

- ``humans``: the humans method at its defaults (the planner ``build_planners`` makes, with a
  detector that also records its detections so the rows below reuse them);
- ``plain``: the same person detector with no tracker and no margin: each frame masks exactly
  that frame's detections. What a plain detector leaks, and so what Veil's tracking adds;
- ``plain+margin``: the same with the default margin, still no tracker;
- ``faces``: the faces method at its defaults, measured against the head regions only (its
  recall is head recall; a leak is a head less than half masked; heads less than 25 % inside
  the picture are ignored);
- ``yunet``: the face detector alone, no tracker, no margin, against the head regions;
- ``motion``: the motion method at its defaults (its 2 s learning phase masks the whole frame,
  so the first 50 frames count as masked). On a moving camera the model cannot learn the
  scene: it should fail closed (mask a lot); the masked share shows how much.

``fps`` is processing frames per second (detectors, tracker, planning; no decoding) on this
machine while others use it too; ``cpu ms`` is CPU time per frame of this process (all
threads), the steadier figure on a busy machine. Rows that reuse recorded detections show no
speed.

walking.mp4 (1280x720, about 40 people, no ground truth) is measured against pseudo ground
truth: the person detector at its most thorough setting (input 1280, 2x2 tiles, threshold 0.3)
on each frame, linked into identities by overlap from frame to frame. Its figures are
**relative recall**: how much of what the thorough detector finds the method masks, not
recall against people.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from veil.config.schema import DynamicConfig, Method, PersonDetectorConfig, VeilConfig
from veil.core.detections import Detections, DetectionSource
from veil.core.frame import Frame, check_image
from veil.core.tracks import Track, Tracks, TrackState
from veil.detect.faces import FaceDetector
from veil.detect.persons import TILE_OVERLAP, PersonDetector, PersonSettings, nms
from veil.eval.groundtruth import GroundTruth, GTFormat, load_ground_truth
from veil.eval.metrics import EvalReport
from veil.eval.runner import evaluate_frames
from veil.eval.stress import StressSequence, heads_only, load_sequence, standard_variants
from veil.models import MODEL_DIR_ENV, resolve_model
from veil.policy.base import FramePlanner
from veil.policy.build import UNCERTAINTY_GROWTH_PER_SECOND, build_planners, dynamic_settings
from veil.policy.dynamic import DynamicPlanner, DynamicSettings
from veil.policy.margin import Margin
from veil.track import iou_matrix
from veil.track.tracker import Tracker, TrackerSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
DEFAULT_TUD = SHARED / "data" / "TUD-Stadtmitte"
DEFAULT_WALKING = SHARED / "data" / "walking.mp4"
DEFAULT_MODELS = SHARED / "models"
REFERENCE = PersonSettings(input_size=1280, tiles=2, score_threshold=0.3)
"""The pseudo ground truth's detector: the most thorough setting."""
LINK_IOU = 0.3
"""Pseudo ground truth: a box continues the identity of the previous frame's box it
overlaps most, when the overlap reaches this."""

METHODS = ("humans", "plain", "plain+margin", "faces", "yunet", "motion")
MOTION_VARIANTS = ("TUD-Stadtmitte", "moving-camera", "walking")


# --------------------------------------------------------------------------- helpers


def person_detector(options: Options) -> PersonDetector | RotatingTiles:
    """Veil's person detector for ``options`` (or the rotating-tiles experiment)."""
    full = PersonDetector.from_config(options.dynamic)
    if options.rotating is None:
        return full
    grid, size = options.rotating
    tile = PersonDetector(
        resolve_model("yolox_nano", options.dynamic.model_dir),
        replace_settings(full.settings, size),
    )
    return RotatingTiles(full, tile, grid)


def replace_settings(settings: PersonSettings, input_size: int) -> PersonSettings:
    return PersonSettings(
        input_size=input_size,
        tiles=1,
        score_threshold=settings.score_threshold,
        nms_iou=settings.nms_iou,
        threads=settings.threads,
    )


class RecordingDetector:
    """A detector that remembers its detections per frame index, for the baselines.

    ``replay`` returns a detector that gives the recorded detections (not timed)."""

    def __init__(self, detector: PersonDetector | FaceDetector | RotatingTiles) -> None:
        self._detector = detector
        self.recorded: dict[int, Detections] = {}

    def detect(self, frame: Frame) -> Detections:
        found = self._detector.detect(frame)
        self.recorded[frame.index] = found
        return found

    def reset(self) -> None:
        self._detector.reset()


class ReplayDetector:
    def __init__(self, recorded: dict[int, Detections]) -> None:
        self._recorded = recorded

    def detect(self, frame: Frame) -> Detections:
        return self._recorded[frame.index]

    def reset(self) -> None:
        """Nothing to forget."""


class RotatingTiles:
    """An experiment (not in Veil): the person detector on the whole frame every frame, plus
    one of ``grid x grid`` overlapping tiles per frame in turn (each tile every
    ``grid * grid`` frames), at the tile detector's own input size. The tracker's hold time
    bridges the frames between a small person's tile visits, so it costs one extra, smaller
    detector run per frame instead of ``grid * grid``."""

    def __init__(self, full: PersonDetector, tile: PersonDetector, grid: int) -> None:
        self._full = full
        self._tile = tile
        self._grid = grid

    @staticmethod
    def _spans(length: int, tiles: int) -> list[tuple[int, int]]:
        size = min(length, int(np.ceil(length / (tiles - (tiles - 1) * TILE_OVERLAP))))
        return [
            (
                round(i * (length - size) / (tiles - 1)),
                round(i * (length - size) / (tiles - 1)) + size,
            )
            for i in range(tiles)
        ]

    def detect(self, frame: Frame) -> Detections:
        image = frame.image
        height, width = image.shape[:2]
        found = self._full.detect_image(image)
        k = frame.index % (self._grid * self._grid)
        x0, x1 = self._spans(width, self._grid)[k % self._grid]
        y0, y1 = self._spans(height, self._grid)[k // self._grid]
        part = self._tile.detect_image(np.ascontiguousarray(image[y0:y1, x0:x1]))
        if len(part) == 0:
            return found
        boxes = part.xyxy + np.array([x0, y0, x0, y0], np.float32)
        edge = 2.0
        cut = (
            ((boxes[:, 0] <= x0 + edge) & (x0 > 0))
            | ((boxes[:, 1] <= y0 + edge) & (y0 > 0))
            | ((boxes[:, 2] >= x1 - edge) & (x1 < width))
            | ((boxes[:, 3] >= y1 - edge) & (y1 < height))
        )
        xyxy = np.concatenate([found.xyxy, boxes])
        conf = np.concatenate([found.confidence, part.confidence])
        rank = np.concatenate([np.zeros(len(found), np.bool_), cut])
        keep = nms(xyxy, conf, 0.45, rank=rank)
        return Detections.from_boxes(
            xyxy[keep], DetectionSource.PERSON, confidence=conf[keep], class_id=0
        )

    def reset(self) -> None:
        """Nothing to forget."""


class NoTracker:
    """Each frame's detections as tracks of that frame only: no memory, no prediction."""

    def update(self, detections: Detections | None, frame_size: tuple[int, int]) -> Tracks:
        if detections is None:
            return ()
        return tuple(
            Track(
                track_id=i,
                state=TrackState.TENTATIVE,
                xyxy=detections.xyxy[i].astype(np.float32),
                source=DetectionSource(int(detections.source[i])),
                age=0,
                frames_since_seen=0,
                confidence=float(detections.confidence[i]),
            )
            for i in range(len(detections))
        )

    def reset(self) -> None:
        """Nothing to forget."""


@dataclass(frozen=True)
class Options:
    """Settings of the ``humans`` and ``faces`` rows (the defaults unless overridden)."""

    dynamic: DynamicConfig
    growth: float
    rotating: tuple[int, int] | None = None
    """Experiment: (grid, tile input size) of :class:`RotatingTiles`; None: Veil's detector."""
    fork_iou: float | None = None
    """Experiment: the tracker's ``fork_iou`` (None: its default)."""

    def label(self) -> str:
        d = self.dynamic
        default = DynamicConfig()
        parts = []
        if d.hold_time != default.hold_time:
            parts.append(f"hold {d.hold_time:g}s")
        if self.growth != UNCERTAINTY_GROWTH_PER_SECOND:
            parts.append(f"growth {self.growth:g}/s")
        if d.margin != default.margin:
            parts.append(f"margin {d.margin}")
        if d.person != default.person:
            parts.append(f"input {d.person.input_size} tiles {d.person.tiles}")
        if d.sensitivity != default.sensitivity:
            parts.append(f"sensitivity {d.sensitivity}")
        if self.fork_iou is not None:
            parts.append(f"fork_iou {self.fork_iou:g}")
        if self.rotating is not None:
            parts.append(
                f"+1 of {self.rotating[0]}x{self.rotating[0]} tiles/frame at {self.rotating[1]}"
            )
        return ", ".join(parts) or "defaults"


def veil_planner(
    options: Options,
    methods: list[Method],
    fps: float,
    persons: PersonDetector | RotatingTiles | RecordingDetector | ReplayDetector | None,
    faces: FaceDetector | RecordingDetector | ReplayDetector | None = None,
) -> DynamicPlanner:
    """The planner ``veil.policy.build.build_dynamic_planner`` makes, with the given
    detectors (so they can record or replay) and the uncertainty growth of ``options``."""
    dynamic = options.dynamic.model_copy(update={"methods": methods})
    settings = TrackerSettings(
        fps=fps, hold_time=dynamic.hold_time, uncertainty_growth=options.growth / fps
    )
    if options.fork_iou is not None:
        settings = replace(settings, fork_iou=options.fork_iou)
    tracker = Tracker(settings)
    return DynamicPlanner(dynamic_settings(dynamic), tracker, persons=persons, faces=faces)


def plain_planner(
    detector: ReplayDetector, margin: Margin, *, faces: bool = False
) -> DynamicPlanner:
    """A detector with no tracker: each frame masks its own detections grown by ``margin``."""
    settings = DynamicSettings(hide_persons=not faces, hide_faces=faces, margin=margin)
    if faces:
        return DynamicPlanner(settings, NoTracker(), faces=detector)
    return DynamicPlanner(settings, NoTracker(), persons=detector)


@dataclass(frozen=True)
class Row:
    variant: str
    method: str
    report: EvalReport
    cpu_ms: float | None
    timed: bool
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        r = self.report
        return {
            "variant": self.variant,
            "method": self.method,
            "recall": r.recall,
            "head_recall": r.head_recall,
            "leaked_frames": len(r.leaked_frames),
            "longest_leak_run": r.longest_leak_run,
            "over_masking": r.over_masking,
            "masked_share": r.masked_share,
            "fps": r.processing_fps if self.timed else None,
            "cpu_ms": self.cpu_ms if self.timed else None,
            "boxes": r.boxes,
            "frames": r.frames,
            "frames_failed": r.frames_failed,
            "note": self.note,
        }


HEADER = (
    f"{'variant':<16} {'method':<13} {'recall':>7} {'head':>7} {'leaked':>6} {'run':>4} "
    f"{'overmask':>8} {'masked':>7} {'fps':>6} {'cpu ms':>7}  note"
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def format_row(row: Row) -> str:
    r = row.report
    fps = f"{r.processing_fps:.1f}" if row.timed and r.processing_fps else "-"
    cpu = f"{row.cpu_ms:.1f}" if row.timed and row.cpu_ms is not None else "-"
    return (
        f"{row.variant:<16} {row.method:<13} {_pct(r.recall):>7} {_pct(r.head_recall):>7} "
        f"{len(r.leaked_frames):>6} {r.longest_leak_run:>4} {_pct(r.over_masking):>8} "
        f"{_pct(r.masked_share):>7} {fps:>6} {cpu:>7}  {row.note}"
    )


class PlanningClock:
    """A clock for ``evaluate_frames`` that reads CPU time (so its ``processing_fps`` is
    frames per CPU second of planning) and sums the wall time between its calls in pairs
    (``evaluate_frames`` calls it before and after each frame's planning)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self._start: float | None = None

    def __call__(self) -> float:
        now = time.perf_counter()
        if self._start is None:
            self._start = now
        else:
            self.wall += now - self._start
            self._start = None
        return time.process_time()


def measure(
    frames: Callable[[], Iterable[Frame]],
    gt: GroundTruth,
    planners: Sequence[FramePlanner],
    name: str,
) -> tuple[EvalReport, float]:
    """The report (its ``processing_fps``: frames per wall second of planning), and CPU
    milliseconds of planning per frame (all threads of this process)."""
    clock = PlanningClock()
    report = evaluate_frames(frames(), gt, planners, video=name, clock=clock)
    cpu_fps = report.processing_fps
    cpu_ms = 1000.0 / cpu_fps if cpu_fps else 0.0
    wall_fps = report.frames / clock.wall if clock.wall > 0 else None
    return replace(report, processing_fps=wall_fps), cpu_ms


# --------------------------------------------------------------------------- walking.mp4


def decode(path: Path, count: int) -> list[Frame]:
    frames: list[Frame] = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            image = check_image(np.asarray(frame.to_ndarray(format="bgr24")))
            frames.append(Frame(image, index, Fraction(1, 25), index))
            if len(frames) >= count:
                break
    return frames


def pseudo_ground_truth(frames: Sequence[Frame], detector: PersonDetector) -> GroundTruth:
    """The thorough detector's boxes per frame, with identities linked by overlap."""
    rows: list[tuple[int, int, float, float, float, float]] = []
    previous = np.zeros((0, 4), np.float32)
    previous_ids: list[int] = []
    next_id = 1
    for frame in frames:
        boxes = detector.detect(frame).xyxy
        ids = [0] * len(boxes)
        if len(boxes) and len(previous):
            overlap = iou_matrix(boxes, previous)
            used: set[int] = set()
            for flat in np.argsort(-overlap, axis=None).tolist():
                i, j = divmod(int(flat), overlap.shape[1])
                if overlap[i, j] < LINK_IOU:
                    break
                if ids[i] or j in used:
                    continue
                ids[i] = previous_ids[j]
                used.add(j)
        for i in range(len(boxes)):
            if not ids[i]:
                ids[i] = next_id
                next_id += 1
        for (x0, y0, x1, y1), pid in zip(boxes.tolist(), ids, strict=True):
            rows.append((frame.index + 1, pid, x0, y0, x1 - x0, y1 - y0))
        previous, previous_ids = boxes, ids
    data = np.array(rows, np.float64).reshape(-1, 6)
    return GroundTruth(
        frame=data[:, 0].astype(np.int64),
        person_id=data[:, 1].astype(np.int64),
        xywh=data[:, 2:6].copy(),
        ignored_frame=np.zeros((0,), np.int64),
        ignored_xywh=np.zeros((0, 4), np.float64),
        format=GTFormat.MOT15,
        source="pseudo ground truth (YOLOX-nano input 1280, 2x2 tiles, threshold 0.3)",
    )


# --------------------------------------------------------------------------- runs


def run_sequence(
    name: str,
    frames: Callable[[], Iterable[Frame]],
    gt: GroundTruth,
    fps: float,
    methods: Sequence[str],
    options: Options,
    model_dir: Path,
    size: tuple[int, int],
) -> list[Row]:
    rows: list[Row] = []
    dynamic = options.dynamic.model_copy(update={"model_dir": str(model_dir)})
    options = replace(options, dynamic=dynamic)
    needs_persons = bool({"humans", "plain", "plain+margin", "faces"} & set(methods))
    persons = RecordingDetector(person_detector(options)) if needs_persons else None
    if persons is not None:
        # The humans row (and with it the recording) runs first whenever persons are needed.
        planner = veil_planner(options, [Method.HUMANS], fps, persons)
        report, cpu = measure(frames, gt, [planner], name)
        if "humans" in methods:
            rows.append(Row(name, "humans", report, cpu, True, options.label()))
        replay = ReplayDetector(persons.recorded)
        margin = Margin.parse(dynamic.margin)
        if "plain" in methods:
            report, cpu = measure(frames, gt, [plain_planner(replay, Margin())], name)
            rows.append(Row(name, "plain", report, cpu, False, "detector only"))
        if "plain+margin" in methods:
            report, cpu = measure(frames, gt, [plain_planner(replay, margin)], name)
            rows.append(Row(name, "plain+margin", report, cpu, False, f"margin {dynamic.margin}"))
    heads = heads_only(gt, size) if {"faces", "yunet"} & set(methods) else None
    if heads is not None:
        faces = RecordingDetector(FaceDetector.from_config(dynamic))
        if "faces" in methods and persons is not None:
            # Timed with both detectors running (the person detector runs again).
            live_persons = person_detector(options)
            planner = veil_planner(options, [Method.FACES], fps, live_persons, faces)
            report, cpu = measure(frames, heads, [planner], name)
            rows.append(Row(name, "faces", report, cpu, True, "vs heads; " + options.label()))
        if "yunet" in methods:
            if not faces.recorded:
                run = RecordingDetector(FaceDetector.from_config(dynamic))
                for frame in frames():
                    run.detect(frame)
                faces = run
            planner = plain_planner(ReplayDetector(faces.recorded), Margin(), faces=True)
            report, cpu = measure(frames, heads, [planner], name)
            rows.append(Row(name, "yunet", report, cpu, False, "vs heads; face detector only"))
    if "motion" in methods and name in MOTION_VARIANTS:
        config = VeilConfig(dynamic=DynamicConfig(methods=[Method.MOTION]))
        report, cpu = measure(frames, gt, build_planners(config, fps), name)
        rows.append(Row(name, "motion", report, cpu, True, "defaults"))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tud", type=Path, default=DEFAULT_TUD)
    parser.add_argument("--walking", type=Path, default=DEFAULT_WALKING)
    parser.add_argument("--walking-frames", type=int, default=150)
    parser.add_argument(
        "--walking-gt",
        type=Path,
        default=None,
        help="pseudo ground truth file: read if it exists, else computed and written there",
    )
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--variants", nargs="*", default=None, help="names (default: all)")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--frames", type=int, default=None, help="first N frames per variant")
    parser.add_argument("--hold", type=float, default=None, help="hold time (s)")
    parser.add_argument("--growth", type=float, default=UNCERTAINTY_GROWTH_PER_SECOND)
    parser.add_argument("--margin", default=None)
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--tiles", type=int, default=None)
    parser.add_argument("--sensitivity", type=int, default=None)
    parser.add_argument(
        "--rotating-tiles",
        type=int,
        nargs=2,
        default=None,
        metavar=("GRID", "INPUT"),
        help="experiment: whole frame plus one of GRID x GRID tiles per frame at INPUT",
    )
    parser.add_argument("--fork-iou", type=float, default=None, help="tracker fork_iou")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON")
    # ``python -m bench`` calls main() with no arguments: use the defaults, not its argv.
    args = parser.parse_args([] if argv is None else argv)

    os.environ.setdefault(MODEL_DIR_ENV, str(args.model_dir))
    default = DynamicConfig()
    person = PersonDetectorConfig(
        input_size=args.input_size or default.person.input_size,
        tiles=args.tiles or default.person.tiles,
    )
    dynamic = default.model_copy(
        update={
            "hold_time": default.hold_time if args.hold is None else args.hold,
            "margin": args.margin or default.margin,
            "person": person,
            "sensitivity": default.sensitivity if args.sensitivity is None else args.sensitivity,
        }
    )
    options = Options(
        DynamicConfig.model_validate(dynamic.model_dump()),
        args.growth,
        None if args.rotating_tiles is None else tuple(args.rotating_tiles),
        args.fork_iou,
    )

    load = os.getloadavg()
    print(
        f"veil quality bench: {os.cpu_count()} CPUs, load average {load[0]:.1f} "
        f"{load[1]:.1f} {load[2]:.1f}; humans/faces settings: {options.label()}"
    )
    print("percentages; run = longest leak run (frames); fps/cpu ms: processing only")
    print(HEADER, flush=True)
    rows: list[Row] = []
    if (args.tud / "gt" / "gt.txt").is_file():
        source = load_sequence(args.tud)
        for seq in standard_variants(source):
            if args.variants and seq.name not in args.variants:
                continue
            if args.frames:
                seq = seq.head(args.frames)
            for row in run_variant(seq, args.methods, options, args.model_dir):
                rows.append(row)
                print(format_row(row), flush=True)
    else:
        print(f"{args.tud}: not found, variants skipped")
    if args.walking.is_file() and (not args.variants or "walking" in args.variants):
        frames = decode(args.walking, args.walking_frames)
        cache = args.walking_gt
        if cache is not None and cache.is_file():
            gt = load_ground_truth(cache).up_to(len(frames))
        else:
            gt = pseudo_ground_truth(frames, PersonDetector.load(REFERENCE, args.model_dir))
            if cache is not None:
                cache.write_text(
                    "".join(
                        f"{f},{i},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,-1,-1,-1\n"
                        for f, i, (x, y, w, h) in zip(
                            gt.frame.tolist(), gt.person_id.tolist(), gt.xywh.tolist(), strict=True
                        )
                    )
                )
        print(
            f"walking.mp4, first {len(frames)} frames, vs pseudo ground truth "
            f"({len(gt)} boxes): RELATIVE recall",
            flush=True,
        )
        for row in run_sequence(
            "walking",
            lambda: frames,
            gt,
            25.0,
            args.methods,
            options,
            args.model_dir,
            (frames[0].width, frames[0].height),
        ):
            rows.append(row)
            print(format_row(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in rows], indent=2))
    return 0


def run_variant(
    seq: StressSequence, methods: Sequence[str], options: Options, model_dir: Path
) -> list[Row]:
    return run_sequence(
        seq.name, seq.frames, seq.gt, seq.fps, methods, options, model_dir, (seq.width, seq.height)
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
