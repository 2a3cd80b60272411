"""The YuNet face detector (OpenCV FaceDetectorYN) on real frames, and head regions."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from conftest import SHARED, TUD, need_shared
from veil.config.schema import DynamicConfig
from veil.core.detections import Detections, DetectionSource
from veil.core.errors import ConfigError, DetectorError, ModelError, ShapeError
from veil.core.frame import Frame, Image, check_image
from veil.detect.faces import FaceDetector, FaceSettings, head_regions
from veil.models import MODEL_DIR_ENV, YUNET

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path() -> Path:
    return need_shared(SHARED / "models" / YUNET.filename)


@pytest.fixture(scope="module")
def full_res(model_path: Path) -> FaceDetector:
    """Full resolution: TUD's faces are 12 to 25 px tall."""
    return FaceDetector(model_path, FaceSettings(input_size=None))


def tud_frame(index: int) -> Image:
    image = cv2.imread(str(need_shared(TUD / "img1" / f"{index:06d}.jpg")))
    assert image is not None
    return check_image(np.asarray(image))


def tud_gt(index: int) -> NDArray[np.float64]:
    """All ground-truth boxes (counted or not) of one frame as x, y, w, h."""
    gt = np.loadtxt(need_shared(TUD / "gt" / "gt.txt"), delimiter=",")
    return np.asarray(gt[gt[:, 0] == index][:, 2:6], np.float64)


def as_frame(image: Image) -> Frame:
    return Frame(image=image, pts=0, time_base=Fraction(1, 25), index=0)


def test_blank_picture_gives_empty_detections(full_res: FaceDetector) -> None:
    found = full_res.detect(as_frame(np.zeros((480, 640, 3), np.uint8)))
    assert len(found) == 0
    assert found.xyxy.shape == (0, 4)
    assert found.confidence.shape == (0,)


def test_faces_found_in_head_regions_of_tud(full_res: FaceDetector) -> None:
    """Faces lie in the top quarter of ground-truth pedestrians (TUD has no face boxes)."""
    total = inside = 0
    for index in range(1, 180, 10):
        found = full_res.detect(as_frame(tud_frame(index)))
        assert np.all(found.source == DetectionSource.FACE)
        assert np.all(found.confidence >= full_res.settings.score_threshold)
        gt = tud_gt(index)
        for x0, y0, x1, y1 in found.xyxy:
            assert 5 < x1 - x0 < 60, "TUD faces are small"
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            total += 1
            inside += any(x <= cx <= x + w and y <= cy <= y + h / 4 for x, y, w, h in gt)
    assert total >= 20
    assert inside / total >= 0.7, (inside, total)


def test_frame_1_faces(full_res: FaceDetector) -> None:
    found = full_res.detect_image(tud_frame(1))
    assert len(found) >= 3
    centres = (found.xyxy[:, :2] + found.xyxy[:, 2:]) / 2
    # The person at x 88..149 (gt id 1) shows a face near the top of the box.
    assert np.any(
        (centres[:, 0] > 95) & (centres[:, 0] < 140) & (centres[:, 1] > 99) & (centres[:, 1] < 140)
    )


def test_large_face_survives_downscaling(model_path: Path) -> None:
    """A face enlarged 4x from TUD is found when the detector scales the picture down."""
    crop = cv2.resize(tud_frame(1)[60:180, 55:175], None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    image = check_image(np.ascontiguousarray(crop))
    for size in (None, 320, 160):
        found = FaceDetector(model_path, FaceSettings(input_size=size)).detect_image(image)
        assert len(found) == 1, size
        x0, y0, x1, y1 = found.xyxy[0]
        # The face of gt id 1 was at about (106, 106)-(125, 129) in the frame.
        assert abs(x0 - (106 - 55) * 4) < 20
        assert abs(y0 - (106 - 60) * 4) < 20
        assert 60 < x1 - x0 < 100
        assert 70 < y1 - y0 < 120


def test_boxes_follow_the_picture_scale(model_path: Path, full_res: FaceDetector) -> None:
    image = tud_frame(1)
    native = full_res.detect_image(image)
    big = check_image(np.asarray(cv2.resize(image, None, fx=2, fy=2)))
    scaled = FaceDetector(model_path, FaceSettings(input_size=640)).detect_image(big)
    assert len(scaled) == len(native)
    for box in native.xyxy:
        assert np.abs(scaled.xyxy / 2 - box).max(axis=1).min() < 4


def test_settings_from_config_and_validation() -> None:
    assert FaceSettings.from_config(DynamicConfig(sensitivity=40)).score_threshold == (
        pytest.approx(0.42)
    )
    for kwargs in ({"score_threshold": 0.0}, {"input_size": 10}, {"nms_iou": 2.0}, {"top_k": 0}):
        with pytest.raises(ConfigError):
            FaceSettings(**kwargs)


def test_wrong_shape_is_refused(full_res: FaceDetector) -> None:
    with pytest.raises(ShapeError, match="must be a"):
        full_res.detect_image(np.zeros((10, 10, 4), np.uint8))


class _Failing:
    def setInputSize(self, size: tuple[int, int]) -> None:  # noqa: N802 (OpenCV's name)
        pass

    def detect(self, image: Any) -> tuple[int, Any]:
        raise cv2.error("YuNet exploded")


class _WrongShape(_Failing):
    def detect(self, image: Any) -> tuple[int, Any]:
        return 1, np.zeros((2, 4), np.float32)


@pytest.mark.parametrize(("yunet", "message"), [(_Failing(), "exploded"), (_WrongShape(), "shape")])
def test_opencv_failure_is_a_detector_error(
    monkeypatch: pytest.MonkeyPatch, full_res: FaceDetector, yunet: object, message: str
) -> None:
    monkeypatch.setattr(full_res, "_yunet", yunet)
    with pytest.raises(DetectorError, match=message):
        full_res.detect(as_frame(tud_frame(1)))


@pytest.mark.parametrize("content", [b"garbage", b""])
def test_corrupt_model_fails_at_load(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / YUNET.filename
    bad.write_bytes(content)
    with pytest.raises(ModelError, match="cannot load face model"):
        FaceDetector(bad)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="veil models fetch yunet"):
        FaceDetector(tmp_path / "absent.onnx")


def test_load_from_registry(
    monkeypatch: pytest.MonkeyPatch, model_path: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    with pytest.raises(ModelError, match="not found"):
        FaceDetector.load(model_dir=tmp_path / "empty")
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(model_path, folder / model_path.name)
    monkeypatch.setenv(MODEL_DIR_ENV, str(folder))
    detector = FaceDetector.from_config(DynamicConfig())
    detector.reset()
    assert detector.settings == FaceSettings(score_threshold=0.35)


@pytest.mark.parametrize(
    ("height_share", "width_share", "expected"),
    [
        (0.25, 1.0, [10, 20, 50, 40]),
        (1 / 6, 0.5, [20, 20, 40, 20 + 80 / 6]),
        (1.0, 1.0, [10, 20, 50, 100]),
    ],
)
def test_head_regions(height_share: float, width_share: float, expected: list[float]) -> None:
    persons = Detections.from_boxes([[10, 20, 50, 100]], DetectionSource.PERSON, [0.8])
    heads = head_regions(persons, height_share, width_share)
    assert heads.xyxy[0].tolist() == pytest.approx(expected)
    assert heads.source.tolist() == [DetectionSource.FACE]
    assert heads.confidence.tolist() == pytest.approx([0.8])


def test_head_regions_empty_and_invalid() -> None:
    assert len(head_regions(Detections.empty())) == 0
    with pytest.raises(ConfigError):
        head_regions(Detections.empty(), height_share=0.0)
