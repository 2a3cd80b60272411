"""How many 720p, 15 fps cameras the gateway holds, with motion and with humans masking.

Run: ``.venv/bin/python bench/bench_gateway.py`` (``--methods motion``, ``--max-cameras 6``,
``--seconds 10``, ``--no-viewers``, ``--keep-going``, ``--model-dir ../shared/models``).

Each camera reads a 720p H.264 file in a loop (decoding included, paced at 15 fps), masks it
(plus a static mask), records masked segments and encrypted originals (two x264 encodes and
AES-GCM per camera), and, unless ``--no-viewers``, is pulled by one RTSP client
(``ffmpeg -c copy``, so the server's encoder works) and one MJPEG viewer over HTTP. The
gateway is started with 1, 2, ... cameras until one no longer keeps up.

A run "holds" when, over the measured window, every camera output at least 97 % of its
input frames, dropped under 1 % (``frames_dropped``: replaced in the one-slot mailbox before
the masker took them) and published none fully masked for being late (``frames_late``).
Latency is from a frame's arrival in the mailbox to its masked picture being published
(p50/p95 over each camera's last 200 frames, from ``CameraRuntime.status()``; the worst
camera is shown). Memory per camera is the process's RSS growth divided by the cameras.

The machine may be shared: other processes' load skews every figure (the load average is
printed with the results).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import httpx

from veil.config.schema import DynamicConfig, MaskConfig, Method, VeilConfig
from veil.media.synthetic import scene_frames, write_clip
from veil.server.app import BackgroundServer, create_app, server_config
from veil.server.camera import CameraStatus
from veil.server.gateway import Gateway, GatewayOptions
from veil.server.site_config import (
    CameraConfig,
    RecordingConfig,
    SecurityConfig,
    ServerConfig,
    SiteConfig,
)
from veil.vault.keys import create_key_file
from veil.vault.users import AuthSettings, Principal

WIDTH, HEIGHT, FPS = 1280, 720, 15.0
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
_PULL = (FFMPEG, "-v", "quiet", "-rtsp_transport", "tcp", "-i")
DEFAULT_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Result:
    method: str
    cameras: int
    fps_out: float
    drop_pct: float
    late: int
    p50_ms: float
    p95_ms: float
    rss_per_camera_mb: float
    cpu_per_camera: float
    """CPU time of the gateway process per second, per camera (1.0 = one core busy)."""
    holds: bool


def _masking(method: Method, model_dir: str | None) -> VeilConfig:
    return VeilConfig(
        masks=[MaskConfig(name="window", rect=(0.7, 0.05, 0.25, 0.2))],
        dynamic=DynamicConfig(methods=[method], learning_time=1.0, model_dir=model_dir),
    )


class _Viewers:
    """One RTSP puller and one MJPEG reader per camera, until stopped."""

    def __init__(self, gateway: Gateway, base_url: str, token: str) -> None:
        self._stop = threading.Event()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._threads: list[threading.Thread] = []
        for runtime in gateway.cameras:
            url = gateway.rtsp_url(runtime.camera_id)
            assert url is not None
            self._procs.append(
                subprocess.Popen(
                    [*_PULL, url, "-c", "copy", "-f", "null", "-"],
                    stdin=subprocess.DEVNULL,
                )
            )
            path = f"{base_url}/api/cameras/{runtime.camera_id}/stream.mjpeg"
            thread = threading.Thread(
                target=self._mjpeg, args=(path, token), name=f"viewer-{runtime.camera_id}"
            )
            thread.start()
            self._threads.append(thread)

    def _mjpeg(self, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(timeout=10) as client, client.stream("GET", url, headers=headers) as r:
            for _ in r.iter_bytes():
                if self._stop.is_set():
                    return

    def stop(self) -> None:
        self._stop.set()
        for proc in self._procs:
            proc.terminate()
            proc.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)


def run(
    method: Method,
    cameras: int,
    clip: Path,
    workdir: Path,
    *,
    seconds: float,
    warmup: float,
    viewers: bool,
    model_dir: str | None,
) -> Result:
    data = workdir / f"data-{method}-{cameras}"
    key = workdir / "master.key"
    if not key.exists():
        create_key_file(key)
    site = SiteConfig(
        server=ServerConfig(data_dir=str(data), port=free_port(), rtsp_port=free_port()),
        cameras=[
            CameraConfig(
                id=f"cam{i}",
                source=str(clip),
                width=WIDTH,
                height=HEIGHT,
                fps=FPS,
                masking=_masking(method, model_dir),
            )
            for i in range(cameras)
        ],
        recording=RecordingConfig(segment_seconds=10),
        security=SecurityConfig(key_file=str(key)),
    )
    cheap = AuthSettings(password_time_cost=1, password_memory_kib=1024, password_parallelism=1)
    before = rss_mb()
    gateway = Gateway(site, options=GatewayOptions(auth_settings=cheap, rtsp=True))
    app = create_app(gateway)
    config = server_config(app, "127.0.0.1", site.server.port, log_level="warning")
    try:
        gateway.start()
        with BackgroundServer(config):
            token = gateway.tokens.create(Principal.system(), "bench", username="admin").token
            crowd = (
                _Viewers(gateway, f"http://127.0.0.1:{site.server.port}", token)
                if viewers
                else None
            )
            try:
                time.sleep(warmup)
                start = [c.status() for c in gateway.cameras]
                cpu0 = _cpu_seconds()
                time.sleep(seconds)
                cpu = (_cpu_seconds() - cpu0) / seconds / cameras
                end = [c.status() for c in gateway.cameras]
                rss = rss_mb()
            finally:
                if crowd is not None:
                    crowd.stop()
    finally:
        gateway.stop()
    return _result(str(method), start, end, seconds, (rss - before) / cameras, cpu)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _result(
    method: str,
    start: list[CameraStatus],
    end: list[CameraStatus],
    seconds: float,
    rss: float,
    cpu: float,
) -> Result:
    fps_out, drop, late, holds = [], [], 0, True
    for a, b in zip(start, end, strict=True):
        frames_in = b.frames_in - a.frames_in
        out = b.frames_out - a.frames_out
        dropped = b.frames_dropped - a.frames_dropped
        late += b.frames_late - a.frames_late
        fps_out.append(out / seconds)
        drop.append(100.0 * dropped / max(1, frames_in))
        if frames_in == 0 or out < 0.97 * frames_in or dropped > 0.01 * frames_in:
            holds = False
    if late:
        holds = False
    return Result(
        method=method,
        cameras=len(end),
        fps_out=min(fps_out),
        drop_pct=max(drop),
        late=late,
        p50_ms=max(s.latency_ms_p50 for s in end),
        p95_ms=max(s.latency_ms_p95 for s in end),
        rss_per_camera_mb=rss,
        cpu_per_camera=cpu,
        holds=holds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--methods", default="motion,humans")
    parser.add_argument("--max-cameras", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--no-viewers", action="store_true")
    parser.add_argument(
        "--keep-going", action="store_true", help="try every camera count, even after one fails"
    )
    parser.add_argument("--model-dir", default=os.environ.get("VEIL_MODEL_DIR") or None)
    args = parser.parse_args()
    model_dir = args.model_dir or (str(DEFAULT_MODELS) if DEFAULT_MODELS.is_dir() else None)
    with tempfile.TemporaryDirectory(prefix="veil-bench-") as tmp:
        workdir = Path(tmp)
        clip = workdir / "720p.mp4"
        write_clip(
            clip,
            scene_frames(WIDTH, HEIGHT, int(4 * FPS), Fraction(FPS)),
            fps=Fraction(FPS),
            codec_options={"preset": "veryfast", "g": "15"},
        )
        print(
            f"gateway: {WIDTH}x{HEIGHT} at {FPS:g} fps per camera (H.264 file, looped); "
            f"recording masked + encrypted originals; viewers: "
            f"{'none' if args.no_viewers else '1 RTSP + 1 MJPEG per camera'}"
        )
        print(
            f"{'method':<8} {'cams':>4} {'min fps':>8} {'drop %':>7} {'late':>5} "
            f"{'p50 ms':>7} {'p95 ms':>7} {'MB/cam':>7} {'CPU/cam':>7} {'load':>5}  holds"
        )
        results: list[Result] = []
        for name in args.methods.split(","):
            method = Method(name.strip())
            for cameras in range(1, args.max_cameras + 1):
                result = run(
                    method,
                    cameras,
                    clip,
                    workdir,
                    seconds=args.seconds,
                    warmup=args.warmup,
                    viewers=not args.no_viewers,
                    model_dir=model_dir,
                )
                results.append(result)
                print(
                    f"{result.method:<8} {result.cameras:>4} {result.fps_out:>8.1f} "
                    f"{result.drop_pct:>7.1f} {result.late:>5} {result.p50_ms:>7.1f} "
                    f"{result.p95_ms:>7.1f} {result.rss_per_camera_mb:>7.0f} "
                    f"{result.cpu_per_camera:>7.2f} {os.getloadavg()[0]:>5.1f}  "
                    f"{'yes' if result.holds else 'NO'}",
                    flush=True,
                )
                if not result.holds and not args.keep_going:
                    break
        for name in args.methods.split(","):
            held = [r.cameras for r in results if r.method == name.strip() and r.holds]
            # One camera is the least disturbed measurement of what a camera costs.
            single = [
                r.cpu_per_camera
                for r in results
                if r.method == name.strip() and r.cameras == 1 and r.cpu_per_camera > 0
            ]
            cores = os.cpu_count() or 1
            estimate = (
                f"; at {single[0]:.2f} CPU per camera an idle {cores}-CPU machine fits about "
                f"{cores / single[0]:.1f}"
                if single
                else ""
            )
            print(f"{name.strip()}: holds {max(held) if held else 0} camera(s){estimate}")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs; other work skews it")
        print(json.dumps([r.__dict__ for r in results]))


if __name__ == "__main__":
    main()
