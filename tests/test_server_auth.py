"""Logging in, sessions, CSRF, API tokens, throttling and the role matrix, over real HTTP."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from test_server_api import PASSWORD, Live, live_gateway
from veil.vault.users import Principal, Role

MASKING = "/api/cameras/cam/masking"
NEW_MASKING = {"masks": [{"name": "corner", "rect": [0.0, 0.0, 0.5, 0.5], "color": "#ffffff"}]}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_gateway(tmp_path_factory.mktemp("auth")) as running:
        yield running


@pytest.fixture(scope="module")
def approval(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_gateway(tmp_path_factory.mktemp("approval"), approval=True) as running:
        yield running


def _cookie_header(reply: httpx.Response) -> str:
    cookies = reply.headers.get_list("set-cookie")
    assert len(cookies) == 1
    return cookies[0]


def test_login_sets_a_strict_http_only_cookie(live: Live) -> None:
    client = live.anonymous()
    reply = client.post("/api/login", json={"username": "viewer1", "password": PASSWORD})
    assert reply.status_code == 200
    body = reply.json()
    assert body["username"] == "viewer1"
    assert body["role"] == "viewer"
    assert body["scopes"] == ["view"]
    assert len(body["csrf_token"]) >= 32
    cookie = _cookie_header(reply).lower()
    assert cookie.startswith("veil_session=")
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/" in cookie
    assert "secure" not in cookie  # plain HTTP here; see the TLS test
    assert reply.headers["x-content-type-options"] == "nosniff"
    me = client.get("/api/me")
    assert me.status_code == 200
    assert me.json()["csrf_token"] == body["csrf_token"]


@pytest.mark.parametrize(
    ("username", "password"),
    [("viewer1", "wrong password entirely"), ("nobody-here", PASSWORD), ("viewer1", "")],
)
def test_bad_logins_are_refused_alike(live: Live, username: str, password: str) -> None:
    reply = live.anonymous().post("/api/login", json={"username": username, "password": password})
    if password == "":
        assert reply.status_code == 422
        return
    assert reply.status_code == 401
    assert reply.json()["detail"] == "invalid username or password"
    assert "set-cookie" not in reply.headers


def test_login_is_throttled_after_repeated_failures(live: Live) -> None:
    live.gateway.users.create(Principal.system(), "unlucky", PASSWORD, Role.VIEWER)
    client = live.anonymous()
    for _ in range(3):
        bad = client.post("/api/login", json={"username": "unlucky", "password": "guess" * 3})
        assert bad.status_code == 401
    # Even the right password is refused while the account is locked.
    locked = client.post("/api/login", json={"username": "unlucky", "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) >= 1
    assert "too many failed logins" in locked.json()["detail"]
    actions = [e.action for e in live.gateway.audit.entries(limit=10)]
    assert "login.throttled" in actions
    assert "login.failure" in actions


def test_not_logged_in_is_401(live: Live) -> None:
    client = live.anonymous()
    for method, path in [
        ("GET", "/api/me"),
        ("GET", "/api/cameras"),
        ("GET", "/api/cameras/cam/snapshot.jpg"),
        ("PUT", MASKING),
        ("GET", "/api/audit"),
    ]:
        reply = client.request(method, path, json=NEW_MASKING if method == "PUT" else None)
        assert reply.status_code == 401, path
        assert reply.json()["detail"] == "not logged in"
    forged = live.anonymous()
    forged.cookies.set("veil_session", "forged-session-value", domain="127.0.0.1")
    assert forged.get("/api/me").status_code == 401


@pytest.mark.parametrize("csrf", [None, "forged-token", ""])
def test_cookie_changes_need_the_csrf_token(live: Live, csrf: str | None) -> None:
    operator = live.login("operator1")
    before = operator.get(MASKING).json()
    if csrf is None:
        del operator.headers["X-CSRF-Token"]
    else:
        operator.headers["X-CSRF-Token"] = csrf
    reply = operator.put(MASKING, json=NEW_MASKING)
    assert reply.status_code == 403
    assert "CSRF" in reply.json()["detail"]
    assert operator.get(MASKING).json() == before
    assert operator.post("/api/cameras/cam/reset-background").status_code == 403


def test_another_sessions_csrf_token_is_refused(live: Live) -> None:
    mine = live.login("operator1")
    other = live.login("operator1")
    mine.headers["X-CSRF-Token"] = other.headers["X-CSRF-Token"]
    assert mine.put(MASKING, json=NEW_MASKING).status_code == 403


def test_logout_ends_the_session(live: Live) -> None:
    viewer = live.login("viewer1")
    stolen = viewer.cookies.get("veil_session")
    assert viewer.post("/api/logout").status_code == 200
    replay = live.anonymous()
    replay.cookies.set("veil_session", str(stolen), domain="127.0.0.1")
    assert replay.get("/api/me").status_code == 401


def test_bearer_tokens_need_no_csrf_and_keep_their_scopes(live: Live) -> None:
    operator = live.token_client("operator1")
    before = operator.get(MASKING).json()
    assert operator.put(MASKING, json=NEW_MASKING).status_code == 200
    assert operator.put(MASKING, json=before).status_code == 200
    view_only = live.token_client("operator1", scopes=["view"])
    assert view_only.get("/api/cameras").status_code == 200
    refused = view_only.put(MASKING, json=NEW_MASKING)
    assert refused.status_code == 403
    assert "configure" in refused.json()["detail"]
    too_much = live.login("viewer1").post("/api/tokens", json={"name": "x", "scopes": ["unmask"]})
    assert too_much.status_code == 403


def test_revoked_and_unknown_tokens_are_401(live: Live) -> None:
    viewer = live.login("viewer1")
    created = viewer.post("/api/tokens", json={"name": "cron"}).json()
    client = live.anonymous()
    client.headers["Authorization"] = f"Bearer {created['token']}"
    assert client.get("/api/cameras").status_code == 200
    assert viewer.delete(f"/api/tokens/{created['info']['id']}").status_code == 200
    assert client.get("/api/cameras").status_code == 401
    client.headers["Authorization"] = "Bearer veil_not-a-real-token"
    assert client.get("/api/cameras").status_code == 401


ROLE_MATRIX: list[tuple[str, str, str, Any, int]] = [
    ("viewer1", "GET", "/api/cameras/cam/snapshot.jpg", None, 200),
    ("viewer1", "PUT", MASKING, NEW_MASKING, 403),
    ("viewer1", "POST", "/api/cameras/cam/unmask", {"reason": "r"}, 403),
    ("viewer1", "GET", "/api/originals", None, 403),
    ("viewer1", "GET", "/api/users", None, 403),
    ("operator1", "PUT", MASKING, NEW_MASKING, 200),
    ("operator1", "POST", "/api/cameras/cam/unmask", {"reason": "r"}, 403),
    ("operator1", "GET", "/api/audit", None, 403),
    ("investigator1", "POST", "/api/cameras/cam/unmask", {"reason": "case 1"}, 200),
    ("investigator1", "POST", "/api/cameras/cam/unmask", {"minutes": 5}, 422),
    ("investigator1", "GET", "/api/originals", None, 200),
    ("investigator1", "GET", "/api/users", None, 403),
    ("admin", "GET", "/api/users", None, 200),
    ("admin", "GET", "/api/audit/verify", None, 200),
]


@pytest.mark.parametrize(("user", "method", "path", "body", "status"), ROLE_MATRIX)
def test_role_matrix(live: Live, user: str, method: str, path: str, body: Any, status: int) -> None:
    client = live.login(user)
    reply = client.request(method, path, json=body)
    assert reply.status_code == status, reply.text
    if status == 403:
        assert "lacks the" in reply.json()["detail"]
        denied = live.gateway.audit.entries(action="permission.denied", limit=1)[0]
        assert denied.actor == user


def test_approval_flow_needs_a_second_investigator(approval: Live) -> None:
    requester = approval.login("investigator1")
    snapshot = "/api/cameras/cam/unmasked/snapshot.jpg"
    grant = requester.post("/api/cameras/cam/unmask", json={"reason": "case 77"}).json()
    assert grant["status"] == "pending"
    assert requester.get(snapshot).status_code == 403
    own = requester.post(f"/api/unmask/{grant['id']}/approve")
    assert own.status_code == 400
    assert "different user" in own.json()["detail"]
    assert approval.login("viewer1").post(f"/api/unmask/{grant['id']}/approve").status_code == 403
    approved = approval.login("investigator2").post(f"/api/unmask/{grant['id']}/approve")
    assert approved.status_code == 200
    assert approved.json()["status"] == "active"
    assert approved.json()["approver"] == "investigator2"
    assert requester.get(snapshot).status_code == 200
    assert requester.post("/api/unmask/999999/approve").status_code == 404
    actions = [e.action for e in approval.gateway.audit.entries(limit=10)]
    assert "unmask.approve" in actions
    assert "unmask.start" in actions


def test_a_denied_request_never_opens_the_original(approval: Live) -> None:
    requester = approval.login("investigator2")
    grant = requester.post("/api/cameras/cam/unmask", json={"reason": "curiosity"}).json()
    denied = approval.login("investigator1").post(f"/api/unmask/{grant['id']}/deny")
    assert denied.status_code == 200
    assert denied.json()["status"] == "denied"
    assert requester.get("/api/cameras/cam/unmasked/snapshot.jpg").status_code == 403
    late = approval.login("admin").post(f"/api/unmask/{grant['id']}/approve")
    assert late.status_code == 400
    assert "not pending" in late.json()["detail"]


def _self_signed(folder: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_tls_serves_https_with_a_secure_cookie(tmp_path: Path) -> None:
    with live_gateway(tmp_path, tls=_self_signed(tmp_path)) as running:
        assert running.url.startswith("https://")
        reply = running.anonymous().post(
            "/api/login", json={"username": "viewer1", "password": PASSWORD}
        )
        assert reply.status_code == 200
        cookie = _cookie_header(reply).lower()
        assert "; secure" in cookie
        assert "httponly" in cookie


def test_users_change_their_own_password(live: Live) -> None:
    live.gateway.users.create(Principal.system(), "changer", PASSWORD, Role.VIEWER)
    live.passwords["changer"] = PASSWORD
    client = live.login("changer")
    wrong = client.post("/api/me/password", json={"current": "not it at all", "new": "x" * 16})
    assert wrong.status_code == 400
    assert client.get("/api/me").status_code == 200
    weak = client.post("/api/me/password", json={"current": PASSWORD, "new": "short"})
    assert weak.status_code == 400
    assert "too short" in weak.json()["detail"]
    new = "a brand new passphrase"
    assert (
        client.post("/api/me/password", json={"current": PASSWORD, "new": new}).status_code == 200
    )
    assert client.get("/api/me").status_code == 401  # every session ended
    live.passwords["changer"] = new
    assert live.login("changer").get("/api/me").json()["username"] == "changer"
