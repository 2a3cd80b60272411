"""The gateway without HTTP: RTSP output, stalls, master keys, site files, retention, sources."""

from __future__ import annotations

import http.server
import itertools
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import http_server, serving
from test_server_api import (
    CHEAP_AUTH,
    FPS,
    HEIGHT,
    INSIDE,
    WIDTH,
    demo_site,
    is_white,
    wait_for_frames,
    wait_until,
)
from veil.config.schema import MaskConfig, VeilConfig
from veil.core.errors import ConfigError
from veil.core.frame import Frame
from veil.media.synthetic import scene_frames, write_clip
from veil.pipeline import MaskingPipeline
from veil.policy.static import StaticPlanner
from veil.server.camera import CameraState, Masker, no_signal_image
from veil.server.gateway import (
    PASSPHRASE_ENV,
    Gateway,
    GatewayConfigError,
    GatewayOptions,
)
from veil.server.mjpeg import MEDIA_TYPE, encode_jpeg, part
from veil.server.site_config import (
    CameraConfig,
    Transport,
    load_site_file,
    load_site_text,
    save_site_file,
)
from veil.server.sources import open_frames, redact_source
from veil.vault.keys import KdfParams, KeyFileError, WrongKeyError
from veil.vault.segments import SegmentId, encrypt_segment
from veil.vault.users import Principal

FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
PROBE_ARGS = (FFPROBE, "-v", "error", "-rtsp_transport", "tcp", "-of", "json")
GRAB_ARGS = (FFMPEG, "-v", "error", "-rtsp_transport", "tcp", "-i")
CHEAP_KDF = KdfParams(time_cost=1, memory_kib=1024, parallelism=1)


def static_masker(config: VeilConfig, fps: float) -> Masker:
    """A masker with the static masks only (no detector): fast and exact."""

    class _Static:
        def __init__(self) -> None:
            self._pipeline = MaskingPipeline([StaticPlanner(config.masks)])

        def process(self, frame: Frame) -> Frame:
            return self._pipeline.process(frame)

        def reset_background(self) -> None:
            return None

    return _Static()


def options(**changes: object) -> GatewayOptions:
    base: dict[str, object] = {
        "auth_settings": CHEAP_AUTH,
        "kdf_params": CHEAP_KDF,
        "masker_factory": static_masker,
        "rtsp": False,
        "prune_interval_s": 3600.0,
    }
    base.update(changes)
    return GatewayOptions(**base)  # type: ignore[arg-type]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    g = Gateway(demo_site(tmp_path), options=options())
    try:
        yield g
    finally:
        g.stop()


# -- RTSP -------------------------------------------------------------------------------------


def test_rtsp_output_is_h264_and_masked(tmp_path: Path) -> None:
    site = demo_site(tmp_path)
    with Gateway(site, options=options(rtsp=True)) as gateway:
        wait_for_frames(gateway, 3)
        url = gateway.rtsp_url("cam")
        assert url == f"rtsp://127.0.0.1:{site.server.rtsp_port}/cam"
        probe = subprocess.run(
            [*PROBE_ARGS, "-show_entries", "stream=codec_name,width,height", url],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        (stream,) = json.loads(probe.stdout)["streams"]
        assert stream == {"codec_name": "h264", "width": WIDTH, "height": HEIGHT}
        grab = subprocess.run(
            [*GRAB_ARGS, url, "-frames:v", "3", "-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
            capture_output=True,
            timeout=30,
            check=True,
        )
        frames = np.frombuffer(grab.stdout, np.uint8).reshape(-1, HEIGHT, WIDTH, 3)
        assert len(frames) == 3
        for frame in frames:
            assert is_white(frame[INSIDE]), "the RTSP output must carry the privacy mask"
            assert float(frame[120:, 100:].mean()) < 200


def test_rtsp_can_demand_a_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEIL_RTSP_PASSWORD", "vms secret 1")
    site = demo_site(tmp_path)
    security = site.security.model_copy(update={"rtsp_username": "vms"})
    site = site.model_copy(update={"security": security})
    with Gateway(site, options=options(rtsp=True)) as gateway:
        wait_for_frames(gateway, 2)
        port = site.server.rtsp_port
        entries = ["-show_entries", "stream=codec_name"]
        for login, ok in (("", False), ("vms:wrong-pass@", False), ("vms:vms%20secret%201@", True)):
            probe = subprocess.run(
                [*PROBE_ARGS, *entries, f"rtsp://{login}127.0.0.1:{port}/cam"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert (probe.returncode == 0) is ok, probe.stderr
            if not ok:
                assert "401" in probe.stderr
    monkeypatch.setenv("VEIL_RTSP_PASSWORD", "short")
    with pytest.raises(ConfigError, match="VEIL_RTSP_PASSWORD"):
        Gateway(site, options=options(rtsp=True))


# -- failing closed ---------------------------------------------------------------------------


def test_a_camera_that_stops_sending_shows_no_signal(tmp_path: Path) -> None:
    release = threading.Event()

    def stalling(config: CameraConfig) -> Iterator[Frame]:
        rate = Fraction(config.fps)
        for index, image in enumerate(scene_frames(config.width, config.height, 5, rate)):
            yield Frame(image, index, 1 / rate, index, config.id)
        release.wait(30)  # the camera goes silent

    gateway = Gateway(
        demo_site(tmp_path), options=options(source_factory=stalling, stall_timeout=0.5)
    )
    gateway.start()
    try:
        runtime = gateway.camera("cam")
        wait_for_frames(gateway, 5)
        stalled_at = time.monotonic()
        wait_until(lambda: runtime.status().state is CameraState.NO_SIGNAL, 5, "no signal")
        assert time.monotonic() - stalled_at < 2.0
        latest = runtime.masked.latest()
        assert latest is not None
        assert np.array_equal(latest.image, no_signal_image(WIDTH, HEIGHT))
        original = runtime.original.latest()
        assert original is not None
        assert np.array_equal(original.image, no_signal_image(WIDTH, HEIGHT))
    finally:
        release.set()
        gateway.stop()


def test_masking_failure_never_publishes_the_original(tmp_path: Path) -> None:
    class Broken:
        def process(self, frame: Frame) -> Frame:
            raise RuntimeError("detector exploded")

        def reset_background(self) -> None:
            return None

    gateway = Gateway(demo_site(tmp_path), options=options(masker_factory=lambda c, f: Broken()))
    gateway.start()
    try:
        wait_for_frames(gateway, 3)
        latest = gateway.camera("cam").masked.latest()
        assert latest is not None
        assert np.array_equal(latest.image, no_signal_image(WIDTH, HEIGHT, "MASKING ERROR"))
    finally:
        gateway.stop()


def test_bad_config_is_refused_and_the_running_one_stays(gateway: Gateway) -> None:
    def refusing(config: VeilConfig, fps: float) -> Masker:
        if config.dynamic.methods:
            raise ConfigError("cannot build that", hint="try another")
        return static_masker(config, fps)

    g = Gateway(gateway.site, options=options(masker_factory=refusing))
    try:
        admin = Principal.system()
        before = g.camera("cam").config.masking
        with pytest.raises(GatewayConfigError, match="cannot build that"):
            g.update_masking(
                admin, "cam", VeilConfig.model_validate({"dynamic": {"methods": ["motion"]}})
            )
        assert g.camera("cam").config.masking == before
        assert g.site.cameras[0].masking == before
        assert not g.audit.entries(action="config.change")
    finally:
        g.stop()


def test_config_change_survives_a_restart_through_the_site_file(tmp_path: Path) -> None:
    site = demo_site(tmp_path)
    site_file = tmp_path / "site.yaml"
    save_site_file(site, site_file)
    new = VeilConfig(masks=[MaskConfig(name="door", rect=(0.5, 0.5, 0.2, 0.2))])
    first = Gateway(load_site_file(site_file), site_file=site_file, options=options())
    try:
        first.update_masking(Principal.system(), "cam", new)
    finally:
        first.stop()
    second = Gateway(load_site_file(site_file), site_file=site_file, options=options())
    try:
        assert second.camera("cam").config.masking == new
        assert second.first_password is None  # the admin exists already
        change = second.audit.entries(action="config.change", limit=1)[0]
        assert change.details["changes"]
        assert second.audit.verify_chain().ok
    finally:
        second.stop()


# -- keys -------------------------------------------------------------------------------------


def test_a_site_without_a_key_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    site = demo_site(tmp_path)
    site = site.model_copy(update={"security": site.security.model_copy(update={"key_file": None})})
    with pytest.raises(KeyFileError, match="no master key") as caught:
        Gateway(site, options=options())
    assert PASSPHRASE_ENV in str(caught.value)


def test_passphrase_key_keeps_its_parameters_in_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "a long test passphrase")
    site = demo_site(tmp_path)
    site = site.model_copy(update={"security": site.security.model_copy(update={"key_file": None})})
    first = Gateway(site, options=options())
    key_id = first.master_key.key_id
    first.stop()
    assert (tmp_path / "data" / "key-params.json").is_file()
    second = Gateway(site, options=options())
    assert second.master_key.key_id == key_id
    second.stop()
    monkeypatch.setenv(PASSPHRASE_ENV, "the wrong passphrase")
    with pytest.raises(WrongKeyError, match="wrong passphrase"):
        Gateway(site, options=options())


def test_demo_key_lives_in_the_user_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    site = demo_site(tmp_path)
    site = site.model_copy(update={"security": site.security.model_copy(update={"key_file": None})})
    gateway = Gateway(site, options=options(demo_key=True))
    gateway.stop()
    key = tmp_path / "config" / "veil" / "master.key"
    assert key.is_file()
    assert key.stat().st_mode & 0o077 == 0
    assert "outside the recordings folder" in gateway.key_note
    assert not list((tmp_path / "data").rglob("*.key"))


# -- retention and sources --------------------------------------------------------------------


def test_retention_deletes_old_segments_only(gateway: Gateway) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    masked_dir = gateway.recordings_dir / "cam"
    masked_dir.mkdir(parents=True, exist_ok=True)
    stale = masked_dir / f"{old:%Y%m%dT%H%M%S%f}Z_00000000.mp4"
    stale.write_bytes(b"old")
    fresh = masked_dir / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}Z_00000001.mp4"
    fresh.write_bytes(b"new")
    gateway.originals_dir.mkdir(parents=True, exist_ok=True)
    sealed = encrypt_segment(
        gateway.originals_dir, SegmentId("cam", old, 0), b"old original", gateway.master_key
    )
    removed = gateway.prune_now()
    assert sorted(removed) == sorted([stale, sealed])
    assert fresh.exists()


def test_file_sources_loop_and_keep_counting(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mkv"
    write_clip(clip, scene_frames(64, 48, 4, Fraction(10)), fps=Fraction(10))
    camera = CameraConfig(id="file", source=str(clip), fps=FPS)
    frames = []
    for frame in open_frames(camera):
        frames.append(frame)
        if len(frames) == 10:
            break
    assert [f.index for f in frames] == list(range(10))
    assert all(f.camera_id == "file" for f in frames)
    assert np.array_equal(frames[0].image, frames[4].image)


def test_missing_file_source_says_so(tmp_path: Path) -> None:
    camera = CameraConfig(id="gone", source=str(tmp_path / "missing.mp4"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        next(iter(open_frames(camera)))


def test_passwords_in_source_urls_are_hidden() -> None:
    assert (
        redact_source("rtsp://admin:s3cret@10.0.0.5/stream") == "rtsp://admin:***@10.0.0.5/stream"
    )
    assert redact_source("rtsp://10.0.0.5/stream") == "rtsp://10.0.0.5/stream"
    assert redact_source("demo") == "demo"


def test_site_file_errors_name_the_line() -> None:
    text = "cameras:\n  - id: ok\n    source: demo\n  - id: Bad Id\n    source: demo\n"
    with pytest.raises(ConfigError, match=r"site.yaml:4: cameras\[1\]\.id"):
        load_site_text(text, "site.yaml")


def test_a_failing_source_is_reopened_with_back_off(tmp_path: Path) -> None:
    opened: list[float] = []

    def flaky(config: CameraConfig) -> Iterator[Frame]:
        opened.append(time.monotonic())
        rate = Fraction(config.fps)
        for index, image in enumerate(scene_frames(config.width, config.height, 2, rate)):
            yield Frame(image, index, 1 / rate, index, config.id)
        raise ConnectionError("camera unplugged")

    gateway = Gateway(demo_site(tmp_path), options=options(source_factory=flaky))
    gateway.start()
    try:
        runtime = gateway.camera("cam")
        wait_until(lambda: runtime.status().reconnects >= 3, 30, "three reconnects")
        assert "camera unplugged" in runtime.status().last_error
        gaps = [b - a for a, b in itertools.pairwise(opened)]
        assert gaps[1] > gaps[0] * 1.5, f"no back-off: {gaps}"
    finally:
        gateway.stop()


def test_rtsp_sources_over_tcp_and_udp(tmp_path: Path) -> None:
    """Cameras that read the gateway's own masked RTSP output, once per transport."""
    site = demo_site(tmp_path)
    url = f"rtsp://127.0.0.1:{site.server.rtsp_port}/cam"
    relays = [
        CameraConfig(id=f"relay-{t.value}", source=url, transport=t, width=WIDTH, height=HEIGHT)
        for t in (Transport.TCP, Transport.UDP)
    ]
    site = site.model_copy(update={"cameras": [*site.cameras, *relays]})
    with Gateway(site, options=options(rtsp=True)) as gateway:
        for relay in relays:
            runtime = gateway.camera(relay.id)
            wait_until(lambda r=runtime: r.status().frames_out >= 5, 30, f"{relay.id} frames")
            latest = runtime.masked.latest()
            assert latest is not None
            assert latest.image.shape == (HEIGHT, WIDTH, 3)
            assert is_white(latest.image[INSIDE])


def test_http_sources_are_read_with_ffmpeg(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    write_clip(clip, scene_frames(160, 120, 6, Fraction(10)), fps=Fraction(10))
    with serving(tmp_path) as base:
        frames = list(open_frames(CameraConfig(id="web", source=f"{base}/clip.mp4")))
    assert len(frames) == 6
    assert frames[0].image.shape == (120, 160, 3)
    assert all(f.camera_id == "web" for f in frames)


def test_a_missing_webcam_says_how_to_find_one() -> None:
    camera = CameraConfig(id="usb", source="webcam:/dev/video-none")
    with pytest.raises(FileNotFoundError, match="ls /dev/video"):
        next(iter(open_frames(camera)))


def test_a_camera_that_cannot_be_built_stops_startup_before_the_admin_exists(
    tmp_path: Path,
) -> None:
    site = demo_site(
        tmp_path,
        masking=VeilConfig.model_validate(
            {"dynamic": {"methods": ["humans"], "model_dir": str(tmp_path / "no-models")}}
        ),
    )
    with pytest.raises(GatewayConfigError, match="camera cam: its masking cannot be built"):
        Gateway(site, options=options(masker_factory=None))
    fixed = Gateway(demo_site(tmp_path), options=options())
    try:
        assert fixed.first_password is not None, "the first password was created and lost"
    finally:
        fixed.stop()


class _MjpegHandler(http.server.BaseHTTPRequestHandler):
    """Six JPEG pictures as multipart/x-mixed-replace, as an IP camera's MJPEG URL sends."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", MEDIA_TYPE)
        self.end_headers()
        for image in scene_frames(160, 120, 6, Fraction(10)):
            self.wfile.write(part(encode_jpeg(image)))
        self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:
        return None


def test_http_mjpeg_cameras_are_read(tmp_path: Path) -> None:
    with http_server(_MjpegHandler) as base:
        frames = list(open_frames(CameraConfig(id="ipcam", source=f"{base}/video.mjpg")))
    assert len(frames) == 6
    assert frames[0].image.shape == (120, 160, 3)
