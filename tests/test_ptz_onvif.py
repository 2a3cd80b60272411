"""Reading a real PTZ camera's position over ONVIF GetStatus (veil.ptz.onvif_client).

A small ONVIF-like PTZ service runs on 127.0.0.1 (http.server in a thread): it checks the
WS-Security UsernameToken digest of each request, as a camera does, and answers GetStatus
with a SOAP 1.2 envelope whose position the test changes. The client is used as is, over
real HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import math
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from veil.core.errors import VeilError
from veil.core.frame import Frame
from veil.core.plan import MaskReason
from veil.ptz.camera import Lens, PTZState
from veil.ptz.masks import PTZMaskPlanner, SceneMask
from veil.ptz.onvif_client import (
    GENERIC_PAN_TILT,
    GENERIC_ZOOM,
    OnvifAuthError,
    OnvifConnectionError,
    OnvifPTZPosition,
    OnvifResponseError,
    OnvifURLError,
    parse_get_status,
    password_digest,
)
from veil.ptz.onvif_status import MotionUncertainty, PTZReading

USER, PASSWORD = "veil", "s3cret&<pw>"
PROFILE = "profile_1"
WSSE = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}"
WSU = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}"
TPTZ = "{http://www.onvif.org/ver20/ptz/wsdl}"

STATUS = """<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"
    xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">
  <env:Body><tptz:GetStatusResponse><tptz:PTZStatus>
    <tt:Position>
      <tt:PanTilt x="{x}" y="{y}" space="{pt_space}"/>
      <tt:Zoom x="{z}" space="{z_space}"/>
    </tt:Position>
    <tt:MoveStatus><tt:PanTilt>{pt_move}</tt:PanTilt><tt:Zoom>{z_move}</tt:Zoom></tt:MoveStatus>
    <tt:UtcTime>1999-01-01T00:00:00Z</tt:UtcTime>
  </tptz:PTZStatus></tptz:GetStatusResponse></env:Body>
</env:Envelope>"""

FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"
    xmlns:ter="http://www.onvif.org/ver10/error">
  <env:Body><env:Fault>
    <env:Code><env:Value>env:Sender</env:Value>
      <env:Subcode><env:Value>{code}</env:Value></env:Subcode></env:Code>
    <env:Reason><env:Text xml:lang="en">{reason}</env:Text></env:Reason>
  </env:Fault></env:Body>
</env:Envelope>"""

DOCTYPE = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>&lol2;</env:Body>
</env:Envelope>"""


@dataclass
class CameraState:
    """What the fake camera reports; the test changes it while the client polls."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    pt_move: str = "IDLE"
    z_move: str = "IDLE"
    mode: str = "ok"  # ok | doctype | garbage | 401 | hang
    requests: int = 0
    auth_failures: int = 0


SCHEDULING_SLACK_S = 0.3
"""Added to time limits: on a 2-core CI machine running two test workers a thread may wait
this long for a core; the limits themselves are what the code promises."""


def digest_ok(envelope: ET.Element) -> bool:
    token = envelope.find(f".//{WSSE}UsernameToken")
    if token is None:
        return False
    user = token.findtext(f"{WSSE}Username")
    given = token.findtext(f"{WSSE}Password")
    nonce = token.findtext(f"{WSSE}Nonce")
    created = token.findtext(f"{WSU}Created")
    if user != USER or given is None or nonce is None or created is None:
        return False
    return given == password_digest(base64.b64decode(nonce), created, PASSWORD)


class FakeCamera:
    def __init__(self) -> None:
        self.state = CameraState()
        self.release = threading.Event()
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, code: int, body: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                s = camera.state
                s.requests += 1
                envelope = ET.fromstring(body)
                token = envelope.findtext(f".//{TPTZ}GetStatus/{TPTZ}ProfileToken")
                if not digest_ok(envelope):
                    s.auth_failures += 1
                    if s.mode == "401":
                        self._send(401, "")
                    else:
                        reason = "Sender not authorized"
                        self._send(400, FAULT.format(code="ter:NotAuthorized", reason=reason))
                elif token != PROFILE:
                    self._send(400, FAULT.format(code="ter:NoProfile", reason="no profile"))
                elif s.mode == "hang":
                    camera.release.wait(2.0)  # never answers; the connection just closes
                elif s.mode == "doctype":
                    self._send(200, DOCTYPE)
                elif s.mode == "garbage":
                    self._send(200, "<env:Envelope><not closed")
                else:
                    self._send(
                        200,
                        STATUS.format(
                            x=s.x,
                            y=s.y,
                            z=s.z,
                            pt_move=s.pt_move,
                            z_move=s.z_move,
                            pt_space=GENERIC_PAN_TILT,
                            z_space=GENERIC_ZOOM,
                        ),
                    )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/onvif/ptz_service"
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.02,), name="fake-onvif"
        )
        self._thread.start()
        self._stopped = False

    def stop(self) -> None:
        self.release.set()
        if not self._stopped:
            self._stopped = True
            self.server.shutdown()
            self.server.server_close()
            self._thread.join()


@pytest.fixture
def camera() -> Iterator[FakeCamera]:
    cam = FakeCamera()
    try:
        yield cam
    finally:
        cam.stop()


def client(camera: FakeCamera, **kwargs: object) -> OnvifPTZPosition:
    options: dict[str, object] = {
        "username": USER,
        "password": PASSWORD,
        "poll_interval_s": 0.02,
        "timeout_s": 0.5,
        "stale_after_s": 0.3,
    }
    options.update(kwargs)
    return OnvifPTZPosition(camera.url, PROFILE, **options)  # type: ignore[arg-type]


def wait_for(
    provider: OnvifPTZPosition, ok: Callable[[PTZReading], bool], timeout: float = 3.0
) -> PTZReading:
    deadline = time.monotonic() + timeout
    while True:
        reading = provider.read()
        if ok(reading):
            return reading
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching reading in {timeout} s; last {reading}")
        time.sleep(0.01)


def test_fetch_converts_generic_position_to_degrees(camera: FakeCamera) -> None:
    camera.state.x, camera.state.y, camera.state.z = 0.5, -0.5, 0.25
    with client(camera, start=False, tilt_range_deg=(-90.0, 30.0)) as cam:
        before = time.monotonic()
        reading = cam.fetch()
        after = time.monotonic()
    assert reading.state == PTZState(pan_deg=90.0, tilt_deg=-60.0, zoom=0.25)
    assert reading.moving is False
    # stamped with the local monotonic clock, not the camera's (1999) UtcTime
    assert before <= reading.timestamp <= after


@pytest.mark.parametrize(
    ("x", "y", "z", "expected"),
    [
        (-1.0, -1.0, 0.0, PTZState(pan_deg=-180.0, tilt_deg=-90.0, zoom=0.0)),
        (1.0, 1.0, 1.0, PTZState(pan_deg=180.0, tilt_deg=90.0, zoom=1.0)),
        (-0.25, 0.5, 0.75, PTZState(pan_deg=-45.0, tilt_deg=45.0, zoom=0.75)),
    ],
)
def test_range_ends(camera: FakeCamera, x: float, y: float, z: float, expected: PTZState) -> None:
    camera.state.x, camera.state.y, camera.state.z = x, y, z
    reading = client(camera, start=False).fetch()
    assert math.isclose(reading.state.pan_deg, expected.pan_deg)
    assert math.isclose(reading.state.tilt_deg, expected.tilt_deg)
    assert math.isclose(reading.state.zoom, expected.zoom)


def test_polling_follows_the_camera_and_its_move_status(camera: FakeCamera) -> None:
    with client(camera) as cam:
        first = wait_for(cam, lambda r: r.moving is False)
        assert first.state == PTZState()
        camera.state.x, camera.state.pt_move = 0.1, "MOVING"
        moving = wait_for(cam, lambda r: r.moving is True)
        assert math.isclose(moving.state.pan_deg, 18.0)
        camera.state.pt_move, camera.state.z_move = "IDLE", "MOVING"
        camera.state.z = 0.5
        zooming = wait_for(cam, lambda r: r.moving is True and r.state.zoom == 0.5)
        assert zooming.timestamp > first.timestamp
        camera.state.z_move = "UNKNOWN"
        unknown = wait_for(cam, lambda r: r.moving is None)
        assert unknown.state.zoom == 0.5
        camera.state.z_move = "IDLE"
        wait_for(cam, lambda r: r.moving is False)
        assert cam.last_error is None
        assert cam._thread.name.startswith("veil-onvif-ptz-")
    assert not cam._thread.is_alive()
    assert cam.read().moving is None  # closed: no longer knows where the camera is


def frame(width: int = 160, height: int = 90) -> Frame:
    image = np.zeros((height, width, 3), np.uint8)
    return Frame(image, pts=0, time_base=Fraction(1, 25), index=0)


def test_camera_going_silent_masks_the_whole_frame(camera: FakeCamera) -> None:
    mask = SceneMask(np.array([[-3.0, -3.0], [3.0, -3.0], [3.0, 3.0], [-3.0, 3.0]]), name="w")
    with client(camera, stale_after_s=0.3) as cam:
        planner = PTZMaskPlanner(
            [mask], Lens(60.0, 3.0), cam, uncertainty=MotionUncertainty(stale_after_s=5.0)
        )
        wait_for(cam, lambda r: r.moving is False)
        plan = planner.plan(frame())
        assert [layer.reason for layer in plan.layers] == [MaskReason.STATIC]
        union = plan.union()
        assert union[45, 80]
        assert not union[5, 5]
        camera.stop()
        stopped = time.monotonic()
        stale = wait_for(cam, lambda r: r.moving is None, timeout=2.0)
        # within the stale limit (plus a poll's timeout and interval at most, and room for
        # a loaded CI machine's scheduling)
        assert time.monotonic() - stopped <= 0.3 + 0.5 + 0.1 + SCHEDULING_SLACK_S
        assert stale.timestamp < stopped
        assert isinstance(cam.last_error, OnvifConnectionError)
        plan = planner.plan(frame())
        assert [layer.reason for layer in plan.layers] == [MaskReason.FAIL_CLOSED]
        assert plan.union().all()


def test_a_hanging_camera_goes_stale_before_its_request_times_out(camera: FakeCamera) -> None:
    with client(camera, stale_after_s=0.2, timeout_s=1.5) as cam:
        good = wait_for(cam, lambda r: r.moving is False)
        camera.state.mode = "hang"
        stale = wait_for(cam, lambda r: r.moving is None, timeout=1.0 + SCHEDULING_SLACK_S)
        # no poll has failed yet (the request is still waiting): the age alone made it stale
        assert cam.last_error is None
        assert time.monotonic() - good.timestamp <= 0.2 + 1.0 + SCHEDULING_SLACK_S
        assert stale.timestamp >= good.timestamp
        assert stale.state == good.state
        camera.release.set()


def test_stale_reading_even_without_a_poll_error(camera: FakeCamera) -> None:
    now = [0.0]
    with client(camera, start=False, clock=lambda: now[0], stale_after_s=1.0) as cam:
        cam._latest = cam.fetch()  # as the poller stores it
        assert cam.read().moving is False
        now[0] = 1.5
        reading = cam.read()
    assert reading.moving is None
    assert reading.timestamp == 0.0


def test_no_reading_yet_is_unknown(camera: FakeCamera) -> None:
    cam = client(camera, start=False)
    reading = cam.read()
    assert reading.moving is None
    assert reading.timestamp == -math.inf


@pytest.mark.parametrize("mode", ["fault", "401"])
def test_wrong_password_is_a_clear_auth_error(camera: FakeCamera, mode: str) -> None:
    camera.state.mode = mode
    cam = client(camera, start=False, password="wrong")
    with pytest.raises(OnvifAuthError, match="refused the credentials") as info:
        cam.fetch()
    assert isinstance(info.value, VeilError)
    assert info.value.hint
    assert "password" in info.value.hint
    assert camera.state.auth_failures == 1


def test_no_credentials_is_refused_too(camera: FakeCamera) -> None:
    cam = client(camera, start=False, username=None, password=None)
    with pytest.raises(OnvifAuthError):
        cam.fetch()


def test_auth_failure_while_polling_fails_closed(camera: FakeCamera) -> None:
    with client(camera, password="wrong") as cam:
        deadline = time.monotonic() + 3.0
        while cam.last_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert isinstance(cam.last_error, OnvifAuthError)
        assert cam.read().moving is None


def test_doctype_is_refused(camera: FakeCamera) -> None:
    camera.state.mode = "doctype"
    with pytest.raises(OnvifResponseError, match="DOCTYPE"):
        client(camera, start=False).fetch()


def test_doctype_in_utf16_is_refused_too() -> None:
    with pytest.raises(OnvifResponseError, match="not UTF-8"):
        parse_get_status(
            DOCTYPE.replace("?>", ' encoding="UTF-16"?>', 1).encode("utf-16"), timestamp=0.0
        )


def test_malformed_xml_is_a_clear_error(camera: FakeCamera) -> None:
    camera.state.mode = "garbage"
    with pytest.raises(OnvifResponseError, match="not well-formed XML") as info:
        client(camera, start=False).fetch()
    assert info.value.hint
    assert "ptz_service" in info.value.hint


def test_wrong_profile_is_a_soap_fault(camera: FakeCamera) -> None:
    cam = OnvifPTZPosition(camera.url, "nope", username=USER, password=PASSWORD, start=False)
    with pytest.raises(OnvifResponseError, match="NoProfile") as info:
        cam.fetch()
    assert info.value.hint
    assert "profile token" in info.value.hint


def test_out_of_range_position_is_refused(camera: FakeCamera) -> None:
    camera.state.x = 3.0
    with pytest.raises(OnvifResponseError, match="outside"):
        client(camera, start=False).fetch()


def test_unreachable_camera(camera: FakeCamera) -> None:
    url = camera.url
    camera.stop()
    cam = OnvifPTZPosition(url, PROFILE, timeout_s=0.5, start=False)
    with pytest.raises(OnvifConnectionError, match="did not answer"):
        cam.fetch()


@pytest.mark.parametrize(
    "url", ["", "ftp://cam/onvif/ptz_service", "cam/onvif/ptz_service", "http:///x"]
)
def test_bad_url(url: str) -> None:
    with pytest.raises(OnvifURLError, match="not an http") as info:
        OnvifPTZPosition(url, PROFILE, start=False)
    assert isinstance(info.value, ValueError)
    assert info.value.exit_code == 2
    assert info.value.hint
    assert "ptz_service" in info.value.hint


def test_password_digest_matches_the_ws_security_formula() -> None:
    nonce, created = b"0123456789abcdef", "2026-11-25T10:00:00.000Z"
    expected = base64.b64encode(
        hashlib.sha1(nonce + created.encode() + PASSWORD.encode()).digest()
    ).decode()
    assert password_digest(nonce, created, PASSWORD) == expected


def test_site_camera_with_onvif_follows_the_real_head(
    camera: FakeCamera, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site camera with a `ptz.onvif` section: its scene masks follow the position the
    camera reports, and mask everything once the camera stops answering."""
    from veil.ptz.config import OnvifConfig, PTZConfig, SceneMaskConfig
    from veil.ptz.runtime import PTZHub
    from veil.server.site_config import CameraConfig

    monkeypatch.setenv("VEIL_TEST_ONVIF_PASSWORD", PASSWORD)
    ptz = PTZConfig(
        masks=[SceneMaskConfig(name="w", vertices=[(-3, -3), (3, -3), (3, 3), (-3, 3)])],
        onvif=OnvifConfig(
            url=camera.url,
            profile_token=PROFILE,
            username=USER,
            password_env="VEIL_TEST_ONVIF_PASSWORD",
            stale_after_s=0.3,
        ),
    ).model_copy(update={"virtual": None})
    site_camera = CameraConfig(
        id="real", source="rtsp://127.0.0.1:9/none", width=160, height=90, ptz=ptz
    )
    hub = PTZHub.from_cameras([site_camera])
    try:
        head = hub.get("real")
        assert head is not None
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and head.plan(frame()).fully_masked:
            time.sleep(0.05)
        plan = head.plan(frame())
        assert not plan.fully_masked
        assert plan.union()[45, 80]
        camera.stop()
        time.sleep(0.9)
        assert head.plan(frame()).fully_masked
    finally:
        hub.close()
