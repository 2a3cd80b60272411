"""Veil: privacy masking for video surveillance.

Data flows one way (see ARCHITECTURE.md in the shared folder and README.md):

    Source -> Frame -> Detector(s) -> Detections -> Tracker -> Tracks
           -> MaskPolicy -> MaskPlan -> Renderer -> masked Frame -> Sinks
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("veil")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
