"""Masking straight in 4:2:0 planes: the same guarantees as in BGR, on whole 2 x 2 blocks.

A frame decoded as 4:2:0 and written to a 4:2:0 encoder is masked in its Y, U and V planes
(veil.render.I420Renderer). In 4:2:0 four pixels share one chroma sample, so a mask covers
every 2 x 2 block any of its pixels falls in: inside, not one original value in any plane;
outside those blocks, every value exactly as it was.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from conftest import Clip, clip_frames, ffprobe
from test_render import SHAPES as BGR_SHAPES
from test_render import STYLES, H, W, _layer
from veil.config.schema import MaskConfig
from veil.core.errors import ShapeError
from veil.core.frame import I420, Frame
from veil.core.plan import MaskLayer, MaskPlan
from veil.core.region import BoolMask, Region
from veil.core.style import Style, StyleKind
from veil.media.sink import open_sink
from veil.media.source import open_source
from veil.pipeline import MaskingPipeline
from veil.policy.static import StaticPlanner
from veil.render import FrameRenderer
from veil.render.renderers import STEADY_LEVELS, i420_color

# test_render's picture size, shapes, styles and layers; plus a box whose sides are odd
# pixels, which 4:2:0 has to round outward to whole 2x2 blocks.
SHAPES = {
    **BGR_SHAPES,
    "odd rect": Region.from_pixels([[13, 7], [101, 7], [101, 77], [13, 77]], W, H),
}


def _i420_frame(seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    i420 = rng.integers(40, 216, size=(H * 3 // 2, W), dtype=np.uint8)
    return Frame(None, 0, Fraction(1, 25), 0, i420=I420.from_array(i420))


def _blocks(covered: BoolMask) -> tuple[BoolMask, BoolMask]:
    """The pixel coverage grown to whole 2 x 2 blocks: (luma, chroma)."""
    chroma: BoolMask = np.asarray(covered.reshape(H // 2, 2, W // 2, 2).any(axis=(1, 3)))
    return chroma.repeat(2, axis=0).repeat(2, axis=1), chroma


def _render(frame: Frame, *layers: MaskLayer) -> Frame:
    out = FrameRenderer().render(frame, MaskPlan(W, H, layers))
    assert out.i420 is not None, "a 4:2:0 frame with these styles stays 4:2:0"
    return out


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("style", STYLES)
def test_outside_the_masked_blocks_nothing_changes(shape: str, style: str) -> None:
    frame = _i420_frame()
    layer = _layer(SHAPES[shape], STYLES[style])
    out = _render(frame, layer)
    luma, chroma = _blocks(MaskPlan(W, H, (layer,)).union())
    assert out.i420 is not None
    assert frame.i420 is not None
    before, after = frame.i420, out.i420
    assert np.array_equal(after.y[~luma], before.y[~luma])
    assert np.array_equal(after.u[~chroma], before.u[~chroma])
    assert np.array_equal(after.v[~chroma], before.v[~chroma])
    assert luma.any()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("style", ["fill", "silhouette"])
def test_no_original_value_inside_a_fill(shape: str, style: str) -> None:
    frame = _i420_frame()
    colour = STYLES[style].color
    layer = _layer(SHAPES[shape], STYLES[style])
    out = _render(frame, layer)
    luma, chroma = _blocks(MaskPlan(W, H, (layer,)).union())
    assert out.i420 is not None
    y, u, v = out.i420.y, out.i420.u, out.i420.v
    want_y, want_u, want_v = i420_color(colour)
    assert (y[luma] == want_y).all()
    assert (u[chroma] == want_u).all()
    assert (v[chroma] == want_v).all()
    # As a picture: every masked pixel is one colour, the fill colour up to 4:2:0 rounding.
    shown = out.image[luma]
    assert (shown == shown[0]).all()
    assert np.abs(shown[0].astype(int) - np.array(colour)).max() <= 3


@pytest.mark.parametrize("shape", SHAPES)
def test_mosaic_cells_are_flat_in_every_plane(shape: str) -> None:
    frame = _i420_frame()
    cell = STYLES["mosaic"].cell_size
    layer = _layer(SHAPES[shape], STYLES["mosaic"])
    out = _render(frame, layer)
    luma, _ = _blocks(MaskPlan(W, H, (layer,)).union())
    for y0 in range(0, H, cell):
        for x0 in range(0, W, cell):
            inside = luma[y0 : y0 + cell, x0 : x0 + cell]
            if not inside.any():
                continue
            colours = out.image[y0 : y0 + cell, x0 : x0 + cell][inside]
            assert (colours == colours[0]).all(), f"cell at {x0},{y0} is not flat"


def _same_cell_means_i420(i420: I420, cell: int, seed: int) -> I420:
    """A different 4:2:0 picture with the same mean in every cell of every plane."""
    rng = np.random.default_rng(seed)
    planes = [i420.y.astype(np.int16), i420.u.astype(np.int16), i420.v.astype(np.int16)]
    for plane, size in zip(planes, (cell, cell // 2, cell // 2), strict=True):
        noise = rng.integers(-20, 21, size=plane.shape).astype(np.int16)
        for y0 in range(0, plane.shape[0], size):
            for x0 in range(0, plane.shape[1], size):
                block = noise[y0 : y0 + size, x0 : x0 + size]
                block -= np.int16(round(float(block.mean())))
                block[0, 0] -= block.sum()
        plane += noise
        assert plane.min() >= 0, "test picture must not clip"
        assert plane.max() <= 255, "test picture must not clip"
    y, u, v = (p.astype(np.uint8) for p in planes)
    return I420(y, u, v)


@pytest.mark.parametrize("style", ["mosaic", "blur"])
def test_no_detail_finer_than_the_cell_survives(style: str) -> None:
    frame = _i420_frame(3)
    spec = STYLES[style]
    cell = spec.cell_size if spec.kind is StyleKind.MOSAIC else spec.blur_radius
    assert frame.i420 is not None
    other = frame.with_i420(_same_cell_means_i420(frame.i420, cell, seed=9))
    layer = _layer(SHAPES["polygon"], spec)
    a, b = _render(frame, layer), _render(other, layer)
    luma, _ = _blocks(MaskPlan(W, H, (layer,)).union())
    assert not np.array_equal(frame.image[luma], other.image[luma])
    assert np.array_equal(a.image[luma], b.image[luma])


def _shifted(frame: Frame, levels: int, camera_id: str = "") -> Frame:
    """``frame`` with every Y, U and V value moved by ``levels``, for ``camera_id``."""
    assert frame.i420 is not None
    y, u, v = ((p.astype(np.int16) + levels).astype(np.uint8) for p in _planes(frame.i420))
    return Frame(None, 0, Fraction(1, 25), 0, camera_id, i420=I420(y, u, v))


def _planes(i420: I420) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8]]:
    return i420.y, i420.u, i420.v


@pytest.mark.parametrize("style", ["mosaic", "blur"])
def test_cells_hold_steady_while_their_mean_moves_by_a_few_levels(style: str) -> None:
    """A still scene's decoder noise moves cell means by a level or two: the cells keep
    last frame's values (the encoder then skips them). A larger move redraws them."""
    frame = _i420_frame(4)
    layer = _layer(SHAPES["polygon"], STYLES[style])
    plan = MaskPlan(W, H, (layer,))
    luma, chroma = _blocks(plan.union())
    renderer = FrameRenderer()
    first = renderer.render(frame, plan).i420
    # Moved by one level fewer than allowed: the rounding of a mean may add one.
    quiet = _shifted(frame, STEADY_LEVELS - 1)
    nudged = renderer.render(quiet, plan).i420
    assert first is not None
    assert nudged is not None
    assert quiet.i420 is not None
    planes = zip(
        _planes(first), _planes(nudged), _planes(quiet.i420), (luma, chroma, chroma), strict=True
    )
    for before, after, given, inside in planes:
        assert np.array_equal(before[inside], after[inside])
        # Drawn again from what was held: outside the mask, still this frame's pixels.
        assert np.array_equal(after[~inside], given[~inside])
    # Moved by more: drawn afresh, exactly as a renderer with nothing held draws it.
    moved = _shifted(frame, STEADY_LEVELS + 2)
    again = renderer.render(moved, plan).i420
    fresh = FrameRenderer().render(moved, plan).i420
    assert again is not None
    assert fresh is not None
    for ours, want, inside in zip(
        _planes(again), _planes(fresh), (luma, chroma, chroma), strict=True
    ):
        assert np.array_equal(ours[inside], want[inside])


@pytest.mark.parametrize("style", ["mosaic", "blur"])
def test_held_cells_stay_within_a_few_levels_of_the_current_frame(style: str) -> None:
    """Over frames that change, every masked value is within STEADY_LEVELS of what a fresh
    renderer draws for the current frame (plus two for the blur's rounding), and mosaic
    cells stay flat: nothing older than a few levels of brightness survives."""
    layer = _layer(SHAPES["polygon"], STYLES[style])
    plan = MaskPlan(W, H, (layer,))
    luma, chroma = _blocks(plan.union())
    renderer = FrameRenderer()
    base = _i420_frame(5)
    rng = np.random.default_rng(6)
    for step in range(12):
        frame = _shifted(base, int(rng.integers(-6, 7))) if step % 4 else _i420_frame(step)
        out = _render_with(renderer, frame, plan)
        fresh = _render_with(FrameRenderer(), frame, plan)
        slack = STEADY_LEVELS + (2 if style == "blur" else 0)
        for ours, want, inside in zip(
            _planes(out), _planes(fresh), (luma, chroma, chroma), strict=True
        ):
            diff = np.abs(ours[inside].astype(int) - want[inside].astype(int))
            assert diff.max() <= slack, f"frame {step}"
        if style == "mosaic":
            cell = STYLES["mosaic"].cell_size
            sizes = (cell, cell // 2, cell // 2)
            for plane, masked, size in zip(
                _planes(out), (luma, chroma, chroma), sizes, strict=True
            ):
                for y0 in range(0, plane.shape[0], size):
                    for x0 in range(0, plane.shape[1], size):
                        inside = masked[y0 : y0 + size, x0 : x0 + size]
                        values = plane[y0 : y0 + size, x0 : x0 + size][inside]
                        assert values.size == 0 or (values == values[0]).all()


def _render_with(renderer: FrameRenderer, frame: Frame, plan: MaskPlan) -> I420:
    out = renderer.render(frame, plan).i420
    assert out is not None
    return out


def test_held_cells_are_one_cameras_own() -> None:
    """Frames of another camera through the same renderer and layer start afresh."""
    frame = _i420_frame(7)
    layer = _layer(SHAPES["rect"], STYLES["mosaic"])
    plan = MaskPlan(W, H, (layer,))
    renderer = FrameRenderer()
    renderer.render(_shifted(frame, 0, "a"), plan)
    other = _shifted(frame, 2, "b")
    ours = _render_with(renderer, other, plan)
    want = _render_with(FrameRenderer(), other, plan)
    assert np.array_equal(ours.to_array(), want.to_array())


def test_odd_cells_are_drawn_in_bgr_instead() -> None:
    """An odd mosaic cell does not line up with chroma samples: rendered in BGR."""
    frame = _i420_frame()
    style = Style(StyleKind.MOSAIC, cell_size=7)
    layer = _layer(SHAPES["rect"], style)
    out = FrameRenderer().render(frame, MaskPlan(W, H, (layer,)))
    assert out.i420 is None
    covered = MaskPlan(W, H, (layer,)).union()
    assert np.array_equal(out.image[~covered], frame.image[~covered])


def test_input_planes_are_never_modified() -> None:
    frame = _i420_frame()
    assert frame.i420 is not None
    before = frame.i420.to_array()
    layers = tuple(_layer(SHAPES["rect"], s) for s in STYLES.values())
    _render(frame, *layers)
    assert np.array_equal(frame.i420.to_array(), before)
    assert not any(p.flags.writeable for p in (frame.i420.y, frame.i420.u, frame.i420.v))


def test_a_frame_converts_to_bgr_once_when_asked() -> None:
    frame = _i420_frame()
    assert frame.i420 is not None
    planes = frame.i420
    assert (frame.width, frame.height) == (W, H)
    image = frame.image
    assert np.array_equal(image, cv2.cvtColor(planes.to_array(), cv2.COLOR_YUV2BGR_I420))
    assert frame.image is image
    # Once something has looked at the BGR picture, stages work on that picture.
    assert frame.i420 is None
    with pytest.raises(ShapeError, match="even"):
        I420.from_array(np.zeros((180, 121), np.uint8))
    with pytest.raises(ShapeError, match="even"):
        I420.from_array(np.zeros((181, 120), np.uint8))
    odd_rows = I420.from_array(np.zeros((183, 120), np.uint8))  # 122 rows: chroma mid-row
    assert (odd_rows.u.shape, odd_rows.v.shape) == ((61, 60), (61, 60))
    with pytest.raises(ShapeError, match="BGR image or I420"):
        Frame(None, 0, Fraction(1, 25), 0)


class _Recorder:
    """A planner that records whether each frame still held its 4:2:0 planes."""

    def __init__(self, reads_pixels: bool) -> None:
        self.reads_pixels = reads_pixels
        self.kept: list[bool] = []

    def plan(self, frame: Frame) -> MaskPlan:
        self.kept.append(frame.i420 is not None)
        if self.reads_pixels:
            assert frame.image.shape == (frame.height, frame.width, 3)
        return MaskPlan(frame.width, frame.height)


@pytest.mark.parametrize("output", ["out.mp4", "out.mkv"])
@pytest.mark.parametrize("reads_pixels", [False, True])
def test_frames_stay_4_2_0_only_when_nothing_reads_pixels_and_the_output_is_4_2_0(
    clip_mp4: Clip, tmp_path: Path, output: str, reads_pixels: bool
) -> None:
    recorder = _Recorder(reads_pixels)
    masks = [MaskConfig(name="m", rect=(0.1, 0.1, 0.3, 0.3))]
    with open_source(clip_mp4.path) as source, open_sink(tmp_path / output, source) as sink:
        stats = MaskingPipeline([StaticPlanner(masks), recorder]).run(source, sink)
    assert stats.frames == len(clip_mp4.frames) == len(recorder.kept)
    keeps = output.endswith(".mp4") and not reads_pixels
    assert all(k == keeps for k in recorder.kept)
    # Either way, the mask is in the output: a fill is black by default.
    with open_source(tmp_path / output) as result:
        for frame in result.frames():
            inside = frame.image[int(0.15 * H) : int(0.35 * H), int(0.15 * W) : int(0.35 * W)]
            assert inside.max() <= 20


# --- BT.709 inputs (most HD cameras tag their video so) -------------------------------------


def _write_bt709_clip(path: Path, frames: list[NDArray[np.uint8]]) -> None:
    """H.264 in the BT.709 matrix, tagged so, as an HD camera writes it."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.colorspace = 1  # BT.709
        stream.codec_context.color_range = 1  # limited
        stream.options = {"crf": "12", "threads": "1"}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(
                format="yuv420p", dst_colorspace="itu709", dst_color_range=1
            )
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def bt709_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bt709") / "hd.mp4"
    _write_bt709_clip(path, clip_frames(count=10))
    return path


def test_a_bt709_frame_converts_as_the_decoder_would(bt709_clip: Path) -> None:
    with open_source(bt709_clip) as eager:
        assert eager.bt709
        want = [f.image for f in eager.frames()]
    with open_source(bt709_clip) as lazy:
        kept = [f for f in lazy.read(keep_i420=True) if isinstance(f, Frame)]
    assert all(f.i420 is not None and f.i420.bt709 for f in kept)
    for frame, image in zip(kept, want, strict=True):
        assert np.array_equal(frame.image, image)


@pytest.mark.parametrize("cell", [8, 7])  # 7: odd cells are drawn in BGR, then converted back
def test_bt709_inputs_pass_through_in_their_own_matrix(
    bt709_clip: Path, tmp_path: Path, cell: int
) -> None:
    fill = MaskConfig(name="f", rect=(0.1, 0.1, 0.3, 0.3), color="#20c040")
    mosaic = MaskConfig(name="m", rect=(0.6, 0.5, 0.3, 0.4), style="mosaic", cell_size=cell)
    out = tmp_path / "out.mp4"
    recorder = _Recorder(reads_pixels=False)
    with open_source(bt709_clip) as source, open_sink(out, source) as sink:
        MaskingPipeline([StaticPlanner([fill, mosaic]), recorder]).run(source, sink)
    assert all(recorder.kept)
    stream = ffprobe(out, "-show_entries", "stream=color_space,color_range")["streams"][0]
    assert (stream["color_space"], stream["color_range"]) == ("bt709", "tv")
    with open_source(bt709_clip) as a, open_source(out) as b:
        pairs = list(zip(a.frames(), b.frames(), strict=True))
    outside = np.ones((H, W), np.bool_)
    outside[int(0.08 * H) : int(0.42 * H), int(0.08 * W) : int(0.42 * W)] = False
    outside[int(0.48 * H) :, int(0.58 * W) :] = False
    for before, after in pairs:
        inside = after.image[int(0.12 * H) : int(0.38 * H), int(0.12 * W) : int(0.38 * W)]
        assert np.abs(inside.astype(int) - np.array([0x40, 0xC0, 0x20])).max() <= 4
        diff = np.abs(before.image.astype(int) - after.image.astype(int))[outside]
        # Passed through: only H.264's loss. Through BGR (odd cells): also swscale's BT.709
        # conversion, which darkens by about 2 levels (veil.media.source.to_bgr).
        assert diff.mean() < (2.0 if cell % 2 == 0 else 3.5)


def test_planes_of_the_wrong_shapes_are_refused() -> None:
    y = np.zeros((4, 6), np.uint8)
    good = np.zeros((2, 3), np.uint8)
    for u, v in ((np.zeros((2, 2), np.uint8), good), (good, np.zeros((1, 3), np.uint8))):
        with pytest.raises(ShapeError, match="planes"):
            I420(y, u, v)
    with pytest.raises(ShapeError, match="even"):
        I420(np.zeros((5, 6), np.uint8), good, good)
    assert I420(y, good, good).width == 6
