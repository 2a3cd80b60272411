"""Who may do what: users, roles, logins, sessions, API tokens and unmask grants.

Roles are cumulative, each adding permission *scopes* to the one below::

    viewer        view                     masked live video and masked recordings
    operator      + configure              masks and settings
    investigator  + unmask, export         the original video, with a reason; exports
    admin         + manage_users           users, roles and tokens

The gateway authenticates a request into a :class:`Principal` (from a session cookie or an API
token) and asks :func:`require` for a scope; the stores below check scopes too, so a handler
that forgets cannot change users or unmask. Every login, failure, user change and unmask step
is written to the audit log in the same transaction as the change.

Passwords are hashed with Argon2id (``argon2.PasswordHasher``); a hash made with older
parameters is replaced on the next successful login. After ``max_failures_per_user`` failures
for one username (or ``max_failures_per_address`` from one address) further attempts are
refused for a delay that doubles with each failure, up to ``lockout_max``; unknown usernames
are throttled and hashed exactly like real ones, so responses do not reveal which exist.

Example::

    users = Users(db, AuditLog(db))
    first_password = users.ensure_admin()          # printed once on first run
    sessions = Sessions(users)
    new = sessions.login("admin", first_password, remote_addr="10.0.0.5")
    session = sessions.resolve(new.token)          # on every request (cookie value)
    sessions.check_csrf(session, form_csrf_token)  # on every change
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import re
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from veil.core.errors import VeilError
from veil.vault.audit import AuditAction, AuditLog, JsonValue
from veil.vault.db import Clock, Database, from_db_time, to_db_time, utc_now

__all__ = [
    "ROLE_SCOPES",
    "ApiToken",
    "ApiTokens",
    "AuthError",
    "AuthMethod",
    "AuthSettings",
    "CsrfError",
    "GrantStatus",
    "LoginThrottledError",
    "NewApiToken",
    "NewSession",
    "PermissionDeniedError",
    "Principal",
    "Role",
    "Scope",
    "Session",
    "SessionExpiredError",
    "Sessions",
    "UnmaskError",
    "UnmaskGrant",
    "UnmaskGrants",
    "User",
    "UserError",
    "UserNotFoundError",
    "Users",
    "require",
]


# -- errors ---------------------------------------------------------------------------------


class AuthError(VeilError):
    """Authentication failed: bad credentials, expired session, unknown token."""

    exit_code = 1
    http_status = 401


class LoginThrottledError(AuthError):
    """Too many failed logins; ``retry_after`` seconds must pass before the next try."""

    http_status = 429

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class SessionExpiredError(AuthError):
    """The session ended (idle too long, past its lifetime, logged out or user disabled)."""


class CsrfError(AuthError):
    """A change came without the session's CSRF token, or with a wrong one."""

    http_status = 403


class PermissionDeniedError(VeilError, PermissionError):
    """The authenticated principal lacks the scope the action needs."""

    exit_code = 1
    http_status = 403


class UserError(VeilError, ValueError):
    """A user-management request is invalid (bad name, weak password, last admin...)."""

    exit_code = 2
    http_status = 400


class UserNotFoundError(UserError, LookupError):
    """No such user (only raised to callers already allowed to manage users)."""

    http_status = 404


class UnmaskError(VeilError, ValueError):
    """An unmask request or approval is invalid (no reason, wrong state, same approver)."""

    exit_code = 2
    http_status = 400


# -- roles and scopes -----------------------------------------------------------------------


class Scope(StrEnum):
    """A permission. Checked with :func:`require`."""

    VIEW = "view"
    CONFIGURE = "configure"
    UNMASK = "unmask"
    EXPORT = "export"
    MANAGE_USERS = "manage_users"


class Role(StrEnum):
    """A user's role; each includes the scopes of those below it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    INVESTIGATOR = "investigator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_ORDER.index(self)

    @property
    def scopes(self) -> frozenset[Scope]:
        return ROLE_SCOPES[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_ROLE_ORDER: tuple[Role, ...] = (Role.VIEWER, Role.OPERATOR, Role.INVESTIGATOR, Role.ADMIN)
_ROLE_ADDS: Mapping[Role, frozenset[Scope]] = {
    Role.VIEWER: frozenset({Scope.VIEW}),
    Role.OPERATOR: frozenset({Scope.CONFIGURE}),
    Role.INVESTIGATOR: frozenset({Scope.UNMASK, Scope.EXPORT}),
    Role.ADMIN: frozenset({Scope.MANAGE_USERS}),
}


def _cumulative() -> dict[Role, frozenset[Scope]]:
    table: dict[Role, frozenset[Scope]] = {}
    held: frozenset[Scope] = frozenset()
    for role in _ROLE_ORDER:
        held = held | _ROLE_ADDS[role]
        table[role] = held
    return table


ROLE_SCOPES: Mapping[Role, frozenset[Scope]] = MappingProxyType(_cumulative())
"""Role -> the scopes it grants (cumulative)."""


class AuthMethod(StrEnum):
    """How a principal proved who it is."""

    PASSWORD = "password"
    SESSION = "session"
    API_TOKEN = "api_token"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class User:
    """A stored user (never carries the password hash)."""

    id: int
    username: str
    role: Role
    disabled: bool
    created_at: datetime

    @property
    def scopes(self) -> frozenset[Scope]:
        return frozenset() if self.disabled else ROLE_SCOPES[self.role]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated actor: a user via session or token, or the system itself."""

    username: str
    user_id: int | None
    role: Role | None
    scopes: frozenset[Scope]
    method: AuthMethod
    token_id: int | None = None

    @classmethod
    def system(cls, name: str = "system") -> Principal:
        """Veil itself (first-run bootstrap, the command line): every scope, no user."""
        return cls(name, None, None, frozenset(Scope), AuthMethod.SYSTEM)

    @classmethod
    def for_user(
        cls,
        user: User,
        method: AuthMethod,
        *,
        scopes: Iterable[Scope] | None = None,
        token_id: int | None = None,
    ) -> Principal:
        held = user.scopes if scopes is None else user.scopes & frozenset(scopes)
        return cls(user.username, user.id, user.role, held, method, token_id)

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes

    @property
    def label(self) -> str:
        """The actor name written to the audit log."""
        if self.token_id is not None:
            return f"{self.username} (token {self.token_id})"
        return self.username


def require(
    principal: Principal, scope: Scope, *, audit: AuditLog | None = None, target: str = ""
) -> None:
    """Raise :class:`PermissionDeniedError` unless ``principal`` holds ``scope`` (audited)."""
    if principal.has(scope):
        return
    if audit is not None:
        audit.append(
            principal.label,
            AuditAction.PERMISSION_DENIED,
            target,
            {"scope": str(scope), "role": str(principal.role) if principal.role else None},
        )
    needed = min((r for r in _ROLE_ORDER if scope in ROLE_SCOPES[r]), key=lambda r: r.rank)
    raise PermissionDeniedError(
        f"{principal.username} lacks the '{scope}' permission"
        + (f" for {target}" if target else ""),
        hint=f"ask an admin for the {needed} role (or a token with the '{scope}' scope)",
    )


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Security settings. The defaults suit production; tests lower the Argon2 costs.

    Argon2 costs trade login latency and memory per login against the price of cracking a
    stolen database; 64 MiB and 3 passes follow OWASP's guidance for Argon2id. Lockout values
    trade protection against guessing for how long a mistyping user waits.
    """

    password_time_cost: int = 3
    password_memory_kib: int = 64 * 1024
    password_parallelism: int = 2
    min_password_length: int = 12
    max_password_length: int = 1024
    max_failures_per_user: int = 5
    max_failures_per_address: int = 20
    failure_window: timedelta = timedelta(minutes=15)
    lockout_base: timedelta = timedelta(seconds=5)
    lockout_max: timedelta = timedelta(minutes=15)
    session_lifetime: timedelta = timedelta(hours=12)
    session_idle_timeout: timedelta = timedelta(minutes=30)
    session_touch_interval: timedelta = timedelta(seconds=60)
    two_person_unmask: bool = False
    unmask_default_duration: timedelta = timedelta(minutes=15)
    unmask_max_duration: timedelta = timedelta(hours=4)
    unmask_approval_timeout: timedelta = timedelta(hours=1)

    def password_hasher(self) -> PasswordHasher:
        return PasswordHasher(
            time_cost=self.password_time_cost,
            memory_cost=self.password_memory_kib,
            parallelism=self.password_parallelism,
        )


# -- helpers --------------------------------------------------------------------------------

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN_PREFIX = "veil_"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _opt_time(value: object) -> datetime | None:
    return None if value is None else from_db_time(str(value))


def _user_from_row(row: sqlite3.Row) -> User:
    return User(
        id=int(row["id"]),
        username=str(row["username"]),
        role=Role(row["role"]),
        disabled=bool(row["disabled"]),
        created_at=from_db_time(row["created_at"]),
    )


# -- users ----------------------------------------------------------------------------------


class Users:
    """Users, passwords and login throttling. Shared context for the other stores."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        settings: AuthSettings | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.db = db
        self.audit = audit
        self.settings = settings or AuthSettings()
        self.clock = clock
        self._hasher = self.settings.password_hasher()
        # Verified against on unknown or disabled users, so they cost the same time.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    # -- reading ----------------------------------------------------------------------------

    def get(self, username: str) -> User | None:
        with self.db.reading() as conn:
            row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        return None if row is None else _user_from_row(row)

    def get_by_id(self, user_id: int) -> User | None:
        with self.db.reading() as conn:
            row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        return None if row is None else _user_from_row(row)

    def list_users(self) -> list[User]:
        with self.db.reading() as conn:
            rows = conn.execute("SELECT * FROM users ORDER BY username").fetchall()
        return [_user_from_row(row) for row in rows]

    def count(self) -> int:
        with self.db.reading() as conn:
            return int(conn.execute("SELECT count(*) FROM users").fetchone()[0])

    def _require_user(self, username: str) -> User:
        user = self.get(username)
        if user is None:
            raise UserNotFoundError(
                f"there is no user {username!r}", hint="check the name, or list the users"
            )
        return user

    # -- validation -------------------------------------------------------------------------

    def _check_username(self, username: str) -> None:
        if not _USERNAME.match(username):
            raise UserError(
                f"username {username!r} is not allowed",
                hint="use 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter "
                "or digit",
            )

    def _check_password(self, password: str, username: str) -> None:
        s = self.settings
        if len(password) < s.min_password_length:
            raise UserError(
                f"the password is too short ({len(password)} characters)",
                hint=f"use at least {s.min_password_length} characters; a passphrase is easiest",
            )
        if len(password) > s.max_password_length:
            raise UserError(
                f"the password is too long ({len(password)} characters)",
                hint=f"use at most {s.max_password_length} characters",
            )
        if password.casefold() == username.casefold():
            raise UserError("the password equals the username", hint="choose another password")

    # -- changes ----------------------------------------------------------------------------

    def create(self, actor: Principal, username: str, password: str, role: Role) -> User:
        """Create a user (needs ``manage_users``)."""
        require(actor, Scope.MANAGE_USERS, audit=self.audit, target=f"user:{username}")
        self._check_username(username)
        self._check_password(password, username)
        role = Role(role)
        password_hash = self._hasher.hash(password)
        now = to_db_time(self.clock())
        with self.db.transaction() as conn:
            try:
                cursor = conn.execute(
                    "INSERT INTO users (username, password_hash, role, disabled, created_at,"
                    " updated_at) VALUES (?, ?, ?, 0, ?, ?)",
                    (username, password_hash, str(role), now, now),
                )
            except sqlite3.IntegrityError as error:
                raise UserError(
                    f"a user named {username!r} already exists",
                    hint="choose another name, or change that user's role or password",
                ) from error
            self.audit.append(
                actor.label, AuditAction.USER_CREATE, f"user:{username}", {"role": str(role)}
            )
            user_id = int(cursor.lastrowid or 0)
        created = self.get_by_id(user_id)
        assert created is not None
        return created

    def ensure_admin(self) -> str | None:
        """First run: create ``admin`` with a random password and return it (print it once).

        Returns ``None`` when any user exists already.
        """
        if self.count():
            return None
        password = secrets.token_urlsafe(18)
        password_hash = self._hasher.hash(password)
        now = to_db_time(self.clock())
        with self.db.transaction() as conn:
            if int(conn.execute("SELECT count(*) FROM users").fetchone()[0]):
                return None
            conn.execute(
                "INSERT INTO users (username, password_hash, role, disabled, created_at,"
                " updated_at) VALUES ('admin', ?, ?, 0, ?, ?)",
                (password_hash, str(Role.ADMIN), now, now),
            )
            self.audit.append(
                "system",
                AuditAction.USER_CREATE,
                "user:admin",
                {"role": "admin", "bootstrap": True},
            )
        return password

    def _other_admins(self, conn: sqlite3.Connection, user_id: int) -> int:
        row = conn.execute(
            "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id != ?",
            (user_id,),
        ).fetchone()
        return int(row[0])

    def _last_admin_guard(self, conn: sqlite3.Connection, user: User, what: str) -> None:
        if user.role is Role.ADMIN and not user.disabled and not self._other_admins(conn, user.id):
            raise UserError(
                f"cannot {what} {user.username!r}: it is the last enabled admin",
                hint="make another user admin first",
            )

    def set_role(self, actor: Principal, username: str, role: Role) -> User:
        """Change a user's role (needs ``manage_users``); takes effect on the next request."""
        require(actor, Scope.MANAGE_USERS, audit=self.audit, target=f"user:{username}")
        role = Role(role)
        user = self._require_user(username)
        with self.db.transaction() as conn:
            if role is not Role.ADMIN:
                self._last_admin_guard(conn, user, "demote")
            conn.execute(
                "UPDATE users SET role = ?, updated_at = ? WHERE id = ?",
                (str(role), to_db_time(self.clock()), user.id),
            )
            self.audit.append(
                actor.label,
                AuditAction.USER_UPDATE,
                f"user:{user.username}",
                {"role": {"old": str(user.role), "new": str(role)}},
            )
        return self._require_user(username)

    def set_disabled(self, actor: Principal, username: str, disabled: bool) -> User:
        """Disable (ending its sessions) or re-enable a user (needs ``manage_users``)."""
        require(actor, Scope.MANAGE_USERS, audit=self.audit, target=f"user:{username}")
        user = self._require_user(username)
        with self.db.transaction() as conn:
            if disabled:
                self._last_admin_guard(conn, user, "disable")
                conn.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))
            conn.execute(
                "UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?",
                (int(disabled), to_db_time(self.clock()), user.id),
            )
            self.audit.append(
                actor.label,
                AuditAction.USER_UPDATE,
                f"user:{user.username}",
                {"disabled": {"old": user.disabled, "new": disabled}},
            )
        return self._require_user(username)

    def delete(self, actor: Principal, username: str) -> None:
        """Delete a user with its sessions and tokens (needs ``manage_users``)."""
        require(actor, Scope.MANAGE_USERS, audit=self.audit, target=f"user:{username}")
        user = self._require_user(username)
        with self.db.transaction() as conn:
            self._last_admin_guard(conn, user, "delete")
            conn.execute("DELETE FROM users WHERE id = ?", (user.id,))
            self.audit.append(
                actor.label,
                AuditAction.USER_DELETE,
                f"user:{user.username}",
                {"role": str(user.role)},
            )

    def set_password(self, actor: Principal, username: str, new_password: str) -> None:
        """Set another user's password (needs ``manage_users``); ends their sessions."""
        require(actor, Scope.MANAGE_USERS, audit=self.audit, target=f"user:{username}")
        user = self._require_user(username)
        self._store_password(actor, user, new_password, by_admin=True)

    def change_own_password(self, actor: Principal, current: str, new_password: str) -> None:
        """A user changes their own password, proving the current one; ends their sessions."""
        if actor.user_id is None:
            raise UserError("only a user can change their own password", hint="use set_password")
        user = self.get_by_id(actor.user_id)
        if user is None or not self._verify(user, current):
            raise AuthError(
                "the current password is wrong", hint="type your current password again"
            )
        self._store_password(actor, user, new_password, by_admin=False)

    def _store_password(
        self, actor: Principal, user: User, password: str, *, by_admin: bool
    ) -> None:
        self._check_password(password, user.username)
        password_hash = self._hasher.hash(password)
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
                (password_hash, to_db_time(self.clock()), user.id),
            )
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))
            self.audit.append(
                actor.label,
                AuditAction.PASSWORD_CHANGE,
                f"user:{user.username}",
                {"by_admin": by_admin},
            )

    # -- authentication ---------------------------------------------------------------------

    def _verify(self, user: User, password: str) -> bool:
        with self.db.reading() as conn:
            row = conn.execute(
                "SELECT password_hash FROM users WHERE id = ?", (user.id,)
            ).fetchone()
        if row is None:
            return False
        try:
            return self._hasher.verify(str(row[0]), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _throttle_keys(self, username: str, remote_addr: str | None) -> list[tuple[str, int]]:
        keys = [(f"user:{username.casefold()[:128]}", self.settings.max_failures_per_user)]
        if remote_addr:
            keys.append((f"addr:{remote_addr[:128]}", self.settings.max_failures_per_address))
        return keys

    def _remaining(self, conn: sqlite3.Connection, keys: list[str], now: datetime) -> timedelta:
        marks = ",".join("?" * len(keys))
        rows = conn.execute(
            f"SELECT locked_until FROM login_failures WHERE key IN ({marks})", keys
        ).fetchall()
        remaining = timedelta(0)
        for row in rows:
            if row[0] is not None:
                remaining = max(remaining, from_db_time(row[0]) - now)
        return remaining

    def lockout_remaining(self, username: str, remote_addr: str | None = None) -> timedelta:
        """How long logins for ``username`` (or from ``remote_addr``) are refused now."""
        keys = [key for key, _ in self._throttle_keys(username, remote_addr)]
        with self.db.reading() as conn:
            return self._remaining(conn, keys, self.clock())

    def _count_attempt(
        self, conn: sqlite3.Connection, key: str, limit: int, now: datetime, step: int
    ) -> None:
        """Add ``step`` (1 or -1) to a key's recent failures and set its lockout."""
        s = self.settings
        row = conn.execute(
            "SELECT failures, last_failure FROM login_failures WHERE key = ?", (key,)
        ).fetchone()
        failures = 0
        if row is not None and now - from_db_time(row["last_failure"]) <= s.failure_window:
            failures = int(row["failures"])
        failures = max(0, failures + step)
        locked_until: str | None = None
        if failures >= limit:
            exponent = min(failures - limit, 30)
            delay = min(s.lockout_base * (2**exponent), s.lockout_max)
            locked_until = to_db_time(now + delay)
        conn.execute(
            "INSERT INTO login_failures (key, failures, last_failure, locked_until)"
            " VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET failures = excluded.failures,"
            " last_failure = excluded.last_failure, locked_until = excluded.locked_until",
            (key, failures, to_db_time(now), locked_until),
        )

    def authenticate(self, username: str, password: str, *, remote_addr: str | None = None) -> User:
        """Check a username and password, with throttling.

        Raises :class:`AuthError` with the same message for unknown users, wrong passwords
        and disabled users, or :class:`LoginThrottledError`. Each attempt is counted as a
        failure *before* the password is checked (in one transaction with the lockout check),
        so parallel guesses cannot slip past the limit; a success takes the count back.
        """
        details: dict[str, JsonValue] = {"remote_addr": remote_addr}
        shown = username[:64] or "-"  # attacker-chosen: bounded in the audit log
        keys = self._throttle_keys(username, remote_addr)
        now = self.clock()
        with self.db.transaction() as conn:
            remaining = self._remaining(conn, [key for key, _ in keys], now)
            if remaining > timedelta(0):
                self.audit.append(
                    shown,
                    AuditAction.LOGIN_THROTTLED,
                    f"user:{shown}",
                    {**details, "retry_after_s": round(remaining.total_seconds(), 3)},
                )
            else:
                for key, limit in keys:
                    self._count_attempt(conn, key, limit, now, +1)
        if remaining > timedelta(0):
            seconds = remaining.total_seconds()
            raise LoginThrottledError(
                f"too many failed logins; try again in {max(1, math.ceil(seconds))} seconds",
                retry_after=seconds,
                hint="wait, then check the username and password; an admin can reset passwords",
            )
        user = self.get(username) if len(username) <= 64 else None
        password = password[: self.settings.max_password_length + 1]
        if user is None or user.disabled:
            with contextlib.suppress(VerifyMismatchError, VerificationError, InvalidHashError):
                self._hasher.verify(self._dummy_hash, password)
            ok = False
            details["reason"] = "unknown user" if user is None else "disabled"
        else:
            ok = self._verify(user, password)
            if not ok:
                details["reason"] = "wrong password"
        if not ok:
            self.audit.append(shown, AuditAction.LOGIN_FAILURE, f"user:{shown}", details)
            raise AuthError(
                "invalid username or password",
                hint="check both and try again; repeated failures pause logins for a while",
            )
        assert user is not None
        self._rehash_if_needed(user, password)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM login_failures WHERE key = ?", (keys[0][0],))
            for key, limit in keys[1:]:
                self._count_attempt(conn, key, limit, self.clock(), -1)
            self.audit.append(
                user.username, AuditAction.LOGIN_SUCCESS, f"user:{user.username}", details
            )
        return user

    def _rehash_if_needed(self, user: User, password: str) -> None:
        with self.db.reading() as conn:
            row = conn.execute(
                "SELECT password_hash FROM users WHERE id = ?", (user.id,)
            ).fetchone()
        if row is None or not self._hasher.check_needs_rehash(str(row[0])):
            return
        new_hash = self._hasher.hash(password)
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                (new_hash, user.id, str(row[0])),
            )


# -- sessions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in browser session. ``csrf_token`` must accompany every change."""

    user: User
    csrf_token: str
    created_at: datetime
    last_seen: datetime
    expires_at: datetime
    token_hash: str = field(repr=False)

    @property
    def principal(self) -> Principal:
        return Principal.for_user(self.user, AuthMethod.SESSION)


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just created: ``token`` goes into the cookie and is never stored."""

    token: str = field(repr=False)
    session: Session


class Sessions:
    """Browser sessions: random tokens stored as SHA-256, with lifetime and idle timeout.

    The cookie carrying the token should be ``HttpOnly``, ``SameSite=Strict`` (or ``Lax``)
    and ``Secure`` under TLS; the gateway sets those.
    """

    def __init__(self, users: Users) -> None:
        self.users = users

    def login(self, username: str, password: str, *, remote_addr: str | None = None) -> NewSession:
        """Authenticate and open a session (a fresh token on every login)."""
        user = self.users.authenticate(username, password, remote_addr=remote_addr)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.users.clock()
        expires = now + self.users.settings.session_lifetime
        with self.users.db.transaction() as conn:
            conn.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen,"
                " expires_at, remote_addr) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    _sha256(token),
                    user.id,
                    csrf,
                    to_db_time(now),
                    to_db_time(now),
                    to_db_time(expires),
                    remote_addr,
                ),
            )
        session = Session(user, csrf, now, now, expires, _sha256(token))
        return NewSession(token, session)

    def resolve(self, token: str | None) -> Session:
        """The session for a cookie value; :class:`SessionExpiredError` when it is not valid."""
        if not token:
            raise SessionExpiredError("not logged in", hint="log in first")
        token_hash = _sha256(token)
        now = self.users.clock()
        s = self.users.settings
        with self.users.db.reading() as conn:
            row = conn.execute(
                "SELECT * FROM sessions WHERE token_hash = ?", (token_hash,)
            ).fetchone()
        if row is None:
            raise SessionExpiredError(
                "the session is not valid (expired, logged out or unknown)", hint="log in again"
            )
        last_seen = from_db_time(row["last_seen"])
        expires = from_db_time(row["expires_at"])
        user = self.users.get_by_id(int(row["user_id"]))
        reason = None
        if now >= expires:
            reason = "the session reached its maximum lifetime"
        elif now - last_seen > s.session_idle_timeout:
            reason = "the session was idle too long"
        elif user is None or user.disabled:
            reason = "the account is disabled"
        if reason is not None:
            with self.users.db.transaction() as conn:
                conn.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
            raise SessionExpiredError(reason, hint="log in again")
        assert user is not None
        if now - last_seen >= s.session_touch_interval:
            with self.users.db.transaction() as conn:
                conn.execute(
                    "UPDATE sessions SET last_seen = ? WHERE token_hash = ?",
                    (to_db_time(now), token_hash),
                )
            last_seen = now
        return Session(
            user,
            str(row["csrf_token"]),
            from_db_time(row["created_at"]),
            last_seen,
            expires,
            token_hash,
        )

    @staticmethod
    def check_csrf(session: Session, provided: str | None) -> None:
        """Raise :class:`CsrfError` unless ``provided`` is the session's CSRF token."""
        if not provided:
            raise CsrfError(
                "this change came without a CSRF token",
                hint="send the session's CSRF token in the X-CSRF-Token header",
            )
        if not hmac.compare_digest(provided.encode("utf-8"), session.csrf_token.encode("utf-8")):
            raise CsrfError(
                "the CSRF token does not match this session",
                hint="reload the page to get the current token, then retry",
            )

    def logout(self, token: str) -> None:
        """End a session (idempotent)."""
        token_hash = _sha256(token)
        with self.users.db.transaction() as conn:
            row = conn.execute(
                "SELECT u.username FROM sessions s JOIN users u ON u.id = s.user_id"
                " WHERE s.token_hash = ?",
                (token_hash,),
            ).fetchone()
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
            if row is not None:
                name = str(row[0])
                self.users.audit.append(name, AuditAction.LOGOUT, f"user:{name}")

    def purge_expired(self) -> int:
        """Delete sessions past their lifetime or idle timeout; returns how many."""
        now = self.users.clock()
        s = self.users.settings
        with self.users.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM sessions WHERE expires_at <= ? OR last_seen < ?",
                (to_db_time(now), to_db_time(now - s.session_idle_timeout)),
            )
            return cursor.rowcount


# -- API tokens -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored API token (its secret is never stored, only its SHA-256)."""

    id: int
    username: str
    name: str
    scopes: frozenset[Scope] | None
    created_at: datetime
    expires_at: datetime | None
    last_used: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewApiToken:
    """A token just created: show ``token`` once; it cannot be recovered."""

    token: str = field(repr=False)
    info: ApiToken


class ApiTokens:
    """Tokens for scripts (``Authorization: Bearer veil_...``), each with optional scopes."""

    def __init__(self, users: Users) -> None:
        self.users = users

    def create(
        self,
        actor: Principal,
        name: str,
        *,
        username: str | None = None,
        scopes: Iterable[Scope] | None = None,
        expires_in: timedelta | None = None,
    ) -> NewApiToken:
        """Create a token for ``username`` (default: the actor). Scopes must be held by that
        user (and by the actor, for their own tokens); ``None`` means all the user's scopes,
        following role changes."""
        users = self.users
        if not name.strip() or len(name) > 100:
            raise UserError("a token needs a name of 1-100 characters", hint="say what uses it")
        target_name = username or actor.username
        if actor.user_id is None and username is None:
            raise UserError("the system has no tokens", hint="pass username=")
        if target_name != actor.username or actor.user_id is None:
            require(actor, Scope.MANAGE_USERS, audit=users.audit, target=f"user:{target_name}")
        user = users._require_user(target_name)
        wanted = None if scopes is None else frozenset(Scope(s) for s in scopes)
        allowed = user.scopes if actor.user_id != user.id else user.scopes & actor.scopes
        if wanted is not None and not wanted <= allowed:
            extra = ", ".join(sorted(wanted - allowed))
            raise PermissionDeniedError(
                f"a token for {user.username} cannot have the scopes: {extra}",
                hint=f"choose from: {', '.join(sorted(allowed)) or 'none'}",
            )
        if expires_in is not None and expires_in <= timedelta(0):
            raise UserError(f"expires_in must be positive, got {expires_in}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = users.clock()
        expires = now + expires_in if expires_in is not None else None
        scopes_text = None if wanted is None else json.dumps(sorted(wanted))
        with users.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO api_tokens (user_id, name, token_hash, scopes, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    user.id,
                    name,
                    _sha256(token),
                    scopes_text,
                    to_db_time(now),
                    to_db_time(expires) if expires else None,
                ),
            )
            token_id = int(cursor.lastrowid or 0)
            users.audit.append(
                actor.label,
                AuditAction.TOKEN_CREATE,
                f"user:{user.username}",
                {
                    "token_id": token_id,
                    "name": name,
                    "scopes": None if wanted is None else sorted(wanted),
                    "expires_at": to_db_time(expires) if expires else None,
                },
            )
        return NewApiToken(token, self._get(token_id))

    def _row(self, row: sqlite3.Row) -> ApiToken:
        scopes = row["scopes"]
        return ApiToken(
            id=int(row["id"]),
            username=str(row["username"]),
            name=str(row["name"]),
            scopes=None if scopes is None else frozenset(Scope(s) for s in json.loads(scopes)),
            created_at=from_db_time(row["created_at"]),
            expires_at=_opt_time(row["expires_at"]),
            last_used=_opt_time(row["last_used"]),
            revoked_at=_opt_time(row["revoked_at"]),
        )

    _SELECT = "SELECT t.*, u.username FROM api_tokens t JOIN users u ON u.id = t.user_id"

    def _get(self, token_id: int) -> ApiToken:
        with self.users.db.reading() as conn:
            row = conn.execute(f"{self._SELECT} WHERE t.id = ?", (token_id,)).fetchone()
        if row is None:
            raise UserNotFoundError(f"there is no API token {token_id}", hint="list the tokens")
        return self._row(row)

    def list_tokens(self, actor: Principal, *, username: str | None = None) -> list[ApiToken]:
        """Tokens of ``username`` (default: the actor's own; others need ``manage_users``)."""
        target = username or actor.username
        if target != actor.username or actor.user_id is None:
            require(actor, Scope.MANAGE_USERS, target=f"user:{target}")
        with self.users.db.reading() as conn:
            rows = conn.execute(
                f"{self._SELECT} WHERE u.username = ? ORDER BY t.id", (target,)
            ).fetchall()
        return [self._row(row) for row in rows]

    def resolve(self, token: str | None) -> Principal:
        """The principal for a bearer token; :class:`AuthError` when it is not valid."""
        if not token or not token.startswith(TOKEN_PREFIX):
            raise AuthError(
                "missing or malformed API token", hint="send 'Authorization: Bearer veil_...'"
            )
        with self.users.db.reading() as conn:
            row = conn.execute(
                f"{self._SELECT} WHERE t.token_hash = ?", (_sha256(token),)
            ).fetchone()
        now = self.users.clock()
        if row is None:
            raise AuthError(
                "unknown API token", hint="create a new token; it may have been deleted"
            )
        info = self._row(row)
        if info.revoked_at is not None:
            raise AuthError(f"API token {info.id} was revoked", hint="create a new token")
        if info.expires_at is not None and now >= info.expires_at:
            raise AuthError(f"API token {info.id} expired", hint="create a new token")
        user = self.users.get_by_id(int(row["user_id"]))
        if user is None or user.disabled:
            raise AuthError(f"the owner of API token {info.id} is disabled", hint="ask an admin")
        if (
            info.last_used is None
            or now - info.last_used >= self.users.settings.session_touch_interval
        ):
            with self.users.db.transaction() as conn:
                conn.execute(
                    "UPDATE api_tokens SET last_used = ? WHERE id = ?", (to_db_time(now), info.id)
                )
        return Principal.for_user(user, AuthMethod.API_TOKEN, scopes=info.scopes, token_id=info.id)

    def revoke(self, actor: Principal, token_id: int) -> ApiToken:
        """Revoke a token (its owner, or ``manage_users``)."""
        info = self._get(token_id)
        if info.username != actor.username or actor.user_id is None:
            require(actor, Scope.MANAGE_USERS, audit=self.users.audit, target=f"token:{token_id}")
        if info.revoked_at is None:
            with self.users.db.transaction() as conn:
                conn.execute(
                    "UPDATE api_tokens SET revoked_at = ? WHERE id = ?",
                    (to_db_time(self.users.clock()), token_id),
                )
                self.users.audit.append(
                    actor.label,
                    AuditAction.TOKEN_REVOKE,
                    f"user:{info.username}",
                    {"token_id": token_id, "name": info.name},
                )
        return self._get(token_id)


# -- unmask grants --------------------------------------------------------------------------


class GrantStatus(StrEnum):
    """Where an unmask grant is in its life."""

    PENDING = "pending"
    ACTIVE = "active"
    DENIED = "denied"
    ENDED = "ended"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class UnmaskGrant:
    """Permission for one user to see one camera unmasked, for a reason, for a time."""

    id: int
    username: str
    user_id: int
    camera_id: str
    reason: str
    status: GrantStatus
    duration: timedelta
    requested_at: datetime
    approver: str | None
    approved_at: datetime | None
    starts_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None

    def is_active(self, now: datetime) -> bool:
        return (
            self.status is GrantStatus.ACTIVE
            and self.expires_at is not None
            and self.starts_at is not None
            and self.starts_at <= now < self.expires_at
        )


class UnmaskGrants:
    """Unmask grants: the gateway's unmasked live view and decryption check these.

    Flow: :meth:`request_unmask` (needs ``unmask`` and a reason) -> active at once, or pending
    when ``two_person_unmask`` is set and no approver co-signed -> :meth:`approve_unmask` by
    another user with ``unmask`` -> :meth:`active_grant` on every unmasked frame request ->
    :meth:`end_unmask`, or expiry after the time limit. Each step is audited.
    """

    def __init__(self, users: Users) -> None:
        self.users = users

    _SELECT = (
        "SELECT g.*, u.username, a.username AS approver_name FROM unmask_grants g"
        " JOIN users u ON u.id = g.user_id LEFT JOIN users a ON a.id = g.approver_id"
    )

    def _row(self, row: sqlite3.Row) -> UnmaskGrant:
        return UnmaskGrant(
            id=int(row["id"]),
            username=str(row["username"]),
            user_id=int(row["user_id"]),
            camera_id=str(row["camera_id"]),
            reason=str(row["reason"]),
            status=GrantStatus(row["status"]),
            duration=timedelta(seconds=int(row["duration_s"])),
            requested_at=from_db_time(row["requested_at"]),
            approver=None if row["approver_name"] is None else str(row["approver_name"]),
            approved_at=_opt_time(row["approved_at"]),
            starts_at=_opt_time(row["starts_at"]),
            expires_at=_opt_time(row["expires_at"]),
            ended_at=_opt_time(row["ended_at"]),
        )

    def get(self, grant_id: int) -> UnmaskGrant:
        with self.users.db.reading() as conn:
            row = conn.execute(f"{self._SELECT} WHERE g.id = ?", (grant_id,)).fetchone()
        if row is None:
            raise UnmaskError(f"there is no unmask grant {grant_id}", hint="list the grants")
        return self._row(row)

    def list_grants(
        self, *, status: GrantStatus | None = None, username: str | None = None
    ) -> list[UnmaskGrant]:
        """Grants, newest first, optionally filtered (for the approvals page and reports)."""
        sql = self._SELECT
        clauses: list[str] = []
        params: list[Any] = []
        if status is not None:
            clauses.append("g.status = ?")
            params.append(str(status))
        if username is not None:
            clauses.append("u.username = ?")
            params.append(username)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self.users.db.reading() as conn:
            rows = conn.execute(sql + " ORDER BY g.id DESC", params).fetchall()
        return [self._row(row) for row in rows]

    def _require_unmasker(self, principal: Principal, camera_id: str, role: str) -> int:
        require(principal, Scope.UNMASK, audit=self.users.audit, target=f"camera:{camera_id}")
        if principal.user_id is None:
            raise PermissionDeniedError(
                f"the {role} of an unmask grant must be a named user, not {principal.username}",
                hint="log in as a user with the unmask permission",
            )
        return principal.user_id

    def _check_approver(self, requester_id: int, approver: Principal, camera_id: str) -> int:
        approver_id = self._require_unmasker(approver, camera_id, "approver")
        if approver_id == requester_id:
            raise UnmaskError(
                "the approver must be a different user from the requester",
                hint="ask a second investigator or admin to approve",
            )
        return approver_id

    def request_unmask(
        self,
        principal: Principal,
        camera_id: str,
        reason: str,
        *,
        duration: timedelta | None = None,
        approver: Principal | None = None,
    ) -> UnmaskGrant:
        """Ask to see ``camera_id`` unmasked. ``reason`` (a case number, say) is required.

        ``approver`` is an optional second user who co-signs now (another user with
        ``unmask``). Without one, a site with ``two_person_unmask`` leaves the grant pending.
        """
        users = self.users
        s = users.settings
        user_id = self._require_unmasker(principal, camera_id, "requester")
        reason = reason.strip()
        if not reason:
            raise UnmaskError(
                "an unmask request needs a reason", hint="give a case or incident number"
            )
        if len(reason) > 500:
            raise UnmaskError("the reason is longer than 500 characters", hint="shorten it")
        if not camera_id:
            raise UnmaskError("an unmask request needs a camera", hint="name the camera")
        duration = s.unmask_default_duration if duration is None else duration
        if not timedelta(seconds=1) <= duration <= s.unmask_max_duration:
            raise UnmaskError(
                f"the unmask time limit {duration} is out of range",
                hint=f"choose between 1 second and {s.unmask_max_duration}",
            )
        approver_id = (
            None if approver is None else self._check_approver(user_id, approver, camera_id)
        )
        now = users.clock()
        active = approver_id is not None or not s.two_person_unmask
        status = GrantStatus.ACTIVE if active else GrantStatus.PENDING
        with users.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO unmask_grants (user_id, camera_id, reason, status, duration_s,"
                " requested_at, approver_id, approved_at, starts_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    camera_id,
                    reason,
                    str(status),
                    int(duration.total_seconds()),
                    to_db_time(now),
                    approver_id,
                    to_db_time(now) if approver_id is not None else None,
                    to_db_time(now) if active else None,
                    to_db_time(now + duration) if active else None,
                ),
            )
            grant_id = int(cursor.lastrowid or 0)
            target = f"camera:{camera_id}"
            base: dict[str, JsonValue] = {"grant": grant_id, "reason": reason}
            users.audit.append(
                principal.label,
                AuditAction.UNMASK_REQUEST,
                target,
                {**base, "duration_s": int(duration.total_seconds()), "status": str(status)},
            )
            if approver is not None:
                users.audit.append(approver.label, AuditAction.UNMASK_APPROVE, target, base)
            if active:
                users.audit.append(
                    principal.label,
                    AuditAction.UNMASK_START,
                    target,
                    {**base, "expires_at": to_db_time(now + duration)},
                )
        return self.get(grant_id)

    def approve_unmask(self, approver: Principal, grant_id: int) -> UnmaskGrant:
        """A second user approves a pending grant; its time limit starts now."""
        grant = self.get(grant_id)
        approver_id = self._check_approver(grant.user_id, approver, grant.camera_id)
        if grant.status is not GrantStatus.PENDING:
            raise UnmaskError(
                f"unmask grant {grant_id} is {grant.status}, not pending",
                hint="only pending requests can be approved",
            )
        now = self.users.clock()
        timeout = self.users.settings.unmask_approval_timeout
        if now - grant.requested_at > timeout:
            self._finish(grant, GrantStatus.EXPIRED, now, "system")
            raise UnmaskError(
                f"unmask request {grant_id} waited more than {timeout} for approval",
                hint="the requester must ask again",
            )
        expires = now + grant.duration
        with self.users.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE unmask_grants SET status = 'active', approver_id = ?, approved_at = ?,"
                " starts_at = ?, expires_at = ? WHERE id = ? AND status = 'pending'",
                (approver_id, to_db_time(now), to_db_time(now), to_db_time(expires), grant_id),
            )
            if cursor.rowcount != 1:
                raise UnmaskError(f"unmask grant {grant_id} changed meanwhile", hint="reload")
            target = f"camera:{grant.camera_id}"
            base: dict[str, JsonValue] = {
                "grant": grant_id,
                "reason": grant.reason,
                "requester": grant.username,
            }
            self.users.audit.append(approver.label, AuditAction.UNMASK_APPROVE, target, base)
            self.users.audit.append(
                grant.username,
                AuditAction.UNMASK_START,
                target,
                {**base, "expires_at": to_db_time(expires)},
            )
        return self.get(grant_id)

    def deny_unmask(self, approver: Principal, grant_id: int, note: str = "") -> UnmaskGrant:
        """Refuse a pending grant."""
        grant = self.get(grant_id)
        self._check_approver(grant.user_id, approver, grant.camera_id)
        if grant.status is not GrantStatus.PENDING:
            raise UnmaskError(
                f"unmask grant {grant_id} is {grant.status}, not pending",
                hint="only pending requests can be denied",
            )
        now = to_db_time(self.users.clock())
        with self.users.db.transaction() as conn:
            conn.execute(
                "UPDATE unmask_grants SET status = 'denied', ended_at = ? WHERE id = ?",
                (now, grant_id),
            )
            self.users.audit.append(
                approver.label,
                AuditAction.UNMASK_DENY,
                f"camera:{grant.camera_id}",
                {"grant": grant_id, "requester": grant.username, "note": note},
            )
        return self.get(grant_id)

    def end_unmask(self, principal: Principal, grant_id: int) -> UnmaskGrant:
        """End a grant early (its user, its approver, or ``manage_users``)."""
        grant = self.get(grant_id)
        own = principal.user_id is not None and principal.username in (
            grant.username,
            grant.approver,
        )
        if not own:
            require(
                principal,
                Scope.MANAGE_USERS,
                audit=self.users.audit,
                target=f"camera:{grant.camera_id}",
            )
        if grant.status not in (GrantStatus.ACTIVE, GrantStatus.PENDING):
            return grant
        now = self.users.clock()
        if grant.expires_at is not None and now >= grant.expires_at:
            self._expire(grant)
            return self.get(grant_id)
        self._finish(grant, GrantStatus.ENDED, now, principal.label)
        return self.get(grant_id)

    def _finish(self, grant: UnmaskGrant, status: GrantStatus, end: datetime, actor: str) -> None:
        with self.users.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE unmask_grants SET status = ?, ended_at = ? WHERE id = ? AND status = ?",
                (str(status), to_db_time(end), grant.id, str(grant.status)),
            )
            if cursor.rowcount != 1:
                return
            viewed = (end - grant.starts_at).total_seconds() if grant.starts_at else 0.0
            self.users.audit.append(
                actor,
                AuditAction.UNMASK_END,
                f"camera:{grant.camera_id}",
                {
                    "grant": grant.id,
                    "user": grant.username,
                    "reason": grant.reason,
                    "start": to_db_time(grant.starts_at) if grant.starts_at else None,
                    "end": to_db_time(end),
                    "seconds": round(max(0.0, viewed), 3),
                    "how": str(status),
                },
            )

    def _expire(self, grant: UnmaskGrant) -> None:
        assert grant.expires_at is not None
        self._finish(grant, GrantStatus.EXPIRED, grant.expires_at, "system")

    def active_grant(self, principal: Principal, camera_id: str) -> UnmaskGrant | None:
        """The grant that lets ``principal`` see ``camera_id`` unmasked now, or ``None``.

        Expired grants are closed (and audited) on the way; a principal that no longer holds
        ``unmask`` (demoted, disabled, or a token without it) gets ``None``.
        """
        if principal.user_id is None or not principal.has(Scope.UNMASK):
            return None
        now = self.users.clock()
        with self.users.db.reading() as conn:
            rows = conn.execute(
                f"{self._SELECT} WHERE g.user_id = ? AND g.camera_id = ? AND g.status = 'active'"
                " ORDER BY g.expires_at DESC",
                (principal.user_id, camera_id),
            ).fetchall()
        found: UnmaskGrant | None = None
        for grant in (self._row(row) for row in rows):
            if grant.expires_at is not None and now >= grant.expires_at:
                self._expire(grant)
            elif found is None and grant.is_active(now):
                found = grant
        return found
