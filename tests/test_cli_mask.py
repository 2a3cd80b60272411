"""`veil mask` and `veil demo` end to end: outputs, and every bad input with its message."""

from __future__ import annotations

import io
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from conftest import CLIP_FRAMES, Clip, decode_all, garble_packet, probe_streams
from veil.cli.app import app
from veil.cli.progress import FrameProgress
from veil.core.region import Region

runner = CliRunner()


def veil(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_rect_and_polygon_from_the_command_line(clip_mkv: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    code, stdout, stderr = veil(
        "mask", clip_mkv.path, "-o", out, "--rect", "0.1,0.1,0.3,0.2",
        "--polygon", "0.5,0.5,0.9,0.5,0.7,0.9", "--style", "fill", "--color", "#ff00ff",
    )  # fmt: skip
    assert code == 0, stderr
    assert f"masked {CLIP_FRAMES} frames" in stdout
    assert str(out) in stdout
    w, h = clip_mkv.frames[0].shape[1], clip_mkv.frames[0].shape[0]
    inside = Region.rect(0.1, 0.1, 0.3, 0.2).rasterize(w, h) | Region(
        np.array([[0.5, 0.5], [0.9, 0.5], [0.7, 0.9]])
    ).rasterize(w, h)
    decoded = decode_all(out)
    assert len(decoded) == CLIP_FRAMES
    for got, original in zip(decoded, clip_mkv.frames, strict=True):
        assert (got[inside] == (255, 0, 255)).all()
        np.testing.assert_array_equal(got[~inside], original[~inside])


def test_config_file_with_enable_disable_and_style_override(clip_mkv: Clip, tmp_path: Path) -> None:
    config = tmp_path / "masks.yaml"
    config.write_text(
        "masks:\n"
        "  - name: left\n    rect: [0.0, 0.0, 0.5, 1.0]\n    color: '#00ff00'\n"
        "  - name: right\n    rect: [0.5, 0.0, 0.5, 1.0]\n    enabled: false\n"
    )
    out = tmp_path / "out.mkv"
    code, _, stderr = veil(
        "mask", clip_mkv.path, "-o", out, "-c", config, "--disable", "left",
        "--enable", "right", "--color", "red", "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    frame = decode_all(out)[0]
    w = frame.shape[1]
    assert (frame[:, w // 2 :] == (0, 0, 255)).all()  # right, in the overriding red
    np.testing.assert_array_equal(frame[:, : w // 2], clip_mkv.frames[0][:, : w // 2])


def test_image_sequence_input_and_output(png_sequence: Clip, tmp_path: Path) -> None:
    out = tmp_path / "masked" / "%04d.png"
    code, _, stderr = veil(
        "mask", png_sequence.uri, "-o", out, "--fps", "30", "--rect", "0,0,1,1", "-q"
    )
    assert code == 0, stderr
    files = sorted((tmp_path / "masked").iterdir())
    assert len(files) == len(png_sequence.frames)
    assert not decode_all(str(out))[0].any()


@pytest.mark.parametrize(
    ("flag", "codecs"), [((), ["video"]), (("--keep-audio",), ["video", "audio"])]
)
def test_audio_is_dropped_unless_kept(
    clip_audio: Clip, tmp_path: Path, flag: tuple[str, ...], codecs: list[str]
) -> None:
    out = tmp_path / "out.mp4"
    code, _, stderr = veil("mask", clip_audio.path, "-o", out, "--rect", "0,0,0.5,0.5", *flag)
    assert code == 0, stderr
    assert [s["codec_type"] for s in probe_streams(out)] == codecs


def test_existing_output_is_kept(clip_mkv: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    code, _, stderr = veil("mask", clip_mkv.path, "-o", out, "--rect", "0,0,0.5,0.5")
    assert code == 1
    assert "already exists" in stderr
    assert "--overwrite" in stderr
    assert out.read_bytes() == b"precious"
    code, _, _ = veil("mask", clip_mkv.path, "-o", out, "--rect", "0,0,0.5,0.5", "--overwrite")
    assert code == 0
    assert len(decode_all(out)) == CLIP_FRAMES


def _bad_inputs(tmp: Path, clip: Clip) -> dict[str, tuple[list[str | Path], int, str]]:
    text = tmp / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    cut = tmp / "cut.mp4"
    data = clip.path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    typo = tmp / "typo.yaml"
    typo.write_text("masks:\n  - name: a\n    rect: [0.1, 0.1, 0.2, 0.2]\n    colour: red\n")
    empty = tmp / "empty.yaml"
    empty.write_text("masks: []\n")
    ok = ["--rect", "0.1,0.1,0.2,0.2"]
    out = tmp / "out.mp4"
    return {
        "missing file": ([tmp / "nope.mp4", "-o", out, *ok], 1, "no such file"),
        "not a video": ([text, "-o", out, *ok], 1, "cannot be read as video"),
        "truncated": ([cut, "-o", out, *ok], 1, "truncated"),
        "unknown output type": ([clip.path, "-o", tmp / "out.xyz", *ok], 2, "unknown output"),
        "unwritable folder": ([clip.path, "-o", "/proc/out.mp4", *ok], 1, "cannot write"),
        "missing folder": ([clip.path, "-o", tmp / "no" / "out.mp4", *ok], 1, "does not exist"),
        "polygon of 2 points": (
            [clip.path, "-o", out, "--polygon", "0.1,0.1,0.5,0.5"],
            2,
            "3 to 64 points",
        ),
        "odd polygon numbers": ([clip.path, "-o", out, "--polygon", "0.1,0.1,0.5"], 2, "x,y pairs"),
        "rect of 3 numbers": ([clip.path, "-o", out, "--rect", "0.1,0.1,0.5"], 2, "4 numbers"),
        "not numbers": ([clip.path, "-o", out, "--rect", "a,b,c,d"], 2, "numbers separated"),
        "out of range": ([clip.path, "-o", out, "--rect", "0.5,0.5,0.9,0.2"], 2, "within 0..1"),
        "unknown colour": ([clip.path, "-o", out, *ok, "--color", "blurple"], 2, "unknown colour"),
        "no masks": ([clip.path, "-o", out], 2, "nothing to mask"),
        "empty config": ([clip.path, "-o", out, "-c", empty], 2, "nothing to mask"),
        "all disabled": (
            [clip.path, "-o", out, *ok, "--disable", "cli-rect-1"],
            2,
            "nothing to mask",
        ),
        "unknown mask name": ([clip.path, "-o", out, *ok, "--enable", "door"], 2, "no mask has"),
        "config typo": ([clip.path, "-o", out, "-c", typo], 2, "typo.yaml:4"),
        "missing config": ([clip.path, "-o", out, "-c", tmp / "none.yaml"], 2, "none.yaml"),
        "fps on a file": ([clip.path, "-o", out, *ok, "--fps", "30"], 2, "image sequences only"),
        "cell size too small": ([clip.path, "-o", out, *ok, "--cell-size", "1"], 2, "cell_size"),
    }


BAD = [
    "missing file", "not a video", "truncated", "unknown output type", "unwritable folder",
    "missing folder", "polygon of 2 points", "odd polygon numbers", "rect of 3 numbers",
    "not numbers", "out of range", "unknown colour", "no masks", "empty config", "all disabled",
    "unknown mask name", "config typo", "missing config", "fps on a file", "cell size too small",
]  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input(case: str, clip_mp4: Clip, tmp_path: Path) -> None:
    args, want_code, message = _bad_inputs(tmp_path, clip_mp4)[case]
    code, stdout, stderr = veil("mask", *args)
    assert code == want_code, stderr
    assert message in stderr
    assert stderr.startswith("error:")
    assert "Traceback" not in stderr + stdout
    leftovers = [p.name for p in tmp_path.iterdir() if "out" in p.name or ".partial-" in p.name]
    assert leftovers == []


def test_damage_in_the_middle_is_reported_and_masked(clip_mp4: Clip, tmp_path: Path) -> None:
    damaged = garble_packet(clip_mp4, tmp_path / "damaged.mp4")
    out = tmp_path / "out.mkv"
    code, _, stderr = veil("mask", damaged, "-o", out, "--rect", "0,0,0.1,0.1")
    assert code == 0
    assert "warning" in stderr
    assert "fully masked" in stderr
    frames = decode_all(out)
    assert any(not f.any() for f in frames)


def test_progress_bar_on_a_terminal_only() -> None:
    shown = io.StringIO()
    with FrameProgress(50, console=Console(file=shown, force_terminal=True, width=100)) as bar:
        for done in range(1, 51):
            bar(done)
    assert bar.shown
    assert "fps" in shown.getvalue()
    assert "50/50" in shown.getvalue()
    hidden = io.StringIO()
    with FrameProgress(50, console=Console(file=hidden, force_terminal=False)) as bar:
        bar(10)
    assert not bar.shown
    assert hidden.getvalue() == ""
    with FrameProgress(50, enabled=False, console=Console(file=hidden, force_terminal=True)) as bar:
        bar(10)
    assert not bar.shown


def test_help_has_an_example() -> None:
    for command in (["mask", "--help"], ["demo", "--help"]):
        code, stdout, _ = veil(*command)
        assert code == 0
        assert "Example: veil" in stdout


def test_demo_writes_a_masked_clip(tmp_path: Path) -> None:
    code, stdout, stderr = veil("demo", "--output", tmp_path / "demo", "--quiet")
    assert code == 0, stderr
    masked = tmp_path / "demo" / "demo-masked.mp4"
    assert str(masked) in stdout
    assert str(tmp_path / "demo" / "demo-input.mp4") in stdout
    (stream,) = probe_streams(masked)
    assert (stream["width"], stream["height"], stream["nb_read_frames"]) == (640, 360, "250")
    # The tower mask is a magenta fill: exactly magenta up to H.264 noise.
    frame = decode_all(masked)[0]
    tower = frame[int(0.2 * 360) : int(0.5 * 360), int(0.76 * 640) : int(0.85 * 640)]
    assert np.abs(tower.astype(int) - (255, 0, 255)).max() <= 8


def _small_file_limit() -> None:
    # Writes past 64 KiB fail with EFBIG, as on a full disk, instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))


def test_output_that_cannot_be_written_fully_leaves_nothing(clip_mkv: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    args = ["mask", str(clip_mkv.path), "-o", str(out), "--rect", "0,0,0.5,0.5", "--quiet"]
    result = subprocess.run(
        [sys.executable, "-m", "veil", *args],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=_small_file_limit,
    )
    assert result.returncode == 1, result.stderr
    assert "error:" in result.stderr
    assert "size" in result.stderr or "disk" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_entry_point_exit_code(tmp_path: Path) -> None:
    args = ["mask", str(tmp_path / "nope.mp4"), "-o", "x.mp4", "--rect", "0,0,1,1"]
    result = subprocess.run(
        [sys.executable, "-m", "veil", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "no such file" in result.stderr
