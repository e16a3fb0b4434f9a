"""The request id (issue 15, item 5): every answer, pages and static files included, carries
`X-Request-Id`, and every log line written while the request runs names it."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from portal import urls as portal_urls
from portal.request_id import RequestIdFilter, current_request_id


def _raises(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


urlpatterns = [path("v2/test/raises", _raises), *portal_urls.urlpatterns]


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """What the portal's console log handler (settings.LOGGING) writes during the test."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and any(isinstance(f, RequestIdFilter) for f in h.filters)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


@pytest.mark.parametrize("url", ["/healthz", "/auth/login/", "/no-such-page", "/static/css/portal.css"])
def test_every_answer_carries_a_request_id(db, url):
    response = Client().get(url)
    assert _is_uuid(response["X-Request-Id"]), (url, response.status_code)


def test_signed_in_pages_carry_a_request_id(persona):
    assert _is_uuid(persona("owner").get("/")["X-Request-Id"])


def test_each_request_gets_its_own_id(db):
    client = Client()
    assert client.get("/healthz")["X-Request-Id"] != client.get("/healthz")["X-Request-Id"]


@pytest.mark.parametrize("given", ["0f8fad5b-d9cb-469f-a165-70867728950e", "req_42", "a.b:c-d", "x" * 128])
def test_a_well_formed_incoming_id_is_kept(db, given):
    assert Client().get("/healthz", headers={"X-Request-Id": given})["X-Request-Id"] == given


@pytest.mark.parametrize("given", ["", "x" * 129, "two words", "a\tb", "<b>", "%0d%0a", "id;drop", "é"])
def test_an_ill_formed_incoming_id_is_replaced(db, given):
    assert _is_uuid(Client().get("/healthz", headers={"X-Request-Id": given})["X-Request-Id"])


def test_the_log_lines_of_a_request_name_its_id(db, console):
    response = Client().get("/v2/nothing_here", headers={"X-Request-Id": "trace-me-1"})

    lines = [line for line in console.getvalue().splitlines() if "/v2/nothing_here" in line]
    assert lines, console.getvalue()  # Django's "Not Found" warning, logged after the middleware returned
    assert all("trace-me-1" in line for line in lines), lines
    assert response["X-Request-Id"] == "trace-me-1"


@pytest.mark.urls(__name__)
def test_a_500s_log_lines_name_the_id_the_client_got(db, console):
    response = Client(raise_request_exception=False).get("/v2/test/raises")

    request_id = response["X-Request-Id"]
    logged = console.getvalue()
    assert "Internal Server Error: /v2/test/raises" in logged and "RuntimeError: a bug" in logged
    error_line = next(line for line in logged.splitlines() if "Internal Server Error" in line)
    assert request_id in error_line


def test_lines_logged_outside_a_request_say_so(db, console):
    Client().get("/healthz")  # a finished request leaves no id behind
    logging.getLogger("portal.test").warning("between requests")

    assert current_request_id() is None
    line = next(line for line in console.getvalue().splitlines() if "between requests" in line)
    assert "request_id=-" in line
