"""The OpenAPI 3.1 document of /v2 (portal/openapi.py), served at GET /v2/openapi.json, stays true to
the routes: every URL pattern of portal/api_urls.py is documented with exactly the methods its view
answers (asked of the view itself: a method it does not take is a 405 naming the ones it does, in
`Allow`), and nothing is documented that does not exist. tests/api/test_schemathesis.py then holds
the server to what the document says of each operation."""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.test import Client
from django.urls import URLPattern, URLResolver

from accounts.api import STATUS_FILTERS
from portal import api_urls
from portal.api import MAX_PAGE_SIZE
from reporting import telnyx_names

pytestmark = pytest.mark.django_db

OPERATIONS = ("get", "put", "post", "patch", "delete")
PROBE_METHOD = "OPTIONS"  # no /v2 view takes it: each answers 405 with its own methods in `Allow`
PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


def _served() -> dict:
    response = Client().get("/v2/openapi.json")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/json"
    return response.json()


def _routes() -> list[URLPattern]:
    """The /v2 routes, without the catch-all that answers unknown paths."""
    routes = []
    for pattern in api_urls.urlpatterns:
        assert not isinstance(pattern, URLResolver), "nested includes under /v2: teach this test to walk them"
        if pattern.callback is not api_urls.api_not_found:
            routes.append(pattern)
    return routes


def _openapi_path(pattern: URLPattern) -> str:
    """`managed_accounts/<str:managed_id>` -> `/managed_accounts/{managed_id}`."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))


def _methods_answered(path: str) -> set[str]:
    response = Client().generic(PROBE_METHOD, "/v2" + re.sub(r"\{\w+\}", PLACEHOLDER, path))
    assert response.status_code == 405, (path, response.status_code, response.content[:300])
    allowed = {m.strip().lower() for m in response["Allow"].split(",")}
    return allowed - {"head"}  # HEAD comes with GET


def test_the_document_is_served_without_a_key_as_json_and_is_valid_openapi_3_1():
    document = _served()
    assert document["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.1 meta-schema


def test_every_route_is_documented_with_exactly_the_methods_its_view_answers():
    documented = {
        path: {method for method in item if method in OPERATIONS} for path, item in _served()["paths"].items()
    }
    routes = {_openapi_path(pattern): _methods_answered(_openapi_path(pattern)) for pattern in _routes()}
    for path, methods in routes.items():
        assert path in documented, (
            f"{path} is routed in portal/api_urls.py but not in the OpenAPI document: "
            "document it in portal/openapi.py (_paths)."
        )
        assert documented[path] == methods, (
            f"{path}: its view answers {sorted(methods)} but the document says {sorted(documented[path])}: "
            "document it in portal/openapi.py (_paths)."
        )
    ghosts = sorted(set(documented) - set(routes))
    assert not ghosts, f"documented in portal/openapi.py but not routed in portal/api_urls.py: {ghosts}"


def test_every_keyed_operation_documents_the_on_behalf_header_and_the_answers_every_view_can_give():
    for path, item in _served()["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == []:
                continue  # the document itself: no key
            names = {p["name"] for p in operation["parameters"]}
            assert "X-Managed-Account-Id" in names, (method, path)
            assert {"401", "403", "404", "422", "429"} <= set(operation["responses"]), (method, path)
            assert "Retry-After" in operation["responses"]["429"]["headers"], (method, path)
            for status, answer in operation["responses"].items():
                assert "X-Request-Id" in answer["headers"], (method, path, status)
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= set(operation["responses"]), (method, path)


def test_parameters_and_enums_come_from_the_views_constants():
    paths = _served()["paths"]

    def parameter(path: str, name: str) -> dict:
        return next(p for p in paths[path]["get"]["parameters"] if p["name"] == name)

    assert parameter("/managed_accounts", "filter[status][eq]")["schema"]["enum"] == list(STATUS_FILTERS)
    assert {"all", "active", "blocked"} <= set(STATUS_FILTERS)
    assert parameter("/invoices", "page[size]")["schema"]["maximum"] == MAX_PAGE_SIZE
    product = parameter("/usage_reports", "product")["schema"]["anyOf"][0]["enum"]
    assert set(telnyx_names.FAMILIES) <= set(product) and "messaging" in product and "call-control" in product
    dimensions = parameter("/usage_reports", "dimensions")["schema"]["items"]["enum"]
    assert {"direction", "country", "country_code", "country_iso", "destination_type", "date"} <= set(dimensions)
    for name in ("start_date", "end_date", "date_range", "metrics", "format", "managed_accounts", "sort"):
        parameter("/usage_reports", name)
    enable = paths["/managed_accounts/{managed_id}/actions/enable"]["post"]
    field = enable["requestBody"]["content"]["application/json"]["schema"]["properties"]["reenable_all_connections"]
    assert "ignored" in field["description"]
