"""Speed of redaction on a 720p, 25 fps video, against a plain decode and encode.

Run: ``.venv/bin/python bench/bench_redact.py`` (``--video PATH``, ``--skip-variants``).

The video is ``../shared/data/walking.mp4`` (1280x720, 25 fps, 341 frames, about 40 people
seen from above). Every figure comes from this one run, so they are comparable:

- ``decode``: PyAV decoding to BGR only (Veil's source);
- ``decode+encode``: the same frames encoded again to H.264 (Veil's sink), nothing else: the
  floor any export stands on;
- ``analyse``: the whole analysis (decode, persons, faces, motion, both tracking passes,
  thumbnails), with the default settings and, unless ``--skip-variants``, without faces and
  motion and with a smaller person input;
- ``export``: from the saved analysis, all persons masked (mask-selected, fill and mosaic) and
  one person kept (mask-all-except): decode, plan, render, encode, hash, sign.

Targets: analysis at least real time (25 fps), export at least twice real time (50 fps).
Besides wall-clock frames per second, each line gives the process CPU seconds per frame
(all threads): on a shared, busy machine the wall time grows with the other load, the CPU
time much less. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VIDEO = SHARED / "data" / "walking.mp4"
MODELS = SHARED / "models"
REAL_TIME = 25.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(run: Callable[[], int]) -> tuple[int, float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    frames = run()
    return frames, time.perf_counter() - wall, _cpu() - cpu


def _line(name: str, frames: int, wall: float, cpu: float) -> str:
    fps = frames / wall if wall > 0 else 0.0
    return (
        f"{name:<44} {fps:7.1f} fps  {fps / REAL_TIME:5.2f}x real time  "
        f"{1000 * wall / frames:7.1f} ms/frame wall  {1000 * cpu / frames:7.1f} ms/frame CPU"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--skip-variants", action="store_true")
    args = parser.parse_args(argv)
    if not args.video.is_file() or not (MODELS / "yolox_nano.onnx").is_file():
        print(f"missing {args.video} or the models in {MODELS}", file=sys.stderr)
        return 2

    from veil.media.sink import open_sink
    from veil.media.source import open_source
    from veil.redact.analysis import Analysis, AnalysisSettings, analyse_video
    from veil.redact.export import export_redaction
    from veil.redact.offline_tracks import TrackKind
    from veil.redact.selection import ResolvedSelection, parse_selection, resolve

    video = str(args.video)
    print(f"video {video}; {os.cpu_count()} CPUs; load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["XDG_CONFIG_HOME"] = str(work / "config")

        def decode() -> int:
            with open_source(video) as source:
                return sum(1 for _ in source.frames())

        def decode_encode() -> int:
            with open_source(video) as source, open_sink(work / "plain.mp4", source) as sink:
                n = 0
                for frame in source.frames():
                    sink.write(frame)
                    n += 1
                return n

        print(_line("decode (PyAV, BGR)", *_timed(decode)))
        print(_line("decode+encode (H.264, no masking)", *_timed(decode_encode)))

        settings = AnalysisSettings(model_dir=str(MODELS))
        variants = [("analyse: persons 640 + faces + motion", settings)]
        if not args.skip_variants:
            variants += [
                ("analyse: persons 640 only", replace(settings, faces=False, motion=False)),
                (
                    "analyse: persons 416 only",
                    replace(settings, faces=False, motion=False, person_input_size=416),
                ),
            ]
        results: list[Analysis] = []
        for name, variant in variants:

            def run(variant: AnalysisSettings = variant) -> int:
                results.append(analyse_video(video, variant))
                return results[-1].video.frame_count

            print(_line(name, *_timed(run)))
        analysis = results[0]
        kinds = {k.value: 0 for k in TrackKind}
        for track in analysis.tracks:
            kinds[track.kind.value] += 1
        print(f"    tracks (default settings): {kinds}")
        persons = [t for t in analysis.tracks if t.kind is TrackKind.PERSON]
        kept = max(persons, key=lambda t: t.detected_frames).track_id
        exports = [
            ("export: all persons masked, fill", {"mode": "mask-selected", "kinds": ["person"]}),
            (
                "export: all persons masked, mosaic",
                {"mode": "mask-selected", "kinds": ["person"], "style": "mosaic"},
            ),
            ("export: all but one person masked", {"mode": "mask-all-except", "tracks": [kept]}),
        ]
        for i, (name, data) in enumerate(exports):
            resolved = resolve(parse_selection(data), analysis)

            def run_export(resolved: ResolvedSelection = resolved, i: int = i) -> int:
                return export_redaction(video, analysis, resolved, work / f"out{i}.mp4").frames

            print(_line(name, *_timed(run_export)))
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
