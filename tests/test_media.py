"""Sources and sinks on PyAV: round trips, timestamps, atomic outputs, bad inputs, damage."""

from __future__ import annotations

import errno
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import (
    CLIP_FPS,
    CLIP_FRAMES,
    CLIP_H,
    CLIP_W,
    Clip,
    clip_frames,
    decode_all,
    ffprobe,
    garble_packet,
    probe_frame_times,
    probe_streams,
    serving,
)
from veil.config.schema import MaskConfig
from veil.core.errors import (
    MediaDecodeError,
    MediaError,
    MediaNotFoundError,
    OutputError,
    UsageError,
)
from veil.core.frame import Frame
from veil.core.style import StyleKind
from veil.media.sink import StreamSpec, _output_error, open_sink, sequence_regex
from veil.media.source import open_source
from veil.media.synthetic import scene_frames, write_clip
from veil.pipeline import MaskingPipeline
from veil.policy.static import StaticPlanner


def _copy(source_uri: str, output: Path, **kwargs: bool) -> list[Frame]:
    """Write every frame of ``source_uri`` unchanged to ``output``; return the frames."""
    with open_source(source_uri) as source, open_sink(output, source, **kwargs) as sink:
        frames = list(source.frames())
        for frame in frames:
            sink.write(frame)
    return frames


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


# --- Sources ------------------------------------------------------------------------------


def test_source_reports_size_rate_count_and_exact_timestamps(clip_mp4: Clip) -> None:
    with open_source(clip_mp4.uri) as source:
        assert (source.width, source.height) == (CLIP_W, CLIP_H)
        assert source.fps == CLIP_FPS
        assert source.frame_count == CLIP_FRAMES
        assert source.audio_stream is None
        frames = list(source.frames())
    assert [f.index for f in frames] == list(range(CLIP_FRAMES))
    times = [f.pts * f.time_base for f in frames if f.pts is not None]
    assert times == [Fraction(i, 25) for i in range(CLIP_FRAMES)]
    first = frames[0].image
    assert first.dtype == np.uint8
    assert first.shape == (CLIP_H, CLIP_W, 3)
    assert not first.flags.writeable
    assert not any(f.corrupt for f in frames)


def test_lossless_source_gives_back_the_exact_pixels(clip_mkv: Clip) -> None:
    decoded = decode_all(clip_mkv.uri)
    assert len(decoded) == len(clip_mkv.frames)
    for got, want in zip(decoded, clip_mkv.frames, strict=True):
        np.testing.assert_array_equal(got, want)


def test_image_sequence_is_read_at_the_given_rate(png_sequence: Clip) -> None:
    with open_source(png_sequence.uri, fps=Fraction(30)) as source:
        assert source.fps == Fraction(30)
        frames = list(source.frames())
    assert len(frames) == len(png_sequence.frames)
    assert [f.pts * f.time_base for f in frames if f.pts is not None] == [
        Fraction(i, 30) for i in range(len(frames))
    ]
    for got, want in zip(frames, png_sequence.frames, strict=True):
        np.testing.assert_array_equal(got.image, want)


def test_image_sequence_defaults_to_25_fps(png_sequence: Clip) -> None:
    with open_source(png_sequence.uri) as source:
        assert source.fps == Fraction(25)


def test_http_source(clip_mkv: Clip) -> None:
    with (
        serving(clip_mkv.path.parent) as base,
        open_source(f"{base}/{clip_mkv.path.name}") as source,
    ):
        assert not source.is_live
        frames = [np.array(f.image) for f in source.frames()]
    assert len(frames) == len(clip_mkv.frames)
    np.testing.assert_array_equal(frames[-1], clip_mkv.frames[-1])


def test_missing_http_source() -> None:
    with pytest.raises(MediaError, match=r"127\.0\.0\.1.*cannot open the stream"):
        open_source("http://127.0.0.1:9/nothing.mp4")


def test_a_source_is_read_once(clip_mkv: Clip) -> None:
    with open_source(clip_mkv.uri) as source:
        list(source.frames())
        with pytest.raises(UsageError, match="read only once"):
            list(source.frames())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFoundError, match="no such file"):
        open_source(tmp_path / "nope.mp4")


def test_missing_image_sequence(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFoundError, match="no such file"):
        open_source(str(tmp_path / "frames" / "%06d.png"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is a text file, not a video\n" * 20, "cannot be read as video"),
        (b"", "empty"),
    ],
    ids=["text", "empty"],
)
def test_not_a_video(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "fake.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaDecodeError, match=message):
        open_source(path)


def test_a_folder_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(MediaDecodeError, match="is a folder"):
        open_source(tmp_path)


def test_file_without_video_stream(tmp_path: Path) -> None:
    import av

    path = tmp_path / "audio-only.mka"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16")
        frame.sample_rate = 8000
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(MediaDecodeError, match="no video stream"):
        open_source(path)


def test_truncated_mp4_is_refused(clip_mp4: Clip, tmp_path: Path) -> None:
    # The index (moov) is written last; half a file has none, so nothing can be trusted.
    data = clip_mp4.path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaDecodeError, match="truncated"):
        open_source(cut)


@pytest.mark.parametrize("fixture", ["clip_mp4", "clip_mkv"])
def test_damaged_frames_are_flagged(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    clip: Clip = request.getfixturevalue(fixture)
    # FFV1 needs its slice sizes to decode a damaged frame at all (see garble_packet).
    span = (0.2, 0.6) if fixture == "clip_mkv" else (0.0, 1.0)
    damaged = garble_packet(clip, tmp_path / f"damaged{clip.path.suffix}", span=span)
    clean = decode_all(clip.uri)
    with open_source(damaged) as source:
        frames = list(source.frames())
        report = source.report
    assert report.decode_errors >= 1
    assert report.corrupt_frames == sum(f.corrupt for f in frames) >= 1
    assert report.messages
    # A frame not flagged must be the clean picture: damage never slips through unflagged.
    for frame in frames:
        if not frame.corrupt:
            assert frame.pts is not None
            index = round(frame.pts * frame.time_base * CLIP_FPS)
            diff = np.abs(frame.image.astype(int) - clean[index].astype(int)).max()
            assert diff == 0, f"frame {index} differs from the clean decode but is not flagged"


# --- Sinks: round trips ---------------------------------------------------------------------


def test_mkv_round_trip_is_exactly_lossless(clip_mkv: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    frames = _copy(clip_mkv.uri, out)
    decoded = decode_all(out)
    assert len(decoded) == len(frames)
    for got, want in zip(decoded, clip_mkv.frames, strict=True):
        np.testing.assert_array_equal(got, want)
    (stream,) = probe_streams(out)
    assert stream["codec_name"] == "ffv1"
    assert (stream["width"], stream["height"]) == (CLIP_W, CLIP_H)
    assert stream["r_frame_rate"] == "25/1"
    assert int(stream["nb_read_frames"]) == CLIP_FRAMES
    assert probe_frame_times(out) == [Fraction(i, 25) for i in range(CLIP_FRAMES)]


def test_mp4_round_trip_keeps_count_rate_and_timestamps(clip_mp4: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    _copy(clip_mp4.uri, out)
    (stream,) = probe_streams(out)
    assert stream["codec_name"] == "h264"
    assert stream["pix_fmt"] == "yuv420p"
    assert (stream["width"], stream["height"]) == (CLIP_W, CLIP_H)
    assert stream["r_frame_rate"] == "25/1"
    assert int(stream["nb_read_frames"]) == CLIP_FRAMES
    assert probe_frame_times(out) == [Fraction(i, 25) for i in range(CLIP_FRAMES)]
    decoded = decode_all(out)
    for got, want in zip(decoded, clip_mp4.frames, strict=True):
        # Two lossy generations (the input and this output) at crf 18, and no colour drift.
        diff = got.astype(int) - want.astype(int)
        assert np.abs(diff).mean() < 3.0
        assert abs(diff.mean()) < 0.5


def test_variable_timestamps_are_copied(tmp_path: Path) -> None:
    times = [0, 1, 2, 5, 6, 10]  # gaps, as a camera that drops frames gives
    spec = StreamSpec(CLIP_W, CLIP_H, fps=Fraction(25), time_base=Fraction(1, 25))
    out = tmp_path / "vfr.mkv"
    with open_sink(out, spec) as sink:
        for i, (image, pts) in enumerate(zip(scene_frames(CLIP_W, CLIP_H, 6), times, strict=True)):
            sink.write(Frame(image, pts=pts, time_base=Fraction(1, 25), index=i))
    assert probe_frame_times(out) == [Fraction(t, 25) for t in times]


def test_png_sequence_round_trip(clip_mkv: Clip, tmp_path: Path) -> None:
    pattern = tmp_path / "frames" / "%06d.png"
    _copy(clip_mkv.uri, pattern)
    files = sorted((tmp_path / "frames").iterdir())
    assert len(files) == CLIP_FRAMES
    assert all(sequence_regex(str(pattern)).fullmatch(f.name) for f in files)
    decoded = decode_all(str(pattern))
    for got, want in zip(decoded, clip_mkv.frames, strict=True):
        np.testing.assert_array_equal(got, want)
    assert _leftovers(tmp_path) == []


def test_png_sequence_into_an_existing_folder(clip_mkv: Clip, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    _copy(clip_mkv.uri, folder / "%04d.png")
    assert len(list(folder.glob("*.png"))) == CLIP_FRAMES
    assert (folder / "notes.txt").read_text() == "keep me"
    with pytest.raises(OutputError, match="--overwrite"):
        _copy(clip_mkv.uri, folder / "%04d.png")
    _copy(clip_mkv.uri, folder / "%04d.png", overwrite=True)
    assert len(list(folder.glob("*.png"))) == CLIP_FRAMES
    assert _leftovers(tmp_path) == []


def test_odd_sizes_are_kept_in_mp4(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    write_clip(tmp_path / "odd.mkv", scene_frames(161, 121, 3))
    _copy(str(tmp_path / "odd.mkv"), out)
    (stream,) = probe_streams(out)
    assert (stream["width"], stream["height"]) == (161, 121)


# --- Sinks: nothing that looks finished unless it is ----------------------------------------


def test_output_appears_only_on_close(clip_mkv: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    with open_source(clip_mkv.uri) as source:
        sink = open_sink(out, source)
        for frame in source.frames():
            sink.write(frame)
        assert not out.exists()
        assert len(_leftovers(tmp_path)) == 1
        sink.close()
    assert out.exists()
    assert _leftovers(tmp_path) == []
    assert (out.stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_then_fail(source_uri: str, target: Path, after: int) -> None:
    with open_source(source_uri) as source, open_sink(target, source) as sink:
        for frame in source.frames():
            sink.write(frame)
            if frame.index == after:
                raise RuntimeError("boom")


@pytest.mark.parametrize("name", ["out.mp4", "out.mkv", "frames/%06d.png"])
def test_a_failed_run_leaves_nothing(clip_mkv: Clip, tmp_path: Path, name: str) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        _write_then_fail(clip_mkv.uri, tmp_path / name, after=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_existing_output_is_kept_without_overwrite(clip_mkv: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match="--overwrite"):
        _copy(clip_mkv.uri, out)
    assert out.read_bytes() == b"precious"
    _copy(clip_mkv.uri, out, overwrite=True)
    assert len(decode_all(out)) == CLIP_FRAMES
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("out.xyz", UsageError, "unknown output type"),
        ("out", UsageError, "unknown output type"),
        ("frames/%06d.jpg", UsageError, "PNG"),
        ("missing/out.mp4", OutputError, "does not exist"),
    ],
)
def test_bad_outputs(tmp_path: Path, name: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        open_sink(tmp_path / name, StreamSpec(CLIP_W, CLIP_H))


def test_unwritable_folder() -> None:
    # /proc refuses new files even to root, unlike a chmod-ed folder.
    with pytest.raises(OutputError, match="cannot write"):
        open_sink("/proc/out.mp4", StreamSpec(CLIP_W, CLIP_H))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            open_sink(folder / "out.mp4", StreamSpec(CLIP_W, CLIP_H))
    finally:
        folder.chmod(0o755)


def test_disk_full_is_named() -> None:
    error = _output_error(Path("/data/out.mp4"), OSError(errno.ENOSPC, "No space left"))
    assert isinstance(error, OutputError)
    assert "disk is full" in str(error)


def test_image_sequences_cannot_keep_audio(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot hold audio"):
        open_sink(tmp_path / "f" / "%06d.png", StreamSpec(CLIP_W, CLIP_H), keep_audio=True)


# --- Audio ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("keep", "codecs"), [(False, ["video"]), (True, ["video", "audio"])])
def test_audio_is_dropped_unless_kept(
    clip_audio: Clip, tmp_path: Path, keep: bool, codecs: list[str]
) -> None:
    out = tmp_path / "out.mp4"
    with open_source(clip_audio.uri) as source:
        assert source.audio_stream is not None
        with open_sink(out, source, keep_audio=keep) as sink:
            for item in source.read(with_audio=sink.wants_audio):
                if isinstance(item, Frame):
                    sink.write(item)
                else:
                    sink.write_audio(item)
    streams = probe_streams(out)
    assert [s["codec_type"] for s in streams] == codecs
    if keep:
        assert streams[1]["codec_name"] == "aac"
        assert int(streams[1]["nb_read_frames"]) > 10


@pytest.mark.parametrize("style", ["4:2:0 planes", "BGR"])
def test_mp4_output_says_which_colour_matrix_it_uses(
    clip_mp4: Clip, tmp_path: Path, style: str
) -> None:
    """BT.601 limited range, tagged: players would take untagged HD video for BT.709."""
    out = tmp_path / "out.mp4"
    with open_source(clip_mp4.path) as source, open_sink(out, source) as sink:
        for frame in source.read(keep_i420=style == "4:2:0 planes"):
            assert isinstance(frame, Frame)
            sink.write(frame)
    stream = ffprobe(out, "-show_entries", "stream=color_space,color_range")["streams"][0]
    assert stream["color_space"] == "smpte170m"
    assert stream["color_range"] == "tv"


def _picture_types(path: Path) -> str:
    """The video frames' coded types in presentation order, one letter each (I, P, B)."""
    frames = ffprobe(path, "-select_streams", "v:0", "-show_entries", "frame=pict_type")["frames"]
    return "".join(f["pict_type"] for f in frames)


def _mask_in_planes(source_path: Path, out: Path) -> None:
    """``veil mask`` with one static mask: every frame masked in its 4:2:0 planes."""
    config = [MaskConfig(name="m", rect=(0.25, 0.25, 0.5, 0.5), style=StyleKind.MOSAIC)]
    with open_source(source_path) as source, open_sink(out, source) as sink:
        MaskingPipeline([StaticPlanner(config)]).run(source, sink)


@pytest.mark.parametrize("path", ["4:2:0 planes", "BGR"])
def test_masked_frames_are_coded_as_the_source_coded_them(
    clip_mp4: Clip, tmp_path: Path, path: str
) -> None:
    """x264 is given the source's P and B types (it then skips its own analysis), for
    masked copies and BGR pictures as for frames passed through; keyframes are left to it."""
    out = tmp_path / "out.mp4"
    if path == "BGR":
        with open_source(clip_mp4.path) as reader, open_sink(out, reader) as sink:
            for frame in reader.read():
                assert isinstance(frame, Frame)
                assert frame.i420 is None
                sink.write(frame.with_image(255 - frame.image))
    else:
        _mask_in_planes(clip_mp4.path, out)
    source, output = _picture_types(clip_mp4.path), _picture_types(out)
    assert len(output) == len(source)
    assert "B" in source  # the test clip has B frames to follow
    kept = [(s, o) for s, o in zip(source, output, strict=True) if s in "PB"]
    assert all(s == o for s, o in kept), (source, output)
    assert output[0] == "I"


def test_an_intra_only_source_does_not_make_every_frame_a_keyframe(tmp_path: Path) -> None:
    clip = tmp_path / "intra.mp4"
    write_clip(clip, clip_frames(), fps=CLIP_FPS, codec_options={"g": "1", "threads": "1"})
    assert set(_picture_types(clip)) == {"I"}
    out = tmp_path / "out.mp4"
    _mask_in_planes(clip, out)
    output = _picture_types(out)
    assert len(output) == CLIP_FRAMES
    assert output.count("I") <= 2, output
