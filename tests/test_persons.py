"""The YOLOX-nano person detector on real frames with ground truth (TUD-Stadtmitte)."""

from __future__ import annotations

import itertools
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from numpy.typing import NDArray

from conftest import SHARED, TUD, need_shared
from veil.config.schema import DynamicConfig, PersonDetectorConfig
from veil.core.detections import DetectionSource
from veil.core.errors import ConfigError, DetectorError, ModelError, ShapeError
from veil.core.frame import Frame, Image, check_image
from veil.detect.persons import (
    PersonDetector,
    PersonSettings,
    _tile_spans,
    auto_input_size,
    make_yolox_dims_dynamic,
    nms,
    sensitivity_to_threshold,
)
from veil.models import MODEL_DIR_ENV, YOLOX_NANO
from veil.track import iou_matrix

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path() -> Path:
    return need_shared(SHARED / "models" / YOLOX_NANO.filename)


@pytest.fixture(scope="module")
def detector(model_path: Path) -> PersonDetector:
    return PersonDetector(model_path, PersonSettings())


def tud_frame(index: int) -> Image:
    image = cv2.imread(str(need_shared(TUD / "img1" / f"{index:06d}.jpg")))
    assert image is not None
    return check_image(np.asarray(image))


def tud_gt(index: int) -> NDArray[np.float64]:
    """Flag-1 ground-truth boxes of one frame as x0, y0, x1, y1."""
    gt = np.loadtxt(need_shared(TUD / "gt" / "gt.txt"), delimiter=",")
    rows = gt[(gt[:, 0] == index) & (gt[:, 6] == 1)][:, 2:6].copy()
    rows[:, 2:] += rows[:, :2]
    return np.asarray(rows, np.float64)


def as_frame(image: Image) -> Frame:
    return Frame(image=image, pts=0, time_base=Fraction(1, 25), index=0)


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("sensitivity", "threshold"),
    [(0, 0.7), (50, 0.35), (70, 0.21), (95, 0.05), (100, 0.05)],
)
def test_sensitivity_maps_to_threshold(sensitivity: int, threshold: float) -> None:
    assert sensitivity_to_threshold(sensitivity) == pytest.approx(threshold)


def test_settings_from_config() -> None:
    dynamic = DynamicConfig(sensitivity=70, person=PersonDetectorConfig(input_size=960, tiles=2))
    settings = PersonSettings.from_config(dynamic)
    assert (settings.input_size, settings.tiles) == (960, 2)
    assert settings.score_threshold == pytest.approx(0.21)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_size": 500},
        {"input_size": 128},
        {"tiles": 0},
        {"tiles": 5},
        {"score_threshold": 0.0},
        {"score_threshold": 1.0},
        {"nms_iou": 0.0},
        {"threads": 0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        PersonSettings(**kwargs)


@pytest.mark.parametrize(("length", "tiles"), [(1280, 2), (720, 2), (1280, 3), (480, 4)])
def test_tiles_cover_and_overlap(length: int, tiles: int) -> None:
    spans = _tile_spans(length, tiles)
    assert len(spans) == tiles
    assert spans[0][0] == 0
    assert spans[-1][1] == length
    for (a0, a1), (b0, b1) in itertools.pairwise(spans):
        assert a1 - a0 == b1 - b0
        assert b0 < a1, "neighbouring tiles must overlap"
        assert a1 - b0 >= 0.2 * (a1 - a0)


def test_nms_keeps_best_and_separate_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.6, 0.9, 0.5], dtype=np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [1, 2]


def test_nms_rank_never_lets_a_cut_box_replace_a_whole_one() -> None:
    whole = [0, 0, 10, 20]
    cut = [0, 0, 10, 14]  # IoU 0.7 with the whole box, higher score
    boxes = np.array([whole, cut], dtype=np.float32)
    scores = np.array([0.6, 0.9], dtype=np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [1]
    assert nms(boxes, scores, 0.45, rank=np.array([False, True])).tolist() == [0]


# --------------------------------------------------------------------------- model


def test_graph_rewrite_makes_size_dynamic(model_path: Path) -> None:
    session = ort.InferenceSession(
        make_yolox_dims_dynamic(model_path.read_bytes()), providers=["CPUExecutionProvider"]
    )
    assert session.get_inputs()[0].shape == [1, 3, "height", "width"]
    out = session.run(None, {"images": np.full((1, 3, 384, 640), 114, np.float32)})[0]
    anchors = sum((384 // s) * (640 // s) for s in (8, 16, 32))
    assert out.shape == (1, anchors, 85)


def test_persons_on_tud_frame_1_match_ground_truth(detector: PersonDetector) -> None:
    image = tud_frame(1)
    found = detector.detect(as_frame(image))
    gt = tud_gt(1)
    tall = gt[(gt[:, 3] - gt[:, 1]) > 100]
    assert len(tall) >= 5
    assert len(found) >= len(tall) - 1
    best = iou_matrix(tall, found.xyxy).max(axis=1)
    assert (best > 0.5).mean() >= 0.8, best
    assert np.all(found.source == DetectionSource.PERSON)
    assert np.all(found.class_id == 0)
    assert np.all(found.confidence >= detector.settings.score_threshold)
    assert np.all(found.confidence <= 1.0)
    assert np.all(found.xyxy[:, :2] >= 0)
    assert np.all(found.xyxy[:, 2] <= image.shape[1])
    assert np.all(found.xyxy[:, 3] <= image.shape[0])


def test_boxes_follow_the_picture_scale(model_path: Path) -> None:
    """Letterbox and decoding map back to frame pixels at any frame size (at one fixed
    input size, so the detector sees the same picture both times)."""
    detector = PersonDetector(model_path, PersonSettings(input_size=800))
    image = tud_frame(1)
    small = detector.detect_image(image)
    big = detector.detect_image(check_image(np.asarray(cv2.resize(image, None, fx=2, fy=2))))
    assert len(big) == len(small)
    match = iou_matrix(small.xyxy, big.xyxy / 2).max(axis=1)
    assert np.all(match > 0.9), match


@pytest.mark.parametrize(
    ("size", "expected"), [((640, 480), 800), ((1280, 720), 1088), ((1920, 1080), 1280)]
)
def test_auto_input_follows_the_picture(size: tuple[int, int], expected: int) -> None:
    assert auto_input_size(*size) == expected
    assert PersonSettings.from_config(DynamicConfig()).input_size is None


def test_blank_picture_finds_nobody(detector: PersonDetector) -> None:
    found = detector.detect(as_frame(np.zeros((720, 1280, 3), np.uint8)))
    assert len(found) == 0
    assert found.xyxy.shape == (0, 4)


def test_tiles_find_more_people_without_duplicates(model_path: Path) -> None:
    image = tud_frame(1)
    plain = PersonDetector(model_path, PersonSettings(input_size=416)).detect_image(image)
    tiled = PersonDetector(model_path, PersonSettings(input_size=416, tiles=2))
    found = tiled.detect_image(image)
    assert len(found) >= len(plain)
    overlap = iou_matrix(found.xyxy, found.xyxy)
    np.fill_diagonal(overlap, 0)
    assert overlap.max() <= tiled.settings.nms_iou + 1e-6
    gt = tud_gt(1)
    tall = gt[(gt[:, 3] - gt[:, 1]) > 100]
    assert (iou_matrix(tall, found.xyxy).max(axis=1) > 0.5).mean() >= 0.8


def test_sensitivity_changes_what_is_found(model_path: Path) -> None:
    image = tud_frame(1)
    low = PersonDetector(model_path, PersonSettings(score_threshold=0.9)).detect_image(image)
    high = PersonDetector(model_path, PersonSettings(score_threshold=0.1)).detect_image(image)
    assert len(high) > len(low)


def test_wrong_shape_is_refused(detector: PersonDetector) -> None:
    with pytest.raises(ShapeError, match="must be a"):
        detector.detect_image(np.zeros((480, 640), np.uint8))
    with pytest.raises(ShapeError):
        detector.detect_image(np.zeros((480, 640, 3), np.float32))


class _Failing:
    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]:
        raise RuntimeError("onnxruntime exploded")


class _WrongShape:
    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]:
        return [np.zeros((1, 7, 85), np.float32)]


@pytest.mark.parametrize(
    ("session", "message"), [(_Failing(), "exploded"), (_WrongShape(), "shape")]
)
def test_session_failure_is_a_detector_error(
    monkeypatch: pytest.MonkeyPatch, detector: PersonDetector, session: object, message: str
) -> None:
    monkeypatch.setattr(detector, "_session", session)
    with pytest.raises(DetectorError, match=message):
        detector.detect(as_frame(tud_frame(1)))


@pytest.mark.parametrize("cut", [10, 100_000])
def test_corrupt_model_fails_at_load(model_path: Path, tmp_path: Path, cut: int) -> None:
    bad = tmp_path / "yolox_nano.onnx"
    bad.write_bytes(model_path.read_bytes()[:cut])
    with pytest.raises(ModelError, match="cannot load person model"):
        PersonDetector(bad)


def test_load_from_registry(
    monkeypatch: pytest.MonkeyPatch, model_path: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    with pytest.raises(ModelError, match="veil models fetch yolox_nano"):
        PersonDetector.load(model_dir=tmp_path / "empty")
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(model_path, folder / model_path.name)
    dynamic = DynamicConfig(model_dir=str(folder), sensitivity=60)
    detector = PersonDetector.from_config(dynamic)
    assert detector.settings.score_threshold == pytest.approx(0.28)
    detector.reset()
    assert len(detector.detect(as_frame(tud_frame(1)))) >= 5
