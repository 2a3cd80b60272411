"""The planner interface: one frame in, one MaskPlan out."""

from __future__ import annotations

from typing import Protocol

from veil.core.frame import Frame
from veil.core.plan import MaskPlan


class FramePlanner(Protocol):
    """Decides what to hide in a frame. A planner that raises makes the pipeline
    mask the whole frame (fail closed).

    A planner that never reads pixels (only the frame's size, index and time) may say so
    with a class attribute ``reads_pixels = False``: when every planner of a pipeline
    does, frames can stay in the decoder's 4:2:0 form from input to output
    (:func:`reads_pixels`). Planners without the attribute are taken to read pixels.
    """

    def plan(self, frame: Frame) -> MaskPlan: ...


def reads_pixels(planner: FramePlanner) -> bool:
    """False only for a planner that declares ``reads_pixels = False``."""
    return bool(getattr(planner, "reads_pixels", True))
