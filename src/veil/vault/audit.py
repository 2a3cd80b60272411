"""An append-only audit log that cannot be rewritten unnoticed.

Each entry (seq, time, actor, action, target, details) is stored in the ``audit_log`` table with
``hash = H(previous entry's hash || canonical JSON of this entry)``; the first entry links to
64 zeros. :meth:`AuditLog.verify_chain` recomputes the chain and names the first entry that
was changed, deleted or reordered.

What each mode protects against:

* **Plain SHA-256 chain** (no key): accidental corruption, and anyone who edits or deletes
  rows with a database tool without recomputing every later hash. It does *not* stop an
  attacker with write access who knows the scheme: they can rewrite an entry and recompute the
  hashes of all that follow.
* **HMAC-SHA256 chain** (``hmac_key``): the hash of each entry is an HMAC under a key kept
  outside the database (a key file, or derived from the master key). An attacker with write
  access to the database but not the key cannot produce valid hashes, so any edit, insertion,
  deletion or reordering is detected.
* **Neither** detects deletion of the newest entries (the chain simply ends earlier), nor an
  attacker who holds the key. For that, copy :meth:`AuditLog.head` somewhere else now and then
  (a syslog server, a printed report) and pass it to ``verify_chain(expected_head=...)``.

The log is written by its callers: the user store records logins, failures, user changes and
unmask grants in the same transaction as the change itself; the gateway records configuration
changes (:func:`config_diff`), decryptions and exports.

Example::

    log = AuditLog(db)
    log.append("alice", AuditAction.EXPORT, "camera:door", {"segments": 3, "case": "2024-17"})
    assert log.verify_chain().ok
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeAlias

from veil.core.errors import VeilError
from veil.vault.db import Clock, Database, from_db_time, to_db_time, utc_now
from veil.vault.keys import MasterKey

__all__ = [
    "GENESIS_HASH",
    "AuditAction",
    "AuditChainError",
    "AuditEntry",
    "AuditLog",
    "AuditVerification",
    "JsonValue",
    "audit_key_from",
    "canonical_json",
    "config_diff",
    "printable",
]

JsonValue: TypeAlias = (
    bool | int | float | str | Sequence["JsonValue"] | Mapping[str, "JsonValue"] | None
)

GENESIS_HASH = "0" * 64
_KEY_CHECK_CONSTANT = b"veil audit key check v1"
AUDIT_KEY_PURPOSE = "audit-log"


def audit_key_from(master_key: MasterKey) -> bytes:
    """The audit log's HMAC key, derived from a master key (or a key file of its own).

    Derived, not the master key itself: the audit key never wraps data keys.
    """
    return master_key.hmac_key(AUDIT_KEY_PURPOSE)


class AuditChainError(VeilError):
    """The audit log was altered, or cannot be checked (missing or wrong key)."""

    exit_code = 1


class AuditAction(StrEnum):
    """What an audit entry records. Free-form actions are allowed; these are the usual ones."""

    LOGIN_SUCCESS = "login.success"
    LOGIN_FAILURE = "login.failure"
    LOGIN_THROTTLED = "login.throttled"
    LOGOUT = "logout"
    CONFIG_CHANGE = "config.change"
    UNMASK_REQUEST = "unmask.request"
    UNMASK_APPROVE = "unmask.approve"
    UNMASK_DENY = "unmask.deny"
    UNMASK_START = "unmask.start"
    UNMASK_END = "unmask.end"
    DECRYPT = "segment.decrypt"
    EXPORT = "export"
    USER_CREATE = "user.create"
    USER_UPDATE = "user.update"
    USER_DELETE = "user.delete"
    PASSWORD_CHANGE = "user.password"
    TOKEN_CREATE = "token.create"
    TOKEN_REVOKE = "token.revoke"
    PERMISSION_DENIED = "permission.denied"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no spaces, UTF-8 kept, NaN refused: one text per value."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit record. ``hash`` chains it to the entry before (``prev_hash``)."""

    seq: int
    time: datetime
    actor: str
    action: str
    target: str
    details: Mapping[str, JsonValue]
    prev_hash: str
    hash: str

    def summary(self) -> str:
        """One line for a terminal; control characters (from attacker-chosen usernames, say)
        are shown escaped, never sent to the terminal."""
        details = canonical_json(self.details) if self.details else ""
        line = (
            f"{self.seq:>6}  {to_db_time(self.time)}  {self.actor}  {self.action}  "
            f"{self.target}  {details}"
        ).rstrip()
        return printable(line)


def printable(text: str) -> str:
    """``text`` with non-printable characters written as escapes (``\\x1b``)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """The result of :meth:`AuditLog.verify_chain`. ``first_bad_seq`` names the culprit."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head_hash: str | None = None
    keyed: bool = False

    def __str__(self) -> str:
        mode = "HMAC-SHA256" if self.keyed else "SHA-256"
        if self.ok:
            return f"audit log intact: {self.entries} entries ({mode} chain), head {self.head_hash}"
        return f"audit log NOT intact: {self.problem}"

    def raise_if_broken(self) -> None:
        """Raise :class:`AuditChainError` when the chain is broken."""
        if not self.ok:
            raise AuditChainError(
                self.problem or "the audit chain is broken",
                hint="keep the database for investigation and restore from a backup",
            )


def _entry_digest(
    prev_hash: str,
    seq: int,
    time_text: str,
    actor: str,
    action: str,
    target: str,
    details: Any,
    key: bytes | None,
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "time": time_text,
            "actor": actor,
            "action": action,
            "target": target,
            "details": details,
        }
    ).encode("utf-8")
    message = bytes.fromhex(prev_hash) + body
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class AuditLog:
    """The audit log in ``db``. Pass ``hmac_key`` (32+ bytes, kept outside the database) to
    make the chain unforgeable by someone who can only write the database.

    A log started with a key must always be opened with it (and one started without a key
    cannot later gain one): the key's check value is stored on the first append.
    """

    def __init__(
        self, db: Database, *, hmac_key: bytes | None = None, clock: Clock = utc_now
    ) -> None:
        if hmac_key is not None and len(hmac_key) < 32:
            raise AuditChainError(
                f"the audit HMAC key must be at least 32 bytes, got {len(hmac_key)}",
                hint="use a key file made by veil.vault.keys.create_key_file",
            )
        self._db = db
        self._key = hmac_key
        self._clock = clock

    @property
    def keyed(self) -> bool:
        return self._key is not None

    def _key_check(self) -> str | None:
        if self._key is None:
            return None
        return hmac.new(self._key, _KEY_CHECK_CONSTANT, hashlib.sha256).hexdigest()

    def _stored_check(self) -> tuple[bool, str | None]:
        """(log has entries, stored key check value or None)."""
        with self._db.reading() as conn:
            row = conn.execute("SELECT value FROM audit_meta WHERE name = 'hmac_check'").fetchone()
            has_entries = conn.execute("SELECT 1 FROM audit_log LIMIT 1").fetchone() is not None
        return has_entries, (str(row[0]) if row is not None else None)

    def _mode_problem(self) -> str | None:
        has_entries, stored = self._stored_check()
        mine = self._key_check()
        if stored is None:
            if mine is not None and has_entries:
                return (
                    "this audit log was started without an HMAC key (or its key record was "
                    "deleted), but a key was given"
                )
            return None
        if mine is None:
            return "this audit log is HMAC-keyed; it cannot be checked or extended without its key"
        if not hmac.compare_digest(stored, mine):
            return "the audit HMAC key given is not the key this log was written with"
        return None

    # -- writing ----------------------------------------------------------------------------

    def append(
        self,
        actor: str,
        action: AuditAction | str,
        target: str = "",
        details: Mapping[str, JsonValue] | None = None,
    ) -> AuditEntry:
        """Add an entry (inside the caller's transaction when there is one)."""
        if not actor:
            raise AuditChainError("an audit entry needs an actor", hint="name who acted")
        if not str(action):
            raise AuditChainError("an audit entry needs an action", hint="say what happened")
        try:
            details_text = canonical_json(dict(details or {}))
        except (TypeError, ValueError) as error:
            raise AuditChainError(
                f"audit details must be JSON (strings, numbers, lists, objects): {error}",
                hint="convert values such as datetimes and paths to strings first",
            ) from error
        details_value = json.loads(details_text)
        moment = self._clock()
        time_text = to_db_time(moment)
        with self._db.transaction() as conn:
            problem = self._mode_problem()
            if problem is not None:
                raise AuditChainError(
                    problem, hint="open the audit log with the key it was started with"
                )
            if self._key is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO audit_meta (name, value) VALUES ('hmac_check', ?)",
                    (self._key_check(),),
                )
            last = conn.execute(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq = 1 if last is None else int(last["seq"]) + 1
            prev = GENESIS_HASH if last is None else str(last["hash"])
            digest = _entry_digest(
                prev, seq, time_text, actor, str(action), target, details_value, self._key
            )
            conn.execute(
                "INSERT INTO audit_log (seq, time, actor, action, target, details, prev_hash,"
                " hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, time_text, actor, str(action), target, details_text, prev, digest),
            )
        return AuditEntry(
            seq=seq,
            time=from_db_time(time_text),
            actor=actor,
            action=str(action),
            target=target,
            details=details_value,
            prev_hash=prev,
            hash=digest,
        )

    def record_config_change(
        self,
        actor: str,
        target: str,
        old: Mapping[str, JsonValue],
        new: Mapping[str, JsonValue],
    ) -> AuditEntry:
        """Record a configuration change with the list of what changed (see config_diff)."""
        return self.append(
            actor, AuditAction.CONFIG_CHANGE, target, {"changes": config_diff(old, new)}
        )

    # -- reading ----------------------------------------------------------------------------

    def entries(
        self,
        *,
        limit: int | None = None,
        newest_first: bool = True,
        action: AuditAction | str | None = None,
        actor: str | None = None,
    ) -> list[AuditEntry]:
        """Entries, newest first by default, optionally filtered (not verified: see below)."""
        clauses: list[str] = []
        params: list[Any] = []
        if action is not None:
            clauses.append("action = ?")
            params.append(str(action))
        if actor is not None:
            clauses.append("actor = ?")
            params.append(actor)
        sql = "SELECT * FROM audit_log"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY seq " + ("DESC" if newest_first else "ASC")
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, limit))
        with self._db.reading() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_row_entry(row) for row in rows]

    def head(self) -> AuditEntry | None:
        """The newest entry: copy its seq and hash elsewhere to anchor the chain."""
        newest = self.entries(limit=1)
        return newest[0] if newest else None

    def verify_chain(self, *, expected_head: tuple[int, str] | None = None) -> AuditVerification:
        """Recompute the chain; name the first changed, deleted or reordered entry.

        ``expected_head`` is a (seq, hash) pair recorded earlier outside the database; it
        also catches deletion of the newest entries.
        """
        keyed = self._key is not None
        problem = self._mode_problem()
        if problem is not None:
            return AuditVerification(False, 0, None, problem, None, keyed)
        count = 0
        prev_hash = GENESIS_HASH
        expected_seq = 1
        anchor_seen = False
        with self._db.reading() as conn:
            cursor = conn.execute(
                "SELECT seq, time, actor, action, target, details, prev_hash, hash"
                " FROM audit_log ORDER BY seq"
            )
            for row in cursor:
                seq = int(row["seq"])
                bad = self._check_row(row, seq, expected_seq, prev_hash)
                if bad is not None:
                    return AuditVerification(False, count, bad[0], bad[1], None, keyed)
                count += 1
                prev_hash = str(row["hash"])
                expected_seq = seq + 1
                if expected_head is not None and seq == expected_head[0]:
                    anchor_seen = True
                    if not hmac.compare_digest(prev_hash, expected_head[1]):
                        return AuditVerification(
                            False,
                            count,
                            seq,
                            f"entry {seq} does not have the anchored hash {expected_head[1]}: "
                            f"the log was rewritten up to entry {seq}",
                            None,
                            keyed,
                        )
        if expected_head is not None and not anchor_seen:
            return AuditVerification(
                False,
                count,
                expected_head[0],
                f"entry {expected_head[0]} (the anchored head) is missing: the newest "
                f"entries were deleted; the log now ends at entry {expected_seq - 1}",
                None,
                keyed,
            )
        return AuditVerification(True, count, None, None, prev_hash if count else None, keyed)

    def _check_row(
        self, row: Any, seq: int, expected_seq: int, prev_hash: str
    ) -> tuple[int, str] | None:
        if seq != expected_seq:
            missing = (
                f"entry {expected_seq} is missing"
                if seq == expected_seq + 1
                else f"entries {expected_seq} to {seq - 1} are missing"
            )
            return (
                expected_seq,
                f"{missing} (deleted): the log jumps from {expected_seq - 1} to {seq}",
            )
        if str(row["prev_hash"]) != prev_hash:
            if seq == 1:
                return seq, "entry 1 does not start the chain: earlier entries were deleted"
            return seq, (
                f"entry {seq} does not follow entry {seq - 1}: entry {seq - 1} was rewritten "
                f"(its hash recomputed), or entries were deleted or reordered here"
            )
        details_text = row["details"]
        try:
            details = json.loads(details_text)
            canonical = canonical_json(details) == details_text
        except (TypeError, ValueError):
            canonical = False
        if not canonical or not isinstance(details, dict):
            return seq, f"entry {seq} was changed: its details are not the JSON that was written"
        try:
            digest = _entry_digest(
                prev_hash,
                seq,
                str(row["time"]),
                str(row["actor"]),
                str(row["action"]),
                str(row["target"]),
                details,
                self._key,
            )
        except ValueError:
            return seq, f"entry {seq} was changed: its previous-hash field is not a hash"
        if not hmac.compare_digest(digest, str(row["hash"])):
            return seq, f"entry {seq} was changed after it was written (its hash does not match)"
        return None


def _row_entry(row: Any) -> AuditEntry:
    try:
        details = json.loads(row["details"])
    except (TypeError, ValueError):
        details = {"unreadable": str(row["details"])}
    try:
        moment = from_db_time(str(row["time"]))
    except ValueError:
        moment = datetime.min
    return AuditEntry(
        seq=int(row["seq"]),
        time=moment,
        actor=str(row["actor"]),
        action=str(row["action"]),
        target=str(row["target"]),
        details=details if isinstance(details, dict) else {"value": details},
        prev_hash=str(row["prev_hash"]),
        hash=str(row["hash"]),
    )


def config_diff(
    old: Mapping[str, JsonValue], new: Mapping[str, JsonValue], *, prefix: str = ""
) -> dict[str, JsonValue]:
    """What changed between two configurations, as ``{"a.b": {"old": x, "new": y}}``.

    Nested mappings are compared key by key; lists and scalars as a whole. A key only in
    ``old`` has ``new: None`` and ``removed: True``; one only in ``new`` has ``added: True``.
    """
    changes: dict[str, JsonValue] = {}
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        if key not in new:
            changes[path] = {"old": old[key], "new": None, "removed": True}
        elif key not in old:
            changes[path] = {"old": None, "new": new[key], "added": True}
        else:
            before, after = old[key], new[key]
            if isinstance(before, Mapping) and isinstance(after, Mapping):
                changes.update(config_diff(before, after, prefix=f"{path}."))
            elif canonical_json(before) != canonical_json(after):
                changes[path] = {"old": before, "new": after}
    return changes
