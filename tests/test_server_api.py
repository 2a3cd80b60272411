"""The gateway's HTTP API on a real uvicorn server on loopback: masked and unmasked pictures,
configuration changes, recordings, originals, the audit log and users.

The harness here (:func:`live_gateway`) is shared by the other server tests.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import cv2
import httpx
import numpy as np
import pytest
from numpy.typing import NDArray

from veil.config.schema import MaskConfig, VeilConfig
from veil.server import mjpeg
from veil.server.app import BackgroundServer, create_app, server_config
from veil.server.gateway import Gateway, GatewayOptions
from veil.server.site_config import (
    CameraConfig,
    RecordingConfig,
    SecurityConfig,
    ServerConfig,
    SiteConfig,
    load_site_file,
    save_site_file,
)
from veil.vault.keys import create_key_file
from veil.vault.users import AuthSettings, Principal, Role

PASSWORD = "correct horse battery staple"
WIDTH, HEIGHT, FPS = 320, 240, 10.0
WHITE_MASK = MaskConfig(name="corner", rect=(0.0, 0.0, 0.25, 0.25), color="#ffffff")
"""Covers x 0..80, y 0..60 of a 320 x 240 picture."""
INSIDE = (slice(6, 54), slice(6, 74))
"""Well inside the white mask (JPEG blurs its edges)."""

CHEAP_AUTH = AuthSettings(
    password_time_cost=1,
    password_memory_kib=1024,
    password_parallelism=1,
    max_failures_per_user=3,
    max_failures_per_address=100_000,
    lockout_base=timedelta(seconds=60),
)
"""Argon2 at its cheapest (tests only); three failures lock a user for a minute."""

ROLES = {
    "viewer1": Role.VIEWER,
    "operator1": Role.OPERATOR,
    "investigator1": Role.INVESTIGATOR,
    "investigator2": Role.INVESTIGATOR,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Live:
    """A started gateway behind a real HTTP server."""

    gateway: Gateway
    url: str
    tmp: Path
    passwords: dict[str, str] = field(default_factory=dict)
    clients: list[httpx.Client] = field(default_factory=list)

    def anonymous(self) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=20, verify=False)
        self.clients.append(client)
        return client

    def login(self, username: str) -> httpx.Client:
        """A client logged in as ``username``, sending its CSRF token on every request."""
        client = self.anonymous()
        reply = client.post(
            "/api/login", json={"username": username, "password": self.passwords[username]}
        )
        assert reply.status_code == 200, reply.text
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        return client

    def token_client(self, username: str, scopes: list[str] | None = None) -> httpx.Client:
        """A client using an API token of ``username`` (no cookie, no CSRF token)."""
        body: dict[str, Any] = {"name": "script"}
        if scopes is not None:
            body["scopes"] = scopes
        reply = self.login(username).post("/api/tokens", json=body)
        assert reply.status_code == 201, reply.text
        client = self.anonymous()
        client.headers["Authorization"] = f"Bearer {reply.json()['token']}"
        return client


def demo_site(
    tmp: Path,
    *,
    approval: bool = False,
    masking: VeilConfig | None = None,
    rtsp_port: int | None = None,
    segment_seconds: float = 1.0,
    tls: tuple[str, str] | None = None,
) -> SiteConfig:
    key = tmp / "keys" / "master.key"
    if not key.exists():
        key.parent.mkdir(mode=0o700, exist_ok=True)
        create_key_file(key)
    camera = CameraConfig(
        id="cam",
        name="Test camera",
        source="demo",
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        masking=masking or VeilConfig(masks=[WHITE_MASK]),
    )
    return SiteConfig(
        server=ServerConfig(
            data_dir=str(tmp / "data"), rtsp_port=rtsp_port or free_port(), port=free_port()
        ),
        cameras=[camera],
        recording=RecordingConfig(segment_seconds=segment_seconds),
        security=SecurityConfig(
            key_file=str(key),
            unmask_requires_approval=approval,
            tls_cert=tls[0] if tls else None,
            tls_key=tls[1] if tls else None,
        ),
    )


@contextmanager
def live_gateway(
    tmp: Path,
    *,
    approval: bool = False,
    with_site_file: bool = False,
    rtsp: bool = False,
    tls: tuple[str, str] | None = None,
    options: GatewayOptions | None = None,
) -> Iterator[Live]:
    site = demo_site(tmp, approval=approval, tls=tls)
    site_file = None
    if with_site_file:
        site_file = tmp / "site.yaml"
        save_site_file(site, site_file)
    opts = options or GatewayOptions(auth_settings=CHEAP_AUTH, rtsp=rtsp, prune_interval_s=3600)
    gateway = Gateway(site, site_file=site_file, options=opts)
    assert gateway.first_password is not None
    passwords = {"admin": gateway.first_password}
    system = Principal.system()
    for name, role in ROLES.items():
        gateway.users.create(system, name, PASSWORD, role)
        passwords[name] = PASSWORD
    gateway.start()
    app = create_app(gateway, tls=tls is not None)
    config = server_config(
        app,
        "127.0.0.1",
        site.server.port,
        tls_cert=tls[0] if tls else None,
        tls_key=tls[1] if tls else None,
        log_level="warning",
    )
    scheme = "https" if tls else "http"
    live = Live(gateway, f"{scheme}://127.0.0.1:{site.server.port}", tmp, passwords)
    try:
        with BackgroundServer(config):
            wait_for_frames(gateway, 3)
            yield live
            for client in live.clients:
                client.close()
    finally:
        gateway.stop()


def wait_for_frames(gateway: Gateway, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(c.status().frames_out >= count for c in gateway.cameras):
            return
        time.sleep(0.05)
    raise AssertionError(f"cameras did not produce {count} frames in {timeout} s")


def wait_until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def jpeg(reply: httpx.Response) -> NDArray[np.uint8]:
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, dtype=np.uint8)


def is_white(image: NDArray[Any]) -> bool:
    """The area is the white fill, within JPEG tolerance."""
    return int(image.min()) >= 230


def decode_video(data: bytes) -> list[NDArray[np.uint8]]:
    """Every frame of an MP4 held in memory, decoded with PyAV."""
    with av.open(io.BytesIO(data), mode="r") as container:
        return [
            np.asarray(f.to_ndarray(format="bgr24"), np.uint8) for f in container.decode(video=0)
        ]


def fresh_snapshot(client: httpx.Client, path: str, after: float = 0.4) -> NDArray[np.uint8]:
    time.sleep(after)
    return jpeg(client.get(path))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_gateway(tmp_path_factory.mktemp("api"), with_site_file=True) as running:
        yield running


# -- masked pictures --------------------------------------------------------------------------


def test_masked_snapshot_has_the_static_mask_exactly(live: Live) -> None:
    viewer = live.login("viewer1")
    image = jpeg(viewer.get("/api/cameras/cam/snapshot.jpg"))
    assert image.shape == (HEIGHT, WIDTH, 3)
    assert is_white(image[INSIDE])
    # Outside the mask the scene is visible (the demo sky and buildings are not white).
    assert float(image[120:, 100:].mean()) < 200


def test_mjpeg_stream_sends_masked_jpeg_parts(live: Live) -> None:
    viewer = live.login("viewer1")
    with viewer.stream("GET", "/api/cameras/cam/stream.mjpeg", params={"max_frames": 3}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("multipart/x-mixed-replace")
        body = r.read()
    parts = [p for p in body.split(b"--veilframe") if p.strip()]
    assert len(parts) == 3
    for part in parts:
        head, _, data = part.partition(b"\r\n\r\n")
        assert b"Content-Type: image/jpeg" in head
        image = cv2.imdecode(np.frombuffer(data.rstrip(b"\r\n"), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert is_white(image[INSIDE])


def test_cameras_list_and_status(live: Live) -> None:
    reply = live.login("viewer1").get("/api/cameras")
    assert reply.status_code == 200
    (camera,) = reply.json()
    assert camera["id"] == "cam"
    assert camera["state"] == "live"
    assert camera["frames_out"] > 0
    assert camera["width"] == WIDTH


def test_unknown_camera_is_404_everywhere(live: Live) -> None:
    operator = live.login("operator1")
    for method, path in [
        ("GET", "/api/cameras/nope"),
        ("GET", "/api/cameras/nope/snapshot.jpg"),
        ("GET", "/api/cameras/nope/masking"),
        ("POST", "/api/cameras/nope/reset-background"),
    ]:
        reply = operator.request(method, path)
        assert reply.status_code == 404, (path, reply.text)
        assert "nope" in reply.json()["detail"]


# -- unmasking --------------------------------------------------------------------------------


def test_original_only_with_an_active_grant(live: Live) -> None:
    investigator = live.login("investigator1")
    path = "/api/cameras/cam/unmasked/snapshot.jpg"
    refused = investigator.get(path)
    assert refused.status_code == 403
    assert "unmask grant" in refused.json()["detail"]
    # A reason is required.
    assert investigator.post("/api/cameras/cam/unmask", json={}).status_code == 422
    assert investigator.post("/api/cameras/cam/unmask", json={"reason": ""}).status_code == 422
    grant = investigator.post(
        "/api/cameras/cam/unmask", json={"reason": "case 2026-17", "minutes": 5}
    )
    assert grant.status_code == 200, grant.text
    assert grant.json()["status"] == "active"
    original = jpeg(investigator.get(path))
    assert not is_white(original[INSIDE]), "the original must not show the privacy mask"
    # Another investigator's grant does not open it for a viewer or for anyone else.
    assert live.login("viewer1").get(path).status_code == 403
    assert live.login("investigator2").get(path).status_code == 403
    ended = investigator.post(f"/api/unmask/{grant.json()['id']}/end")
    assert ended.status_code == 200
    assert ended.json()["status"] == "ended"
    assert investigator.get(path).status_code == 403
    entries = live.gateway.audit.entries(actor=None, limit=50)
    ends = [e for e in entries if e.action == "unmask.end"]
    assert ends
    assert ends[0].details["reason"] == "case 2026-17"
    assert ends[0].details["user"] == "investigator1"
    assert ends[0].details["start"]
    assert ends[0].details["end"]


def test_unmasked_stream_ends_with_the_grant(live: Live) -> None:
    investigator = live.login("investigator1")
    grant = investigator.post("/api/cameras/cam/unmask", json={"reason": "case 9"}).json()
    path = "/api/cameras/cam/unmasked/stream.mjpeg"
    with investigator.stream("GET", path, params={"max_frames": 2}) as r:
        assert r.status_code == 200
        assert r.read().count(b"Content-Type: image/jpeg") == 2
    views = live.gateway.audit.entries(action="unmask.view.end", limit=1)
    assert views[0].details == {
        "grant": grant["id"],
        "frames": 2,
        "seconds": views[0].details["seconds"],
    }
    investigator.post(f"/api/unmask/{grant['id']}/end")
    assert investigator.get(path).status_code == 403


def test_leaving_an_unmasked_stream_is_audited_at_once(live: Live) -> None:
    investigator = live.login("investigator1")
    grant = investigator.post("/api/cameras/cam/unmask", json={"reason": "case 12"}).json()
    with investigator.stream("GET", "/api/cameras/cam/unmasked/stream.mjpeg") as r:
        assert r.status_code == 200
        next(r.iter_bytes())

    def audited() -> bool:
        ends = live.gateway.audit.entries(action="unmask.view.end", limit=5)
        return any(e.details.get("grant") == grant["id"] for e in ends)

    wait_until(audited, 20, "the end of the unmasked view in the audit log")
    investigator.post(f"/api/unmask/{grant['id']}/end")


def test_viewer_and_operator_cannot_unmask(live: Live) -> None:
    for user in ("viewer1", "operator1"):
        reply = live.login(user).post("/api/cameras/cam/unmask", json={"reason": "curious"})
        assert reply.status_code == 403
        assert "unmask" in reply.json()["detail"]


# -- configuration ----------------------------------------------------------------------------


def test_config_change_takes_effect_and_is_persisted_and_audited(live: Live) -> None:
    operator = live.login("operator1")
    path = "/api/cameras/cam/masking"
    before = operator.get(path).json()
    new = {
        "masks": [
            {"name": "corner", "rect": [0.0, 0.0, 0.25, 0.25], "color": "#ffffff"},
            {"name": "right", "rect": [0.75, 0.75, 0.25, 0.25], "color": "#ff0000"},
        ]
    }
    reply = operator.put(path, json=new)
    assert reply.status_code == 200, reply.text
    image = fresh_snapshot(operator, "/api/cameras/cam/snapshot.jpg")
    red = image[190:234, 250:314].astype(int)
    assert (red[..., 2] > 220).all()
    assert (red[..., :2] < 40).all()
    # Written to the site file, so it survives a restart.
    on_disk = load_site_file(live.tmp / "site.yaml")
    assert [m.name for m in on_disk.cameras[0].masking.masks] == ["corner", "right"]
    change = live.gateway.audit.entries(action="config.change", limit=1)[0]
    assert change.actor == "operator1"
    changes = change.details["changes"]
    assert isinstance(changes, dict)
    assert "masks" in changes
    # Put the original back for the other tests.
    assert operator.put(path, json=before).status_code == 200


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"masks": [{"name": "x", "rect": [0.5, 0.5, 0.9, 0.2]}]}, "0..1"),
        ({"masks": [{"name": "x"}]}, "exactly one of"),
        ({"dynamic": {"methods": ["bogus"]}}, "motion"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"dynamic": {"methods": ["humans"], "model_dir": "/nonexistent"}}, "not found"),
    ],
)
def test_bad_config_is_refused_and_running_config_stays(
    live: Live, body: dict[str, Any], needle: str
) -> None:
    operator = live.login("operator1")
    path = "/api/cameras/cam/masking"
    before = operator.get(path).json()
    site_text = (live.tmp / "site.yaml").read_text()
    reply = operator.put(path, json=body)
    assert reply.status_code == 422, reply.text
    assert needle in reply.text
    assert operator.get(path).json() == before
    assert (live.tmp / "site.yaml").read_text() == site_text
    assert is_white(fresh_snapshot(operator, "/api/cameras/cam/snapshot.jpg", 0.2)[INSIDE])


def test_malformed_json_huge_body_and_wrong_types(live: Live) -> None:
    operator = live.login("operator1")
    path = "/api/cameras/cam/masking"
    before = operator.get(path).json()
    bad = operator.put(path, content=b'{"masks": [', headers={"Content-Type": "application/json"})
    assert bad.status_code == 422
    assert "not valid JSON" in bad.json()["detail"]
    huge = operator.put(
        path,
        content=b'{"masks": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    assert "too large" in huge.json()["detail"]
    wrong = operator.put(path, json={"masks": "everything"})
    assert wrong.status_code == 422
    assert operator.get(path).json() == before


def test_reset_background_needs_configure(live: Live) -> None:
    assert live.login("viewer1").post("/api/cameras/cam/reset-background").status_code == 403
    assert live.login("operator1").post("/api/cameras/cam/reset-background").status_code == 200
    entry = live.gateway.audit.entries(action="camera.reset_background", limit=1)[0]
    assert entry.actor == "operator1"


# -- recordings and originals -----------------------------------------------------------------


def test_recordings_are_listed_and_playable(live: Live) -> None:
    viewer = live.login("viewer1")
    wait_until(lambda: len(viewer.get("/api/recordings").json()) >= 2, what="2 segments")
    listed = viewer.get("/api/recordings", params={"camera": "cam"}).json()
    name = listed[0]["name"]
    newest = viewer.get("/api/recordings", params={"camera": "cam", "limit": 1}).json()
    assert len(newest) == 1
    assert newest[0]["start"] >= listed[-1]["start"]
    later = viewer.get("/api/recordings", params={"since": listed[1]["start"]}).json()
    assert name not in [s["name"] for s in later]
    assert viewer.get("/api/recordings", params={"until": "2000-01-01T00:00:00Z"}).json() == []
    reply = viewer.get(f"/api/recordings/cam/{name}")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "video/mp4"
    frames = decode_video(reply.content)
    assert len(frames) >= 5
    assert frames[0].shape == (HEIGHT, WIDTH, 3)
    assert all(is_white(f[INSIDE]) for f in frames)
    assert viewer.get("/api/recordings/cam/..%2F..%2Fveil.db").status_code == 404
    assert viewer.get("/api/recordings/cam/nothing.mp4").status_code == 404


def test_originals_are_encrypted_and_decrypt_only_with_unmask_and_reason(live: Live) -> None:
    investigator = live.login("investigator1")
    wait_until(lambda: investigator.get("/api/originals").json(), what="an original segment")
    name = investigator.get("/api/originals", params={"camera": "cam"}).json()[0]["name"]
    on_disk = live.gateway.originals_dir / name
    raw = on_disk.read_bytes()
    assert b"ftyp" not in raw, "an original is stored in the clear"
    assert b"mdat" not in raw
    path = f"/api/originals/cam/{name}/decrypt"
    assert live.login("viewer1").get("/api/originals").status_code == 403
    assert live.login("operator1").post(path, json={"reason": "x"}).status_code == 403
    assert investigator.post(path, json={}).status_code == 422
    assert investigator.post(path, json={"reason": "   "}).status_code == 422
    reply = investigator.post(path, json={"reason": "case 2026-18"})
    assert reply.status_code == 200, reply.text
    assert reply.content[4:8] == b"ftyp"
    frames = decode_video(reply.content)
    assert frames
    assert not is_white(frames[0][INSIDE]), "the original is unmasked"
    entry = live.gateway.audit.entries(action="segment.decrypt", limit=1)[0]
    assert entry.actor == "investigator1"
    assert entry.details["reason"] == "case 2026-18"
    assert entry.details["segment"] == name


# -- audit and users --------------------------------------------------------------------------


def test_audit_log_lists_and_verifies_for_admins_only(live: Live) -> None:
    admin = live.login("admin")
    verified = admin.get("/api/audit/verify").json()
    assert verified["ok"] is True
    assert verified["keyed"] is True
    assert verified["entries"] > 0
    entries = admin.get("/api/audit", params={"limit": 5}).json()
    assert len(entries) == 5
    assert entries[0]["seq"] > entries[-1]["seq"]
    for user in ("viewer1", "operator1", "investigator1"):
        assert live.login(user).get("/api/audit/verify").status_code == 403


def test_admin_manages_users(live: Live) -> None:
    admin = live.login("admin")
    created = admin.post(
        "/api/users", json={"username": "temp1", "password": PASSWORD, "role": "viewer"}
    )
    assert created.status_code == 201, created.text
    live.passwords["temp1"] = PASSWORD
    assert live.login("temp1").get("/api/cameras").status_code == 200
    weak = admin.post("/api/users", json={"username": "temp2", "password": "x", "role": "viewer"})
    assert weak.status_code == 400
    assert "too short" in weak.json()["detail"]
    promoted = admin.patch("/api/users/temp1", json={"role": "operator"})
    assert promoted.json()["role"] == "operator"
    assert admin.patch("/api/users/temp1", json={"disabled": True}).json()["disabled"] is True
    again = live.anonymous().post("/api/login", json={"username": "temp1", "password": PASSWORD})
    assert again.status_code == 401
    assert admin.delete("/api/users/temp1").status_code == 200
    assert admin.delete("/api/users/temp1").status_code == 404
    assert admin.patch("/api/users/ghost", json={"role": "viewer"}).status_code == 404
    last = admin.patch("/api/users/admin", json={"role": "viewer"})
    assert last.status_code == 400
    assert "last enabled admin" in last.json()["detail"]
    assert live.login("operator1").get("/api/users").status_code == 403


def test_the_unmasked_view_closes_itself_when_its_time_limit_ends(live: Live) -> None:
    investigator = live.login("investigator1")
    grant = investigator.post(
        "/api/cameras/cam/unmask", json={"reason": "case 31", "minutes": 0.05}
    ).json()
    assert grant["duration_s"] == 3
    started = time.monotonic()
    path = "/api/cameras/cam/unmasked/stream.mjpeg"
    with investigator.stream("GET", path) as r:
        assert r.status_code == 200
        body = r.read()  # ends by itself: the grant expires
    assert time.monotonic() - started < 7
    assert body.count(b"Content-Type: image/jpeg") >= 1
    assert investigator.get("/api/cameras/cam/unmasked/snapshot.jpg").status_code == 403
    ends = [
        e
        for e in live.gateway.audit.entries(action="unmask.end", limit=20)
        if e.details.get("grant") == grant["id"]
    ]
    assert len(ends) == 1
    assert ends[0].details["how"] == "expired"


def test_streams_are_limited_per_camera(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mjpeg, "MAX_VIEWERS", 1)
    viewer = live.login("viewer1")
    path = "/api/cameras/cam/stream.mjpeg"
    runtime = live.gateway.camera("cam")
    with viewer.stream("GET", path) as first:
        assert first.status_code == 200
        next(first.iter_bytes())
        with live.login("viewer1").stream("GET", path) as second:  # never reads a stream
            assert second.status_code == 503
            assert "viewers already" in json.loads(second.read())["detail"]
    wait_until(lambda: mjpeg.viewers(runtime.masked) == 0, 20, "the first viewer to leave")
    with viewer.stream("GET", path, params={"max_frames": 1}) as third:
        assert third.status_code == 200


def test_health_needs_no_login_and_names_nothing(live: Live) -> None:
    reply = live.anonymous().get("/api/health")
    assert reply.status_code == 200
    assert reply.json() == {"ok": True, "cameras": 1, "live": 1}
