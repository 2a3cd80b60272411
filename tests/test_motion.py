"""Tests of the motion detector on synthetic, deterministic video."""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from veil.config.schema import DynamicConfig
from veil.core.detections import Detections, DetectionSource
from veil.core.errors import ConfigError, DetectorError, ShapeError
from veil.core.frame import Frame
from veil.detect.base import Detector
from veil.detect.motion import MotionDetector, MotionSettings, var_threshold

Image = NDArray[np.uint8]
W, H = 320, 240
FPS = 10.0
LEARN = 1.0  # seconds: 10 frames at FPS
LEARN_FRAMES = 10


def texture(seed: int = 1, width: int = W, height: int = H) -> Image:
    """A textured scene: coarse shapes plus fine grain, mid grey on average."""
    rng = np.random.default_rng(seed)
    coarse = np.asarray(
        cv2.resize(
            rng.integers(40, 216, (height // 16, width // 16, 3), dtype=np.uint8),
            (width, height),
            interpolation=cv2.INTER_LINEAR,
        ),
        np.uint8,
    )
    grain = rng.integers(-20, 21, (height, width, 3))
    out: Image = np.clip(coarse.astype(np.int16) + grain, 0, 255).astype(np.uint8)
    return out


class Camera:
    """Makes frames of a scene with fresh sensor noise each time."""

    def __init__(self, noise: float = 3.0, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.noise = noise
        self.index = 0

    def shoot(self, scene: Image) -> Frame:
        noisy = scene.astype(np.float32) + self.rng.normal(0, self.noise, scene.shape)
        image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        frame = Frame(image, self.index, Fraction(1, int(FPS)), self.index)
        self.index += 1
        return frame


def with_square(scene: Image, x: int, y: int, size: int, color: tuple[int, int, int]) -> Image:
    out = scene.copy()
    out[y : y + size, x : x + size] = color
    return out


def settings(**changes: float) -> MotionSettings:
    values: dict[str, float] = {
        "fps": FPS,
        "learning_time": LEARN,
        "processing_width": 160,  # 2x downscale: the path used for real video
    }
    values.update(changes)
    return MotionSettings(**values)  # type: ignore[arg-type]


def learn(detector: MotionDetector, camera: Camera, scene: Image) -> None:
    for _ in range(LEARN_FRAMES):
        found = detector.detect(camera.shoot(scene))
        assert detector.learning
        assert_whole_frame(found)


def assert_whole_frame(found: Detections, width: int = W, height: int = H) -> None:
    assert len(found) == 1
    assert found.xyxy[0].tolist() == [0.0, 0.0, float(width), float(height)]


def box_contains(box: NDArray[np.float32], x0: int, y0: int, x1: int, y1: int) -> bool:
    return bool(box[0] <= x0 and box[1] <= y0 and box[2] >= x1 and box[3] >= y1)


def moving_square(start: int, frames: int, step: int = 6) -> Iterator[tuple[int, int]]:
    for k in range(frames):
        yield 20 + ((start + k) * step) % (W - 80), 60 + ((start + k) * 2) % 100


@pytest.mark.parametrize("processing_width", [160, 640])
def test_a_moving_square_is_found_in_every_frame_after_learning(processing_width: int) -> None:
    detector = MotionDetector(settings(processing_width=processing_width))
    camera = Camera()
    scene = texture()
    learn(detector, camera, scene)
    for x, y in moving_square(0, 30):
        found = detector.detect(camera.shoot(with_square(scene, x, y, 32, (20, 200, 240))))
        assert not detector.learning
        assert len(found) == 1, f"square at {x},{y}: {found.xyxy.tolist()}"
        assert box_contains(found.xyxy[0], x, y, x + 32, y + 32), found.xyxy[0].tolist()
        assert found.source.tolist() == [DetectionSource.MOTION]
        assert found.confidence.tolist() == [1.0]
        # Tight enough to be useful: the box is not the whole frame.
        x0, y0, x1, y1 = found.xyxy[0]
        assert (x1 - x0) * (y1 - y0) < 4 * 32 * 32
        fg = detector.last_foreground
        assert fg is not None
        assert fg.shape == (H, W)
        assert fg[y : y + 32, x : x + 32].mean() > 0.97
        assert fg.mean() < 0.1


def test_shapes_are_per_detection_masks_at_frame_resolution() -> None:
    detector = MotionDetector(settings())
    camera = Camera()
    scene = texture()
    learn(detector, camera, scene)
    picture = with_square(with_square(scene, 20, 40, 30, (250, 250, 250)), 230, 150, 40, (0, 0, 0))
    found = detector.detect(camera.shoot(picture))
    masks = detector.shapes()
    assert masks.shape == (len(found), H, W) == (2, H, W)
    with_masks = Detections.from_boxes(found.xyxy, DetectionSource.MOTION, mask=masks)
    fg = detector.last_foreground
    assert fg is not None
    assert np.array_equal(masks.any(axis=0), fg)
    for mask, box in zip(masks, with_masks.xyxy, strict=True):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        assert box.tolist() == [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


def test_a_still_noisy_scene_gives_no_detections_at_default_sensitivity() -> None:
    detector = MotionDetector(settings(processing_width=640))  # no downscale: all the noise
    camera = Camera(noise=4.0)
    scene = texture()
    learn(detector, camera, scene)
    for _ in range(40):
        found = detector.detect(camera.shoot(scene))
        assert not detector.learning
        assert len(found) == 0, found.xyxy.tolist()
        fg = detector.last_foreground
        assert fg is not None
        assert not fg.any()


def test_learning_at_start_after_reset_and_after_lights_go_on() -> None:
    detector = MotionDetector(settings())
    assert detector.learning  # before any frame: nothing is known
    assert detector.last_foreground is None
    camera = Camera()
    scene = texture()

    def phase() -> list[bool]:
        states = []
        for _ in range(LEARN_FRAMES + 5):
            found = detector.detect(camera.shoot(scene))
            states.append(detector.learning)
            if detector.learning:
                assert_whole_frame(found)
                fg = detector.last_foreground
                assert fg is not None
                assert fg.all()
            else:
                assert len(found) == 0
        return states

    expected = [True] * LEARN_FRAMES + [False] * 5
    assert phase() == expected
    detector.reset()
    assert detector.learning
    assert phase() == expected
    scene = np.clip(scene.astype(np.int16) + 60, 0, 255).astype(np.uint8)  # lights on
    assert phase() == expected
    scene = np.clip(scene.astype(np.int16) - 60, 0, 255).astype(np.uint8)  # and off again
    assert phase() == expected


def test_a_light_change_while_learning_starts_learning_again() -> None:
    detector = MotionDetector(settings())
    camera = Camera()
    scene = texture()
    for _ in range(LEARN_FRAMES - 2):
        detector.detect(camera.shoot(scene))
    bright = np.clip(scene.astype(np.int16) + 60, 0, 255).astype(np.uint8)
    states = []
    for _ in range(LEARN_FRAMES + 2):
        detector.detect(camera.shoot(bright))
        states.append(detector.learning)
    assert states == [True] * LEARN_FRAMES + [False] * 2


def test_a_changed_scene_with_the_same_brightness_is_relearned() -> None:
    detector = MotionDetector(settings())
    camera = Camera()
    scene = texture(seed=1)
    learn(detector, camera, scene)
    other = texture(seed=2)  # e.g. the camera was turned: same mean, different picture
    found = detector.detect(camera.shoot(other))
    assert detector.learning
    assert_whole_frame(found)
    for _ in range(LEARN_FRAMES - 1):
        detector.detect(camera.shoot(other))
        assert detector.learning
    assert len(detector.detect(camera.shoot(other))) == 0
    assert not detector.learning


def stop_and_watch(merge_time: float, watch: int) -> list[int]:
    """A square walks in, stops; the number of detections in each frame after it stops."""
    detector = MotionDetector(settings(background_merge_time=merge_time))
    camera = Camera()
    scene = texture()
    learn(detector, camera, scene)
    for x in range(20, 140, 8):
        assert len(detector.detect(camera.shoot(with_square(scene, x, 80, 40, (30, 30, 200)))))
    still = with_square(scene, 140, 80, 40, (30, 30, 200))
    return [len(detector.detect(camera.shoot(still))) for _ in range(watch)]


def test_a_still_object_merges_into_the_background_after_the_merge_time() -> None:
    counts = stop_and_watch(merge_time=2.0, watch=40)  # 2 s at 10 fps: 20 frames
    assert all(counts[:17]), counts  # still masked for most of the merge time
    assert not any(counts[24:]), counts  # and background soon after it


def test_a_still_object_stays_detected_with_a_long_merge_time() -> None:
    counts = stop_and_watch(merge_time=3600.0, watch=120)
    assert all(counts), counts


@pytest.mark.parametrize(("sensitivity", "found"), [(0, False), (50, False), (100, True)])
def test_sensitivity_decides_whether_a_faint_change_counts(sensitivity: int, found: bool) -> None:
    detector = MotionDetector(settings(sensitivity=sensitivity, processing_width=640))
    camera = Camera(noise=1.0)
    scene = np.full((H, W, 3), 100, np.uint8)
    learn(detector, camera, scene)
    faint = with_square(scene, 100, 80, 60, (104, 104, 104))  # 4 grey levels brighter
    results = [len(detector.detect(camera.shoot(faint))) > 0 for _ in range(5)]
    assert results == [found] * 5


def test_a_clear_change_counts_even_at_low_sensitivity() -> None:
    detector = MotionDetector(settings(sensitivity=0))
    camera = Camera()
    scene = texture()
    learn(detector, camera, scene)
    assert len(detector.detect(camera.shoot(with_square(scene, 100, 80, 40, (0, 0, 0))))) == 1


@pytest.mark.parametrize(("min_size", "expected"), [(0.0005, 1), (0.005, 0)])
def test_min_object_size_drops_small_blobs(min_size: float, expected: int) -> None:
    detector = MotionDetector(settings(min_object_size=min_size))
    camera = Camera()
    scene = texture()
    learn(detector, camera, scene)
    # 12 x 12 = 144 pixels = 0.0019 of the frame.
    small = with_square(scene, 150, 100, 12, (255, 0, 255))
    assert len(detector.detect(camera.shoot(small))) == expected


@pytest.mark.parametrize(("gap", "expected"), [(2, 1), (60, 2)])
def test_nearby_pieces_become_one_blob(gap: int, expected: int) -> None:
    detector = MotionDetector(settings())
    camera = Camera()
    scene = texture()
    learn(detector, camera, scene)
    picture = scene.copy()
    picture[60:180, 100:120] = (0, 0, 0)  # a body
    picture[60:140, 120 + gap : 130 + gap] = (0, 0, 0)  # an arm, gap pixels away
    found = detector.detect(camera.shoot(picture))
    assert len(found) == expected


def test_detect_leaves_the_input_untouched() -> None:
    detector = MotionDetector(settings())
    camera = Camera()
    scene = texture()
    learn(detector, camera, scene)
    image = camera.shoot(with_square(scene, 50, 50, 30, (0, 255, 0))).image.copy()
    original = image.copy()
    frame = Frame(image, 99, Fraction(1, 10), 99)
    detector.detect(frame)
    assert np.array_equal(image, original)
    assert np.array_equal(frame.image, original)


def test_a_size_change_mid_stream_starts_learning_at_the_new_size() -> None:
    detector = MotionDetector(settings())
    camera = Camera()
    scene = texture()
    learn(detector, camera, scene)
    assert len(detector.detect(camera.shoot(scene))) == 0
    big = texture(width=480, height=270)
    found = detector.detect(camera.shoot(big))
    assert detector.learning
    assert_whole_frame(found, 480, 270)
    for _ in range(LEARN_FRAMES - 1):
        detector.detect(camera.shoot(big))
    found = detector.detect(camera.shoot(with_square(big, 300, 100, 40, (0, 0, 0))))
    assert not detector.learning
    assert len(found) == 1
    assert box_contains(found.xyxy[0], 300, 100, 340, 140)
    fg = detector.last_foreground
    assert fg is not None
    assert fg.shape == (270, 480)


def test_wrong_input_raises_shape_error() -> None:
    detector = MotionDetector(settings())
    with pytest.raises(ShapeError, match="expects a Frame"):
        detector.detect(np.zeros((H, W, 3), np.uint8))  # type: ignore[arg-type]
    with pytest.raises(ShapeError):
        Frame(np.zeros((H, W), np.uint8), 0, Fraction(1, 10), 0)


class _Broken:
    def apply(self, image: Image, learningRate: float) -> Image:  # noqa: N803 (OpenCV's name)
        raise cv2.error("simulated failure")


def test_an_opencv_failure_raises_detector_error_and_fails_closed() -> None:
    detector = MotionDetector(settings())
    camera = Camera()
    scene = texture()
    learn(detector, camera, scene)
    detector._subtractor = _Broken()  # type: ignore[assignment]
    with pytest.raises(DetectorError, match="frame"):
        detector.detect(camera.shoot(scene))
    assert detector.learning
    found = detector.detect(camera.shoot(scene))  # a fresh model learns again
    assert detector.learning
    assert_whole_frame(found)


def test_a_corrupt_frame_is_whole_and_teaches_nothing() -> None:
    detector = MotionDetector(settings())
    camera = Camera()
    scene = texture()
    learn(detector, camera, scene)
    grey = np.full((H, W, 3), 128, np.uint8)
    found = detector.detect(Frame(grey, 0, Fraction(1, 10), 0, corrupt=True))
    assert_whole_frame(found)
    found = detector.detect(camera.shoot(scene))
    assert not detector.learning
    assert len(found) == 0


def test_settings_follow_the_configuration() -> None:
    dynamic = DynamicConfig(
        sensitivity=70, background_merge_time=60, learning_time=3, min_object_size=0.01
    )
    s = MotionSettings.from_config(dynamic, fps=25.0)
    assert (s.fps, s.sensitivity, s.background_merge_time) == (25.0, 70.0, 60.0)
    assert (s.learning_time, s.min_object_size) == (3.0, 0.01)
    assert s.learning_frames == 75
    assert s.learning_rate == pytest.approx(-math.log(0.7) / (60 * 25))
    defaults = MotionSettings.from_config(DynamicConfig(), fps=30.0)
    assert defaults.learning_frames == 60
    assert MotionSettings(fps=30.0, learning_time=0).learning_frames == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fps", 0.0),
        ("fps", math.inf),
        ("sensitivity", 101.0),
        ("background_merge_time", 0.0),
        ("learning_time", -1.0),
        ("min_object_size", 0.6),
        ("processing_width", 8),
        ("relearn_share", 0.0),
    ],
)
def test_invalid_settings_are_refused(field: str, value: float) -> None:
    values: dict[str, float] = {"fps": 25.0, field: value}
    with pytest.raises(ConfigError, match=field):
        MotionSettings(**values)  # type: ignore[arg-type]


def test_higher_sensitivity_means_a_lower_threshold() -> None:
    thresholds = [var_threshold(s) for s in range(0, 101, 10)]
    assert thresholds == sorted(thresholds, reverse=True)
    assert var_threshold(0) == pytest.approx(144.0)
    assert var_threshold(50) == pytest.approx(16.0)
    assert var_threshold(100) == pytest.approx(4.0)


def test_something_passing_by_while_learning_is_not_learned_as_background() -> None:
    detector = MotionDetector(settings())
    camera = Camera()
    scene = texture()
    # Each pixel of the path sees the square in 2 of the 10 learning frames.
    for k in range(LEARN_FRAMES):
        detector.detect(camera.shoot(with_square(scene, 20 + 16 * k, 100, 32, (30, 30, 200))))
        assert detector.learning
    for x in (84, 116, 52):  # back on its path
        found = detector.detect(camera.shoot(with_square(scene, x, 100, 32, (30, 30, 200))))
        assert len(found) == 1
        assert box_contains(found.xyxy[0], x, 100, x + 32, 132)
        fg = detector.last_foreground
        assert fg is not None
        assert fg[100:132, x : x + 32].mean() > 0.97


def test_the_documented_example_runs() -> None:
    import doctest

    import veil.detect.motion

    result = doctest.testmod(veil.detect.motion)
    assert result.attempted >= 4
    assert result.failed == 0


def test_it_is_a_detector() -> None:
    detector: Detector = MotionDetector(settings())  # checked by mypy
    detector.reset()
    assert isinstance(detector, MotionDetector)


def test_default_settings_at_1080p_give_boxes_in_frame_pixels() -> None:
    detector = MotionDetector(MotionSettings(fps=10.0, learning_time=0.5))
    assert detector.settings.processing_width == 480  # 4x downscale
    camera = Camera(noise=4.0)
    scene = texture(width=1920, height=1080)
    for _ in range(5):
        assert_whole_frame(detector.detect(camera.shoot(scene)), 1920, 1080)
    assert len(detector.detect(camera.shoot(scene))) == 0
    for x in (300, 340, 380):  # a person-sized box walking right
        found = detector.detect(camera.shoot(with_square(scene, x, 400, 150, (20, 20, 20))))
        assert len(found) == 1
        assert box_contains(found.xyxy[0], x, 400, x + 150, 550)
        x0, y0, x1, y1 = found.xyxy[0]
        assert (x1 - x0) * (y1 - y0) < 2 * 150 * 150
        fg = detector.last_foreground
        assert fg is not None
        assert fg.shape == (1080, 1920)
        assert fg[400:550, x : x + 150].all()
