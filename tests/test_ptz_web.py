"""The PTZ controls in a real browser (Debian's chromium, driven by Playwright) against a real
gateway on loopback: an operator moves the virtual PTZ camera with the arrow pad, the zoom
buttons and the joystick, saves and recalls a preset and points the camera at a mask; after
every move the masked snapshot (through the API) hides exactly the scene tile the mask
covers, wherever that tile now is in the picture, and shows every other tile as it is.

The page loads /web/ptz.js as the proposed one-line change to index.html does (the test
adds that script tag to the page it is served).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray
from playwright.sync_api import Browser, Page, Route

from test_ptz_gateway import (
    MAGENTA,
    WINDOW,
    PTZLive,
    _eroded,
    coverage,
    ptz_config,
    ptz_gateway,
)
from test_server_api import jpeg
from test_web_ui import page_as
from veil.ptz.camera import CameraView, PTZState, direction_to_angles
from veil.ptz.config import SceneMaskConfig
from veil.ptz.masks import project_mask
from veil.ptz.virtual import tile_at, tile_color

PTZ_SCRIPT = '<script type="module" src="/web/ptz.js"></script>'
MASKED_TILE = (6, 2)
"""The tile WINDOW covers: pan 0..30, tilt 0..30."""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PTZLive]:
    with ptz_gateway(tmp_path_factory.mktemp("ptz-web"), ptz_config([WINDOW])) as running:
        yield running


@contextmanager
def camera_page(browser: Browser, live: PTZLive, username: str) -> Iterator[Page]:
    """The camera page of "ptz", logged in as ``username``, with the PTZ panel shown."""

    def with_ptz_script(route: Route) -> None:
        reply = route.fetch()
        body = reply.text()
        assert "</head>" in body
        route.fulfill(response=reply, body=body.replace("</head>", f"{PTZ_SCRIPT}</head>"))

    def prepare(page: Page) -> None:
        page.route(f"{live.url}/", with_ptz_script)

    with page_as(browser, live, username, prepare=prepare) as page:
        page.goto(live.url + "/#/camera/ptz")
        page.wait_for_selector("main[data-ready=camera]")
        page.wait_for_selector("#ptz-panel[data-ready=true]")
        yield page


def settle(live: PTZLive) -> PTZState:
    return live.settle()


def snapshot(live: PTZLive, viewer: httpx.Client) -> NDArray[np.int64]:
    """The masked snapshot through the API, taken after a few new frames."""
    live.fresh_image(3)
    return jpeg(viewer.get("/api/cameras/ptz/snapshot.jpg")).astype(np.int64)


def check_tiles(
    image: NDArray[np.int64], state: PTZState, others: Sequence[SceneMaskConfig] = ()
) -> tuple[int, int]:
    """Every sampled pixel shows its tile's colour, except on the masked tile, which is the
    mask's colour. Samples avoid tile borders (grid lines, 2.5 degrees), the tiles' labels
    (their top-left part), the picture mask in the top-left corner and ``others`` masks
    (checked apart). Returns how many samples were masked and how many shown."""
    h, w = image.shape[:2]
    view = CameraView.create(state, ptz_config().lens.lens(), w, h)
    xs, ys = np.meshgrid(np.arange(4, w, 9) + 0.5, np.arange(4, h, 9) + 0.5)
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1)
    pan, tilt = direction_to_angles(view.pixel_to_direction(pixels))
    covered = coverage(state, [WINDOW])
    skipped = ~_eroded(~coverage(state, list(others)), 4)
    masked = shown = 0
    for (x, y), p, t in zip(pixels, pan, tilt, strict=True):
        if (x < 0.12 * w and y < 0.12 * h) or skipped[int(y), int(x)]:
            continue  # the picture mask (osd), other masks
        fp, ft = ((p + 180.0) % 30.0) / 30.0, ((90.0 - t) % 30.0) / 30.0
        near_edge = min(fp, 1 - fp, ft, 1 - ft) * 30.0 < 2.5
        on_label = fp < 0.5 and ft < 0.45
        if near_edge or on_label or abs(t) > 85.0:
            continue
        tile = tile_at(float(p), float(t))
        pixel = image[int(y), int(x)]
        if tile == MASKED_TILE:
            assert covered[int(y), int(x)]
            assert np.abs(pixel - MAGENTA).max() <= 40, (x, y, tile, pixel)
            masked += 1
        else:
            assert np.abs(pixel - tile_color(*tile)).max() <= 40, (x, y, tile, pixel)
            shown += 1
    return masked, shown


def shown_pan(page: Page, predicate: Callable[[float], bool], timeout: float = 10.0) -> float:
    """Wait until the panel's position readout shows a pan for which ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        pan = float(page.locator("#ptz-position").get_attribute("data-pan") or "nan")
        if predicate(pan):
            return pan
        if time.monotonic() > deadline:
            raise AssertionError(f"the page shows pan {pan}")
        time.sleep(0.05)


def hold(page: Page, selector: str, seconds: float) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    time.sleep(seconds)
    page.mouse.up()


def test_operator_moves_the_camera_and_the_mask_stays_on_its_tile(
    live: PTZLive, browser: Browser
) -> None:
    viewer = live.login("viewer1")
    live.camera.absolute_move(15.0, 15.0, 0.0)  # the masked tile in the middle
    with camera_page(browser, live, "operator1") as page:
        shown_pan(page, lambda pan: pan == 15.0)
        start = settle(live)
        masked, shown = check_tiles(snapshot(live, viewer), start)
        assert masked > 50
        assert shown > 50

        # Hold "right": the camera pans right (the tile moves left in the picture).
        page.fill("#ptz-speed", "0.2")
        hold(page, "[data-ptz=right]", 0.5)
        moved = settle(live)
        assert moved.pan_deg > start.pan_deg + 0.5, moved
        assert moved.tilt_deg == pytest.approx(start.tilt_deg)
        masked, shown = check_tiles(snapshot(live, viewer), moved)
        assert masked > 10
        assert shown > 50

        # Hold "up-left", then zoom in with "+".
        hold(page, "[data-ptz=up-left]", 0.4)
        hold(page, "#ptz-zoom-in", 0.5)
        zoomed = settle(live)
        assert zoomed.zoom > 0.0, zoomed
        assert zoomed.tilt_deg > moved.tilt_deg, zoomed
        check_tiles(snapshot(live, viewer), zoomed)

        # The joystick: drag down and to the right, and let go.
        box = page.locator("#ptz-joystick").bounding_box()
        assert box is not None
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + box["width"] * 0.3, cy + box["height"] * 0.3, steps=4)
        time.sleep(0.4)
        page.mouse.up()
        dragged = settle(live)
        assert dragged.pan_deg > zoomed.pan_deg, dragged
        assert dragged.tilt_deg < zoomed.tilt_deg, dragged
        check_tiles(snapshot(live, viewer), dragged)

        # Arrow keys step by a quarter of the field of view.
        page.focus("#ptz-pad")
        page.keyboard.press("ArrowLeft")
        shown_pan(page, lambda pan: pan < dragged.pan_deg - 1)
        stepped = settle(live)
        hfov = CameraView.create(stepped, ptz_config().lens.lens(), 320, 180).hfov_deg
        assert dragged.pan_deg - stepped.pan_deg == pytest.approx(hfov / 4, rel=0.05)

        # Save a preset here; go somewhere else with "go to mask"; come back with the preset.
        page.fill("#ptz-preset-name", "here")
        page.click("#ptz-preset-save")
        page.wait_for_selector("#ptz-presets li[data-preset=here]")
        page.select_option("#ptz-mask-select", "window")
        page.click("#ptz-go-to-mask")
        shown_pan(page, lambda pan: abs(pan - stepped.pan_deg) > 1)
        centred = settle(live)
        image = snapshot(live, viewer)
        masked, _ = check_tiles(image, centred)
        assert masked > 100
        assert np.abs(image[90, 160] - MAGENTA).max() <= 40  # the mask in the middle
        page.click("#ptz-presets li[data-preset=here] button[data-token]")
        shown_pan(page, lambda pan: abs(pan - stepped.pan_deg) < 0.01)
        assert settle(live) == stepped
        check_tiles(snapshot(live, viewer), stepped)
        token = next(p.token for p in live.camera.presets() if p.name == "here")
        page.click(f"#ptz-presets button[data-remove='{token}']")
        page.wait_for_selector("#ptz-presets li[data-preset=here]", state="detached")


def test_viewer_sees_the_position_but_cannot_move(live: PTZLive, browser: Browser) -> None:
    live.camera.absolute_move(-30.0, 10.0, 0.2)
    with camera_page(browser, live, "viewer1") as page:
        shown_pan(page, lambda pan: pan == -30.0)
        for selector in ("[data-ptz=right]", "#ptz-zoom-in", "#ptz-preset-save"):
            assert page.locator(selector).is_disabled()
        hold(page, "#ptz-joystick", 0.3)
        assert live.camera.read().state == PTZState(-30.0, 10.0, 0.2)


def test_drawing_a_scene_mask_on_the_live_picture(live: PTZLive, browser: Browser) -> None:
    """A polygon drawn on the live picture becomes a scene mask in pan/tilt: its corners
    project back onto the clicked points, and after a move it still hides the same tiles."""
    live.camera.absolute_move(-90.0, 0.0, 0.2)
    viewer = live.login("viewer1")
    try:
        with camera_page(browser, live, "operator1") as page:
            shown_pan(page, lambda pan: pan == -90.0)
            page.wait_for_selector("#ptz-overlay")
            page.fill("#ptz-mask-name", "drawn")
            page.click("#ptz-draw")
            page.wait_for_selector("#ptz-overlay[data-drawing=true]")
            box = page.locator("#ptz-overlay").bounding_box()
            assert box is not None
            clicked = [(0.3, 0.3), (0.7, 0.35), (0.65, 0.7), (0.35, 0.75)]
            at = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in clicked]
            for x, y in at[:-1]:
                page.mouse.click(x, y)
            page.mouse.dblclick(*at[-1])
            page.wait_for_selector("#ptz-mask-select option[value=drawn]", state="attached")
            page.wait_for_selector("#ptz-overlay:not([data-drawing])")
        stored = next(m for m in live.camera.config.masks if m.name == "drawn")
        state = PTZState(-90.0, 0.0, 0.2)
        view = CameraView.create(state, ptz_config().lens.lens(), 320, 180)
        px = project_mask(view, stored.scene_mask())
        assert px is not None
        assert px / [320, 180] == pytest.approx(np.array(clicked), abs=0.01)
        # Its pixels are black (the default colour) from here and from elsewhere.
        for where in (state, PTZState(-75.0, 8.0, 0.0)):
            live.camera.absolute_move(where.pan_deg, where.tilt_deg, where.zoom)
            image = snapshot(live, viewer)
            covered = _eroded(coverage(where, [stored]), 3)
            assert covered.sum() > 200
            assert np.abs(image[covered]).max() <= 40
            check_tiles(image, where, [stored])
    finally:
        live.camera.set_masks([WINDOW])
