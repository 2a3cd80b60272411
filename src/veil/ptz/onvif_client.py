"""A real PTZ camera's position, read over ONVIF ``GetStatus`` (a :class:`PositionProvider`).

:class:`OnvifPTZPosition` polls the camera's PTZ service (``http://host/onvif/ptz_service``,
the ``XAddr`` of ``http://www.onvif.org/ver20/ptz/wsdl``) with SOAP 1.2 ``tptz:GetStatus``
for one media profile, in a background thread, and :meth:`OnvifPTZPosition.read` returns
the latest reading at once (the mask planner calls it for every frame).

The request and the answer (ONVIF PTZ service specification, ``ptz.wsdl``)::

    <tptz:GetStatus><tptz:ProfileToken>profile_1</tptz:ProfileToken></tptz:GetStatus>

    <tptz:GetStatusResponse><tptz:PTZStatus>
      <tt:Position>
        <tt:PanTilt x="0.25" y="-0.1" space=".../PanTiltSpaces/PositionGenericSpace"/>
        <tt:Zoom x="0.3" space=".../ZoomSpaces/PositionGenericSpace"/>
      </tt:Position>
      <tt:MoveStatus><tt:PanTilt>IDLE</tt:PanTilt><tt:Zoom>MOVING</tt:Zoom></tt:MoveStatus>
      <tt:UtcTime>2026-11-25T10:00:00Z</tt:UtcTime>
    </tptz:PTZStatus></tptz:GetStatusResponse>

Conversion from ONVIF's generic position space to :class:`~veil.ptz.camera.PTZState`:
pan ``x`` in -1..1 is -180..180 degrees, tilt ``y`` in -1..1 is ``tilt_range_deg`` (the
head's mechanical range, -90..90 by default) and zoom ``x`` in 0..1 is Veil's generic zoom.
``MoveStatus`` MOVING on either axis gives ``moving=True``; UNKNOWN (or no MoveStatus at
all) gives ``moving=None``, which the planner treats as "position unknown": the whole frame
is masked.

Time stamps
-----------
A reading's ``timestamp`` comes from Veil's own monotonic clock, never from the camera's
``UtcTime``: camera clocks drift, jump when NTP corrects them, and are often not set at all,
so an age computed from them could be wrong by seconds either way, and a reading that looks
younger than it is shrinks the masks' margin (fail open). The stamp is the moment the
request was *sent*: the camera sampled its position somewhere between sending and receipt,
so the send time makes every reading look at least as old as it really is (the safe side).

Fail closed
-----------
When polling fails (camera unreachable, timeout, authentication refused, malformed answer)
or the last good reading is older than ``stale_after_s``, :meth:`~OnvifPTZPosition.read`
returns a reading with ``moving=None`` and the last good reading's (old) time stamp.
:class:`~veil.ptz.onvif_status.MotionUncertainty` treats ``moving is None`` as unknown
whatever its own ``stale_after_s`` (even :data:`~veil.ptz.onvif_status.EXACT`), so
:class:`~veil.ptz.masks.PTZMaskPlanner` masks the whole frame (reason ``FAIL_CLOSED``).

Security
--------
With a user name, each request carries a WS-Security ``UsernameToken`` with
``PasswordDigest = Base64(SHA1(nonce + created + password))`` (ONVIF Core 5.12, OASIS
UsernameToken Profile 1.0); the password itself never travels. Answers that carry a
document type declaration are refused before parsing (no entities, no entity expansion),
and answers are read up to :data:`MAX_RESPONSE_BYTES`. Proxies from the environment are
ignored: cameras are reached directly.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from veil.core.errors import VeilError
from veil.core.resources import Closing
from veil.ptz.camera import PTZState
from veil.ptz.onvif_status import PTZReading

log = logging.getLogger(__name__)

SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
PTZ_WSDL = "http://www.onvif.org/ver20/ptz/wsdl"
SCHEMA = "http://www.onvif.org/ver10/schema"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)
BASE64_BINARY = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
GET_STATUS_ACTION = f"{PTZ_WSDL}/GetStatus"
GENERIC_PAN_TILT = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/PositionGenericSpace"
GENERIC_ZOOM = "http://www.onvif.org/ver10/tptz/ZoomSpaces/PositionGenericSpace"

MAX_RESPONSE_BYTES = 1 << 20
"""A GetStatus answer is a few hundred bytes; anything past 1 MiB is refused."""

_RANGE_SLACK = 1e-6
"""Generic coordinates this far outside their range are clamped (float rounding)."""


class OnvifError(VeilError):
    """Reading a PTZ camera's position over ONVIF failed."""

    exit_code = 1


class OnvifURLError(OnvifError, ValueError):
    """The PTZ service address is not an http(s) URL with a host."""

    exit_code = 2


class OnvifAuthError(OnvifError, PermissionError):
    """The camera refused the credentials (HTTP 401, or a NotAuthorized SOAP fault)."""


class OnvifConnectionError(OnvifError, ConnectionError):
    """The camera did not answer (unreachable, refused, timed out, HTTP error)."""


class OnvifResponseError(OnvifError, ValueError):
    """The camera's answer is not a GetStatus response Veil can use (malformed XML, a
    DOCTYPE, a SOAP fault, missing or out-of-range position)."""


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """WS-Security ``PasswordDigest``: ``Base64(SHA1(nonce + created + password))``."""
    raw = hashlib.sha1(nonce + created.encode("utf-8") + password.encode("utf-8")).digest()
    return base64.b64encode(raw).decode("ascii")


def _security_header(username: str, password: str) -> str:
    nonce = secrets.token_bytes(16)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    digest = password_digest(nonce, created, password)
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}" s:mustUnderstand="1">'
        "<wsse:UsernameToken>"
        f"<wsse:Username>{escape(username)}</wsse:Username>"
        f'<wsse:Password Type="{PASSWORD_DIGEST}">{digest}</wsse:Password>'
        f'<wsse:Nonce EncodingType="{BASE64_BINARY}">'
        f"{base64.b64encode(nonce).decode('ascii')}</wsse:Nonce>"
        f"<wsu:Created>{created}</wsu:Created>"
        "</wsse:UsernameToken></wsse:Security>"
    )


def get_status_request(
    profile_token: str, username: str | None = None, password: str | None = None
) -> bytes:
    """The SOAP 1.2 envelope of ``tptz:GetStatus`` for ``profile_token``, with a
    UsernameToken digest header when ``username`` is given."""
    header = ""
    if username is not None:
        header = f"<s:Header>{_security_header(username, password or '')}</s:Header>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP12_ENV}" xmlns:tptz="{PTZ_WSDL}">'
        f"{header}<s:Body><tptz:GetStatus>"
        f"<tptz:ProfileToken>{escape(profile_token)}</tptz:ProfileToken>"
        "</tptz:GetStatus></s:Body></s:Envelope>"
    ).encode()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _parse_xml(body: bytes) -> ET.Element:
    try:
        text = body.decode("utf-8")  # ONVIF answers are UTF-8; others could hide a DOCTYPE
    except UnicodeDecodeError as exc:
        raise OnvifResponseError(
            "the camera's answer is not UTF-8 text",
            hint="check that the URL is the camera's ONVIF PTZ service",
        ) from exc
    lowered = text.lower()
    if "<!doctype" in lowered or "<!entity" in lowered:
        raise OnvifResponseError(
            "the camera's answer contains a DOCTYPE or ENTITY declaration; Veil refuses it",
            hint="check that the URL is the camera's PTZ service and that nothing between "
            "Veil and the camera rewrites its answers",
        )
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise OnvifResponseError(
            f"the camera's answer is not well-formed XML ({exc})",
            hint="check that the URL is the camera's ONVIF PTZ service "
            "(usually http://CAMERA/onvif/ptz_service)",
        ) from exc


def _fault_text(fault: ET.Element) -> tuple[list[str], str]:
    """Fault codes (SOAP 1.2 Code/Subcode values, SOAP 1.1 faultcode) and reason."""
    codes = [
        (el.text or "").strip()
        for el in fault.iter()
        if _local(el.tag) in ("Value", "faultcode") and el.text
    ]
    reasons = [
        (el.text or "").strip()
        for el in fault.iter()
        if _local(el.tag) in ("Text", "faultstring") and el.text
    ]
    return codes, "; ".join(reasons)


_AUTH_CODES = ("NotAuthorized", "FailedAuthentication", "InvalidSecurityToken", "InvalidSecurity")


def _raise_fault(fault: ET.Element, url: str) -> None:
    codes, reason = _fault_text(fault)
    described = ", ".join(codes) or "no code"
    if any(code.rsplit(":", 1)[-1] in _AUTH_CODES for code in codes):
        raise OnvifAuthError(
            f"the camera at {url} refused the credentials ({described}: {reason})",
            hint="check the ONVIF user name and password (an ONVIF user, not necessarily the "
            "web user), and that the camera's clock is within a few seconds of true time "
            "(WS-Security digests carry a time stamp)",
        )
    raise OnvifResponseError(
        f"the camera at {url} answered GetStatus with a SOAP fault ({described}: {reason})",
        hint="check the profile token (ONVIF media GetProfiles lists them) and that the "
        "profile has a PTZ configuration",
    )


def _number(element: ET.Element, attr: str, what: str) -> float:
    text = element.get(attr)
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise OnvifResponseError(f"GetStatus: {what} is missing or not a number ({text!r})")
    return value


def _in_range(value: float, lo: float, hi: float, what: str) -> float:
    if not lo - _RANGE_SLACK <= value <= hi + _RANGE_SLACK:
        raise OnvifResponseError(
            f"GetStatus: {what} {value} lies outside the generic space's {lo}..{hi}",
            hint="the camera reports positions in another space; Veil reads ONVIF's generic "
            "position space",
        )
    return min(max(value, lo), hi)


def _check_space(element: ET.Element, expected: str, what: str) -> None:
    space = element.get("space")
    if space is not None and space.strip() != expected:
        raise OnvifResponseError(
            f"GetStatus: {what} is in space {space!r}, not ONVIF's generic position space",
            hint="set the camera's PTZ configuration to the generic position spaces",
        )


def _move_status(status: ET.Element) -> bool | None:
    move = _child(status, "MoveStatus")
    if move is None:
        return None
    values = [
        (el.text or "").strip().upper() for el in move if _local(el.tag) in ("PanTilt", "Zoom")
    ]
    if not values or any(v not in ("IDLE", "MOVING") for v in values):
        return None
    return "MOVING" in values


def parse_get_status(
    body: bytes,
    *,
    tilt_range_deg: tuple[float, float] = (-90.0, 90.0),
    timestamp: float,
    url: str = "the camera",
) -> PTZReading:
    """The reading in a GetStatus answer ``body`` (raises :class:`OnvifError`)."""
    root = _parse_xml(body)
    if _local(root.tag) != "Envelope":
        raise OnvifResponseError(
            f"the answer from {url} is not a SOAP envelope (root <{_local(root.tag)}>)",
            hint="check that the URL is the camera's ONVIF PTZ service",
        )
    soap_body = _child(root, "Body")
    if soap_body is None or len(soap_body) == 0:
        raise OnvifResponseError(f"the SOAP answer from {url} has an empty body")
    payload = soap_body[0]
    if _local(payload.tag) == "Fault":
        _raise_fault(payload, url)
    status = _child(payload, "PTZStatus") if _local(payload.tag) == "GetStatusResponse" else None
    if status is None:
        raise OnvifResponseError(
            f"the answer from {url} has no GetStatusResponse/PTZStatus "
            f"(got <{_local(payload.tag)}>)"
        )
    position = _child(status, "Position")
    pan_tilt = _child(position, "PanTilt") if position is not None else None
    zoom_el = _child(position, "Zoom") if position is not None else None
    if pan_tilt is None or zoom_el is None:
        raise OnvifResponseError(
            f"the camera at {url} reports no pan/tilt or zoom position",
            hint="Veil needs Position/PanTilt and Position/Zoom to place the masks",
        )
    _check_space(pan_tilt, GENERIC_PAN_TILT, "PanTilt")
    _check_space(zoom_el, GENERIC_ZOOM, "Zoom")
    x = _in_range(_number(pan_tilt, "x", "PanTilt x"), -1.0, 1.0, "pan x")
    y = _in_range(_number(pan_tilt, "y", "PanTilt y"), -1.0, 1.0, "tilt y")
    z = _in_range(_number(zoom_el, "x", "Zoom x"), 0.0, 1.0, "zoom x")
    t_lo, t_hi = tilt_range_deg
    state = PTZState(
        pan_deg=x * 180.0,
        tilt_deg=min(max(t_lo + (y + 1.0) * 0.5 * (t_hi - t_lo), -90.0), 90.0),
        zoom=z,
    )
    return PTZReading(state, moving=_move_status(status), timestamp=timestamp)


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host, else :class:`OnvifURLError`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OnvifURLError(
            f"ONVIF PTZ service URL {url!r} is not an http(s) URL with a host",
            hint="use the PTZ service address, e.g. http://192.168.1.64/onvif/ptz_service "
            "(ONVIF device GetCapabilities or GetServices lists it)",
        )
    return url


class OnvifPTZPosition(Closing):
    """A real PTZ camera's position, polled over ONVIF GetStatus (see the module docstring).

    ``url``: the PTZ service address. ``profile_token``: the media profile whose PTZ node
    to read. ``username`` / ``password``: WS-Security credentials (None: no header).
    ``tilt_range_deg``: tilt in degrees at generic y = -1 and y = 1. ``poll_interval_s``:
    pause between polls. ``timeout_s``: per-request timeout. ``stale_after_s``: a good
    reading older than this is reported unknown (the frame is masked whole).
    ``start``: start polling now (else call :meth:`start`). Close it (or use ``with``) to
    stop the thread.
    """

    def __init__(
        self,
        url: str,
        profile_token: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tilt_range_deg: tuple[float, float] = (-90.0, 90.0),
        poll_interval_s: float = 0.2,
        timeout_s: float = 1.0,
        stale_after_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        start: bool = True,
    ) -> None:
        self.url = check_url(url)
        if not profile_token:
            raise OnvifURLError(
                "an ONVIF profile token is needed to read the PTZ status",
                hint="ONVIF media GetProfiles lists the camera's profile tokens",
            )
        lo, hi = tilt_range_deg
        if not -90.0 <= lo < hi <= 90.0:
            raise ValueError(f"tilt_range_deg must satisfy -90 <= lo < hi <= 90, got {lo}, {hi}")
        for name, value in (
            ("poll_interval_s", poll_interval_s),
            ("timeout_s", timeout_s),
            ("stale_after_s", stale_after_s),
        ):
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        self.profile_token = profile_token
        self._username = username
        self._password = password
        self._tilt_range = (float(lo), float(hi))
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._lock = threading.Lock()
        self._latest: PTZReading | None = None
        self._error: OnvifError | None = None
        self._stop = threading.Event()
        host = urllib.parse.urlsplit(url).hostname
        self._thread = threading.Thread(
            target=self._run, name=f"veil-onvif-ptz-{host}", daemon=True
        )
        if start:
            self.start()

    # ----------------------------------------------------------------- polling

    def fetch(self) -> PTZReading:
        """One GetStatus now (raises :class:`OnvifError`); does not touch the latest
        reading that :meth:`read` returns."""
        body = get_status_request(self.profile_token, self._username, self._password)
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": f'application/soap+xml; charset=utf-8; action="{GET_STATUS_ACTION}"'
            },
        )
        sent = self._clock()
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                answer = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            with exc:
                answer = exc.read(MAX_RESPONSE_BYTES + 1)
            self._raise_http(exc.code, answer)
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise OnvifConnectionError(
                f"the camera's PTZ service at {self.url} did not answer ({reason})",
                hint="check that the camera is on, reachable from Veil, and the URL's host "
                "and port",
            ) from exc
        if len(answer) > MAX_RESPONSE_BYTES:
            raise OnvifResponseError(f"the answer from {self.url} is larger than 1 MiB")
        return parse_get_status(
            answer, tilt_range_deg=self._tilt_range, timestamp=sent, url=self.url
        )

    def _raise_http(self, code: int, answer: bytes) -> None:
        if code == 401:
            raise OnvifAuthError(
                f"the camera at {self.url} refused the credentials (HTTP 401)",
                hint="check the ONVIF user name and password; Veil sends a WS-Security "
                "digest, not HTTP digest authentication",
            )
        if answer and len(answer) <= MAX_RESPONSE_BYTES:
            # ONVIF returns SOAP faults with HTTP 400 or 500: parse_get_status raises them.
            parse_get_status(answer, tilt_range_deg=self._tilt_range, timestamp=0.0, url=self.url)
        raise OnvifConnectionError(
            f"the camera's PTZ service at {self.url} answered HTTP {code}",
            hint="check that the URL is the camera's ONVIF PTZ service",
        )

    def start(self) -> None:
        """Start the polling thread (once)."""
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                reading = self.fetch()
            except OnvifError as exc:
                with self._lock:
                    changed = self._error is None or str(self._error) != str(exc)
                    self._error = exc
                if changed:
                    log.warning("PTZ position of %s unknown: %s", self.url, exc)
            except Exception as exc:  # never let the thread die: fail closed instead
                with self._lock:
                    self._error = OnvifError(f"reading the PTZ status failed: {exc!r}")
                log.exception("PTZ status poll of %s failed", self.url)
            else:
                with self._lock:
                    self._latest = reading
                    self._error = None
            self._stop.wait(self.poll_interval_s)

    def close(self) -> None:
        """Stop polling and join the thread; :meth:`read` then reports unknown positions."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout_s + self.poll_interval_s + 1.0)

    # ----------------------------------------------------------------- reading

    @property
    def last_error(self) -> OnvifError | None:
        """Why the last poll failed (None after a good poll)."""
        with self._lock:
            return self._error

    def read(self) -> PTZReading:
        """The latest reading; unknown (``moving=None``, its old time stamp) when there is
        none yet, the last poll failed, polling has stopped, or it is older than
        ``stale_after_s``."""
        with self._lock:
            latest = self._latest
            failing = self._error is not None
        if latest is None:
            return PTZReading(PTZState(), moving=None, timestamp=-math.inf)
        if failing or self._stop.is_set() or self._clock() - latest.timestamp > self.stale_after_s:
            return PTZReading(latest.state, moving=None, timestamp=latest.timestamp)
        return latest
