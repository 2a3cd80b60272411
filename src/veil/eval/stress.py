"""Harder variants of a real sequence, with exact ground truth.

A sequence with ground truth (MOTChallenge folder: ``img1/``, ``gt/gt.txt``, ``seqinfo.ini``)
is turned into sequences that are harder for masking in the ways real footage is, while the
ground truth stays exact, because every picture is made from the original by a known
geometric transform and the boxes are transformed the same way:

- :func:`moving_camera`: a window that pans and zooms smoothly over the scene (a PTZ camera or
  a handheld one): a background model cannot help, and a tracker's motion model sees the
  camera's motion on top of each person's;
- :func:`downscaled`: the whole picture scaled down (people of 40 to 80 pixels at 1/3 on
  TUD-Stadtmitte), fewer pixels per person;
- :func:`distant_crowd`: many scaled-down copies of the scene side by side, each at another
  moment and every other one mirrored: small, distant people in a large picture, which the
  person detector sees scaled down again (a 720p or 1080p view over a plaza);
- :func:`edge_cut`: a fixed crop that cuts people at the left, right and top edges (people
  walking in and out of view, heads cut by the top edge).

Variants compose: ``moving_camera(distant_crowd(source))`` is a camera that moves over small,
distant people (``moving-distant`` in :func:`standard_variants`).

Detector dropouts are not simulated: the real detector runs on the derived pictures.

Each variant is a :class:`StressSequence`: its :meth:`~StressSequence.frames` are core
:class:`~veil.core.frame.Frame` objects and its ``gt`` a
:class:`~veil.eval.groundtruth.GroundTruth`, ready for
:func:`veil.eval.runner.evaluate_frames`. A box that the transform leaves less than
:data:`MIN_VISIBLE` inside the picture becomes an *ignored* box (as MOTChallenge 2017 ignores
people under 25 % visible): masking it is not over-masking, missing it is not a leak. Boxes
are otherwise not clipped, so the head region (top sixth of the whole box) of a person cut by
the top edge lies partly or wholly outside the picture, as it should.

Example::

    source = load_sequence(Path("../shared/data/TUD-Stadtmitte"))
    for seq in standard_variants(source):
        report = evaluate_frames(seq.frames(), seq.gt, build_planners(config, seq.fps))
        print(seq.name, report.recall, report.longest_leak_run)
"""

from __future__ import annotations

import configparser
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import av.error
import cv2
import numpy as np
from numpy.typing import NDArray

from veil.core.errors import UsageError
from veil.core.frame import Frame, Image, check_image
from veil.eval.groundtruth import GroundTruth, load_ground_truth

MIN_VISIBLE = 0.25
"""A transformed box with less than this share of its area in the picture is ignored."""

DEFAULT_FPS = 25.0

View = tuple[float, float, float]
"""``(scale, left, top)``: output pixel = ``scale * (source pixel - (left, top))``, in
continuous pixel coordinates (pixel ``i`` spans ``[i, i + 1]``)."""


# --------------------------------------------------------------------------- source


class Scene(Protocol):
    """What a variant is made from: a sequence on disk, or another variant."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def fps(self) -> float: ...
    @property
    def gt(self) -> GroundTruth: ...
    def __len__(self) -> int: ...
    def image(self, index: int) -> Image: ...


@dataclass(frozen=True, slots=True)
class SourceSequence:
    """An image sequence on disk with its ground truth."""

    name: str
    paths: tuple[Path, ...]
    gt: GroundTruth
    width: int
    height: int
    fps: float

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> Image:
        """The 0-based ``index``-th picture (BGR), decoded as ``veil eval`` decodes it.

        Decoded by FFmpeg like :func:`veil.media.source.open_source` does (not OpenCV's
        JPEG decoder, whose pictures differ by about one grey level on average: enough to
        change a few detections, and so the figures, on TUD-Stadtmitte)."""
        from veil.media.source import to_bgr  # the media stack (PyAV) loads only here

        path = self.paths[index]
        try:
            with av.open(str(path)) as container:
                picture = to_bgr(next(container.decode(video=0)))
        except (av.error.FFmpegError, StopIteration) as error:
            raise UsageError(f"cannot read {path}: {error}") from error
        return check_image(np.ascontiguousarray(picture, dtype=np.uint8))


def load_sequence(folder: Path) -> SourceSequence:
    """A MOTChallenge sequence folder: ``img1/*.jpg`` (or png), ``gt/gt.txt``, and
    ``seqinfo.ini`` for the frame rate (25 without it)."""
    folder = Path(folder)
    paths = tuple(sorted([*folder.glob("img1/*.jpg"), *folder.glob("img1/*.png")]))
    if not paths:
        raise UsageError(f"{folder}: no pictures in img1/")
    gt = load_ground_truth(folder / "gt" / "gt.txt")
    fps = DEFAULT_FPS
    info = folder / "seqinfo.ini"
    if info.is_file():
        parser = configparser.ConfigParser()
        parser.read(info, encoding="utf-8")
        fps = float(parser.get("Sequence", "frameRate", fallback=str(DEFAULT_FPS)))
    sequence = SourceSequence(folder.name, paths, gt, 0, 0, fps)
    height, width = sequence.image(0).shape[:2]
    return replace(sequence, width=int(width), height=int(height))


# --------------------------------------------------------------------------- variant


@dataclass(frozen=True, slots=True)
class StressSequence:
    """A derived sequence: pictures made on demand, and its exact ground truth."""

    name: str
    description: str
    width: int
    height: int
    fps: float
    count: int
    gt: GroundTruth
    render: Callable[[int], Image] = field(repr=False)
    """The picture of 0-based frame ``index``."""

    def __len__(self) -> int:
        return self.count

    def image(self, index: int) -> Image:
        """The picture of 0-based frame ``index`` (a variant can be made of a variant)."""
        return self.render(index)

    def frames(self) -> Iterator[Frame]:
        """The frames, in order (indices from 0; ground-truth frame = index + 1)."""
        time_base = Fraction(1, round(self.fps)) if self.fps >= 1 else Fraction(1, 25)
        for index in range(self.count):
            yield Frame(self.render(index), index, time_base, index)

    def head(self, count: int) -> StressSequence:
        """The first ``count`` frames only (for quick tests)."""
        if count < 1:
            raise UsageError(f"count must be at least 1, got {count}")
        count = min(count, self.count)
        return StressSequence(
            self.name,
            self.description,
            self.width,
            self.height,
            self.fps,
            count,
            self.gt.up_to(count),
            self.render,
        )


def identity(source: SourceSequence) -> StressSequence:
    """The sequence as it is (the baseline the variants are compared with)."""
    return StressSequence(
        source.name,
        "the original sequence",
        source.width,
        source.height,
        source.fps,
        len(source),
        source.gt,
        source.image,
    )


@dataclass(frozen=True, slots=True)
class Copy:
    """One view of the source scene inside an output frame."""

    source_index: int
    """0-based source frame shown."""
    view: View
    """Source pixels to output pixels (absolute output coordinates)."""
    rect: tuple[int, int, int, int]
    """The output rectangle (x0, y0, x1, y1) this copy fills."""
    mirrored: bool = False
    """Mirrored left-right before the view is applied."""


Layout = Callable[[int], list[Copy]]
"""The copies that make 0-based output frame ``index``."""


def _warp(image: Image, view: View, rect: tuple[int, int, int, int]) -> Image:
    """The part ``rect`` of the output picture that ``image`` seen through ``view`` makes.

    Exact geometry (one affine warp, bilinear); when shrinking, the picture is first blurred
    as much as the shrinking needs, so fine detail does not alias."""
    scale, left, top = view
    x0, y0, x1, y1 = rect
    if scale < 1.0:
        sigma = 0.5 * math.sqrt(1.0 / scale**2 - 1.0)
        image = check_image(np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), dtype=np.uint8))
    # Continuous coordinates c = index + 0.5: u + 0.5 + x0 = s * (x + 0.5 - left).
    matrix = np.array(
        [
            [scale, 0.0, scale * (0.5 - left) - 0.5 - x0],
            [0.0, scale, scale * (0.5 - top) - 0.5 - y0],
        ],
        dtype=np.float64,
    )
    out = cv2.warpAffine(
        image, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    return check_image(np.asarray(out, dtype=np.uint8))


def derive(
    source: Scene,
    name: str,
    description: str,
    size: tuple[int, int],
    count: int,
    layout: Layout,
    *,
    min_visible: float = MIN_VISIBLE,
    render: Callable[[int], Image] | None = None,
) -> StressSequence:
    """A sequence of ``count`` frames of ``size`` (width, height), each made of the copies
    ``layout`` gives, with its ground truth (see the module docstring). ``render`` replaces
    the generic drawing of the copies (a faster one that draws the same picture)."""
    width, height = size
    if width < 16 or height < 16:
        raise UsageError(f"derived pictures must be at least 16 x 16, got {width} x {height}")
    copies_per_frame = [layout(i) for i in range(count)]
    gt = _derived_gt(source, size, copies_per_frame, min_visible)

    def draw(index: int) -> Image:
        out = np.zeros((height, width, 3), np.uint8)
        originals: dict[int, Image] = {}
        for c in copies_per_frame[index]:
            if c.source_index not in originals:
                originals[c.source_index] = source.image(c.source_index)
            image = originals[c.source_index]
            if c.mirrored:
                image = check_image(np.asarray(cv2.flip(image, 1), dtype=np.uint8))
            x0, y0, x1, y1 = c.rect
            out[y0:y1, x0:x1] = _warp(image, c.view, c.rect)
        return check_image(out)

    return StressSequence(name, description, width, height, source.fps, count, gt, render or draw)


def _derived_gt(
    source: Scene,
    size: tuple[int, int],
    copies_per_frame: list[list[Copy]],
    min_visible: float,
) -> GroundTruth:
    width, height = size
    gt = source.gt
    id_stride = int(gt.person_id.max(initial=0)) + 1
    counted: list[tuple[int, int, NDArray[np.float64]]] = []
    ignored: list[tuple[int, NDArray[np.float64]]] = []
    for index, copies in enumerate(copies_per_frame):
        number = index + 1
        for k, c in enumerate(copies):
            src_number = c.source_index + 1
            rows = gt.rows(src_number)
            ig_rows = gt.ignored_rows(src_number)
            tiled = c.rect != (0, 0, width, height)
            boxes, visible = _place(gt.xywh[rows], c, source.width, tiled)
            for pid, box, share in zip(gt.person_id[rows].tolist(), boxes, visible, strict=True):
                if share >= min_visible:
                    counted.append((number, int(pid) + k * id_stride, box))
                elif share > 0.0:
                    ignored.append((number, box))
            ig_boxes, ig_visible = _place(gt.ignored_xywh[ig_rows], c, source.width, tiled)
            ignored += [(number, b) for b, v in zip(ig_boxes, ig_visible, strict=True) if v > 0]
    return GroundTruth(
        frame=np.array([f for f, _, _ in counted], np.int64),
        person_id=np.array([p for _, p, _ in counted], np.int64),
        xywh=np.array([b for _, _, b in counted], np.float64).reshape(-1, 4),
        ignored_frame=np.array([f for f, _ in ignored], np.int64),
        ignored_xywh=np.array([b for _, b in ignored], np.float64).reshape(-1, 4),
        format=gt.format,
        source=f"{gt.source} (derived)",
        dropped=dict(gt.dropped),
    )


def _place(
    xywh: NDArray[np.float64], copy: Copy, source_width: int, clip: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Boxes of one copy in output pixels, and the share of each inside the copy's
    rectangle. ``clip``: clip the boxes to the rectangle (a tile among others)."""
    boxes = np.asarray(xywh, np.float64).reshape(-1, 4).copy()
    if copy.mirrored:
        boxes[:, 0] = source_width - boxes[:, 0] - boxes[:, 2]
    scale, left, top = copy.view
    boxes[:, 0] = scale * (boxes[:, 0] - left)
    boxes[:, 1] = scale * (boxes[:, 1] - top)
    boxes[:, 2:] *= scale
    x0, y0, x1, y1 = (float(v) for v in copy.rect)
    ix0 = np.clip(boxes[:, 0], x0, x1)
    iy0 = np.clip(boxes[:, 1], y0, y1)
    ix1 = np.clip(boxes[:, 0] + boxes[:, 2], x0, x1)
    iy1 = np.clip(boxes[:, 1] + boxes[:, 3], y0, y1)
    inside = (ix1 - ix0) * (iy1 - iy0)
    visible = inside / np.maximum(boxes[:, 2] * boxes[:, 3], 1e-9)
    if clip:
        boxes = np.stack([ix0, iy0, ix1 - ix0, iy1 - iy0], axis=1)
    return boxes, visible


# --------------------------------------------------------------------------- variants


def _smooth(t: float) -> float:
    """0 to 1 and back over t = 0..1, with zero speed at the turns (a PTZ camera's sweep)."""
    return 0.5 - 0.5 * math.cos(2.0 * math.pi * t)


def moving_camera(
    source: Scene,
    *,
    name: str = "moving-camera",
    out_scale: float = 0.75,
    zoom: tuple[float, float] = (0.6, 0.9),
    pan_period_s: float = 3.0,
    tilt_period_s: float = 5.0,
    zoom_period_s: float = 4.0,
) -> StressSequence:
    """A camera that pans, tilts and zooms smoothly over the scene.

    The output is ``out_scale`` of the source's size. The window it shows is ``zoom`` (from
    .. to) of the source's width, growing and shrinking over ``zoom_period_s``, and sweeps
    from side to side over ``pan_period_s`` and up and down over ``tilt_period_s`` (each a
    full there-and-back, with smooth turns). With the defaults on 640x480 at 25 fps, the
    picture moves by up to about 10 pixels a frame and people change size by up to 50 %.
    ``source`` may be another variant (a moving camera over a distant crowd).
    """
    out_w = max(16, round(source.width * out_scale))
    out_h = max(16, round(source.height * out_scale))
    fps = source.fps

    def layout(index: int) -> list[Copy]:
        t = index / fps
        share = zoom[0] + (zoom[1] - zoom[0]) * _smooth(t / zoom_period_s)
        window_w = share * source.width
        scale = out_w / window_w
        window_h = out_h / scale
        left = (source.width - window_w) * _smooth(t / pan_period_s)
        top = (source.height - window_h) * _smooth(0.25 + t / tilt_period_s)
        return [Copy(index, (scale, left, top), (0, 0, out_w, out_h))]

    return derive(
        source,
        name,
        f"pan {pan_period_s:g} s, tilt {tilt_period_s:g} s, zoom {zoom[0]:.0%}-{zoom[1]:.0%} "
        f"of the width over {zoom_period_s:g} s, {out_w}x{out_h}",
        (out_w, out_h),
        len(source),
        layout,
    )


def downscaled(source: SourceSequence, scale: float) -> StressSequence:
    """The whole picture scaled by ``scale`` (below 1: fewer pixels per person)."""
    if not 0.05 <= scale <= 1.0:
        raise UsageError(f"scale must be within 0.05..1, got {scale}")
    out_w = max(16, round(source.width * scale))
    out_h = max(16, round(source.height * scale))
    exact = out_w / source.width

    def layout(index: int) -> list[Copy]:
        return [Copy(index, (exact, 0.0, 0.0), (0, 0, out_w, out_h))]

    return derive(
        source,
        f"small-{round(100 * scale)}%",
        f"downscaled to {scale:.0%}: {out_w}x{out_h}",
        (out_w, out_h),
        len(source),
        layout,
    )


def distant_crowd(
    source: SourceSequence, *, scale: float = 1 / 3, columns: int = 6, rows: int = 4
) -> StressSequence:
    """``columns x rows`` copies of the scene scaled by ``scale``, side by side.

    Each copy shows another moment (the copies are spread evenly over the sequence, which
    plays forwards and then backwards, so nobody jumps) and every other copy is mirrored: a
    large picture full of small, distant people. With the defaults on TUD-Stadtmitte: a
    1272x636 picture (about 720p) with people 40 to 80 pixels tall, which the person
    detector at an input of 800 sees at 25 to 50 pixels.
    """
    if not 0.05 <= scale <= 1.0:
        raise UsageError(f"scale must be within 0.05..1, got {scale}")
    if columns < 1 or rows < 1:
        raise UsageError(f"columns and rows must be at least 1, got {columns} x {rows}")
    # A scale that gives whole tile sizes on both axes, so a plain resize is exact.
    unit = math.gcd(source.width, source.height)
    exact = max(1, round(scale * unit)) / unit
    tile_w, tile_h = round(source.width * exact), round(source.height * exact)
    n = len(source)
    period = max(1, 2 * n - 2)
    tiles = columns * rows

    def layout(index: int) -> list[Copy]:
        copies = []
        for k in range(tiles):
            col, row = k % columns, k // columns
            phase = (index + k * period // tiles) % period
            src = phase if phase < n else period - phase
            x0, y0 = col * tile_w, row * tile_h
            view = (exact, -x0 / exact, -y0 / exact)
            copies.append(Copy(src, view, (x0, y0, x0 + tile_w, y0 + tile_h), bool(k % 2)))
        return copies

    shrunk: dict[int, Image] = {}

    def small(index: int, mirrored: bool) -> Image:
        picture = shrunk.get(index)
        if picture is None:
            resized = cv2.resize(
                source.image(index), (tile_w, tile_h), interpolation=cv2.INTER_AREA
            )
            picture = shrunk[index] = check_image(np.asarray(resized, dtype=np.uint8))
        return check_image(np.asarray(cv2.flip(picture, 1), np.uint8)) if mirrored else picture

    def render(index: int) -> Image:
        out = np.zeros((rows * tile_h, columns * tile_w, 3), np.uint8)
        for c in layout(index):
            x0, y0, x1, y1 = c.rect
            out[y0:y1, x0:x1] = small(c.source_index, c.mirrored)
        return check_image(out)

    return derive(
        source,
        "distant-crowd",
        f"{columns}x{rows} copies at {exact:.1%}: {columns * tile_w}x{rows * tile_h}",
        (columns * tile_w, rows * tile_h),
        n,
        layout,
        render=render,
    )


def edge_cut(
    source: SourceSequence,
    window: tuple[float, float, float, float] = (0.19, 0.22, 0.81, 1.0),
) -> StressSequence:
    """A fixed crop, ``window`` = (left, top, right, bottom) as shares of the source.

    People are cut where they walk in and out at the left and right, and at the top. The
    default on TUD-Stadtmitte (tops of the people at 82 to 119 of 480) cuts the top of most
    heads (105 px), and the sides at 122 and 518 px.
    """
    left, top, right, bottom = window
    if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
        raise UsageError(f"window must be (left, top, right, bottom) within 0..1, got {window}")
    x0, y0 = round(left * source.width), round(top * source.height)
    x1, y1 = round(right * source.width), round(bottom * source.height)
    size = (x1 - x0, y1 - y0)

    def layout(index: int) -> list[Copy]:
        return [Copy(index, (1.0, float(x0), float(y0)), (0, 0, size[0], size[1]))]

    return derive(
        source,
        "edge-cut",
        f"crop x {x0}-{x1}, y {y0}-{y1} of {source.width}x{source.height}",
        size,
        len(source),
        layout,
    )


def standard_variants(source: SourceSequence) -> list[StressSequence]:
    """The variants the quality bench and gates use, the original first."""
    return [
        identity(source),
        moving_camera(source),
        downscaled(source, 0.5),
        downscaled(source, 1 / 3),
        distant_crowd(source),
        moving_camera(distant_crowd(source), name="moving-distant"),
        edge_cut(source),
    ]


def heads_only(
    gt: GroundTruth, size: tuple[int, int] | None = None, *, min_visible: float = MIN_VISIBLE
) -> GroundTruth:
    """Ground truth whose boxes are the head regions (top sixth, middle half of the width)
    of ``gt``'s boxes, to measure the ``faces`` method: its recall is head recall, and its
    leaks are heads less than half masked. With the picture's ``size`` (width, height), a
    head less than ``min_visible`` inside the picture is ignored (a sliver at the edge)."""

    def heads(xywh: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y, w, h = (xywh[:, i] for i in range(4))
        return np.stack([x + w / 4, y, w / 2, h / 6], axis=1).reshape(-1, 4)

    boxes = heads(gt.xywh)
    keep = np.ones(len(boxes), np.bool_)
    if size is not None:
        width, height = size
        iw = np.clip(boxes[:, 0] + boxes[:, 2], 0, width) - np.clip(boxes[:, 0], 0, width)
        ih = np.clip(boxes[:, 1] + boxes[:, 3], 0, height) - np.clip(boxes[:, 1], 0, height)
        keep = iw * ih >= min_visible * boxes[:, 2] * boxes[:, 3]
    return GroundTruth(
        frame=gt.frame[keep].copy(),
        person_id=gt.person_id[keep].copy(),
        xywh=boxes[keep],
        ignored_frame=np.concatenate([gt.ignored_frame, gt.frame[~keep]]),
        ignored_xywh=np.concatenate([heads(gt.ignored_xywh), boxes[~keep]]),
        format=gt.format,
        source=f"{gt.source} (heads)",
        dropped=dict(gt.dropped),
    )
