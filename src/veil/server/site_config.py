"""The gateway's site configuration: cameras, outputs, storage and security.

A site file (``veil serve --config site.yaml``) looks like::

    cameras:
      - id: entrance
        source: rtsp://10.0.0.5/stream1
        masking:            # a Veil masking configuration, as for `veil mask`
          masks: [{name: window, rect: [0.6, 0.1, 0.3, 0.3]}]
          dynamic: {methods: [humans]}
    recording: {segment_seconds: 10, retention_days: 30}

With no file, :func:`default_site` gives the built-in demo site.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from veil.config.loader import format_path, locate_line, plain_yaml, write_text_atomic
from veil.config.schema import DynamicConfig, Method, VeilConfig
from veil.core.errors import ConfigError
from veil.core.style import StyleKind
from veil.ptz.config import PTZConfig, SceneMaskConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Transport(str, Enum):
    """RTSP transport when reading a camera."""

    TCP = "tcp"
    UDP = "udp"


class CameraConfig(_Strict):
    """One camera and how it is masked."""

    id: str = Field(
        min_length=1,
        max_length=32,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Short name used in URLs (lower case letters, digits, - and _).",
    )
    name: str = Field(default="", max_length=80, description="Display name.")
    source: str = Field(
        description=(
            "Where the video comes from: 'demo' (built-in synthetic scene), a file path "
            "(played in a loop), rtsp://..., http(s)://... (MJPEG or any FFmpeg input), "
            "'webcam:/dev/video0', or 'ptz-demo' (a virtual pan-tilt-zoom camera, see ptz)."
        ),
    )
    transport: Transport = Field(default=Transport.TCP, description="RTSP transport.")
    fps: float = Field(
        default=15.0, gt=0, le=60, description="Frame rate for demo and file sources."
    )
    width: int = Field(default=1280, ge=64, le=7680, description="Demo source width.")
    height: int = Field(default=720, ge=64, le=4320, description="Demo source height.")
    masking: VeilConfig = Field(
        default_factory=VeilConfig, description="Static and dynamic masking for this camera."
    )
    record_original: bool = Field(
        default=True,
        description="Keep an encrypted recording of the unmasked video for investigators.",
    )
    ptz: PTZConfig | None = Field(
        default=None,
        description=(
            "Pan-tilt-zoom: the lens, privacy masks fixed to the scene (pan/tilt degrees), "
            "presets, and for source 'ptz-demo' the virtual camera's 360 degree scene."
        ),
    )


class RecordingConfig(_Strict):
    """Masked and encrypted-original recordings."""

    enabled: bool = Field(default=True, description="Record the masked video.")
    segment_seconds: float = Field(
        default=10.0,
        ge=1,
        le=600,
        description="Segment length: a crash loses at most the segment being written.",
    )
    retention_days: float = Field(
        default=30.0, gt=0, le=3650, description="Segments older than this are deleted."
    )


class SecurityConfig(_Strict):
    """Keys, TLS and access rules."""

    key_file: str | None = Field(
        default=None,
        description=(
            "File with the 32-byte master key for encrypted originals. Keep it away from "
            "the recordings. If unset, VEIL_MASTER_PASSPHRASE is used (Argon2id)."
        ),
    )
    tls_cert: str | None = Field(default=None, description="PEM certificate for HTTPS.")
    tls_key: str | None = Field(default=None, description="PEM private key for HTTPS.")
    rtsp_username: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description=(
            "When set, the masked RTSP output asks for this user name and the password held "
            "in the environment variable named by rtsp_password_env (RTSP basic auth sends it "
            "unencrypted: use it on the VMS network or a VPN). Unset: no password is asked."
        ),
    )
    rtsp_password_env: str = Field(
        default="VEIL_RTSP_PASSWORD",
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Environment variable with the RTSP password (kept out of the site file).",
    )
    unmask_requires_approval: bool = Field(
        default=False,
        description="Unmasking needs a second investigator's approval (four-eyes rule).",
    )
    unmask_max_minutes: float = Field(
        default=15.0, gt=0, le=24 * 60, description="Longest an unmasked view stays open."
    )
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="Login lifetime.")

    @model_validator(mode="after")
    def _tls_pair(self) -> SecurityConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both tls_cert and tls_key, or neither")
        return self


class ServerConfig(_Strict):
    """Where the gateway listens."""

    host: str = Field(default="127.0.0.1", description="HTTP address to listen on.")
    port: int = Field(default=8080, ge=1, le=65535, description="HTTP port.")
    rtsp_port: int = Field(default=8554, ge=1, le=65535, description="RTSP port (masked).")
    data_dir: str = Field(
        default="veil-data", description="Database, recordings and keys' parameters."
    )


class SiteConfig(_Strict):
    """A whole gateway site."""

    version: Literal[1] = 1
    server: ServerConfig = Field(default_factory=ServerConfig)
    cameras: list[CameraConfig] = Field(default_factory=list)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)

    @model_validator(mode="after")
    def _unique_ids(self) -> SiteConfig:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique, repeated: {', '.join(dupes)}")
        return self


def default_site() -> SiteConfig:
    """The built-in demo site: a synthetic street camera with motion masking, and a virtual
    pan-tilt-zoom camera over a 360 degree scene with a privacy mask fixed to the scene."""
    ptz_demo = CameraConfig(
        id="ptz",
        name="Virtual PTZ camera",
        source="ptz-demo",
        fps=10.0,
        width=960,
        height=540,
        record_original=False,
        ptz=PTZConfig(
            masks=[
                SceneMaskConfig(
                    name="neighbour",
                    vertices=[(20.0, -5.0), (40.0, -5.0), (40.0, 12.0), (20.0, 12.0)],
                    margin_deg=1.0,
                    style=StyleKind.MOSAIC,
                )
            ]
        ),
    )
    demo = CameraConfig(
        id="demo",
        name="Demo camera",
        source="demo",
        fps=15.0,
        width=1280,
        height=720,
        masking=VeilConfig(dynamic=DynamicConfig(methods=[Method.MOTION], learning_time=1.0)),
    )
    return SiteConfig(cameras=[demo, ptz_demo])


# -- site files -------------------------------------------------------------------------------

_MAX_REPORTED = 10


def load_site_text(text: str, source_name: str = "<site>") -> SiteConfig:
    """Validate site YAML text; every problem is reported with its file and line."""
    yaml = YAML(typ="rt")
    try:
        document = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{source_name}:{mark.line + 1}" if mark else source_name
        raise ConfigError(
            f"YAML syntax error: {error.problem or error.context or 'unreadable'}",
            location=where,
            hint="check indentation (spaces, not tabs), colons after keys and brackets",
        ) from None
    except YAMLError as error:
        raise ConfigError(f"not valid YAML: {error}", location=source_name) from None
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ConfigError(
            "the top level must be a mapping with keys such as 'cameras:'",
            location=f"{source_name}:1",
        )
    try:
        return SiteConfig.model_validate(plain_yaml(document, str_keys=True))
    except ValidationError as error:
        lines = []
        for detail in error.errors(include_url=False)[:_MAX_REPORTED]:
            loc = tuple(detail["loc"])
            line = locate_line(document, loc)
            where = f"{source_name}:{line}" if line is not None else source_name
            path = format_path(loc)
            message = f"{path}: {detail['msg']}" if path else detail["msg"]
            lines.append(f"{where}: {message}")
        raise ConfigError(
            "\n".join(lines), hint="fix the site file; see the key descriptions in site_config"
        ) from None


def load_site_file(path: Path) -> SiteConfig:
    """Read and validate a site file (``veil serve --config site.yaml``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"the site file {path} does not exist", hint="check the path, or omit --config"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the site file {path}: {error}") from None
    return load_site_text(text, str(path))


def dump_site_text(site: SiteConfig) -> str:
    """The site as YAML; settings equal to their defaults are left out.

    ``load_site_text(dump_site_text(s)) == s``.
    """
    data = site.model_dump(mode="json", exclude_defaults=True)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    out = io.StringIO()
    out.write("# Veil gateway site. Written by Veil: comments are not kept.\n")
    yaml.dump(data or {}, out)
    return out.getvalue()


def save_site_file(site: SiteConfig, path: Path) -> None:
    """Write the site file atomically: readers see the old file or the new one, never half."""
    text = dump_site_text(site)
    if load_site_text(text, str(path)) != site:
        raise ConfigError(
            "the site configuration does not survive being written as YAML",
            hint="this is a bug in Veil; the site file was left unchanged",
        )
    write_text_atomic(Path(path), text, overwrite=True)
