"""Fixtures for the v2 API tests: API keys made through the services, the official telnyx SDK
pointed at the live server, and a raw-HTTP client for what the SDK would refuse to send."""

from __future__ import annotations

import json

import pytest
import telnyx
from django.core.cache import cache
from django.test import Client

from accounts.actor import Actor
from accounts.models import Account, Role
from accounts.services import create_api_key


@pytest.fixture(autouse=True)
def _fresh_rate_limit():
    """The per-key rate limit lives in the cache; no test inherits another's counts."""
    cache.clear()
    yield
    cache.clear()


def owner_of(account: Account):
    return account.memberships.get(role=Role.OWNER).user


@pytest.fixture
def make_key():
    """make_key(account, user=None, name=...) -> the raw key, created as the services do it."""

    def make(account: Account, user=None, name: str = "Test key") -> str:
        _, raw = create_api_key(account=account, name=name, actor=Actor(user=user or owner_of(account)))
        return raw

    return make


@pytest.fixture
def sdk(live_server):
    """sdk(raw_key) -> a telnyx.Telnyx client of the live server. Responses are validated against
    the SDK's own models (strict response validation), so a shape the SDK cannot parse fails."""
    clients = []

    def make(raw_key: str) -> telnyx.Telnyx:
        client = telnyx.Telnyx(
            api_key=raw_key,
            base_url=live_server.url + "/v2",
            max_retries=0,
            _strict_response_validation=True,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


class RawApi:
    """Raw HTTP through Django's test client (no client-side validation), keeping 500s as
    responses so a test can assert there is none."""

    def __init__(self, raw_key: str | None):
        self.client = Client(raise_request_exception=False)
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"} if raw_key else {}

    def get(self, path: str, params=None, **extra):
        return self.client.get(f"/v2/{path}", params or {}, **{**self.headers, **extra})

    def send(self, method: str, path: str, body=None, *, content_type="application/json", raw: bytes | None = None,
             **extra):  # fmt: skip
        if method.upper() in ("GET", "HEAD"):
            return getattr(self.client, method.lower())(f"/v2/{path}", **{**self.headers, **extra})
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        call = getattr(self.client, method.lower())
        return call(f"/v2/{path}", data=data, content_type=content_type, **{**self.headers, **extra})

    def post(self, path: str, body=None, **kwargs):
        return self.send("POST", path, body, **kwargs)

    def patch(self, path: str, body=None, **kwargs):
        return self.send("PATCH", path, body, **kwargs)


@pytest.fixture
def raw_api():
    """raw_api(raw_key) -> RawApi."""
    return RawApi


def assert_error(response, status: int, *, pointer: str | None = None, parameter: str | None = None) -> dict:
    """The response is `status` in the contract's error shape; returns the first error."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"errors"}, body
    assert isinstance(body["errors"], list) and body["errors"], body
    for item in body["errors"]:
        for field in ("code", "title", "detail"):
            assert isinstance(item.get(field), str) and item[field], (field, item)
        assert set(item) <= {"code", "title", "detail", "source", "meta"}, item
    first = body["errors"][0]
    if pointer is not None:
        assert first.get("source") == {"pointer": pointer}, first
    if parameter is not None:
        assert first.get("source") == {"parameter": parameter}, first
    return first
