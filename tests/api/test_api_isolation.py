"""Tenant isolation of the v2 API: what each key may see and touch, and which keys are refused.

The first test drives the official SDK (its exception classes are what a client sees); the rest
send raw HTTP through Django's test client, so they run without a live server.
"""

from __future__ import annotations

import pytest
import telnyx
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, ApiKey, AuditEvent
from billing.models import Product, Rate
from tests.api.conftest import assert_error
from tests.factories import UserFactory
from tests.mfa_support import force_login_with_mfa


def _snapshot(account: Account) -> dict:
    account.refresh_from_db()
    return {f: getattr(account, f) for f in ("name", "status", "allow_custom_pricing", "pricing_hidden", "updated_at")}


def test_the_sdk_sees_404_403_and_401_where_a_key_may_not_go(world, make_key, sdk):
    managed_api = sdk(make_key(world.managed))
    manager_api = sdk(make_key(world.manager))

    with pytest.raises(telnyx.PermissionDeniedError):
        managed_api.managed_accounts.list()
    for hidden in (world.sibling, world.manager, world.managed):
        with pytest.raises(telnyx.NotFoundError):
            managed_api.managed_accounts.retrieve(str(hidden.public_id))
    with pytest.raises(telnyx.NotFoundError):
        manager_api.managed_accounts.retrieve(str(world.other_managed.public_id))
    with pytest.raises(telnyx.NotFoundError):
        manager_api.managed_accounts.actions.disable(str(world.other_managed.public_id))
    with pytest.raises(telnyx.AuthenticationError):
        sdk("KEY0000_not-a-key").managed_accounts.list()
    assert manager_api.managed_accounts.retrieve(str(world.managed.public_id)).data.id == str(world.managed.public_id)


def test_a_managed_accounts_key_sees_neither_its_siblings_nor_its_manager(world, make_key, raw_api):
    api = raw_api(make_key(world.managed))

    assert_error(api.get("managed_accounts"), 403)
    assert_error(api.post("managed_accounts", {"business_name": "X", "email": "x@example.com"}), 403)
    for account in (world.sibling, world.manager, world.managed, world.other_managed):
        path = f"managed_accounts/{account.public_id}"
        assert_error(api.get(path), 404)
        assert_error(api.patch(path, {"managed_account_allow_custom_pricing": True}), 404)
        assert_error(api.post(f"{path}/actions/disable"), 404)
    assert Account.objects.filter(status=Account.Status.DISABLED).count() == 0
    assert not Account.objects.filter(allow_custom_pricing=True).exists()


def test_a_not_found_answer_does_not_reveal_whether_the_id_exists(world, make_key, raw_api):
    api = raw_api(make_key(world.manager))

    other = api.get(f"managed_accounts/{world.other_managed.public_id}")
    missing = api.get("managed_accounts/6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b")
    garbage = api.get("managed_accounts/not-a-uuid")

    assert assert_error(other, 404) == assert_error(missing, 404) == assert_error(garbage, 404)


def test_a_manager_key_cannot_touch_another_managers_managed_account(world, make_key, raw_api):
    api = raw_api(make_key(world.manager))
    before = _snapshot(world.other_managed)
    path = f"managed_accounts/{world.other_managed.public_id}"

    assert_error(api.get(path), 404)
    assert_error(api.patch(path, {"managed_account_allow_custom_pricing": True, "organization_name": "Taken"}), 404)
    assert_error(api.post(f"{path}/actions/disable"), 404)
    assert_error(api.post(f"{path}/actions/enable"), 404)
    listed = api.get("managed_accounts", {"include_cancelled_accounts": "true", "page[size]": 250}).json()
    assert str(world.other_managed.public_id) not in {a["id"] for a in listed["data"]}
    assert listed["meta"]["total_results"] == 2

    assert _snapshot(world.other_managed) == before
    assert not AuditEvent.objects.filter(related_account=world.other_managed).exists()
    assert not AuditEvent.objects.filter(account=world.other_manager).exists()


def test_a_standard_accounts_key_is_not_a_manager(world, make_key, raw_api):
    api = raw_api(make_key(world.standard))

    assert_error(api.get("managed_accounts"), 403)
    assert_error(api.post("managed_accounts", {"business_name": "X", "email": "x@example.com"}), 403)
    assert_error(api.get(f"managed_accounts/{world.managed.public_id}"), 404)
    assert_error(api.post(f"managed_accounts/{world.managed.public_id}/actions/disable"), 404)
    assert api.get("audit_events").status_code == 200


def test_a_revoked_key_is_refused(world, make_key, raw_api):
    raw = make_key(world.manager)
    api = raw_api(raw)
    assert api.get("managed_accounts").status_code == 200

    services.revoke_api_key(key=ApiKey.objects.get(account=world.manager), actor=Actor(user=world.users["owner"]))

    assert_error(api.get("managed_accounts"), 401)
    assert_error(api.post(f"managed_accounts/{world.managed.public_id}/actions/disable"), 401)
    world.managed.refresh_from_db()
    assert world.managed.status == Account.Status.ENABLED


def test_the_key_of_a_disabled_or_cancelled_account_is_refused(world, make_key, raw_api):
    managed_api = raw_api(make_key(world.managed))
    sibling_api = raw_api(make_key(world.sibling))
    assert managed_api.get("audit_events").status_code == 200
    actor = Actor(user=world.users["owner"])

    services.change_managed_account_status(managed=world.managed, action="disable", actor=actor)
    services.change_managed_account_status(managed=world.sibling, action="cancel", actor=actor)

    assert_error(managed_api.get("audit_events"), 401)
    assert_error(sibling_api.get("audit_events"), 401)

    services.change_managed_account_status(managed=world.managed, action="enable", actor=actor)
    assert managed_api.get("audit_events").status_code == 200


def test_the_key_of_a_disabled_manager_is_refused(world, make_key, raw_api):
    api = raw_api(make_key(world.manager))
    Account.objects.filter(pk=world.manager.pk).update(status=Account.Status.DISABLED)

    assert_error(api.get("managed_accounts"), 401)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token {key}",
        "{key}",
        "Bearer {key}x",
        "Bearer KEY",
        "Bearer not-a-key",
        "Bearer {key} {key}",
    ],
)
def test_a_missing_or_malformed_authorization_header_is_401(world, make_key, raw_api, header):
    raw = make_key(world.manager)
    api = raw_api(None)
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header.format(key=raw)}

    assert_error(api.get("managed_accounts", **extra), 401)
    assert_error(api.get("audit_events", **extra), 401)


def test_the_bearer_scheme_is_case_insensitive(world, make_key, raw_api):
    raw = make_key(world.manager)

    assert raw_api(None).get("managed_accounts", HTTP_AUTHORIZATION=f"bearer {raw}").status_code == 200


def test_a_portal_session_is_no_api_key(world, raw_api):
    api = raw_api(None)
    api.client.force_login(world.users["owner"])

    assert_error(api.get("managed_accounts"), 401)


def test_audit_events_never_include_another_tenants_events(world, make_key, raw_api):
    owner, other = Actor(user=world.users["owner"]), Actor(user=world.users["other_tenant"])
    keys = {name: make_key(getattr(world, name)) for name in ("manager", "managed", "sibling", "other_manager",
                                                                "other_managed", "standard")}  # fmt: skip
    services.update_managed_account(managed=world.managed, actor=owner, allow_custom_pricing=True)
    services.update_managed_account(managed=world.sibling, actor=owner, pricing_hidden=True)
    services.change_managed_account_status(managed=world.other_managed, action="disable", actor=other)
    services.change_managed_account_status(managed=world.other_managed, action="enable", actor=other)
    services.update_account_settings(account=world.standard, actor=Actor(user=world.users["standard_owner"]),
                                     name="Solo Renamed", admins_can_log_in_as=False)  # fmt: skip

    for name, raw in keys.items():
        account = getattr(world, name)
        body = raw_api(raw).get("audit_events", {"page[size]": 250}).json()
        listed = {e["id"] for e in body["data"]}
        expected = {str(e.public_id) for e in AuditEvent.objects.filter(account=account)} | {
            str(e.public_id) for e in AuditEvent.objects.filter(related_account=account)
        }
        assert listed == expected, name
        assert body["meta"]["total_results"] == len(expected)
        for event in AuditEvent.objects.filter(public_id__in=listed):
            assert account.pk in (event.account_id, event.related_account_id), (name, event)
        ours = {str(a.public_id) for a in (account, *Account.objects.filter(manager=account))}
        if account.manager_id:
            ours.add(str(account.manager.public_id))
        assert {e["organization_id"] for e in body["data"]} <= ours, name

    managed_changes = {e["change_type"] for e in raw_api(keys["managed"]).get("audit_events").json()["data"]}
    assert "managed_account.updated" in managed_changes  # its own change, made by its manager
    sibling_view = raw_api(keys["sibling"]).get("audit_events").json()["data"]
    assert str(world.managed.public_id) not in {e["resource_id"] for e in sibling_view}


def test_a_hidden_pricing_accounts_audit_events_carry_no_rate(world, make_key, raw_api):
    """BUG: staff setting a custom rate on a managed account (admin, billing/admin.py RateAdmin.save_model)
    writes a `rate.changed` event with the unit price into that account's own log, and
    GET /v2/audit_events serves it to the account's key even when its pricing is hidden."""
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True, allow_custom_pricing=True)
    staff = UserFactory(email="staff@platform.example.com", is_staff=True, is_superuser=True)
    admin = Client()
    force_login_with_mfa(admin, staff)
    product = Product.objects.filter(active=True).first()
    response = admin.post(
        reverse("admin:billing_rate_add"),
        {"product": product.pk, "account": world.managed.pk, "unit_price": "0.987654",
         "effective_from_0": "2025-01-01", "effective_from_1": "00:00:00"},
    )  # fmt: skip
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    assert Rate.objects.filter(account=world.managed).exists()

    body = raw_api(make_key(world.managed)).get("audit_events", {"page[size]": 250}).content.decode()

    assert "0.987654" not in body
