"""The web page in a real browser (Debian's chromium, driven by Playwright) against a real
gateway on loopback: logging in, the live grid over WebRTC, drawing a static mask on the
snapshot and seeing it burned into the live picture, the unmasked view (refused for a viewer,
shown to an investigator with a reason), recordings, the audit log and users.

The harness here (:func:`web_gateway`) is shared with test_webrtc.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from fastapi import FastAPI
from numpy.typing import NDArray
from playwright.sync_api import Browser, Page, expect

from test_server_api import CHEAP_AUTH, HEIGHT, PASSWORD, WIDTH, demo_site, jpeg, wait_for_frames
from veil.config.schema import MaskConfig, VeilConfig
from veil.server.app import BackgroundServer, create_app, server_config
from veil.server.gateway import Gateway, GatewayOptions

SCREENSHOT = Path("/tmp/veil-ui.png")

MAGENTA_MASK = MaskConfig(name="corner", rect=(0.0, 0.0, 0.25, 0.25), color="#ff00ff")
"""The site's own mask: x 0..80, y 0..60 of the 320 x 240 picture, magenta."""
CORNER = (0.03, 0.03, 0.22, 0.22)
"""Well inside the magenta mask, normalised x0, y0, x1, y1."""

USERS = {"viewer1": "viewer", "operator1": "operator", "investigator1": "investigator"}


@dataclass
class WebGateway:
    """A started gateway with the web page and WebRTC mounted, behind a real HTTP server."""

    gateway: Gateway
    app: FastAPI
    url: str
    passwords: dict[str, str]
    clients: list[httpx.Client] = field(default_factory=list)

    def login(self, username: str) -> httpx.Client:
        """An API client logged in as ``username`` (session cookie and CSRF token)."""
        client = httpx.Client(base_url=self.url, timeout=20)
        self.clients.append(client)
        reply = client.post(
            "/api/login", json={"username": username, "password": self.passwords[username]}
        )
        assert reply.status_code == 200, reply.text
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        return client


@contextmanager
def web_gateway(
    tmp: Path, masking: VeilConfig | None = None, *, approval: bool = False
) -> Iterator[WebGateway]:
    """A gateway with one 320 x 240, 10 fps demo camera; users made through the API.
    ``approval``: unmasking needs a second investigator's approval."""
    site = demo_site(tmp, masking=masking or VeilConfig(masks=[MAGENTA_MASK]), approval=approval)
    options = GatewayOptions(auth_settings=CHEAP_AUTH, rtsp=False, prune_interval_s=3600)
    gateway = Gateway(site, options=options)
    assert gateway.first_password is not None
    gateway.start()
    app = create_app(gateway)  # with the page and WebRTC; its lifespan closes the peers
    config = server_config(app, "127.0.0.1", site.server.port, log_level="warning")
    live = WebGateway(
        gateway, app, f"http://127.0.0.1:{site.server.port}", {"admin": gateway.first_password}
    )
    try:
        with BackgroundServer(config):
            admin = live.login("admin")
            for username, role in USERS.items():
                body = {"username": username, "password": PASSWORD, "role": role}
                reply = admin.post("/api/users", json=body)
                assert reply.status_code == 201, reply.text
                live.passwords[username] = PASSWORD
            wait_for_frames(gateway, 3)
            yield live
            for client in live.clients:
                client.close()
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebGateway]:
    with web_gateway(tmp_path_factory.mktemp("web")) as running:
        yield running


class Site(Protocol):
    """A running gateway a browser logs in to (WebGateway, test_ptz_gateway.PTZLive)."""

    url: str
    passwords: dict[str, str]


@contextmanager
def page_as(
    browser: Browser,
    web: Site,
    username: str,
    *,
    webrtc_in_browser: bool = True,
    prepare: Callable[[Page], None] | None = None,
) -> Iterator[Page]:
    """A fresh browser context logged in through the page's form as ``username``
    (``webrtc_in_browser=False``: a browser without WebRTC, to see the MJPEG fallback;
    ``prepare``: called with the page before it loads, to route or script it). JavaScript
    errors and Content-Security-Policy violations on the page fail the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    # The page must work under its own Content-Security-Policy: any violation is an error.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    if not webrtc_in_browser:
        page.add_init_script("delete window.RTCPeerConnection;")
    if prepare is not None:
        prepare(page)
    page.set_default_timeout(15_000)
    try:
        page.goto(web.url + "/")
        page.fill("#login-username", username)
        page.fill("#login-password", web.passwords[username])
        page.click("#login-submit")
        page.wait_for_selector("main[data-ready=cameras]")
        yield page
        assert errors == [], f"JavaScript errors on the page: {errors}"
    finally:
        context.close()


def open_camera(page: Page) -> None:
    page.goto(page.url.split("#")[0] + "#/camera/cam")
    page.wait_for_selector("main[data-ready=camera]")
    # The editor draws on a live snapshot once one arrived.
    page.wait_for_selector("#editor-canvas[data-snapshots]")


def click_canvas(page: Page, points: list[tuple[float, float]], close: bool = True) -> None:
    """Click normalised points on the editor; a double-click on the last closes it."""
    box = page.locator("#editor-canvas").bounding_box()
    assert box is not None
    at = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    for x, y in at[:-1] if close else at:
        page.mouse.click(x, y)
    if close:
        page.mouse.dblclick(*at[-1])


_MEAN_RGB_JS = """([selector, area]) => {
  const source = document.querySelector(selector);
  const w = source.videoWidth || source.naturalWidth;
  const h = source.videoHeight || source.naturalHeight;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const g = canvas.getContext("2d");
  g.drawImage(source, 0, 0, w, h);
  const [x0, y0, x1, y1] = area;
  const data = g.getImageData(x0 * w, y0 * h, (x1 - x0) * w, (y1 - y0) * h).data;
  const sum = [0, 0, 0];
  for (let i = 0; i < data.length; i += 4) {
    sum[0] += data[i]; sum[1] += data[i + 1]; sum[2] += data[i + 2];
  }
  const n = data.length / 4;
  return [sum[0] / n, sum[1] / n, sum[2] / n];
}"""


def mean_rgb(page: Page, selector: str, area: tuple[float, float, float, float]) -> list[float]:
    """The mean colour (RGB) of a normalised area of the picture shown by a <video>/<img>."""
    rgb: list[float] = page.evaluate(_MEAN_RGB_JS, [selector, list(area)])
    return rgb


def near(rgb: list[float] | NDArray[Any], target: tuple[int, int, int], tol: float = 40) -> bool:
    return all(abs(float(a) - b) <= tol for a, b in zip(rgb, target, strict=True))


def wait_playing(page: Page, selector: str) -> None:
    page.wait_for_function(
        """(sel) => {
             const v = document.querySelector(sel);
             return v && (v.tagName === "IMG" ? v.naturalWidth > 0 : v.readyState >= 2);
           }""",
        arg=selector,
    )


# -- the page and its headers -----------------------------------------------------------------


def test_page_is_served_with_a_strict_content_security_policy(web: WebGateway) -> None:
    with httpx.Client(base_url=web.url) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert '<script type="module" src="/web/app.js">' in page.text
        script = client.get("/web/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.headers["content-security-policy"] == csp
        assert client.get("/web/style.css").headers["content-type"].startswith("text/css")
        for bad in ("/web/nothing.js", "/web/..%2Fweb_routes.py", "/web/.env", "/web/app.py"):
            assert client.get(bad).status_code == 404, bad


def test_the_browser_enforces_the_policy_on_injected_script(
    browser: Browser, web: WebGateway
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        messages: list[str] = []
        page.on("console", lambda message: messages.append(message.text))
        page.goto(web.url + "/")
        page.wait_for_selector("main[data-ready=login]")
        # Script that got into the page (say, through a bug) does not run.
        page.evaluate(
            """() => { const s = document.createElement("script");
                       s.textContent = "window.injected = 1"; document.body.append(s); }"""
        )
        page.wait_for_timeout(200)
        assert page.evaluate("window.injected") is None
        assert any("Content Security Policy" in m for m in messages), messages
    finally:
        context.close()


def test_wrong_password_is_refused_on_the_login_form(browser: Browser, web: WebGateway) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(web.url + "/")
        page.fill("#login-username", "viewer1")
        page.fill("#login-password", "not the password")
        page.click("#login-submit")
        expect(page.locator("#login-error")).to_be_visible()
        expect(page.locator("#login-error")).to_contain_text(re.compile("password|invalid", re.I))
        expect(page.locator("#nav")).to_be_hidden()
    finally:
        context.close()


# -- live view --------------------------------------------------------------------------------


def test_live_grid_plays_masked_webrtc_video(browser: Browser, web: WebGateway) -> None:
    with page_as(browser, web, "viewer1") as page:
        card = page.locator("#camera-grid .live[data-camera=cam]")
        expect(card).to_have_attribute("data-transport", "webrtc", timeout=20_000)
        video = "#camera-grid .live[data-camera=cam] video"
        wait_playing(page, video)
        size = page.eval_on_selector(video, "v => [v.videoWidth, v.videoHeight]")
        assert size == [WIDTH, HEIGHT]
        first = page.eval_on_selector(video, "v => v.currentTime")
        page.wait_for_function(
            "([sel, t]) => document.querySelector(sel).currentTime > t + 0.5", arg=[video, first]
        )
        # The picture is the masked one: the site's magenta mask is in the corner.
        assert near(mean_rgb(page, video, CORNER), (255, 0, 255)), mean_rgb(page, video, CORNER)
        # A viewer is not offered the admin pages.
        expect(page.locator("#nav a[data-route=audit]")).to_be_hidden()
        expect(page.locator("#nav a[data-route=users]")).to_be_hidden()


def test_browser_without_webrtc_falls_back_to_masked_mjpeg(
    browser: Browser, web: WebGateway
) -> None:
    with page_as(browser, web, "viewer1", webrtc_in_browser=False) as page:
        card = page.locator("#camera-grid .live[data-camera=cam]")
        expect(card).to_have_attribute("data-transport", "mjpeg")
        picture = "#camera-grid .live[data-camera=cam] img"
        expect(page.locator(picture)).to_have_attribute("src", "/api/cameras/cam/stream.mjpeg")
        wait_playing(page, picture)
        size = page.eval_on_selector(picture, "i => [i.naturalWidth, i.naturalHeight]")
        assert size == [WIDTH, HEIGHT]
        assert near(mean_rgb(page, picture, CORNER), (255, 0, 255))


def test_logging_out_returns_to_the_login_form(browser: Browser, web: WebGateway) -> None:
    with page_as(browser, web, "viewer1") as page:
        page.click("#logout")
        page.wait_for_selector("main[data-ready=login]")
        page.reload()
        page.wait_for_selector("main[data-ready=login]")
        expect(page.locator("#nav")).to_be_hidden()
        assert page.evaluate("fetch('/api/me').then(r => r.status)") == 401


def test_an_ended_session_sends_the_page_back_to_the_login_form(
    browser: Browser, web: WebGateway
) -> None:
    with page_as(browser, web, "operator1") as page:
        open_camera(page)
        page.context.clear_cookies()  # as if the session expired
        # The camera page's next request (its snapshot, every second) gets 401.
        page.wait_for_selector("main[data-ready=login]", timeout=10_000)
        expect(page.locator("#nav")).to_be_hidden()


# -- drawing masks ----------------------------------------------------------------------------

DRAWN = (0.5, 0.25, 0.85, 0.6)
"""The polygon the test draws: x 160..272, y 60..144 of the picture."""
CYAN_BGR = (255, 255, 0)


def test_admin_draws_a_static_fill_mask_and_it_is_burned_into_the_live_picture(
    browser: Browser, web: WebGateway
) -> None:
    with page_as(browser, web, "admin") as page:
        open_camera(page)
        page.click("button.tool[data-tool=mask]")
        x0, y0, x1, y1 = DRAWN
        click_canvas(page, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
        # The new polygon is selected: its properties can be edited.
        expect(page.locator("#mask-name")).to_have_value("mask-1")
        page.locator("#mask-color").fill("#00ffff")
        page.select_option("#mask-style", "fill")
        expect(page.locator("#dirty-note")).to_have_text("Unsaved changes")
        page.click("#save-masking")
        expect(page.locator("#flash")).to_contain_text("Saved")
        expect(page.locator("#dirty-note")).to_have_text("")

        admin = web.login("admin")
        masking = admin.get("/api/cameras/cam/masking").json()
        names = [m["name"] for m in masking["masks"]]
        assert names == ["corner", "mask-1"]
        corner, drawn = masking["masks"]
        assert corner["rect"] == [0.0, 0.0, 0.25, 0.25]  # untouched: kept as it was
        assert drawn["color"] == "#00ffff"
        assert drawn["style"] == "fill"
        xs = [p[0] for p in drawn["polygon"]]
        ys = [p[1] for p in drawn["polygon"]]
        assert len(drawn["polygon"]) == 4
        assert min(xs) == pytest.approx(x0, abs=0.01)
        assert max(xs) == pytest.approx(x1, abs=0.01)
        assert min(ys) == pytest.approx(y0, abs=0.01)
        assert max(ys) == pytest.approx(y1, abs=0.01)

        # The live masked snapshot (from the API) shows the fill colour in that area.
        inside = (slice(round(y0 * HEIGHT) + 8, round(y1 * HEIGHT) - 8),
                  slice(round(x0 * WIDTH) + 8, round(x1 * WIDTH) - 8))  # fmt: skip
        deadline = time.monotonic() + 10
        area = jpeg(admin.get("/api/cameras/cam/snapshot.jpg"))[inside]
        while not near(area.reshape(-1, 3).mean(axis=0), CYAN_BGR, 25):
            assert time.monotonic() < deadline, f"mask not live: {area.mean(axis=(0, 1))}"
            time.sleep(0.2)
            area = jpeg(admin.get("/api/cameras/cam/snapshot.jpg"))[inside]
        assert int(area[..., 2].max()) < 60  # no red left: nothing of the scene shows
        # ... and so does the page's own live video, within codec tolerance.
        video = "#live video"
        wait_playing(page, video)
        page.wait_for_timeout(1000)
        rgb = mean_rgb(page, video, (x0 + 0.04, y0 + 0.05, x1 - 0.04, y1 - 0.05))
        assert near(rgb, (0, 255, 255)), rgb
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_editing_points_dragging_and_deleting_a_polygon(browser: Browser, web: WebGateway) -> None:
    with page_as(browser, web, "operator1") as page:
        open_camera(page)
        # Draw an include area and an exclude area.
        page.click("button.tool[data-tool=include]")
        click_canvas(page, [(0.05, 0.5), (0.45, 0.5), (0.45, 0.95), (0.05, 0.95)])
        page.click("button.tool[data-tool=exclude]")
        click_canvas(page, [(0.6, 0.7), (0.9, 0.7), (0.75, 0.95)])
        expect(page.locator("#shape-props")).to_contain_text("Exclude area")
        # Drag the exclude area's third point.
        box = page.locator("#editor-canvas").bounding_box()
        assert box is not None

        def at(x: float, y: float) -> tuple[float, float]:
            return box["x"] + x * box["width"], box["y"] + y * box["height"]

        page.mouse.move(*at(0.75, 0.95))
        page.mouse.down()
        page.mouse.move(*at(0.7, 0.9), steps=4)
        page.mouse.up()
        # A throw-away mask, deleted again with the Delete key.
        page.click("button.tool[data-tool=mask]")
        click_canvas(page, [(0.1, 0.1), (0.2, 0.1), (0.2, 0.2)])
        expect(page.locator("#mask-name")).to_be_visible()
        page.keyboard.press("Delete")
        expect(page.locator("#mask-name")).to_have_count(0)
        # Dynamic settings.
        page.check("input[name=methods][value=motion]")
        page.fill("input[name=background_merge_time]", "120")
        page.fill("input[name=margin]", "large")
        page.locator("input[name=sensitivity]").fill("70")
        page.click("#save-masking")
        expect(page.locator("#flash")).to_contain_text("Saved")

        masking = web.login("operator1").get("/api/cameras/cam/masking").json()
        dynamic = masking["dynamic"]
        assert dynamic["methods"] == ["motion"]
        assert dynamic["background_merge_time"] == 120
        assert dynamic["margin"] == "large"
        assert dynamic["sensitivity"] == 70
        assert len(dynamic["include"]) == 1
        assert len(dynamic["exclude"]) == 1
        assert dynamic["exclude"][0][2] == pytest.approx([0.7, 0.9], abs=0.01)
        assert all(m["name"] != "mask-2" for m in masking["masks"])

        # Reset background (motion learns the scene again), audited.
        page.click("#reset-background")
        expect(page.locator("#flash")).to_contain_text("Background reset")

        # A value the server refuses: its message is shown and the running config stays.
        page.fill("input[name=margin]", "enormous")
        page.click("#save-masking")
        error = page.locator("#masking-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("margin")
        expect(error).to_contain_text("enormous")
        again = web.login("operator1").get("/api/cameras/cam/masking").json()
        assert again["dynamic"]["margin"] == "large"

        # Motion masking off again, so later pictures show the scene.
        page.click("#revert-masking")
        page.uncheck("input[name=methods][value=motion]")
        page.click("#save-masking")
        expect(page.locator("#flash")).to_contain_text("Saved")


def test_changing_a_mask_colour_keeps_its_pixel_rectangle_as_it_was(
    browser: Browser, web: WebGateway
) -> None:
    operator = web.login("operator1")
    before = operator.get("/api/cameras/cam/masking").json()
    pixel_mask = {"name": "door", "units": "pixels", "rect": [200, 150, 60, 40], "color": "#000000"}
    area = [[0.1, 0.1], [0.3, 0.1], [0.2, 0.3]]
    config = {**before, "masks": [pixel_mask], "dynamic": {**before["dynamic"], "exclude": [area]}}
    assert operator.put("/api/cameras/cam/masking", json=config).status_code == 200
    try:
        with page_as(browser, web, "operator1") as page:
            open_camera(page)
            box = page.locator("#editor-canvas").bounding_box()
            assert box is not None
            # Click inside the door (x 200..260, y 150..190 of 320 x 240) to select it.
            page.mouse.click(
                box["x"] + 230 / WIDTH * box["width"], box["y"] + 170 / HEIGHT * box["height"]
            )
            expect(page.locator("#mask-name")).to_have_value("door")
            page.locator("#mask-color").fill("#ff0000")
            page.click("#save-masking")
            expect(page.locator("#flash")).to_contain_text("Saved")
        saved = operator.get("/api/cameras/cam/masking").json()
        (door,) = saved["masks"]
        assert door["units"] == "pixels"
        assert door["rect"] == [200, 150, 60, 40]
        assert door["polygon"] is None
        assert door["color"] == "#ff0000"
        assert saved["dynamic"]["exclude"] == [area]
    finally:
        assert operator.put("/api/cameras/cam/masking", json=before).status_code == 200


# -- who may see and change what --------------------------------------------------------------


def test_viewer_cannot_save_and_is_refused_the_unmasked_view(
    browser: Browser, web: WebGateway
) -> None:
    with page_as(browser, web, "viewer1") as page:
        open_camera(page)
        expect(page.locator("#save-masking")).to_be_disabled()
        expect(page.locator("#reset-background")).to_be_disabled()
        expect(page.locator("main")).to_contain_text("may look but not change masks")
        page.click("#unmask-button")
        page.fill("#unmask-reason", "curious")
        page.click("#unmask-submit")
        status = page.locator("#unmask-status")
        expect(status).to_be_visible()
        expect(status).to_contain_text("Refused")
        expect(status).to_contain_text("unmask")
        expect(page.locator("#unmasked-live")).to_be_hidden()
    refusals = web.gateway.audit.entries(limit=50, actor="viewer1")
    assert any(e.action.endswith("denied") or "refused" in e.action for e in refusals), [
        e.action for e in refusals
    ]


def test_investigator_gives_a_reason_and_sees_the_original(
    browser: Browser, web: WebGateway
) -> None:
    with page_as(browser, web, "investigator1") as page:
        open_camera(page)
        page.click("#unmask-button")
        page.fill("#unmask-reason", "case 4711")
        page.fill("#unmask-minutes", "2")
        page.click("#unmask-submit")
        status = page.locator("#unmask-status")
        expect(status).to_contain_text("UNMASKED VIEW")
        expect(status).to_contain_text("case 4711")
        box = page.locator("#unmasked-live")
        expect(box).to_have_attribute("data-transport", "webrtc", timeout=20_000)
        wait_playing(page, "#unmasked-live video")
        wait_playing(page, "#live video")
        page.wait_for_timeout(800)
        original = mean_rgb(page, "#unmasked-live video", CORNER)
        masked = mean_rgb(page, "#live video", CORNER)
        assert near(masked, (255, 0, 255)), masked
        assert not near(original, (255, 0, 255), 80), original
        page.click("#unmask-end")
        expect(status).to_contain_text("ended")
        expect(box).to_be_hidden()

        # A grant ended elsewhere (by an admin, say) takes the original off the page too.
        page.click("#unmask-button")
        page.fill("#unmask-reason", "case 4712")
        page.click("#unmask-submit")
        expect(box).to_have_attribute("data-transport", "webrtc", timeout=20_000)
        admin = web.login("admin")
        grants = admin.get("/api/unmask", params={"status": "active"}).json()
        (grant,) = [g for g in grants if g["reason"] == "case 4712"]
        assert admin.post(f"/api/unmask/{grant['id']}/end", json={}).status_code == 200
        expect(status).to_contain_text("has ended", timeout=8_000)
        expect(box).to_be_hidden()
        expect(page.locator("#unmasked-live video")).to_have_count(0)


def test_four_eyes_unmask_waits_for_a_second_investigator(browser: Browser, tmp_path: Path) -> None:
    with web_gateway(tmp_path, approval=True) as web:
        admin = web.login("admin")
        body = {"username": "investigator2", "password": PASSWORD, "role": "investigator"}
        assert admin.post("/api/users", json=body).status_code == 201
        web.passwords["investigator2"] = PASSWORD
        with (
            page_as(browser, web, "investigator1") as asking,
            page_as(browser, web, "investigator2") as approving,
        ):
            open_camera(asking)
            asking.click("#unmask-button")
            asking.fill("#unmask-reason", "case 99")
            asking.click("#unmask-submit")
            status = asking.locator("#unmask-status")
            expect(status).to_contain_text("waiting for a second investigator")
            expect(asking.locator("#unmasked-live")).to_be_hidden()
            open_camera(approving)
            request = approving.locator("#approvals .row", has_text="case 99")
            expect(request).to_be_visible(timeout=10_000)
            request.get_by_role("button", name="Approve").click()
            expect(status).to_contain_text("UNMASKED VIEW", timeout=10_000)
            wait_playing(asking, "#unmasked-live .live-picture")


def test_audit_page_lists_the_unmask_with_its_reason_and_verifies_the_chain(
    browser: Browser, web: WebGateway
) -> None:
    investigator = web.login("investigator1")
    reply = investigator.post("/api/cameras/cam/unmask", json={"reason": "case-audit-42"})
    assert reply.status_code == 200, reply.text
    with page_as(browser, web, "admin") as page:
        page.click("#nav a[data-route=audit]")
        page.wait_for_selector("main[data-ready=audit]")
        row = page.locator("#audit-table tbody tr", has_text="case-audit-42")
        expect(row.first).to_be_visible()
        expect(row.first).to_contain_text("investigator1")
        expect(row.first).to_contain_text("unmask")
        page.fill("#audit-action", "unmask.request")
        page.keyboard.press("Enter")
        expect(
            page.locator("#audit-table tbody tr[data-action='unmask.request']").first
        ).to_be_visible()
        expect(
            page.locator("#audit-table tbody tr:not([data-action='unmask.request'])")
        ).to_have_count(0)
        page.click("#verify-chain")
        expect(page.locator("#verify-result")).to_contain_text("Chain intact")


# -- recordings and users ---------------------------------------------------------------------


def test_recordings_timeline_plays_a_masked_segment(browser: Browser, web: WebGateway) -> None:
    deadline = time.monotonic() + 15
    while not web.gateway.recordings("cam"):
        assert time.monotonic() < deadline, "no recording was finished"
        time.sleep(0.2)
    with page_as(browser, web, "viewer1") as page:
        page.click("#nav a[data-route=recordings]")
        page.wait_for_selector("main[data-ready=recordings]")
        blocks = page.locator("#timeline .segment")
        expect(blocks.first).to_be_visible()
        blocks.last.click()
        expect(blocks.last).to_have_class(re.compile("playing"))
        player = page.locator("#rec-player")
        expect(player).to_be_visible()
        expect(player).to_have_attribute("src", re.compile(r"^/api/recordings/cam/.+\.mp4$"))
        page.wait_for_function(
            "() => { const v = document.querySelector('#rec-player');"
            " return v.readyState >= 1 && v.duration > 0 && v.videoWidth > 0; }"
        )
        assert page.eval_on_selector("#rec-player", "v => v.videoWidth") == WIDTH


def test_admin_creates_a_user_changes_the_role_and_disables_them(
    browser: Browser, web: WebGateway
) -> None:
    with page_as(browser, web, "admin") as page:
        page.click("#nav a[data-route=users]")
        page.wait_for_selector("main[data-ready=users]")
        page.fill("#new-username", "newbie")
        page.fill("#new-password", "a long enough password 1")
        page.select_option("#new-role", "viewer")
        page.click("#create-user")
        row = page.locator("#users-table tr[data-user=newbie]")
        expect(row).to_be_visible()
        row.locator("select.user-role").select_option("operator")
        expect(page.locator("#flash")).to_contain_text("newbie updated")
        row.locator("button.user-toggle").click()
        expect(row.locator(".user-status")).to_have_text("disabled")
    users = {u["username"]: u for u in web.login("admin").get("/api/users").json()}
    assert users["newbie"]["role"] == "operator"
    assert users["newbie"]["disabled"] is True
