"""Compile a validated configuration into the runtime objects that mask frames.

``VeilConfig`` is declarative; here it becomes detectors, a tracker and planners.
A new configuration is always built completely before it replaces a running one, so
an error here (a missing model, say) leaves the running configuration in place.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from veil.config.schema import DynamicConfig, Method, VeilConfig
from veil.core.frame import Frame
from veil.core.region import Region
from veil.core.style import StyleKind
from veil.detect.faces import FaceDetector
from veil.detect.motion import MotionDetector, MotionSettings
from veil.detect.persons import PersonDetector
from veil.pipeline import MaskingPipeline
from veil.policy.base import FramePlanner
from veil.policy.dynamic import DynamicPlanner, DynamicSettings
from veil.policy.margin import Margin
from veil.policy.static import StaticPlanner, style_from_config
from veil.track.tracker import Tracker, TrackerSettings

UNCERTAINTY_GROWTH_PER_SECOND = 0.5
"""How fast a coasting track's extra margin grows, in box sizes per second unseen.

Per second rather than per frame so that masks behave the same at any frame rate.
Chosen on TUD-Stadtmitte (see README: 0.5 keeps every person and head masked with the
least over-masking; 1.0 masked 28 % of the frame, 0.25 let one person drop under 90 %)."""


def dynamic_settings(
    dynamic: DynamicConfig, detect_budget_s: float | None = None, fps: float = 0.0
) -> DynamicSettings:
    methods = set(dynamic.methods)
    return DynamicSettings(
        hide_motion=Method.MOTION in methods,
        hide_persons=Method.HUMANS in methods,
        hide_faces=Method.FACES in methods,
        hide_background=Method.BACKGROUND in methods,
        margin=Margin.parse(dynamic.margin),
        style=style_from_config(dynamic),
        silhouette=dynamic.style is StyleKind.SILHOUETTE,
        include=tuple(Region(_points(area)) for area in dynamic.include),
        exclude=tuple(Region(_points(area)) for area in dynamic.exclude),
        detect_budget_s=detect_budget_s,
        after_learning_frames=math.ceil(dynamic.hold_time * fps) if fps else 0,
    )


def _points(area: list[tuple[float, float]]) -> NDArray[np.float64]:
    return np.asarray(area, dtype=np.float64)


def build_dynamic_planner(
    dynamic: DynamicConfig, fps: float, *, detect_budget_s: float | None = None
) -> DynamicPlanner | None:
    """The dynamic planner for ``dynamic``, or None when no method is chosen.

    Raises ModelError (with the fix) when an AI method's weights are missing.
    """
    methods = set(dynamic.methods)
    if not methods:
        return None
    needs_persons = bool(methods & {Method.HUMANS, Method.FACES, Method.BACKGROUND})
    motion = (
        MotionDetector(MotionSettings.from_config(dynamic, fps))
        if Method.MOTION in methods
        else None
    )
    persons = PersonDetector.from_config(dynamic) if needs_persons else None
    faces = FaceDetector.from_config(dynamic) if Method.FACES in methods else None
    tracker = Tracker(
        TrackerSettings(
            fps=fps,
            hold_time=dynamic.hold_time,
            uncertainty_growth=UNCERTAINTY_GROWTH_PER_SECOND / fps,
        )
    )
    return DynamicPlanner(
        dynamic_settings(dynamic, detect_budget_s, fps),
        tracker,
        motion=motion,
        persons=persons,
        faces=faces,
    )


def build_planners(
    config: VeilConfig, fps: float, *, detect_budget_s: float | None = None
) -> list[FramePlanner]:
    """Planners in drawing order: dynamic masks first, static masks on top (so a static
    mask always shows exactly its configured style)."""
    planners: list[FramePlanner] = []
    dynamic = build_dynamic_planner(config.dynamic, fps, detect_budget_s=detect_budget_s)
    if dynamic is not None:
        planners.append(dynamic)
    if any(mask.enabled for mask in config.masks):
        planners.append(StaticPlanner(config.masks))
    return planners


class CompiledMasker:
    """A whole masking configuration, ready to mask frames one at a time."""

    def __init__(self, config: VeilConfig, fps: float, *, detect_budget_s: float | None = None):
        self.config = config
        self._planners = build_planners(config, fps, detect_budget_s=detect_budget_s)
        self._dynamic = next((p for p in self._planners if isinstance(p, DynamicPlanner)), None)
        self.pipeline = MaskingPipeline(self._planners)

    @property
    def planners(self) -> list[FramePlanner]:
        return list(self._planners)

    def process(self, frame: Frame) -> Frame:
        return self.pipeline.process(frame)

    def reset_background(self) -> None:
        """Motion masking re-learns the scene (and masks the whole frame meanwhile)."""
        if self._dynamic is not None:
            self._dynamic.reset_background()


def build_masker(
    config: VeilConfig, fps: float, *, detect_budget_s: float | None = None
) -> CompiledMasker:
    return CompiledMasker(config, fps, detect_budget_s=detect_budget_s)
