"""Every answer under /v2/ is JSON in the contract's shape, whatever the method, path or failure,
and carries the `x-request-id` Telnyx clients log (issue 15, items 3 and 5).

The module's own URLconf adds views that fail in ways no API view does (raise, forget
csrf_exempt, raise Http404 or a refusal of Django's) in front of the portal's, so the answers of
Django's site-wide handlers under /v2/ are tested too."""

from __future__ import annotations

import time
import uuid

import pytest
import telnyx
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

from accounts.api_access import ApiRequest
from portal import urls as portal_urls
from portal.api import api_view
from tests.api.conftest import assert_error


def _raises(exception: Exception):
    def view(request: HttpRequest) -> HttpResponse:
        raise exception

    return view


def _not_csrf_exempt(request: HttpRequest) -> HttpResponse:
    return HttpResponse("accepted")


@api_view("GET", "POST")
def _api_view_that_raises(request: ApiRequest) -> HttpResponse:
    raise RuntimeError("a bug inside an API view")


urlpatterns = [
    path("v2/test/raises", _raises(RuntimeError("a bug"))),
    path("v2/test/raises-404", _raises(Http404("nothing"))),
    path("v2/test/raises-suspicious", _raises(SuspiciousOperation("odd"))),
    path("v2/test/raises-too-big", _raises(RequestDataTooBig("big"))),
    path("v2/test/not-csrf-exempt", _not_csrf_exempt),
    path("v2/test/api-view-raises", _api_view_that_raises),
    path("test/page-raises", _raises(RuntimeError("a bug in a page"))),
    *portal_urls.urlpatterns,
]

pytestmark = pytest.mark.urls(__name__)

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


@pytest.fixture
def strict_client() -> Client:
    """A client that checks CSRF as browsers' requests are checked (Django's test client does not
    by default) and keeps 500s as answers."""
    return Client(enforce_csrf_checks=True, raise_request_exception=False)


@pytest.fixture
def manager_key(world, make_key) -> str:
    return make_key(world.manager)


def _send(client: Client, method: str, url: str, key: str | None = None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return client.generic(method, url, b"{}", content_type="application/json", **headers, **extra)


def assert_json_answer(response, status: int, method: str = "GET") -> dict | None:
    """The contract's error shape (HEAD answers carry no body) and a request id."""
    assert response.get("X-Request-Id"), dict(response.items())
    if method == "HEAD":
        assert response.status_code == status, response.status_code
        assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
        return None
    return assert_error(response, status)


# --- Item 3: unknown paths and wrong methods, every method, with CSRF checked ---------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("with_key", [True, False], ids=["key", "no-key"])
def test_an_unknown_path_is_a_json_404_for_every_method(db, strict_client, manager_key, method, with_key):
    """BUG (issue 15, item 3): a POST, PUT, PATCH or DELETE to an unknown /v2/ path got Django's
    HTML CSRF 403, the catch-all not being CSRF-exempt."""
    response = _send(strict_client, method, "/v2/nothing_here", manager_key if with_key else None)
    assert_json_answer(response, 404, method)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "TRACE"])
@pytest.mark.parametrize("route", ["managed_accounts", "balance", "usage_records", "audit_events"])
def test_a_wrong_method_on_a_known_path_is_a_json_405(db, strict_client, manager_key, method, route):
    response = _send(strict_client, method, f"/v2/{route}", manager_key)
    assert_json_answer(response, 405, method)
    assert response["Allow"]


def test_the_api_root_itself_is_a_json_404(db, strict_client):
    assert_json_answer(_send(strict_client, "POST", "/v2/"), 404)


# --- Item 3: Django's own answers under /v2/ -----------------------------------------------------------


def test_a_view_that_raises_is_a_json_500(db, strict_client):
    response = strict_client.get("/v2/test/raises")
    error = assert_json_answer(response, 500)
    assert error["code"] == "internal_error"
    assert "a bug" not in response.content.decode()  # nothing of the exception reaches the client


def test_an_api_view_that_raises_is_a_json_500(db, strict_client, manager_key):
    response = _send(strict_client, "POST", "/v2/test/api-view-raises", manager_key)
    assert assert_json_answer(response, 500)["code"] == "internal_error"


@override_settings(DEBUG=True)
def test_a_500_is_json_with_debug_on_too(db, strict_client):
    """Django's technical 500 page is HTML; the traceback goes to the log instead."""
    assert_json_answer(strict_client.get("/v2/test/raises"), 500)


def test_a_page_that_raises_keeps_the_sites_html_500(db, strict_client):
    """Only /v2/ is JSON: the pages keep Django's handler500."""
    response = strict_client.get("/test/page-raises")
    assert response.status_code == 500 and response["Content-Type"].startswith("text/html")
    assert response.get("X-Request-Id")  # pages carry the request id too


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/v2/test/raises-404", 404, "not_found"),
        ("/v2/test/raises-suspicious", 400, "bad_request"),
        ("/v2/test/raises-too-big", 413, "payload_too_large"),
    ],
)
def test_djangos_refusals_outside_an_api_view_are_json(db, strict_client, url, status, code):
    assert assert_json_answer(strict_client.get(url), status)["code"] == code


def test_a_view_that_forgot_csrf_exempt_answers_a_json_403(db, strict_client):
    """The safety net: Django's CSRF failure page becomes the contract's 403."""
    response = strict_client.post("/v2/test/not-csrf-exempt")
    assert assert_json_answer(response, 403)["code"] == "forbidden"


def test_a_disallowed_host_is_a_json_400(db, strict_client):
    response = strict_client.get("/v2/managed_accounts", HTTP_HOST="attacker.example")
    assert assert_json_answer(response, 400)["code"] == "bad_request"


def test_a_body_over_the_servers_limit_is_a_json_413_with_a_request_id(db, strict_client, world, make_key):
    key = make_key(world.managed)
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        response = strict_client.post(
            "/v2/usage_records", b"[" + b" " * 2000 + b"]", content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )  # fmt: skip
    assert assert_json_answer(response, 413)["code"] == "payload_too_large"


# --- Item 5: the request id, through the official SDK --------------------------------------------------


def test_the_sdk_sees_a_request_id_on_every_answer(world, make_key, sdk):
    api = sdk(make_key(world.manager))

    listed = api.managed_accounts.with_raw_response.list()
    retrieved = api.managed_accounts.with_raw_response.retrieve(str(world.managed.public_id))

    ids = [listed.headers.get("x-request-id"), retrieved.headers.get("x-request-id")]
    assert all(ids) and ids[0] != ids[1]
    assert all(str(uuid.UUID(i)) == i for i in ids)  # made here: a UUID


def test_the_sdk_gets_its_own_request_id_back(world, make_key, sdk):
    api = sdk(make_key(world.manager))
    mine = "client-0f3c9a.42"

    answer = api.managed_accounts.with_raw_response.list(extra_headers={"X-Request-Id": mine})

    assert answer.headers["x-request-id"] == mine


@pytest.mark.parametrize("given", ["", "x" * 129, "has space", "semi;colon", 'quote"d', "<script>"])
def test_an_ill_formed_request_id_is_replaced_by_a_new_one(world, make_key, sdk, given):
    api = sdk(make_key(world.manager))

    answer = api.managed_accounts.with_raw_response.list(extra_headers={"X-Request-Id": given})

    assert str(uuid.UUID(answer.headers["x-request-id"])) == answer.headers["x-request-id"]


def test_the_sdks_errors_carry_the_request_id_and_the_contracts_shape(world, make_key, sdk):
    api = sdk(make_key(world.manager))

    with pytest.raises(telnyx.NotFoundError) as not_found:
        api.post("/nothing_here", cast_to=object, body={})
    with pytest.raises(telnyx.NotFoundError) as another_tenant:
        api.managed_accounts.retrieve(str(world.other_managed.public_id))
    with pytest.raises(telnyx.AuthenticationError) as no_key:
        sdk("KEY000000000000_not-a-key").managed_accounts.list()

    for raised in (not_found, another_tenant, no_key):
        assert raised.value.response.headers.get("x-request-id")
        assert isinstance(raised.value.body, dict) and set(raised.value.body) == {"errors"}


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_sdk_gets_json_from_an_unknown_path_for_every_method(world, make_key, sdk, method):
    api = sdk(make_key(world.manager))
    with pytest.raises(telnyx.NotFoundError) as raised:
        getattr(api, method)("/no/such/thing", cast_to=object, **({} if method == "delete" else {"body": {}}))
    assert raised.value.body["errors"][0]["code"] == "not_found"  # type: ignore[index]
    assert raised.value.response.headers["content-type"].startswith("application/json")


def test_the_sdk_gets_a_json_500_with_a_request_id(world, make_key, sdk):
    api = sdk(make_key(world.manager))
    with pytest.raises(telnyx.InternalServerError) as raised:
        api.get("/test/raises", cast_to=object)
    assert raised.value.body["errors"][0]["code"] == "internal_error"  # type: ignore[index]
    assert raised.value.response.headers.get("x-request-id")


@override_settings(API_RATE_LIMIT_PER_MINUTE=1)
def test_the_sdk_sees_retry_after_and_the_request_id_on_a_429(world, make_key, sdk):
    if time.time() % 60 > 55:  # both calls inside one fixed one-minute window
        time.sleep(60 - time.time() % 60 + 0.1)
    api = sdk(make_key(world.manager))
    api.managed_accounts.list()

    with pytest.raises(telnyx.RateLimitError) as raised:
        api.managed_accounts.list()

    headers = raised.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers.get("x-request-id")
    assert raised.value.body["errors"][0]["code"] == "rate_limited"  # type: ignore[index]
