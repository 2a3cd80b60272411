"""Speed of the person and face detectors at 720p, and of deface on the same frames.

Run: ``.venv/bin/python bench/bench_detectors.py`` (``--frames N``, ``--threads N``,
``--model-dir D``, ``--deface-python PATH`` or ``--install-deface``). deface is looked for at
``--deface-python``, else ``$VEIL_DEFACE_PYTHON``, else ``$TMPDIR/veil-bench-deface/bin/python``
(what ``--install-deface`` creates).

The clip is ``../shared/data/walking.mp4`` (1280x720, an elevated view with about 40 people).
Frames are decoded once into memory; only ``detect`` is timed (processing only, no decoding or
encoding). For each setting it prints the median wall time per frame, its 95th percentile,
frames per second from the median, the median CPU time of the process (all threads), and how
many objects a frame holds on average.

Persons also get an "agreement" column: the share of the boxes found by the most thorough
setting (input 1280, 2x2 tiles, same threshold) that the setting finds as well (IoU >= 0.5).
The clip has no ground truth, so read it as recall of small, distant people relative to that
reference.

With ``--tud`` (on by default when ../shared/data/TUD-Stadtmitte exists) each person setting
also runs on that sequence's 179 frames with ground truth: recall at IoU >= 0.5, and the share
of counted pedestrians whose box is at least 90% covered (and whose head, the top sixth and
middle half of the box, is) once each detection grows by the medium margin (12%), with no
tracking: a single-frame floor for what the humans method reaches.

The ``faces`` method runs the person detector (its head regions cover small or turned-away
faces) and YuNet; its time is the sum of both. deface (CenterFace, the pip package) runs in a
separate virtual environment, never in Veil's, on the same frames; the ratio is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from veil.core.detections import Detections
from veil.core.frame import Image, check_image
from veil.detect.faces import FaceDetector, FaceSettings, head_regions
from veil.detect.persons import PersonDetector, PersonSettings, auto_input_size
from veil.models import resolve_model
from veil.track import iou_matrix

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO_ROOT.parent / "shared" / "data" / "walking.mp4"
DEFAULT_MODELS = REPO_ROOT.parent / "shared" / "models"
DEFAULT_TUD = REPO_ROOT.parent / "shared" / "data" / "TUD-Stadtmitte"
TUD_MARGIN = 0.12
"""The ``medium`` margin: each box grows by this share of its width and height on each side."""
DEFACE_VENV = Path(tempfile.gettempdir()) / "veil-bench-deface"
DEFACE_ENV = "VEIL_DEFACE_PYTHON"
"""Environment variable naming the python of a venv where deface is installed."""
TARGET_FPS = 25.0
TARGET_DEFACE_RATIO = 3.0

PERSON_SETTINGS: tuple[tuple[int, int], ...] = (
    (416, 1),
    (640, 1),
    (800, 1),
    (960, 1),
    (1088, 1),
    (416, 2),
    (640, 2),
)
REFERENCE = (1280, 2)
FACE_SIZES: tuple[int | None, ...] = (None, 960, 640)

DEFACE_SCRIPT = """
import json, sys, time
import numpy as np
from deface.centerface import CenterFace
frames = np.load(sys.argv[1], mmap_mode="r")
net = CenterFace(in_shape=None, backend="auto")
net(np.ascontiguousarray(frames[0]), threshold=0.2)
wall, cpu, found = [], [], 0
for frame in frames:
    image = np.ascontiguousarray(frame)
    t, c = time.perf_counter(), time.process_time()
    dets, _ = net(image, threshold=0.2)
    wall.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
    found += len(dets)
wall.sort()
cpu.sort()
print(json.dumps({"backend": net.backend, "median": wall[len(wall) // 2],
                  "cpu": cpu[len(cpu) // 2], "faces": found / len(frames)}))
"""


@dataclass(frozen=True)
class Timing:
    median: float
    p95: float
    cpu: float
    per_frame: float

    @property
    def fps(self) -> float:
        return 1.0 / self.median

    def row(self, label: str) -> str:
        return (
            f"{label:<28} {self.median * 1000:7.1f} {self.p95 * 1000:7.1f} {self.fps:7.1f} "
            f"{self.cpu * 1000:7.1f} {self.per_frame:8.1f}"
        )


HEADER = f"{'setting':<28} {'ms':>7} {'p95 ms':>7} {'fps':>7} {'cpu ms':>7} {'per frame':>8}"


def decode(path: Path, count: int) -> list[Image]:
    frames: list[Image] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(check_image(np.asarray(frame.to_ndarray(format="bgr24"))))
            if len(frames) >= count:
                break
    return frames


def time_detector(detect: Callable[[Image], Detections], frames: Sequence[Image]) -> Timing:
    detect(frames[0])  # warm-up: memory plans and caches
    wall: list[float] = []
    cpu: list[float] = []
    found = 0
    for image in frames:
        t, c = time.perf_counter(), time.process_time()
        found += len(detect(image))
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    wall.sort()
    return Timing(
        median=statistics.median(wall),
        p95=wall[min(len(wall) - 1, int(0.95 * len(wall)))],
        cpu=statistics.median(cpu),
        per_frame=found / len(frames),
    )


def agreement(found: Sequence[Detections], reference: Sequence[Detections]) -> float:
    hit = total = 0
    for got, ref in zip(found, reference, strict=True):
        total += len(ref)
        if len(ref) and len(got):
            hit += int((iou_matrix(ref.xyxy, got.xyxy).max(axis=1) >= 0.5).sum())
    return hit / max(total, 1)


def bench_persons(
    model: Path, frames: Sequence[Image], threads: int, threshold: float
) -> dict[tuple[int, int], Timing]:
    sample = frames[:: max(1, len(frames) // 10)]
    ref_settings = PersonSettings(
        input_size=REFERENCE[0], tiles=REFERENCE[1], threads=threads, score_threshold=threshold
    )
    ref_detector = PersonDetector(model, ref_settings)
    reference = [ref_detector.detect_image(image) for image in sample]
    print(f"\npersons (YOLOX-nano, onnxruntime CPU, {threads} threads, threshold {threshold})")
    print(f"{HEADER} {'agreement':>9}")
    results: dict[tuple[int, int], Timing] = {}
    for size, tiles in PERSON_SETTINGS:
        settings = PersonSettings(
            input_size=size, tiles=tiles, threads=threads, score_threshold=threshold
        )
        detector = PersonDetector(model, settings)
        timing = time_detector(detector.detect_image, frames)
        share = agreement([detector.detect_image(image) for image in sample], reference)
        results[(size, tiles)] = timing
        print(f"{timing.row(f'input {size}, tiles {tiles}')} {share:9.3f}")
    return results


def tud_recall(model: Path, tud: Path, threads: int, threshold: float) -> None:
    gt = np.loadtxt(tud / "gt" / "gt.txt", delimiter=",")
    gt = gt[gt[:, 6] == 1]
    paths = sorted((tud / "img1").glob("*.jpg"))
    images = [check_image(np.asarray(cv2.imread(str(p)))) for p in paths]
    height, width = images[0].shape[:2]
    print(f"\npersons on {tud.name} ({len(images)} frames, {len(gt)} counted boxes), no tracking")
    print(
        f"{'setting':<28} {'IoU>=.5':>8} {'box 90%':>8} {'head 90%':>8} {'extra':>6} "
        f"(covered with margin {TUD_MARGIN:.0%}; extra: detections matching no gt at IoU .3)"
    )
    for size, tiles in PERSON_SETTINGS:
        settings = PersonSettings(
            input_size=size, tiles=tiles, threads=threads, score_threshold=threshold
        )
        detector = PersonDetector(model, settings)
        matched = covered = heads = extra = total = 0
        for number, image in enumerate(images, start=1):
            found = detector.detect_image(image)
            rows = gt[gt[:, 0] == number][:, 2:6]
            boxes = np.concatenate((rows[:, :2], rows[:, :2] + rows[:, 2:]), axis=1)
            boxes = boxes.astype(np.float32)
            mask = np.zeros((height, width), np.bool_)
            for x0, y0, x1, y1 in found.xyxy:
                mx, my = TUD_MARGIN * (x1 - x0), TUD_MARGIN * (y1 - y0)
                mask[
                    max(0, int(y0 - my)) : int(np.ceil(y1 + my)),
                    max(0, int(x0 - mx)) : int(np.ceil(x1 + mx)),
                ] = True
            if len(found) and len(boxes):
                overlap = iou_matrix(boxes, found.xyxy)
                matched += int((overlap.max(axis=1) >= 0.5).sum())
                extra += int((overlap.max(axis=0) < 0.3).sum())
            else:
                extra += len(found)
            for x0, y0, x1, y1 in boxes:
                bx0, by0 = max(0, int(x0)), max(0, int(y0))
                bx1, by1 = min(width, int(x1)), min(height, int(y1))
                if bx1 <= bx0 or by1 <= by0:
                    continue
                total += 1
                covered += bool(mask[by0:by1, bx0:bx1].mean() >= 0.9)
                w, h = x1 - x0, y1 - y0
                hx0, hx1 = max(0, int(x0 + w / 4)), min(width, int(x0 + 3 * w / 4))
                hy0, hy1 = by0, min(height, int(y0 + h / 6))
                if hx1 > hx0 and hy1 > hy0:
                    heads += bool(mask[hy0:hy1, hx0:hx1].mean() >= 0.9)
        print(
            f"{f'input {size}, tiles {tiles}':<28} {matched / len(gt):8.4f} "
            f"{covered / total:8.4f} {heads / total:8.4f} {extra:6d}"
        )


def bench_faces(model: Path, frames: Sequence[Image], threshold: float) -> dict[int | None, Timing]:
    print(f"\nfaces (YuNet, cv2.FaceDetectorYN, threshold {threshold})")
    print(HEADER)
    results: dict[int | None, Timing] = {}
    for size in FACE_SIZES:
        detector = FaceDetector(model, FaceSettings(input_size=size, score_threshold=threshold))
        timing = time_detector(detector.detect_image, frames)
        results[size] = timing
        label = "full resolution" if size is None else f"longest side {size}"
        print(timing.row(label))
    return results


def bench_faces_method(
    person_model: Path,
    face_model: Path,
    frames: Sequence[Image],
    threads: int,
) -> Timing:
    persons = PersonDetector(person_model, PersonSettings(threads=threads))
    faces = FaceDetector(face_model, FaceSettings())

    def detect(image: Image) -> Detections:
        return Detections.merge(
            [faces.detect_image(image), head_regions(persons.detect_image(image))]
        )

    print(
        f"\nfaces method (persons input {persons.settings.input_size} + head regions, "
        f"YuNet longest side {faces.settings.input_size})"
    )
    print(HEADER)
    timing = time_detector(detect, frames)
    print(timing.row("faces method"))
    return timing


def install_deface(venv: Path) -> Path:
    """Make a separate venv with deface, onnx and onnxruntime (its fast backend)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "deface", "onnx", "onnxruntime"], check=True
    )
    return python


def bench_deface(python: Path, frames: Sequence[Image]) -> tuple[Timing, str] | str:
    """deface's CenterFace on the same frames, or why it could not run."""
    if not python.exists():
        return (
            f"deface not run: {python} does not exist (run with --install-deface, or "
            "--deface-python PATH to a venv with `pip install deface onnx onnxruntime`)"
        )
    with tempfile.TemporaryDirectory(prefix="veil-bench-") as tmp:
        stack = Path(tmp) / "frames.npy"
        np.save(stack, np.stack(frames))
        try:
            proc = subprocess.run(
                [str(python), "-c", DEFACE_SCRIPT, str(stack)],
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"deface not run: {error}"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return f"deface failed (exit {proc.returncode}): {' | '.join(tail)}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    timing = Timing(
        median=float(result["median"]),
        p95=float("nan"),
        cpu=float(result["cpu"]),
        per_frame=float(result["faces"]),
    )
    return timing, str(result["backend"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    parser.add_argument("--threshold", type=float, default=0.5, help="score threshold")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--deface-python", type=Path, default=None)
    parser.add_argument(
        "--install-deface",
        action="store_true",
        help=f"pip-install deface into a separate venv ({DEFACE_VENV}) first",
    )
    parser.add_argument("--skip-deface", action="store_true")
    parser.add_argument("--tud", type=Path, default=DEFAULT_TUD, help="ground-truth sequence")
    parser.add_argument("--skip-tud", action="store_true")
    # ``python -m bench`` calls main() with no arguments: use the defaults, not its argv.
    args = parser.parse_args([] if argv is None else argv)

    if not args.clip.is_file():
        print(f"clip {args.clip} not found", file=sys.stderr)
        return 2
    person_model = resolve_model("yolox_nano", args.model_dir)
    face_model = resolve_model("yunet", args.model_dir)
    frames = decode(args.clip, args.frames)
    height, width = frames[0].shape[:2]
    load = os.getloadavg()
    print(
        f"clip {args.clip.name}: {len(frames)} frames of {width}x{height}; "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print("times are per frame, processing only (no decoding, no encoding)")

    persons = bench_persons(person_model, frames, args.threads, args.threshold)
    if not args.skip_tud and (args.tud / "gt" / "gt.txt").is_file():
        tud_recall(person_model, args.tud, args.threads, args.threshold)
    bench_faces(face_model, frames, args.threshold)
    method = bench_faces_method(person_model, face_model, frames, args.threads)
    # The default input follows the picture ('auto'); 1088 for the 720p clip.
    default_size = PersonSettings().input_size or auto_input_size(width, height)
    default = persons[(default_size, PersonSettings().tiles)]
    print(
        f"\ntarget {TARGET_FPS:.0f} fps at 720p: persons (defaults) {default.fps:.1f} fps, "
        f"faces method {method.fps:.1f} fps"
    )

    if args.skip_deface:
        return 0
    python = args.deface_python
    if python is None and os.environ.get(DEFACE_ENV):
        python = Path(os.environ[DEFACE_ENV])
    if python is None:
        python = DEFACE_VENV / "bin" / "python"
        if args.install_deface:
            try:
                python = install_deface(DEFACE_VENV)
            except (OSError, subprocess.CalledProcessError) as error:
                print(f"\ndeface not installed: {error}")
                return 0
        elif shutil.which("deface") and not python.exists():
            print("\nnote: a `deface` on PATH is not used; give --deface-python explicitly")
    outcome = bench_deface(python, frames)
    if isinstance(outcome, str):
        print(f"\n{outcome}")
        return 0
    deface, backend = outcome
    print(f"\ndeface (CenterFace, {backend} backend, full resolution, threshold 0.2)")
    print(HEADER)
    print(deface.row("deface"))
    ratio = method.fps / deface.fps
    cpu_ratio = deface.cpu / method.cpu
    verdict = "meets" if min(ratio, cpu_ratio) >= TARGET_DEFACE_RATIO else "misses"
    print(
        f"Veil faces method vs deface: {ratio:.1f}x faster by wall time, {cpu_ratio:.1f}x less "
        f"CPU time ({verdict} the {TARGET_DEFACE_RATIO:.0f}x target)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
