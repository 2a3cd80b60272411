"""Renderers: draw a MaskPlan onto a frame, one renderer per style."""

from veil.render.renderers import (
    BlurRenderer,
    FillRenderer,
    FrameRenderer,
    MosaicRenderer,
    Renderer,
)

__all__ = ["BlurRenderer", "FillRenderer", "FrameRenderer", "MosaicRenderer", "Renderer"]
