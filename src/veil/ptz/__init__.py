"""Pan-tilt-zoom: privacy masks fixed to the scene while the camera moves.

- :mod:`veil.ptz.camera`: camera position, lens and projection between directions and pixels.
- :mod:`veil.ptz.masks`: masks in pan/tilt angles, projected each frame (``PTZMaskPlanner``).
- :mod:`veil.ptz.onvif_status`: position readings and how uncertain they are.
- :mod:`veil.ptz.virtual`: a virtual PTZ camera over a 360 degree picture, with ONVIF moves.
"""

from veil.ptz.camera import (
    CameraView,
    Lens,
    PTZState,
    angles_to_direction,
    direction_to_angles,
    wrap_pan,
)
from veil.ptz.masks import (
    PTZMaskPlanner,
    SceneMask,
    margin_pixels,
    project_mask,
    project_region,
    state_for_mask,
)
from veil.ptz.onvif_status import (
    EXACT,
    FixedPosition,
    MotionUncertainty,
    PositionProvider,
    PTZReading,
    PTZVelocity,
)
from veil.ptz.virtual import (
    CapturedPosition,
    Preset,
    PTZCommandError,
    PTZLimits,
    VirtualPTZ,
    synthetic_equirect,
    tile_at,
    tile_color,
)

__all__ = [
    "EXACT",
    "CameraView",
    "CapturedPosition",
    "FixedPosition",
    "Lens",
    "MotionUncertainty",
    "PTZCommandError",
    "PTZLimits",
    "PTZMaskPlanner",
    "PTZReading",
    "PTZState",
    "PTZVelocity",
    "PositionProvider",
    "Preset",
    "SceneMask",
    "VirtualPTZ",
    "angles_to_direction",
    "direction_to_angles",
    "margin_pixels",
    "project_mask",
    "project_region",
    "state_for_mask",
    "synthetic_equirect",
    "tile_at",
    "tile_color",
    "wrap_pan",
]
