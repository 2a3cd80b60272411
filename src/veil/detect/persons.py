"""Person detector: YOLOX-nano (ONNX) on onnxruntime, CPU, COCO class 0.

The published model has a fixed 416x416 input. YOLOX is fully convolutional (its reshapes use
-1 and its upsampling uses scales), so Veil rewrites the graph's input height and width, and
the output's anchor count, as symbolic dimensions when loading it; one session then runs any
size that is a multiple of 32. The rewrite is done in memory on the protobuf wire format (see
:func:`make_yolox_dims_dynamic`), so no ``onnx`` package is needed.

Pre- and post-processing follow YOLOX's own demo: the picture is scaled so that its longest
side is ``input_size``, placed top-left on a grey (114) canvas whose sides are rounded up to a
multiple of 32, fed as BGR 0..255 float without normalisation; the raw output is decoded on the
grids of strides 8, 16 and 32 (centre = (offset + cell) * stride, size = exp(log-size) *
stride), scored objectness x person-class probability, and reduced by non-maximum suppression.

Example::

    from veil.detect.persons import PersonDetector, PersonSettings

    detector = PersonDetector.load(PersonSettings(input_size=640, tiles=1))
    detections = detector.detect(frame)  # Detections, source PERSON, class 0
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from veil.config.schema import DynamicConfig
from veil.core.detections import Detections, DetectionSource
from veil.core.errors import ConfigError, DetectorError, ModelError
from veil.core.frame import Frame, Image
from veil.detect.base import detect_guarded
from veil.models import YOLOX_NANO, resolve_model

PERSON_CLASS = 0
STRIDES = (8, 16, 32)
PAD_VALUE = 114
MIN_THRESHOLD = 0.05
MAX_THRESHOLD = 0.95
TILE_OVERLAP = 0.25
"""Share of a tile that overlaps its neighbour: people up to this share of a tile's width
are whole in at least one tile."""
_CUT_CONTAINMENT = 0.7
_MAX_CANDIDATES = 1000


AUTO_INPUT_SHARE = 0.85
AUTO_INPUT_MIN = 800
AUTO_INPUT_MAX = 1280


def auto_input_size(width: int, height: int) -> int:
    """The default detector input for a picture: 0.85 of its longest side, rounded up to a
    multiple of 32, within 800..1280.

    Why it follows the picture: YOLOX-nano misses people under about 60 px once the picture
    is shrunk, so a fixed 800 leaked people 40-80 px tall in a 720p crowd for 77 frames in
    a row, while a fixed larger input enlarges small pictures (TUD's 640x480) past what the
    model was trained on and loses recall there. Measured with bench/bench_quality.py.
    """
    side = math.ceil(AUTO_INPUT_SHARE * max(width, height) / 32) * 32
    return int(min(AUTO_INPUT_MAX, max(AUTO_INPUT_MIN, side)))


def sensitivity_to_threshold(sensitivity: float) -> float:
    """Detector score threshold for a sensitivity 0..100: 0.7 * (100 - s) / 100, clipped to
    0.05..0.95. Higher sensitivity, lower threshold: more people found, more false alarms.

    The default sensitivity 50 gives 0.35, lower than a detector's usual 0.5: for privacy
    a person half-hidden or far away must still be masked, and a false alarm only masks
    a little more (measured on TUD-Stadtmitte and walking.mp4, see README)."""
    return float(min(MAX_THRESHOLD, max(MIN_THRESHOLD, 0.7 * (100.0 - sensitivity) / 100.0)))


@dataclass(frozen=True, slots=True)
class PersonSettings:
    """How the person detector runs.

    ``input_size``: the longest side the picture (and each tile) is scaled to, a multiple of
    32. Larger finds smaller people and costs time roughly with its square. None (the
    default) follows the picture: see :func:`auto_input_size`.
    ``tiles``: when above 1, the picture is also cut into ``tiles x tiles`` overlapping tiles,
    each run at ``input_size``, to find small, distant people; each tile is one more run.
    ``score_threshold``: objectness x person probability needed; lower masks more, including
    things that are not people.
    ``nms_iou``: overlap above which two boxes are taken as the same person.
    ``threads``: onnxruntime intra-op threads.
    """

    input_size: int | None = None
    tiles: int = 1
    score_threshold: float = 0.35
    nms_iou: float = 0.45
    threads: int = 2

    def __post_init__(self) -> None:
        if self.input_size is not None and (
            not 160 <= self.input_size <= 1920 or self.input_size % 32
        ):
            raise ConfigError(
                f"person input_size must be a multiple of 32 within 160..1920, "
                f"got {self.input_size}"
            )
        if not 1 <= self.tiles <= 4:
            raise ConfigError(f"person tiles must be within 1..4, got {self.tiles}")
        if not 0.0 < self.score_threshold < 1.0:
            raise ConfigError(
                f"person score_threshold must be within 0..1 (exclusive), "
                f"got {self.score_threshold}"
            )
        if not 0.0 < self.nms_iou <= 1.0:
            raise ConfigError(f"person nms_iou must be within 0..1, got {self.nms_iou}")
        if self.threads < 1:
            raise ConfigError(f"person threads must be at least 1, got {self.threads}")

    @classmethod
    def from_config(cls, dynamic: DynamicConfig, *, threads: int = 2) -> PersonSettings:
        """Settings from the config: input size and tiles from ``dynamic.person``, the score
        threshold from ``dynamic.sensitivity`` (see :func:`sensitivity_to_threshold`)."""
        return cls(
            input_size=(
                dynamic.person.input_size if isinstance(dynamic.person.input_size, int) else None
            ),
            tiles=dynamic.person.tiles,
            score_threshold=sensitivity_to_threshold(dynamic.sensitivity),
            threads=threads,
        )


# --------------------------------------------------------------------------- ONNX rewrite


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_Field = tuple[int, int, bytes]
"""(field number, wire type, payload): payload is the value's bytes (LEN: without length)."""


def _parse(buf: bytes) -> list[_Field]:
    fields: list[_Field] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            start = pos
            _, pos = _read_varint(buf, pos)
            fields.append((number, wire, buf[start:pos]))
        elif wire == 1:
            fields.append((number, wire, buf[pos : pos + 8]))
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated field")
            fields.append((number, wire, buf[pos : pos + length]))
            pos += length
        elif wire == 5:
            fields.append((number, wire, buf[pos : pos + 4]))
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
    return fields


def _serialize(fields: list[_Field]) -> bytes:
    parts: list[bytes] = []
    for number, wire, payload in fields:
        parts.append(_varint(number << 3 | wire))
        if wire == 2:
            parts.append(_varint(len(payload)))
        parts.append(payload)
    return b"".join(parts)


def _replace(fields: list[_Field], number: int, edit: Any) -> list[_Field]:
    return [(n, w, edit(p) if n == number and w == 2 else p) for n, w, p in fields]


def _symbolic_dims(value_info: bytes, params: dict[int, str]) -> bytes:
    """ValueInfoProto with the tensor dims at the given indices made symbolic (dim_param)."""

    def shape(buf: bytes) -> bytes:  # TensorShapeProto: dim = 1
        out: list[_Field] = []
        index = 0
        for number, wire, payload in _parse(buf):
            if number == 1 and wire == 2:
                if index in params:  # Dimension: dim_value = 1, dim_param = 2
                    payload = _serialize([(2, 2, params[index].encode())])
                index += 1
            out.append((number, wire, payload))
        return _serialize(out)

    def tensor(buf: bytes) -> bytes:  # TypeProto.Tensor: shape = 2
        return _serialize(_replace(_parse(buf), 2, shape))

    def type_proto(buf: bytes) -> bytes:  # TypeProto: tensor_type = 1
        return _serialize(_replace(_parse(buf), 1, tensor))

    return _serialize(_replace(_parse(value_info), 2, type_proto))  # ValueInfoProto: type = 2


def make_yolox_dims_dynamic(model: bytes) -> bytes:
    """The YOLOX ONNX model with a symbolic input height and width and anchor count.

    Edits ModelProto.graph (7): each input (11) gets dims 2, 3 named ``height``, ``width``;
    each output (12) gets dim 1 named ``anchors``; the intermediate shapes recorded for the
    416 input (value_info, 13) are dropped so onnxruntime infers them for the size it runs.
    """

    def graph(buf: bytes) -> bytes:
        out: list[_Field] = []
        for number, wire, payload in _parse(buf):
            if number == 13:
                continue
            if number == 11 and wire == 2:
                payload = _symbolic_dims(payload, {2: "height", 3: "width"})
            elif number == 12 and wire == 2:
                payload = _symbolic_dims(payload, {1: "anchors"})
            out.append((number, wire, payload))
        return _serialize(out)

    return _serialize(_replace(_parse(model), 7, graph))


# --------------------------------------------------------------------------- detector


class _Session(Protocol):
    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class _Grid:
    cells: NDArray[np.float32]  # (A, 2) x, y cell index
    strides: NDArray[np.float32]  # (A,)


def _make_grid(height: int, width: int) -> _Grid:
    cells: list[NDArray[np.float32]] = []
    strides: list[NDArray[np.float32]] = []
    for stride in STRIDES:
        hs, ws = height // stride, width // stride
        ys, xs = np.meshgrid(np.arange(hs), np.arange(ws), indexing="ij")
        cells.append(np.stack((xs, ys), axis=-1).reshape(-1, 2).astype(np.float32))
        strides.append(np.full((hs * ws,), stride, np.float32))
    return _Grid(np.concatenate(cells), np.concatenate(strides))


def _tile_spans(length: int, tiles: int) -> list[tuple[int, int]]:
    """``tiles`` overlapping (start, end) spans covering 0..length."""
    size = math.ceil(length / (tiles - (tiles - 1) * TILE_OVERLAP))
    size = min(size, length)
    spans: list[tuple[int, int]] = []
    for i in range(tiles):
        start = round(i * (length - size) / (tiles - 1))
        spans.append((start, start + size))
    return spans


def nms(
    xyxy: NDArray[np.float32],
    scores: NDArray[np.float32],
    iou: float,
    rank: NDArray[np.bool_] | None = None,
) -> NDArray[np.intp]:
    """Indices kept by greedy non-maximum suppression, best score first.

    ``rank``: boxes where it is True go after all others whatever their score, so they never
    suppress a box without it (a person cut by a tile edge never replaces the whole person).
    """
    order = np.argsort(-scores, kind="stable")
    if rank is not None:
        order = order[np.argsort(rank[order], kind="stable")]
    x0, y0, x1, y1 = xyxy[:, 0], xyxy[:, 1], xyxy[:, 2], xyxy[:, 3]
    areas = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0)
        ih = np.maximum(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0)
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.intp)


class PersonDetector:
    """Finds people with YOLOX-nano. One instance per stream (it is not thread-safe).

    ``detect`` raises :class:`DetectorError` when onnxruntime fails on a frame, so the
    pipeline masks that frame whole; loading a file that is not a valid model raises
    :class:`ModelError`.
    """

    MODEL = YOLOX_NANO.name

    def __init__(self, model_path: Path, settings: PersonSettings | None = None) -> None:
        self._settings = settings or PersonSettings()
        try:
            data = Path(model_path).read_bytes()
        except OSError as error:
            raise ModelError(
                f"cannot read person model {model_path}: {error}",
                hint=f"run `veil models fetch {self.MODEL}`",
            ) from error
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._settings.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # The memory-pattern planner keeps a buffer plan per input shape; off, peak memory
        # at 1080p drops by about 40 MB with no measurable loss of speed (1920x1080, input
        # 1280: 203 -> 163 MB peak, 50 -> 46 ms a frame).
        options.enable_mem_pattern = False
        # Idle threads sleep instead of spinning: the pipeline has other threads (decoding,
        # tracking, encoding) that need the cores, and spinning was slower on a busy machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                make_yolox_dims_dynamic(data), options, providers=["CPUExecutionProvider"]
            )
            inputs = session.get_inputs()
            outputs = session.get_outputs()
        except Exception as error:
            raise ModelError(
                f"cannot load person model {model_path}: {error}",
                hint=f"delete it and run `veil models fetch {self.MODEL}`",
            ) from error
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(
                f"{model_path} is not a YOLOX detector: expected one 4-D input and one output, "
                f"got inputs {[i.shape for i in inputs]} and outputs {[o.shape for o in outputs]}",
                hint=f"run `veil models fetch {self.MODEL}`",
            )
        self._session: _Session = session
        self._input_name: str = inputs[0].name
        self._grids: dict[tuple[int, int], _Grid] = {}

    @classmethod
    def load(
        cls,
        settings: PersonSettings | None = None,
        model_dir: str | os.PathLike[str] | None = None,
    ) -> PersonDetector:
        """A detector on the verified model from the registry (see :mod:`veil.models`)."""
        return cls(resolve_model(cls.MODEL, model_dir), settings)

    @classmethod
    def from_config(cls, dynamic: DynamicConfig) -> PersonDetector:
        """A detector with settings and model folder from the ``dynamic`` config section."""
        return cls.load(PersonSettings.from_config(dynamic), dynamic.model_dir)

    @property
    def settings(self) -> PersonSettings:
        return self._settings

    def reset(self) -> None:
        """Nothing to forget: each frame is detected on its own."""

    def detect(self, frame: Frame) -> Detections:
        """People in ``frame`` as pixel boxes clipped to the frame."""
        return self.detect_image(frame.image)

    def detect_image(self, image: Image) -> Detections:
        """People in a BGR uint8 image (what :meth:`detect` runs on a frame's picture)."""
        return detect_guarded(image, "person", self._detect)

    def _detect(self, image: Image) -> Detections:
        height, width = image.shape[:2]
        s = self._settings
        regions = [(0, 0, width, height)]
        if s.tiles > 1:
            xs = _tile_spans(width, s.tiles)
            ys = _tile_spans(height, s.tiles)
            regions += [(x0, y0, x1, y1) for y0, y1 in ys for x0, x1 in xs]
        boxes: list[NDArray[np.float32]] = []
        scores: list[NDArray[np.float32]] = []
        cuts: list[NDArray[np.bool_]] = []
        size = s.input_size or auto_input_size(width, height)
        for x0, y0, x1, y1 in regions:
            b, sc = self._run(image[y0:y1, x0:x1], size)
            b += np.array([x0, y0, x0, y0], np.float32)
            boxes.append(b)
            scores.append(sc)
            # A box touching an inner tile edge may be a person cut in half by the tile.
            edge = 2.0
            cut = np.zeros(len(b), np.bool_)
            if x0 > 0:
                cut |= b[:, 0] <= x0 + edge
            if y0 > 0:
                cut |= b[:, 1] <= y0 + edge
            if x1 < width:
                cut |= b[:, 2] >= x1 - edge
            if y1 < height:
                cut |= b[:, 3] >= y1 - edge
            cuts.append(cut)
        xyxy = np.concatenate(boxes)
        conf = np.concatenate(scores)
        cut_all = np.concatenate(cuts)
        np.clip(xyxy[:, 0::2], 0, width, out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0, height, out=xyxy[:, 1::2])
        valid = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        xyxy, conf, cut_all = xyxy[valid], conf[valid], cut_all[valid]
        if len(xyxy) == 0:
            return Detections.empty()
        keep = nms(xyxy, conf, s.nms_iou, rank=cut_all)
        xyxy, conf, cut_all = xyxy[keep], conf[keep], cut_all[keep]
        if cut_all.any():
            keep_mask = self._drop_contained_cuts(xyxy, cut_all)
            xyxy, conf = xyxy[keep_mask], conf[keep_mask]
        return Detections.from_boxes(
            xyxy, DetectionSource.PERSON, confidence=conf, class_id=PERSON_CLASS
        )

    @staticmethod
    def _drop_contained_cuts(
        xyxy: NDArray[np.float32], cut: NDArray[np.bool_]
    ) -> NDArray[np.bool_]:
        """Drop tile boxes cut by a tile edge that lie mostly inside another box (the same
        person seen whole); a cut box with no such cover is kept, never lost."""
        keep = np.ones(len(xyxy), np.bool_)
        areas = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        for i in np.flatnonzero(cut):
            iw = np.clip(
                np.minimum(xyxy[i, 2], xyxy[:, 2]) - np.maximum(xyxy[i, 0], xyxy[:, 0]), 0, None
            )
            ih = np.clip(
                np.minimum(xyxy[i, 3], xyxy[:, 3]) - np.maximum(xyxy[i, 1], xyxy[:, 1]), 0, None
            )
            inside = iw * ih / max(float(areas[i]), 1e-9)
            inside[i] = 0.0
            inside[~keep] = 0.0
            if float(inside.max(initial=0.0)) >= _CUT_CONTAINMENT:
                keep[i] = False
        return keep

    def _run(self, image: Image, size: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Boxes (in ``image`` pixels) and scores of people in one image or tile, with the
        image's longest side scaled to ``size``."""
        height, width = image.shape[:2]
        ratio = size / max(height, width)
        new_w = max(1, int(width * ratio))
        new_h = max(1, int(height * ratio))
        pad_w = math.ceil(new_w / 32) * 32
        pad_h = math.ceil(new_h / 32) * 32
        blob = np.full((1, 3, pad_h, pad_w), PAD_VALUE, np.float32)
        try:
            resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
            blob[0, :, :new_h, :new_w] = resized.transpose(2, 0, 1)
            raw = self._session.run(None, {self._input_name: blob})[0]
        except Exception as error:
            raise DetectorError(
                f"person detector failed on a {width}x{height} image: {error}",
                hint="the frame is masked whole; check the model with `veil models verify`",
            ) from error
        grid = self._grids.get((pad_h, pad_w))
        if grid is None:
            grid = self._grids[(pad_h, pad_w)] = _make_grid(pad_h, pad_w)
        out = np.asarray(raw)
        if out.ndim != 3 or out.shape[0] != 1 or out.shape[1] != len(grid.strides):
            raise DetectorError(
                f"person detector returned shape {out.shape}, expected "
                f"(1, {len(grid.strides)}, 85) for a {pad_w}x{pad_h} input",
                hint="the model is not the expected YOLOX export: `veil models verify`",
            )
        pred = out[0]
        score = pred[:, 4] * pred[:, 5 + PERSON_CLASS]
        idx = np.flatnonzero(score >= self._settings.score_threshold)
        if len(idx) > _MAX_CANDIDATES:
            idx = idx[np.argsort(-score[idx])[:_MAX_CANDIDATES]]
        sel = pred[idx]
        stride = grid.strides[idx, None]
        centre = (sel[:, 0:2] + grid.cells[idx]) * stride
        half = np.exp(np.minimum(sel[:, 2:4], 10.0)) * stride / 2.0
        boxes = np.concatenate((centre - half, centre + half), axis=1) / ratio
        return boxes.astype(np.float32), score[idx].astype(np.float32)
