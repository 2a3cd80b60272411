"""Master keys: Argon2id passphrases with a key check value, and 0600 key files."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from veil.vault.keys import (
    KEY_BYTES,
    KdfParams,
    KeyFileError,
    MasterKey,
    VaultError,
    WrongKeyError,
    check_key_location,
    create_key_file,
    create_passphrase_key,
)

# Cheap Argon2 for tests; production uses KdfParams() (3 passes over 64 MiB).
FAST = KdfParams(time_cost=1, memory_kib=1024, parallelism=1)


def test_defaults_follow_owasp_guidance() -> None:
    params = KdfParams()
    assert (params.time_cost, params.memory_kib, params.parallelism) == (3, 64 * 1024, 2)


def test_passphrase_derives_the_same_key_again(tmp_path: Path) -> None:
    params_path = tmp_path / "key-params.json"
    created = create_passphrase_key(params_path, "correct horse battery staple", FAST)
    again = MasterKey.from_passphrase("correct horse battery staple", params_path)
    assert again.key_id == created.key_id
    assert again.check_value() == created.check_value()


def test_wrong_passphrase_is_detected_not_garbage(tmp_path: Path) -> None:
    params_path = tmp_path / "key-params.json"
    create_passphrase_key(params_path, "correct horse battery staple", FAST)
    with pytest.raises(WrongKeyError, match="wrong passphrase") as caught:
        MasterKey.from_passphrase("correct horse battery stapler", params_path)
    assert caught.value.hint is not None
    assert isinstance(caught.value, VaultError)


def test_params_file_holds_no_key_and_records_parameters(tmp_path: Path) -> None:
    params_path = tmp_path / "key-params.json"
    key = create_passphrase_key(params_path, "correct horse battery staple", FAST)
    document = json.loads(params_path.read_text())
    assert document["kdf"] == "argon2id"
    assert (document["time_cost"], document["memory_kib"], document["parallelism"]) == (1, 1024, 1)
    assert base64.b64decode(document["check"]) == key.check_value()
    # The derived key itself (what wraps data keys) appears nowhere in the file.
    raw = key._key
    text = params_path.read_text()
    assert base64.b64encode(raw).decode() not in text
    assert raw.hex() not in text
    assert stat.S_IMODE(params_path.stat().st_mode) == 0o600


def test_params_file_is_never_overwritten(tmp_path: Path) -> None:
    params_path = tmp_path / "key-params.json"
    create_passphrase_key(params_path, "first passphrase here", FAST)
    before = params_path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        create_passphrase_key(params_path, "second passphrase here", FAST)
    assert params_path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"format": "other"}', "malformed"),
        (
            '{"format": "veil-key-params", "version": 9, "kdf": "argon2id"}',
            "version 9 is not supported",
        ),
    ],
)
def test_malformed_params_file_is_refused(tmp_path: Path, content: str, message: str) -> None:
    params_path = tmp_path / "key-params.json"
    params_path.write_text(content)
    with pytest.raises(KeyFileError, match=message):
        MasterKey.from_passphrase("whatever passphrase", params_path)


def test_missing_params_file_says_how_to_create(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist") as caught:
        MasterKey.from_passphrase("whatever passphrase", tmp_path / "nope.json")
    assert "create_passphrase_key" in str(caught.value)


def test_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="empty"):
        create_passphrase_key(tmp_path / "p.json", "", FAST)


def test_key_file_is_created_0600_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    created = create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size == KEY_BYTES
    assert MasterKey.from_key_file(path).key_id == created.key_id


def test_key_file_is_created_0600_despite_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        create_key_file(tmp_path / "master.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600


def test_readable_key_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_key_file(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="can be read by other users") as caught:
        MasterKey.from_key_file(path)
    assert f"chmod 600 {path}" in str(caught.value)


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_key_file(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        create_key_file(path)
    assert path.read_bytes() == before


def test_key_file_of_wrong_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(b"short")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="holds 5 bytes"):
        MasterKey.from_key_file(path)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        MasterKey.from_key_file(tmp_path / "absent.key")


def test_key_inside_recordings_is_refused(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    (recordings / "door").mkdir(parents=True)
    with pytest.raises(KeyFileError, match="inside the recordings folder"):
        create_key_file(recordings / "door" / "master.key", recordings_dir=recordings)
    assert not (recordings / "door" / "master.key").exists()
    check_key_location(tmp_path / "keys" / "master.key", recordings)  # beside: fine


def test_wrap_unwrap_round_trip_and_wrong_key() -> None:
    key = MasterKey(os.urandom(32))
    other = MasterKey(os.urandom(32))
    data_key = os.urandom(32)
    wrapped = key.wrap(data_key)
    assert len(wrapped) == 40
    assert key.unwrap(wrapped) == data_key
    with pytest.raises(WrongKeyError, match="cannot be unwrapped"):
        other.unwrap(wrapped)


def test_repr_never_shows_the_key() -> None:
    raw = os.urandom(32)
    key = MasterKey(raw)
    assert raw.hex() not in repr(key)
    assert repr(key) == f"MasterKey(id={key.key_id.hex()})"


def test_master_key_length_is_checked() -> None:
    with pytest.raises(VaultError, match="32 bytes"):
        MasterKey(b"x" * 16)


def test_derived_keys_differ_by_purpose() -> None:
    key = MasterKey(os.urandom(32))
    assert key.hmac_key("audit-log") != key.hmac_key("other")
    assert len(key.hmac_key("audit-log")) == 32


@pytest.mark.parametrize(
    ("time_cost", "memory_kib", "parallelism", "message"),
    [(0, 1024, 1, "time_cost"), (1, 1024, 0, "parallelism"), (1, 8, 2, "memory_kib")],
)
def test_kdf_params_are_validated(
    time_cost: int, memory_kib: int, parallelism: int, message: str
) -> None:
    with pytest.raises(VaultError, match=message):
        KdfParams(time_cost=time_cost, memory_kib=memory_kib, parallelism=parallelism)
