"""`veil serve` as a real process: killed with SIGKILL it loses at most the segment being
written; the recordings, the originals and the database survive and the audit chain holds.
Stopped with SIGTERM it finishes its segments and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from test_server_api import decode_video, free_port
from veil.cli.app import COMMAND_MODULES
from veil.server.site_config import (
    CameraConfig,
    RecordingConfig,
    SecurityConfig,
    ServerConfig,
    SiteConfig,
    save_site_file,
)
from veil.vault.audit import AuditLog, audit_key_from
from veil.vault.db import Database
from veil.vault.keys import MasterKey, create_key_file
from veil.vault.segments import decrypt_segment, list_segments

pytestmark = pytest.mark.slow

if "veil.cli.serve" in COMMAND_MODULES:
    VEIL = [sys.executable, "-m", "veil"]
else:  # until `veil serve` is registered in veil.cli.app
    VEIL = [
        sys.executable,
        "-c",
        "import sys; from veil.cli.app import app, main; from veil.cli.serve import register; "
        "register(app); sys.argv[0] = 'veil'; main()",
    ]


def _site(tmp: Path) -> tuple[Path, SiteConfig]:
    key = tmp / "keys" / "master.key"
    key.parent.mkdir(mode=0o700)
    create_key_file(key)
    site = SiteConfig(
        server=ServerConfig(port=free_port(), rtsp_port=free_port(), data_dir=str(tmp / "data")),
        cameras=[CameraConfig(id="door", source="demo", width=160, height=120, fps=10)],
        recording=RecordingConfig(segment_seconds=1),
        security=SecurityConfig(key_file=str(key)),
    )
    path = tmp / "site.yaml"
    save_site_file(site, path)
    return key, site


@contextmanager
def _serve(tmp: Path, site: SiteConfig, log_name: str) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp / log_name).open("wb")
    process = subprocess.Popen(
        [*VEIL, "serve", "--config", str(tmp / "site.yaml"), "--log-level", "warning"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = f"http://127.0.0.1:{site.server.port}/api/openapi.json"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp / log_name).read_text()
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "veil serve did not start"
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        log.close()


def _masked(tmp: Path) -> list[Path]:
    return sorted((tmp / "data" / "recordings" / "door").glob("*.mp4"))


def _wait_segments(tmp: Path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(_masked(tmp)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} segments were written"
        time.sleep(0.2)


def test_kill_loses_at_most_the_open_segment(tmp_path: Path) -> None:
    key_path, site = _site(tmp_path)
    with _serve(tmp_path, site, "first.log") as process:
        _wait_segments(tmp_path, 3)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    first_log = (tmp_path / "first.log").read_text()
    assert first_log.count("password:") == 1, first_log
    assert f"rtsp://127.0.0.1:{site.server.rtsp_port}/door" in first_log

    key = MasterKey.from_key_file(key_path)
    masked = _masked(tmp_path)
    assert len(masked) >= 3
    for path in masked:
        frames = decode_video(path.read_bytes())
        assert len(frames) >= 5, path
        assert frames[0].shape == (120, 160, 3)
    originals = list_segments(tmp_path / "data" / "originals", camera_id="door")
    assert len(originals) >= 2
    for stored in originals:
        assert b"ftyp" not in stored.path.read_bytes()
        assert decode_video(decrypt_segment(stored.path, key))
    with Database(tmp_path / "data" / "veil.db") as db:
        verification = AuditLog(db, hmac_key=audit_key_from(key)).verify_chain()
        assert verification.ok, verification.problem
        assert verification.entries >= 1

    # It starts again on the same data, without a new admin password, and stops cleanly.
    before = len(_masked(tmp_path))
    with _serve(tmp_path, site, "second.log") as process:
        _wait_segments(tmp_path, before + 2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    second_log = (tmp_path / "second.log").read_text()
    assert "password:" not in second_log
    assert "stopped" in second_log
    assert not list((tmp_path / "data").rglob(".*.partial"))
    for path in _masked(tmp_path)[before:]:
        assert decode_video(path.read_bytes())


def test_serve_refuses_a_bad_site_file_with_its_line(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("cameras:\n  - id: door\n    source: demo\n    fps: 500\n", encoding="utf-8")
    done = subprocess.run(
        [*VEIL, "serve", "--config", str(site)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert f"{site}:4: cameras[0].fps" in done.stderr
    assert not (tmp_path / "veil-data").exists()
