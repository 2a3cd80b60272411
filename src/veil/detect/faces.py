"""Face detector: YuNet through OpenCV's ``cv2.FaceDetectorYN``.

YuNet takes a BGR picture of any size and returns, per face, ``x, y, w, h``, five landmarks
(eyes, nose tip, mouth corners) and a score. Veil downscales the picture so its longest side is
at most ``FaceSettings.input_size`` before detection (speed: YuNet's cost grows with the pixel
count) and maps the boxes back to frame pixels.

Faces too small or turned away for YuNet are covered by masking the head region of each person
box (:func:`head_regions`), which the ``faces`` method does as well.

Example::

    from veil.detect.faces import FaceDetector, FaceSettings

    detector = FaceDetector.load(FaceSettings(score_threshold=0.6))
    faces = detector.detect(frame)  # Detections, source FACE
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from veil.config.schema import DynamicConfig
from veil.core.detections import Detections, DetectionSource
from veil.core.errors import ConfigError, DetectorError, ModelError
from veil.core.frame import Frame, Image
from veil.detect.base import detect_guarded
from veil.detect.persons import sensitivity_to_threshold
from veil.models import YUNET, resolve_model


@dataclass(frozen=True, slots=True)
class FaceSettings:
    """How the face detector runs.

    ``score_threshold``: YuNet score needed; lower finds more faces (small, blurred, turned)
    and more false alarms.
    ``input_size``: the picture is scaled down (never up) so its longest side is at most this
    many pixels; ``None`` runs at full resolution. Smaller is faster and misses small faces,
    which the head regions of person boxes then cover.
    ``nms_iou``: overlap above which two face boxes are taken as the same face.
    ``top_k``: candidates kept before non-maximum suppression.
    """

    score_threshold: float = 0.35
    input_size: int | None = 640
    nms_iou: float = 0.3
    top_k: int = 5000

    def __post_init__(self) -> None:
        if not 0.0 < self.score_threshold < 1.0:
            raise ConfigError(
                f"face score_threshold must be within 0..1 (exclusive), got {self.score_threshold}"
            )
        if self.input_size is not None and not 64 <= self.input_size <= 4096:
            raise ConfigError(f"face input_size must be within 64..4096, got {self.input_size}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ConfigError(f"face nms_iou must be within 0..1, got {self.nms_iou}")
        if self.top_k < 1:
            raise ConfigError(f"face top_k must be at least 1, got {self.top_k}")

    @classmethod
    def from_config(cls, dynamic: DynamicConfig) -> FaceSettings:
        """Settings from the config: the score threshold from ``dynamic.sensitivity``,
        as for persons (see :func:`veil.detect.persons.sensitivity_to_threshold`)."""
        return cls(score_threshold=sensitivity_to_threshold(dynamic.sensitivity))


class FaceDetector:
    """Finds faces with YuNet. One instance per stream (it is not thread-safe).

    ``detect`` raises :class:`DetectorError` when OpenCV fails on a frame, so the pipeline
    masks that frame whole; a file that is not a valid model raises :class:`ModelError`.
    """

    MODEL = YUNET.name

    def __init__(self, model_path: Path, settings: FaceSettings | None = None) -> None:
        self._settings = settings or FaceSettings()
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(
                f"face model {path} does not exist", hint=f"run `veil models fetch {self.MODEL}`"
            )
        s = self._settings
        self._size = (320, 320)
        # OpenCV 5 warns on every load that its new graph engine ignores the target setting
        # FaceDetectorYN makes; only that load runs with warnings off.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(min(level, cv2.utils.logging.LOG_LEVEL_ERROR))
        try:
            self._yunet: Any = cv2.FaceDetectorYN.create(
                str(path), "", self._size, s.score_threshold, s.nms_iou, s.top_k
            )
        except cv2.error as error:
            raise ModelError(
                f"cannot load face model {path}: {error}".strip(),
                hint=f"delete it and run `veil models fetch {self.MODEL}`",
            ) from error
        finally:
            cv2.utils.logging.setLogLevel(level)
        if self._yunet is None:
            raise ModelError(
                f"cannot load face model {path}",
                hint=f"delete it and run `veil models fetch {self.MODEL}`",
            )

    @classmethod
    def load(
        cls,
        settings: FaceSettings | None = None,
        model_dir: str | os.PathLike[str] | None = None,
    ) -> FaceDetector:
        """A detector on the verified model from the registry (see :mod:`veil.models`)."""
        return cls(resolve_model(cls.MODEL, model_dir), settings)

    @classmethod
    def from_config(cls, dynamic: DynamicConfig) -> FaceDetector:
        """A detector with settings and model folder from the ``dynamic`` config section."""
        return cls.load(FaceSettings.from_config(dynamic), dynamic.model_dir)

    @property
    def settings(self) -> FaceSettings:
        return self._settings

    def reset(self) -> None:
        """Nothing to forget: each frame is detected on its own."""

    def detect(self, frame: Frame) -> Detections:
        """Faces in ``frame`` as pixel boxes clipped to the frame."""
        return self.detect_image(frame.image)

    def detect_image(self, image: Image) -> Detections:
        """Faces in a BGR uint8 image (what :meth:`detect` runs on a frame's picture)."""
        return detect_guarded(image, "face", self._detect)

    def _detect(self, image: Image) -> Detections:
        height, width = image.shape[:2]
        limit = self._settings.input_size
        scale = 1.0 if limit is None else min(1.0, limit / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        try:
            small = (
                image
                if size == (width, height)
                else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            )
            if size != self._size:
                self._yunet.setInputSize(size)
                self._size = size
            _, faces = self._yunet.detect(small)
        except cv2.error as error:
            raise DetectorError(
                f"face detector failed on a {width}x{height} image: {error}".strip(),
                hint="the frame is masked whole; check the model with `veil models verify`",
            ) from error
        if faces is None or len(faces) == 0:
            return Detections.empty()
        rows = np.asarray(faces, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] < 15:
            raise DetectorError(
                f"face detector returned shape {rows.shape}, expected (N, 15)",
                hint="the model is not the expected YuNet export: `veil models verify`",
            )
        xywh = rows[:, 0:4] / np.float32(scale)
        xyxy = np.concatenate((xywh[:, 0:2], xywh[:, 0:2] + xywh[:, 2:4]), axis=1)
        np.clip(xyxy[:, 0::2], 0, width, out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0, height, out=xyxy[:, 1::2])
        valid = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        return Detections.from_boxes(
            xyxy[valid], DetectionSource.FACE, confidence=np.clip(rows[valid, 14], 0.0, 1.0)
        )


def head_regions(
    persons: Detections, height_share: float = 0.25, width_share: float = 1.0
) -> Detections:
    """The head region of each person box: its top ``height_share`` and the middle
    ``width_share`` of its width, as FACE detections with the person's confidence.

    The ``faces`` method masks these too, for people too small or turned away for YuNet. The
    defaults are generous (the top quarter, full width) so a bent or turned head stays covered.
    """
    if not 0.0 < height_share <= 1.0 or not 0.0 < width_share <= 1.0:
        raise ConfigError(
            f"head region shares must be within 0..1, got {height_share} and {width_share}"
        )
    if len(persons) == 0:
        return Detections.empty()
    box: NDArray[np.float32] = persons.xyxy
    w = box[:, 2] - box[:, 0]
    h = box[:, 3] - box[:, 1]
    side = (1.0 - width_share) / 2.0
    heads = np.stack(
        (box[:, 0] + side * w, box[:, 1], box[:, 2] - side * w, box[:, 1] + height_share * h),
        axis=1,
    ).astype(np.float32)
    return Detections.from_boxes(heads, DetectionSource.FACE, confidence=persons.confidence)
