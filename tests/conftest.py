"""Shared fixtures: small synthetic clips written with PyAV, and ffprobe to read outputs.

Clips are made once per test session (they are read-only inputs) and kept small
(160x120, a couple of dozen frames) so the media tests stay fast.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from playwright.sync_api import Browser, sync_playwright

from veil.core.frame import Image
from veil.media.source import open_source
from veil.media.synthetic import scene_frames, write_clip

CLIP_W, CLIP_H = 160, 120
CLIP_FRAMES = 24
CLIP_FPS = Fraction(25)

FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODELS = SHARED / "models"
TUD = SHARED / "data" / "TUD-Stadtmitte"
"""The developers' ground-truth sequence (MOTChallenge layout: img1/, gt/gt.txt)."""
"""../shared from the repository root: test media and detector weights (never committed)."""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""Debian's chromium as root on a machine with no network (see ARCHITECTURE.md)."""


def missing_in_ci(what: str) -> None:
    """A missing prerequisite fails the test in CI (a skip there would hide a broken
    install) and skips it elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: CI must have it (see scripts/install-system-deps.sh)")
    pytest.skip(f"{what} is missing")


def need_shared(path: Path) -> Path:
    """``path`` under ../shared, or the test fails in CI and skips elsewhere."""
    if not path.exists():
        missing_in_ci(f"{path} (../shared models and data)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium driven by Playwright, headless."""
    if shutil.which(CHROMIUM) is None:
        missing_in_ci(f"Debian's chromium ({CHROMIUM})")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@dataclass(frozen=True)
class Clip:
    """A written test clip and the exact BGR frames it was made from."""

    path: Path
    frames: list[Image]

    @property
    def uri(self) -> str:
        return str(self.path)


def clip_frames(count: int = CLIP_FRAMES, width: int = CLIP_W, height: int = CLIP_H) -> list[Image]:
    return list(scene_frames(width, height, count, CLIP_FPS))


def decode_all(uri: str | Path) -> list[Image]:
    """Every frame of a video, BGR, decoded with Veil's own source."""
    with open_source(str(uri)) as source:
        return [np.array(f.image) for f in source.frames()]


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip_mkv(media_dir: Path) -> Clip:
    """FFV1, lossless: decoding gives back exactly ``frames``."""
    frames = clip_frames()
    path = media_dir / "clip.mkv"
    write_clip(path, frames, fps=CLIP_FPS)
    return Clip(path, frames)


@pytest.fixture(scope="session")
def clip_mp4(media_dir: Path) -> Clip:
    """H.264, a keyframe every 8 frames (so damage stays local in corruption tests).

    One encoder thread: x264's output depends on its thread count, which follows the
    machine's cores, and tests must see the same bytes on every machine.
    """
    frames = clip_frames()
    path = media_dir / "clip.mp4"
    options = {"g": "8", "keyint_min": "8", "threads": "1"}
    write_clip(path, frames, fps=CLIP_FPS, codec_options=options)
    return Clip(path, frames)


@pytest.fixture(scope="session")
def clip_audio(media_dir: Path) -> Clip:
    """H.264 with a 440 Hz AAC tone."""
    frames = clip_frames(count=12)
    path = media_dir / "tone.mp4"
    write_clip(path, frames, fps=CLIP_FPS, audio_hz=440.0)
    return Clip(path, frames)


@pytest.fixture(scope="session")
def png_sequence(media_dir: Path) -> Clip:
    """Eight PNG files ``seq/000000.png`` ... (lossless, no timing of their own)."""
    frames = clip_frames(count=8)
    folder = media_dir / "seq"
    folder.mkdir()
    for i, image in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:06d}.png"), image)
    return Clip(folder / "%06d.png", frames)


def ffprobe(path: str | Path, *args: str) -> dict[str, Any]:
    """Debian's ffprobe on ``path``, as parsed JSON."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-of", "json", *args, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def probe_streams(path: str | Path) -> list[dict[str, Any]]:
    streams: list[dict[str, Any]] = ffprobe(
        path,
        "-count_frames",
        "-show_entries",
        "stream=codec_type,codec_name,width,height,r_frame_rate,nb_read_frames,pix_fmt,time_base",
    )["streams"]
    return streams


def probe_frame_times(path: str | Path) -> list[Fraction]:
    """Presentation times of the video frames as ffprobe reads them (exact fractions)."""
    data = ffprobe(path, "-select_streams", "v:0", "-show_entries", "frame=pts:stream=time_base")
    num, den = (int(x) for x in data["streams"][0]["time_base"].split("/"))
    return [Fraction(int(f["pts"]) * num, den) for f in data["frames"]]


def garble_packet(
    clip: Clip, out: Path, *, span: tuple[float, float] = (0.0, 1.0), seed: int = 7
) -> Path:
    """Copy ``clip`` to ``out`` with one predicted frame's payload replaced by random bytes.

    The damage is a whole frame's coded data, which decoders see (bad slice headers, CRCs).
    A few bytes changed at a fixed file offset are not enough: H.264 decoders can conceal
    such damage without a word, and where the offset lands depends on the encoder.
    ``span`` limits the damage to that part of the payload (FFV1 keeps its slice sizes at
    the end of a frame: with them intact the frame is decoded and flagged by its CRC,
    without them it is dropped).
    """
    with av.open(str(clip.path)) as container:
        packets = [
            (p.pos, p.size) for p in container.demux(video=0) if p.size and p.pos is not None
        ]
    position, size = packets[len(packets) // 2 + 1]
    data = bytearray(clip.path.read_bytes())
    # Keep the first 8 bytes (container framing and the NAL length) so the demuxer still
    # finds every packet and the damage stays inside one frame.
    start, end = (position + 8 + int((size - 8) * f) for f in span)
    data[start:end] = np.random.default_rng(seed).bytes(end - start)
    out.write_bytes(bytes(data))
    return out


class QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging each request to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 in a thread; yields its base URL."""
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http"
        )
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join(timeout=10)


def serving(folder: Path) -> contextlib.AbstractContextManager[str]:
    """``folder``'s files over HTTP (see :func:`http_server`)."""
    return http_server(functools.partial(QuietFileHandler, directory=str(folder)))
