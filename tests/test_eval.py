"""veil eval: ground-truth parsing, metrics with exactly known answers, the runner, the CLI."""

from __future__ import annotations

import io
import json
import os
import sys
import types
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from numpy.typing import NDArray
from rich.console import Console
from typer.testing import CliRunner

from conftest import TUD
from veil.cli import eval_cmd
from veil.core.errors import UsageError
from veil.core.frame import Frame
from veil.core.plan import MaskLayer, MaskPlan, MaskReason
from veil.core.region import BBox, BoolMask
from veil.core.style import Style
from veil.eval import (
    EvalReport,
    GroundTruth,
    GroundTruthError,
    GroundTruthMismatchError,
    GroundTruthNotFoundError,
    GTFormat,
    HeightBucket,
    MetricsAccumulator,
    Thresholds,
    compute_metrics,
    evaluate,
    evaluate_frames,
    hidden_pixels,
    load_ground_truth,
    parse_ground_truth,
    read_seqinfo,
)
from veil.eval.metrics import (
    INTEGRAL_MIN_BOXES,
    box_areas,
    coverage,
    head_regions,
    masked_counts,
    over_masked_share,
    pixel_boxes,
)

W, H = 100, 80


def _gt(*rows: str, fmt: GTFormat | None = None) -> GroundTruth:
    return parse_ground_truth(rows, source="gt.txt", fmt=fmt)


def _mot15(frame: int, pid: int, x: float, y: float, w: float, h: float, flag: int = 1) -> str:
    return f"{frame},{pid},{x},{y},{w},{h},{flag},-1,-1,-1"


def _empty() -> BoolMask:
    return np.zeros((H, W), dtype=np.bool_)


def _masked(*boxes: tuple[int, int, int, int]) -> BoolMask:
    """A mask with pixel boxes ``x0, y0, x1, y1`` (half-open) set."""
    mask = _empty()
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


# --------------------------------------------------------------------------- parsing


def test_mot15_rows_count_by_flag_and_flag_0_rows_are_ignored_person_boxes() -> None:
    gt = _gt(
        "1,1,10,20,30,60,1,4.48,5.50,0",
        "1,2,50,20,30,60,0,-1,-1,-1",
        "",
        "2,1,12,20,30,60,1,-1,-1,-1",
    )
    assert gt.format is GTFormat.MOT15
    assert len(gt) == 2
    assert gt.frame.tolist() == [1, 2]
    assert gt.person_id.tolist() == [1, 1]
    assert gt.xywh[1].tolist() == [12.0, 20.0, 30.0, 60.0]
    assert gt.ignored_xywh.tolist() == [[50.0, 20.0, 30.0, 60.0]]
    assert gt.dropped == {"flag": 1, "class": 0, "visibility": 0}
    assert gt.rows(1).tolist() == [0]
    assert gt.ignored_rows(1).tolist() == [0]
    assert gt.rows(3).tolist() == []
    assert gt.frame_numbers == (1, 2)


def test_whitespace_separated_lines_are_read_too() -> None:
    gt = _gt("1 1 10 20 30 60 1 -1 -1 -1", "2 1 10 20 30 60 1 -1 -1 -1")
    assert gt.format is GTFormat.MOT15
    assert len(gt) == 2


def test_mot17_counts_only_confident_visible_pedestrians() -> None:
    gt = _gt(
        "1,1,10,10,20,40,1,1,1.0",  # pedestrian: counts
        "1,2,10,10,20,40,0,1,1.0",  # conf 0: ignored, still a person
        "1,3,10,10,20,40,1,2,1.0",  # person on vehicle: ignored, a person
        "1,4,10,10,20,40,1,3,1.0",  # car: dropped, not a person
        "1,5,10,10,20,40,1,1,0.2",  # mostly occluded: ignored, a person
        "1,6,10,10,20,40,1,1,0.25",  # visibility at the bar: counts
        "1,7,10,10,20,40,1,7,1",  # static person: ignored, a person
    )
    assert gt.format is GTFormat.MOT17
    assert gt.person_id.tolist() == [1, 6]
    assert gt.dropped == {"flag": 1, "class": 3, "visibility": 1}
    assert len(gt.ignored_frame) == 4  # conf 0, on vehicle, occluded, static; not the car


def test_forced_format_must_match_the_columns() -> None:
    with pytest.raises(GroundTruthError, match=r"gt\.txt:1: expected 9 columns \(mot17\)"):
        _gt(_mot15(1, 1, 0, 0, 10, 10), fmt=GTFormat.MOT17)


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (["1,1,10,20,30"], 1, "expected 9 columns"),
        ([_mot15(1, 1, 0, 0, 9, 9), "2,1,x,20,30,60,1,-1,-1,-1"], 2, "x must be a number"),
        ([_mot15(1, 1, 0, 0, 9, 9), "", "2,1,10,20,30,60,1,1,1.0"], 3, "expected 10 columns"),
        (["1,1,10,20,30,60,2,-1,-1,-1"], 1, "must be 0 or 1"),
        (["1,1,10,20,0,60,1,-1,-1,-1"], 1, "width and height must be positive"),
        (["0,1,10,20,30,60,1,-1,-1,-1"], 1, "frame numbers start at 1"),
        (["1.5,1,10,20,30,60,1,-1,-1,-1"], 1, "frame must be a whole number"),
        (["1,1,10,20,30,nan,1,-1,-1,-1"], 1, "h must be a finite number"),
        (["1,1,10,20,30,60,1,1,1.5"], 1, "visibility must be within 0..1"),
        (["1,1,10,20,30,60,1,0,1"], 1, "class must be a positive integer"),
        ([_mot15(1, 1, 0, 0, 9, 9), _mot15(1, 1, 5, 5, 9, 9)], 2, "appears twice in frame 1"),
    ],
)
def test_malformed_lines_name_file_and_line(lines: list[str], line: int, message: str) -> None:
    with pytest.raises(GroundTruthError, match=message) as caught:
        _gt(*lines)
    assert caught.value.location == f"gt.txt:{line}"
    assert str(caught.value).startswith(f"gt.txt:{line}: ")
    assert isinstance(caught.value, ValueError)
    assert caught.value.exit_code == 2


def test_empty_ground_truth_is_an_error() -> None:
    with pytest.raises(GroundTruthError, match="no boxes"):
        _gt("", "  ")


def test_load_reports_missing_file_and_reads_seqinfo(tmp_path: Path) -> None:
    with pytest.raises(GroundTruthNotFoundError) as caught:
        load_ground_truth(tmp_path / "nope.txt")
    assert isinstance(caught.value, FileNotFoundError)
    (tmp_path / "gt").mkdir()
    path = tmp_path / "gt" / "gt.txt"
    path.write_text(_mot15(1, 1, 0, 0, 9, 9) + "\n" + _mot15(2, 1, 0, 0, 9, 9) + "\n")
    gt = load_ground_truth(path)
    assert gt.source == str(path)
    assert read_seqinfo(path) is None
    (tmp_path / "seqinfo.ini").write_text(
        "[Sequence]\nname=S\nframeRate=30\nseqLength=2\nimWidth=100\nimHeight=80\n"
    )
    info = read_seqinfo(path)
    assert info is not None
    assert (info.name, info.frame_rate, info.length, info.width, info.height) == (
        "S",
        30.0,
        2,
        100,
        80,
    )
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nframeRate=fast\n")
    with pytest.raises(GroundTruthError, match="seqinfo"):
        read_seqinfo(path)


def test_up_to_keeps_only_early_frames() -> None:
    gt = _gt(_mot15(1, 1, 0, 0, 9, 9), _mot15(3, 1, 0, 0, 9, 9), _mot15(2, 2, 0, 0, 9, 9, 0))
    early = gt.up_to(2)
    assert early.frame.tolist() == [1]
    assert early.ignored_frame.tolist() == [2]


# -------------------------------------------------------------------- pixel geometry


def test_boxes_are_clipped_to_the_frame() -> None:
    boxes = pixel_boxes(
        np.array(
            [
                [10, 20, 30, 40],  # inside
                [-10, -5, 30, 20],  # past the top-left corner
                [90, 70, 30, 30],  # past the bottom-right corner
                [200, 10, 10, 10],  # wholly outside
                [10.4, 20.6, 5.2, 4.0],  # fractional: pixels whose centre is inside
            ],
            dtype=np.float64,
        ),
        W,
        H,
    )
    assert boxes.tolist() == [
        [10, 20, 40, 60],
        [0, 0, 20, 15],
        [90, 70, 100, 80],
        [100, 10, 100, 20],
        [10, 21, 16, 25],
    ]


def test_head_region_is_top_sixth_and_middle_half() -> None:
    assert head_regions(np.array([[10, 20, 40, 60]], dtype=np.float64)).tolist() == [
        [20.0, 20.0, 20.0, 10.0]
    ]


def test_coverage_is_the_masked_share_of_the_clipped_box() -> None:
    boxes = pixel_boxes(np.array([[10, 10, 20, 40], [-10, 0, 20, 10]], np.float64), W, H)
    mask = _masked((10, 10, 30, 30), (0, 0, 5, 10))  # top half of box 1; half of box 2's visible
    cov = coverage(mask, boxes)
    assert cov.tolist() == [0.5, 0.5]
    empty = coverage(mask, pixel_boxes(np.array([[500, 0, 5, 5]], np.float64), W, H))
    assert np.isnan(empty[0])


def test_integral_image_counts_equal_slice_counts() -> None:
    rng = np.random.default_rng(3)
    mask = rng.random((H, W)) < 0.3
    xywh = np.column_stack(
        [
            rng.uniform(-20, W, 60),
            rng.uniform(-20, H, 60),
            rng.uniform(20, 60, 60),
            rng.uniform(20, 60, 60),
        ]
    )
    boxes = pixel_boxes(xywh, W, H)
    assert len(boxes) >= INTEGRAL_MIN_BOXES
    assert box_areas(boxes).sum() > mask.size  # a crowd: the integral image is used
    fast = masked_counts(mask, boxes)
    slow = [int(np.count_nonzero(mask[y0:y1, x0:x1])) for x0, y0, x1, y1 in boxes.tolist()]
    assert fast.tolist() == slow


def test_over_masking_counts_only_pixels_outside_every_box() -> None:
    mask = np.ones((H, W), dtype=np.bool_)
    boxes = np.array([[0, 0, 50, 40], [25, 20, 75, 60], [0, 0, 0, 0]], dtype=np.int64)
    inside = 50 * 40 + 50 * 40 - 25 * 20
    assert over_masked_share(mask, boxes) == pytest.approx((W * H - inside) / (W * H))
    assert over_masked_share(_empty(), boxes) == 0.0


# --------------------------------------------------------------------------- metrics


def test_recall_by_height_bucket_uses_the_90_percent_bar() -> None:
    gt = _gt(
        _mot15(1, 1, 0, 0, 10, 40),  # small
        _mot15(1, 2, 10, 0, 10, 50),  # medium (50 is not small)
        _mot15(1, 3, 20, 0, 10, 149),  # medium, clipped to 80 rows
        _mot15(1, 4, 30, 0, 10, 150),  # large (clipped to 80 rows)
        _mot15(1, 5, 40, 0, 10, 200),  # large
    )
    mask = _masked(
        (0, 0, 10, 36),  # 36/40 = 90%: recalled
        (10, 0, 20, 44),  # 44/50 = 88%: not
        (20, 0, 30, 72),  # 72/80 = 90% of the visible part: recalled
        (30, 0, 40, 71),  # 71/80: not
        (40, 0, 50, 80),  # all: recalled
    )
    report = compute_metrics({0: mask}, gt)
    assert [b.coverage for b in report.per_box] == pytest.approx([0.9, 0.88, 0.9, 71 / 80, 1.0])
    assert (report.overall.boxes, report.overall.recalled) == (5, 3)
    assert report.recall == pytest.approx(0.6)
    small = report.bucket(HeightBucket.SMALL)
    medium = report.bucket(HeightBucket.MEDIUM)
    large = report.bucket(HeightBucket.LARGE)
    assert (small.boxes, small.recalled) == (1, 1)
    assert (medium.boxes, medium.recalled) == (2, 1)
    assert (large.boxes, large.recalled) == (2, 1)
    assert report.mean_coverage == pytest.approx((0.9 + 0.88 + 0.9 + 71 / 80 + 1.0) / 5)


def test_an_empty_bucket_has_no_recall() -> None:
    report = compute_metrics({0: _empty()}, _gt(_mot15(1, 1, 0, 0, 10, 60)))
    assert report.bucket(HeightBucket.SMALL).recall is None
    assert report.bucket(HeightBucket.MEDIUM).recall == 0.0


def test_head_recall_needs_the_head_masked() -> None:
    # Box 40 x 60 at (10, 10): head region is x 20..40, y 10..20 (200 of 2400 px).
    gt = _gt(_mot15(1, 1, 10, 10, 40, 60))
    body_only = _masked((10, 10, 50, 70))
    body_only[10:20, 20:40] = False
    report = compute_metrics({0: body_only}, gt)
    assert report.per_box[0].coverage == pytest.approx(2200 / 2400)
    assert report.recall == 1.0  # 91.7% of the box is masked ...
    assert report.head_recall == 0.0  # ... but not the face
    assert report.per_box[0].head_coverage == 0.0
    head_only = _masked((20, 10, 40, 20))
    report = compute_metrics({0: head_only}, gt)
    assert (report.recall, report.head_recall) == (0.0, 1.0)
    assert report.leaked_frames == (1,)


def test_a_head_outside_the_frame_is_not_counted() -> None:
    gt = _gt(_mot15(1, 1, 10, -30, 40, 90))  # head rows -30..-15: above the picture
    report = compute_metrics({0: _masked((0, 0, W, H))}, gt)
    assert report.head.boxes == 0
    assert report.head_recall is None
    assert report.per_box[0].head_coverage is None
    assert report.recall == 1.0


def test_boxes_wholly_outside_the_frame_are_counted_apart() -> None:
    gt = _gt(_mot15(1, 1, 10, 10, 20, 40), _mot15(1, 2, 150, 10, 20, 40))
    report = compute_metrics({0: _empty()}, gt)
    assert (report.boxes, report.boxes_outside) == (1, 1)


def test_leaked_frames_and_longest_run_per_person() -> None:
    person1 = (0, 0, 20, 40)
    person2 = (50, 0, 70, 40)
    rows = []
    for frame in range(1, 11):
        rows.append(_mot15(frame, 1, 0, 0, 20, 40))
        if frame != 6:  # person 2 is not annotated in frame 6: that ends a run
            rows.append(_mot15(frame, 2, 50, 0, 20, 40))
    gt = _gt(*rows)
    leaked1 = {2, 3, 4, 5, 8}
    leaked2 = {3, 4, 5, 7, 8, 9}
    masks: dict[int, BoolMask] = {}
    for frame in range(1, 11):
        boxes = []
        if frame not in leaked1:
            boxes.append(person1)
        if frame not in leaked2:
            boxes.append(person2)
        mask = _masked(*boxes)
        if frame == 5:
            mask[0:19, 0:20] = True  # person 1 at 19/40 < 50%: leaked, partly masked
        if frame == 10:
            mask[0:20, 50:70] = True  # person 2 at exactly 50%: not leaked
        masks[frame - 1] = mask
    report = compute_metrics(masks, gt)
    assert report.leaked_frames == tuple(sorted(leaked1 | leaked2))
    runs = [(r.person_id, r.first_frame, r.last_frame, r.length) for r in report.leak_runs]
    assert runs[0] == (1, 2, 5, 4)
    assert sorted(runs[1:]) == [(1, 8, 8, 1), (2, 3, 5, 3), (2, 7, 9, 3)]
    assert report.longest_leak_run == 4
    assert report.leak_runs[0].min_coverage == 0.0
    frame5 = [b.coverage for b in report.per_box if (b.frame, b.person_id) == (5, 1)]
    assert frame5 == [19 / 40]
    persons = {p.person_id: p for p in report.persons}
    assert (persons[1].leaked_frames, persons[1].longest_leak_run) == (5, 4)
    assert (persons[2].leaked_frames, persons[2].longest_leak_run) == (6, 3)
    assert persons[2].boxes == 9
    assert report.persons[0].person_id == 2  # worst first: lowest recall


def test_over_masking_averages_frames_and_spares_ignored_person_boxes() -> None:
    gt = _gt(
        _mot15(1, 1, 0, 0, 50, 40),  # counted: a quarter of the frame
        _mot15(1, 2, 50, 0, 50, 40, flag=0),  # ignored person: another quarter
    )
    full = np.ones((H, W), dtype=np.bool_)
    report = compute_metrics({0: full, 1: full, 2: _empty()}, gt)
    # frame 1: half the frame is outside all boxes; frame 2 (no GT): all; frame 3: nothing.
    assert report.over_masking == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert report.over_masking_max == pytest.approx(1.0)
    assert report.masked_share == pytest.approx(2 / 3)
    assert report.frames == 3
    assert report.boxes_ignored == 1


def test_boxes_of_frames_without_a_mask_are_not_evaluated() -> None:
    gt = _gt(_mot15(1, 1, 0, 0, 10, 10), _mot15(2, 1, 0, 0, 10, 10))
    report = compute_metrics({0: _masked((0, 0, 10, 10))}, gt)
    assert report.boxes == 1
    assert report.recall == 1.0


def test_mask_must_be_a_2d_bool_array() -> None:
    gt = _gt(_mot15(1, 1, 0, 0, 10, 10))
    with pytest.raises(ValueError, match="bool"):
        compute_metrics({0: np.zeros((H, W), np.uint8)}, gt)


# ------------------------------------------------------------------- report, gates


def _report_with_a_leak() -> EvalReport:
    gt = _gt(_mot15(1, 1, 0, 0, 20, 40), _mot15(2, 1, 0, 0, 20, 40), _mot15(2, 7, 50, 0, 20, 40))
    return compute_metrics({0: _masked((0, 0, 20, 40)), 1: _masked((0, 0, 20, 40))}, gt)


def test_report_json_holds_every_figure() -> None:
    report = _report_with_a_leak()
    data = json.loads(report.to_json())
    assert data["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert data["recall_by_height"]["small"] == {"boxes": 3, "recalled": 2, "recall": 0.666667}
    assert data["recall_by_height"]["large"] == {"boxes": 0, "recalled": 0, "recall": None}
    assert data["head_recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert data["leaked_frames"] == [2]
    assert data["longest_leak_run"] == 1
    assert data["leak_runs"][0]["person_id"] == 7
    assert data["persons"][0]["person_id"] == 7
    assert len(data["per_box"]) == 3
    assert data["processing_fps"] is None
    assert data["gt_format"] == "mot15"


def test_summary_lists_figures_worst_persons_and_leaks() -> None:
    out = io.StringIO()
    Console(file=out, width=120).print(_report_with_a_leak().summary())
    text = out.getvalue()
    assert "66.67% (2/3)" in text
    assert "worst persons" in text
    assert "longest leaks" in text
    assert "person 7, frames 2-2" in text


@pytest.mark.parametrize(
    ("thresholds", "failures"),
    [
        (Thresholds(), []),
        (Thresholds(min_recall=0.6, max_leak_run=1, max_leaked_frames=1), []),
        (Thresholds(min_recall=0.7), ["recall 66.67% is below 70.00%"]),
        (Thresholds(min_head_recall=1.0), ["head recall 66.67% is below 100.00%"]),
        (Thresholds(max_leaked_frames=0), ["leaked frames 1 is above 0"]),
        (Thresholds(max_leak_run=0), ["longest leak run 1 is above 0"]),
        (Thresholds(max_over_masking=0.0), []),
        (Thresholds(min_fps=10), ["processing fps: nothing was measured (needs at least 10)"]),
    ],
)
def test_thresholds_report_each_missed_bar(thresholds: Thresholds, failures: list[str]) -> None:
    assert list(thresholds.check(_report_with_a_leak())) == failures


# ---------------------------------------------------------------------------- runner


def _frames(count: int, corrupt: Sequence[int] = ()) -> list[Frame]:
    image = np.full((H, W, 3), 128, dtype=np.uint8)
    return [
        Frame(image=image, pts=i, time_base=Fraction(1, 25), index=i, corrupt=i in corrupt)
        for i in range(count)
    ]


class GTPlanner:
    """Masks exactly the ground-truth boxes of each frame."""

    def __init__(self, gt: GroundTruth) -> None:
        self.gt = gt
        self.seen: list[int] = []

    def plan(self, frame: Frame) -> MaskPlan:
        self.seen.append(frame.index)
        layers = []
        boxes = pixel_boxes(self.gt.xywh[self.gt.rows(frame.index + 1)], frame.width, frame.height)
        for x0, y0, x1, y1 in boxes.tolist():
            box = BBox(x0, y0, x1, y1)
            if not box.empty:
                layers.append(
                    MaskLayer(
                        box,
                        np.ones((box.height, box.width), np.bool_),
                        Style(),
                        MaskReason.PERSON,
                    )
                )
        return MaskPlan(frame.width, frame.height, tuple(layers))


class FailingPlanner:
    def plan(self, frame: Frame) -> MaskPlan:
        raise RuntimeError("detector broke")


class WrongSizePlanner:
    def plan(self, frame: Frame) -> MaskPlan:
        return MaskPlan(frame.width + 1, frame.height)


def _walking_gt(frames: int) -> GroundTruth:
    rows = [_mot15(f, 1, 5 + 3 * f, 10, 20, 60) for f in range(1, frames + 1)]
    rows += [_mot15(f, 2, 70, -10, 25, 60) for f in range(1, frames + 1)]  # cut by the edge
    return _gt(*rows)


def _ticking_clock(step: float) -> Callable[[], float]:
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


def test_exact_boxes_give_full_recall_and_no_leak() -> None:
    gt = _walking_gt(6)
    planner = GTPlanner(gt)
    report = evaluate_frames(_frames(6), gt, [planner], video="v", clock=_ticking_clock(0.01))
    assert planner.seen == list(range(6))
    assert (report.recall, report.head_recall) == (1.0, 1.0)
    assert report.leaked_frames == ()
    assert report.longest_leak_run == 0
    assert report.over_masking == 0.0
    assert report.frames_failed == 0
    assert report.processing_fps == pytest.approx(100.0)  # one 10 ms tick per frame
    assert report.video == "v"


def test_a_failing_planner_masks_whole_frames_and_the_others_still_run() -> None:
    gt = _walking_gt(4)
    planner = GTPlanner(gt)
    report = evaluate_frames(_frames(4), gt, [FailingPlanner(), planner])
    assert planner.seen == [0, 1, 2, 3]
    assert report.frames_failed == 4
    assert report.first_failure == "frame 0: FailingPlanner: detector broke"
    assert (report.recall, report.head_recall) == (1.0, 1.0)
    assert report.masked_share == 1.0
    boxes_share = (20 * 60 + 25 * 50) / (W * H)
    assert report.over_masking == pytest.approx(1 - boxes_share)


@pytest.mark.parametrize(
    ("planner", "corrupt", "reason"),
    [
        (WrongSizePlanner(), (), "plan is 101x80, frame is 100x80"),
        (None, (0,), "frame 0 is corrupt"),
    ],
)
def test_wrong_plans_and_corrupt_frames_fail_closed(
    planner: WrongSizePlanner | None, corrupt: tuple[int, ...], reason: str
) -> None:
    frame = _frames(1, corrupt)[0]
    mask, failure = hidden_pixels(frame, [planner] if planner else [])
    assert mask.all()
    assert failure is not None
    assert reason in failure


def test_union_of_planners_is_what_is_hidden() -> None:
    gt = _walking_gt(1)
    other = _gt(_mot15(1, 9, 0, 70, 10, 10))
    mask, failure = hidden_pixels(_frames(1)[0], [GTPlanner(gt), GTPlanner(other)])
    assert failure is None
    assert np.count_nonzero(mask) == 20 * 60 + 25 * 50 + 10 * 10


def test_ground_truth_beyond_the_video_is_an_error_unless_cut_short() -> None:
    gt = _walking_gt(5)
    with pytest.raises(GroundTruthMismatchError, match="boxes in 2 frames"):
        evaluate_frames(_frames(3), gt, [GTPlanner(gt)])
    report = evaluate_frames(_frames(5), gt, [GTPlanner(gt)], max_frames=3)
    assert report.frames == 3
    assert report.boxes == 6
    with pytest.raises(GroundTruthMismatchError, match="no frames"):
        evaluate_frames([], gt, [])
    with pytest.raises(GroundTruthMismatchError, match="must increase"):
        evaluate_frames(list(reversed(_frames(2))), gt, [])


# ------------------------------------------------------------- real video and CLI


def _write_sequence(root: Path, frames: int, size: tuple[int, int] = (W, H)) -> tuple[str, Path]:
    """An image sequence ``root/img1/%06d.png``, MOT15 ground truth and seqinfo.ini."""
    (root / "img1").mkdir(parents=True)
    (root / "gt").mkdir()
    for i in range(1, frames + 1):
        image = np.full((size[1], size[0], 3), 40 * i % 255, dtype=np.uint8)
        assert cv2.imwrite(str(root / "img1" / f"{i:06d}.png"), image)
    rows = [_mot15(f, 1, 5 + 3 * f, 10, 20, 60) for f in range(1, frames + 1)]
    (root / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    (root / "seqinfo.ini").write_text(
        f"[Sequence]\nname=t\nframeRate=10\nseqLength={frames}\nimWidth={W}\nimHeight={H}\n"
    )
    return str(root / "img1" / "%06d.png"), root / "gt" / "gt.txt"


def test_evaluate_reads_an_image_sequence_at_the_seqinfo_rate(tmp_path: Path) -> None:
    video, gt_path = _write_sequence(tmp_path, 4)
    rates: list[float] = []

    def factory(fps: float) -> list[GTPlanner]:
        rates.append(fps)
        return [GTPlanner(load_ground_truth(gt_path))]

    report = evaluate(video, gt_path, factory)
    assert rates == [10.0]
    assert (report.frames, report.boxes, report.recall) == (4, 4, 1.0)


def test_evaluate_refuses_a_video_of_another_size(tmp_path: Path) -> None:
    video, gt_path = _write_sequence(tmp_path, 2, size=(64, 48))
    with pytest.raises(GroundTruthMismatchError, match="64x48"):
        evaluate(video, gt_path, [])


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Stands in for veil.policy.build: 'humans' masks the GT boxes, else nothing."""
    calls: list[float] = []
    module = types.ModuleType("veil.policy.build")

    def build_planners(config: object, fps: float) -> list[object]:
        calls.append(fps)
        methods = getattr(getattr(config, "dynamic", None), "methods", [])
        if methods:
            return [GTPlanner(load_ground_truth(Path(os.environ["VEIL_TEST_GT"])))]
        return []

    module.build_planners = build_planners  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "veil.policy.build", module)
    return calls


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Root."""

    eval_cmd.register(app)
    return app


def test_cli_writes_json_and_gates_fail_with_exit_3(
    tmp_path: Path, fake_build: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    video, gt_path = _write_sequence(tmp_path / "seq", 3)
    monkeypatch.setenv("VEIL_TEST_GT", str(gt_path))
    humans = tmp_path / "humans.yaml"
    humans.write_text("version: 1\ndynamic:\n  methods: [humans]\n")
    nothing = tmp_path / "none.yaml"
    nothing.write_text("version: 1\n")
    out = tmp_path / "report.json"
    runner = CliRunner()
    base = ["eval", "--gt", str(gt_path), "--video", video]
    gates = ["--min-recall", "0.998", "--min-head-recall", "1", "--max-leaked-frames", "0"]

    ok = runner.invoke(_cli(), [*base, "-c", str(humans), "--json", str(out), *gates])
    assert ok.exit_code == 0, ok.output
    assert "100.00% (3/3)" in ok.output
    data = json.loads(out.read_text())
    assert (data["recall"], data["frames"], data["leaked_frame_count"]) == (1.0, 3, 0)
    assert fake_build == [10.0]

    bad = runner.invoke(_cli(), [*base, "-c", str(nothing), "--fps", "5", *gates])
    assert bad.exit_code == eval_cmd.GATE_FAILED_EXIT
    assert "recall 0.00% is below 99.80%" in bad.output
    assert "leaked frames 3 is above 0" in bad.output
    assert fake_build[-1] == 5.0


def test_cli_json_to_stdout(tmp_path: Path, fake_build: list[float]) -> None:
    video, gt_path = _write_sequence(tmp_path / "seq", 2)
    config = tmp_path / "none.yaml"
    config.write_text("version: 1\n")
    result = CliRunner().invoke(
        _cli(), ["eval", "--gt", str(gt_path), "--video", video, "-c", str(config), "--json", "-"]
    )
    assert result.exit_code == 0, result.output
    start = result.stdout.index("{")
    assert json.loads(result.stdout[start:])["recall"] == 0.0


# --------------------------------------------------------------- the shared real data


def _need_tud() -> None:
    if not (TUD / "gt" / "gt.txt").is_file():
        message = f"the shared test data is not at {TUD}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_real_tud_ground_truth_parses() -> None:
    _need_tud()
    gt_path = TUD / "gt" / "gt.txt"
    gt = load_ground_truth(gt_path)
    lines = [line.split(",") for line in gt_path.read_text().splitlines() if line.strip()]
    assert len(lines) == 1156
    assert gt.format is GTFormat.MOT15
    assert len(gt) == sum(1 for fields in lines if fields[6].strip() == "1")
    assert len(np.unique(gt.person_id)) == 10
    assert gt.frame.min() == 1
    assert gt.frame.max() == 179
    info = read_seqinfo(gt_path)
    assert info is not None
    assert (info.frame_rate, info.length, info.width, info.height) == (25.0, 179, 640, 480)
    # Some boxes run past the picture's edge; clipped, they stay inside it.
    assert (gt.xywh[:, 0] < 0).any()
    assert (gt.xywh[:, 0] + gt.xywh[:, 2] > 640).any()
    boxes = pixel_boxes(gt.xywh, 640, 480)
    assert boxes[:, [0, 2]].min() >= 0
    assert boxes[:, [0, 2]].max() <= 640
    # Exact masks recall everyone: the definitions agree with the data.
    masks: dict[int, NDArray[np.bool_]] = {}
    for number in range(1, 180):
        mask = np.zeros((480, 640), dtype=np.bool_)
        for x0, y0, x1, y1 in pixel_boxes(gt.xywh[gt.rows(number)], 640, 480).tolist():
            mask[y0:y1, x0:x1] = True
        masks[number - 1] = mask
    report = compute_metrics(masks, gt)
    assert (report.boxes, report.recall, report.head_recall) == (1156, 1.0, 1.0)
    assert report.over_masking == 0.0


def test_a_frame_cannot_be_added_twice() -> None:
    acc = MetricsAccumulator(_gt(_mot15(1, 1, 0, 0, 10, 10)))
    acc.add(0, _empty())
    with pytest.raises(UsageError, match="added twice"):
        acc.add(0, _empty())
    with pytest.raises(UsageError, match=">= 0"):
        acc.add(-1, _empty())
    assert acc.frames == 1
