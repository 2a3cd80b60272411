"""WebRTC from the gateway, received in Python with aiortc: the frames are the masked ones
(the static mask's fill colour inside the mask area, within codec tolerance), the original only
with an active unmask grant (and only while it lasts), bad offers are refused with a clear
message, and peer connections are closed when the server shuts down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from numpy.typing import NDArray

from test_server_api import HEIGHT, WIDTH
from test_web_ui import WebGateway, web_gateway
from veil.core.frame import Image
from veil.server.latest import LatestFrame
from veil.server.webrtc import (
    LatestFrameTrack,
    WebRtcBusyError,
    WebRtcOffer,
    WebRtcPeers,
    peers_of,
)

MAGENTA_BGR = (255, 0, 255)
CORNER_INSIDE = (slice(8, 52), slice(8, 72))
"""Well inside the site's magenta mask (x 0..80, y 0..60 of 320 x 240)."""
TOLERANCE = 35
"""Codec tolerance on the mean colour of a flat area."""


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebGateway]:
    with web_gateway(tmp_path_factory.mktemp("webrtc")) as running:
        yield running


class Receiver:
    """An aiortc client receiving one camera over WebRTC."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(configuration=RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if not self.track.done():
            self.track.set_result(track)

    async def offer(self) -> dict[str, Any]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        local = self.pc.localDescription
        return {"type": local.type, "sdp": local.sdp}

    async def connect(
        self, client: httpx.Client, camera: str = "cam", unmasked: bool = False
    ) -> httpx.Response:
        body = {**(await self.offer()), "unmasked": unmasked}
        reply = await asyncio.to_thread(client.post, f"/api/cameras/{camera}/webrtc", json=body)
        if reply.status_code == 200:
            answer = reply.json()
            assert answer["type"] == "answer"
            assert answer["unmasked"] is unmasked
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=answer["sdp"], type=answer["type"])
            )
        return reply

    async def frames(self, count: int, timeout: float = 20.0) -> list[NDArray[np.uint8]]:
        track = await asyncio.wait_for(self.track, timeout)
        out = []
        for _ in range(count):
            frame = await asyncio.wait_for(track.recv(), timeout)
            assert isinstance(frame, VideoFrame)
            out.append(np.asarray(frame.to_ndarray(format="bgr24"), np.uint8))
        return out

    async def close(self) -> None:
        await self.pc.close()


async def receive_until_ended(track: MediaStreamTrack) -> None:
    """Receive until the track ends (MediaStreamError) or stalls (TimeoutError)."""
    for _ in range(200):
        await asyncio.wait_for(track.recv(), 5)


def corner_mean(image: NDArray[np.uint8]) -> NDArray[np.float64]:
    return np.asarray(image[CORNER_INSIDE].reshape(-1, 3).mean(axis=0), np.float64)


def is_magenta(image: NDArray[np.uint8]) -> bool:
    mean = corner_mean(image)
    return bool(np.all(np.abs(mean - np.asarray(MAGENTA_BGR)) <= TOLERANCE))


# -- masked -----------------------------------------------------------------------------------


def test_received_frames_are_masked(web: WebGateway) -> None:
    viewer = web.login("viewer1")

    async def run() -> list[NDArray[np.uint8]]:
        receiver = Receiver()
        try:
            reply = await receiver.connect(viewer)
            assert reply.status_code == 200, reply.text
            return await receiver.frames(15)
        finally:
            await receiver.close()

    frames = asyncio.run(run())
    assert all(f.shape == (HEIGHT, WIDTH, 3) for f in frames)
    # The first pictures may still be settling after the keyframe: judge the last ones.
    for frame in frames[-5:]:
        assert is_magenta(frame), corner_mean(frame)
    # Outside the mask the scene is there (not all one colour), and it moves.
    assert float(frames[-1][120:, 100:].std()) > 10
    assert not np.array_equal(frames[-1], frames[-6])


def test_unmasked_needs_the_permission_and_an_active_grant(web: WebGateway) -> None:
    viewer = web.login("viewer1")
    investigator = web.login("investigator1")

    async def run() -> tuple[int, int, str]:
        first, second = Receiver(), Receiver()
        try:
            as_viewer = await first.connect(viewer, unmasked=True)
            without_grant = await second.connect(investigator, unmasked=True)
            return as_viewer.status_code, without_grant.status_code, without_grant.text
        finally:
            await first.close()
            await second.close()

    viewer_status, investigator_status, text = asyncio.run(run())
    assert viewer_status == 403
    assert investigator_status == 403
    assert "unmask grant" in text
    actions = [e.action for e in web.gateway.audit.entries(limit=20)]
    assert "unmask.refused" in actions
    assert "permission.denied" in actions


def test_unmasked_view_shows_the_original_until_the_grant_ends(web: WebGateway) -> None:
    investigator = web.login("investigator1")
    grant = investigator.post("/api/cameras/cam/unmask", json={"reason": "case 77", "minutes": 2})
    assert grant.status_code == 200, grant.text
    assert grant.json()["status"] == "active"
    peers = peers_of(web.app)

    async def run() -> tuple[list[NDArray[np.uint8]], float]:
        receiver = Receiver()
        try:
            reply = await receiver.connect(investigator, unmasked=True)
            assert reply.status_code == 200, reply.text
            frames = await receiver.frames(8)
            assert len(peers) >= 1
            # Ending the grant ends the original video: the track stops and the peer closes.
            ended = await asyncio.to_thread(
                investigator.post, f"/api/unmask/{grant.json()['id']}/end", json={}
            )
            assert ended.status_code == 200, ended.text
            started = time.monotonic()
            track = await receiver.track
            with pytest.raises((MediaStreamError, TimeoutError)):
                await receive_until_ended(track)
            while len(peers) > 0 and time.monotonic() - started < 10:
                await asyncio.sleep(0.1)
            return frames, time.monotonic() - started
        finally:
            await receiver.close()

    frames, took = asyncio.run(run())
    assert not is_magenta(frames[-1]), corner_mean(frames[-1])
    assert len(peers) == 0, "the unmasked peer connection stayed open after the grant ended"
    assert took < 10
    views = web.gateway.audit.entries(limit=50, action="unmask.view")
    assert any(
        e.details.get("kind") == "webrtc" and e.details.get("reason") == "case 77" for e in views
    )


# -- bad requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "csrf", "status", "words"),
    [
        (
            "/api/cameras/cam/webrtc",
            {"type": "offer", "sdp": "v=0\r\nnonsense"},
            True,
            400,
            "offer",
        ),
        ("/api/cameras/cam/webrtc", {"type": "answer", "sdp": "v=0"}, True, 422, "type"),
        ("/api/cameras/cam/webrtc", {"type": "offer", "sdp": "x" * 70_000}, True, 422, "sdp"),
        (
            "/api/cameras/cam/webrtc",
            {"type": "offer", "sdp": "v=0", "extra": 1},
            True,
            422,
            "extra",
        ),
        ("/api/cameras/nope/webrtc", {"type": "offer", "sdp": "v=0"}, True, 404, "nope"),
        ("/api/cameras/cam/webrtc", {"type": "offer", "sdp": "v=0"}, False, 403, "CSRF"),
    ],
)
def test_bad_offers_are_refused_with_a_clear_message(
    web: WebGateway, path: str, body: dict[str, Any], csrf: bool, status: int, words: str
) -> None:
    client = web.login("viewer1")
    if not csrf:
        del client.headers["X-CSRF-Token"]
    reply = client.post(path, json=body)
    assert reply.status_code == status, reply.text
    assert words.lower() in reply.json()["detail"].lower()
    assert len(peers_of(web.app)) == 0 or status == 200


def test_an_offer_without_video_is_refused(web: WebGateway) -> None:
    viewer = web.login("viewer1")

    async def run() -> httpx.Response:
        pc = RTCPeerConnection(configuration=RTCConfiguration(iceServers=[]))
        try:
            pc.createDataChannel("chat")
            await pc.setLocalDescription(await pc.createOffer())
            body = {"type": "offer", "sdp": pc.localDescription.sdp}
            return await asyncio.to_thread(viewer.post, "/api/cameras/cam/webrtc", json=body)
        finally:
            await pc.close()

    reply = asyncio.run(run())
    assert reply.status_code == 400
    assert "no video" in reply.json()["detail"]
    assert len(peers_of(web.app)) == 0


def test_too_many_viewers_are_refused() -> None:
    async def run() -> None:
        peers = WebRtcPeers(max_peers=0)
        track = LatestFrameTrack(LatestFrame(), stopped=lambda: False)
        with pytest.raises(WebRtcBusyError, match="too many"):
            await peers.answer(WebRtcOffer(type="offer", sdp="v=0"), track)
        assert track.readyState == "ended"
        await peers.close_all()
        with pytest.raises(WebRtcBusyError, match="shutting down"):
            await peers.answer(WebRtcOffer(type="offer", sdp="v=0"), track)

    asyncio.run(run())


def test_a_viewer_that_never_connects_is_dropped() -> None:
    async def run() -> None:
        peers = WebRtcPeers(connect_timeout_s=0.3)
        client = Receiver()
        try:
            offer = WebRtcOffer.model_validate(await client.offer())
            track = LatestFrameTrack(LatestFrame(), stopped=lambda: False)
            await peers.answer(offer, track)  # the answer is never given to the client
            assert len(peers) == 1
            for _ in range(50):
                if len(peers) == 0:
                    break
                await asyncio.sleep(0.05)
            assert len(peers) == 0
            assert track.readyState == "ended"
        finally:
            await client.close()
            await peers.close_all()

    asyncio.run(run())


def test_not_logged_in_gets_401(web: WebGateway) -> None:
    with httpx.Client(base_url=web.url) as client:
        reply = client.post("/api/cameras/cam/webrtc", json={"type": "offer", "sdp": "v=0"})
    assert reply.status_code == 401


# -- the track itself -------------------------------------------------------------------------


def test_track_sends_only_the_newest_picture_and_stops_when_told() -> None:
    frames = LatestFrame()
    stop = False

    def image(value: int) -> Image:
        return np.full((31, 41, 3), value, np.uint8)

    async def run() -> None:
        track = LatestFrameTrack(frames, stopped=lambda: stop)
        for value in (10, 20, 30):
            frames.publish(image(value))
        first = await asyncio.wait_for(track.recv(), 2)
        # Three were published; only the newest one is sent: no queue.
        assert first.width == 40  # cropped to even sizes for 4:2:0 video
        assert first.height == 30
        assert int(first.to_ndarray(format="bgr24")[0, 0, 0]) == 30
        frames.publish(image(40))
        second = await asyncio.wait_for(track.recv(), 2)
        assert int(second.to_ndarray(format="bgr24")[0, 0, 0]) == 40
        assert first.pts is not None
        assert second.pts is not None
        assert second.pts > first.pts
        nonlocal stop
        stop = True
        with pytest.raises(MediaStreamError):
            await asyncio.wait_for(track.recv(), 2)

    asyncio.run(run())


def test_track_ends_when_its_permission_check_fails() -> None:
    frames = LatestFrame()
    frames.publish(np.zeros((24, 32, 3), np.uint8))
    allowed = True

    async def run() -> None:
        track = LatestFrameTrack(
            frames, stopped=lambda: False, allowed=lambda: allowed, recheck_s=0
        )
        await asyncio.wait_for(track.recv(), 2)
        nonlocal allowed
        allowed = False
        frames.publish(np.zeros((24, 32, 3), np.uint8))
        with pytest.raises(MediaStreamError):
            await asyncio.wait_for(track.recv(), 2)
        assert track.readyState == "ended"

    asyncio.run(run())


def test_shutdown_closes_open_peer_connections(tmp_path: Path) -> None:
    async def connect(client: httpx.Client) -> tuple[Receiver, int]:
        receiver = Receiver()
        reply = await receiver.connect(client)
        assert reply.status_code == 200, reply.text
        frames = await receiver.frames(2)
        return receiver, len(frames)

    loop = asyncio.new_event_loop()
    try:
        with web_gateway(tmp_path) as running:
            receiver, received = loop.run_until_complete(connect(running.login("viewer1")))
            assert received == 2
            assert len(peers_of(running.app)) == 1
        # The server stopped: its lifespan closed every peer connection.
        assert len(peers_of(running.app)) == 0
        loop.run_until_complete(receiver.close())
    finally:
        loop.close()
