"""Benchmark: time added per 1080p frame by projecting and rendering 32 PTZ scene masks.

Run: ``.venv/bin/python bench/bench_ptz.py`` (``--frames N`` to change the count).

Scenarios, each against the same frames rendered with an empty plan (which costs nothing:
``FrameRenderer`` returns the frame unchanged):

- ``moving``: the camera pans and zooms a little every frame, so every frame needs a new
  projection and rasterisation of every mask (no cache hit). All 32 masks are in view:
  the worst case.
- ``moving+uncertain``: as ``moving``, with the motion uncertainty of a real camera (the
  masks grow every frame, more margin shapes to rasterise).
- ``still``: the camera stands still; the planner returns its cached plan and only the
  drawing remains.

The target is under 2 ms per frame added (issue 6). Figures are medians over the frames.

Columns: ``layers`` (masks drawn), ``plan`` (project and rasterise), ``render`` (the
project's ``FrameRenderer`` drawing those plans), ``added`` (plan and render together, one
frame after another, minus the empty plan's cost). ``--cpu`` times with the process's CPU
clock, for a machine shared with other work.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from veil.core.frame import Frame
from veil.core.plan import MaskPlan
from veil.core.style import Style
from veil.ptz.camera import Lens, PTZState
from veil.ptz.masks import PTZMaskPlanner, SceneMask
from veil.ptz.onvif_status import EXACT, MotionUncertainty, PTZReading, PTZVelocity
from veil.render.renderers import FrameRenderer

WIDTH, HEIGHT = 1920, 1080
TARGET_MS = 2.0


def make_masks(count: int = 32) -> list[SceneMask]:
    """``count`` hexagonal masks about 4 degrees wide, on an 8 x 4 grid spanning the wide
    view around pan 0, tilt 0 (all in view at zoom 0)."""
    masks = []
    angles = np.radians(np.arange(6) * 60.0)
    for k in range(count):
        col, row = k % 8, k // 8
        pan, tilt = -24.0 + col * 6.8, -10.5 + row * 7.0
        verts = np.stack([pan + 2.2 * np.cos(angles), tilt + 1.8 * np.sin(angles)], axis=1)
        masks.append(SceneMask(verts, name=f"m{k}", margin_px=2.0))
    return masks


class _Feed:
    """A position provider stepping along a slow pan and zoom, one reading per frame."""

    def __init__(self, moving: bool) -> None:
        self.moving = moving
        self.k = 0

    def read(self) -> PTZReading:
        if not self.moving:
            return PTZReading(PTZState(0.0, 0.0, 0.02), moving=False, timestamp=0.0)
        self.k += 1
        state = PTZState(0.02 * (self.k % 50), 0.01 * (self.k % 30), 0.02 + 0.0002 * (self.k % 40))
        return PTZReading(state, True, 0.0, PTZVelocity(0.5, 0.25, 0.005))


_CLOCKS: dict[bool, Callable[[], float]] = {False: time.perf_counter, True: time.process_time}
_clock = time.perf_counter


def _median_ms(fn: Callable[[Frame], object], frames: list[Frame]) -> float:
    times = []
    for frame in frames:
        t0 = _clock()
        fn(frame)
        times.append((_clock() - t0) * 1e3)
    return statistics.median(times)


def _scenario(
    planner: PTZMaskPlanner, frames: list[Frame], renderer: FrameRenderer, base: float
) -> dict[str, float]:
    for frame in frames[:5]:  # warm up
        renderer.render(frame, planner.plan(frame))
    plan_ms = _median_ms(planner.plan, frames)
    plans = [planner.plan(f) for f in frames[:20]]
    return {
        "layers": float(len(plans[-1].layers)),
        "plan_ms": plan_ms,
        "render_ms": _median_ms(lambda f: renderer.render(f, plans[f.index % 20]), frames),
        "added_ms": _median_ms(lambda f: renderer.render(f, planner.plan(f)), frames) - base,
    }


def main(frames_count: int = 200, cpu_time: bool = False) -> dict[str, float]:
    """Run every scenario over ``frames_count`` frames, print a table, return the figures.

    ``cpu_time`` times with the process's CPU clock instead of the wall clock: on a machine
    shared with other work, it leaves out the time the process waited for a core.
    """
    global _clock
    _clock = _CLOCKS[cpu_time]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames = [Frame(image, pts=i, time_base=Fraction(1, 25), index=i) for i in range(frames_count)]
    masks = make_masks()
    lens = Lens(60.0, 3.0)
    style = Style()
    renderer = FrameRenderer()
    empty = MaskPlan(WIDTH, HEIGHT)
    base = _median_ms(lambda f: renderer.render(f, empty), frames)
    results: dict[str, float] = {"baseline_ms": base}
    print(
        f"{WIDTH}x{HEIGHT}, {len(masks)} masks, {frames_count} frames, "
        f"median {'CPU' if cpu_time else 'wall'} ms; "
        f"baseline (empty plan, FrameRenderer) {base:.3f}"
    )
    print(f"{'scenario':>17} {'layers':>6} {'plan':>7} {'render':>7} {'added':>7}")
    scenarios = {
        "moving": PTZMaskPlanner(masks, lens, _Feed(True), style, EXACT, clock=lambda: 0.0),
        "moving+uncertain": PTZMaskPlanner(
            masks,
            lens,
            _Feed(True),
            style,
            MotionUncertainty(accuracy_deg=0.1, latency_s=0.05),
            clock=lambda: 0.0,
        ),
        "still": PTZMaskPlanner(masks, lens, _Feed(False), style, EXACT, clock=lambda: 0.0),
    }
    for name, planner in scenarios.items():
        row = _scenario(planner, frames, renderer, base)
        for key, value in row.items():
            results[f"{name}_{key}"] = value
        print(
            f"{name:>17} {int(row['layers']):>6} {row['plan_ms']:>7.3f} {row['render_ms']:>7.3f} "
            f"{row['added_ms']:>7.3f}"
        )
    print(
        "plan: project + rasterise; render: FrameRenderer on those plans; "
        f"added: plan + render in one loop, minus the baseline. Target: added < {TARGET_MS} ms."
    )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--cpu", action="store_true", help="time with the process CPU clock")
    args = parser.parse_args()
    main(args.frames, args.cpu)
