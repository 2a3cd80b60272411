"""Speed of the motion detector at 1080p, processing only (no decoding or encoding).

Run: ``.venv/bin/python bench/bench_motion.py`` (add ``--frames N``, ``--threads N``).

A synthetic 1080p clip is made in memory (a textured background, sensor noise, a few
moving shapes) and only :meth:`MotionDetector.detect` is timed, per frame, after the
learning phase; the silhouette path (``last_foreground``) and per-blob ``shapes()`` are
timed on top. Each processing width is run in turn; the target is 60 fps at 1080p.

Columns: median wall time of detect(), its 95th percentile, frames per second; the same
with ``last_foreground`` (silhouettes) and with ``shapes()``; detect() while learning;
median CPU time of detect() summed over all threads (with ``--threads 1`` this is what the
wall time would be on an idle core, so it is the figure to trust on a busy machine).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from fractions import Fraction

import cv2
import numpy as np
from numpy.typing import NDArray

from veil.core.frame import Frame
from veil.detect.motion import MotionDetector, MotionSettings

WIDTH, HEIGHT = 1920, 1080
FPS = 30.0
TARGET_FPS = 60.0
Image = NDArray[np.uint8]


class Clip:
    """Frames of a textured scene with moving shapes and fresh-looking noise."""

    def __init__(self, seed: int = 0, noise_fields: int = 6, noise: float = 4.0) -> None:
        rng = np.random.default_rng(seed)
        coarse = rng.integers(30, 226, (HEIGHT // 24, WIDTH // 24, 3), dtype=np.uint8)
        scene = cv2.resize(coarse, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
        grain = rng.integers(-15, 16, (HEIGHT, WIDTH, 3), dtype=np.int16)
        self.scene: Image = np.asarray(cv2.add(scene, grain, dtype=cv2.CV_8U), np.uint8)
        # A few noise fields reused in turn: making fresh noise per frame would take longer
        # than the detector itself. Rolling them by a frame-dependent offset varies them.
        self.noise = [
            np.clip(rng.normal(0, noise, (HEIGHT, WIDTH, 3)), -127, 127).astype(np.int16)
            for _ in range(noise_fields)
        ]

    def frame(self, index: int, moving: bool = True) -> Frame:
        picture = self.scene.copy()
        if moving:
            t = index / FPS
            # A walking "person", a car-sized box and a small far-away figure.
            x = int(200 + (t * 300) % 1400)
            cv2.rectangle(picture, (x, 400), (x + 120, 800), (40, 40, 160), -1)
            cv2.circle(picture, (x + 60, 360), 40, (150, 170, 200), -1)
            cx = int(1700 - (t * 500) % 1500)
            cv2.rectangle(picture, (cx, 850), (cx + 300, 1000), (200, 200, 200), -1)
            fx = int(900 + 200 * np.sin(t))
            cv2.rectangle(picture, (fx, 150), (fx + 20, 200), (10, 10, 10), -1)
        noise = np.roll(self.noise[index % len(self.noise)], index * 7, axis=1)
        image: Image = np.asarray(cv2.add(picture, noise, dtype=cv2.CV_8U), np.uint8)
        return Frame(image, index, Fraction(1, int(FPS)), index)


def bench_width(clip: Clip, width: int, frames: int) -> dict[str, float]:
    settings = MotionSettings(fps=FPS, learning_time=1.0, processing_width=width)
    detector = MotionDetector(settings)
    learning_times = []
    for i in range(settings.learning_frames):
        frame = clip.frame(i)
        t0 = time.perf_counter()
        detector.detect(frame)
        learning_times.append(time.perf_counter() - t0)
    detect_times: list[float] = []
    cpu_times: list[float] = []
    silhouette_times: list[float] = []
    shapes_times: list[float] = []
    blobs = 0
    start = settings.learning_frames
    for i in range(start, start + frames):
        frame = clip.frame(i)
        c0 = time.process_time()
        t0 = time.perf_counter()
        found = detector.detect(frame)
        t1 = time.perf_counter()
        cpu_times.append(time.process_time() - c0)
        _ = detector.last_foreground
        t2 = time.perf_counter()
        detect_times.append(t1 - t0)
        silhouette_times.append(t2 - t0)
        if i % 10 == 0:
            t3 = time.perf_counter()
            detector.shapes()
            shapes_times.append(time.perf_counter() - t3 + (t1 - t0))
        blobs += len(found)
        if detector.learning:
            raise SystemExit(f"width {width}: re-learned at frame {i}; the clip is wrong")
    return {
        "width": width,
        "detect_ms": 1e3 * statistics.median(detect_times),
        "cpu_ms": 1e3 * statistics.median(cpu_times),
        "detect_p95_ms": 1e3 * sorted(detect_times)[int(0.95 * len(detect_times))],
        "silhouette_ms": 1e3 * statistics.median(silhouette_times),
        "shapes_ms": 1e3 * statistics.median(shapes_times),
        "learning_ms": 1e3 * statistics.median(learning_times),
        "blobs_per_frame": blobs / frames,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=300, help="timed frames per width")
    parser.add_argument("--threads", type=int, default=-1, help="cv2.setNumThreads (-1: keep)")
    parser.add_argument("--widths", type=int, nargs="+", default=[480, 640, 960])
    args = parser.parse_args()
    if args.threads >= 0:
        cv2.setNumThreads(args.threads)
    clip = Clip()
    bench_width(clip, args.widths[0], 30)  # warm-up: page in the clip, start OpenCV's threads
    print(
        f"motion detector, {WIDTH}x{HEIGHT} synthetic clip, {args.frames} frames per width, "
        f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads"
    )
    print(
        f"{'width':>6} {'detect':>9} {'p95':>9} {'fps':>7} {'+silh.':>9} {'fps':>7} "
        f"{'+shapes':>9} {'learning':>9} {'cpu':>8} {'blobs':>6}  vs {TARGET_FPS:.0f} fps"
    )
    for width in args.widths:
        r = bench_width(clip, width, args.frames)
        fps = 1e3 / r["detect_ms"]
        silhouette_fps = 1e3 / r["silhouette_ms"]
        verdict = "ok" if silhouette_fps >= TARGET_FPS else "TOO SLOW"
        print(
            f"{width:>6} {r['detect_ms']:>7.2f}ms {r['detect_p95_ms']:>7.2f}ms {fps:>7.0f} "
            f"{r['silhouette_ms']:>7.2f}ms {silhouette_fps:>7.0f} {r['shapes_ms']:>7.2f}ms "
            f"{r['learning_ms']:>7.2f}ms {r['cpu_ms']:>6.2f}ms {r['blobs_per_frame']:>6.1f}  "
            f"{verdict}"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (clip in memory included): {peak_mb:.0f} MB")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs; other work skews it")


if __name__ == "__main__":
    main()
