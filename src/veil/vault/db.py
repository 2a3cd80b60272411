"""The gateway's SQLite database: one file in the data folder, migrated by version.

The database holds users, sessions, API tokens, unmask grants, login throttling state and the
audit log. It runs in WAL mode (readers never block the writer, and a killed process loses no
committed transaction) with a busy timeout, so several threads and processes can share it.

Every write goes through :meth:`Database.transaction`, which takes SQLite's write lock up front
(``BEGIN IMMEDIATE``) and nests: an audit entry appended inside a user change commits, or rolls
back, together with that change.

Example::

    db = Database.in_folder(Path("data"))
    with db.transaction() as conn:
        conn.execute("INSERT INTO ...")
    db.close()
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from veil.core.errors import VeilError
from veil.core.resources import Closing

__all__ = [
    "DB_FILENAME",
    "MIGRATIONS",
    "Clock",
    "Database",
    "DatabaseError",
    "Migration",
    "from_db_time",
    "to_db_time",
    "utc_now",
]

DB_FILENAME = "veil.db"

Clock = Callable[[], datetime]
"""A source of the current time (timezone-aware UTC). Tests inject a fake one."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def to_db_time(moment: datetime) -> str:
    """Store a time as sortable ISO 8601 UTC text with microseconds (``...T08:31:04.000123Z``)."""
    if moment.tzinfo is None:
        raise ValueError(f"time {moment!r} has no timezone; pass an aware UTC datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_db_time(text: str) -> datetime:
    """Read a time written by :func:`to_db_time`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class DatabaseError(VeilError):
    """The database cannot be opened, is from a newer Veil, or a statement failed."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step. ``version`` numbers are consecutive from 1."""

    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users, sessions, API tokens, login throttling, unmask grants, audit log",
        """
        CREATE TABLE users (
            id            INTEGER PRIMARY KEY,
            username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
            password_hash TEXT NOT NULL,
            role          TEXT NOT NULL,
            disabled      INTEGER NOT NULL DEFAULT 0,
            created_at    TEXT NOT NULL,
            updated_at    TEXT NOT NULL
        );
        CREATE TABLE sessions (
            token_hash  TEXT PRIMARY KEY,
            user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            csrf_token  TEXT NOT NULL,
            created_at  TEXT NOT NULL,
            last_seen   TEXT NOT NULL,
            expires_at  TEXT NOT NULL,
            remote_addr TEXT
        );
        CREATE INDEX sessions_user ON sessions(user_id);
        CREATE TABLE api_tokens (
            id          INTEGER PRIMARY KEY,
            user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name        TEXT NOT NULL,
            token_hash  TEXT NOT NULL UNIQUE,
            scopes      TEXT,
            created_at  TEXT NOT NULL,
            expires_at  TEXT,
            last_used   TEXT,
            revoked_at  TEXT
        );
        CREATE TABLE login_failures (
            key          TEXT PRIMARY KEY,
            failures     INTEGER NOT NULL,
            last_failure TEXT NOT NULL,
            locked_until TEXT
        );
        CREATE TABLE unmask_grants (
            id           INTEGER PRIMARY KEY,
            user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            camera_id    TEXT NOT NULL,
            reason       TEXT NOT NULL CHECK (length(trim(reason)) > 0),
            status       TEXT NOT NULL,
            duration_s   INTEGER NOT NULL,
            requested_at TEXT NOT NULL,
            approver_id  INTEGER REFERENCES users(id) ON DELETE SET NULL,
            approved_at  TEXT,
            starts_at    TEXT,
            expires_at   TEXT,
            ended_at     TEXT
        );
        CREATE INDEX unmask_grants_user_camera ON unmask_grants(user_id, camera_id, status);
        CREATE TABLE audit_log (
            seq       INTEGER PRIMARY KEY,
            time      TEXT NOT NULL,
            actor     TEXT NOT NULL,
            action    TEXT NOT NULL,
            target    TEXT NOT NULL,
            details   TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash      TEXT NOT NULL
        );
        CREATE TABLE audit_meta (
            name  TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    ),
)


def _check_migrations(migrations: tuple[Migration, ...]) -> None:
    expected = list(range(1, len(migrations) + 1))
    got = [m.version for m in migrations]
    if got != expected:
        raise DatabaseError(f"migration versions must be {expected}, got {got}")


_check_migrations(MIGRATIONS)


class Database(Closing):
    """A connection to Veil's SQLite database, safe to share between threads.

    ``readonly=True`` opens an existing file without migrating it (for ``veil audit``);
    otherwise the file is created with 0600 permissions and migrated to the latest version.
    ``busy_timeout_s`` trades waiting against failing when another process holds the write lock.
    """

    def __init__(
        self,
        path: Path,
        *,
        readonly: bool = False,
        busy_timeout_s: float = 5.0,
        migrations: tuple[Migration, ...] = MIGRATIONS,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._depth = 0
        if readonly:
            if not self.path.is_file():
                raise DatabaseError(
                    f"no Veil database at {self.path}",
                    hint="pass --db the database file or the gateway's data folder",
                )
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
        else:
            if not self.path.parent.is_dir():
                raise DatabaseError(
                    f"the folder {self.path.parent} for the database does not exist",
                    hint="create it, or use Database.in_folder() which does",
                )
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            uri = self.path.resolve().as_uri()
        try:
            self._conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise DatabaseError(
                f"cannot open the database {self.path}: {error}",
                hint="check the path and its permissions",
            ) from error
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                self._conn.execute("PRAGMA journal_mode = WAL")
                # FULL: a committed audit entry survives a power cut, not just a killed process.
                self._conn.execute("PRAGMA synchronous = FULL")
                self._migrate(migrations)
            else:
                self._check_version(migrations)
        except sqlite3.DatabaseError as error:
            self._conn.close()
            raise DatabaseError(
                f"{self.path} is not a usable Veil database: {error}",
                hint="point --db at the gateway's veil.db, or restore it from a backup",
            ) from error
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def in_folder(cls, data_dir: Path, *, busy_timeout_s: float = 5.0) -> Database:
        """Open (creating if needed, with 0700 permissions) ``data_dir/veil.db``."""
        data_dir = Path(data_dir)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(data_dir / DB_FILENAME, busy_timeout_s=busy_timeout_s)

    @staticmethod
    def resolve_path(path: Path) -> Path:
        """A database file for ``path``: the file itself, or ``veil.db`` inside a folder."""
        path = Path(path)
        return path / DB_FILENAME if path.is_dir() else path

    # -- schema -----------------------------------------------------------------------------

    def _read_version(self) -> int:
        exists = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if exists is None:
            return 0
        row = self._conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _check_version(self, migrations: tuple[Migration, ...]) -> int:
        version = self._read_version()
        if version > len(migrations):
            raise DatabaseError(
                f"the database {self.path} has schema version {version}, newer than this "
                f"Veil knows ({len(migrations)})",
                hint="upgrade Veil to the version that wrote it",
            )
        if self.readonly and version == 0:
            raise DatabaseError(
                f"{self.path} is not a Veil database (it has no schema_version table)",
                hint="pass --db the gateway's veil.db or its data folder",
            )
        return version

    def _migrate(self, migrations: tuple[Migration, ...]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    " version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
                    " applied_at TEXT NOT NULL)"
                )
                version = self._check_version(migrations)
                for migration in migrations[version:]:
                    for statement in _split_sql(migration.sql):
                        self._conn.execute(statement)
                    self._conn.execute(
                        "INSERT INTO schema_version (version, description, applied_at)"
                        " VALUES (?, ?, ?)",
                        (migration.version, migration.description, to_db_time(utc_now())),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        """The version of the newest migration applied."""
        with self._lock:
            return self._read_version()

    # -- access -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed when the block ends and rolled back if it raises.

        A nested call is a savepoint inside the outer transaction: if the inner block
        raises, only its changes are undone, and nothing is committed until the outer ends.
        """
        if self.readonly:
            raise DatabaseError(
                f"the database {self.path} was opened read-only",
                hint="open it without readonly=True to change it",
            )
        with self._lock:
            depth = self._depth
            begin, commit, rollback = (
                ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
                if depth == 0
                else (f"SAVEPOINT s{depth}", f"RELEASE s{depth}", f"ROLLBACK TO s{depth}")
            )
            try:
                self._conn.execute(begin)
            except sqlite3.OperationalError as error:
                raise DatabaseError(
                    f"cannot start a write to {self.path}: {error}",
                    hint="another process holds the database's write lock; retry, or stop it",
                ) from error
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute(rollback)
                if depth:
                    self._conn.execute(f"RELEASE s{depth}")
                raise
            else:
                try:
                    self._conn.execute(commit)
                except sqlite3.Error as error:
                    if depth == 0 and self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise DatabaseError(
                        f"cannot commit to {self.path}: {error}",
                        hint="check free disk space and the database's permissions",
                    ) from error
            finally:
                self._depth = depth

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads (serialised with writers of this process)."""
        with self._lock:
            yield self._conn

    def close(self) -> None:
        """Close the connection. Committed data is on disk."""
        with self._lock:
            self._conn.close()


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        raise DatabaseError(f"unterminated SQL statement in a migration: {current.strip()!r}")
    return statements
