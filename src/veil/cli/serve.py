"""`veil serve`: run the live privacy gateway.

With no ``--config`` it runs the built-in demo site: one synthetic camera with motion masking,
its data in ./veil-data, and a master key created under the user's configuration folder.
On the first run the admin's password is printed once. SIGINT or SIGTERM stops it cleanly:
the HTTP server closes, the cameras stop and the segments being written are finished.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import typer
import uvicorn

from veil.core.errors import ConfigError
from veil.server.site_config import SiteConfig, default_site, load_site_file


class _StopRequestedError(Exception):
    """SIGINT or SIGTERM arrived before the HTTP server was listening."""


def register(app: typer.Typer) -> None:
    """Add ``veil serve`` to ``app``."""
    app.command(
        "serve",
        help=(
            "Run the live privacy gateway: masked RTSP, MJPEG and recordings for every "
            "camera, the original only for authorised investigators.\n\n"
            "Example: veil serve --config site.yaml --port 8080"
        ),
    )(serve)


def _with_overrides(
    site: SiteConfig,
    host: str | None,
    port: int | None,
    rtsp_port: int | None,
    data_dir: Path | None,
) -> SiteConfig:
    server: dict[str, Any] = site.server.model_dump()
    for key, value in (("host", host), ("port", port), ("rtsp_port", rtsp_port)):
        if value is not None:
            server[key] = value
    if data_dir is not None:
        server["data_dir"] = str(data_dir)
    data = site.model_dump()
    data["server"] = server
    try:
        return SiteConfig.model_validate(data)
    except ValueError as error:
        raise ConfigError(f"invalid command-line option: {error}") from None


def serve(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Site file (YAML). Default: the built-in demo site."
    ),
    host: str | None = typer.Option(None, "--host", help="HTTP address (server.host)."),
    port: int | None = typer.Option(None, "--port", "-p", help="HTTP port (server.port)."),
    rtsp_port: int | None = typer.Option(None, "--rtsp-port", help="RTSP port."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Database and recordings folder (server.data_dir)."
    ),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning, error."),
) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    import logging

    from veil.server.app import create_app, server_config
    from veil.server.gateway import Gateway, GatewayOptions

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    site = load_site_file(config) if config is not None else default_site()
    site = _with_overrides(site, host, port, rtsp_port, data_dir)

    def terminate(_sig: int, _frame: FrameType | None) -> None:
        raise _StopRequestedError

    previous = {sig: signal.signal(sig, terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
    gateway: Gateway | None = None
    try:
        gateway = Gateway(site, site_file=config, options=GatewayOptions(demo_key=config is None))
        _announce(gateway)
        gateway.start()
        security = site.security
        app = create_app(gateway, tls=security.tls_cert is not None)
        settings = server_config(
            app,
            site.server.host,
            site.server.port,
            tls_cert=security.tls_cert,
            tls_key=security.tls_key,
            log_level=log_level.lower(),
        )
        server = uvicorn.Server(settings)
        # uvicorn takes SIGINT/SIGTERM while it runs and raises them again when it has shut
        # down; they then reach `terminate`, which ends this block.
        server.run()
    except _StopRequestedError:
        pass
    finally:
        # A second signal during cleanup must not cut the segments being finished short.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        if gateway is not None:
            gateway.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    typer.echo("veil serve: stopped")


def _announce(gateway: Any) -> None:
    site: SiteConfig = gateway.site
    out = sys.stdout
    if gateway.first_password is not None:
        print(
            "\nFirst run: an admin account was created. Its password is shown ONCE:\n"
            f"    user: admin    password: {gateway.first_password}\n"
            "Log in and change it; it is not stored anywhere in the clear.\n",
            file=out,
            flush=True,
        )
    scheme = "https" if site.security.tls_cert else "http"
    host = site.server.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    print(f"Web page and API: {scheme}://{shown}:{site.server.port}/  (API docs: /api/docs)")
    login = ""
    if site.security.rtsp_username:
        login = (
            f"  (user {site.security.rtsp_username}, password from "
            f"${site.security.rtsp_password_env})"
        )
    for runtime in gateway.cameras:
        url = gateway.rtsp_url(runtime.camera_id)
        if url:
            print(f"Masked RTSP: {url}{login}")
    print(f"Data folder: {gateway.data_dir}", flush=True)
