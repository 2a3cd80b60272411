"""The hash-chained audit log: it verifies, and names the entry that was edited or deleted."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from veil.cli.audit_cmd import register
from veil.vault.audit import (
    GENESIS_HASH,
    AuditAction,
    AuditChainError,
    AuditLog,
    JsonValue,
    _entry_digest,
    audit_key_from,
    canonical_json,
    config_diff,
)
from veil.vault.db import Database, DatabaseError
from veil.vault.keys import KdfParams, MasterKey, create_key_file, create_passphrase_key


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.in_folder(tmp_path / "data")
    yield database
    database.close()


def _fill(log: AuditLog, n: int = 6) -> None:
    log.append("system", AuditAction.USER_CREATE, "user:admin", {"role": "admin"})
    log.append("admin", AuditAction.LOGIN_SUCCESS, "user:admin", {"remote_addr": "10.0.0.5"})
    log.append("mallory", AuditAction.LOGIN_FAILURE, "user:mallory", {"reason": "wrong password"})
    log.append("alice", AuditAction.UNMASK_START, "camera:door", {"reason": "case 2024-17"})
    log.append("alice", AuditAction.DECRYPT, "camera:door", {"segments": 3})
    for k in range(5, n):
        log.append("admin", AuditAction.CONFIG_CHANGE, "camera:door", {"k": k})


def _edit(db: Database, sql: str, *params: object) -> None:
    """Change the database behind Veil's back, as an attacker with file access would."""
    conn = sqlite3.connect(db.path)
    try:
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


def test_chain_verifies_and_links(db: Database) -> None:
    log = AuditLog(db, clock=FakeClock())
    _fill(log)
    result = log.verify_chain()
    assert result.ok, result.problem
    assert result.entries == 6
    entries = log.entries(newest_first=False)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    head = log.head()
    assert head is not None
    assert result.head_hash == head.hash
    assert "intact: 6 entries" in str(result)


def test_hash_is_sha256_of_previous_hash_and_canonical_json(db: Database) -> None:
    log = AuditLog(db, clock=FakeClock())
    entry = log.append("alice", AuditAction.EXPORT, "camera:door", {"b": 1, "a": "ü"})
    body = canonical_json(
        {
            "seq": 1,
            "time": "2026-11-25T08:00:01.000000Z",
            "actor": "alice",
            "action": "export",
            "target": "camera:door",
            "details": {"a": "ü", "b": 1},
        }
    )
    expected = hashlib.sha256(bytes.fromhex(GENESIS_HASH) + body.encode()).hexdigest()
    assert entry.hash == expected


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("details", '{"reason":"nothing to see"}'),
        ("actor", "bob"),
        ("action", "login.success"),
        ("target", "camera:yard"),
        ("time", "2026-11-25T09:00:00.000000Z"),
        ("details", '{"reason": "case 2024-17"}'),  # same meaning, different bytes
    ],
)
def test_edited_entry_is_named(db: Database, column: str, value: str) -> None:
    log = AuditLog(db, clock=FakeClock())
    _fill(log)
    _edit(db, f"UPDATE audit_log SET {column} = ? WHERE seq = 4", value)
    result = log.verify_chain()
    assert not result.ok
    assert result.first_bad_seq == 4
    assert result.problem is not None
    assert "entry 4 was changed" in result.problem
    with pytest.raises(AuditChainError, match="entry 4"):
        result.raise_if_broken()


def test_deleted_entry_is_named(db: Database) -> None:
    log = AuditLog(db, clock=FakeClock())
    _fill(log)
    _edit(db, "DELETE FROM audit_log WHERE seq = 3")
    result = log.verify_chain()
    assert not result.ok
    assert result.first_bad_seq == 3
    assert result.problem is not None
    assert "entry 3 is missing" in result.problem


def test_deleted_first_entry_is_detected(db: Database) -> None:
    log = AuditLog(db, clock=FakeClock())
    _fill(log)
    _edit(db, "DELETE FROM audit_log WHERE seq = 1")
    result = log.verify_chain()
    assert (result.ok, result.first_bad_seq) == (False, 1)


def test_deletion_hidden_by_renumbering_is_detected(db: Database) -> None:
    log = AuditLog(db, clock=FakeClock())
    _fill(log)
    _edit(db, "DELETE FROM audit_log WHERE seq = 3")
    _edit(db, "UPDATE audit_log SET seq = seq - 1 WHERE seq > 3")
    result = log.verify_chain()
    assert (result.ok, result.first_bad_seq) == (False, 3)


def test_reordered_entries_are_detected(db: Database) -> None:
    log = AuditLog(db, clock=FakeClock())
    _fill(log)
    _edit(db, "UPDATE audit_log SET seq = -1 WHERE seq = 2")
    _edit(db, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    _edit(db, "UPDATE audit_log SET seq = 3 WHERE seq = -1")
    result = log.verify_chain()
    assert (result.ok, result.first_bad_seq) == (False, 2)


def _rewrite(db: Database, log: AuditLog, seq: int, actor: str, key: bytes | None) -> None:
    """Rewrite an entry and recompute its own hash, as an attacker who knows the scheme."""
    conn = sqlite3.connect(db.path)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM audit_log WHERE seq = ?", (seq,)).fetchone()
        digest = _entry_digest(
            row["prev_hash"], seq, row["time"], actor, row["action"], row["target"],
            json.loads(row["details"]), key,
        )  # fmt: skip
        conn.execute("UPDATE audit_log SET actor = ?, hash = ? WHERE seq = ?", (actor, digest, seq))
        conn.commit()
    finally:
        conn.close()


def test_rewrite_with_recomputed_hash_breaks_the_next_link(db: Database) -> None:
    log = AuditLog(db, clock=FakeClock())
    _fill(log)
    _rewrite(db, log, 4, "bob", None)
    result = log.verify_chain()
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert result.problem is not None
    assert "entry 4 was rewritten" in result.problem


def test_tail_deletion_needs_an_anchor(db: Database) -> None:
    log = AuditLog(db, clock=FakeClock())
    _fill(log)
    head = log.head()
    assert head is not None
    _edit(db, "DELETE FROM audit_log WHERE seq = 6")
    assert log.verify_chain().ok  # a plain chain cannot see its own end cut off
    result = log.verify_chain(expected_head=(head.seq, head.hash))
    assert (result.ok, result.first_bad_seq) == (False, 6)
    assert result.problem is not None
    assert "newest entries were deleted" in result.problem


def test_hmac_chain_resists_an_attacker_without_the_key(db: Database) -> None:
    key = os.urandom(32)
    log = AuditLog(db, hmac_key=key, clock=FakeClock())
    _fill(log)
    assert log.verify_chain().ok
    assert log.verify_chain().keyed
    # Recomputing the rewritten entry and every later one, without the key, still fails.
    for seq in range(4, 7):
        _rewrite(db, log, seq, "bob" if seq == 4 else "admin", os.urandom(32))
    result = log.verify_chain()
    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_plain_chain_can_be_recomputed_by_an_attacker(db: Database) -> None:
    """Documents the limit of the unkeyed chain (why the HMAC key exists)."""
    log = AuditLog(db, clock=FakeClock())
    _fill(log)
    rows: list[sqlite3.Row]
    conn = sqlite3.connect(db.path)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("UPDATE audit_log SET actor = 'bob' WHERE seq = 4")
        rows = conn.execute("SELECT * FROM audit_log ORDER BY seq").fetchall()
        prev = GENESIS_HASH
        for row in rows:
            digest = _entry_digest(
                prev, row["seq"], row["time"], row["actor"], row["action"], row["target"],
                json.loads(row["details"]), None,
            )  # fmt: skip
            conn.execute(
                "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?",
                (prev, digest, row["seq"]),
            )
            prev = digest
        conn.commit()
    finally:
        conn.close()
    assert log.verify_chain().ok


def test_keyed_log_needs_its_key(db: Database) -> None:
    key = os.urandom(32)
    AuditLog(db, hmac_key=key, clock=FakeClock()).append("a", "x")
    unkeyed = AuditLog(db)
    result = unkeyed.verify_chain()
    assert not result.ok
    assert result.problem is not None
    assert "HMAC-keyed" in result.problem
    with pytest.raises(AuditChainError, match="HMAC-keyed"):
        unkeyed.append("a", "y")
    wrong = AuditLog(db, hmac_key=os.urandom(32))
    assert "not the key" in (wrong.verify_chain().problem or "")
    with pytest.raises(AuditChainError, match="not the key"):
        wrong.append("a", "y")


def test_key_cannot_be_added_to_an_unkeyed_log(db: Database) -> None:
    AuditLog(db).append("a", "x")
    with pytest.raises(AuditChainError, match="started without an HMAC key"):
        AuditLog(db, hmac_key=os.urandom(32)).append("a", "y")


def test_short_key_is_refused(db: Database) -> None:
    with pytest.raises(AuditChainError, match="at least 32 bytes"):
        AuditLog(db, hmac_key=b"short")


def test_entry_commits_and_rolls_back_with_the_change(db: Database) -> None:
    log = AuditLog(db, clock=FakeClock())

    def failing_change() -> None:
        with db.transaction():
            log.append("admin", AuditAction.USER_DELETE, "user:bob")
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError, match="the change failed"):
        failing_change()
    assert log.entries() == []
    with db.transaction():
        log.append("admin", AuditAction.USER_DELETE, "user:bob")
    assert [e.action for e in log.entries()] == ["user.delete"]


def test_nested_transaction_is_a_savepoint(db: Database) -> None:
    log = AuditLog(db, clock=FakeClock())
    with db.transaction():
        log.append("admin", "outer.before")
        with pytest.raises(RuntimeError), db.transaction():  # noqa: PT012
            log.append("admin", "inner")
            raise RuntimeError("inner step failed")
        log.append("admin", "outer.after")
    assert [e.action for e in log.entries(newest_first=False)] == ["outer.before", "outer.after"]
    assert log.verify_chain().ok


def test_killed_writer_leaves_an_intact_database(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from veil.vault.audit import AuditLog
        from veil.vault.db import Database
        db = Database.in_folder(Path({str(folder)!r}))
        log = AuditLog(db)
        for k in range(100_000):
            log.append("gateway", "frame.tick", "camera:door", {{"k": k}})
            if k == 50:
                print("ready", flush=True)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.kill()
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    database = Database.in_folder(folder)
    try:
        result = AuditLog(database).verify_chain()
        assert result.ok, result.problem
        assert result.entries > 50
        with database.reading() as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        database.close()


def test_details_must_be_json(db: Database) -> None:
    log = AuditLog(db)
    with pytest.raises(AuditChainError, match="must be JSON"):
        log.append("a", "x", "t", {"when": datetime.now(UTC)})  # type: ignore[dict-item]
    with pytest.raises(AuditChainError, match="needs an actor"):
        log.append("", "x")


def test_entries_filter_and_limit(db: Database) -> None:
    log = AuditLog(db, clock=FakeClock())
    _fill(log, 10)
    assert [e.seq for e in log.entries(limit=3)] == [10, 9, 8]
    assert [e.actor for e in log.entries(action=AuditAction.LOGIN_FAILURE)] == ["mallory"]
    assert len(log.entries(actor="alice")) == 2


def test_config_change_records_a_diff(db: Database) -> None:
    log = AuditLog(db, clock=FakeClock())
    old: dict[str, JsonValue] = {
        "masks": {"door": {"style": "fill", "margin": 4}},
        "fps": 15,
        "gone": 1,
    }
    new: dict[str, JsonValue] = {
        "masks": {"door": {"style": "blur", "margin": 4}},
        "fps": 15,
        "added": [1, 2],
    }
    entry = log.record_config_change("operator1", "camera:door", old, new)
    assert entry.action == "config.change"
    assert entry.details == {
        "changes": {
            "masks.door.style": {"old": "fill", "new": "blur"},
            "gone": {"old": 1, "new": None, "removed": True},
            "added": {"old": None, "new": [1, 2], "added": True},
        }
    }
    assert config_diff(old, old) == {}


def test_database_is_private_and_versioned(tmp_path: Path) -> None:
    database = Database.in_folder(tmp_path / "data")
    try:
        assert database.schema_version == 1
        assert (database.path.stat().st_mode & 0o777) == 0o600
        assert ((tmp_path / "data").stat().st_mode & 0o777) == 0o700
        with database.reading() as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        database.close()
    again = Database.in_folder(tmp_path / "data")  # migrating twice is a no-op
    again.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    database = Database.in_folder(tmp_path)
    database.close()
    _edit(database, "INSERT INTO schema_version VALUES (99, 'future', 'x')")
    with pytest.raises(DatabaseError, match="newer than this Veil"):
        Database.in_folder(tmp_path)


def test_readonly_database_refuses_writes_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no Veil database"):
        Database(tmp_path / "absent.db", readonly=True)
    Database.in_folder(tmp_path).close()
    database = Database(tmp_path / "veil.db", readonly=True)
    try:
        with pytest.raises(DatabaseError, match="read-only"), database.transaction():
            pass
    finally:
        database.close()


# -- command line -------------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


runner = CliRunner()


def _filled_folder(tmp_path: Path, key: bytes | None = None) -> Path:
    folder = tmp_path / "data"
    database = Database.in_folder(folder)
    try:
        _fill(AuditLog(database, hmac_key=key, clock=FakeClock()))
    finally:
        database.close()
    return folder


def test_cli_verify_ok(tmp_path: Path) -> None:
    folder = _filled_folder(tmp_path)
    for target in (folder, folder / "veil.db"):
        result = runner.invoke(_cli(), ["audit", "verify", "--db", str(target)])
        assert result.exit_code == 0, result.output
        assert "intact: 6 entries" in result.output


def test_cli_verify_names_the_edited_entry(tmp_path: Path) -> None:
    folder = _filled_folder(tmp_path)
    conn = sqlite3.connect(folder / "veil.db")
    conn.execute('UPDATE audit_log SET details = \'{"reason":"none"}\' WHERE seq = 4')
    conn.commit()
    conn.close()
    result = runner.invoke(_cli(), ["audit", "verify", "--db", str(folder)])
    assert result.exit_code == 1
    assert "entry 4 was changed" in result.output
    assert "first bad entry: 4" in result.output


def test_cli_verify_detects_deletion(tmp_path: Path) -> None:
    folder = _filled_folder(tmp_path)
    conn = sqlite3.connect(folder / "veil.db")
    conn.execute("DELETE FROM audit_log WHERE seq = 2")
    conn.commit()
    conn.close()
    result = runner.invoke(_cli(), ["audit", "verify", "--db", str(folder)])
    assert result.exit_code == 1
    assert "first bad entry: 2" in result.output


def test_cli_verify_with_head_anchor(tmp_path: Path) -> None:
    folder = _filled_folder(tmp_path)
    shown = runner.invoke(_cli(), ["audit", "show", "--db", str(folder), "--limit", "1"])
    anchor = shown.output.strip().splitlines()[-1].split()[-1]
    ok = runner.invoke(_cli(), ["audit", "verify", "--db", str(folder), "--head", anchor])
    assert ok.exit_code == 0, ok.output
    conn = sqlite3.connect(folder / "veil.db")
    conn.execute("DELETE FROM audit_log WHERE seq = 6")
    conn.commit()
    conn.close()
    cut = runner.invoke(_cli(), ["audit", "verify", "--db", str(folder), "--head", anchor])
    assert cut.exit_code == 1
    bad = runner.invoke(_cli(), ["audit", "verify", "--db", str(folder), "--head", "nonsense"])
    assert bad.exit_code == 2
    assert "SEQ:HASH" in bad.output


def test_cli_verify_keyed_log(tmp_path: Path) -> None:
    key_path = tmp_path / "keys" / "master.key"
    key_path.parent.mkdir()
    master = create_key_file(key_path)
    folder = _filled_folder(tmp_path, audit_key_from(master))
    with_key = ["audit", "verify", "--db", str(folder), "--key-file", str(key_path)]
    assert runner.invoke(_cli(), with_key).exit_code == 0
    without = runner.invoke(_cli(), ["audit", "verify", "--db", str(folder)])
    assert without.exit_code == 1
    assert "HMAC-keyed" in without.output
    assert audit_key_from(master) == MasterKey.from_key_file(key_path).hmac_key("audit-log")


def test_cli_verify_missing_database(tmp_path: Path) -> None:
    result = runner.invoke(_cli(), ["audit", "verify", "--db", str(tmp_path / "nope.db")])
    assert result.exit_code == 1
    assert "no Veil database" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_verify_does_not_create_or_change_the_database(tmp_path: Path) -> None:
    folder = _filled_folder(tmp_path)
    before = (folder / "veil.db").read_bytes()
    runner.invoke(_cli(), ["audit", "verify", "--db", str(folder)])
    assert (folder / "veil.db").read_bytes() == before


def test_cli_show(tmp_path: Path) -> None:
    folder = _filled_folder(tmp_path)
    result = runner.invoke(_cli(), ["audit", "show", "--db", str(folder), "--limit", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3
    assert "config.change" in lines[0]
    assert "segment.decrypt" in lines[1]
    assert lines[2].startswith("head (anchor for --head): 6:")
    as_json = runner.invoke(_cli(), ["audit", "show", "--db", str(folder), "--json", "-n", "1"])
    record = json.loads(as_json.output)
    assert (record["seq"], record["action"]) == (6, "config.change")
    filtered = runner.invoke(
        _cli(), ["audit", "show", "--db", str(folder), "--action", "login.failure"]
    )
    assert "mallory" in filtered.output
    assert "head" not in filtered.output


def test_show_escapes_control_characters(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    database = Database.in_folder(folder)
    try:
        AuditLog(database).append("\x1b[2Jevil\u202e", "login.failure", "user:x")
    finally:
        database.close()
    result = runner.invoke(_cli(), ["audit", "show", "--db", str(folder)])
    assert "\x1b" not in result.output
    assert "\\x1b[2Jevil\\u202e" in result.output
    as_json = runner.invoke(_cli(), ["audit", "show", "--db", str(folder), "--json"])
    assert "\x1b" not in as_json.output
    assert json.loads(as_json.output)["actor"] == "\x1b[2Jevil\u202e"


def test_cli_verify_keyed_log_with_passphrase(tmp_path: Path) -> None:
    params = tmp_path / "key-params.json"
    fast = KdfParams(time_cost=1, memory_kib=1024, parallelism=1)
    master = create_passphrase_key(params, "correct horse battery staple", fast)
    folder = _filled_folder(tmp_path, audit_key_from(master))
    args = ["audit", "verify", "--db", str(folder), "--key-params", str(params)]
    good = runner.invoke(_cli(), args, env={"VEIL_PASSPHRASE": "correct horse battery staple"})
    assert good.exit_code == 0, good.output
    assert "HMAC-SHA256" in good.output
    bad = runner.invoke(_cli(), args, env={"VEIL_PASSPHRASE": "wrong horse"})
    assert bad.exit_code == 1
    assert "wrong passphrase" in bad.output
    both = runner.invoke(_cli(), [*args, "--key-file", str(params)])
    assert both.exit_code == 2
