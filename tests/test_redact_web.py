"""The Redact page in a real browser (Debian's chromium, driven by Playwright) against a real
gateway: an investigator picks an encrypted original and a reason, watches the analysis,
scrubs the timeline with the redacted preview, clicks tracks to select them, exports, and
gets a verified MP4 with its signed manifest; a viewer is not offered the page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from conftest import need_shared
from test_redact_gateway import CLIP_FRAMES, CLIP_H, CLIP_W, MODELS, SETTINGS, seal_clip
from test_web_ui import WebGateway, page_as, web_gateway
from veil.redact.manifest import verify_export
from veil.server.redact_jobs import RedactJobs


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebGateway, str]]:
    need_shared(MODELS / "yolox_nano.onnx")
    tmp = tmp_path_factory.mktemp("redact-web")
    with web_gateway(tmp) as running:
        running.app.state.redact_jobs = RedactJobs(running.gateway, settings=SETTINGS)
        yield running, seal_clip(running.gateway, tmp)


def preview_of(page: Page) -> str:
    """The preview canvas' pixels, as a data URL (to compare two previews)."""
    data: str = page.eval_on_selector("#redact-preview", "c => c.toDataURL('image/png')")
    return data


def test_investigator_redacts_an_original_and_exports_it(
    browser: Browser, web: tuple[WebGateway, str], tmp_path: Path
) -> None:
    gw, original = web
    with page_as(browser, gw, "investigator1") as page:
        page.click("#nav a[data-route=redact]")
        page.wait_for_selector("main[data-ready=redact]")
        page.select_option("#redact-original", json.dumps(["cam", original], separators=(",", ":")))
        page.fill("#redact-reason", "case 17: the door")
        page.click("#redact-start")
        # The job's page: progress, then the tracks with their thumbnails and the preview.
        page.wait_for_selector("#redact-state")
        page.wait_for_selector("#redact-tracks li.track", timeout=60_000)
        expect(page.locator("#redact-state")).to_have_attribute("data-state", "ready")
        page.wait_for_selector("#redact-preview[data-previews]")
        page.wait_for_selector("#redact-tracks canvas.thumb[data-loaded]")
        job_id = page.url.rsplit("/", 1)[1]
        assert len(job_id) == 12

        # The timeline: moving the slider shows that frame.
        page.locator("#redact-frame").fill("20")
        page.wait_for_selector('#redact-preview[data-frame="20"]')
        expect(page.locator("#redact-frame-label")).to_contain_text("Frame 20 of 40")
        before = preview_of(page)

        # Clicking a person's thumbnail selects it: the preview masks it.
        person = page.locator("#redact-tracks li.track[data-kind=person]").first
        track = person.get_attribute("data-track")
        assert track is not None
        person.locator("canvas.thumb").click()
        expect(person).to_have_class("track selected")
        expect(person.locator(".track-toggle")).to_have_attribute("aria-pressed", "true")
        page.wait_for_selector(f'#redact-preview[data-tracks="{track}"]')
        assert preview_of(page) != before
        # A second click unselects it; a third selects it again.
        person.locator(".track-toggle").click()
        expect(person.locator(".track-toggle")).to_have_attribute("aria-pressed", "false")
        person.locator(".track-toggle").click()
        expect(person).to_have_class("track selected")

        # Keep that person, mask everything else; export with a reason.
        page.select_option("#redact-mode", "mask-all-except")
        page.wait_for_selector('#redact-preview[data-mode="mask-all-except"]')
        expect(page.locator("#redact-summary")).to_contain_text("everything else is masked")
        page.fill("#redact-export-reason", "request 2026-117")
        page.click("#redact-export")
        link = page.wait_for_selector("#redact-exports a.export-video", timeout=60_000)
        assert link is not None
        page.wait_for_selector("#redact-exports .verify.ok")
        video_url = link.get_attribute("href")
        manifest_url = page.get_attribute("#redact-exports a.export-manifest", "href")
        assert video_url is not None
        assert manifest_url is not None
        page.screenshot(path="/tmp/veil-redact.png", full_page=True)

    # The files behind the links: the MP4 matches its signed manifest.
    client = gw.login("investigator1")
    video = tmp_path / "export.mp4"
    manifest = tmp_path / "export.manifest.json"
    video.write_bytes(client.get(video_url).content)
    manifest.write_bytes(client.get(manifest_url).content)
    result = verify_export(video, manifest)
    assert result.ok, result.message
    data = json.loads(manifest.read_text())
    assert data["reason"] == "request 2026-117"
    assert data["exported_by"] == "investigator1"
    assert data["settings"]["mode"] == "mask-all-except"
    assert data["output"]["frames"] == CLIP_FRAMES
    entry = gw.gateway.audit.entries(action="export", limit=1)[0]
    assert entry.actor == "investigator1"
    assert entry.details["tracks"] == [track]

    # The job is listed; deleting it (confirmed) removes its decrypted original.
    folder = gw.gateway.data_dir / "redact" / job_id
    assert (folder / "original.mp4").is_file()
    with page_as(browser, gw, "investigator1") as page:
        page.goto(page.url.split("#")[0] + "#/redact")
        row = page.wait_for_selector(f'#redact-jobs tr[data-job="{job_id}"][data-state=ready]')
        assert row is not None
        page.on("dialog", lambda dialog: dialog.accept())
        page.click(f'#redact-jobs tr[data-job="{job_id}"] button.danger')
        page.wait_for_selector(f'#redact-jobs tr[data-job="{job_id}"]', state="detached")
    assert not folder.exists()


def draw(page: Page, box: tuple[int, int, int, int]) -> None:
    """Drag a rectangle on the preview canvas, given in the video's pixels."""
    bounds = page.locator("#redact-preview").bounding_box()
    assert bounds is not None
    sx, sy = bounds["width"] / CLIP_W, bounds["height"] / CLIP_H
    x0, y0, x1, y1 = box
    page.mouse.move(bounds["x"] + x0 * sx, bounds["y"] + y0 * sy)
    page.mouse.down()
    page.mouse.move(bounds["x"] + (x0 + x1) / 2 * sx, bounds["y"] + (y0 + y1) / 2 * sy)
    page.mouse.move(bounds["x"] + x1 * sx, bounds["y"] + y1 * sy)
    page.mouse.up()


def click(page: Page, point: tuple[int, int]) -> None:
    """Click the preview canvas at a point given in the video's pixels."""
    bounds = page.locator("#redact-preview").bounding_box()
    assert bounds is not None
    sx, sy = bounds["width"] / CLIP_W, bounds["height"] / CLIP_H
    page.mouse.click(bounds["x"] + point[0] * sx, bounds["y"] + point[1] * sy)


POLYGON = ((120, 100), (200, 110), (190, 170), (110, 160))
"""A region's polygon clicked on the preview (video pixels), and how far it is dragged."""
POLYGON_MOVE = (40, 30)


def go_to_frame(page: Page, frame: int) -> None:
    page.locator("#redact-frame").fill(str(frame))
    page.wait_for_selector(f'#redact-preview[data-frame="{frame}"]')


def test_trim_regions_merge_and_split_reach_the_export(
    browser: Browser, web: tuple[WebGateway, str]
) -> None:
    gw, original = web
    client = gw.login("investigator1")
    body = {"camera_id": "cam", "name": original, "reason": "case 21"}
    reply = client.post("/api/redact/jobs", json=body)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["id"]
    with page_as(browser, gw, "investigator1") as page:
        page.goto(page.url.split("#")[0] + f"#/redact/{job_id}")
        page.wait_for_selector("#redact-tracks li.track", timeout=60_000)
        page.wait_for_selector("#redact-preview[data-previews]")
        timeline = page.locator("#redact-timeline")

        # Trim: from frame 10 to frame 30, shown on the timeline; cleared, then set again.
        go_to_frame(page, 30)
        page.click("#redact-trim-end")
        go_to_frame(page, 10)
        page.click("#redact-trim-start")
        expect(timeline).to_have_attribute("data-trim-start", "10")
        expect(timeline).to_have_attribute("data-trim-end", "30")
        expect(timeline).to_have_class("redact-timeline trimmed")
        expect(page.locator("#redact-trim-label")).to_contain_text("frames 10–30")
        page.click("#redact-trim-clear")
        expect(timeline).to_have_attribute("data-trim-end", str(CLIP_FRAMES - 1))
        page.click("#redact-trim-start")
        go_to_frame(page, 30)
        page.click("#redact-trim-end")
        page.wait_for_selector('#redact-preview[data-trim="10-30"]')

        # A region: a rectangle at frame 10, another at frame 30 moves it (one region).
        go_to_frame(page, 10)
        draw(page, (20, 20, 80, 70))
        region = page.locator("#redact-regions li.region")
        expect(region).to_have_count(1)
        expect(region).to_have_attribute("data-keyframes", "10")
        go_to_frame(page, 30)
        draw(page, (200, 150, 280, 220))
        expect(region).to_have_attribute("data-keyframes", "10,30")
        expect(region).to_have_attribute("data-name", "region-1")
        expect(page.locator("#redact-keys .redact-key")).to_have_count(2)
        page.wait_for_selector('#redact-preview[data-regions="1"]')
        # A second region, then deleted.
        page.click("#redact-region-new")
        draw(page, (100, 100, 140, 140))
        expect(page.locator("#redact-regions li.region")).to_have_count(2)
        page.locator('#redact-regions li.region[data-name="region-2"] .region-delete').click()
        expect(page.locator("#redact-regions li.region")).to_have_count(1)
        # A polygon: four clicks at frame 10, closed on the first point; dragged at frame 30.
        page.select_option("#redact-region-shape", "polygon")
        page.click("#redact-region-new")
        go_to_frame(page, 10)
        for point in (*POLYGON, POLYGON[0]):
            click(page, point)
        polygon = page.locator('#redact-regions li.region[data-shape="polygon"]')
        expect(polygon).to_have_attribute("data-keyframes", "10")
        expect(page.locator("#redact-preview")).to_have_attribute("data-sketch", "0")
        go_to_frame(page, 30)
        draw(page, (150, 120, 150 + POLYGON_MOVE[0], 120 + POLYGON_MOVE[1]))
        expect(polygon).to_have_attribute("data-keyframes", "10,30")
        expect(page.locator("#redact-regions li.region")).to_have_count(2)
        page.wait_for_selector('#redact-preview[data-regions="2"]')

        # Merge two person tracks, then split the merged track at frame 20.
        people = page.locator("#redact-tracks li.track[data-kind=person]")
        refs = sorted(int(people.nth(i).get_attribute("data-track") or "") for i in range(2))
        for ref in refs:
            page.locator(f'#redact-tracks li.track[data-track="{ref}"] .track-toggle').click()
        page.click("#redact-merge")
        merged = page.locator(f'#redact-tracks li.track[data-track="{refs[0]}"]')
        expect(merged).to_contain_text(f"merged {refs[0]}+{refs[1]}")
        expect(merged).to_have_class("track selected")
        expect(page.locator(f'#redact-tracks li[data-track="{refs[1]}"]')).to_have_count(0)
        go_to_frame(page, 20)
        merged.locator("button.split").click()
        for part in ("a", "b"):
            item = page.locator(f'#redact-tracks li.track[data-track="{refs[0]}{part}"]')
            expect(item).to_have_class("track selected")
        expect(page.locator("#redact-edits li")).to_have_count(2)
        # Split parts merge too (both parts are selected): one track named by its first part,
        # which cannot be cut again while the merge names its parts.
        page.click("#redact-merge")
        rejoined = page.locator(f'#redact-tracks li.track[data-track="{refs[0]}a"]')
        expect(rejoined).to_have_class("track selected")
        expect(page.locator(f'#redact-tracks li[data-track="{refs[0]}b"]')).to_have_count(0)
        expect(page.locator("#redact-edits li")).to_have_count(3)
        go_to_frame(page, 25)
        rejoined.locator("button.split").click()
        expect(page.locator("#redact-tracks-error")).to_contain_text(
            f"Undo the merge of a part of track {refs[0]}"
        )
        expect(page.locator("#redact-edits li")).to_have_count(3)

        page.fill("#redact-export-reason", "request 2026-118")
        page.click("#redact-export")
        link = page.wait_for_selector("#redact-exports a.export-manifest", timeout=60_000)
        assert link is not None
        page.wait_for_selector("#redact-exports .verify.ok")
        expect(page.locator("#redact-exports li").first).to_contain_text("region(s) region-1")
        manifest_url = link.get_attribute("href")
        assert manifest_url is not None

    data = client.get(manifest_url).json()
    assert data["settings"]["trim"] == [10, 30]
    assert data["output"]["frames"] == 21
    assert data["settings"]["merges"] == [refs, [f"{refs[0]}a", f"{refs[0]}b"]]
    assert data["settings"]["splits"] == [{"track": refs[0], "frame": 20}]
    region_entry, polygon_entry = data["regions"]
    assert polygon_entry["frames"] == [[10, 30]]
    keys = {k["frame"]: np.asarray(k["points"]) for k in polygon_entry["keyframes"]}
    assert np.abs(keys[10] - np.asarray(POLYGON)).max() <= 2
    assert np.abs(keys[30] - keys[10] - np.asarray(POLYGON_MOVE)).max() <= 2
    assert region_entry["name"] == "region-1"
    assert region_entry["frames"] == [[10, 30]]
    assert [k["frame"] for k in region_entry["keyframes"]] == [10, 30]
    first = region_entry["keyframes"][0]["points"]
    assert abs(first[0][0] - 20) <= 2
    assert abs(first[2][1] - 70) <= 2
    assert {t["track"] for t in data["tracks"]} <= {f"{refs[0]}a"}
    assert client.delete(f"/api/redact/jobs/{job_id}").status_code == 200


def test_a_viewer_is_not_offered_the_redact_page(
    browser: Browser, web: tuple[WebGateway, str]
) -> None:
    gw, _original = web
    with page_as(browser, gw, "viewer1") as page:
        expect(page.locator("#nav a[data-route=redact]")).to_be_hidden()
        page.goto(page.url.split("#")[0] + "#/redact")
        expect(page.locator("#flash")).to_contain_text("lacks the 'unmask' permission")
