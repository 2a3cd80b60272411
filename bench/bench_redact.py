"""Speed of redaction on a 720p, 25 fps video, against a plain decode and encode.

Run: ``.venv/bin/python bench/bench_redact.py`` (``--video PATH``, ``--skip-variants``).

``--except-each`` measures quality instead of speed: it analyses a MOTChallenge sequence
(``--sequence``, default ``../shared/data/TUD-Stadtmitte``) and keeps each ground-truth
person seen in at least ``--min-frames`` frames in turn (mask-all-except, the tracks a
careful user would keep, see :func:`veil.redact.export.person_selection`), printing per
person the share of their frames they are shown in and the other persons' recall and
leaked frames (bars: shown >= 95%, recall >= 99.9%, no leaked frame). "where visible"
gives the shown share again over only the frames where at least half of the kept person's
box is clear of other people's boxes (in the rest they walk behind or among people who stay
masked, with their margins); the bar applies to the first figure. Last, the ceiling of
box masks: the shown shares when everyone else is masked at their ground-truth box grown by
0, 5 and 10% of its size (:func:`box_ceiling`), the most a redaction made of boxes can show.

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
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from veil.eval.groundtruth import GroundTruth

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VIDEO = SHARED / "data" / "walking.mp4"
SEQUENCE = SHARED / "data" / "TUD-Stadtmitte"
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
    parser.add_argument("--except-each", action="store_true", help="quality of keeping each person")
    parser.add_argument("--sequence", type=Path, default=SEQUENCE)
    parser.add_argument("--min-frames", type=int, default=20)
    args = parser.parse_args(argv)
    if args.except_each:
        return except_each(args.sequence, args.min_frames)
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


def except_each(sequence: Path, min_frames: int) -> int:
    """Print the mask-all-except quality of keeping each ground-truth person in turn."""
    frames = sequence / "img1" / "%06d.jpg"
    truth = sequence / "gt" / "gt.txt"
    if not truth.is_file() or not (MODELS / "yolox_nano.onnx").is_file():
        print(f"missing {truth} or the models in {MODELS}", file=sys.stderr)
        return 2

    from veil.eval.groundtruth import load_ground_truth
    from veil.redact.analysis import AnalysisSettings, analyse_video
    from veil.redact.export import evaluate_each_kept, person_selection

    analysis = analyse_video(str(frames), AnalysisSettings(model_dir=str(MODELS)))
    gt = load_ground_truth(truth)
    print(f"{sequence.name}: {analysis.video.frame_count} frames, mask-all-except per person")
    print(
        f"{'person':>6} {'shown':>6} {'frames':>6} {'where visible':>13} {'frames':>6} "
        f"{'recall':>7} {'leaked':>6}  kept tracks"
    )
    failed = 0
    for quality in evaluate_each_kept(analysis, gt, min_frames=min_frames):
        person = quality.kept_person
        assert person is not None
        shown, recall = quality.kept_shown or 0.0, quality.report.recall or 0.0
        leaked = len(quality.report.leaked_frames)
        failed += shown < 0.95 or recall < 0.999 or leaked > 0
        tracks = person_selection(analysis, gt, person)["tracks"]
        visible = 100 * (quality.kept_visible_shown or 0.0)
        print(
            f"{person:>6} {100 * shown:5.1f}% {quality.kept_frames:>6} {visible:12.1f}% "
            f"{quality.kept_visible_frames:>6} {100 * recall:6.2f}% {leaked:>6}  "
            + ", ".join(tracks)
        )
    print(f"{failed} persons miss a bar")
    print(
        "ceiling of box masks: the kept person's shown share with everyone else masked at "
        "their ground-truth box, grown by a margin of their size:"
    )
    ids, counts = np.unique(gt.person_id, return_counts=True)
    persons = [int(p) for p, n in zip(ids, counts, strict=True) if n >= min_frames]
    for margin in CEILING_MARGINS:
        shares = box_ceiling(gt, persons, margin, analysis.video.width, analysis.video.height)
        pairs = zip(persons, shares, strict=True)
        listed = "  ".join(f"{p}: {100 * share:3.0f}%" for p, share in pairs)
        print(f"  margin {margin:4.0%}  {listed}")
    return 0


CEILING_MARGINS = (0.0, 0.05, 0.10)
"""Margins (share of a box's larger side) for :func:`box_ceiling`. On TUD-Stadtmitte a
person's true box sticks out of YOLOX-nano's matching box by up to 1.5% of its size for half
the detections and 4.6% for nine in ten: masking others needs about 5% to cover them."""


def box_ceiling(
    gt: GroundTruth, persons: list[int], margin: float, width: int, height: int
) -> list[float]:
    """For each person kept in turn, the share of their frames they are shown in (as
    :func:`veil.redact.export.evaluate_redaction` counts it) when every other person is
    masked at their ground-truth box grown by ``margin`` of its larger side and nothing else:
    the most any box-level redaction can show at that margin, with perfect boxes."""
    from veil.eval.metrics import LEAK_COVERAGE, pixel_boxes

    shown: dict[int, list[bool]] = {p: [] for p in persons}
    for frame in np.unique(gt.frame):
        rows = gt.rows(int(frame))
        boxes = pixel_boxes(gt.xywh[rows], width, height)
        for person in persons:
            mine = [k for k, r in enumerate(rows) if gt.person_id[r] == person]
            if not mine:
                continue
            own = np.zeros((height, width), np.bool_)
            rest = np.zeros((height, width), np.bool_)
            hidden = np.zeros((height, width), np.bool_)
            for k, (x0, y0, x1, y1) in enumerate(boxes):
                if k == mine[0]:
                    own[y0:y1, x0:x1] = True
                    continue
                rest[y0:y1, x0:x1] = True
                grow = round(margin * max(x1 - x0, y1 - y0))
                hidden[max(0, y0 - grow) : y1 + grow, max(0, x0 - grow) : x1 + grow] = True
            own &= ~rest
            if own.any():
                shown[person].append(float(hidden[own].mean()) < LEAK_COVERAGE)
    return [float(np.mean(shown[p])) if shown[p] else 0.0 for p in persons]


if __name__ == "__main__":
    raise SystemExit(main())
