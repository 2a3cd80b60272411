"""Low-latency live video in the browser: WebRTC (aiortc) from a camera's newest picture.

The browser sends an SDP offer (it waits until its ICE candidates are gathered, so no
trickle ICE is needed) and gets the answer back::

    POST /api/cameras/{camera_id}/webrtc   {"type": "offer", "sdp": "v=0...", "unmasked": false}
    -> {"type": "answer", "sdp": "v=0...", "unmasked": false}

What is sent, and the fail-closed rules:

- :class:`LatestFrameTrack` reads the camera's *masked* :class:`LatestFrame` and sends its
  newest picture each time the encoder asks for one: never a queue, so a slow viewer skips
  pictures instead of lagging behind (and nothing grows). The masked stream only ever holds
  masker output or a "no signal" picture, so nothing else can reach a viewer.
- ``"unmasked": true`` reads the original pictures instead, and only for a caller with the
  ``unmask`` scope *and* an active unmask grant for that camera (403 otherwise, and the refusal
  is audited, as for the unmasked MJPEG stream). Opening it is audited with the grant's reason.
  The grant is checked again every second; when it expires or is ended the track ends and the
  peer connection is closed: the original stops, it is never replaced by a stale picture.
- Peer connections are held per application in :class:`WebRtcPeers` (at most
  ``MAX_PEERS``); the router's lifespan closes them all on shutdown, and each one is closed
  when its connection fails or its track ends.

No STUN or TURN server is used (``iceServers=[]``): viewers reach the gateway directly, on
the same network, which is how a gateway is deployed (aiortc would otherwise ask Google's STUN
server, which a closed site cannot reach).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from typing import Annotated, Literal

import anyio.to_thread
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from fastapi import APIRouter, FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from veil.core.errors import VeilError
from veil.core.frame import Image
from veil.server.auth import Viewer, get_gateway
from veil.server.gateway import Gateway
from veil.server.latest import LatestFrame
from veil.vault.users import Principal, Scope, require

log = logging.getLogger(__name__)

MAX_PEERS = 32
"""Open peer connections per gateway; each costs an encoder (CPU) and a few MB."""

MAX_SDP_CHARS = 64_000
"""A browser's offer for one video track is a few kilobytes."""

CLOCK_RATE = 90_000
TIME_BASE = Fraction(1, CLOCK_RATE)
"""RTP video clock: 90 kHz."""

POLL_S = 0.005
"""How often a track looks for a newer picture while it waits (no thread is held)."""

RESEND_AFTER_S = 1.0
"""A camera that published nothing new for this long gets its newest picture sent again (the
camera's watchdog replaces a stalled picture with "no signal" well before that matters)."""

CONNECT_TIMEOUT_S = 20.0
"""A peer connection not connected this long after its answer is closed (a client that went
away, or an offer whose candidates cannot be reached): it no longer counts against MAX_PEERS."""

CLOSE_TIMEOUT_S = 5.0
"""How long shutting down waits for the peer connections to close."""

GRANT_RECHECK_S = 1.0
"""How often an unmasked track checks that its grant is still active."""

CameraId = Annotated[str, Path(min_length=1, max_length=64, description="The camera's id.")]


class WebRtcError(VeilError, ValueError):
    """The offer could not be answered (malformed SDP, no video to receive)."""

    http_status = 400


class WebRtcBusyError(VeilError):
    """Too many open WebRTC viewers."""

    http_status = 503


class UnmaskRefusedError(VeilError, PermissionError):
    """No active unmask grant for the unmasked view."""

    http_status = 403


class WebRtcOffer(BaseModel):
    """The browser's SDP offer (one receive-only video transceiver)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["offer"] = Field(description="Always 'offer'.")
    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS, description="The SDP offer.")
    unmasked: bool = Field(
        default=False,
        description="Ask for the original picture: needs 'unmask' and an active grant.",
    )


class WebRtcAnswer(BaseModel):
    """The gateway's SDP answer, ICE candidates included."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["answer"]
    sdp: str
    unmasked: bool


def _even(image: Image) -> Image:
    """The picture cropped to even width and height (4:2:0 video needs them), contiguous."""
    h, w = image.shape[:2]
    return np.ascontiguousarray(image[: h - h % 2, : w - w % 2])


class LatestFrameTrack(MediaStreamTrack):
    """A video track that sends the newest picture of a :class:`LatestFrame`.

    ``stopped`` ends the track (the gateway is stopping). ``allowed``, when given, is called
    in a worker thread every ``recheck_s`` seconds and before the first picture (unless
    ``checked_now``: the caller has just checked); the track ends as soon as it returns False
    (an unmask grant that expired or was ended), and the peer connection is then closed.

    Nothing is queued: each ``recv`` takes the newest picture, so a viewer that is slow to
    encode or send skips pictures. Waiting for a new picture polls every ``POLL_S`` without
    holding a thread (the default executor is left to aiortc's encoders).
    """

    kind = "video"

    def __init__(
        self,
        frames: LatestFrame,
        *,
        stopped: Callable[[], bool],
        allowed: Callable[[], bool] | None = None,
        recheck_s: float = GRANT_RECHECK_S,
        checked_now: bool = False,
    ) -> None:
        super().__init__()
        self._frames = frames
        self._stopped = stopped
        self._allowed = allowed
        self._recheck_s = recheck_s
        self._checked_at = time.monotonic() if checked_now else float("-inf")
        self._seq = 0
        self._sent_at = float("-inf")
        self._start: float | None = None
        self._last_pts = -1

    async def _check(self) -> None:
        if self._stopped():
            self.stop()
        elif self._allowed is not None and time.monotonic() - self._checked_at >= self._recheck_s:
            if await anyio.to_thread.run_sync(self._allowed):
                self._checked_at = time.monotonic()
            else:
                log.info("webrtc: unmasked view ended (grant no longer active)")
                self.stop()
        if self.readyState != "live":
            raise MediaStreamError

    async def recv(self) -> VideoFrame:
        """The newest picture not sent yet (or, after a long pause, the newest one again)."""
        await self._check()
        while True:
            published = self._frames.latest()
            now = time.monotonic()
            if published is not None and (
                published.seq != self._seq or now - self._sent_at >= RESEND_AFTER_S
            ):
                break
            await asyncio.sleep(POLL_S)
            await self._check()
        self._seq = published.seq
        self._sent_at = now
        if self._start is None:
            self._start = now
        frame = VideoFrame.from_ndarray(_even(published.image), format="bgr24")
        pts = max(self._last_pts + 1, round((now - self._start) * CLOCK_RATE))
        frame.pts = self._last_pts = pts
        frame.time_base = TIME_BASE
        return frame


class WebRtcPeers:
    """The open peer connections of one application; closes them all on :meth:`close_all`."""

    def __init__(
        self, max_peers: int = MAX_PEERS, connect_timeout_s: float = CONNECT_TIMEOUT_S
    ) -> None:
        self.max_peers = max_peers
        self.connect_timeout_s = connect_timeout_s
        self._pcs: set[RTCPeerConnection] = set()
        self._watchdogs: set[asyncio.Task[None]] = set()
        self._closing = False

    def __len__(self) -> int:
        return len(self._pcs)

    async def answer(self, offer: WebRtcOffer, track: LatestFrameTrack) -> RTCSessionDescription:
        """Answer ``offer`` with ``track`` as the only (send-only) video."""
        if self._closing:
            track.stop()
            raise WebRtcBusyError("the gateway is shutting down", hint="try again later")
        if len(self._pcs) >= self.max_peers:
            track.stop()
            raise WebRtcBusyError(
                f"too many live WebRTC viewers (at most {self.max_peers})",
                hint="close a viewer, or use the MJPEG stream (stream.mjpeg)",
            )
        pc = RTCPeerConnection(configuration=RTCConfiguration(iceServers=[]))
        self._pcs.add(pc)

        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._close(pc)

        async def on_ended() -> None:
            await self._close(pc)

        pc.on("connectionstatechange", on_state)
        track.on("ended", on_ended)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type=offer.type))
            video = [t for t in pc.getTransceivers() if t.kind == "video"]
            if not video:
                raise WebRtcError(
                    "the offer has no video to receive",
                    hint="add a receive-only video transceiver before creating the offer",
                )
            pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
        except WebRtcError:
            track.stop()
            await self._close(pc)
            raise
        except Exception as error:  # noqa: BLE001 - aiortc's many ways to reject bad SDP
            # The offer is the client's input: aiortc rejects SDP it cannot read or use with
            # ValueError, KeyError, AttributeError, OperationError, even RuntimeError.
            log.info("webrtc: offer refused: %r", error)
            track.stop()
            await self._close(pc)
            raise WebRtcError(
                f"the WebRTC offer could not be used: {error or type(error).__name__}",
                hint="send the SDP from RTCPeerConnection.createOffer() unchanged",
            ) from None
        local = pc.localDescription
        assert local is not None
        watchdog = asyncio.create_task(self._close_unless_connected(pc, self.connect_timeout_s))
        self._watchdogs.add(watchdog)
        watchdog.add_done_callback(self._watchdogs.discard)
        return local

    async def _close_unless_connected(self, pc: RTCPeerConnection, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s)
        if pc.connectionState != "connected":
            log.info("webrtc: a viewer did not connect within %.0f s; closed", timeout_s)
            await self._close(pc)

    async def _close(self, pc: RTCPeerConnection) -> None:
        """Stop the track and close ``pc``. It stays listed (so referenced, with aiortc's own
        closing task) until it is closed; closing twice is harmless."""
        if pc not in self._pcs:
            return
        for sender in pc.getSenders():
            if sender.track is not None:
                sender.track.stop()
        try:
            await pc.close()
        finally:
            self._pcs.discard(pc)

    async def close_all(self) -> None:
        """Close every peer connection (on shutdown); later offers are refused."""
        self._closing = True
        for watchdog in list(self._watchdogs):
            watchdog.cancel()
        pcs = list(self._pcs)
        closing = asyncio.gather(*(self._close(pc) for pc in pcs), return_exceptions=True)
        try:
            await asyncio.wait_for(closing, CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.warning("webrtc: %d peer connection(s) did not close in time", len(self._pcs))
        if pcs:
            log.info("webrtc: closed %d peer connection(s)", len(pcs))


def peers_of(app: FastAPI) -> WebRtcPeers:
    """The application's :class:`WebRtcPeers` (created on first use)."""
    peers = getattr(app.state, "webrtc_peers", None)
    if not isinstance(peers, WebRtcPeers):
        peers = WebRtcPeers()
        app.state.webrtc_peers = peers
    return peers


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Close every peer connection when the server shuts down (needs lifespan events on)."""
    peers_of(app)
    try:
        yield
    finally:
        await peers_of(app).close_all()


router = APIRouter(prefix="/api", lifespan=_lifespan)


def _unmask_allowed(gateway: Gateway, principal: Principal, camera_id: str) -> int:
    """Check ``unmask`` and an active grant (403, audited, otherwise); audit the view.

    Returns the grant's id. Runs in a worker thread (database).
    """
    target = f"camera:{camera_id}"
    require(principal, Scope.UNMASK, audit=gateway.audit, target=target)
    grant = gateway.grants.active_grant(principal, camera_id)
    if grant is None:
        gateway.audit.append(
            principal.label, "unmask.refused", target, {"why": "no active unmask grant"}
        )
        raise UnmaskRefusedError(
            f"{principal.username} has no active unmask grant for camera {camera_id}",
            hint=f"request one with POST /api/cameras/{camera_id}/unmask and a reason "
            "(it may need a second investigator's approval)",
        )
    gateway.audit.append(
        principal.label,
        "unmask.view",
        target,
        {"grant": grant.id, "reason": grant.reason, "kind": "webrtc"},
    )
    return grant.id


@router.post("/cameras/{camera_id}/webrtc", response_model=WebRtcAnswer, tags=["cameras"])
async def webrtc_offer(
    request: Request, camera_id: CameraId, caller: Viewer, offer: WebRtcOffer
) -> WebRtcAnswer:
    """Answer a WebRTC offer with the camera's live masked picture (newest picture only).

    With ``unmasked: true``, the original picture instead: only with the ``unmask`` scope and
    an active unmask grant for this camera (403 otherwise); audited; the video ends when the
    grant expires or is ended.
    """
    gateway = get_gateway(request)
    runtime = gateway.camera(camera_id)
    principal = caller.principal
    if offer.unmasked:
        await anyio.to_thread.run_sync(_unmask_allowed, gateway, principal, camera_id)

        def allowed() -> bool:
            return gateway.grants.active_grant(principal, camera_id) is not None

        track = LatestFrameTrack(
            runtime.original, stopped=lambda: gateway.stopping, allowed=allowed, checked_now=True
        )
    else:
        track = LatestFrameTrack(runtime.masked, stopped=lambda: gateway.stopping)
    local = await peers_of(request.app).answer(offer, track)
    log.info(
        "webrtc: %s watches camera %s (%s)",
        principal.label,
        camera_id,
        "UNMASKED" if offer.unmasked else "masked",
    )
    return WebRtcAnswer(type="answer", sdp=local.sdp, unmasked=offer.unmasked)
