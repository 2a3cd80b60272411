"""The gateway: every camera of a site, its outputs, the vault and who may see what.

A :class:`Gateway` is built from a :class:`~veil.server.site_config.SiteConfig`::

    gateway = Gateway(load_site_file(Path("site.yaml")), site_file=Path("site.yaml"))
    print(gateway.first_password)        # only on the first run: print it once
    gateway.start()
    ...
    gateway.stop()                       # cameras stopped, open segments finished

What it holds:

- the SQLite database ``data_dir/veil.db`` (users, sessions, tokens, unmask grants and the
  audit log, whose chain is keyed with an HMAC key derived from the master key);
- the master key for the encrypted originals, from ``security.key_file``, else from the
  passphrase in ``VEIL_MASTER_PASSPHRASE`` (Argon2id; its parameters file lives in the data
  folder), else, for the built-in demo site only, from a key file Veil creates under the
  user's configuration folder (``$XDG_CONFIG_HOME/veil/master.key``), never beside the
  recordings;
- one :class:`~veil.server.camera.CameraRuntime` per camera, recording masked segments to
  ``data_dir/recordings/<camera>/`` and encrypted originals to ``data_dir/originals/``;
- the masked RTSP server, one mount per camera (with a user and password when
  ``security.rtsp_username`` is set), and a retention thread that deletes segments older
  than ``recording.retention_days`` and expired sessions.

Configuration changes (:meth:`Gateway.update_masking`) are validated and built first; a
change that fails to build is refused and the running one stays. A change that builds is
written to the site file (atomically) when there is one, swapped in between two frames and
audited with what changed.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from veil.config.schema import VeilConfig
from veil.core.errors import ConfigError, VeilError
from veil.ptz.config import PTZConfig
from veil.ptz.runtime import PTZHub
from veil.server.camera import CameraRuntime, FrameSourceFactory, Masker, MaskerFactory
from veil.server.recorder import (
    EncryptedSegmentStore,
    MaskedSegmentStore,
    RecordedSegment,
    SegmentRecorder,
)
from veil.server.site_config import CameraConfig, SiteConfig, load_site_file, save_site_file
from veil.server.sources import open_frames
from veil.vault.audit import AuditAction, AuditLog, audit_key_from
from veil.vault.db import Database
from veil.vault.keys import (
    KdfParams,
    KeyFileError,
    MasterKey,
    check_key_location,
    create_key_file,
    create_passphrase_key,
)
from veil.vault.segments import StoredSegment, decrypt_segment, list_segments, prune
from veil.vault.users import (
    ApiTokens,
    AuthSettings,
    Principal,
    Scope,
    Sessions,
    UnmaskGrants,
    Users,
    require,
)

if TYPE_CHECKING:
    from veil.server.rtsp import RtspPublisher

log = logging.getLogger(__name__)

PASSPHRASE_ENV = "VEIL_MASTER_PASSPHRASE"
KEY_PARAMS_NAME = "key-params.json"
DEMO_KEY_NAME = "master.key"


class CameraNotFoundError(VeilError, LookupError):
    """No camera with that id in this site."""

    http_status = 404


class SegmentNotFoundError(VeilError, LookupError):
    """No recorded segment with that name."""

    http_status = 404


class GatewayConfigError(ConfigError):
    """A configuration change was refused (it does not validate or does not build)."""

    http_status = 422


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """How a gateway runs, beyond the site file (tests and benchmarks change these).

    ``stall_timeout`` trades how quickly a dead camera shows "no signal" against false
    alarms on a jittery network; ``max_latency`` is how late a masked frame may be before it
    is replaced by a fully masked one.
    """

    auth_settings: AuthSettings | None = None
    kdf_params: KdfParams | None = None
    masker_factory: MaskerFactory | None = None
    source_factory: FrameSourceFactory | None = None
    rtsp: bool = True
    stall_timeout: float = 2.0
    max_latency: float = 1.0
    detect_budget_s: float | None = 0.5
    prune_interval_s: float = 600.0
    demo_key: bool = False
    """The built-in demo site: a missing master key is created under the user's config dir."""


def user_config_dir() -> Path:
    """``$XDG_CONFIG_HOME/veil``, else ``~/.config/veil``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "veil"


def default_masker_factory(detect_budget_s: float | None) -> MaskerFactory:
    """``veil.policy.build.build_masker`` with a live detection budget (imported lazily)."""

    def build(config: VeilConfig, fps: float) -> Masker:
        from veil.policy.build import build_masker

        return build_masker(config, fps, detect_budget_s=detect_budget_s)

    return build


def load_master_key(
    site: SiteConfig, data_dir: Path, *, demo: bool, kdf_params: KdfParams | None = None
) -> tuple[MasterKey, str]:
    """The master key and a sentence saying where it came from (for the log)."""
    protected = (data_dir / "recordings", data_dir / "originals")
    key_file = site.security.key_file
    if key_file:
        path = Path(key_file).expanduser()
        for folder in protected:
            check_key_location(path, folder)
        return MasterKey.from_key_file(path), f"master key from the key file {path}"
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if passphrase:
        params = data_dir / KEY_PARAMS_NAME
        if params.exists():
            return MasterKey.from_passphrase(passphrase, params), (
                f"master key from {PASSPHRASE_ENV} (Argon2id, parameters in {params})"
            )
        key = create_passphrase_key(params, passphrase, kdf_params)
        return key, f"new master key from {PASSPHRASE_ENV}; its Argon2id parameters: {params}"
    if not demo:
        raise KeyFileError(
            "no master key for the encrypted originals",
            hint=f"set security.key_file in the site file (a 32-byte key kept away from the "
            f"recordings), or the environment variable {PASSPHRASE_ENV}",
        )
    path = user_config_dir() / DEMO_KEY_NAME
    for folder in protected:
        check_key_location(path, folder)
    if path.exists():
        return MasterKey.from_key_file(path), f"demo master key from {path}"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = create_key_file(path)
    return key, (
        f"created a demo master key at {path} (outside the recordings folder); keep it: "
        "without it the encrypted originals cannot be read"
    )


def rtsp_credentials(site: SiteConfig) -> tuple[str, str] | None:
    """The RTSP user and password (from the environment), or None when RTSP asks for none."""
    security = site.security
    if security.rtsp_username is None:
        return None
    password = os.environ.get(security.rtsp_password_env, "")
    if len(password) < 8:
        raise ConfigError(
            f"security.rtsp_username is set, but ${security.rtsp_password_env} holds no "
            "password of at least 8 characters",
            hint=f"export {security.rtsp_password_env}=... before starting, or unset "
            "security.rtsp_username",
        )
    return security.rtsp_username, password


class Gateway:
    """All cameras of a site with their outputs, the vault and the user stores."""

    def __init__(
        self,
        site: SiteConfig,
        *,
        site_file: Path | None = None,
        options: GatewayOptions | None = None,
    ) -> None:
        self.options = options or GatewayOptions()
        self.site = site
        self.site_file = site_file
        self.data_dir = Path(site.server.data_dir).expanduser().resolve()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.recordings_dir = self.data_dir / "recordings"
        self.originals_dir = self.data_dir / "originals"
        self.master_key, key_note = load_master_key(
            site, self.data_dir, demo=self.options.demo_key, kdf_params=self.options.kdf_params
        )
        log.info("%s", key_note)
        self.key_note = key_note
        self._rtsp_login = rtsp_credentials(site) if self.options.rtsp else None
        self.db = Database.in_folder(self.data_dir)
        try:
            self.audit = AuditLog(self.db, hmac_key=audit_key_from(self.master_key))
            self.auth_settings = _auth_settings(site, self.options.auth_settings)
            self.users = Users(self.db, self.audit, self.auth_settings)
            self.sessions = Sessions(self.users)
            self.tokens = ApiTokens(self.users)
            self.grants = UnmaskGrants(self.users)
            self.ptz = PTZHub.from_cameras(site.cameras)
            """The site's pan-tilt-zoom cameras (moved through veil.server.ptz_routes)."""
            for camera_id in self.ptz.ids:
                self.ptz.camera(camera_id).on_change = self._ptz_changed
            # Scene masks are drawn after each camera's own masking, at the position each
            # frame was rendered at; 'ptz-demo' cameras get frames from their virtual head.
            self._masker_factory = self.ptz.masker_factory(
                self.options.masker_factory or default_masker_factory(self.options.detect_budget_s)
            )
            self._source_factory = self.ptz.source_factory(
                self.options.source_factory or open_frames
            )
            self._cameras: dict[str, CameraRuntime] = {}
            for camera in site.cameras:
                self._cameras[camera.id] = self._build_camera(camera)
            # Last: a first password must never be created and then lost to a startup error.
            self.first_password = self.users.ensure_admin()
            """The admin's first password on the first run (print it once), else None."""
        except BaseException:
            self.db.close()
            raise
        self._config_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._publisher: RtspPublisher | None = None
        self._started = False

    # -- building -----------------------------------------------------------------------------

    def _build_camera(self, camera: CameraConfig) -> CameraRuntime:
        seconds = self.site.recording.segment_seconds
        recorder = None
        if self.site.recording.enabled:
            store = MaskedSegmentStore(self.recordings_dir, camera.id)
            recorder = SegmentRecorder(store, fps=camera.fps, segment_seconds=seconds)
        original = None
        if camera.record_original:
            sealed = EncryptedSegmentStore(self.originals_dir, camera.id, self.master_key)
            original = SegmentRecorder(sealed, fps=camera.fps, segment_seconds=seconds)
        try:
            return CameraRuntime(
                camera,
                self._masker_factory,
                self._source_factory,
                recorder=recorder,
                original_recorder=original,
                stall_timeout=self.options.stall_timeout,
                max_latency=self.options.max_latency,
            )
        except VeilError as error:
            raise GatewayConfigError(
                f"camera {camera.id}: its masking cannot be built: {error.message}",
                hint=error.hint or "fix the camera's masking in the site file",
            ) from error

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the cameras, the RTSP server and the retention thread."""
        if self._started:
            return
        self._started = True
        if self.options.rtsp and self._cameras:
            self._publisher = self._start_rtsp()
        for runtime in self._cameras.values():
            runtime.start()
        thread = threading.Thread(target=self._retention_loop, name="gateway-retention")
        thread.start()
        self._threads.append(thread)
        log.info("gateway started: %d camera(s), data in %s", len(self._cameras), self.data_dir)

    def _start_rtsp(self) -> RtspPublisher:
        from veil.server.rtsp import RtspMount, RtspPublisher

        server = self.site.server
        publisher = RtspPublisher(server.host, server.rtsp_port, credentials=self._rtsp_login)
        if self._rtsp_login is None and server.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning(
                "the masked RTSP output on %s:%d asks for no password; set "
                "security.rtsp_username (and its password in $%s) to require one",
                server.host,
                server.rtsp_port,
                self.site.security.rtsp_password_env,
            )
        for runtime in self._cameras.values():
            c = runtime.config
            publisher.add(
                RtspMount(
                    c.id,
                    runtime.masked,
                    c.width - c.width % 2,
                    c.height - c.height % 2,
                    max(1, round(c.fps)),
                )
            )
        publisher.start()
        return publisher

    def stop(self) -> None:
        """Stop everything; open segments are finished and stored. Idempotent."""
        self._stop.set()
        try:
            for runtime in self._cameras.values():
                runtime.stop()
            if self._publisher is not None:
                self._publisher.stop()
                self._publisher = None
            for thread in self._threads:
                thread.join(timeout=10)
        finally:
            self._threads.clear()
            self.ptz.close()  # stops ONVIF position polling of real PTZ heads
            self.db.close()
            log.info("gateway stopped")

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def __enter__(self) -> Gateway:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _retention_loop(self) -> None:
        while True:
            try:
                self.prune_now()
                self.sessions.purge_expired()
            except Exception:  # keep pruning on the next round; live video is unaffected
                log.exception("retention: pruning failed")
            if self._stop.wait(self.options.prune_interval_s):
                return

    def prune_now(self, now: datetime | None = None) -> list[Path]:
        """Delete masked and original segments older than the retention; returns them."""
        retention = timedelta(days=self.site.recording.retention_days)
        removed: list[Path] = []
        for camera_id in self._cameras:
            store = MaskedSegmentStore(self.recordings_dir, camera_id)
            removed += store.prune(retention, now)
        if self.originals_dir.is_dir():
            removed += prune(self.originals_dir, retention, now=now)
        if removed:
            log.info("retention: deleted %d segment(s) older than %s", len(removed), retention)
        return removed

    # -- cameras ------------------------------------------------------------------------------

    @property
    def cameras(self) -> list[CameraRuntime]:
        return list(self._cameras.values())

    def camera(self, camera_id: str) -> CameraRuntime:
        runtime = self._cameras.get(camera_id)
        if runtime is None:
            raise CameraNotFoundError(
                f"there is no camera {camera_id!r}",
                hint=f"cameras: {', '.join(self._cameras) or 'none'}",
            )
        return runtime

    def rtsp_url(self, camera_id: str) -> str | None:
        if not self.options.rtsp:
            return None
        host = self.site.server.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"rtsp://{shown}:{self.site.server.rtsp_port}/{camera_id}"

    def update_masking(self, actor: Principal, camera_id: str, masking: VeilConfig) -> VeilConfig:
        """Build, persist, swap and audit a camera's new masking configuration.

        Raises :class:`GatewayConfigError` with the builder's message when it does not
        build (a missing model, say); the running configuration then stays.
        """
        require(actor, Scope.CONFIGURE, audit=self.audit, target=f"camera:{camera_id}")
        runtime = self.camera(camera_id)
        masking = VeilConfig.model_validate(masking.model_dump())
        with self._config_lock:
            old = runtime.config.masking
            try:
                masker = runtime.prepare_masker(masking)
            except VeilError as error:
                raise GatewayConfigError(
                    f"the new configuration for camera {camera_id} was refused: {error.message}",
                    hint=error.hint or "the running configuration is unchanged",
                ) from error
            except (ValueError, OSError) as error:
                raise GatewayConfigError(
                    f"the new configuration for camera {camera_id} was refused: {error}",
                    hint="the running configuration is unchanged",
                ) from error
            cameras = [
                c.model_copy(update={"masking": masking}) if c.id == camera_id else c
                for c in self.site.cameras
            ]
            site = self.site.model_copy(update={"cameras": cameras})
            if self.site_file is not None:
                self._persist_masking(camera_id, masking)
            runtime.swap_masker(masker, masking)
            self.site = site
            self.audit.record_config_change(
                actor.label,
                f"camera:{camera_id}",
                old.model_dump(mode="json"),
                masking.model_dump(mode="json"),
            )
        log.info("camera %s: masking changed by %s", camera_id, actor.label)
        return masking

    def _persist_masking(self, camera_id: str, masking: VeilConfig) -> None:
        """Write the change into the site file as it is on disk (command-line overrides such
        as --port stay out of it), atomically."""
        assert self.site_file is not None
        on_disk = load_site_file(self.site_file)
        cameras = [
            c.model_copy(update={"masking": masking}) if c.id == camera_id else c
            for c in on_disk.cameras
        ]
        save_site_file(on_disk.model_copy(update={"cameras": cameras}), self.site_file)

    def _ptz_changed(self, camera_id: str, ptz: PTZConfig) -> None:
        """A PTZ camera's scene masks or presets changed (through the API; the API audits
        it): the site follows, and so does the site file, as it is on disk, atomically."""

        def updated(cameras: list[CameraConfig]) -> list[CameraConfig]:
            return [c.model_copy(update={"ptz": ptz}) if c.id == camera_id else c for c in cameras]

        with self._config_lock:
            if self.site_file is not None:
                on_disk = load_site_file(self.site_file)
                site = on_disk.model_copy(update={"cameras": updated(on_disk.cameras)})
                save_site_file(site, self.site_file)
            self.site = self.site.model_copy(update={"cameras": updated(self.site.cameras)})

    def reset_background(self, actor: Principal, camera_id: str) -> None:
        require(actor, Scope.CONFIGURE, audit=self.audit, target=f"camera:{camera_id}")
        self.camera(camera_id).reset_background()
        self.audit.append(actor.label, "camera.reset_background", f"camera:{camera_id}")

    # -- recordings ---------------------------------------------------------------------------

    def recordings(self, camera_id: str | None = None) -> list[RecordedSegment]:
        """Finished masked segments, oldest first."""
        ids = [self.camera(camera_id).camera_id] if camera_id else list(self._cameras)
        found: list[RecordedSegment] = []
        for cid in ids:
            if (self.recordings_dir / cid).is_dir():
                found += MaskedSegmentStore(self.recordings_dir, cid).segments()
        return sorted(found, key=lambda s: (s.start, s.camera_id, s.sequence))

    def recording_path(self, camera_id: str, name: str) -> Path:
        """A finished masked segment by name (only names that the store lists)."""
        for segment in self.recordings(camera_id):
            if segment.path.name == name:
                return segment.path
        raise SegmentNotFoundError(
            f"camera {camera_id} has no recording {name!r}", hint="list the recordings"
        )

    def originals(self, camera_id: str | None = None) -> list[StoredSegment]:
        """Finished encrypted originals (listing needs no key; reading does)."""
        if camera_id is not None:
            self.camera(camera_id)
        if not self.originals_dir.is_dir():
            return []
        return list_segments(self.originals_dir, camera_id=camera_id)

    def decrypt_original(self, actor: Principal, camera_id: str, name: str, reason: str) -> bytes:
        """Decrypt one original segment for an investigator (``unmask`` and ``export``), with
        a reason; audited before the data leaves."""
        target = f"camera:{camera_id}"
        require(actor, Scope.UNMASK, audit=self.audit, target=target)
        require(actor, Scope.EXPORT, audit=self.audit, target=target)
        reason = reason.strip()
        if not reason:
            raise GatewayConfigError(
                "decrypting an original needs a reason", hint="give a case or incident number"
            )
        stored = next((s for s in self.originals(camera_id) if s.path.name == name), None)
        if stored is None:
            raise SegmentNotFoundError(
                f"camera {camera_id} has no original {name!r}", hint="list the originals"
            )
        data = decrypt_segment(stored.path, self.master_key, expected=stored.segment)
        self.audit.append(
            actor.label,
            AuditAction.DECRYPT,
            target,
            {
                "segment": name,
                "reason": reason,
                "exported": True,
                "bytes": len(data),
                "start": stored.segment.start.isoformat(),
            },
        )
        return data


def _auth_settings(site: SiteConfig, base: AuthSettings | None) -> AuthSettings:
    security = site.security
    settings = base or AuthSettings()
    longest = timedelta(minutes=security.unmask_max_minutes)
    return replace(
        settings,
        two_person_unmask=security.unmask_requires_approval,
        unmask_max_duration=longest,
        unmask_default_duration=min(settings.unmask_default_duration, longest),
        session_lifetime=timedelta(hours=security.session_hours),
    )
