"""Motion detection: whatever differs from a learned background model.

The model is OpenCV's Gaussian-mixture background subtractor (MOG2), run on a downscaled
copy of each frame. Foreground pixels are cleaned of sensor noise, nearby pieces are merged
into one blob (a person's limbs become one person), blobs below a minimum size are dropped,
and each blob is reported as a box in full-resolution pixels.

The detector fails closed. While it is *learning* (the first frames, after :meth:`reset`,
after a sudden global light change, after the frame size changes or an internal error) it
cannot tell movement from scenery, so :attr:`MotionDetector.learning` is True and
:meth:`MotionDetector.detect` reports one detection covering the whole frame: a caller that
forgets to look at ``learning`` still masks everything.

Example (a still scene: nothing moves once the model has learned it)::

    >>> from fractions import Fraction
    >>> import numpy as np
    >>> from veil.core.frame import Frame
    >>> detector = MotionDetector(MotionSettings(fps=25.0, learning_time=1.0))
    >>> picture = np.full((1080, 1920, 3), 90, np.uint8)
    >>> frames = [Frame(picture, i, Fraction(1, 25), i) for i in range(26)]
    >>> [len(detector.detect(frame)) for frame in frames[:25]] == [1] * 25  # whole frame
    True
    >>> detector.learning
    True
    >>> len(detector.detect(frames[25])), detector.learning
    (0, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from veil.core.detections import Detections, DetectionSource
from veil.core.errors import ConfigError, DetectorError, ShapeError
from veil.core.frame import Frame

if TYPE_CHECKING:
    from veil.config.schema import DynamicConfig

BoolMask = NDArray[np.bool_]

# MOG2 counts a pixel's colour as background once the colour's share of the model's memory
# ("weight") is among the top modes that together reach this ratio. OpenCV's default is 0.9;
# we use 0.7 so that something seen at a pixel for less than ~30% of the learning phase (a
# person walking through while the model learns) is *not* learned as background. The price:
# backgrounds that alternate between several looks (leaves, water, flicker) are masked
# more often. For privacy that is the right side to err on.
_BACKGROUND_RATIO = 0.7

# With a learning rate ``a``, a colour that replaces the background at a pixel gets the old
# colour's weight down to the ratio above after about ``-ln(ratio) / a`` frames, and then
# it is background. So the rate that merges a still object after ``n`` frames is
# ``-ln(ratio) / n`` (measured with OpenCV 5.0: merges after 1.00 to 1.04 n frames).
_MERGE_CONSTANT = -math.log(_BACKGROUND_RATIO)

# Squared Mahalanobis distance (MOG2's varThreshold) at sensitivity 0, 50 and 100: 12, 4 and
# 2 standard deviations of the pixel's learned noise. 50 is OpenCV's own default (16).
_VAR_THRESHOLD_LOW = 144.0
_VAR_THRESHOLD_MID = 16.0
_VAR_THRESHOLD_HIGH = 4.0

_OPEN_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))


def var_threshold(sensitivity: float) -> float:
    """MOG2's change threshold for a sensitivity of 0..100 (geometric between anchors).

    >>> var_threshold(50)
    16.0
    """
    s = min(max(float(sensitivity), 0.0), 100.0)
    if s <= 50.0:
        ratio, steps = _VAR_THRESHOLD_LOW / _VAR_THRESHOLD_MID, (50.0 - s) / 50.0
    else:
        ratio, steps = _VAR_THRESHOLD_HIGH / _VAR_THRESHOLD_MID, (s - 50.0) / 50.0
    return float(_VAR_THRESHOLD_MID * ratio**steps)


@dataclass(frozen=True, slots=True)
class MotionSettings:
    """Settings of :class:`MotionDetector`, each with what it trades off.

    ``fps``: frame rate of the source; turns the times below into frame counts.

    ``sensitivity`` (0..100): how little change counts as movement. The change threshold
    is 12 standard deviations of a pixel's learned noise at 0, 4 at 50 and 2 at 100 (the
    noise is taken as at least 2 grey levels; on a clean flat scene a change of every
    colour by about 20 grey levels is needed at 0, 6 at 50 and 3 at 100). Higher masks
    fainter movement (a dark coat on a dark wall) but also noise, compression flicker,
    reflections and shadows: areas without any person get masked. Lower lets faint
    movement through unmasked.

    ``background_merge_time`` (s): something that stays still this long becomes the new
    background and is no longer masked. Longer keeps a person who sits still masked for
    longer, but a moved chair or a parked car stays masked for as long. After about a
    week (frame rates of 30 and more) the model no longer adapts at all (float precision).

    ``learning_time`` (s): how long the whole frame is masked at start, after a reset and
    after a sudden light change, while the model learns the scene. Shorter shows the
    picture sooner but learns the scene from fewer frames (more noise until it settles).
    At least one frame is always learned.

    ``min_object_size``: blobs whose moving pixels cover less than this share of the
    frame are noise. Larger drops more noise but also small, distant people.

    ``processing_width`` (px): the model runs on the frame scaled down to this width
    (never up). Wider finds smaller and fainter things and follows outlines more closely,
    at a cost in time and memory that grows with the square of the width. At 480 a model
    pixel is 4 x 4 pixels of a 1080p frame (a person 50 px tall is 12 model pixels), and
    detection takes about 4 ms per 1080p frame on two busy cores; 640 (3 x 3) takes about
    6 to 9 ms, 960 about 15 ms (``bench/bench_motion.py``). Downscaling also averages
    sensor noise away.

    ``merge_distance``: blobs closer than this share of the frame width become one blob
    (after the gap is closed by dilation, which also grows each blob by half this
    distance, a margin on the safe side). Larger keeps a person in one piece; too large
    joins different people into one box.

    ``light_change``: a jump of the frame's mean brightness by this many grey levels
    (0..255) from one frame to the next is a global light change: the model re-learns.

    ``relearn_share``: if more than this share of the frame moves at once, the scene is
    taken to have changed (lights, camera moved) and the model re-learns. Lower re-learns
    sooner on partial light changes; higher tolerates people very close to the camera.
    """

    fps: float
    sensitivity: float = 50.0
    background_merge_time: float = 3600.0
    learning_time: float = 2.0
    min_object_size: float = 0.001
    processing_width: int = 480
    merge_distance: float = 0.015
    light_change: float = 25.0
    relearn_share: float = 0.6

    def __post_init__(self) -> None:
        checks = [
            ("fps", self.fps > 0 and math.isfinite(self.fps), "a positive number"),
            ("sensitivity", 0 <= self.sensitivity <= 100, "within 0..100"),
            (
                "background_merge_time",
                self.background_merge_time > 0 and math.isfinite(self.background_merge_time),
                "a positive number of seconds",
            ),
            ("learning_time", 0 <= self.learning_time <= 3600, "within 0..3600 seconds"),
            ("min_object_size", 0 <= self.min_object_size <= 0.5, "within 0..0.5"),
            ("processing_width", 16 <= self.processing_width <= 7680, "within 16..7680"),
            ("merge_distance", 0 <= self.merge_distance <= 0.25, "within 0..0.25"),
            ("light_change", 0 < self.light_change <= 255, "within 0..255 (not 0)"),
            ("relearn_share", 0 < self.relearn_share <= 1, "within 0..1 (not 0)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"motion {name} must be {expected}, got {getattr(self, name)}")

    @classmethod
    def from_config(cls, dynamic: DynamicConfig, fps: float) -> MotionSettings:
        """Settings from the ``dynamic`` section of a configuration, for a source at ``fps``."""
        return cls(
            fps=fps,
            sensitivity=float(dynamic.sensitivity),
            background_merge_time=dynamic.background_merge_time,
            learning_time=dynamic.learning_time,
            min_object_size=dynamic.min_object_size,
        )

    @property
    def learning_frames(self) -> int:
        """Frames in one learning phase (at least 1: the first picture is never judged)."""
        return max(1, round(self.learning_time * self.fps))

    @property
    def merge_frames(self) -> float:
        """Frames after which something still becomes background."""
        return max(1.0, self.background_merge_time * self.fps)

    @property
    def learning_rate(self) -> float:
        """MOG2 learning rate after the learning phase (follows the merge time)."""
        return min(1.0, _MERGE_CONSTANT / self.merge_frames)


def _processing_size(width: int, height: int, processing_width: int) -> tuple[int, int]:
    if width <= processing_width:
        return width, height
    return processing_width, max(1, round(height * processing_width / width))


class MotionDetector:
    """Finds moving things against a background learned from earlier frames.

    One instance per stream; not thread-safe. :meth:`detect` returns boxes (source
    MOTION, confidence 1) without per-blob masks, because (N, H, W) boolean masks at 1080p
    cost 2 MB and a full-frame pass each. The moving shapes are available on demand, at
    frame resolution: :attr:`last_foreground` (the union, for silhouettes) and
    :meth:`shapes` (one mask per detection, costlier). Both are made by scaling the
    processing-resolution mask up, so outlines are as fine as ``processing_width`` allows.
    """

    def __init__(self, settings: MotionSettings) -> None:
        self._settings = settings
        self._var_threshold = var_threshold(settings.sensitivity)
        self._subtractor: cv2.BackgroundSubtractorMOG2 | None = None
        self._frame_size: tuple[int, int] | None = None  # (width, height) of the stream
        self._size: tuple[int, int] = (0, 0)  # processing (width, height)
        self._restart = True  # the next frame starts a learning phase
        self._phase_frame = 0  # frames seen in the current learning phase
        self._learning = True
        self._brightness: float | None = None
        # Results of the last frame, at processing resolution; upscaled only on demand.
        self._labels: NDArray[np.int32] | None = None
        self._kept: NDArray[np.int32] = np.zeros((0,), np.int32)
        self._blobs: NDArray[np.uint8] | None = None
        self._full_frame = False  # the last result was "mask everything"
        self._foreground: BoolMask | None = None

    @property
    def settings(self) -> MotionSettings:
        return self._settings

    @property
    def learning(self) -> bool:
        """True while the model learns the scene: the whole frame must be masked.

        It refers to the frame last given to :meth:`detect` (and is True before the first
        frame and right after :meth:`reset`)."""
        return self._restart or self._learning

    def reset(self) -> None:
        """Take the next picture as the new background and learn for ``learning_time``."""
        self._restart = True
        self._learning = True

    def detect(self, frame: Frame) -> Detections:
        """Moving blobs of ``frame`` as boxes in frame pixels.

        While :attr:`learning`, and for frames marked corrupt, one box covers the whole
        frame. A frame whose size differs from the previous one starts a new learning
        phase. Raises ShapeError for input that is not a :class:`Frame`, DetectorError if
        OpenCV fails (the model then re-learns from the next frame).
        """
        if not isinstance(frame, Frame):
            raise ShapeError(f"MotionDetector.detect expects a Frame, got {type(frame).__name__}")
        self._foreground = None
        if frame.corrupt:
            # A damaged picture must not teach the model anything (and would look like a
            # light change); it is fully masked by the pipeline anyway.
            return self._whole_frame(frame)
        try:
            return self._detect(frame)
        except cv2.error as exc:
            self.reset()
            self._subtractor = None
            raise DetectorError(f"motion detection failed on frame {frame.index}: {exc}") from exc

    def _detect(self, frame: Frame) -> Detections:
        settings = self._settings
        size = (frame.width, frame.height)
        if size != self._frame_size or self._subtractor is None:
            self._start_stream(size)
        small = self._downscale(frame)
        brightness = _brightness(small)
        jumped = (
            self._brightness is not None
            and abs(brightness - self._brightness) >= settings.light_change
        )
        self._brightness = brightness
        if jumped:
            self._restart = True
        if self._restart:
            self._restart = False
            self._phase_frame = 0
        else:
            self._phase_frame += 1
        learning_frames = settings.learning_frames
        self._learning = self._phase_frame < learning_frames
        # A running mean (rate 1/(k+1)) while learning: the first frame initialises the
        # model (rate 1) and each later one counts equally. The merge rate alone (1e-5 and
        # less) would leave the model at its first noisy frame for hours.
        rate = 1.0 / (self._phase_frame + 1) if self._learning else settings.learning_rate
        assert self._subtractor is not None
        raw = _u8(self._subtractor.apply(small, learningRate=rate))
        if self._learning:
            return self._whole_frame(frame)
        cleaned = _u8(cv2.morphologyEx(raw, cv2.MORPH_OPEN, _OPEN_KERNEL))
        moving_share = cv2.countNonZero(cleaned) / cleaned.size
        if moving_share >= settings.relearn_share:
            # Most of the picture changed at once: lights, a moved camera, a covered lens.
            # Re-learn from this picture and mask everything meanwhile.
            self._subtractor.apply(small, learningRate=1.0)
            self._phase_frame = 0
            self._learning = True
            return self._whole_frame(frame)
        return self._blobs_of(frame, cleaned)

    def _start_stream(self, size: tuple[int, int]) -> None:
        settings = self._settings
        self._frame_size = size
        self._size = _processing_size(size[0], size[1], settings.processing_width)
        # history only sets the automatic rate, which we never use (every apply() gets
        # an explicit rate); shadows count as movement (a shadow can show a silhouette,
        # and the shadow test costs time).
        subtractor = cv2.createBackgroundSubtractorMOG2(
            history=max(1, min(round(settings.merge_frames), 2**31 - 1)),
            varThreshold=self._var_threshold,
            detectShadows=False,
        )
        subtractor.setBackgroundRatio(_BACKGROUND_RATIO)
        self._subtractor = subtractor
        self._brightness = None
        self._restart = True

    def _downscale(self, frame: Frame) -> NDArray[np.uint8]:
        if self._size == self._frame_size:
            return frame.image
        # INTER_AREA averages whole pixels: no aliasing, and sensor noise shrinks.
        return _u8(cv2.resize(frame.image, self._size, interpolation=cv2.INTER_AREA))

    def _blobs_of(self, frame: Frame, cleaned: NDArray[np.uint8]) -> Detections:
        settings = self._settings
        pw, ph = self._size
        gap = round(settings.merge_distance * pw)
        # Dilating by the gap joins pieces closer than it (limbs, a person split by a
        # pole) into one component before labelling.
        merged = (
            cv2.dilate(cleaned, cv2.getStructuringElement(cv2.MORPH_RECT, (gap + 1, gap + 1)))
            if gap > 0
            else cleaned
        )
        count, raw_labels, stats, _ = cv2.connectedComponentsWithStats(
            merged, connectivity=8, ltype=cv2.CV_32S
        )
        labels = np.asarray(raw_labels, dtype=np.int32)
        # Size is judged on the moving pixels themselves, not on the dilated blob, so that
        # dilation cannot lift scattered noise over the threshold.
        moving = np.bincount(labels[cleaned > 0], minlength=count)
        min_pixels = settings.min_object_size * pw * ph
        found = np.flatnonzero(moving >= max(min_pixels, 1.0))
        kept = found[found > 0].astype(np.int32)  # label 0 is the background
        lut = np.zeros((count,), np.uint8)
        lut[kept] = 1  # 0/1 bytes can be viewed as bool without another pass
        self._labels = labels
        self._kept = kept
        self._blobs = lut[labels]
        self._full_frame = False
        if len(kept) == 0:
            return Detections.empty()
        sx = frame.width / pw
        sy = frame.height / ph
        x, y, w, h = (stats[kept, i].astype(np.float64) for i in range(4))
        xyxy = np.stack(
            [
                np.floor(x * sx),
                np.floor(y * sy),
                np.minimum(np.ceil((x + w) * sx), frame.width),
                np.minimum(np.ceil((y + h) * sy), frame.height),
            ],
            axis=1,
        )
        return Detections.from_boxes(xyxy, DetectionSource.MOTION)

    def _whole_frame(self, frame: Frame) -> Detections:
        self._full_frame = True
        self._labels = None
        self._blobs = None
        self._kept = np.zeros((0,), np.int32)
        return Detections.from_boxes(
            [[0.0, 0.0, float(frame.width), float(frame.height)]], DetectionSource.MOTION
        )

    @property
    def last_foreground(self) -> BoolMask | None:
        """Every pixel of the last frame that belongs to a detection, at frame resolution.

        All True while learning; None before the first frame. Computed on first access and
        kept until the next :meth:`detect` (about 1 ms at 1080p); do not write into it.
        """
        if self._foreground is not None:
            return self._foreground
        if self._frame_size is None:
            return None
        width, height = self._frame_size
        if self._full_frame or self._blobs is None:
            mask = np.ones((height, width), np.bool_)
        else:
            blobs = self._blobs
            if self._size != self._frame_size:
                blobs = _u8(cv2.resize(blobs, (width, height), interpolation=cv2.INTER_NEAREST))
            mask = blobs.view(np.bool_)
        mask.flags.writeable = False
        self._foreground = mask
        return mask

    def shapes(self) -> BoolMask:
        """One ``(H, W)`` mask per detection of the last frame, in the same order: ``(N, H, W)``.

        Costs one full-resolution pass per detection; use :attr:`last_foreground` when the
        union is enough. Usable as ``Detections.mask``.
        """
        if self._frame_size is None:
            return np.zeros((0, 0, 0), np.bool_)
        width, height = self._frame_size
        if self._full_frame or self._labels is None:
            return np.ones((1, height, width), np.bool_)
        labels = self._labels
        if self._size != self._frame_size:
            labels = np.asarray(
                cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST), np.int32
            )
        out = np.empty((len(self._kept), height, width), np.bool_)
        for i, label in enumerate(self._kept):
            np.equal(labels, label, out=out[i])
        return out


def _u8(image: object) -> NDArray[np.uint8]:
    """OpenCV's result typed as the uint8 array it is (no copy)."""
    return np.asarray(image, dtype=np.uint8)


def _brightness(image: NDArray[np.uint8]) -> float:
    """Mean luma (0..255) of a BGR image."""
    b, g, r, _ = cv2.mean(image)
    return 0.114 * b + 0.587 * g + 0.299 * r
