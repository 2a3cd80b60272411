"""The planner interface: one frame in, one MaskPlan out."""

from __future__ import annotations

from typing import Protocol

from veil.core.frame import Frame
from veil.core.plan import MaskPlan


class FramePlanner(Protocol):
    """Decides what to hide in a frame. A planner that raises makes the pipeline
    mask the whole frame (fail closed)."""

    def plan(self, frame: Frame) -> MaskPlan: ...
