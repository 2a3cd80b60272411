"""Quality gates of the humans method on harder variants of TUD-Stadtmitte, and the exactness
of those variants' ground truth (:mod:`veil.eval.stress`).

The gates run the real detector at the defaults on part of each variant (the first
``GATE_FRAMES`` frames) and fail (not skip) in CI when the shared data or weights are
missing. Their bars come from ``bench/bench_quality.py --frames 100``: see ``BARS`` for
each bar, its measurement and why.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import MODELS, SHARED, TUD
from veil.config.schema import DynamicConfig, Method, PersonDetectorConfig, VeilConfig
from veil.eval.metrics import EvalReport, Thresholds, pixel_boxes
from veil.eval.runner import evaluate_frames
from veil.eval.stress import (
    MIN_VISIBLE,
    SourceSequence,
    StressSequence,
    distant_crowd,
    downscaled,
    edge_cut,
    heads_only,
    identity,
    load_sequence,
    moving_camera,
    standard_variants,
)
from veil.policy.build import build_planners

# --------------------------------------------------------------------------- exactness


def _synthetic(folder: Path, count: int = 6) -> SourceSequence:
    """A MOT folder whose pictures are black with each ground-truth box painted white."""
    (folder / "img1").mkdir(parents=True)
    (folder / "gt").mkdir()
    width, height = 160, 120
    rows = []
    for n in range(1, count + 1):
        image = np.zeros((height, width, 3), np.uint8)
        boxes = [
            (1, 20.0 + 4 * n, 30.0, 16.0, 48.0),  # walks right
            (2, 110.0 - 3 * n, 10.0, 20.0, 60.0),  # walks left
            (3, -12.0, 50.0, 16.0, 40.0),  # mostly outside the picture: 25 % visible
        ]
        for pid, x, y, w, h in boxes:
            rows.append(f"{n},{pid},{x},{y},{w},{h},1,-1,-1,-1")
            x0, y0 = max(0, round(x)), max(0, round(y))
            image[y0 : round(y + h), x0 : round(x + w)] = 255
        cv2.imwrite(str(folder / "img1" / f"{n:06d}.png"), image)
    (folder / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    return load_sequence(folder)


def _check_exact(seq: StressSequence) -> None:
    """Every counted box's pixels are white in the derived picture, and (away from box
    edges) every white pixel lies in a box: the ground truth moved with the picture."""
    assert seq.count >= 1
    for frame in seq.frames():
        gray = frame.image.mean(axis=2)
        rows = seq.gt.rows(frame.index + 1)
        ignored = seq.gt.ignored_rows(frame.index + 1)
        inside = np.zeros(gray.shape, np.bool_)
        for xywh in (seq.gt.xywh[rows], seq.gt.ignored_xywh[ignored]):
            for x0, y0, x1, y1 in pixel_boxes(xywh, frame.width, frame.height).tolist():
                inside[y0:y1, x0:x1] = True
        for x0, y0, x1, y1 in pixel_boxes(seq.gt.xywh[rows], frame.width, frame.height):
            # Shrink by 2 px: edges are blended by the resampling.
            if x1 - x0 > 4 and y1 - y0 > 4:
                core = gray[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]
                assert core.min() > 200, (seq.name, frame.index)
        grown = cv2.dilate(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert gray[~grown].max(initial=0) < 50, (seq.name, frame.index)


def test_variants_move_the_ground_truth_with_the_picture(tmp_path: Path) -> None:
    source = _synthetic(tmp_path / "seq")
    for seq in (
        identity(source),
        moving_camera(source, pan_period_s=0.2, tilt_period_s=0.3, zoom_period_s=0.25),
        downscaled(source, 0.5),
        distant_crowd(source, scale=0.5, columns=3, rows=2),
        moving_camera(distant_crowd(source, scale=0.5, columns=3, rows=2), zoom_period_s=0.2),
        edge_cut(source, (0.2, 0.25, 0.8, 1.0)),
    ):
        _check_exact(seq)


def test_boxes_mostly_out_of_view_are_ignored_not_counted(tmp_path: Path) -> None:
    source = _synthetic(tmp_path / "seq")
    # Person 3 is exactly 25 % inside the original: counted there...
    assert 3 in identity(source).gt.person_id.tolist()
    # ...and under MIN_VISIBLE once the crop cuts more of it: ignored, not a leak.
    cut = edge_cut(source, (2 / 160, 0.0, 1.0, 1.0))  # 2 of its 16 px left in view
    assert 3 not in cut.gt.person_id.tolist()
    assert cut.gt.ignored_frame.tolist() == list(range(1, len(source) + 1))
    # Wholly out of view: neither.
    gone = edge_cut(source, (5 / 160, 0.0, 1.0, 1.0))
    assert 3 not in gone.gt.person_id.tolist()
    assert len(gone.gt.ignored_frame) == 0
    assert MIN_VISIBLE == 0.25


def test_distant_crowd_copies_have_their_own_ids_and_moments(tmp_path: Path) -> None:
    source = _synthetic(tmp_path / "seq")
    seq = distant_crowd(source, scale=0.5, columns=2, rows=2)
    assert (seq.width, seq.height) == (160, 120)
    ids = seq.gt.person_id[seq.gt.rows(1)].tolist()
    assert len(ids) == len(set(ids))  # no id twice in one frame
    assert len(ids) >= 4 * 2  # persons 1 and 2 in each of the four copies
    # Boxes are scaled by exactly one half.
    heights = set(np.round(seq.gt.xywh[seq.gt.rows(1), 3], 6).tolist())
    assert {24.0, 30.0} <= heights  # persons 1 (48 px) and 2 (60 px)


def test_head_and_part_of_a_sequence(tmp_path: Path) -> None:
    source = _synthetic(tmp_path / "seq")
    seq = moving_camera(source).head(3)
    assert seq.count == 3
    assert len(list(seq.frames())) == 3
    assert max(seq.gt.frame.tolist()) <= 3
    heads = heads_only(source.gt)
    x, y, w, h = source.gt.xywh[0]
    assert np.allclose(heads.xywh[0], [x + w / 4, y, w / 2, h / 6])
    # Person 3's head (x -8..0) is wholly out of the 160 px picture: ignored with the size.
    inside = heads_only(source.gt, (source.width, source.height))
    assert 3 not in inside.person_id.tolist()
    assert 3 in heads.person_id.tolist()
    assert len(inside.ignored_frame) == len(source)


# --------------------------------------------------------------------------- gates


@pytest.fixture(scope="module")
def tud() -> SourceSequence:
    if not (TUD / "gt" / "gt.txt").is_file() or not (MODELS / "yolox_nano.onnx").is_file():
        message = f"TUD-Stadtmitte or the YOLOX weights are missing under {SHARED}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return load_sequence(TUD)


GATE_FRAMES = 100
"""Frames of each variant the gates run (4 s at 25 fps; people cross much of the view in it)."""

# Bars of the humans method at its defaults, from ``bench/bench_quality.py --frames 100``
# (measured on the first 100 frames; the whole 179 in brackets). A leak run of 1 or 2 frames
# is allowed where people enter the view: the detector cannot see a person before enough of
# it is in the picture, and no tracker can mask a person it has never seen. Recall bars sit
# about half a percent under the measurement (detections differ slightly across onnxruntime
# and FFmpeg builds); over-masking bars well above it (it is an upper bound).
BARS: dict[str, Thresholds] = {
    # Pan, tilt and zoom: measured recall 99.59 % (99.57), head 100 % (99.89), no leaked
    # frame (none). A plain detector with no tracker: 79 % recall, 6 leaked frames.
    "moving-camera": Thresholds(
        min_recall=0.99, min_head_recall=0.995, max_leak_run=2, max_over_masking=0.4
    ),
    # People 41-82 px in a 213x160 picture: 99.71 % (99.65), head 99.71 % (99.65), no
    # leaked frame (1, a run of 1). Plain: 90 %, 3 leaked frames, runs of 2.
    "small-33%": Thresholds(
        min_recall=0.99, min_head_recall=0.99, max_leak_run=2, max_over_masking=0.4
    ),
    # Cut at the left, right and top: 100 % (99.14), head 100 % (99.63), no leaked frame
    # (1: a person 28 % in view at the left edge, missed in its first frame). Plain: 84 %.
    "edge-cut": Thresholds(
        min_recall=0.985, min_head_recall=0.99, max_leak_run=2, max_over_masking=0.4
    ),
    # A camera panning, tilting and zooming over the distant crowd (954x477; people 34-103
    # px, seen by the detector at 0.84): 98.86 % (98.93), head 99.52 % (99.54), longest leak
    # run 5 (5). A plain detector leaks a person for 28 frames in a row (39). The tracker's
    # ghosts and growing margins mask much of the moving picture: over-masking 70 % (72).
    # The longest run is noisy across input sizes (5 at 800, 15 at 832 = 'auto' for this
    # 954 px picture, 4 at 1088); the bar is the issue's: under the 20 frames in a row a
    # plain detector leaks for (39 here).
    "moving-distant": Thresholds(
        min_recall=0.985, min_head_recall=0.99, max_leak_run=19, max_over_masking=0.8
    ),
    # People 41-82 px in a 1272x636 picture, which the detector at input 800 sees at 0.63:
    # at the defaults 80.9 % (80.8), longest leak run 74 frames (78); the plain detector
    # leaks some people for all 100 frames. With the person input at 1088 (the detector
    # sees them at 0.86, as the 'auto' input now does): 98.59 % (98.69), head 98.82 %
    # (98.82), longest run 8 (8). The bar is a run well under the 20 frames a plain
    # detector leaks for.
    "distant-crowd": Thresholds(
        min_recall=0.98, min_head_recall=0.98, max_leak_run=10, max_over_masking=0.45
    ),
}


def _humans(seq: StressSequence, person: PersonDetectorConfig | None = None) -> EvalReport:
    dynamic = DynamicConfig(methods=[Method.HUMANS], model_dir=str(MODELS))
    if person is not None:
        dynamic = dynamic.model_copy(update={"person": person})
    config = VeilConfig(dynamic=dynamic)
    return evaluate_frames(seq.frames(), seq.gt, build_planners(config, seq.fps))


def _variant(source: SourceSequence, name: str) -> StressSequence:
    for seq in standard_variants(source):
        if seq.name == name:
            return seq.head(GATE_FRAMES)
    raise AssertionError(f"no variant {name}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "moving-camera",
        "small-33%",
        "edge-cut",
        "moving-distant",
        "distant-crowd",
    ],
)
def test_humans_at_defaults_on_harder_footage(tud: SourceSequence, name: str) -> None:
    report = _humans(_variant(tud, name))
    assert BARS[name].check(report) == (), report.to_json()
