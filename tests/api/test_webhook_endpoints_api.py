"""Webhook endpoints through /v2: `GET/POST /v2/webhook_endpoints`, `GET/PATCH/DELETE
/v2/webhook_endpoints/{id}`, `GET /v2/webhook_endpoints/{id}/deliveries[/{delivery_id}]` and
`POST .../deliveries/{delivery_id}/actions/resend`: the key's account's endpoints, or with
`X-Managed-Account-Id` a managed account's; the secret in clear in the create answer only; the
URL checked as the portal's form checks it; deliveries to a real receiver on loopback, verified
with the `standardwebhooks` package."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook

from accounts.models import AuditEvent
from tests import webhook_receiver
from tests.api.conftest import assert_error
from webhooks.models import WebhookDelivery, WebhookEndpoint

HEADER = "HTTP_X_MANAGED_ACCOUNT_ID"
RANDOM_ID = "6f1c7a52-2d4e-4c1f-9d7e-1e2a3b4c5d6e"


@pytest.fixture
def receiver():
    server = webhook_receiver.start()
    yield server
    server.stop()


@pytest.fixture
def apis(world, make_key, raw_api):
    return {
        "manager": raw_api(make_key(world.manager)),
        "managed": raw_api(make_key(world.managed)),
        "other": raw_api(make_key(world.other_manager)),
    }


def create(api, url: str, events: list[str], **more):
    return api.post("webhook_endpoints", {"url": url, "event_types": events, **more}, **more.pop("extra", {}))


def disable(apis, world) -> None:
    response = apis["manager"].post(f"managed_accounts/{world.managed.public_id}/actions/disable", {})
    assert response.status_code == 200, response.content


def test_the_manager_creates_an_endpoint_reads_it_and_the_secret_is_shown_once(
    world, apis, receiver, django_capture_on_commit_callbacks
):
    body = {"url": receiver.url, "event_types": ["managed_account.disabled"], "description": "ops",
            "include_managed_accounts": True}  # fmt: skip
    response = apis["manager"].post("webhook_endpoints", body)
    assert response.status_code == 201, response.content
    created = response.json()["data"]
    assert created["record_type"] == "webhook_endpoint" and created["secret"].startswith("whsec_")
    assert created["account_id"] == str(world.manager.public_id)
    assert (created["url"], created["event_types"], created["enabled"]) == (
        receiver.url, ["managed_account.disabled"], True
    )  # fmt: skip
    one = apis["manager"].get(f"webhook_endpoints/{created['id']}").json()["data"]
    listed = apis["manager"].get("webhook_endpoints").json()
    assert "secret" not in one and "secret" not in listed["data"][0]
    assert listed["meta"] == {"page_number": 1, "page_size": 20, "total_pages": 1, "total_results": 1}
    assert one == {k: v for k, v in created.items() if k != "secret"}
    assert AuditEvent.objects.filter(account=world.manager, change_type="webhook_endpoint.created").count() == 1

    # The secret signs what the endpoint then receives.
    with django_capture_on_commit_callbacks(execute=True):
        disable(apis, world)
    (request,) = receiver.requests
    assert Webhook(created["secret"]).verify(request.body, request.headers)["data"]["event_type"] == (
        "managed_account.disabled"
    )


def test_update_disable_and_delete_are_audited_and_delete_removes_the_log(world, apis, receiver):
    created = create(apis["manager"], receiver.url, ["service.blocked"]).json()["data"]
    path = f"webhook_endpoints/{created['id']}"
    changed = apis["manager"].patch(path, {"enabled": False, "event_types": ["service.blocked", "payment.failed"]})
    assert changed.status_code == 200, changed.content
    assert changed.json()["data"]["enabled"] is False
    assert changed.json()["data"]["event_types"] == ["service.blocked", "payment.failed"]
    deleted = apis["manager"].send("DELETE", path)
    assert deleted.status_code == 200 and deleted.json()["data"]["id"] == created["id"]
    assert_error(apis["manager"].get(path), 404)
    assert not WebhookEndpoint.objects.exists()
    kinds = list(
        AuditEvent.objects.filter(change_type__startswith="webhook_endpoint").values_list("change_type", flat=True)
    )
    assert sorted(kinds) == ["webhook_endpoint.created", "webhook_endpoint.deleted", "webhook_endpoint.updated"]
    gone = AuditEvent.objects.get(change_type="webhook_endpoint.deleted")
    assert {"field": "url", "from": receiver.url, "to": None} in gone.changes


def test_deliveries_are_listed_and_one_is_sent_again_with_the_same_webhook_id(
    world, apis, receiver, django_capture_on_commit_callbacks
):
    created = create(apis["manager"], receiver.url, ["managed_account.disabled"]).json()["data"]
    with django_capture_on_commit_callbacks(execute=True):
        disable(apis, world)
    listed = apis["manager"].get(f"webhook_endpoints/{created['id']}/deliveries")
    assert listed.status_code == 200
    (delivery,) = listed.json()["data"]
    assert delivery["record_type"] == "webhook_delivery" and delivery["status"] == "delivered"
    assert (delivery["attempts"], delivery["response_code"], delivery["event_type"]) == (
        1, 204, "managed_account.disabled"
    )  # fmt: skip
    assert delivery["webhook_id"] == receiver.requests[0].headers["webhook-id"]
    assert delivery["data"]["payload"]["account_id"] == str(world.managed.public_id)
    filtered = apis["manager"].get(f"webhook_endpoints/{created['id']}/deliveries", {"filter[status]": "failed"})
    assert filtered.json()["data"] == []
    assert_error(
        apis["manager"].get(f"webhook_endpoints/{created['id']}/deliveries", {"filter[status]": "lost"}),
        422, parameter="filter[status]",
    )  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        resent = apis["manager"].post(f"webhook_endpoints/{created['id']}/deliveries/{delivery['id']}/actions/resend")
    assert resent.status_code == 200, resent.content
    assert resent.json()["data"]["status"] == "pending"  # queued after commit
    assert (
        apis["manager"].get(f"webhook_endpoints/{created['id']}/deliveries/{delivery['id']}").json()["data"]["status"]
        == "delivered"
    )
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery["webhook_id"]] * 2
    assert WebhookDelivery.objects.get().attempts == 2
    assert AuditEvent.objects.filter(change_type="webhook_delivery.resent").count() == 1


def test_a_manager_acts_on_a_managed_accounts_endpoints_with_the_header(world, apis, receiver):
    acting = {HEADER: str(world.managed.public_id)}
    response = apis["manager"].post(
        "webhook_endpoints", {"url": receiver.url, "event_types": ["service.blocked"]}, **acting
    )
    assert response.status_code == 201, response.content
    created = response.json()["data"]
    assert created["account_id"] == str(world.managed.public_id)
    assert apis["managed"].get("webhook_endpoints").json()["data"][0]["id"] == created["id"]
    assert apis["manager"].get("webhook_endpoints").json()["data"] == []  # not the manager's own
    event = AuditEvent.objects.get(change_type="webhook_endpoint.created")
    assert (event.account, event.change_made_by) == (world.managed, "account_manager")
    # A managed account has no managed accounts.
    refused = apis["manager"].patch(f"webhook_endpoints/{created['id']}", {"include_managed_accounts": True}, **acting)
    assert_error(refused, 422, pointer="/include_managed_accounts")


def test_other_tenants_and_unknown_ids_are_404(world, apis, receiver):
    created = create(apis["manager"], receiver.url, ["service.blocked"]).json()["data"]
    for path in (f"webhook_endpoints/{created['id']}", f"webhook_endpoints/{created['id']}/deliveries"):
        assert_error(apis["other"].get(path), 404)
        assert_error(apis["managed"].get(path), 404)
    assert_error(apis["other"].send("DELETE", f"webhook_endpoints/{created['id']}"), 404)
    assert_error(apis["other"].patch(f"webhook_endpoints/{created['id']}", {"enabled": False}), 404)
    for bad in (RANDOM_ID, "12345", "abc%00"):
        assert_error(apis["manager"].get(f"webhook_endpoints/{bad}"), 404)
        assert_error(apis["manager"].get(f"webhook_endpoints/{created['id']}/deliveries/{bad}"), 404)
    assert WebhookEndpoint.objects.get().enabled is True


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"url": "ftp://example.com/hooks", "event_types": ["service.blocked"]}, "/url"),
        ({"url": "https://user:pw@example.com/", "event_types": ["service.blocked"]}, "/url"),
        ({"url": "http://[::1", "event_types": ["service.blocked"]}, "/url"),
        ({"url": "http://example.com:99999/", "event_types": ["service.blocked"]}, "/url"),
        ({"url": "https://", "event_types": ["service.blocked"]}, "/url"),
        ({"url": "https://example.com/" + "x" * 2000, "event_types": ["service.blocked"]}, "/url"),
        ({"url": "https://example.com/\x00", "event_types": ["service.blocked"]}, "/url"),
        ({"url": 5, "event_types": ["service.blocked"]}, "/url"),
        ({"event_types": ["service.blocked"]}, "/url"),
        ({"url": "https://example.com/"}, "/event_types"),
        ({"url": "https://example.com/", "event_types": []}, "/event_types"),
        ({"url": "https://example.com/", "event_types": ["nope"]}, "/event_types"),
        ({"url": "https://example.com/", "event_types": "service.blocked"}, "/event_types"),
        ({"url": "https://example.com/", "event_types": [1]}, "/event_types"),
        ({"url": "https://example.com/", "event_types": ["service.blocked"], "include_managed_accounts": "yes"},
         "/include_managed_accounts"),
        ({"url": "https://example.com/", "event_types": ["service.blocked"], "secret": "mine"}, "/secret"),
        ({"url": "https://example.com/", "event_types": ["service.blocked"], "description": "d" * 201},
         "/description"),
    ],
)  # fmt: skip
def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(apis, body, pointer):
    assert_error(apis["manager"].post("webhook_endpoints", body), 422, pointer=pointer)
    assert not WebhookEndpoint.objects.exists()
    assert not AuditEvent.objects.filter(change_type__startswith="webhook").exists()


def test_in_production_a_loopback_url_is_refused(apis, settings):
    settings.PRODUCTION = True
    response = apis["manager"].post(
        "webhook_endpoints", {"url": "http://127.0.0.1:9/hooks", "event_types": ["service.blocked"]}
    )
    assert_error(response, 422, pointer="/url")
    assert "private, loopback or link-local" in response.json()["errors"][0]["detail"]
