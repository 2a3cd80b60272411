"""The dynamic planner: what it hides, and that it fails closed."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from veil.config.schema import DynamicConfig, Method
from veil.core.detections import Detections, DetectionSource
from veil.core.errors import DetectorError
from veil.core.frame import Frame
from veil.core.plan import MaskReason
from veil.core.region import Region
from veil.core.style import Style, StyleKind
from veil.policy.build import dynamic_settings
from veil.policy.dynamic import DynamicPlanner, DynamicSettings
from veil.policy.margin import Margin
from veil.track.tracker import Tracker, TrackerSettings

W, H, FPS = 200, 120, 10.0


def _frame(index: int) -> Frame:
    return Frame(np.full((H, W, 3), 128, np.uint8), index, Fraction(1, 10), index)


class ScriptedDetector:
    """Returns prepared detections per frame index (a stand-in for a model's output)."""

    def __init__(self, script: dict[int, list[list[float]]], source: DetectionSource) -> None:
        self.script = script
        self.source = source
        self.learning = False
        self.resets = 0

    def detect(self, frame: Frame) -> Detections:
        return Detections.from_boxes(self.script.get(frame.index, []), self.source)

    def reset(self) -> None:
        self.resets += 1

    def shapes(self) -> np.ndarray:
        return np.zeros((0, H, W), bool)


class FailingDetector(ScriptedDetector):
    def __init__(self, fail_on: set[int], script: dict[int, list[list[float]]]) -> None:
        super().__init__(script, DetectionSource.PERSON)
        self.fail_on = fail_on

    def detect(self, frame: Frame) -> Detections:
        if frame.index in self.fail_on:
            raise DetectorError("model crashed")
        return super().detect(frame)


def _planner(settings: DynamicSettings, **detectors: ScriptedDetector) -> DynamicPlanner:
    tracker = Tracker(TrackerSettings(fps=FPS, hold_time=1.0))
    return DynamicPlanner(settings, tracker, **detectors)


PERSON = [50.0, 20.0, 80.0, 100.0]


def _box_hidden(mask: np.ndarray, box: list[float]) -> bool:
    x0, y0, x1, y1 = (int(v) for v in box)
    return bool(mask[y0:y1, x0:x1].all())


def test_a_person_missed_in_the_next_frame_is_still_masked() -> None:
    detector = ScriptedDetector({0: [PERSON]}, DetectionSource.PERSON)
    planner = _planner(DynamicSettings(hide_persons=True), persons=detector)
    first = planner.plan(_frame(0)).union()
    second = planner.plan(_frame(1)).union()
    assert _box_hidden(first, PERSON)
    assert _box_hidden(second, PERSON), "a missed detection must coast, not vanish"


def test_mask_holds_for_the_hold_time_then_goes() -> None:
    detector = ScriptedDetector({0: [PERSON]}, DetectionSource.PERSON)
    planner = _planner(DynamicSettings(hide_persons=True), persons=detector)
    hidden = [planner.plan(_frame(i)).union() for i in range(15)]
    assert all(_box_hidden(m, PERSON) for m in hidden[:11])  # frame 0 + 1 s at 10 fps
    assert not hidden[14].any()


def test_a_detector_error_masks_the_whole_frame_and_tracks_survive() -> None:
    detector = FailingDetector({1}, {0: [PERSON], 2: []})
    planner = _planner(DynamicSettings(hide_persons=True), persons=detector)
    planner.plan(_frame(0))
    failed = planner.plan(_frame(1))
    assert failed.fully_masked
    assert failed.layers[0].reason is MaskReason.FAIL_CLOSED
    after = planner.plan(_frame(2)).union()
    assert _box_hidden(after, PERSON), "the track must coast through the failed frame"
    assert planner.failed_frames == 1


def test_motion_learning_masks_the_whole_frame() -> None:
    motion = ScriptedDetector({}, DetectionSource.MOTION)
    motion.learning = True
    planner = _planner(DynamicSettings(hide_motion=True), motion=motion)
    assert planner.plan(_frame(0)).fully_masked
    motion.learning = False
    assert not planner.plan(_frame(1)).layers
    planner.reset_background()
    assert motion.resets == 1


def test_the_whole_frame_stays_masked_for_a_while_after_learning() -> None:
    motion = ScriptedDetector({}, DetectionSource.MOTION)
    motion.learning = True
    planner = _planner(DynamicSettings(hide_motion=True, after_learning_frames=3), motion=motion)
    assert planner.plan(_frame(0)).fully_masked
    motion.learning = False
    assert [planner.plan(_frame(i)).fully_masked for i in range(1, 6)] == [
        True, True, True, False, False
    ]  # fmt: skip
    planner.reset_background()
    assert motion.resets == 1


def test_a_detector_over_its_time_budget_masks_the_whole_frame() -> None:
    class Slow(ScriptedDetector):
        def detect(self, frame: Frame) -> Detections:
            import time

            time.sleep(0.02)
            return super().detect(frame)

    slow = Slow({}, DetectionSource.PERSON)
    planner = _planner(DynamicSettings(hide_persons=True, detect_budget_s=0.001), persons=slow)
    assert planner.plan(_frame(0)).fully_masked


def test_margin_grows_the_box() -> None:
    detector = ScriptedDetector({0: [PERSON]}, DetectionSource.PERSON)
    settings = DynamicSettings(hide_persons=True, margin=Margin(pixels=5))
    hidden = _planner(settings, persons=detector).plan(_frame(0)).union()
    assert _box_hidden(hidden, [45, 15, 85, 105])
    assert not hidden[:, :44].any()
    assert not hidden[:, 86:].any()


def test_include_and_exclude_areas() -> None:
    detector = ScriptedDetector({0: [PERSON, [150, 20, 180, 100]]}, DetectionSource.PERSON)
    include = (Region.rect(0.0, 0.0, 0.5, 1.0),)
    hidden = (
        _planner(DynamicSettings(hide_persons=True, include=include), persons=detector)
        .plan(_frame(0))
        .union()
    )
    assert _box_hidden(hidden, PERSON)
    assert not hidden[:, 100:].any(), "outside the include area nothing is masked"

    detector = ScriptedDetector({0: [PERSON, [150, 20, 180, 100]]}, DetectionSource.PERSON)
    exclude = (Region.rect(0.5, 0.0, 0.5, 1.0),)
    hidden = (
        _planner(DynamicSettings(hide_persons=True, exclude=exclude), persons=detector)
        .plan(_frame(0))
        .union()
    )
    assert _box_hidden(hidden, PERSON)
    assert not hidden[:, 100:].any(), "inside an exclude area nothing is masked"


def test_background_mode_hides_everything_but_the_people() -> None:
    detector = ScriptedDetector({0: [PERSON]}, DetectionSource.PERSON)
    hidden = (
        _planner(DynamicSettings(hide_background=True), persons=detector).plan(_frame(0)).union()
    )
    assert not hidden[20:100, 50:80].any()
    hidden[20:100, 50:80] = True
    assert hidden.all()


def test_faces_mode_masks_the_head_of_each_person() -> None:
    persons = ScriptedDetector({0: [PERSON]}, DetectionSource.PERSON)
    faces = ScriptedDetector({0: []}, DetectionSource.FACE)
    hidden = (
        _planner(DynamicSettings(hide_faces=True), persons=persons, faces=faces)
        .plan(_frame(0))
        .union()
    )
    assert _box_hidden(hidden, [56, 20, 74, 36])  # top fifth, middle of the box
    assert not hidden[60:, :].any(), "the body below the head stays visible"


def test_silhouette_masks_the_moving_shape_only() -> None:
    shape = np.zeros((1, H, W), bool)
    yy, xx = np.ogrid[:H, :W]
    shape[0] = (yy - 60) ** 2 + (xx - 100) ** 2 <= 20**2

    class ShapeDetector(ScriptedDetector):
        def detect(self, frame: Frame) -> Detections:
            return Detections.from_boxes([[80, 40, 121, 81]], DetectionSource.MOTION)

        def shapes(self) -> np.ndarray:
            return shape

    motion = ShapeDetector({}, DetectionSource.MOTION)
    settings = DynamicSettings(
        hide_motion=True, silhouette=True, style=Style(StyleKind.SILHOUETTE, (255, 0, 255))
    )
    hidden = _planner(settings, motion=motion).plan(_frame(0)).union()
    assert hidden[shape[0]].all()
    assert not hidden[40, 80], "the corner of the box, outside the shape, stays visible"


@pytest.mark.parametrize(
    ("methods", "flags"),
    [
        ([Method.MOTION], (True, False, False, False)),
        ([Method.HUMANS, Method.FACES], (False, True, True, False)),
        ([Method.BACKGROUND], (False, False, False, True)),
    ],
)
def test_settings_from_config(methods: list[Method], flags: tuple[bool, ...]) -> None:
    s = dynamic_settings(DynamicConfig(methods=methods, margin="10px"))
    assert (s.hide_motion, s.hide_persons, s.hide_faces, s.hide_background) == flags
    assert s.margin == Margin(pixels=10)
