"""The master key that protects the encrypted originals.

The master key (32 bytes) never encrypts video itself: it wraps the fresh data key of each
segment (see :mod:`veil.vault.segments`). It comes from one of two places, and it is never
written beside the recordings:

* a passphrase, stretched with Argon2id. The salt, the Argon2 parameters and a *key check
  value* (an HMAC of a constant under the derived key) live in a small key-parameters file.
  That file is not secret and is not the key: without the passphrase it is useless, and the
  check value lets Veil say "wrong passphrase" instead of decrypting garbage.
* a key file of 32 random bytes, created by :func:`create_key_file` with 0600 permissions and
  refused when other users can read it.

Example::

    params = Path("/etc/veil/key-params.json")
    key = create_passphrase_key(params, "correct horse battery staple")   # first run
    key = MasterKey.from_passphrase("correct horse battery staple", params)  # later
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from veil.core.errors import VeilError

__all__ = [
    "KEY_BYTES",
    "KdfParams",
    "KeyFileError",
    "MasterKey",
    "VaultError",
    "WrongKeyError",
    "check_key_location",
    "create_key_file",
    "create_passphrase_key",
]

KEY_BYTES = 32
_PARAMS_FORMAT = "veil-key-params"
_PARAMS_VERSION = 1
_CHECK_CONSTANT = b"veil master key check v1"
_ID_CONSTANT = b"veil master key id v1"


class VaultError(VeilError):
    """Encrypted originals or their keys cannot be used (tampered, truncated, wrong key)."""

    exit_code = 1


class WrongKeyError(VaultError):
    """The passphrase or key file is not the one the data was protected with."""


class KeyFileError(VaultError):
    """A key file or key-parameters file is missing, malformed or too widely readable."""


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost parameters for stretching a passphrase into the master key.

    The defaults (3 passes over 64 MiB with 2 lanes, about a quarter second on a small
    server) follow the OWASP password-storage guidance; raise ``memory_kib`` to make guessing
    dearer, lower it only for tests. Changing them needs a new key-parameters file.
    """

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 2

    def __post_init__(self) -> None:
        if self.time_cost < 1:
            raise VaultError(f"Argon2 time_cost must be at least 1, got {self.time_cost}")
        if self.parallelism < 1:
            raise VaultError(f"Argon2 parallelism must be at least 1, got {self.parallelism}")
        if self.memory_kib < 8 * self.parallelism:
            raise VaultError(
                f"Argon2 memory_kib must be at least 8 x parallelism "
                f"({8 * self.parallelism}), got {self.memory_kib}"
            )


class MasterKey:
    """A 32-byte key that wraps and unwraps segment data keys. ``repr`` never shows it."""

    __slots__ = ("_key", "key_id")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise VaultError(f"a master key must be {KEY_BYTES} bytes, got {len(key)}")
        self._key = bytes(key)
        #: A public fingerprint (8 bytes) that names the key in segment headers.
        self.key_id: bytes = hmac.new(self._key, _ID_CONSTANT, hashlib.sha256).digest()[:8]

    def __repr__(self) -> str:
        return f"MasterKey(id={self.key_id.hex()})"

    def check_value(self) -> bytes:
        """HMAC-SHA256 of a constant: proves a key is right without revealing it."""
        return hmac.new(self._key, _CHECK_CONSTANT, hashlib.sha256).digest()

    def wrap(self, data_key: bytes) -> bytes:
        """Wrap a data key with AES key wrap (RFC 3394): 40 bytes for a 32-byte key."""
        return aes_key_wrap(self._key, data_key)

    def unwrap(self, wrapped: bytes) -> bytes:
        """Unwrap a data key; :class:`WrongKeyError` when this is not the key that wrapped it."""
        try:
            return aes_key_unwrap(self._key, wrapped)
        except (InvalidUnwrap, ValueError) as error:
            raise WrongKeyError(
                "the data key cannot be unwrapped: this master key did not wrap it, or the "
                "wrapped key was altered",
                hint="use the passphrase or key file the recordings were made with",
            ) from error

    def hmac_key(self, purpose: str) -> bytes:
        """A separate 32-byte key for ``purpose`` (for example the audit-log HMAC)."""
        return hmac.new(self._key, b"veil derived key: " + purpose.encode(), "sha256").digest()

    # -- sources ----------------------------------------------------------------------------

    @classmethod
    def from_key_file(cls, path: Path) -> MasterKey:
        """Read a key file made by :func:`create_key_file` (refused if group/other can read)."""
        path = Path(path)
        try:
            info = path.stat()
        except FileNotFoundError as error:
            raise KeyFileError(
                f"the key file {path} does not exist",
                hint="create one with create_key_file(), or pass the right path",
            ) from error
        if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"the key file {path} can be read by other users "
                f"(mode {stat.S_IMODE(info.st_mode):o})",
                hint=f"run: chmod 600 {path}",
            )
        data = path.read_bytes()
        if len(data) != KEY_BYTES:
            raise KeyFileError(
                f"the key file {path} holds {len(data)} bytes, not {KEY_BYTES}",
                hint="use the key file Veil created; it is raw bytes, not text",
            )
        return cls(data)

    @classmethod
    def from_passphrase(cls, passphrase: str, params_path: Path) -> MasterKey:
        """Derive the key with the salt and parameters in ``params_path``, checking it."""
        params, salt, check = _read_params(Path(params_path))
        key = cls(_derive(passphrase, salt, params))
        if not hmac.compare_digest(key.check_value(), check):
            raise WrongKeyError(
                f"wrong passphrase: it does not match the key check value in {params_path}",
                hint="type the passphrase the vault was created with",
            )
        return key


def _derive(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    if not passphrase:
        raise VaultError("the passphrase is empty", hint="give the vault passphrase")
    return hash_secret_raw(
        secret=passphrase.encode("utf-8"),
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=KEY_BYTES,
        type=Type.ID,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _read_params(path: Path) -> tuple[KdfParams, bytes, bytes]:
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise KeyFileError(
            f"the key-parameters file {path} does not exist",
            hint="create it with create_passphrase_key() on first run, or pass the right path",
        ) from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise KeyFileError(
            f"the key-parameters file {path} is not valid JSON: {error}",
            hint="restore it from a backup; without it the passphrase cannot recreate the key",
        ) from error
    try:
        if raw["format"] != _PARAMS_FORMAT or raw["kdf"] != "argon2id":
            raise ValueError("not a Veil argon2id key-parameters file")
        if raw["version"] != _PARAMS_VERSION:
            raise ValueError(f"version {raw['version']} is not supported")
        params = KdfParams(
            time_cost=int(raw["time_cost"]),
            memory_kib=int(raw["memory_kib"]),
            parallelism=int(raw["parallelism"]),
        )
        salt = base64.b64decode(raw["salt"], validate=True)
        check = base64.b64decode(raw["check"], validate=True)
    except (KeyError, TypeError, ValueError) as error:
        raise KeyFileError(
            f"the key-parameters file {path} is malformed: {error}",
            hint="restore it from a backup; without it the passphrase cannot recreate the key",
        ) from error
    if len(salt) < 16 or len(check) != 32:
        raise KeyFileError(
            f"the key-parameters file {path} has a short salt or check value",
            hint="restore it from a backup",
        )
    return params, salt, check


def create_passphrase_key(
    params_path: Path, passphrase: str, params: KdfParams | None = None
) -> MasterKey:
    """First run: derive a master key from ``passphrase`` and write its parameters file.

    The file (salt, Argon2 parameters, key check value) is created, never overwritten: a new
    salt would make every existing recording unreadable.
    """
    params = params or KdfParams()
    path = Path(params_path)
    salt = secrets.token_bytes(16)
    key = MasterKey(_derive(passphrase, salt, params))
    document = {
        "format": _PARAMS_FORMAT,
        "version": _PARAMS_VERSION,
        "kdf": "argon2id",
        "time_cost": params.time_cost,
        "memory_kib": params.memory_kib,
        "parallelism": params.parallelism,
        "salt": _b64(salt),
        "check": _b64(key.check_value()),
        "key_id": key.key_id.hex(),
    }
    _write_new(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"), 0o600)
    return key


def create_key_file(path: Path, *, recordings_dir: Path | None = None) -> MasterKey:
    """Create a key file of 32 random bytes with 0600 permissions; never overwrites one.

    Pass ``recordings_dir`` to refuse a location inside the recordings folder.
    """
    path = Path(path)
    if recordings_dir is not None:
        check_key_location(path, recordings_dir)
    key = secrets.token_bytes(KEY_BYTES)
    _write_new(path, key, 0o600)
    return MasterKey(key)


def check_key_location(key_path: Path, recordings_dir: Path) -> None:
    """Refuse a key file that lies inside the recordings folder (a stolen disk has both)."""
    key_abs = Path(key_path).resolve()
    rec_abs = Path(recordings_dir).resolve()
    if key_abs == rec_abs or rec_abs in key_abs.parents:
        raise KeyFileError(
            f"the key file {key_path} is inside the recordings folder {recordings_dir}",
            hint="keep the master key on another disk or a secrets store, never beside the "
            "recordings it protects",
        )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as error:
        raise KeyFileError(
            f"{path} already exists; Veil will not overwrite key material",
            hint="use the existing file, or move it away first if you really mean to replace it",
        ) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
