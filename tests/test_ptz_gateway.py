"""PTZ in the gateway: a virtual PTZ camera served by a real gateway behind a real uvicorn
server on loopback, moved through the HTTP API with ONVIF's semantics (absolute, relative,
continuous moves, stop, presets, go-to-mask), with scene masks that stay on the scene: after
every move, the masked picture's pixels inside the mask's projection are the mask's colour
and every other pixel is exactly the unmasked view.

The harness (:func:`ptz_gateway`) is shared with test_ptz_web.py. The gateway is wired as
the PTZ work proposes (the hub's source and masker factories, its router on the app), since
the gateway's own files do not include it yet.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from numpy.typing import NDArray
from pydantic import ValidationError
from schemathesis import Case

from test_server_api import CHEAP_AUTH, PASSWORD, free_port, jpeg
from veil.config.schema import MaskConfig, VeilConfig
from veil.core.errors import ConfigError
from veil.core.frame import Frame
from veil.core.region import Region
from veil.policy.build import build_masker
from veil.ptz.camera import CameraView, PTZState, direction_to_angles
from veil.ptz.config import (
    LensConfig,
    PresetConfig,
    PTZConfig,
    SceneMaskConfig,
    VirtualConfig,
    compile_ptz,
)
from veil.ptz.masks import project_mask
from veil.ptz.runtime import PTZ_DEMO, PTZCamera, PTZConflictError, PTZHub, PTZMasker
from veil.ptz.virtual import VirtualPTZ, synthetic_equirect, tile_at, tile_color
from veil.server import ptz_routes
from veil.server.app import BackgroundServer, build_app, create_app, server_config
from veil.server.camera import CameraRuntime
from veil.server.gateway import Gateway, GatewayOptions, default_masker_factory
from veil.server.site_config import (
    CameraConfig,
    RecordingConfig,
    SecurityConfig,
    ServerConfig,
    SiteConfig,
)
from veil.server.sources import open_frames
from veil.vault.keys import create_key_file
from veil.vault.users import Principal, Role

W, H, FPS = 320, 180, 20.0
SOURCE_WIDTH = 1024
SCENE = synthetic_equirect(SOURCE_WIDTH, SOURCE_WIDTH // 2)
MAGENTA = (255, 0, 255)  # BGR of #ff00ff
GREEN_BGR = (0, 255, 0)


def tile_mask(
    name: str, col: int, row: int, color: str = "#ff00ff", steps: int = 6
) -> SceneMaskConfig:
    """A mask over exactly one synthetic tile, with corners along its edges every
    30 / ``steps`` degrees (great-circle edges then follow the lines of constant tilt to
    within a few hundredths of a degree)."""
    pan0, tilt1 = -180.0 + 30.0 * col, 90.0 - 30.0 * row
    pan1, tilt0 = pan0 + 30.0, tilt1 - 30.0
    tilt0, tilt1 = max(tilt0, -89.0), min(tilt1, 89.0)
    ts = [i / steps for i in range(steps)]
    corners = (
        [(pan0 + 30.0 * t, tilt0) for t in ts]
        + [(pan1, tilt0 + (tilt1 - tilt0) * t) for t in ts]
        + [(pan1 - 30.0 * t, tilt1) for t in ts]
        + [(pan0, tilt1 - (tilt1 - tilt0) * t) for t in ts]
    )
    return SceneMaskConfig(name=name, vertices=corners, color=color)


WINDOW = tile_mask("window", 6, 2)
"""Tile (6, 2): pan 0..30, tilt 0..30."""
BACK = SceneMaskConfig(
    name="back", vertices=[(165, -20), (-170, -20), (-170, 5), (165, 5)], color="#ff00ff"
)
"""Straddles pan +-180 degrees."""
CORNER = MaskConfig(name="osd", rect=(0.0, 0.0, 0.1, 0.1), color="#00ff00")
"""A picture mask (fixed to the picture, drawn by the ordinary masker)."""
USERS = {"viewer1": Role.VIEWER, "operator1": Role.OPERATOR}


def ptz_config(masks: list[SceneMaskConfig] | None = None) -> PTZConfig:
    return PTZConfig(
        lens=LensConfig(hfov_wide_deg=60.0, hfov_tele_deg=3.0),
        masks=[WINDOW, BACK] if masks is None else masks,
        presets=[PresetConfig(name="home", pan_deg=0.0, tilt_deg=0.0, zoom=0.0)],
        virtual=VirtualConfig(synthetic_width=SOURCE_WIDTH, initial={"pan_deg": 15.0}),
    )


@dataclass
class PTZLive:
    """A started gateway with one virtual PTZ camera ("ptz"), behind a real HTTP server."""

    gateway: Gateway
    hub: PTZHub
    app: FastAPI
    url: str
    passwords: dict[str, str]
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def camera(self) -> PTZCamera:
        return self.hub.camera("ptz")

    @property
    def runtime(self) -> CameraRuntime:
        return self.gateway.camera("ptz")

    def login(self, username: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=20)
        self.clients.append(client)
        reply = client.post(
            "/api/login", json={"username": username, "password": self.passwords[username]}
        )
        assert reply.status_code == 200, reply.text
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        return client

    def fresh_image(self, frames: int = 3, timeout: float = 10.0) -> NDArray[np.uint8]:
        """The masked picture published after ``frames`` more frames (so it was captured
        after any move that returned before this call)."""
        start = self.runtime.masked.latest()
        seq = 0 if start is None else start.seq
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            published = self.runtime.masked.wait_newer(seq, 0.5)
            if published is not None and published.seq >= seq + frames:
                return np.asarray(published.image)
        raise AssertionError("the camera published no new frames")

    def settle(self, timeout: float = 10.0) -> PTZState:
        """Wait until the camera stands still; its position."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reading = self.camera.read()
            if not reading.moving:
                return reading.state
            time.sleep(0.05)
        raise AssertionError("the camera did not stop")


WIRED = "ptz" in CameraConfig.model_fields
"""Whether the gateway builds its PTZ hub itself (CameraConfig has its 'ptz' section); if
not, the tests wire the hub into the gateway as the proposed change does."""


def ptz_site(tmp: Path, config: PTZConfig | None = None) -> SiteConfig:
    key = tmp / "keys" / "master.key"
    key.parent.mkdir(mode=0o700, exist_ok=True)
    create_key_file(key)
    camera = CameraConfig.model_validate(
        {
            "id": "ptz",
            "name": "PTZ camera",
            "source": PTZ_DEMO,
            "width": W,
            "height": H,
            "fps": FPS,
            "masking": VeilConfig(masks=[CORNER]),
            "record_original": False,
            **({"ptz": config} if config is not None else {}),
        }
    )
    return SiteConfig(
        server=ServerConfig(data_dir=str(tmp / "data"), rtsp_port=free_port(), port=free_port()),
        cameras=[camera],
        recording=RecordingConfig(enabled=False),
        security=SecurityConfig(key_file=str(key)),
    )


def with_ptz_routes(app: FastAPI) -> FastAPI:
    """``app`` with the PTZ routes, unless the app factory includes them already."""
    if f"{ptz_routes.router.prefix}/status" not in app.openapi()["paths"]:
        app.include_router(ptz_routes.router)
    app.openapi_schema = None  # described again with the routes added
    return app


@contextmanager
def ptz_gateway(tmp: Path, config: PTZConfig | None = None) -> Iterator[PTZLive]:
    """A gateway whose camera "ptz" is a 320 x 180, 20 fps virtual PTZ camera over the
    synthetic scene, with a picture mask (green corner) and ``config``'s scene masks."""
    config = config or ptz_config()
    site = ptz_site(tmp, config if WIRED else None)
    hub = PTZHub()
    hub.add(PTZCamera("ptz", config, W, H, fps=FPS))
    wiring: dict[str, Any] = (
        {}
        if WIRED
        else {
            "masker_factory": hub.masker_factory(default_masker_factory(None)),
            "source_factory": hub.source_factory(open_frames),
        }
    )
    options = GatewayOptions(
        auth_settings=CHEAP_AUTH,
        rtsp=False,
        prune_interval_s=3600,
        # A loaded test machine must not turn frames into "fell behind" or "no signal"
        # pictures (the fail-closed rules are tested with the gateway).
        stall_timeout=10.0,
        max_latency=5.0,
        **wiring,
    )
    gateway = Gateway(site, options=options)
    if WIRED:
        hub = gateway.ptz  # type: ignore[attr-defined,unused-ignore]
    assert gateway.first_password is not None
    passwords = {"admin": gateway.first_password}
    for name, role in USERS.items():
        gateway.users.create(Principal.system(), name, PASSWORD, role)
        passwords[name] = PASSWORD
    gateway.start()
    app = create_app(gateway)
    app.state.ptz = hub
    with_ptz_routes(app)
    server = server_config(app, "127.0.0.1", site.server.port, log_level="warning")
    live = PTZLive(gateway, hub, app, f"http://127.0.0.1:{site.server.port}", passwords)
    try:
        with BackgroundServer(server):
            live.fresh_image(1, timeout=20)
            yield live
            for client in live.clients:
                client.close()
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PTZLive]:
    with ptz_gateway(tmp_path_factory.mktemp("ptz")) as running:
        yield running


@pytest.fixture
def operator(live: PTZLive) -> Iterator[httpx.Client]:
    client = live.login("operator1")
    yield client
    # Every test starts from the same place, standing still, with the site's masks.
    assert client.post("/api/cameras/ptz/ptz/stop", json={}).status_code == 200
    live.camera.set_masks([WINDOW, BACK])
    live.camera.absolute_move(15.0, 0.0, 0.0)


# -- expectations -----------------------------------------------------------------------------

REFERENCE = VirtualPTZ(SCENE, ptz_config().lens.lens(), (W, H), clock=lambda: 0.0)
"""Renders the unmasked view at any position (its own map cache: not the gateway's)."""


def coverage(state: PTZState, masks: list[SceneMaskConfig]) -> NDArray[np.bool_]:
    """Pixels whose centre lies inside a mask's projection at ``state`` (the mask's
    outline clipped to the view, rasterised by Region's rule)."""
    view = CameraView.create(state, REFERENCE.lens, W, H)
    out = np.zeros((H, W), dtype=np.bool_)
    for mask in masks:
        if mask.enabled and state.zoom >= mask.min_zoom:
            px = project_mask(view, mask.scene_mask(), border_px=2.0)
            if px is not None:
                out |= Region.from_pixels(px, W, H).rasterize(W, H)
    return out


def corner() -> NDArray[np.bool_]:
    out = np.zeros((H, W), dtype=np.bool_)
    out[: round(0.1 * H), : round(0.1 * W)] = True
    return out


def check_masked(image: NDArray[np.uint8], state: PTZState, masks: list[SceneMaskConfig]) -> int:
    """Inside the projection: the mask colour exactly; outside it (and the picture mask):
    exactly the unmasked view. Returns how many pixels the scene masks cover."""
    cov = coverage(state, masks)
    reference = REFERENCE.render(state)
    # The scene masks are drawn over the picture masks.
    osd = corner() & ~cov
    assert np.array_equal(image[osd], np.broadcast_to(GREEN_BGR, image[osd].shape))
    inside = cov
    assert np.array_equal(image[inside], np.broadcast_to(MAGENTA, image[inside].shape)), (
        f"scene mask pixels not filled at {state}"
    )
    outside = ~cov & ~corner()
    differs = np.any(image[outside] != reference[outside], axis=1)
    assert not differs.any(), f"{int(differs.sum())} pixels outside the masks changed at {state}"
    return int(inside.sum())


def position(reply: httpx.Response) -> PTZState:
    assert reply.status_code == 200, reply.text
    p = reply.json()["position"]
    return PTZState(p["pan_deg"], p["tilt_deg"], p["zoom"])


API = "/api/cameras/ptz/ptz"


# -- access -----------------------------------------------------------------------------------


def test_viewer_reads_but_cannot_move_or_edit(live: PTZLive) -> None:
    viewer = live.login("viewer1")
    status = viewer.get(f"{API}/status")
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["virtual"] is True
    assert (body["width"], body["height"]) == (W, H)
    assert body["lens"] == {"hfov_wide_deg": 60.0, "hfov_tele_deg": 3.0}
    assert viewer.get(f"{API}/presets").status_code == 200
    assert [m["name"] for m in viewer.get(f"{API}/masks").json()] == ["window", "back"]
    before = live.camera.read().state
    for method, path, body_json in [
        ("POST", "absolute-move", {"pan": 100.0}),
        ("POST", "relative-move", {"pan": 10.0}),
        ("POST", "continuous-move", {"pan": 10.0}),
        ("POST", "stop", {}),
        ("POST", "presets", {"name": "x"}),
        ("POST", "presets/preset-1/goto", {}),
        ("DELETE", "presets/preset-1", None),
        ("POST", "go-to-mask", {"name": "window"}),
        ("PUT", "masks", {"masks": []}),
    ]:
        reply = viewer.request(method, f"{API}/{path}", json=body_json)
        assert reply.status_code == 403, (path, reply.text)
    assert live.camera.read().state == before
    assert len(live.camera.presets()) >= 1
    assert len(live.camera.config.masks) == 2
    refusals = live.gateway.audit.entries(limit=50, actor="viewer1")
    assert any(API in e.target for e in refusals)
    anonymous = httpx.Client(base_url=live.url, timeout=10)
    live.clients.append(anonymous)
    assert anonymous.get(f"{API}/status").status_code == 401
    assert anonymous.post(f"{API}/absolute-move", json={"pan": 1.0}).status_code == 401


def test_unknown_camera_or_no_ptz_is_404(live: PTZLive, operator: httpx.Client) -> None:
    assert operator.get("/api/cameras/nope/ptz/status").status_code == 404
    live.app.state.ptz = PTZHub()
    try:
        reply = operator.get(f"{API}/status")
        assert reply.status_code == 404
        assert "pan-tilt-zoom" in reply.json()["detail"]
    finally:
        live.app.state.ptz = live.hub


# -- moves ------------------------------------------------------------------------------------


def test_absolute_and_relative_moves(live: PTZLive, operator: httpx.Client) -> None:
    state = position(
        operator.post(f"{API}/absolute-move", json={"pan": 40, "tilt": 10, "zoom": 0.5})
    )
    assert state == PTZState(40.0, 10.0, 0.5)
    # An axis left out stays where it is.
    assert position(operator.post(f"{API}/absolute-move", json={"zoom": 0.2})) == PTZState(
        40.0, 10.0, 0.2
    )
    # Pan wraps; relative moves add (right and up are positive).
    assert position(operator.post(f"{API}/absolute-move", json={"pan": 190})) == PTZState(
        -170.0, 10.0, 0.2
    )
    moved = position(operator.post(f"{API}/relative-move", json={"pan": -15, "tilt": -5}))
    assert moved.pan_deg == pytest.approx(175.0)
    assert moved.tilt_deg == pytest.approx(5.0)
    # Generic spaces: x 1.0 is 180 degrees of pan; y -1..1 spans the tilt range.
    moved = position(operator.post(f"{API}/relative-move", json={"pan": 0.5, "space": "generic"}))
    assert moved.pan_deg == pytest.approx(-95.0)
    at = position(
        operator.post(
            f"{API}/absolute-move", json={"pan": 0.25, "tilt": 0.5, "zoom": 1, "space": "generic"}
        )
    )
    assert at == PTZState(45.0, 45.0, 1.0)
    status = operator.get(f"{API}/status").json()
    assert status["generic"] == {"x": 0.25, "y": 0.5, "zoom": 1.0}
    assert status["hfov_deg"] == pytest.approx(3.0)
    # A relative move past the tilt range stops at its border.
    assert position(operator.post(f"{API}/relative-move", json={"tilt": 80})).tilt_deg == 90.0
    # Out of range is refused, and the camera stays.
    for body in ({"tilt": 95}, {"zoom": 1.5}, {"pan": 2, "space": "generic"}, {"speed": 2}):
        reply = operator.post(f"{API}/absolute-move", json=body)
        assert reply.status_code == 422, (body, reply.text)
    assert live.camera.read().state == PTZState(45.0, 90.0, 1.0)


def test_moves_at_a_speed_take_the_shorter_way_and_stop(
    live: PTZLive, operator: httpx.Client
) -> None:
    operator.post(f"{API}/absolute-move", json={"pan": 170, "tilt": 0, "zoom": 0})
    # From 170 to -170 the shorter way is right, through 180 (20 degrees, not 340).
    reply = operator.post(f"{API}/absolute-move", json={"pan": -170, "speed": 0.1})
    assert reply.json()["moving"] is True
    status = operator.get(f"{API}/status").json()
    assert status["moving"] is True
    assert status["velocity"]["pan_deg_s"] == pytest.approx(9.0)
    time.sleep(0.3)
    pan = position(operator.post(f"{API}/stop", json={})).pan_deg
    assert pan >= 170.0 or pan <= -170.0  # never went the long way
    assert operator.get(f"{API}/position").json()["moving"] is False
    # A preset cannot be saved while moving (ONVIF MovingPTZ).
    operator.post(f"{API}/continuous-move", json={"tilt": 5})
    assert operator.post(f"{API}/presets", json={"name": "busy"}).status_code == 409
    # Stop only pan/tilt of a zooming and panning camera: the zoom goes on.
    operator.post(f"{API}/continuous-move", json={"pan": 5, "zoom": 0.2})
    reply = operator.post(f"{API}/stop", json={"pan_tilt": True, "zoom": False})
    assert reply.json()["moving"] is True
    velocity = operator.get(f"{API}/status").json()["velocity"]
    assert velocity["pan_deg_s"] == 0.0
    assert velocity["zoom_per_s"] == pytest.approx(0.2)
    operator.post(f"{API}/stop", json={})
    assert operator.get(f"{API}/position").json()["moving"] is False


def test_continuous_move_lasts_its_timeout(live: PTZLive, operator: httpx.Client) -> None:
    start = position(operator.post(f"{API}/absolute-move", json={"pan": 0, "tilt": 0, "zoom": 0}))
    reply = operator.post(f"{API}/continuous-move", json={"pan": 30, "timeout_s": 0.3})
    assert reply.json()["moving"] is True
    end = live.settle()
    # 30 degrees per second for exactly 0.3 s of the camera's clock.
    assert end.pan_deg == pytest.approx(start.pan_deg + 9.0, abs=1e-6)
    # Generic velocity: a fraction of full speed (90 deg/s); zero velocity stops.
    operator.post(
        f"{API}/continuous-move", json={"tilt": -0.5, "space": "generic", "timeout_s": 60}
    )
    velocity = operator.get(f"{API}/status").json()["velocity"]
    assert velocity["tilt_deg_s"] == pytest.approx(-45.0)
    assert operator.post(f"{API}/continuous-move", json={}).json()["moving"] is False


# -- presets and go-to-mask -------------------------------------------------------------------


def test_presets(live: PTZLive, operator: httpx.Client) -> None:
    presets = operator.get(f"{API}/presets").json()
    assert presets[0]["name"] == "home"
    operator.post(f"{API}/absolute-move", json={"pan": -60, "tilt": 20, "zoom": 0.4})
    reply = operator.post(f"{API}/presets", json={"name": "door"})
    assert reply.status_code == 201, reply.text
    door = reply.json()
    assert live.camera.config.presets[-1] == PresetConfig(
        name="door", pan_deg=-60.0, tilt_deg=20.0, zoom=0.4
    )
    assert door["position"] == {"pan_deg": -60.0, "tilt_deg": 20.0, "zoom": 0.4}
    assert operator.post(f"{API}/presets", json={"name": "door"}).status_code == 409
    operator.post(f"{API}/absolute-move", json={"pan": 100})
    goto = operator.post(f"{API}/presets/{door['token']}/goto", json={})
    assert goto.status_code == 200, goto.text
    assert live.camera.read().state == PTZState(-60.0, 20.0, 0.4)
    # Overwrite a preset by its token, at a new position.
    operator.post(f"{API}/absolute-move", json={"pan": -50})
    again = operator.post(f"{API}/presets", json={"name": "door", "token": door["token"]})
    assert again.json()["position"]["pan_deg"] == -50.0
    left = operator.delete(f"{API}/presets/{door['token']}")
    assert [p["name"] for p in left.json()] == ["home"]
    assert operator.post(f"{API}/presets/{door['token']}/goto", json={}).status_code == 404
    assert operator.delete(f"{API}/presets/{door['token']}").status_code == 404
    home = next(p for p in operator.get(f"{API}/presets").json() if p["name"] == "home")
    operator.post(f"{API}/presets/{home['token']}/goto", json={})
    assert live.camera.read().state == PTZState(0.0, 0.0, 0.0)
    # The configuration follows the presets (so the gateway can save them).
    assert [p.name for p in live.camera.config.presets] == ["home"]
    actions = [e.action for e in live.gateway.audit.entries(limit=20, actor="operator1")]
    assert "ptz.preset.set" in actions
    assert "ptz.preset.remove" in actions


def test_go_to_mask_centres_and_fills(live: PTZLive, operator: httpx.Client) -> None:
    sign = SceneMaskConfig(
        name="sign", vertices=[(100, -10), (108, -10), (108, -5), (100, -5)], color="#ff00ff"
    )
    live.camera.set_masks([WINDOW, BACK, sign])
    operator.post(f"{API}/absolute-move", json={"pan": -120, "tilt": -40, "zoom": 0})
    reply = operator.post(f"{API}/go-to-mask", json={"name": "sign", "fill": 0.8})
    assert reply.status_code == 200, reply.text
    target = reply.json()["target"]
    state = live.camera.read().state
    assert (state.pan_deg, state.tilt_deg, state.zoom) == pytest.approx(
        (target["pan_deg"], target["tilt_deg"], target["zoom"])
    )
    assert state.zoom > 0.2
    view = CameraView.create(state, REFERENCE.lens, W, H)
    px = project_mask(view, sign.scene_mask())
    assert px is not None
    # Centred (its extent's middle at the picture's centre), spanning 80 % of the width or
    # the height and fitting in the picture.
    lo, hi = px.min(axis=0), px.max(axis=0)
    assert (lo + hi) / 2 == pytest.approx([W / 2, H / 2], abs=1.0)
    span = (hi - lo) / [W, H]
    assert max(span) == pytest.approx(0.8, abs=0.01)
    assert (span <= 0.81).all()
    # The masked picture shows the mask there.
    image = live.fresh_image()
    assert check_masked(image, state, [WINDOW, BACK, sign]) > 0.8 * 0.8 * W * H * 0.3
    assert (image[H // 2, W // 2] == MAGENTA).all()
    # A mask larger than the widest view: centred, at the widest zoom (cut off).
    reply = operator.post(f"{API}/go-to-mask", json={"name": "window"})
    assert reply.json()["target"]["zoom"] == 0.0
    state = live.camera.read().state
    view = CameraView.create(state, REFERENCE.lens, W, H)
    pan, tilt = direction_to_angles(view.pixel_to_direction([[W / 2, H / 2]]))
    assert tile_at(float(pan[0]), float(tilt[0])) == (6, 2)
    assert operator.post(f"{API}/go-to-mask", json={"name": "nope"}).status_code == 404


# -- masks on the scene -----------------------------------------------------------------------


MOVES: list[dict[str, Any]] = [
    {"pan": 15, "tilt": 15, "zoom": 0.0},  # the window in the middle
    {"pan": 40, "tilt": 20, "zoom": 0.0},  # partly out of the picture on the left
    {"pan": 15, "tilt": 15, "zoom": 0.6},  # zoomed in: the mask fills the picture
    {"pan": 5, "tilt": 28, "zoom": 0.45},  # its corner
    {"pan": 178, "tilt": -5, "zoom": 0.1},  # the mask straddling pan 180
    {"pan": -120, "tilt": 0, "zoom": 0.0},  # no mask in view
    {"pan": 15, "tilt": 85, "zoom": 0.0},  # looking up: the window at the bottom edge
]


def test_masks_stay_on_the_scene_after_moves(live: PTZLive, operator: httpx.Client) -> None:
    covered = []
    for move in MOVES:
        state = position(operator.post(f"{API}/absolute-move", json=move))
        covered.append(check_masked(live.fresh_image(), state, [WINDOW, BACK]))
    assert covered[0] > 0
    assert covered[1] > 0
    assert covered[4] > 0
    assert covered[5] == 0
    assert covered[2] == W * H  # zoomed into the tile: all of it
    # Relative and continuous moves too: wherever the camera stops, the masks follow.
    operator.post(f"{API}/absolute-move", json={"pan": 0, "tilt": 10, "zoom": 0.2})
    operator.post(f"{API}/relative-move", json={"pan": 12.5, "tilt": -3, "zoom": 0.1})
    check_masked(live.fresh_image(), live.camera.read().state, [WINDOW, BACK])
    operator.post(f"{API}/continuous-move", json={"pan": -20, "tilt": 10, "timeout_s": 0.25})
    state = live.settle()
    check_masked(live.fresh_image(), state, [WINDOW, BACK])
    # The JPEG snapshot agrees (within JPEG's error, away from the edges).
    snap = jpeg(live.login("viewer1").get("/api/cameras/ptz/snapshot.jpg")).astype(int)
    cov = coverage(state, [WINDOW, BACK])
    assert cov.any()
    core = _eroded(cov, 4)
    assert np.abs(snap[core] - MAGENTA).max() <= 40


def _eroded(mask: NDArray[np.bool_], r: int) -> NDArray[np.bool_]:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out &= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return out


def test_masks_follow_while_moving_at_the_captured_position() -> None:
    """Frames rendered while the camera moves are masked at the position each was rendered
    at, even when the camera has moved on by the time the masker runs."""
    now = [0.0]
    camera = PTZCamera("ptz", ptz_config(), W, H, fps=FPS, clock=lambda: now[0])
    hub = PTZHub([camera])
    masker = hub.masker_factory(build_masker)(VeilConfig(masks=[CORNER]), FPS)
    camera.absolute_move(-10.0, 5.0, 0.1)
    camera.continuous_move(40.0, 8.0, 0.3, timeout_s=10.0)
    seen = 0
    for _ in range(12):
        now[0] += 0.05
        frame = camera.capture()
        reading = camera.reading_for(frame)
        assert reading is not None
        assert reading.moving
        now[0] += 0.05  # the head moves on before the frame is masked
        assert camera.read().state != reading.state
        seen += check_masked(np.asarray(masker.process(frame).image), reading.state, [WINDOW, BACK])
    assert seen > 0
    # A frame this camera did not render (its position unknown) is masked whole.
    stranger = Frame(np.full((H, W, 3), 200, np.uint8), 0, camera.capture().time_base, 10**9, "ptz")
    assert not masker.process(stranger).image.any()
    # Other cameras' frames only get their own masking.
    other = Frame(np.full((H, W, 3), 200, np.uint8), 0, stranger.time_base, 0, "other")
    out = masker.process(other).image
    assert (out[corner()] == GREEN_BGR).all()
    assert (out[~corner()] == 200).all()


class _Plain:
    """A masker without planners of its own: the scene masks are drawn over its output."""

    def process(self, frame: Frame) -> Frame:
        return frame

    def reset_background(self) -> None:
        pass


def test_scene_masks_over_any_masker() -> None:
    camera = PTZCamera("ptz", ptz_config(), W, H, fps=FPS, clock=lambda: 0.0)
    masker = PTZMasker(_Plain(), PTZHub([camera]))
    assert masker.pipeline is None
    camera.absolute_move(15.0, 15.0, 0.1)
    frame = camera.capture()
    out = np.asarray(masker.process(frame).image)
    assert (out[H // 2, W // 2] == MAGENTA).all()
    cov = coverage(PTZState(15.0, 15.0, 0.1), [WINDOW, BACK])
    assert (out[~cov] == frame.image[~cov]).all()
    stranger = Frame(np.full((H, W, 3), 9, np.uint8), 0, Fraction(1, 20), 10**9, "ptz")
    assert not masker.process(stranger).image.any()


def test_a_real_head_without_position_is_masked_whole() -> None:
    """Until Veil reads a real head's position, its scene masks cannot be placed: every
    frame is masked whole (fail closed); it cannot be moved from Veil."""
    config = ptz_config().model_copy(update={"virtual": None})
    hub = PTZHub([PTZCamera("real", config, W, H)])
    masker = PTZMasker(build_masker(VeilConfig(), FPS), hub)
    frame = Frame(np.full((H, W, 3), 200, np.uint8), 0, Fraction(1, 20), 0, "real")
    assert not masker.process(frame).image.any()
    assert hub.camera("real").virtual is False
    with pytest.raises(PTZConflictError):
        hub.camera("real").absolute_move(10.0)


def test_drawn_masks_convert_to_the_scene(live: PTZLive, operator: httpx.Client) -> None:
    drawn_at = {"pan_deg": -75.0, "tilt_deg": 15.0, "zoom": 0.3}
    polygon = [[0.3, 0.25], [0.7, 0.3], [0.65, 0.75], [0.35, 0.7]]
    converted = operator.post(
        f"{API}/masks/from-view", json={"polygon": polygon, "position": drawn_at}
    )
    assert converted.status_code == 200, converted.text
    vertices = np.array(converted.json()["vertices"])
    # Projected back into the view it was drawn on, the corners are the drawn points.
    state = PTZState(**drawn_at)
    view = CameraView.create(state, REFERENCE.lens, W, H)
    px = project_mask(view, SceneMaskConfig(name="d", vertices=vertices.tolist()).scene_mask())
    assert px is not None
    assert px / [W, H] == pytest.approx(np.array(polygon), abs=1e-6)
    # Stored next to a mask given in degrees; the camera elsewhere, zoomed out.
    operator.post(f"{API}/absolute-move", json={"pan": -60, "tilt": 5, "zoom": 0.0})
    body = {
        "masks": [
            WINDOW.model_dump(mode="json"),
            {
                "name": "drawn",
                "color": "#ff00ff",
                "drawn": {"polygon": polygon, "position": drawn_at},
            },
        ]
    }
    reply = operator.put(f"{API}/masks", json=body)
    assert reply.status_code == 200, reply.text
    stored = [SceneMaskConfig.model_validate(m) for m in reply.json()]
    assert [m.name for m in stored] == ["window", "drawn"]
    assert np.array(stored[1].vertices) == pytest.approx(vertices, abs=1e-5)
    assert "drawn" in {m.name for m in live.camera.config.masks}
    # Now masked where the scene is, seen from here and from the view it was drawn on.
    covered = check_masked(live.fresh_image(), live.camera.read().state, stored)
    assert 0 < covered < W * H / 4
    back = {"pan": drawn_at["pan_deg"], "tilt": drawn_at["tilt_deg"], "zoom": drawn_at["zoom"]}
    assert position(operator.post(f"{API}/absolute-move", json=back)) == state
    image = live.fresh_image()
    check_masked(image, state, stored)
    inside = Region(np.array(polygon)).rasterize(W, H)
    assert (image[inside] == MAGENTA).all()
    # The outline endpoint gives the drawn polygon in that view.
    outlines = operator.get(f"{API}/masks/view").json()["outlines"]
    drawn = next(o for o in outlines if o["name"] == "drawn")
    assert np.array(drawn["polygon"]) == pytest.approx(np.array(polygon), abs=1e-6)
    assert drawn["active"] is True
    entry = live.gateway.audit.entries(limit=5, actor="operator1")[0]
    assert entry.target == "camera:ptz:ptz-masks"
    # Invalid masks are refused and the running ones stay.
    for bad in (
        {"masks": [{"name": "x", "vertices": [[0, 0], [1, 0]]}]},
        {"masks": [{"name": "x", "vertices": [[0, 0], [170, 0], [-100, 10]]}]},
        {"masks": [WINDOW.model_dump(mode="json"), WINDOW.model_dump(mode="json")]},
        {"masks": [{"name": "x", "drawn": {"polygon": polygon}, "vertices": [[0, 0]] * 3}]},
    ):
        assert operator.put(f"{API}/masks", json=bad).status_code == 422, bad
    assert [m.name for m in live.camera.config.masks] == ["window", "drawn"]


def test_min_zoom_masks_appear_only_zoomed_in(live: PTZLive, operator: httpx.Client) -> None:
    far = tile_mask("far", 7, 2).model_copy(update={"min_zoom": 0.5})
    live.camera.set_masks([WINDOW, far])
    move = {"pan": 45, "tilt": 15, "zoom": 0.3}
    state = position(operator.post(f"{API}/absolute-move", json=move))
    image = live.fresh_image()
    check_masked(image, state, [WINDOW, far])
    # Tile (7, 2) is in the middle of the picture, shown as it is.
    assert np.abs(image[H // 2 + 3, W // 2 + 3].astype(int) - tile_color(7, 2)).max() <= 8
    state = position(operator.post(f"{API}/absolute-move", json={"zoom": 0.5}))
    image = live.fresh_image()
    check_masked(image, state, [WINDOW, far])
    assert (image[H // 2 + 3, W // 2 + 3] == MAGENTA).all()


# -- configuration ----------------------------------------------------------------------------


def test_config_validation_and_compilation() -> None:
    with pytest.raises(ValidationError, match=r"85\.0 degrees.*split"):
        SceneMaskConfig(name="huge", vertices=[(-100, 0), (0, 5), (100, 0), (0, -5)])
    with pytest.raises(ValidationError, match="unique"):
        PTZConfig(masks=[WINDOW, WINDOW])
    with pytest.raises(ValidationError, match="hfov_tele_deg"):
        LensConfig(hfov_wide_deg=10, hfov_tele_deg=20)
    with pytest.raises(ValidationError, match="tilt"):
        SceneMaskConfig(name="x", vertices=[(0, 0), (1, 95), (2, 0)])
    compiled = compile_ptz(ptz_config(), W, H, source=SCENE, clock=lambda: 0.0)
    assert compiled.camera is not None
    assert compiled.camera.state == PTZState(15.0, 0.0, 0.0)
    assert [p.name for p in compiled.camera.presets()] == ["home"]
    assert [m.name for m in compiled.planner.masks] == ["window", "back"]
    disabled = ptz_config([WINDOW.model_copy(update={"enabled": False})])
    assert compile_ptz(disabled, W, H, source=SCENE).planner.masks == ()
    # A site camera with source ptz-demo and no ptz section gets the defaults.
    hub = PTZHub.from_cameras([CameraConfig(id="demo", source=PTZ_DEMO, width=W, height=H)])
    assert hub.camera("demo").virtual
    assert hub.camera("demo").size == (W, H)
    assert PTZHub.from_cameras([CameraConfig(id="plain", source="demo")]).ids == []
    # The outputs (RTSP, recordings) use the camera's size: a virtual view of another size
    # is refused.
    odd = PTZConfig(virtual=VirtualConfig(output_width=640))

    @dataclass
    class Site:
        id: str = "odd"
        source: str = PTZ_DEMO
        width: int = W
        height: int = H
        fps: float = FPS
        ptz: PTZConfig = odd

    with pytest.raises(ConfigError, match="output size"):
        PTZHub.from_cameras([Site()])
    assert PTZHub.from_cameras([Site(ptz=PTZConfig())]).camera("odd").size == (W, H)


# -- fuzzing ----------------------------------------------------------------------------------


def _ptz_app() -> FastAPI:
    app = build_app()
    with_ptz_routes(app)
    return app


PTZ_SCHEMA = schemathesis.openapi.from_dict(_ptz_app().openapi()).include(path_regex="/ptz")


@pytest.fixture(scope="module")
def fuzz_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PTZLive]:
    with ptz_gateway(tmp_path_factory.mktemp("ptz-fuzz")) as running:
        yield running


@pytest.fixture(scope="module")
def fuzz_token(fuzz_live: PTZLive) -> str:
    reply = fuzz_live.login("operator1").post("/api/tokens", json={"name": "fuzz"})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["token"])


@PTZ_SCHEMA.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_ptz_api_never_fails_with_a_server_error(
    case: Case[Any], fuzz_live: PTZLive, fuzz_token: str
) -> None:
    """Generated requests on the real PTZ camera: bad input is refused (4xx, JSON with a
    detail), never a server error."""
    if case.path_parameters is not None:
        case.path_parameters["camera_id"] = "ptz"
    with requests.Session() as session:
        response = case.call(
            base_url=fuzz_live.url,
            session=session,
            headers={"Authorization": f"Bearer {fuzz_token}"},
            timeout=30,
        )
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
    )
    if response.status_code >= 400:
        assert response.json()["detail"]
    fuzz_live.camera.stop()


def test_changes_are_handed_over_for_saving_and_a_failed_save_refuses_them() -> None:
    camera = PTZCamera("ptz", ptz_config(), W, H, clock=lambda: 0.0)
    saved: list[PTZConfig] = []

    def save(camera_id: str, config: PTZConfig) -> None:
        assert camera_id == "ptz"
        if any(m.name == "unsaveable" for m in config.masks):
            raise OSError("disk full")
        saved.append(config)

    camera.on_change = save
    camera.set_masks([WINDOW])
    camera.set_preset("door")
    assert [m.name for m in saved[0].masks] == ["window"]
    assert [p.name for p in saved[1].presets] == ["home", "door"]
    assert PTZConfig.model_validate(saved[1].model_dump(mode="json")) == saved[1]
    with pytest.raises(OSError, match="disk full"):
        camera.set_masks([WINDOW, WINDOW.model_copy(update={"name": "unsaveable"})])
    assert [m.name for m in camera.config.masks] == ["window"]
    assert [m.name for m in camera.planner.masks] == ["window"]
