"""Static masking speed and memory, against a plain PyAV transcode.

Run: ``python -m bench.bench_static`` (or ``python -m bench`` for every benchmark).

In one run, on synthetic H.264 clips (:mod:`veil.media.synthetic`):

1. 1080p and 720p, 20 s each: a plain PyAV decode + encode with the same encoder settings
   as Veil's mp4 output (libx264, crf 18, preset veryfast, yuv420p), frames passed
   straight from decoder to encoder; the same with the BGR conversion a numpy pipeline
   would need (decode -> BGR -> encode, no masking); Veil's pipeline with no mask (its own
   cost: reading, threads, writing); then ``veil`` masking with 8 polygon masks of each
   style (fill, mosaic, blur). Veil masks static-only configurations in the decoder's
   4:2:0 planes (veil.render.I420Renderer), so it needs no BGR conversion. Figures: fps
   and the overhead against both baselines. The runs are interleaved (each repeat runs
   every configuration once) so that a change in the machine's load hits all alike.
   The same again on real camera footage, ``../shared/data/walking.mp4`` (720p, people
   walking through the masks) when it is there, or the clips given with ``--video``, each
   also scaled to 1080p (there is no real 1080p clip in ../shared).
2. The renderers alone at 1080p with 8 polygon masks per style (frames per second), on
   BGR pictures and on 4:2:0 planes.
3. Peak memory (``ru_maxrss`` of a child process) masking a 10 s and a 60 s 720p clip:
   it must not grow with the video's length.

Targets (issue 2): masking adds at most 10% to the plain transcode; the renderers handle
at least 300 fps of 1080p with 8 masks.

Options: ``--seconds`` (clip length), ``--sizes 1080p`` (fewer sizes), ``--repeats`` (more
runs per figure when the machine is noisy), ``--noise 3`` (clips with a camera's sensor
noise in every frame: the synthetic scene alone has a still background, on which mosaic
and blur cells never flicker), ``--memory`` with no lengths (skip part 3).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import cv2
import numpy as np

from veil.config.schema import MaskConfig
from veil.core.frame import I420, Frame, Image
from veil.core.plan import MaskPlan
from veil.core.style import StyleKind
from veil.media.sink import ENCODINGS, add_video_stream, from_bgr, open_sink
from veil.media.source import open_source, to_bgr
from veil.media.synthetic import scene_frames, write_clip
from veil.pipeline import MaskingPipeline
from veil.policy.static import StaticPlanner
from veil.render import FrameRenderer

STYLES = (StyleKind.FILL, StyleKind.MOSAIC, StyleKind.BLUR)
RESOLUTIONS = {"1080p": (1920, 1080), "720p": (1280, 720)}
REAL_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "walking.mp4"
"""Real camera footage (720p, 25 fps, people walking through the masks), measured as well."""
TARGET_OVERHEAD = 0.10
TARGET_RENDER_FPS = 300.0


def eight_polygons(style: StyleKind) -> list[MaskConfig]:
    """8 irregular pentagons on a 4 x 2 grid, each about 3% of the picture."""
    masks = []
    for i in range(8):
        cx, cy = 0.125 + 0.25 * (i % 4), 0.25 + 0.5 * (i // 4)
        rx, ry = 0.09, 0.12
        points = [
            (cx - rx, cy - ry * 0.6),
            (cx + rx * 0.3, cy - ry),
            (cx + rx, cy),
            (cx + rx * 0.2, cy + ry),
            (cx - rx * 0.8, cy + ry * 0.7),
        ]
        masks.append(
            MaskConfig(name=f"m{i}", style=style, polygon=points, cell_size=24, blur_radius=24)
        )
    return masks


REPEATS = 3
"""Each figure is the best of this many runs (``--repeats``): other work on the machine
only slows a run."""


@dataclass(frozen=True)
class Timing:
    fps: float
    """Frames per wall-clock second."""
    cpu_ms: float
    """CPU milliseconds per frame, all threads (x264's included): unlike wall time,
    hardly changed by other processes sharing the machine."""


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(run: Callable[[], int], repeats: int = REPEATS) -> Timing:
    """Best of ``repeats`` runs of ``run`` (which returns its frame count)."""
    return _timed_all([run], repeats)[0]


def _timed_all(runs: list[Callable[[], int]], repeats: int = REPEATS) -> list[Timing]:
    """Best of ``repeats`` runs of each of ``runs``, interleaved (a, b, c, a, b, c...)."""
    best_wall = [float("inf")] * len(runs)
    best_cpu = [float("inf")] * len(runs)
    frames = [0] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            wall, cpu = time.perf_counter(), _cpu_seconds()
            frames[i] = run()
            best_wall[i] = min(best_wall[i], time.perf_counter() - wall)
            best_cpu[i] = min(best_cpu[i], _cpu_seconds() - cpu)
    return [
        Timing(n / wall, 1000 * cpu / n)
        for n, wall, cpu in zip(frames, best_wall, best_cpu, strict=True)
    ]


def plain_transcode(src: Path, dst: Path, through_bgr: bool) -> int:
    """Decode and re-encode with Veil's mp4 settings; optionally via BGR arrays."""
    encoding = ENCODINGS[".mp4"]
    count = 0
    options = encoding.container_options
    with av.open(str(src)) as inp, av.open(str(dst), "w", container_options=options) as out:
        istream = inp.streams.video[0]
        rate = Fraction(istream.average_rate or 25)
        ostream = add_video_stream(out, encoding.codec, rate, encoding.options)
        ostream.width, ostream.height = istream.codec_context.width, istream.codec_context.height
        ostream.pix_fmt = encoding.pix_fmt
        ostream.codec_context.time_base = istream.time_base or Fraction(1, 25)
        for frame in inp.decode(istream):
            if through_bgr:
                again = from_bgr(to_bgr(frame), encoding.pix_fmt)
                again.pts, again.time_base = frame.pts, frame.time_base
                frame = again
            out.mux(ostream.encode(frame))
            count += 1
        out.mux(ostream.encode(None))
    return count


def veil_mask(src: Path, dst: Path, masks: list[MaskConfig]) -> int:
    with open_source(src) as source, open_sink(dst, source, overwrite=True) as sink:
        stats = MaskingPipeline([StaticPlanner(masks)]).run(source, sink)
    return stats.frames


@dataclass(frozen=True)
class Row:
    name: str
    timing: Timing


def noisy(frames: Iterable[Image], sigma: float, seed: int = 1) -> Iterator[Image]:
    """``frames`` with fresh Gaussian noise of ``sigma`` levels in each: a camera's sensor
    noise, which the synthetic scene lacks (its background is the same in every frame)."""
    rng = np.random.default_rng(seed)
    for image in frames:
        noise = rng.normal(0.0, sigma, image.shape).astype(np.int16)
        yield np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def bench_resolution(
    folder: Path,
    label: str,
    size: tuple[int, int],
    seconds: int,
    noise: float = 0.0,
    repeats: int = REPEATS,
) -> list[Row]:
    """Plain transcodes and Veil with each style, on one fresh clip of this size."""
    clip = folder / f"clip-{label}.mp4"
    frames = scene_frames(size[0], size[1], seconds * 25)
    write_clip(clip, noisy(frames, noise) if noise > 0 else frames)
    return bench_clip(folder, label, clip, repeats)


def scale_clip(src: Path, dst: Path, size: tuple[int, int]) -> Path:
    """``src`` scaled to ``size`` (bicubic) and encoded as the synthetic clips are: real
    content at a size there is no real clip of. Scaling smooths it, which makes the plain
    transcode cheaper per pixel than a camera's own 1080p: the overhead ratios come out
    higher, not lower."""
    with open_source(src) as source:
        frames = (
            np.asarray(cv2.resize(frame.image, size, interpolation=cv2.INTER_CUBIC), np.uint8)
            for frame in source.frames()
        )
        write_clip(dst, frames, fps=source.fps)
    return dst


def bench_clip(folder: Path, label: str, clip: Path, repeats: int = REPEATS) -> list[Row]:
    """Plain transcodes and Veil with each style, on ``clip``."""
    out = folder / f"out-{label}.mp4"
    runs: dict[str, Callable[[], int]] = {
        "plain transcode": partial(plain_transcode, clip, out, False),
        "transcode via BGR": partial(plain_transcode, clip, out, True),
        "veil, no mask": partial(veil_mask, clip, out, []),
    }
    for style in STYLES:
        runs[f"veil 8 x {style.value}"] = partial(veil_mask, clip, out, eight_polygons(style))
    timings = _timed_all(list(runs.values()), repeats)
    return [Row(name, t) for name, t in zip(runs, timings, strict=True)]


def bench_transcode(
    folder: Path,
    seconds: int,
    labels: Iterable[str] = RESOLUTIONS,
    noise: float = 0.0,
    repeats: int = REPEATS,
) -> list[tuple[str, list[Row]]]:
    return [
        (label, bench_resolution(folder, label, RESOLUTIONS[label], seconds, noise, repeats))
        for label in labels
    ]


def bench_renderers(repeats: int = 30) -> list[Row]:
    """Each renderer on two pictures in turn, the second with more blue and red everywhere:
    every mosaic and blur cell changes in Y, U and V from one frame to the next, so none
    is held (the worst case; see veil.render.renderers.HeldCells)."""
    w, h = RESOLUTIONS["1080p"]
    image = next(iter(scene_frames(w, h, 1)))
    brighter: Image = np.asarray(cv2.add(image, np.full_like(image, (40, 0, 40))), np.uint8)
    pictures: list[tuple[str, tuple[Frame, Frame]]] = [("BGR", (_bgr(image), _bgr(brighter)))]
    pictures.append(("4:2:0", (_planar(image), _planar(brighter))))
    renderer = FrameRenderer()
    rows = []
    for kind, (first, second) in pictures:
        for style in STYLES:
            plan = StaticPlanner(eight_polygons(style)).plan(first)
            renderer.render(second, plan)  # warm up

            def run(plan: MaskPlan = plan, pair: tuple[Frame, Frame] = (first, second)) -> int:
                for i in range(repeats):
                    renderer.render(pair[i % 2], plan)
                return repeats

            rows.append(Row(f"{kind} 8 x {style.value}", _timed(run)))
    return rows


def _bgr(image: Image) -> Frame:
    return Frame(image, pts=0, time_base=Fraction(1, 25), index=0)


def _planar(image: Image) -> Frame:
    i420 = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
    return Frame(None, pts=0, time_base=Fraction(1, 25), index=0, i420=I420.from_array(i420))


def _memory_child(clip: str, out: str) -> None:
    """Mask ``clip`` and print the peak resident memory in MiB as JSON."""
    frames = veil_mask(Path(clip), Path(out), eight_polygons(StyleKind.FILL))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"frames": frames, "peak_mib": peak_kib / 1024}))


def bench_memory(folder: Path, lengths: tuple[int, ...]) -> list[tuple[int, int, float]]:
    w, h = RESOLUTIONS["720p"]
    rows = []
    for seconds in lengths:
        clip = folder / f"mem-{seconds}s.mp4"
        write_clip(clip, scene_frames(w, h, seconds * 25))
        result = subprocess.run(
            [sys.executable, "-m", "bench.bench_static", "--memory-child", str(clip)],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        data = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append((seconds, int(data["frames"]), float(data["peak_mib"])))
        clip.unlink()
    return rows


def _report(
    transcode: list[tuple[str, list[Row]]],
    renderers: list[Row],
    memory: list[tuple[int, int, float]],
    repeats: int = REPEATS,
    noise: float = 0.0,
) -> bool:
    print(f"best of {repeats} runs; overhead = extra CPU time per frame (wall-clock in brackets)")
    if noise > 0:
        print(f"clips with sensor noise of {noise:g} levels in every frame")
    ok = True
    verdicts: list[str] = []
    for label, rows in transcode:
        plain, via_bgr = rows[0].timing, rows[1].timing
        worst = max(
            (r.timing.cpu_ms / plain.cpu_ms - 1 for r in rows if r.name.startswith("veil 8")),
            default=0.0,
        )
        verdicts.append(
            f"{label} {worst:+.1%} ({'met' if worst <= TARGET_OVERHEAD else 'NOT met'})"
        )
        print(f"{label}:")
        for row in rows:
            t = row.timing
            line = f"  {row.name:<20} {t.fps:6.1f} fps  {t.cpu_ms:6.2f} ms CPU/frame"
            if row.name.startswith("veil 8"):
                over_cpu = t.cpu_ms / plain.cpu_ms - 1
                over_wall = plain.fps / t.fps - 1
                over_bgr = t.cpu_ms / via_bgr.cpu_ms - 1
                ok &= over_cpu <= TARGET_OVERHEAD
                line += (
                    f"  {over_cpu:+6.1%} ({over_wall:+6.1%}) vs plain  {over_bgr:+6.1%} vs via-BGR"
                )
            print(line)
    print("renderers alone, 1080p, 8 polygon masks:")
    for row in renderers:
        t = row.timing
        ok &= t.fps >= TARGET_RENDER_FPS
        print(f"  {row.name:<20} {t.fps:6.1f} fps  {t.cpu_ms:6.2f} ms CPU/frame")
    if memory:
        print("peak memory masking 720p (8 fill masks):")
        for seconds, frames, mib in memory:
            print(f"  {seconds:3d} s ({frames} frames): {mib:6.1f} MiB")
    print(
        f"largest masking overhead per clip (target {TARGET_OVERHEAD:.0%}): " + "; ".join(verdicts)
    )
    print(
        f"targets: overhead <= {TARGET_OVERHEAD:.0%} vs plain on every clip, renderers >= "
        f"{TARGET_RENDER_FPS:.0f} fps: {'met' if ok else 'NOT met'}"
    )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return ok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=20, help="length of the speed clips")
    parser.add_argument(
        "--memory", type=int, nargs="*", default=[10, 60], help="clip lengths for peak memory"
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=list(RESOLUTIONS),
        default=list(RESOLUTIONS),
        help="picture sizes of the speed clips",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="sensor noise (standard deviation in levels) added to every frame of the clips",
    )
    parser.add_argument(
        "--video",
        action="append",
        type=Path,
        help="also measure on this real clip (repeatable; default: ../shared/data/walking.mp4 "
        "when it is there, real camera footage at 720p)",
    )
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs per figure (best)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        with tempfile.TemporaryDirectory() as tmp:
            _memory_child(args.memory_child, str(Path(tmp) / "out.mp4"))
        return
    with tempfile.TemporaryDirectory(prefix="veil-bench-") as tmp:
        folder = Path(tmp)
        transcode = bench_transcode(folder, args.seconds, args.sizes, args.noise, args.repeats)
        videos = args.video if args.video is not None else [v for v in [REAL_CLIP] if v.is_file()]
        for video in videos:
            label = f"real clip {video.name}"
            transcode.append((label, bench_clip(folder, f"real-{video.stem}", video, args.repeats)))
            if "1080p" in args.sizes:
                scaled = scale_clip(video, folder / f"real-{video.stem}-1080p.mp4", (1920, 1080))
                label = f"real clip {video.name} scaled to 1080p"
                transcode.append((label, bench_clip(folder, scaled.stem, scaled, args.repeats)))
        # Veil's pipeline runs OpenCV on one thread for static masks (see veil.pipeline);
        # the renderers alone are measured the same way.
        cv2.setNumThreads(1)
        renderers = bench_renderers()
        memory = bench_memory(folder, tuple(args.memory))
    _report(transcode, renderers, memory, args.repeats, args.noise)


if __name__ == "__main__":
    main()
