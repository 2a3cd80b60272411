"""The gateway's web page: one HTML page, its ES modules and its style sheet.

The files live in ``veil/server/web/`` (package data, no build step). The page is served at
``/`` and its files at ``/web/<name>``; only files that exist in that folder, with a plain name
and a known type, are served (no paths, so nothing outside the folder can be reached).

Every reply carries a strict Content-Security-Policy: scripts, styles and connections only
from the gateway itself, no inline script or style, no plugins, no framing. Pictures and
video too come only from the gateway (the editor draws its snapshot from fetched bytes, and a
WebRTC stream is attached with ``srcObject``, which needs no URL).

Wiring (done by :func:`veil.server.app.build_app`)::

    from veil.server import web_routes
    app.include_router(web_routes.router)   # serves "/" and "/web/<name>"
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from veil.core.errors import VeilError

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    )
)
"""No inline script or style anywhere in the page: everything comes from /web/."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.(html|js|css|svg|png|ico)$")

WebFile = Annotated[str, Path(min_length=1, max_length=100, description="A file of the web page.")]


class WebFileNotFoundError(VeilError, LookupError):
    """No such file in the web page's folder."""

    http_status = 404


def _headers(content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        # Small files: the browser asks again each time (a new version is seen at once).
        "Cache-Control": "no-cache",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }


@cache
def _files() -> dict[str, bytes]:
    """Every servable file of the web folder, read once (read-only package data)."""
    folder = resources.files("veil.server").joinpath("web")
    return {
        entry.name: entry.read_bytes()
        for entry in folder.iterdir()
        if entry.is_file() and _NAME.match(entry.name)
    }


def web_file(name: str) -> Response:
    """One file of the page with its type and the security headers (404 if unknown)."""
    data = _files().get(name)
    if data is None:
        raise WebFileNotFoundError(
            f"the web page has no file {name!r}", hint="the page itself is at /"
        )
    suffix = name[name.rfind(".") :]
    return Response(data, headers=_headers(_TYPES[suffix]))


router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> Response:
    """The single page (hash routes: #/cameras, #/camera/<id>, #/recordings, ...)."""
    return web_file("index.html")


@router.get("/web/{name}")
def static_file(name: WebFile) -> Response:
    return web_file(name)
