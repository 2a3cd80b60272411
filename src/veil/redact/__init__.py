"""Redaction before export: mask chosen objects, or everything but persons of interest.

The workflow, each step a module:

- :mod:`veil.redact.analysis`: decode a video once, detect persons, faces and other moving
  objects, track them offline, and save the result beside the video (with its SHA-256);
- :mod:`veil.redact.offline_tracks`: tracking forwards and backwards, gaps filled from both
  ends, fragments merged;
- :mod:`veil.redact.selection`: the selection file (mask-selected or mask-all-except, merges,
  splits, manual keyframed regions, trim, style), checked against an analysis;
- :mod:`veil.redact.export`: plan and render each frame, export atomically;
- :mod:`veil.redact.manifest`: the Ed25519-signed manifest and its verification.

Example::

    analysis = analyse_video("cam1.mp4")
    resolved = resolve(load_selection("sel.yaml"), analysis)
    result = export_redaction("cam1.mp4", analysis, resolved, "case17.mp4")
    assert verify_export(result.output, result.manifest_json).ok
"""

from veil.redact.analysis import (
    Analysis,
    AnalysisError,
    AnalysisSettings,
    VideoChangedError,
    analyse_video,
    default_analysis_path,
    load_or_analyse,
)
from veil.redact.export import ExportResult, RedactionPlanner, export_redaction, preview_frame
from veil.redact.manifest import ManifestError, VerifyResult, verify_export
from veil.redact.offline_tracks import (
    BoxFlag,
    OfflineSettings,
    OfflineTrack,
    TrackKind,
    build_tracks,
)
from veil.redact.selection import (
    Mode,
    ResolvedSelection,
    Selection,
    SelectionError,
    load_selection,
    parse_selection,
    resolve,
)

__all__ = [
    "Analysis",
    "AnalysisError",
    "AnalysisSettings",
    "BoxFlag",
    "ExportResult",
    "ManifestError",
    "Mode",
    "OfflineSettings",
    "OfflineTrack",
    "RedactionPlanner",
    "ResolvedSelection",
    "Selection",
    "SelectionError",
    "TrackKind",
    "VerifyResult",
    "VideoChangedError",
    "analyse_video",
    "build_tracks",
    "default_analysis_path",
    "export_redaction",
    "load_or_analyse",
    "load_selection",
    "parse_selection",
    "preview_frame",
    "resolve",
    "verify_export",
]
