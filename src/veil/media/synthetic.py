"""A built-in synthetic scene: a textured street with people walking across it.

Used by ``veil demo`` and by the tests and benchmarks, so Veil can show and check what
it does without downloading anything. The clip is deterministic: the same arguments
give the same pixels on every machine (drawing uses integer coordinates only).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from veil.core.errors import UsageError
from veil.core.frame import Image
from veil.media.sink import add_audio_stream, add_video_stream, from_bgr

DEMO_SIZE = (640, 360)
DEMO_FPS = Fraction(25)
DEMO_SECONDS = 10


@dataclass(frozen=True, slots=True)
class _Walker:
    """One figure: where it walks, how fast, and its colours (BGR)."""

    y: float
    """Feet height as a share of the picture height."""
    speed: float
    """Picture widths per second; negative walks right to left."""
    phase: float
    size: float
    """Body height as a share of the picture height."""
    clothes: tuple[int, int, int]
    skin: tuple[int, int, int]


_WALKERS = (
    _Walker(0.88, 0.10, 0.05, 0.55, (40, 40, 160), (140, 170, 220)),
    _Walker(0.80, -0.07, 0.45, 0.45, (120, 60, 20), (90, 120, 170)),
    _Walker(0.72, 0.05, 0.75, 0.35, (30, 110, 30), (120, 150, 200)),
    _Walker(0.95, -0.12, 0.25, 0.62, (100, 100, 100), (70, 95, 140)),
)


def _background(width: int, height: int, seed: int) -> Image:
    """Sky, buildings with windows, a pavement; textured so masks have detail to hide."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    img[..., 0] = (200 - 60 * rows).astype(np.uint8)
    img[..., 1] = (170 - 50 * rows).astype(np.uint8)
    img[..., 2] = (150 - 40 * rows).astype(np.uint8)
    horizon = int(height * 0.62)
    x = 0
    while x < width:
        w = int(rng.integers(width // 12, width // 5))
        top = int(rng.integers(height // 10, horizon - height // 8))
        shade = int(rng.integers(60, 150))
        cv2.rectangle(img, (x, top), (x + w, horizon), (shade, shade - 10, shade - 20), -1)
        for wy in range(top + 8, horizon - 10, 18):
            for wx in range(x + 6, x + w - 10, 16):
                lit = int(rng.integers(0, 2))
                colour = (60, 200, 230) if lit else (50, 50, 60)
                cv2.rectangle(img, (wx, wy), (wx + 7, wy + 9), colour, -1)
        x += w + int(rng.integers(2, 12))
    img[horizon:] = (90, 95, 100)
    noise = rng.integers(-12, 13, (height - horizon, width, 1), dtype=np.int16)
    img[horizon:] = np.clip(img[horizon:].astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return img


def _draw_walker(img: Image, walker: _Walker, t: float) -> None:
    h, w = img.shape[:2]
    body_h = walker.size * h
    span = w + body_h
    pos = (walker.phase + walker.speed * t) % 1.0
    cx = int(pos * span - body_h / 2) if walker.speed > 0 else int((1 - pos) * span - body_h / 2)
    feet = int(walker.y * h)
    head_r = max(3, int(body_h * 0.11))
    body_w = max(4, int(body_h * 0.18))
    swing = int(body_h * 0.08 * math.sin(t * 6 + walker.phase * 10))
    top = feet - int(body_h)
    # Legs, body, arms.
    cv2.line(img, (cx, feet - int(body_h * 0.45)), (cx - swing, feet), walker.clothes, body_w // 2)
    cv2.line(img, (cx, feet - int(body_h * 0.45)), (cx + swing, feet), walker.clothes, body_w // 2)
    body_top = top + 2 * head_r
    cv2.ellipse(
        img,
        (cx, (body_top + feet - int(body_h * 0.4)) // 2),
        (body_w, max(2, (feet - int(body_h * 0.4) - body_top) // 2)),
        0,
        0,
        360,
        walker.clothes,
        -1,
    )
    # A face-like head: skin disc, two eyes, a mouth.
    head = (cx, top + head_r)
    cv2.circle(img, head, head_r, walker.skin, -1)
    eye_dx, eye_dy = max(1, head_r // 3), max(1, head_r // 4)
    eye_r = max(1, head_r // 6)
    cv2.circle(img, (head[0] - eye_dx, head[1] - eye_dy), eye_r, (30, 30, 30), -1)
    cv2.circle(img, (head[0] + eye_dx, head[1] - eye_dy), eye_r, (30, 30, 30), -1)
    mouth_y = head[1] + head_r // 2
    cv2.line(img, (head[0] - eye_dx, mouth_y), (head[0] + eye_dx, mouth_y), (40, 40, 120), 2)


def scene_frames(
    width: int = DEMO_SIZE[0],
    height: int = DEMO_SIZE[1],
    count: int = int(DEMO_SECONDS * DEMO_FPS),
    fps: Fraction = DEMO_FPS,
    seed: int = 7,
) -> Iterator[Image]:
    """``count`` BGR frames of the scene; the same arguments always give the same frames."""
    if width < 16 or height < 16 or count < 0:
        raise UsageError(
            f"scene must be at least 16x16 with a frame count >= 0, got {width}x{height}"
        )
    background = _background(width, height, seed)
    # Walkers are drawn from the back (highest on screen) to the front.
    walkers = sorted(_WALKERS, key=lambda wk: wk.y)
    for i in range(count):
        img = background.copy()
        t = float(i / fps)
        for walker in walkers:
            _draw_walker(img, walker, t)
        yield img


_CODECS: dict[str, tuple[str, str, dict[str, str]]] = {
    ".mp4": ("libx264", "yuv420p", {"crf": "18", "preset": "veryfast"}),
    ".mov": ("libx264", "yuv420p", {"crf": "18", "preset": "veryfast"}),
    ".mkv": ("ffv1", "bgr0", {"level": "3", "slicecrc": "1", "g": "1"}),
    ".avi": ("ffv1", "bgr0", {"g": "1"}),
}


def write_clip(
    path: str | os.PathLike[str],
    frames: Iterable[Image],
    *,
    fps: Fraction = DEMO_FPS,
    audio_hz: float | None = None,
    codec_options: dict[str, str] | None = None,
) -> int:
    """Encode ``frames`` to ``path`` (mp4: H.264, mkv/avi: FFV1) with PyAV; return the count.

    ``audio_hz`` adds a mono 48 kHz sine tone of that pitch, as long as the video.
    ``codec_options`` are added to the encoder options (for example ``{"g": "10"}``).
    The file is written directly (no temporary name): this is for test and demo inputs.
    """
    target = Path(path)
    spec = _CODECS.get(target.suffix.lower())
    if spec is None:
        raise UsageError(f"{target}: write_clip supports {', '.join(_CODECS)}")
    codec, pix_fmt, options = spec
    count = 0
    with av.open(str(target), mode="w") as container:
        video = add_video_stream(container, codec, fps, {**options, **(codec_options or {})})
        video.pix_fmt = pix_fmt
        time_base = Fraction(1) / fps
        video.codec_context.time_base = time_base
        # Every stream must exist before the first packet is written.
        tone = None if audio_hz is None else _Tone(container, audio_hz)
        for image in frames:
            if count == 0:
                video.height, video.width = image.shape[:2]
            frame = from_bgr(image, video.pix_fmt)
            frame.pts = count
            frame.time_base = time_base
            container.mux(video.encode(frame))
            count += 1
            if tone is not None:
                # Interleave: audio up to the end of this frame.
                tone.write_until(Fraction(count) / fps)
        container.mux(video.encode(None))
        if tone is not None:
            tone.finish()
    return count


class _Tone:
    """A mono sine tone written alongside the video."""

    RATE = 48000

    def __init__(self, container: av.container.OutputContainer, hz: float) -> None:
        self._container = container
        self._hz = hz
        self._flac = not container.format.name.startswith(("mov", "mp4"))
        self._stream = add_audio_stream(container, "flac" if self._flac else "aac", self.RATE)
        self._stream.layout = "mono"
        self._written = 0

    def write_until(self, seconds: Fraction) -> None:
        end = int(seconds * self.RATE)
        if end <= self._written:
            return
        t = np.arange(self._written, end, dtype=np.float64) / self.RATE
        samples = (0.3 * np.sin(2 * np.pi * self._hz * t)).astype(np.float32)[None, :]
        if self._flac:
            frame = av.AudioFrame.from_ndarray(
                (samples * 32767).astype(np.int16), format="s16", layout="mono"
            )
        else:
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = self.RATE
        frame.pts = self._written
        frame.time_base = Fraction(1, self.RATE)
        self._container.mux(self._stream.encode(frame))
        self._written = end

    def finish(self) -> None:
        self._container.mux(self._stream.encode(None))


def write_demo_clip(path: str | os.PathLike[str]) -> int:
    """The demo clip: 640x360, 10 s at 25 fps, H.264 (mp4). Returns the frame count."""
    width, height = DEMO_SIZE
    return write_clip(path, scene_frames(width, height), fps=DEMO_FPS)
