"""The masking pipeline: layers combined in order, fail closed, streaming run, threads."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator, Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import CLIP_FPS, CLIP_FRAMES, Clip, decode_all
from veil.config.schema import MaskConfig
from veil.core.frame import I420, Frame
from veil.core.plan import MaskPlan
from veil.media.sink import open_sink
from veil.media.source import AudioChunk, VideoSource, open_source
from veil.pipeline import QUEUE_SIZE, MaskingPipeline
from veil.policy.static import StaticPlanner
from veil.render import FrameRenderer

W, H = 160, 120
MAGENTA = (255, 0, 255)


def _frame(index: int = 0, corrupt: bool = False) -> Frame:
    image = np.random.default_rng(index).integers(1, 256, (H, W, 3), dtype=np.uint8)
    return Frame(image, pts=index * 7, time_base=Fraction(1, 25), index=index, corrupt=corrupt)


def _static(*masks: Mapping[str, object]) -> StaticPlanner:
    return StaticPlanner([MaskConfig.model_validate(m) for m in masks])


MASK = {"name": "box", "rect": (0.25, 0.25, 0.5, 0.5), "color": "#ff00ff"}


class Exploding:
    """A planner that fails on the frames it is told to."""

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad

    def plan(self, frame: Frame) -> MaskPlan:
        if frame.index in self.bad:
            raise RuntimeError(f"planner broke on {frame.index}")
        return MaskPlan(frame.width, frame.height)


class BrokenRenderer(FrameRenderer):
    def render(self, frame: Frame, plan: MaskPlan) -> Frame:
        raise MemoryError("renderer broke")


def _is_black(frame: Frame) -> bool:
    return not frame.image.any()


def test_layers_of_all_planners_are_drawn_in_order() -> None:
    first = _static({"name": "a", "rect": (0.0, 0.0, 0.5, 0.5), "color": "#ff0000"})
    second = _static({"name": "b", "rect": (0.25, 0.25, 0.5, 0.5), "color": "#0000ff"})
    frame = _frame()
    out = MaskingPipeline([first, second]).process(frame).image
    assert (out[:30, :40] == (0, 0, 255)).all()  # only the first: red (BGR)
    assert (out[30:90, 40:120] == (255, 0, 0)).all()  # the second drawn over it: blue
    np.testing.assert_array_equal(out[90:, :], frame.image[90:, :])


def test_input_frame_is_never_modified() -> None:
    frame = _frame()
    before = frame.image.copy()
    out = MaskingPipeline([_static(MASK)]).process(frame)
    np.testing.assert_array_equal(frame.image, before)
    assert not frame.image.flags.writeable
    assert out.image is not frame.image
    assert (out.pts, out.time_base, out.index) == (frame.pts, frame.time_base, frame.index)


def test_corrupt_frame_is_fully_masked() -> None:
    pipeline = MaskingPipeline([_static(MASK)])
    out = pipeline.process(_frame(corrupt=True))
    assert _is_black(out)
    plan = pipeline.plan(_frame(corrupt=True))
    assert plan.fully_masked


def test_planner_failure_masks_the_whole_frame() -> None:
    pipeline = MaskingPipeline([_static(MASK), Exploding({1})])
    assert not _is_black(pipeline.process(_frame(0)))
    out = pipeline.process(_frame(1))
    assert _is_black(out)
    assert out.pts == 7
    assert pipeline.failed_closed == 1


def test_renderer_failure_masks_the_whole_frame() -> None:
    pipeline = MaskingPipeline([_static(MASK)], renderer=BrokenRenderer())
    assert _is_black(pipeline.process(_frame()))
    assert pipeline.failed_closed == 1


def test_a_frame_that_cannot_be_converted_is_still_blacked_out() -> None:
    """The fail-closed frame is made without reading the picture: here converting it is
    what fails (a BT.709 picture without its converter), and a planner reads pixels."""
    planes = I420.from_array(np.full((180, 160), 100, np.uint8))
    broken = dataclasses.replace(planes, bt709=True, convert=None)
    frame = Frame(None, pts=3, time_base=Fraction(1, 25), index=3, i420=broken)

    class ReadsPixels:
        def plan(self, frame: Frame) -> MaskPlan:
            frame.image  # noqa: B018 - reading is what fails
            return MaskPlan(frame.width, frame.height)

    pipeline = MaskingPipeline([_static(MASK), ReadsPixels()])
    out = pipeline.process(frame)
    assert out.image.shape == (120, 160, 3)
    assert _is_black(out)
    assert pipeline.failed_closed == 1


def _masked_reference(frames: list[np.ndarray], planner: StaticPlanner) -> list[np.ndarray]:
    pipeline = MaskingPipeline([planner])
    return [
        np.array(pipeline.process(Frame(f, pts=i, time_base=Fraction(1, 25), index=i)).image)
        for i, f in enumerate(frames)
    ]


def test_run_masks_every_frame_exactly(clip_mkv: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    planner = _static(MASK)
    with open_source(clip_mkv.uri) as source, open_sink(out, source) as sink:
        stats = MaskingPipeline([planner]).run(source, sink)
    assert (stats.frames, stats.corrupt_frames, stats.failed_closed_frames) == (CLIP_FRAMES, 0, 0)
    assert stats.fps > 0
    assert not stats.stopped
    decoded = decode_all(out)
    inside = planner.plan(_frame()).union()
    for got, original in zip(decoded, clip_mkv.frames, strict=True):
        assert (got[inside] == MAGENTA[::-1]).all()
        np.testing.assert_array_equal(got[~inside], original[~inside])


def test_planner_failures_during_a_run_black_out_those_frames(
    clip_mkv: Clip, tmp_path: Path
) -> None:
    out = tmp_path / "out.mkv"
    planner = _static(MASK)
    with open_source(clip_mkv.uri) as source, open_sink(out, source) as sink:
        stats = MaskingPipeline([planner, Exploding({2, 5})]).run(source, sink)
    assert stats.failed_closed_frames == 2
    reference = _masked_reference(clip_mkv.frames, planner)
    for i, got in enumerate(decode_all(out)):
        if i in (2, 5):
            assert not got.any()
        else:
            np.testing.assert_array_equal(got, reference[i])


@pytest.mark.parametrize("fixture", ["clip_mp4", "clip_mkv"])
def test_damaged_input_frames_are_masked_or_black(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    clip: Clip = request.getfixturevalue(fixture)
    data = bytearray(clip.path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 300] = bytes(np.random.default_rng(5).integers(0, 256, 300, np.uint8))
    damaged = tmp_path / f"damaged{clip.path.suffix}"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out.mkv"
    planner = _static(MASK)
    with open_source(damaged) as source, open_sink(out, source) as sink:
        stats = MaskingPipeline([planner]).run(source, sink)
    assert stats.corrupt_frames >= 1
    assert stats.decode_errors >= 1
    reference = _masked_reference(decode_all(clip.uri), planner)
    with open_source(out) as result:
        frames = list(result.frames())
    black = 0
    for frame in frames:
        assert frame.pts is not None
        index = round(frame.pts * frame.time_base * CLIP_FPS)
        if not frame.image.any():
            black += 1
            continue
        np.testing.assert_array_equal(frame.image, reference[index], err_msg=f"frame {index}")
    assert black == stats.corrupt_frames


def test_stop_event_ends_the_run_early(clip_mkv: Clip, tmp_path: Path) -> None:
    stop = threading.Event()

    def progress(done: int) -> None:
        if done == 3:
            stop.set()

    out = tmp_path / "out.mkv"
    with open_source(clip_mkv.uri) as source, open_sink(out, source) as sink:
        stats = MaskingPipeline([_static(MASK)]).run(source, sink, progress, stop)
    assert stats.stopped
    assert stats.frames == 3
    assert len(decode_all(out)) == 3
    assert not [t for t in threading.enumerate() if t.name == "veil-decode"]


def test_decoding_never_runs_far_ahead(clip_mkv: Clip, tmp_path: Path) -> None:
    ahead: list[int] = []
    with open_source(clip_mkv.uri) as source, open_sink(tmp_path / "o.mkv", source) as sink:

        def progress(done: int) -> None:
            ahead.append(source.report.frames - done)

        MaskingPipeline([_static(MASK)]).run(source, sink, progress)
    # The queue, plus one frame in the decoder's hands and one being written.
    assert max(ahead) <= QUEUE_SIZE + 2


def test_sink_errors_reach_the_caller_and_threads_end(clip_mkv: Clip, tmp_path: Path) -> None:
    class FailingSink:
        wants_audio = False
        takes_i420 = False

        def write(self, frame: Frame) -> None:
            if frame.index == 4:
                raise OSError("disk on fire")

        def write_audio(self, chunk: AudioChunk) -> None:
            raise AssertionError("no audio expected")

    with open_source(clip_mkv.uri) as source, pytest.raises(OSError, match="disk on fire"):
        MaskingPipeline([_static(MASK)]).run(source, FailingSink())  # type: ignore[arg-type]
    assert not [t for t in threading.enumerate() if t.name == "veil-decode"]


def test_decoder_errors_reach_the_caller(clip_mkv: Clip, tmp_path: Path) -> None:
    class FailingSource(VideoSource):
        def read(
            self, with_audio: bool = False, *, keep_i420: bool = False
        ) -> Generator[Frame | AudioChunk, None, None]:
            inner = super().read(with_audio, keep_i420=keep_i420)
            for item in inner:
                yield item
                if isinstance(item, Frame) and item.index == 2:
                    raise ValueError("decoder broke")

    with open_source(clip_mkv.uri) as plain:
        source = FailingSource(plain.uri, plain._container, plain._stream)
        with (
            pytest.raises(ValueError, match="broke"),
            open_sink(tmp_path / "o.mkv", source) as sink,
        ):
            MaskingPipeline([_static(MASK)]).run(source, sink)
    assert not [t for t in threading.enumerate() if t.name == "veil-decode"]
    assert list(tmp_path.iterdir()) == []
