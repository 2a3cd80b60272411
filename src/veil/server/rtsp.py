"""The masked RTSP output: GStreamer's RTSP server fed from Python.

Each camera gets a mount ``rtsp://HOST:PORT/<camera id>``. The media pipeline is
``appsrc ! videoconvert ! x264enc tune=zerolatency ! rtph264pay``; appsrc asks for
data at the camera's frame rate and gets the newest *masked* picture (the original
never reaches this module). Clients share one encoder per camera. With credentials, every
client must authenticate (RTSP basic auth) before it can describe or play a mount.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import gi
import numpy as np

from veil.core.errors import VeilError
from veil.core.frame import Image
from veil.server.latest import LatestFrame

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

log = logging.getLogger(__name__)

_ROLE = "viewer"
"""The RTSP role given to clients that authenticated (the only role: masked video only)."""


@dataclass(frozen=True, slots=True)
class RtspMount:
    """A camera's masked stream as the RTSP server serves it."""

    camera_id: str
    frames: LatestFrame
    width: int
    height: int
    fps: int


class _Factory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]
    def __init__(self, mount: RtspMount, blank: Callable[[], bytes]) -> None:
        super().__init__()
        self._mount = mount
        self._blank = blank
        self.set_shared(True)
        m = mount
        caps = f"video/x-raw,format=BGR,width={m.width},height={m.height},framerate={m.fps}/1"
        self.set_launch(
            f"( appsrc name=src is-live=true format=time do-timestamp=false caps={caps} "
            "! videoconvert ! video/x-raw,format=I420 "
            f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={m.fps} "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )

    def do_configure(self, media: Any) -> None:
        appsrc = media.get_element().get_child_by_name("src")
        state = {"n": 0}
        duration = Gst.SECOND // self._mount.fps

        def need_data(src: Any, _length: int) -> None:
            published = self._mount.frames.latest()
            if published is None:
                # No frame yet: a black frame, never anything unmasked.
                data = self._blank()
            else:
                data = _fit(published.image, self._mount.width, self._mount.height).tobytes()
            buf = Gst.Buffer.new_wrapped(data)
            buf.pts = state["n"] * duration
            buf.duration = duration
            state["n"] += 1
            src.emit("push-buffer", buf)

        appsrc.connect("need-data", need_data)


def _fit(image: Image, width: int, height: int) -> Image:
    """The (already masked) picture at the mount's size: a camera whose real size differs
    from the configured one is scaled, not replaced by black."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized, dtype=np.uint8)


class RtspPublisher:
    """Runs GStreamer's RTSP server in its own GLib main loop thread."""

    def __init__(self, host: str, port: int, *, credentials: tuple[str, str] | None = None) -> None:
        """``credentials`` (user, password): every client must give them (RTSP basic auth);
        None: the output is open to whoever reaches the port."""
        Gst.init(None)
        self._server = GstRtspServer.RTSPServer()
        self._server.set_address(host)
        self._server.set_service(str(port))
        self._protected = credentials is not None
        if credentials is not None:
            user, password = credentials
            auth = GstRtspServer.RTSPAuth()
            token = GstRtspServer.RTSPToken()
            token.set_string("media.factory.role", _ROLE)
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
            self._server.set_auth(auth)
        self._loop = GLib.MainLoop()
        self._thread: threading.Thread | None = None
        self._source_id: int | None = None
        self.host = host
        self.port = port

    def add(self, mount: RtspMount) -> None:
        blank = bytes(mount.width * mount.height * 3)
        factory = _Factory(mount, lambda: blank)
        if self._protected:
            factory.add_role_from_structure(
                Gst.Structure.new_from_string(
                    f"{_ROLE}, media.factory.access=(boolean)true, "
                    "media.factory.construct=(boolean)true"
                )
            )
        self._server.get_mount_points().add_factory(f"/{mount.camera_id}", factory)

    def url(self, camera_id: str) -> str:
        return f"rtsp://{self.host}:{self.port}/{camera_id}"

    def start(self) -> None:
        self._source_id = self._server.attach(None)
        if not self._source_id:
            raise VeilError(
                f"cannot start the RTSP server on {self.host}:{self.port}",
                hint="is the port in use? set server.rtsp_port in the site config",
            )
        self._thread = threading.Thread(target=self._loop.run, name="rtsp-server")
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        GLib.idle_add(self._loop.quit)
        self._thread.join(timeout=5)
        if self._source_id:
            GLib.source_remove(self._source_id)
        self._thread = None


def publish_all(
    host: str, port: int, mounts: Mapping[str, RtspMount]
) -> RtspPublisher:  # pragma: no cover - convenience
    publisher = RtspPublisher(host, port)
    for mount in mounts.values():
        publisher.add(mount)
    publisher.start()
    return publisher
