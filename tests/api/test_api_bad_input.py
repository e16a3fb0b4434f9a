"""Bad input to the v2 API, sent as raw HTTP (the SDK would refuse some of it client-side), so the
server's answer is what is tested: the status, the contract's error shape, the pointer to the
offending field or parameter, nothing written, and never a 500."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test import override_settings

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Invitation, User
from tests.api.conftest import assert_error

VALID = {"business_name": "Nova Dial", "email": "owner@nova.example.com"}


@pytest.fixture
def manager_api(world, make_key, raw_api):
    return raw_api(make_key(world.manager))


@pytest.fixture
def nothing_created(world):
    """Asserts, after the test, that no account, user or audit event was added."""

    def counts():
        events = AuditEvent.objects.exclude(change_type="api_key.created")  # the test's own key
        return Account.objects.count(), User.objects.count(), events.count()

    before = counts()
    yield
    assert counts() == before


def _managed_path(world, suffix: str = "") -> str:
    return f"managed_accounts/{world.managed.public_id}{suffix}"


# --- Bodies ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({**VALID, "colour": "blue"}, "/colour"),
        ({**VALID, "status": "disabled"}, "/status"),
        ({**VALID, "manager_account_id": "x"}, "/manager_account_id"),
        ({**VALID, "api_key": "KEYmine"}, "/api_key"),
    ],
)
def test_an_unknown_field_in_a_create_is_422(manager_api, nothing_created, body, pointer):
    assert_error(manager_api.post("managed_accounts", body), 422, pointer=pointer)


def test_every_unknown_field_is_named(manager_api, nothing_created):
    response = manager_api.post("managed_accounts", {**VALID, "zeta": 1, "alpha": 2})

    assert_error(response, 422, pointer="/alpha")
    assert [e["source"]["pointer"] for e in response.json()["errors"]] == ["/alpha", "/zeta"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"status": "disabled"}, "/status"),
        ({"email": "new@example.com"}, "/email"),
        # rollup_billing is a field of the update now (a billing-mode change from next month).
        ({"managed_account_allow_custom_pricing": True, "manager_account_id": "x"}, "/manager_account_id"),
    ],
)
def test_an_unknown_field_in_an_update_is_422_and_changes_nothing(world, manager_api, body, pointer):
    assert_error(manager_api.patch(_managed_path(world), body), 422, pointer=pointer)

    world.managed.refresh_from_db()
    assert (world.managed.status, world.managed.allow_custom_pricing) == (Account.Status.ENABLED, False)
    assert not AuditEvent.objects.filter(related_account=world.managed).exists()


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({**VALID, "business_name": 5}, "/business_name"),
        ({**VALID, "business_name": ["Nova"]}, "/business_name"),
        ({**VALID, "business_name": {"name": "Nova"}}, "/business_name"),
        ({**VALID, "email": 42}, "/email"),
        ({**VALID, "email": True}, "/email"),
        ({**VALID, "password": 123456789}, "/password"),
        ({**VALID, "rollup_billing": "yes"}, "/rollup_billing"),
        ({**VALID, "rollup_billing": 1}, "/rollup_billing"),
        ({**VALID, "rollup_billing": "true"}, "/rollup_billing"),
        ({**VALID, "managed_account_allow_custom_pricing": "false"}, "/managed_account_allow_custom_pricing"),
        ({**VALID, "managed_account_allow_custom_pricing": 0}, "/managed_account_allow_custom_pricing"),
    ],
)
def test_a_wrong_type_in_a_create_is_422_with_its_pointer(manager_api, nothing_created, body, pointer):
    assert_error(manager_api.post("managed_accounts", body), 422, pointer=pointer)


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"managed_account_allow_custom_pricing": "yes"}, "/managed_account_allow_custom_pricing"),
        ({"managed_account_allow_custom_pricing": 1}, "/managed_account_allow_custom_pricing"),
        ({"pricing_hidden": "true"}, "/pricing_hidden"),
        ({"organization_name": 5}, "/organization_name"),
        ({"organization_name": "   "}, "/organization_name"),
        ({"organization_name": "x" * 256}, "/organization_name"),
    ],
)
def test_a_wrong_type_in_an_update_is_422_with_its_pointer(world, manager_api, body, pointer):
    assert_error(manager_api.patch(_managed_path(world), body), 422, pointer=pointer)

    world.managed.refresh_from_db()
    assert world.managed.name == "Alpine Voice" and not world.managed.allow_custom_pricing


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"email": "owner@nova.example.com"}, "/business_name"),
        ({"business_name": None, "email": "owner@nova.example.com"}, "/business_name"),
        ({"business_name": "   ", "email": "owner@nova.example.com"}, "/business_name"),
        ({"business_name": "x" * 256, "email": "owner@nova.example.com"}, "/business_name"),
        # Without "email" the account is created with no owner (tests/api/test_audit_events_telnyx_meaning.py);
        # an empty one is still refused, as is a password with no owner to belong to.
        ({"business_name": "Nova Dial", "password": "correct-horse-battery-9"}, "/password"),
        ({"business_name": "Nova Dial", "email": ""}, "/email"),
        ({"business_name": "Nova Dial", "email": "not-an-email"}, "/email"),
        ({**VALID, "password": "short"}, "/password"),
        ({}, "/business_name"),
    ],
)
def test_a_missing_or_invalid_required_field_is_422(manager_api, nothing_created, body, pointer):
    assert_error(manager_api.post("managed_accounts", body), 422, pointer=pointer)


@pytest.mark.parametrize("email", ["alpine-owner@example.com", "ALPINE-OWNER@Example.com"])
def test_a_registered_owner_email_is_not_revealed_and_its_user_is_invited(world, manager_api, email):
    """Issue 11, hole 9: a 201 as for a new address, never "already exists"; the user who has the
    address is invited to own the account (accounts.services.create_managed_account)."""
    User.objects.filter(pk=world.users["managed_owner"].pk).update(email="alpine-owner@example.com")
    users = User.objects.count()

    response = manager_api.post("managed_accounts", {"business_name": "Copy", "email": email})

    assert response.status_code == 201, response.content
    managed = Account.objects.get(public_id=response.json()["data"]["id"])
    assert response.json()["data"]["email"] == "alpine-owner@example.com"
    assert Invitation.objects.filter(account=managed, email="alpine-owner@example.com", role="owner").exists()
    assert User.objects.count() == users and not managed.memberships.exists()


def test_a_malformed_json_body_is_400(world, manager_api, nothing_created):
    for raw in (b'{"business_name": "Nova"', b"{'business_name': 'Nova'}", b"\xff\xfe", b"nope"):
        assert_error(manager_api.post("managed_accounts", raw=raw), 400)
        assert_error(manager_api.patch(_managed_path(world), raw=raw), 400)
        assert_error(manager_api.post(_managed_path(world, "/actions/disable"), raw=raw), 400)
    world.managed.refresh_from_db()
    assert world.managed.status == Account.Status.ENABLED


@pytest.mark.parametrize("raw", [b"[]", b'"Nova"', b"42", b"null", b'[{"business_name": "Nova"}]'])
def test_a_json_body_that_is_not_an_object_is_422(manager_api, nothing_created, raw):
    assert_error(manager_api.post("managed_accounts", raw=raw), 422)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""]
)
def test_a_body_that_is_not_json_is_415(world, manager_api, nothing_created, content_type):
    raw = b'{"business_name": "Nova Dial", "email": "owner@nova.example.com"}'

    assert_error(manager_api.post("managed_accounts", raw=raw, content_type=content_type), 415)
    assert_error(manager_api.patch(_managed_path(world), raw=b'{"pricing_hidden": true}', content_type=content_type),
                 415)  # fmt: skip
    assert_error(manager_api.post(_managed_path(world, "/actions/disable"), raw=b"{}", content_type=content_type), 415)
    world.managed.refresh_from_db()
    assert world.managed.status == Account.Status.ENABLED and not world.managed.pricing_hidden


def test_json_with_a_charset_is_accepted(manager_api):
    response = manager_api.post("managed_accounts", VALID, content_type="application/json; charset=utf-8")

    assert response.status_code == 201, response.content


def test_reaching_the_managed_account_limit_is_422_and_creates_nothing(world, manager_api):
    Account.objects.filter(pk=world.manager.pk).update(managed_account_limit=2)  # it has two already
    users = User.objects.count()

    error = assert_error(manager_api.post("managed_accounts", VALID), 422)

    assert "limit" in error["detail"]
    assert Account.objects.filter(manager=world.manager).count() == 2
    assert User.objects.count() == users and not User.objects.filter(email=VALID["email"]).exists()
    assert not AuditEvent.objects.filter(change_type="managed_account.created").exists()
    # A cancelled account frees its place.
    services.change_managed_account_status(managed=world.sibling, action="cancel", actor=Actor(user=None))
    assert manager_api.post("managed_accounts", VALID).status_code == 201


def test_disabling_a_disabled_or_enabling_an_enabled_account_is_422(world, manager_api):
    assert_error(manager_api.post(_managed_path(world, "/actions/enable")), 422)
    assert manager_api.post(_managed_path(world, "/actions/disable")).status_code == 200

    error = assert_error(manager_api.post(_managed_path(world, "/actions/disable")), 422)

    assert "already" in error["detail"]
    assert AuditEvent.objects.filter(change_type="managed_account.disabled").count() == 1


def test_a_cancelled_account_cannot_be_enabled_or_changed(world, manager_api):
    services.change_managed_account_status(managed=world.managed, action="cancel", actor=Actor(user=None))

    assert_error(manager_api.post(_managed_path(world, "/actions/enable")), 422)
    assert_error(manager_api.post(_managed_path(world, "/actions/disable")), 422)
    assert_error(manager_api.patch(_managed_path(world), {"managed_account_allow_custom_pricing": True}), 422)
    world.managed.refresh_from_db()
    assert world.managed.status == Account.Status.CANCELLED and not world.managed.allow_custom_pricing


def test_an_unknown_field_in_an_action_body_is_422(world, manager_api):
    assert_error(manager_api.post(_managed_path(world, "/actions/disable"), {"reason": "x"}), 422, pointer="/reason")
    world.managed.refresh_from_db()
    assert world.managed.status == Account.Status.ENABLED


# --- Methods -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/actions/disable"),
        ("GET", "/actions/enable"),
        ("PUT", "/actions/disable"),
        ("DELETE", ""),
        ("POST", ""),
        ("PUT", ""),
    ],
)
def test_a_wrong_method_is_405(world, manager_api, method, path):
    response = manager_api.send(method, _managed_path(world, path), {})

    assert_error(response, 405)
    assert response["Allow"]
    world.managed.refresh_from_db()
    assert world.managed.status == Account.Status.ENABLED


@pytest.mark.parametrize(("method", "path"), [("DELETE", "managed_accounts"), ("POST", "audit_events")])
def test_a_wrong_method_on_a_list_is_405(manager_api, method, path):
    assert_error(manager_api.send(method, path, {}), 405)


# --- Query parameters --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"filter[email][contains]": "ab"},
        {"filter[email][contains]": "  ab  "},
        {"filter[email][contains]": ""},
        {"filter[organization_name][contains]": "Al"},
    ],
)
def test_a_contains_filter_under_three_characters_is_422(manager_api, params):
    (name,) = params
    assert_error(manager_api.get("managed_accounts", params), 422, parameter=name)


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("managed_accounts", {"page[size]": "0"}, "page[size]"),
        ("managed_accounts", {"page[size]": "251"}, "page[size]"),
        ("managed_accounts", {"page[size]": "1000"}, "page[size]"),
        ("managed_accounts", {"page[size]": "abc"}, "page[size]"),
        ("managed_accounts", {"page[size]": "-5"}, "page[size]"),
        ("managed_accounts", {"page[size]": "2.5"}, "page[size]"),
        ("managed_accounts", {"page[size]": ""}, "page[size]"),
        ("managed_accounts", {"page[number]": "0"}, "page[number]"),
        ("managed_accounts", {"page[number]": "-1"}, "page[number]"),
        ("managed_accounts", {"page[number]": "first"}, "page[number]"),
        ("audit_events", {"page[size]": "0"}, "page[size]"),
        ("audit_events", {"page[size]": "1000"}, "page[size]"),
        ("audit_events", {"page[number]": "0"}, "page[number]"),
        ("managed_accounts", {"sort": "name"}, "sort"),
        ("managed_accounts", {"sort": "+email"}, "sort"),
        ("managed_accounts", {"filter[status][eq]": "frozen"}, "filter[status][eq]"),  # "active" is Telnyx's
        ("managed_accounts", {"include_cancelled_accounts": "yes"}, "include_cancelled_accounts"),
        ("audit_events", {"sort": "newest"}, "sort"),
        ("audit_events", {"filter[created_after]": "yesterday"}, "filter[created_after]"),
        ("audit_events", {"filter[created_before]": "2025-13-01"}, "filter[created_before]"),
    ],
)
def test_a_bad_query_parameter_is_422_naming_it(manager_api, path, params, parameter):
    assert_error(manager_api.get(path, params), 422, parameter=parameter)


@pytest.mark.parametrize("number", ["99999999999999999999", str(2**63)])
def test_a_huge_page_number_is_not_a_server_error(manager_api, number):
    """BUG: page[number] has no upper bound (portal/api.py, _page_param called with maximum=None in
    page()), so the OFFSET (number - 1) * size overflows the database's 64-bit integer: a 500."""
    response = manager_api.get("managed_accounts", {"page[number]": number})

    assert response.status_code != 500
    if response.status_code == 200:
        assert response.json()["data"] == []
    else:
        assert_error(response, 422, parameter="page[number]")


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+12:00"])
def test_an_audit_time_filter_at_the_edge_of_the_calendar_is_not_a_server_error(manager_api, moment):
    """BUG on SQLite: a time that is valid ISO 8601 but falls outside years 1..9999 once converted
    to UTC (portal/api.py, query_time returns it unchecked) raises OverflowError in the query: a 500."""
    for name in ("filter[created_after]", "filter[created_before]"):
        response = manager_api.get("audit_events", {name: moment})

        assert response.status_code != 500, (name, moment)
        if response.status_code != 200:
            assert_error(response, 422, parameter=name)


def test_a_page_past_the_end_is_empty(manager_api):
    body = manager_api.get("managed_accounts", {"page[number]": "9", "page[size]": "250"}).json()

    assert body["data"] == []
    assert body["meta"] == {"page_number": 9, "page_size": 250, "total_pages": 1, "total_results": 2}


def test_the_page_size_bounds_are_accepted(manager_api):
    for size in ("1", "250"):
        assert manager_api.get("managed_accounts", {"page[size]": size}).json()["meta"]["page_size"] == int(size)


# --- Text the database may refuse --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "pointer"),
    [
        ("POST", "managed_accounts", {**VALID, "business_name": "Nova\x00Dial"}, "/business_name"),
        ("PATCH", "MANAGED", {"organization_name": "Alpine\x00Voice"}, "/organization_name"),
    ],
)
def test_a_nul_character_in_a_text_field_is_422(world, manager_api, method, path, body, pointer):
    """BUG: a NUL character in a text field reaches the database: PostgreSQL refuses it (a 500),
    SQLite stores a name the portal's own forms refuse (Django's ProhibitNullCharactersValidator).
    portal/api.py, string_field, should refuse it with a 422 naming the field."""
    path = _managed_path(world) if path == "MANAGED" else path

    response = manager_api.send(method, path, body)

    assert response.status_code != 500, connection.vendor
    assert_error(response, 422, pointer=pointer)


@pytest.mark.parametrize("name", ["filter[email][contains]", "filter[email][eq]", "filter[organization_name][eq]"])
def test_a_nul_character_in_a_filter_is_not_a_server_error(manager_api, name):
    """BUG on PostgreSQL: a NUL in a filter value goes into the query and psycopg refuses it (a 500);
    accounts/api.py, _filtered, should refuse it with a 422 naming the parameter."""
    response = manager_api.get("managed_accounts", {name: "abc\x00def"})

    assert response.status_code != 500, connection.vendor
    if response.status_code == 200:
        assert response.json()["data"] == []
    else:
        assert_error(response, 422, parameter=name)


# --- Unknown addresses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["nothing_here", "managed_accounts/", "managed_accounts/{id}/actions/cancel", "managed_accounts/{id}/extra"],
)
def test_an_unknown_api_address_answers_in_the_contracts_error_shape(world, manager_api, path):
    """BUG: an address under /v2/ that no API route matches gets Django's HTML 404 page, not the
    contract's {"errors": [...]} (portal/api_urls.py has no catch-all)."""
    assert_error(manager_api.get(path.format(id=world.managed.public_id)), 404)


# --- Rate limit --------------------------------------------------------------------------------------------


@override_settings(API_RATE_LIMIT_PER_MINUTE=3)
def test_the_rate_limit_is_429_per_key(world, make_key, raw_api):
    if time.time() % 60 > 57:  # stay inside one fixed one-minute window
        time.sleep(60 - time.time() % 60 + 0.1)
    first, second = raw_api(make_key(world.manager)), raw_api(make_key(world.manager))

    assert [first.get("managed_accounts").status_code for _ in range(3)] == [200, 200, 200]
    error = assert_error(first.get("managed_accounts"), 429)
    assert_error(first.post(_managed_path(world, "/actions/disable")), 429)

    assert "3" in error["detail"]
    world.managed.refresh_from_db()
    assert world.managed.status == Account.Status.ENABLED  # the refused request did nothing
    assert second.get("managed_accounts").status_code == 200  # the limit is per key
    assert_error(raw_api("KEYnope_x").get("managed_accounts"), 401)  # no key, no rate slot: still 401
