"""`veil mask` with dynamic masking options, end to end through the real command."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from typer.testing import CliRunner

from conftest import CLIP_FPS, SHARED, TUD, decode_all, need_shared
from veil.cli.app import app
from veil.eval.groundtruth import load_ground_truth
from veil.media.synthetic import scene_frames, write_clip
from veil.models import MODEL_DIR_ENV

MAGENTA = np.array([255, 0, 255], np.uint8)  # BGR of #ff00ff


def _magenta(image: NDArray[np.uint8]) -> NDArray[np.bool_]:
    # Lossless FFV1 output: the fill colour is exact.
    hit: NDArray[np.bool_] = np.all(image == MAGENTA, axis=2)
    return hit


@pytest.fixture(scope="module")
def walking_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s lossless clip of moving figures (the built-in demo scene), 10 fps."""
    path = tmp_path_factory.mktemp("dyn") / "scene.mkv"
    write_clip(path, list(scene_frames(160, 120, 20, Fraction(10))), fps=Fraction(10))
    return path


def test_reset_background_masks_everything_while_relearning(
    walking_clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "motion.mkv"
    config = tmp_path / "c.yaml"
    config.write_text("dynamic:\n  methods: [motion]\n  learning_time: 0.3\n  hold_time: 0.2\n")
    result = CliRunner().invoke(
        app,
        [
            "mask", str(walking_clip), "-o", str(out), "--quiet", "-c", str(config),
            "--style", "fill", "--color", "#ff00ff", "--reset-background-at", "1.2",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    covered = [float(_magenta(f).mean()) for f in decode_all(out)]
    assert len(covered) == 20
    # 10 fps: learning covers frames 0-2 and the hold after it frames 3-4; the reset at
    # 1.2 s covers frames 12-14 and 15-16 again.
    assert covered[:5] == [1.0] * 5
    assert all(c < 1.0 for c in covered[5:12]), covered
    assert covered[12:17] == [1.0] * 5
    assert all(c < 1.0 for c in covered[17:]), covered


def test_motion_after_learning_masks_the_movers_only(tmp_path: Path) -> None:
    clip = tmp_path / "scene.mkv"
    frames_in = list(scene_frames(160, 120, 40, CLIP_FPS))
    write_clip(clip, frames_in, fps=CLIP_FPS)
    out = tmp_path / "motion.mkv"
    config = tmp_path / "c.yaml"
    config.write_text("dynamic:\n  methods: [motion]\n  learning_time: 0.4\n")
    result = CliRunner().invoke(
        app, ["mask", str(clip), "-o", str(out), "--quiet", "-c", str(config), "--color", "#f0f"]
    )
    assert result.exit_code == 0, result.output
    frames = decode_all(out)
    assert _magenta(frames[0]).all(), "learning: the whole frame is masked"
    late = _magenta(frames[-1])
    assert 0.0 < late.mean() < 0.6, "after learning: the movers are masked, not the scene"
    # Outside the mask the picture is the original (lossless output).
    assert np.array_equal(frames[-1][~late], frames_in[-1][~late])


def test_bad_method_is_refused_with_exit_2(walking_clip: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["mask", str(walking_clip), "-o", str(tmp_path / "o.mkv"), "--method", "ghosts"]
    )
    assert result.exit_code == 2
    assert "ghosts" in result.output
    assert not (tmp_path / "o.mkv").exists()


def test_include_needs_pairs(walking_clip: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["mask", str(walking_clip), "-o", str(tmp_path / "o.mkv"), "-m", "motion",
         "--include", "0,0,1,0,1"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "odd number" in result.output


@pytest.fixture
def tud_slice(tmp_path: Path) -> Path:
    need_shared(SHARED / "models" / "yolox_nano.onnx")
    need_shared(TUD / "img1")
    folder = tmp_path / "tud"
    folder.mkdir()
    for n in range(1, 11):
        shutil.copy(TUD / "img1" / f"{n:06d}.jpg", folder / f"{n:06d}.jpg")
    return folder


def test_humans_to_png_sequence_covers_every_person(
    tud_slice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(SHARED / "models"))
    out = tmp_path / "out" / "%06d.png"
    result = CliRunner().invoke(
        app,
        ["mask", str(tud_slice / "%06d.jpg"), "-o", str(out), "--quiet",
         "--method", "humans", "--style", "fill", "--color", "#ff00ff"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    gt = load_ground_truth(TUD / "gt" / "gt.txt")
    for n in range(1, 11):
        image = cv2.imread(str(tmp_path / "out" / f"{n:06d}.png"))
        assert image is not None
        masked = _magenta(np.asarray(image, dtype=np.uint8))
        for x, y, w, h in gt.xywh[gt.rows(n)]:
            x0, y0 = max(0, int(x)), max(0, int(y))
            x1, y1 = min(640, int(x + w)), min(480, int(y + h))
            assert masked[y0:y1, x0:x1].mean() >= 0.9, f"frame {n}: person at {x},{y} leaks"
