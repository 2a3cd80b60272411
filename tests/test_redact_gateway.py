"""Redaction from the gateway's encrypted originals, over its HTTP API on a real server.

A 40-frame synthetic clip (people walking across a street, 320 x 240) is sealed into the
gateway's originals as a camera would; an investigator makes a job from it (decrypted,
audited, analysed in the background with the real detectors from ../shared/models), chooses
tracks, previews and exports; every refusal is checked for its status and its words.

The harness here (:func:`redact_gateway`, :func:`seal_clip`) is shared with
test_redact_web.py.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from conftest import SHARED, decode_all, need_shared
from test_server_api import CHEAP_AUTH, PASSWORD, ROLES, Live, demo_site, wait_for_frames
from veil.media.synthetic import scene_frames, write_clip
from veil.redact.analysis import AnalysisSettings, frames_detected
from veil.redact.manifest import verify_export
from veil.redact.selection import parse_selection
from veil.server.app import BackgroundServer, create_app, server_config
from veil.server.gateway import Gateway, GatewayOptions
from veil.server.redact_jobs import RedactJobs
from veil.vault.segments import SegmentId, encrypt_segment
from veil.vault.users import AuthMethod, Principal

MODELS = SHARED / "models"
CLIP_W, CLIP_H, CLIP_FRAMES = 320, 240, 40
SETTINGS = AnalysisSettings(model_dir=str(MODELS), person_input_size=320, face_input_size=160)
"""The real detectors at small input sizes: the clip's people are 80 to 150 px tall."""
JOBS = "/api/redact/jobs"


def seal_clip(gateway: Gateway, tmp: Path, sequence: int = 900_001) -> str:
    """Write the synthetic clip as an encrypted original of camera 'cam'; its file name."""
    clip = tmp / f"walkers-{sequence}.mp4"
    frames = list(scene_frames(CLIP_W, CLIP_H, CLIP_FRAMES, Fraction(25)))
    write_clip(clip, frames, fps=Fraction(25), codec_options={"threads": "1"})
    gateway.originals_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Recent, so the retention thread keeps it; a sequence no live recording uses.
    start = datetime.now(UTC) - timedelta(minutes=5)
    sealed = encrypt_segment(
        gateway.originals_dir,
        SegmentId("cam", start, sequence),
        clip.read_bytes(),
        gateway.master_key,
    )
    return sealed.name


@dataclass
class RedactLive:
    live: Live
    original: str
    """The sealed clip's segment name."""

    @property
    def gateway(self) -> Gateway:
        return self.live.gateway


@contextmanager
def redact_gateway(tmp: Path) -> Iterator[RedactLive]:
    """A started gateway (one demo camera, static masks only) behind a real HTTP server,
    with the test users and the synthetic clip sealed into its originals."""
    need_shared(MODELS / "yolox_nano.onnx")
    site = demo_site(tmp)
    options = GatewayOptions(auth_settings=CHEAP_AUTH, rtsp=False, prune_interval_s=3600)
    gateway = Gateway(site, options=options)
    assert gateway.first_password is not None
    passwords = {"admin": gateway.first_password}
    for name, role in ROLES.items():
        gateway.users.create(Principal.system(), name, PASSWORD, role)
        passwords[name] = PASSWORD
    gateway.start()
    app = create_app(gateway)
    app.state.redact_jobs = RedactJobs(gateway, settings=SETTINGS)
    config = server_config(app, "127.0.0.1", site.server.port, log_level="warning")
    live = Live(gateway, f"http://127.0.0.1:{site.server.port}", tmp, passwords)
    try:
        with BackgroundServer(config):
            wait_for_frames(gateway, 1)
            yield RedactLive(live, seal_clip(gateway, tmp))
            for client in live.clients:
                client.close()
    finally:
        gateway.stop()


def wait_ready(client: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"{JOBS}/{job_id}").json()
        if job["state"] != "analysing":
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} was not analysed in {timeout} s")


def audit_count(gateway: Gateway, action: str) -> int:
    return len(gateway.audit.entries(action=action))


@dataclass
class Ready:
    rl: RedactLive
    client: httpx.Client
    job: dict[str, Any]
    tracks: list[dict[str, Any]]

    @property
    def url(self) -> str:
        return f"{JOBS}/{self.job['id']}"

    @property
    def folder(self) -> Path:
        return self.rl.gateway.data_dir / "redact" / str(self.job["id"])


@pytest.fixture(scope="module")
def rl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedactLive]:
    with redact_gateway(tmp_path_factory.mktemp("redact-gw")) as running:
        yield running


@pytest.fixture(scope="module")
def ready(rl: RedactLive) -> Ready:
    """investigator1's job on the clip, analysed. While it is analysed, a second job is
    refused: one analysis at a time, and nothing is decrypted for the refused one."""
    client = rl.live.login("investigator1")
    body = {"camera_id": "cam", "name": rl.original, "reason": "case 17: the door"}
    decrypts = audit_count(rl.gateway, "segment.decrypt")
    reply = client.post(JOBS, json=body)
    assert reply.status_code == 202, reply.text
    job = reply.json()
    assert job["state"] == "analysing"
    assert job["frames_total"] == CLIP_FRAMES
    busy = client.post(JOBS, json=body)
    assert busy.status_code == 409, busy.text
    assert job["id"] in busy.json()["detail"]
    assert "one original at a time" in busy.json()["detail"]
    assert audit_count(rl.gateway, "segment.decrypt") == decrypts + 1
    done = wait_ready(client, job["id"])
    assert done["state"] == "ready", done
    assert done["frames_done"] == CLIP_FRAMES
    assert (done["width"], done["height"]) == (CLIP_W, CLIP_H)
    tracks = client.get(f"{JOBS}/{job['id']}/tracks").json()
    return Ready(rl, client, done, tracks)


def persons(ready: Ready) -> list[dict[str, Any]]:
    return [t for t in ready.tracks if t["kind"] == "person" and t["detected_frames"] > 5]


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["viewer1", "operator1"])
def test_viewer_and_operator_are_refused_and_audited(rl: RedactLive, username: str) -> None:
    client = rl.live.login(username)
    body = {"camera_id": "cam", "name": rl.original, "reason": "curious"}
    for reply in (client.post(JOBS, json=body), client.get(JOBS)):
        assert reply.status_code == 403, reply.text
        assert "lacks the 'unmask' permission" in reply.json()["detail"]
        assert "investigator" in reply.json()["hint"]
    denied = rl.gateway.audit.entries(action="permission.denied", actor=username)
    assert len(denied) >= 2
    assert denied[0].target.startswith("/api/redact/jobs")
    assert not list(rl.gateway.audit.entries(action="segment.decrypt", actor=username))


def test_a_job_needs_a_reason_and_an_existing_original(rl: RedactLive) -> None:
    client = rl.live.login("investigator2")
    decrypts = audit_count(rl.gateway, "segment.decrypt")
    empty = client.post(JOBS, json={"camera_id": "cam", "name": rl.original, "reason": ""})
    assert empty.status_code == 422
    assert "reason" in empty.json()["detail"]
    blank = client.post(JOBS, json={"camera_id": "cam", "name": rl.original, "reason": "  "})
    assert blank.status_code == 422
    assert "needs a reason" in blank.json()["detail"]
    missing = client.post(JOBS, json={"camera_id": "cam", "name": "nope.vseg", "reason": "x"})
    assert missing.status_code == 404
    assert "no original 'nope.vseg'" in missing.json()["detail"]
    assert audit_count(rl.gateway, "segment.decrypt") == decrypts
    assert client.get(JOBS).json() == []


# -- the job ----------------------------------------------------------------------------------


def test_the_job_is_private_and_its_decryption_audited(ready: Ready) -> None:
    folder = ready.folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    names = {p.name for p in folder.iterdir()}
    assert {"original.mp4", "original.mp4.veil-analysis.json", "job.json"} <= names
    for path in folder.iterdir():
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    decrypt = ready.rl.gateway.audit.entries(action="segment.decrypt", actor="investigator1")[0]
    assert decrypt.details["segment"] == ready.rl.original
    assert decrypt.details["reason"] == "case 17: the door"
    created = ready.rl.gateway.audit.entries(action="redact.job.create")[0]
    assert created.details["job"] == ready.job["id"]
    # Another investigator neither sees it nor reaches it; an admin sees it in the list.
    other = ready.rl.live.login("investigator2")
    assert ready.job["id"] not in [j["id"] for j in other.get(JOBS).json()]
    refused = other.get(f"{ready.url}/tracks")
    assert refused.status_code == 404
    assert "of yours" in refused.json()["detail"]
    admin = ready.rl.live.login("admin")
    assert ready.job["id"] in [j["id"] for j in admin.get(JOBS).json()]


def test_tracks_have_spans_and_private_thumbnails(ready: Ready) -> None:
    assert len(persons(ready)) >= 2, ready.tracks
    for track in ready.tracks:
        assert 0 <= track["first_frame"] <= track["last_frame"] < CLIP_FRAMES
    track = next(t for t in persons(ready) if t["thumbnail_url"])
    reply = ready.client.get(track["thumbnail_url"])
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "image/jpeg"
    assert reply.headers["cache-control"] == "no-store"
    image = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert max(image.shape[:2]) <= 96
    viewer = ready.rl.live.login("viewer1").get(track["thumbnail_url"])
    assert viewer.status_code == 403
    unknown = ready.client.get(f"{ready.url}/tracks/9999/thumbnail.jpg")
    assert unknown.status_code == 404
    assert "no track 9999" in unknown.json()["detail"]


def test_preview_applies_the_redaction(ready: Ready) -> None:
    frame = 20

    def preview(**params: Any) -> np.ndarray[Any, np.dtype[np.uint8]]:
        reply = ready.client.get(f"{ready.url}/preview.jpg", params={"frame": frame, **params})
        assert reply.status_code == 200, reply.text
        assert reply.headers["cache-control"] == "no-store"
        image = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert image.shape == (CLIP_H, CLIP_W, 3)
        return np.asarray(image, np.uint8)

    plain = preview()
    everything = preview(mode="mask-all-except", color="#ff00ff")
    assert np.abs(everything.astype(int) - (255, 0, 255)).mean() < 20, "all masked magenta"
    track = persons(ready)[0]
    masked = preview(tracks=str(track["id"]), color="#00ff00")
    changed = np.abs(masked.astype(int) - plain.astype(int)).max(axis=2) > 60
    assert 0.01 < changed.mean() < 0.9, "the selected track is masked, the rest stays"
    outside = ready.client.get(f"{ready.url}/preview.jpg", params={"frame": CLIP_FRAMES})
    assert outside.status_code == 422
    assert f"0 to {CLIP_FRAMES - 1}" in outside.json()["hint"]


def test_unknown_tracks_are_refused_naming_them(ready: Ready) -> None:
    body = {"mode": "mask-selected", "tracks": [persons(ready)[0]["id"], 999], "reason": "x"}
    reply = ready.client.post(f"{ready.url}/exports", json=body)
    assert reply.status_code == 422
    assert "the selection names tracks the analysis does not have: 999" in reply.json()["detail"]
    assert "this job's tracks are 1" in reply.json()["hint"]
    preview = ready.client.get(f"{ready.url}/preview.jpg", params={"tracks": "7x"})
    assert preview.status_code == 422
    assert "7x" in preview.json()["detail"]
    style = ready.client.get(f"{ready.url}/preview.jpg", params={"style": "sparkles"})
    assert style.status_code == 422
    assert style.json()["detail"].startswith("query.style")


MAGENTA = np.array([255, 0, 255])


def region_preview(ready: Ready, frame: int, **selection: Any) -> np.ndarray[Any, Any]:
    """A preview asked for with a whole selection (POST), as a BGR image."""
    body = {"frame": frame, "color": "#ff00ff", **selection}
    reply = ready.client.post(f"{ready.url}/preview.jpg", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    image = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image[:, :, ::-1], np.int32)  # RGB


def magenta(image: np.ndarray[Any, Any], x0: int, y0: int, x1: int, y1: int) -> float:
    """The share of the box's pixels that are the mask's magenta."""
    patch = image[y0:y1, x0:x1]
    return float((np.abs(patch - MAGENTA).max(axis=2) < 40).mean())


def test_manual_regions_are_masked_at_and_between_keyframes(ready: Ready) -> None:
    region = {
        "name": "plate",
        "keyframes": [
            {"frame": 10, "box": [20, 20, 60, 60]},
            {"frame": 30, "box": [220, 160, 300, 220]},
        ],
    }
    for mode in ("mask-selected", "mask-all-except"):
        kept = [persons(ready)[0]["id"]] if mode == "mask-all-except" else []
        at_key = region_preview(ready, 10, mode=mode, tracks=kept, regions=[region])
        assert magenta(at_key, 23, 23, 57, 57) > 0.95, mode
    plain = region_preview(ready, 10)
    assert magenta(plain, 23, 23, 57, 57) < 0.05
    at_key = region_preview(ready, 10, regions=[region])
    assert magenta(at_key, 23, 23, 57, 57) > 0.95
    assert magenta(at_key, 65, 65, 100, 100) < 0.05, "only the box"
    # Halfway between the keyframes: halfway between the boxes (120, 90, 180, 140).
    between = region_preview(ready, 20, regions=[region])
    assert magenta(between, 123, 93, 177, 137) > 0.95
    assert magenta(between, 23, 23, 57, 57) < 0.05, "moved away from the first keyframe"
    assert magenta(between, 223, 163, 297, 217) < 0.05, "not yet at the second"
    last = region_preview(ready, 30, regions=[region])
    assert magenta(last, 223, 163, 297, 217) > 0.95
    # Present from the first keyframe to the last only.
    for outside in (9, 31):
        image = region_preview(ready, outside, regions=[region])
        assert magenta(image, 23, 23, 57, 57) < 0.05
        assert magenta(image, 223, 163, 297, 217) < 0.05


def test_bad_merges_splits_regions_and_trims_are_refused_naming_them(ready: Ready) -> None:
    track = persons(ready)[0]
    tid = track["id"]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"merges": [[tid, 999]]}, "the analysis does not have: 999"),
        ({"merges": [[tid]]}, "merges.0"),
        ({"splits": [{"track": 998, "frame": 5}]}, "the analysis does not have: 998"),
        (
            {"splits": [{"track": tid, "frame": track["last_frame"] + 1}]},
            f"the split of track {tid} at frame {track['last_frame'] + 1} is outside",
        ),
        ({"tracks": [f"{tid}c"]}, f"does not have: {tid}c"),
        (
            {"tracks": [f"{tid}c"], "splits": [{"track": tid, "frame": track["last_frame"]}]},
            f"does not have: {tid}c",
        ),
        ({"start_frame": 20, "end_frame": 10}, "the end frame 10 is before the start frame 20"),
        ({"start_frame": CLIP_FRAMES + 5}, "trim selects no frames"),
        (
            {"regions": [{"keyframes": [{"frame": 3, "box": [50, 50, 40, 60]}]}]},
            "must have x1 > x0",
        ),
        ({"regions": [{"keyframes": [{"frame": 3}]}]}, "exactly one of 'box' or 'polygon'"),
        (
            {"regions": [{"name": "late", "keyframes": [{"frame": 99, "box": [1, 1, 9, 9]}]}]},
            "region 'late' has a keyframe at frame 99",
        ),
        ({"regions": [{"keyframes": []}]}, "regions.0.keyframes"),
    ]
    for selection, words in bad:
        for url, extra in (("selection", {}), ("preview.jpg", {}), ("exports", {"reason": "x"})):
            reply = ready.client.post(f"{ready.url}/{url}", json={**selection, **extra})
            assert reply.status_code == 422, (url, selection, reply.text)
            assert words in reply.json()["detail"], (url, reply.json())


def test_an_export_needs_a_reason(ready: Ready) -> None:
    exports = audit_count(ready.rl.gateway, "export")
    for reason, words in (("", "reason"), ("   ", "needs a reason")):
        body = {"mode": "mask-all-except", "tracks": [], "reason": reason}
        reply = ready.client.post(f"{ready.url}/exports", json=body)
        assert reply.status_code == 422
        assert words in reply.json()["detail"]
    assert audit_count(ready.rl.gateway, "export") == exports


def test_export_is_signed_verified_and_audited(ready: Ready, tmp_path: Path) -> None:
    kept = persons(ready)[0]
    body = {
        "mode": "mask-all-except",
        "tracks": [kept["id"]],
        "style": "fill",
        "color": "#000000",
        "reason": "request 2026-117 for the person at the door",
    }
    reply = ready.client.post(f"{ready.url}/exports", json=body)
    assert reply.status_code == 201, reply.text
    done = reply.json()
    assert done["frames"] == CLIP_FRAMES
    assert done["exported_by"] == "investigator1"
    assert done["tracks"] == [str(kept["id"])]
    video = tmp_path / done["output"]
    manifest = tmp_path / "export.manifest.json"
    for url, path in ((done["video_url"], video), (done["manifest_url"], manifest)):
        got = ready.client.get(url)
        assert got.status_code == 200
        assert got.headers["cache-control"] == "no-store"
        assert "attachment" in got.headers["content-disposition"]
        path.write_bytes(got.content)
    result = verify_export(video, manifest)
    assert result.ok, result.message
    assert "exported by investigator1" in result.message
    checked = ready.client.get(done["verify_url"]).json()
    assert checked["ok"] is True
    assert checked["fingerprint"] == done["fingerprint"]
    html = ready.client.get(done["manifest_html_url"])
    assert html.status_code == 200
    assert "Redaction manifest" in html.text
    # Everything but the kept person is black: most of each frame.
    frames = decode_all(video)
    assert len(frames) == CLIP_FRAMES
    dark = np.mean([float((f.max(axis=2) < 40).mean()) for f in frames])
    assert dark > 0.6
    # Audited, with who, why and what; the files are private.
    entry = ready.rl.gateway.audit.entries(action="export", limit=1)[0]
    assert entry.seq == done["audit_seq"]
    assert entry.actor == "investigator1"
    assert entry.target == f"redaction:{ready.job['id']}"
    assert entry.details["reason"] == body["reason"]
    assert entry.details["tracks"] == [str(kept["id"])]
    assert entry.details["output_sha256"] == done["output_sha256"]
    exported = ready.folder / "exports" / done["output"]
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert ready.rl.gateway.audit.verify_chain().ok
    # The job lists its exports; a second export does not analyse again.
    job = ready.client.get(ready.url).json()
    assert [e["number"] for e in job["exports"]] == [done["number"]]
    again = ready.client.post(
        f"{ready.url}/exports",
        json={"mode": "mask-selected", "tracks": [kept["id"]], "reason": "second look"},
    )
    assert again.status_code == 201, again.text
    assert again.json()["number"] == done["number"] + 1
    assert ready.client.get(f"{ready.url}/exports/99/verify").status_code == 404


def test_merges_splits_and_trims_are_resolved_and_exported(ready: Ready, tmp_path: Path) -> None:
    one, two = persons(ready)[:2]
    root = min(one["id"], two["id"])
    first = min(one["first_frame"], two["first_frame"])
    last = max(one["last_frame"], two["last_frame"])
    cut = (first + last + 1) // 2
    body: dict[str, Any] = {
        "mode": "mask-selected",
        "tracks": [f"{root}b"],
        "merges": [[one["id"], two["id"]]],
        "splits": [{"track": root, "frame": cut}],
        "regions": [{"name": "plate", "keyframes": [{"frame": 8, "box": [10, 10, 50, 40]}]}],
        "start_frame": 5,
        "end_frame": 30,
    }
    info = ready.client.post(f"{ready.url}/selection", json=body)
    assert info.status_code == 200, info.text
    data = info.json()
    refs = {t["ref"]: t for t in data["tracks"]}
    assert str(one["id"]) not in refs
    assert str(two["id"]) not in refs
    a, b = refs[f"{root}a"], refs[f"{root}b"]
    assert a["sources"] == b["sources"] == sorted([one["id"], two["id"]])
    assert a["last_frame"] < cut <= b["first_frame"]
    assert b["chosen"]
    assert not a["chosen"]
    assert (data["first_frame"], data["last_frame"]) == (5, 30)
    assert data["regions"] == [
        {"name": "plate", "first_frame": 8, "last_frame": 8, "keyframes": [8]}
    ]
    reply = ready.client.post(f"{ready.url}/exports", json={**body, "reason": "case 19"})
    assert reply.status_code == 201, reply.text
    done = reply.json()
    assert done["frames"] == 26
    assert (done["first_frame"], done["last_frame"]) == (5, 30)
    assert done["regions"] == ["plate"]
    assert done["tracks"] == [f"{root}b"]
    manifest = ready.client.get(done["manifest_url"]).json()
    assert manifest["settings"]["merges"] == [[one["id"], two["id"]]]
    assert manifest["settings"]["splits"] == [{"track": root, "frame": cut}]
    assert manifest["settings"]["trim"] == [5, 30]
    assert [r["name"] for r in manifest["regions"]] == ["plate"]
    assert [t["track"] for t in manifest["tracks"]] == [f"{root}b"]
    assert ready.client.get(done["verify_url"]).json()["ok"] is True


def test_a_deleted_job_takes_its_plaintext_with_it(ready: Ready) -> None:
    """Deleted while its analysis runs: stopped, its folder gone, the deletion audited."""
    client = ready.rl.live.login("investigator2")
    body = {"camera_id": "cam", "name": ready.rl.original, "reason": "case 18"}
    reply = client.post(JOBS, json=body)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["id"]
    folder = ready.rl.gateway.data_dir / "redact" / job_id
    assert (folder / "original.mp4").is_file()
    gone = client.delete(f"{JOBS}/{job_id}")
    assert gone.status_code == 200, gone.text
    assert not folder.exists()
    assert client.get(f"{JOBS}/{job_id}").status_code == 404
    assert job_id not in [j["id"] for j in client.get(JOBS).json()]
    entry = ready.rl.gateway.audit.entries(action="redact.job.delete", limit=1)[0]
    assert entry.actor == "investigator2"
    assert entry.details["job"] == job_id
    # The analysis slot is free again.
    again = client.post(JOBS, json=body)
    assert again.status_code == 202, again.text
    assert wait_ready(client, again.json()["id"])["state"] == "ready"
    assert client.delete(f"{JOBS}/{again.json()['id']}").status_code == 200


def test_jobs_survive_a_restart_of_their_bookkeeping(ready: Ready) -> None:
    """Read back from their folders (as after a gateway restart): ready, and previewed from
    the saved analysis without detecting again."""
    jobs = RedactJobs(ready.rl.gateway)
    user = ready.rl.gateway.users.get("investigator1")
    assert user is not None
    investigator = Principal.for_user(user, AuthMethod.SESSION)
    (status,) = [s for s in jobs.list_jobs(investigator) if s.id == ready.job["id"]]
    assert status.state == "ready"
    assert status.frames_done == CLIP_FRAMES
    assert (status.width, status.height, status.tracks) == (CLIP_W, CLIP_H, len(ready.tracks))
    detected = frames_detected()
    selection = parse_selection({"mode": "mask-all-except"})
    jpeg = jobs.preview(investigator, status.id, selection, 3)
    assert jpeg.startswith(b"\xff\xd8")
    assert frames_detected() == detected
