"""Masking quality measured against MOTChallenge ground truth (``veil eval``).

- :mod:`veil.eval.groundtruth` reads MOT15 and MOT17 ``gt.txt`` files;
- :mod:`veil.eval.metrics` computes coverage, recall, head recall, leaks and
  over-masking from the hidden pixels of each frame (pure functions);
- :mod:`veil.eval.runner` drives frames through planners and times them.
"""

from veil.eval.groundtruth import (
    GroundTruth,
    GroundTruthError,
    GroundTruthNotFoundError,
    GTFormat,
    SeqInfo,
    load_ground_truth,
    parse_ground_truth,
    read_seqinfo,
)
from veil.eval.metrics import (
    BoxResult,
    EvalReport,
    HeightBucket,
    LeakRun,
    MetricsAccumulator,
    PersonStats,
    RecallStats,
    Thresholds,
    compute_metrics,
)
from veil.eval.runner import (
    GroundTruthMismatchError,
    PlannerFactory,
    evaluate,
    evaluate_frames,
    hidden_pixels,
)

__all__ = [
    "BoxResult",
    "EvalReport",
    "GTFormat",
    "GroundTruth",
    "GroundTruthError",
    "GroundTruthMismatchError",
    "GroundTruthNotFoundError",
    "HeightBucket",
    "LeakRun",
    "MetricsAccumulator",
    "PersonStats",
    "PlannerFactory",
    "RecallStats",
    "SeqInfo",
    "Thresholds",
    "compute_metrics",
    "evaluate",
    "evaluate_frames",
    "hidden_pixels",
    "load_ground_truth",
    "parse_ground_truth",
    "read_seqinfo",
]
