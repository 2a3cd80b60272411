"""Run planners over a video and measure the result against ground truth.

Each frame goes through every planner; the union of their plans is what the renderer
would hide (every style hides the whole area of its layer). As in the pipeline, the
evaluation fails closed: a planner that raises, returns a plan of the wrong size, or a
frame the decoder marked corrupt makes the whole frame masked. Every planner still sees
every frame, so trackers keep their state as they would in the pipeline.

Ground-truth frame numbers are 1-based; a frame's ``index`` is 0-based, so frame
``index`` is measured against ground-truth frame ``index + 1``.

Example::

    report = evaluate("TUD-Stadtmitte/img1/%06d.jpg", Path("TUD-Stadtmitte/gt/gt.txt"),
                      lambda fps: build_planners(config, fps))
    print(report.recall)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from veil.core.errors import ShapeError, UsageError
from veil.core.frame import Frame
from veil.core.region import BoolMask
from veil.eval.groundtruth import GroundTruth, GTFormat, load_ground_truth, read_seqinfo
from veil.eval.metrics import EvalReport, MetricsAccumulator
from veil.policy.base import FramePlanner

PlannerFactory = Callable[[float], Sequence[FramePlanner]]
"""Builds the planners for a video of the given frame rate (frames per second)."""

DEFAULT_FPS = 25.0


class GroundTruthMismatchError(UsageError):
    """The ground truth does not belong to the video (frames or size do not match)."""


def hidden_pixels(frame: Frame, planners: Sequence[FramePlanner]) -> tuple[BoolMask, str | None]:
    """What the output of ``planners`` hides in ``frame``, and why it is all, if it is.

    Returns the ``(height, width)`` union of every planner's plan and None, or a full
    mask and the reason when the frame is corrupt or a planner failed (fail closed).
    """
    full = np.ones((frame.height, frame.width), dtype=np.bool_)
    failure = f"frame {frame.index} is corrupt" if frame.corrupt else None
    mask = np.zeros((frame.height, frame.width), dtype=np.bool_)
    for planner in planners:
        try:
            plan = planner.plan(frame)
            if (plan.width, plan.height) != (frame.width, frame.height):
                raise ShapeError(
                    f"plan is {plan.width}x{plan.height}, frame is {frame.width}x{frame.height}"
                )
            mask |= plan.union()
        except Exception as error:  # noqa: BLE001 - fail closed, as the pipeline does
            failure = failure or f"frame {frame.index}: {type(planner).__name__}: {error}"
    return (full, failure) if failure else (mask, None)


def evaluate_frames(
    frames: Iterable[Frame],
    gt: GroundTruth,
    planners: Sequence[FramePlanner],
    *,
    video: str = "",
    max_frames: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> EvalReport:
    """Mask ``frames`` with ``planners`` and measure the result against ``gt``.

    Reads at most ``max_frames`` frames. ``processing_fps`` is frames per second of
    planner time (``clock``), without reading frames or measuring. Raises
    :class:`GroundTruthMismatchError` when the frames are not in increasing index
    order, or when the ground truth has boxes in frames the video did not deliver
    (unless ``max_frames`` cut the video short: later ground truth is then left out).
    """
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"max_frames must be at least 1, got {max_frames}")
    acc = MetricsAccumulator(gt)
    seen: set[int] = set()
    last_index = -1
    planning = 0.0
    failed = 0
    first_failure: str | None = None
    cut_short = False
    for frame in frames:
        if max_frames is not None and len(seen) >= max_frames:
            cut_short = True
            break
        if frame.index <= last_index:
            raise GroundTruthMismatchError(
                f"frame indices must increase, got {frame.index} after {last_index}"
            )
        last_index = frame.index
        start = clock()
        mask, failure = hidden_pixels(frame, planners)
        planning += clock() - start
        if failure is not None:
            failed += 1
            first_failure = first_failure or failure
        acc.add(frame.index, mask)
        seen.add(frame.index)
    if not seen:
        raise GroundTruthMismatchError(f"{video or 'the video'}: no frames were read")
    limit = last_index + 1 if cut_short else None
    missing = [n for n in gt.frame_numbers if n - 1 not in seen and (limit is None or n <= limit)]
    if missing:
        shown = ", ".join(str(n) for n in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise GroundTruthMismatchError(
            f"the ground truth has boxes in {len(missing)} frames the video does not have "
            f"(frames {shown}; the video gave {len(seen)} frames)",
            hint="check that --gt and --video belong to the same sequence, or use --max-frames",
        )
    return acc.report(
        video=video,
        processing_fps=len(seen) / planning if planning > 0 else None,
        frames_failed=failed,
        first_failure=first_failure,
    )


def evaluate(
    video: str,
    gt_path: Path,
    planners: Sequence[FramePlanner] | PlannerFactory,
    *,
    fps: float | None = None,
    max_frames: int | None = None,
    gt_format: GTFormat | None = None,
) -> EvalReport:
    """Evaluate masking of ``video`` (a file or an image sequence such as
    ``img1/%06d.jpg``) against the MOTChallenge ground truth at ``gt_path``.

    ``planners`` are ready planners, or a function of the frame rate that builds them.
    The frame rate is ``fps``, else the sequence's ``seqinfo.ini`` (next to or above the
    ground truth), else the video's own (25 for an image sequence). When ``seqinfo.ini``
    gives the picture size and the video has another, :class:`GroundTruthMismatchError`.
    """
    from veil.media.source import open_source  # the media stack (PyAV) loads only here

    gt = load_ground_truth(gt_path, gt_format)
    info = read_seqinfo(gt_path)
    rate = fps if fps is not None else (info.frame_rate if info else None)
    if rate is not None and rate <= 0:
        raise UsageError(f"frame rate must be positive, got {rate}")
    with open_source(
        video, fps=None if rate is None else Fraction(rate).limit_denominator()
    ) as source:
        if (
            info
            and info.width
            and info.height
            and (source.width, source.height)
            != (
                info.width,
                info.height,
            )
        ):
            raise GroundTruthMismatchError(
                f"{video} is {source.width}x{source.height}, but the ground truth's "
                f"seqinfo.ini says {info.width}x{info.height}",
                hint="check that --gt and --video belong to the same sequence",
            )
        used_rate = rate if rate is not None else float(source.fps or DEFAULT_FPS)
        built = planners(used_rate) if callable(planners) else planners
        return evaluate_frames(source.frames(), gt, built, video=video, max_frames=max_frames)
