"""Fuzz the HTTP API from its own OpenAPI description (schemathesis) on a live server.

Every operation gets a bounded number of generated requests, as an admin (an API token: every
scope), as a viewer, and with no credentials. Whatever the input, the server must answer
without a server error (5xx): bad input is the client's fault and must say so.
MJPEG streams are left out: they never end by themselves (their handling of a closed
connection is tested elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case

from test_server_api import Live, live_gateway
from veil.server.app import openapi_document

schema = schemathesis.openapi.from_dict(openapi_document()).exclude(path_regex=r"stream\.mjpeg$")


@pytest.fixture(scope="module")
def fuzz_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_gateway(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


@pytest.fixture(scope="module")
def tokens(fuzz_live: Live) -> dict[str, str]:
    found: dict[str, str] = {}
    for user in ("admin", "viewer1"):
        client = fuzz_live.token_client(user)
        found[user] = client.headers["Authorization"]
    return found


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_never_fails_with_a_server_error(
    case: Case[Any], fuzz_live: Live, tokens: dict[str, str], session: requests.Session
) -> None:
    for authorization in (tokens["admin"], tokens["viewer1"], None):
        headers = {"Authorization": authorization} if authorization else {}
        response = case.call(base_url=fuzz_live.url, session=session, headers=headers, timeout=30)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
        )
        if response.status_code >= 400:
            content_type = response.headers.get("content-type") or [""]
            assert content_type[0].startswith("application/json")
            assert response.json()["detail"]
