"""Users, roles, throttled logins, sessions with CSRF, API tokens and unmask grants."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher

from veil.vault.audit import AuditLog
from veil.vault.db import Database
from veil.vault.users import (
    ROLE_SCOPES,
    ApiTokens,
    AuthError,
    AuthMethod,
    AuthSettings,
    CsrfError,
    GrantStatus,
    LoginThrottledError,
    PermissionDeniedError,
    Principal,
    Role,
    Scope,
    SessionExpiredError,
    Sessions,
    UnmaskError,
    UnmaskGrants,
    UserError,
    UserNotFoundError,
    Users,
    require,
)

# Cheap Argon2 for tests; production uses AuthSettings() (3 passes over 64 MiB).
FAST = AuthSettings(password_time_cost=1, password_memory_kib=64, password_parallelism=1)
PASSWORD = "a long enough passphrase"
SYSTEM = Principal.system()


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class World:
    """A database with users of every role, built with a fake clock."""

    def __init__(self, folder: Path, settings: AuthSettings = FAST) -> None:
        self.clock = FakeClock()
        self.db = Database.in_folder(folder)
        self.audit = AuditLog(self.db, clock=self.clock)
        self.users = Users(self.db, self.audit, settings, self.clock)
        self.sessions = Sessions(self.users)
        self.tokens = ApiTokens(self.users)
        self.grants = UnmaskGrants(self.users)

    def add(self, name: str, role: Role) -> Principal:
        user = self.users.create(SYSTEM, name, PASSWORD, role)
        return Principal.for_user(user, AuthMethod.SESSION)

    def actions(self) -> list[str]:
        return [e.action for e in self.audit.entries(newest_first=False)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path / "data")
    yield w
    w.db.close()


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[[AuthSettings], World]]:
    made: list[World] = []

    def make(settings: AuthSettings) -> World:
        w = World(tmp_path / f"data{len(made)}", settings)
        made.append(w)
        return w

    yield make
    for w in made:
        w.db.close()


# -- roles ----------------------------------------------------------------------------------

PERMISSIONS = [
    # role, view, configure, unmask, export, manage_users
    (Role.VIEWER, True, False, False, False, False),
    (Role.OPERATOR, True, True, False, False, False),
    (Role.INVESTIGATOR, True, True, True, True, False),
    (Role.ADMIN, True, True, True, True, True),
]


@pytest.mark.parametrize(
    ("role", "view", "configure", "unmask", "export", "manage"), PERMISSIONS
)  # fmt: skip
def test_roles_grant_exactly_their_scopes(
    role: Role, view: bool, configure: bool, unmask: bool, export: bool, manage: bool
) -> None:
    expected = {
        Scope.VIEW: view,
        Scope.CONFIGURE: configure,
        Scope.UNMASK: unmask,
        Scope.EXPORT: export,
        Scope.MANAGE_USERS: manage,
    }
    assert {scope: scope in ROLE_SCOPES[role] for scope in Scope} == expected
    principal = Principal("u", 1, role, role.scopes, AuthMethod.SESSION)
    for scope, allowed in expected.items():
        if allowed:
            require(principal, scope)
        else:
            with pytest.raises(PermissionDeniedError, match=f"lacks the '{scope}' permission"):
                require(principal, scope)


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.at_least(Role.INVESTIGATOR)
    assert Role.OPERATOR.at_least(Role.VIEWER)
    assert not Role.OPERATOR.at_least(Role.INVESTIGATOR)


def test_permission_denied_names_the_role_to_ask_for(world: World) -> None:
    viewer = world.add("vera", Role.VIEWER)
    with pytest.raises(PermissionDeniedError) as caught:
        require(viewer, Scope.UNMASK, audit=world.audit, target="camera:door")
    assert "investigator" in str(caught.value)
    assert isinstance(caught.value, PermissionError)
    assert world.actions()[-1] == "permission.denied"


# -- users and passwords --------------------------------------------------------------------


def test_first_run_creates_admin_once(world: World) -> None:
    password = world.users.ensure_admin()
    assert password is not None
    assert len(password) >= 20
    assert world.users.ensure_admin() is None
    admin = world.users.authenticate("admin", password)
    assert admin.role is Role.ADMIN
    assert world.actions()[:2] == ["user.create", "login.success"]


def test_passwords_are_stored_as_argon2id(world: World) -> None:
    world.add("alice", Role.VIEWER)
    with world.db.reading() as conn:
        stored = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert world.users.authenticate("alice", PASSWORD).username == "alice"
    with pytest.raises(AuthError, match="invalid username or password"):
        world.users.authenticate("alice", PASSWORD + "x")


def test_hash_is_upgraded_on_login_when_parameters_change(tmp_path: Path) -> None:
    first = World(tmp_path / "data")
    first.add("alice", Role.VIEWER)
    first.db.close()
    stronger = replace(FAST, password_time_cost=2)
    second = World(tmp_path / "data", stronger)
    try:
        second.users.authenticate("alice", PASSWORD)
        with second.db.reading() as conn:
            stored = conn.execute("SELECT password_hash FROM users").fetchone()[0]
        assert ",t=2," in stored
        second.users.authenticate("alice", PASSWORD)
    finally:
        second.db.close()


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("al ice", PASSWORD, "not allowed"),
        ("", PASSWORD, "not allowed"),
        ("alice", "short", "too short"),
        ("alice-long-name1", "alice-long-name1", "equals the username"),
    ],
)
def test_bad_users_are_refused(world: World, username: str, password: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        world.users.create(SYSTEM, username, password, Role.VIEWER)
    assert world.users.count() == 0


def test_duplicate_username_is_refused_case_insensitively(world: World) -> None:
    world.add("alice", Role.VIEWER)
    with pytest.raises(UserError, match="already exists"):
        world.users.create(SYSTEM, "ALICE", PASSWORD, Role.ADMIN)


def test_only_admins_manage_users(world: World) -> None:
    operator = world.add("otto", Role.OPERATOR)
    admin = world.add("ada", Role.ADMIN)
    with pytest.raises(PermissionDeniedError):
        world.users.create(operator, "eve", PASSWORD, Role.ADMIN)
    with pytest.raises(PermissionDeniedError):
        world.users.set_role(operator, "otto", Role.ADMIN)
    assert world.users.get("eve") is None
    assert "permission.denied" in world.actions()
    world.users.set_role(admin, "otto", Role.INVESTIGATOR)
    user = world.users.get("otto")
    assert user is not None
    assert user.role is Role.INVESTIGATOR
    entry = world.audit.entries(action="user.update")[0]
    assert entry.details == {"role": {"old": "operator", "new": "investigator"}}
    assert entry.actor == "ada"
    with pytest.raises(UserNotFoundError):
        world.users.set_role(admin, "nobody", Role.VIEWER)


def test_last_admin_cannot_be_removed(world: World) -> None:
    admin = world.add("ada", Role.ADMIN)
    for change in (
        lambda: world.users.set_role(admin, "ada", Role.VIEWER),
        lambda: world.users.set_disabled(admin, "ada", True),
        lambda: world.users.delete(admin, "ada"),
    ):
        with pytest.raises(UserError, match="last enabled admin"):
            change()
    world.add("bea", Role.ADMIN)
    world.users.delete(admin, "ada")
    assert world.users.get("ada") is None


def test_own_password_change_needs_the_current_one_and_ends_sessions(world: World) -> None:
    alice = world.add("alice", Role.VIEWER)
    new = world.sessions.login("alice", PASSWORD)
    with pytest.raises(AuthError, match="current password is wrong"):
        world.users.change_own_password(alice, "not it at all", "another long passphrase")
    world.users.change_own_password(alice, PASSWORD, "another long passphrase")
    with pytest.raises(SessionExpiredError):
        world.sessions.resolve(new.token)
    world.users.authenticate("alice", "another long passphrase")
    assert "user.password" in world.actions()
    assert all("passphrase" not in str(e.details) for e in world.audit.entries())


# -- throttling -----------------------------------------------------------------------------


def test_logins_are_throttled_after_five_failures(world: World) -> None:
    world.add("alice", Role.VIEWER)
    for _ in range(5):
        with pytest.raises(AuthError, match="invalid username or password"):
            world.users.authenticate("alice", "wrong password!", remote_addr="10.0.0.9")
    # Even the right password is refused while throttled.
    with pytest.raises(LoginThrottledError) as caught:
        world.users.authenticate("alice", PASSWORD, remote_addr="10.0.0.9")
    assert caught.value.retry_after == pytest.approx(5.0)
    assert caught.value.http_status == 429
    world.clock.advance(seconds=6)
    # One more failure doubles the delay.
    with pytest.raises(AuthError):
        world.users.authenticate("alice", "wrong password!")
    with pytest.raises(LoginThrottledError) as again:
        world.users.authenticate("alice", PASSWORD)
    assert again.value.retry_after == pytest.approx(10.0)
    world.clock.advance(seconds=11)
    world.users.authenticate("alice", PASSWORD)
    # Success resets the counter for the user.
    assert world.users.lockout_remaining("alice") == timedelta(0)
    with pytest.raises(AuthError):
        world.users.authenticate("alice", "wrong password!")
    world.users.authenticate("alice", PASSWORD)
    actions = world.actions()
    assert actions.count("login.failure") == 7
    assert actions.count("login.throttled") == 2


def test_lockout_delay_is_capped(world: World) -> None:
    world.add("alice", Role.VIEWER)
    for _ in range(20):
        with pytest.raises(AuthError):
            world.users.authenticate("alice", "wrong password!")
        remaining = world.users.lockout_remaining("alice")
        assert remaining <= FAST.lockout_max
        world.clock.advance(seconds=remaining.total_seconds())
    with pytest.raises(AuthError):
        world.users.authenticate("alice", "wrong password!")
    assert world.users.lockout_remaining("alice") == FAST.lockout_max


def test_old_failures_are_forgotten(world: World) -> None:
    world.add("alice", Role.VIEWER)
    for _ in range(4):
        with pytest.raises(AuthError):
            world.users.authenticate("alice", "wrong password!")
    world.clock.advance(minutes=16)
    with pytest.raises(AuthError):
        world.users.authenticate("alice", "wrong password!")
    world.users.authenticate("alice", PASSWORD)  # 1 recent failure, not 5


def test_unknown_users_look_like_wrong_passwords(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.add("alice", Role.VIEWER)
    verified: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            verified.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(
        world.users, "_hasher", CountingHasher(time_cost=1, memory_cost=64, parallelism=1)
    )
    with pytest.raises(AuthError) as wrong:
        world.users.authenticate("alice", "wrong password!")
    with pytest.raises(AuthError) as unknown:
        world.users.authenticate("mallory", "wrong password!")
    assert str(wrong.value) == str(unknown.value)
    assert type(wrong.value) is type(unknown.value)
    assert len(verified) == 2  # a dummy hash is checked for the unknown user too
    for _ in range(4):
        with pytest.raises(AuthError):
            world.users.authenticate("mallory", "wrong password!")
    with pytest.raises(LoginThrottledError):
        world.users.authenticate("mallory", "wrong password!")


def test_disabled_users_cannot_log_in(world: World) -> None:
    admin = world.add("ada", Role.ADMIN)
    world.add("alice", Role.VIEWER)
    world.users.set_disabled(admin, "alice", True)
    with pytest.raises(AuthError, match="invalid username or password"):
        world.users.authenticate("alice", PASSWORD)
    world.users.set_disabled(admin, "alice", False)
    world.users.authenticate("alice", PASSWORD)


def test_one_address_is_throttled_across_usernames(world: World) -> None:
    world.add("alice", Role.VIEWER)
    for k in range(20):
        with pytest.raises(AuthError):
            world.users.authenticate(f"guess{k}", "wrong password!", remote_addr="203.0.113.7")
    with pytest.raises(LoginThrottledError):
        world.users.authenticate("alice", PASSWORD, remote_addr="203.0.113.7")
    world.users.authenticate("alice", PASSWORD, remote_addr="198.51.100.1")


# -- sessions and CSRF ----------------------------------------------------------------------


def test_session_round_trip_and_stored_hashed(world: World) -> None:
    world.add("alice", Role.OPERATOR)
    new = world.sessions.login("alice", PASSWORD, remote_addr="10.0.0.5")
    assert len(new.token) >= 43
    session = world.sessions.resolve(new.token)
    assert session.user.username == "alice"
    assert session.principal.scopes == ROLE_SCOPES[Role.OPERATOR]
    assert session.principal.method is AuthMethod.SESSION
    with world.db.reading() as conn:
        stored = [tuple(row) for row in conn.execute("SELECT token_hash FROM sessions")]
    assert new.token not in str(stored)
    assert new.token not in repr(new)
    again = world.sessions.login("alice", PASSWORD)
    assert again.token != new.token
    assert again.session.csrf_token != new.session.csrf_token


def test_session_expires_when_idle(world: World) -> None:
    world.add("alice", Role.VIEWER)
    new = world.sessions.login("alice", PASSWORD)
    world.clock.advance(minutes=29)
    world.sessions.resolve(new.token)  # activity keeps it alive
    world.clock.advance(minutes=29)
    world.sessions.resolve(new.token)
    world.clock.advance(minutes=31)
    with pytest.raises(SessionExpiredError, match="idle too long"):
        world.sessions.resolve(new.token)
    with pytest.raises(SessionExpiredError, match="not valid"):
        world.sessions.resolve(new.token)


def test_session_expires_after_its_lifetime_despite_activity(world: World) -> None:
    world.add("alice", Role.VIEWER)
    new = world.sessions.login("alice", PASSWORD)
    for _ in range(47):
        world.clock.advance(minutes=15)
        world.sessions.resolve(new.token)
    world.clock.advance(minutes=15)
    with pytest.raises(SessionExpiredError, match="maximum lifetime"):
        world.sessions.resolve(new.token)


def test_logout_and_unknown_tokens(world: World) -> None:
    world.add("alice", Role.VIEWER)
    new = world.sessions.login("alice", PASSWORD)
    world.sessions.logout(new.token)
    world.sessions.logout(new.token)  # idempotent
    for token in (new.token, "forged", None, ""):
        with pytest.raises(SessionExpiredError):
            world.sessions.resolve(token)
    assert world.actions()[-1] == "logout"


def test_disabling_a_user_ends_their_sessions(world: World) -> None:
    admin = world.add("ada", Role.ADMIN)
    world.add("alice", Role.VIEWER)
    new = world.sessions.login("alice", PASSWORD)
    world.users.set_disabled(admin, "alice", True)
    with pytest.raises(SessionExpiredError):
        world.sessions.resolve(new.token)


def test_role_change_applies_to_open_sessions(world: World) -> None:
    admin = world.add("ada", Role.ADMIN)
    world.add("alice", Role.INVESTIGATOR)
    new = world.sessions.login("alice", PASSWORD)
    world.users.set_role(admin, "alice", Role.VIEWER)
    assert not world.sessions.resolve(new.token).principal.has(Scope.UNMASK)


def test_purge_expired_sessions(world: World) -> None:
    world.add("alice", Role.VIEWER)
    world.sessions.login("alice", PASSWORD)
    world.clock.advance(hours=1)
    world.sessions.login("alice", PASSWORD)
    assert world.sessions.purge_expired() == 1


def test_csrf_token_is_checked(world: World) -> None:
    world.add("alice", Role.OPERATOR)
    session = world.sessions.login("alice", PASSWORD).session
    other = world.sessions.login("alice", PASSWORD).session
    Sessions.check_csrf(session, session.csrf_token)
    with pytest.raises(CsrfError, match="without a CSRF token"):
        Sessions.check_csrf(session, None)
    with pytest.raises(CsrfError, match="does not match"):
        Sessions.check_csrf(session, other.csrf_token)
    with pytest.raises(CsrfError, match="does not match"):
        Sessions.check_csrf(session, session.csrf_token[:-1] + "é")
    assert CsrfError("x").http_status == 403


# -- API tokens -----------------------------------------------------------------------------


def test_api_token_with_a_scope_subset(world: World) -> None:
    alice = world.add("alice", Role.OPERATOR)
    new = world.tokens.create(alice, "nightly export script", scopes=[Scope.VIEW])
    assert new.token.startswith("veil_")
    assert new.token not in repr(new)
    principal = world.tokens.resolve(new.token)
    assert principal.scopes == frozenset({Scope.VIEW})
    assert principal.method is AuthMethod.API_TOKEN
    assert principal.label == f"alice (token {new.info.id})"
    with pytest.raises(PermissionDeniedError):
        require(principal, Scope.CONFIGURE)
    with world.db.reading() as conn:
        assert new.token not in str([tuple(r) for r in conn.execute("SELECT * FROM api_tokens")])


def test_api_token_cannot_exceed_the_users_scopes(world: World) -> None:
    alice = world.add("alice", Role.OPERATOR)
    with pytest.raises(PermissionDeniedError, match="unmask"):
        world.tokens.create(alice, "too much", scopes=[Scope.UNMASK])
    # A limited token cannot mint a broader one.
    limited = world.tokens.resolve(world.tokens.create(alice, "ro", scopes=[Scope.VIEW]).token)
    with pytest.raises(PermissionDeniedError, match="configure"):
        world.tokens.create(limited, "escalate", scopes=[Scope.CONFIGURE])


def test_api_token_follows_role_changes(world: World) -> None:
    admin = world.add("ada", Role.ADMIN)
    alice = world.add("alice", Role.INVESTIGATOR)
    full = world.tokens.create(alice, "all my scopes")
    assert world.tokens.resolve(full.token).has(Scope.UNMASK)
    world.users.set_role(admin, "alice", Role.VIEWER)
    assert world.tokens.resolve(full.token).scopes == frozenset({Scope.VIEW})


def test_api_token_revocation_and_expiry(world: World) -> None:
    alice = world.add("alice", Role.VIEWER)
    bob = world.add("bob", Role.VIEWER)
    admin = world.add("ada", Role.ADMIN)
    revoked = world.tokens.create(alice, "old laptop")
    with pytest.raises(PermissionDeniedError):
        world.tokens.revoke(bob, revoked.info.id)
    world.tokens.revoke(alice, revoked.info.id)
    with pytest.raises(AuthError, match="revoked"):
        world.tokens.resolve(revoked.token)
    expiring = world.tokens.create(alice, "temp", expires_in=timedelta(hours=1))
    world.tokens.resolve(expiring.token)
    world.clock.advance(hours=1)
    with pytest.raises(AuthError, match="expired"):
        world.tokens.resolve(expiring.token)
    for bad in ("veil_forged", "no-prefix", None):
        with pytest.raises(AuthError):
            world.tokens.resolve(bad)
    # Admins manage others' tokens; users see only their own.
    for_bob = world.tokens.create(admin, "bob's script", username="bob")
    assert [t.name for t in world.tokens.list_tokens(bob)] == ["bob's script"]
    with pytest.raises(PermissionDeniedError):
        world.tokens.create(bob, "for alice", username="alice")
    with pytest.raises(PermissionDeniedError):
        world.tokens.list_tokens(bob, username="alice")
    world.tokens.revoke(admin, for_bob.info.id)
    assert world.actions().count("token.revoke") == 2


def test_token_of_disabled_user_is_refused(world: World) -> None:
    admin = world.add("ada", Role.ADMIN)
    alice = world.add("alice", Role.VIEWER)
    new = world.tokens.create(alice, "script")
    world.users.set_disabled(admin, "alice", True)
    with pytest.raises(AuthError, match="disabled"):
        world.tokens.resolve(new.token)


# -- unmask grants --------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   ", "\n"])
def test_unmask_needs_a_reason(world: World, reason: str) -> None:
    ivan = world.add("ivan", Role.INVESTIGATOR)
    with pytest.raises(UnmaskError, match="needs a reason"):
        world.grants.request_unmask(ivan, "door", reason)
    assert world.grants.list_grants() == []


def test_reason_is_enforced_by_the_database_too(world: World) -> None:
    ivan = world.add("ivan", Role.INVESTIGATOR)
    with pytest.raises(sqlite3.IntegrityError), world.db.transaction() as conn:
        conn.execute(
            "INSERT INTO unmask_grants (user_id, camera_id, reason, status, duration_s,"
            " requested_at) VALUES (?, 'door', '  ', 'active', 60, 'x')",
            (ivan.user_id,),
        )


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_only_unmask_scope_may_request(world: World, role: Role) -> None:
    someone = world.add("someone", role)
    with pytest.raises(PermissionDeniedError, match="unmask"):
        world.grants.request_unmask(someone, "door", "case 17")
    assert world.actions()[-1] == "permission.denied"
    with pytest.raises(PermissionDeniedError):
        world.grants.request_unmask(SYSTEM, "door", "case 17")


def test_grant_is_active_for_its_camera_until_its_time_limit(world: World) -> None:
    ivan = world.add("ivan", Role.INVESTIGATOR)
    grant = world.grants.request_unmask(
        ivan, "door", " case 2024-17 ", duration=timedelta(minutes=5)
    )
    assert grant.status is GrantStatus.ACTIVE
    assert grant.reason == "case 2024-17"
    assert world.grants.active_grant(ivan, "door") == grant
    assert world.grants.active_grant(ivan, "yard") is None
    world.clock.advance(minutes=4, seconds=59)
    assert world.grants.active_grant(ivan, "door") is not None
    world.clock.advance(seconds=1)
    assert world.grants.active_grant(ivan, "door") is None
    assert world.grants.get(grant.id).status is GrantStatus.EXPIRED
    end = world.audit.entries(action="unmask.end")[0]
    assert end.details["how"] == "expired"
    assert end.details["seconds"] == 300.0
    assert end.details["reason"] == "case 2024-17"
    assert world.actions()[-3:] == ["unmask.request", "unmask.start", "unmask.end"]


def test_end_unmask_closes_the_view(world: World) -> None:
    ivan = world.add("ivan", Role.INVESTIGATOR)
    bob = world.add("bob", Role.INVESTIGATOR)
    grant = world.grants.request_unmask(ivan, "door", "case 18")
    with pytest.raises(PermissionDeniedError):
        world.grants.end_unmask(bob, grant.id)
    world.clock.advance(seconds=42)
    ended = world.grants.end_unmask(ivan, grant.id)
    assert ended.status is GrantStatus.ENDED
    assert ended.ended_at == world.clock.now
    assert world.grants.active_grant(ivan, "door") is None
    end = world.audit.entries(action="unmask.end")[0]
    assert (end.actor, end.details["seconds"], end.details["how"]) == ("ivan", 42.0, "ended")


def test_time_limit_is_bounded(world: World) -> None:
    ivan = world.add("ivan", Role.INVESTIGATOR)
    with pytest.raises(UnmaskError, match="out of range"):
        world.grants.request_unmask(ivan, "door", "case", duration=timedelta(hours=5))


def test_two_person_approval(make_world: Callable[[AuthSettings], World]) -> None:
    world = make_world(replace(FAST, two_person_unmask=True))
    ivan = world.add("ivan", Role.INVESTIGATOR)
    otto = world.add("otto", Role.OPERATOR)
    ada = world.add("ada", Role.ADMIN)
    grant = world.grants.request_unmask(ivan, "door", "case 19", duration=timedelta(minutes=10))
    assert grant.status is GrantStatus.PENDING
    assert world.grants.active_grant(ivan, "door") is None
    with pytest.raises(UnmaskError, match="different user"):
        world.grants.approve_unmask(ivan, grant.id)
    with pytest.raises(PermissionDeniedError):
        world.grants.approve_unmask(otto, grant.id)
    world.clock.advance(minutes=3)  # the time limit starts at approval
    approved = world.grants.approve_unmask(ada, grant.id)
    assert (approved.status, approved.approver) == (GrantStatus.ACTIVE, "ada")
    assert approved.expires_at == world.clock.now + timedelta(minutes=10)
    assert world.grants.active_grant(ivan, "door") == approved
    with pytest.raises(UnmaskError, match="not pending"):
        world.grants.approve_unmask(ada, grant.id)
    assert world.actions()[-2:] == ["unmask.approve", "unmask.start"]
    # The approver may also end it.
    assert world.grants.end_unmask(ada, grant.id).status is GrantStatus.ENDED


def test_two_person_deny_and_co_sign(make_world: Callable[[AuthSettings], World]) -> None:
    world = make_world(replace(FAST, two_person_unmask=True))
    ivan = world.add("ivan", Role.INVESTIGATOR)
    ada = world.add("ada", Role.ADMIN)
    denied = world.grants.request_unmask(ivan, "door", "case 20")
    assert world.grants.deny_unmask(ada, denied.id, "no case file").status is GrantStatus.DENIED
    assert world.grants.active_grant(ivan, "door") is None
    co_signed = world.grants.request_unmask(ivan, "door", "case 21", approver=ada)
    assert (co_signed.status, co_signed.approver) == (GrantStatus.ACTIVE, "ada")
    with pytest.raises(UnmaskError, match="different user"):
        world.grants.request_unmask(ivan, "door", "case 22", approver=ivan)
    assert [g.id for g in world.grants.list_grants(status=GrantStatus.DENIED)] == [denied.id]


def test_demoted_user_loses_the_unmasked_view(world: World) -> None:
    ada = world.add("ada", Role.ADMIN)
    world.add("ivan", Role.INVESTIGATOR)
    new = world.sessions.login("ivan", PASSWORD)
    ivan = new.session.principal
    world.grants.request_unmask(ivan, "door", "case 23")
    assert world.grants.active_grant(ivan, "door") is not None
    world.users.set_role(ada, "ivan", Role.VIEWER)
    demoted = world.sessions.resolve(new.token).principal
    assert world.grants.active_grant(demoted, "door") is None


def test_pending_request_expires_unapproved(make_world: Callable[[AuthSettings], World]) -> None:
    world = make_world(replace(FAST, two_person_unmask=True))
    ivan = world.add("ivan", Role.INVESTIGATOR)
    ada = world.add("ada", Role.ADMIN)
    grant = world.grants.request_unmask(ivan, "door", "case 24")
    world.clock.advance(hours=1, seconds=1)
    with pytest.raises(UnmaskError, match="waited more than"):
        world.grants.approve_unmask(ada, grant.id)
    assert world.grants.get(grant.id).status is GrantStatus.EXPIRED
    assert world.grants.active_grant(ivan, "door") is None


def test_parallel_guesses_cannot_pass_the_limit(world: World) -> None:
    """Each attempt is counted before its password is checked, atomically with the check."""
    world.add("alice", Role.VIEWER)
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def guess() -> None:
        start.wait()
        try:
            world.users.authenticate("alice", "wrong password!")
        except LoginThrottledError:
            outcome = "throttled"
        except AuthError:
            outcome = "checked"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=guess, name=f"guess-{k}") for k in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["checked"] * 5 + ["throttled"] * 7


def test_successful_logins_do_not_use_up_the_address_budget(world: World) -> None:
    world.add("alice", Role.VIEWER)
    for _ in range(30):
        world.users.authenticate("alice", PASSWORD, remote_addr="10.0.0.5")
    assert world.users.lockout_remaining("alice", "10.0.0.5") == timedelta(0)
