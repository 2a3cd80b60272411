"""The gateway's web application: FastAPI app factory, error replies and the HTTP server.

:func:`create_app` wires the REST API (veil.server.api), the WebRTC offer endpoint
(veil.server.webrtc) and the web page (veil.server.web_routes, served at ``/``) to a running
:class:`Gateway`::

    gateway = Gateway(site)
    gateway.start()
    app = create_app(gateway, tls=False)
    uvicorn.Server(server_config(app, "127.0.0.1", 8080)).run()
    gateway.stop()

Errors become ``{"detail": message, "hint": fix}`` replies with the status each error class
names (``http_status``), and every refusal (4xx) is logged with method, path and reason.
Request bodies over ``max_body_bytes`` are refused with 413 before they are read whole.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veil import __version__
from veil.core.errors import ConfigError, VeilError
from veil.server import api, ptz_routes, redact_routes, web_routes, webrtc
from veil.server.gateway import Gateway
from veil.vault.users import AuthError, LoginThrottledError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body accepted (a masking configuration is a few kilobytes)."""

_SECURITY_HEADERS: Sequence[tuple[bytes, bytes]] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class _BodyTooLargeError(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 (by Content-Length, or while the
    body streams in), and add security headers to every reply."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send, declared)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in _SECURITY_HEADERS if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLargeError:
            if started:
                raise
            await self._refuse(scope, send, received)

    async def _refuse(self, scope: Scope, send: Send, size: int) -> None:
        message = f"the request body is too large ({size} bytes; at most {self.max_bytes})"
        log.warning("refused %s %s -> 413: %s", scope.get("method"), scope.get("path"), message)
        body = json.dumps({"detail": message, "hint": "send a smaller body"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    *_SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def status_for(error: VeilError) -> int:
    """The HTTP status for a Veil error: its ``http_status``, else by kind."""
    status = getattr(error, "http_status", None)
    if isinstance(status, int):
        return status
    if isinstance(error, ConfigError):
        return 422
    if isinstance(error, LookupError):
        return 404
    if isinstance(error, PermissionError):
        return 403
    if isinstance(error, ValueError):
        return 400
    return 500


def _refused(request: Request, status: int, message: str) -> None:
    level = logging.ERROR if status >= 500 else logging.WARNING
    log.log(level, "refused %s %s -> %d: %s", request.method, request.url.path, status, message)


async def _veil_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VeilError)
    status = status_for(exc)
    _refused(request, status, exc.message)
    headers: dict[str, str] = {}
    if isinstance(exc, LoginThrottledError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    elif isinstance(exc, AuthError) and status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="veil"'
    return JSONResponse(
        {"detail": exc.message, "hint": exc.hint}, status_code=status, headers=headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = []
    for error in exc.errors()[:20]:
        loc = [str(part) for part in error.get("loc", ())]
        kind = str(error.get("type", ""))
        msg = str(error.get("msg", ""))
        if kind == "json_invalid":
            msg = f"the body is not valid JSON ({error.get('ctx', {}).get('error', msg)})"
        errors.append({"loc": loc, "msg": msg, "type": kind})
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"])
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    _refused(request, 422, message)
    return JSONResponse(
        {"detail": message, "hint": "see 'errors' and the OpenAPI description", "errors": errors},
        status_code=422,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    _refused(request, exc.status_code, str(exc.detail))
    return JSONResponse(
        {"detail": str(exc.detail), "hint": None},
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )


def build_app(*, tls: bool = False, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The application without a gateway (for its OpenAPI description); see create_app."""
    app = FastAPI(
        title="Veil gateway",
        version=__version__,
        description=(
            "Masked live video, recordings and configuration; the original video only for "
            "investigators with an unmask grant, every use audited."
        ),
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.tls = tls
    app.include_router(api.router)
    app.include_router(ptz_routes.router)
    app.include_router(redact_routes.router)
    app.include_router(webrtc.router)
    app.include_router(web_routes.router)
    app.add_exception_handler(VeilError, _veil_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    return app


def create_app(
    gateway: Gateway, *, tls: bool = False, max_body_bytes: int = MAX_BODY_BYTES
) -> FastAPI:
    """The FastAPI application serving ``gateway`` (which the caller starts and stops)."""
    app = build_app(tls=tls, max_body_bytes=max_body_bytes)
    app.state.gateway = gateway
    return app


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI description (what /api/openapi.json serves)."""
    return build_app().openapi()


def server_config(
    app: FastAPI,
    host: str,
    port: int,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    log_level: str = "info",
) -> uvicorn.Config:
    """uvicorn settings: HTTPS when a certificate and key are given; open streams are cut
    after a short grace period on shutdown so a stop never hangs on a viewer."""
    for name, value in (("tls_cert", tls_cert), ("tls_key", tls_key)):
        if value is not None and not Path(value).is_file():
            raise ConfigError(
                f"security.{name}: {value} does not exist", hint="give a PEM file's path"
            )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_level=log_level,
        lifespan="on",  # WebRTC peer connections are closed on shutdown
        timeout_graceful_shutdown=2,
        server_header=False,
    )


class BackgroundServer:
    """uvicorn in a named thread (tests, benchmarks): ``with BackgroundServer(cfg) as s:``."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="http-server")

    def start(self, timeout: float = 20.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start (is the port in use?)")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
