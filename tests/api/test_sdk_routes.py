"""Every /v2 operation driven through the official telnyx SDK (pinned) with strict response
validation against OUR OpenAPI document.

One parametrised test per documented operation: the case makes its call through `telnyx.Telnyx`
(`_strict_response_validation=True`): the SDK's typed resource where it has one (managed accounts
and their actions, audit events, usage reports and their options, balance, invoices, one
notification setting), whose answer is parsed both into the SDK's own model and into ours
(`with_raw_response ... .parse(to=...)`), and the SDK's generic client
(`client.get/post/put/patch/delete(path, cast_to=...)`) for the resources it has no class for (usage
records, credit transfers, spend limits, credit limits, a managed account's users, webhook
endpoints and their deliveries, the low-balance threshold, the document itself) and for the
notification settings' list and PATCH (the SDK's model of a setting has no `disabled` status:
Telnyx deletes a setting instead; the SDK has no update). Our models (tests/api/sdk_models.py)
are generated from the document and closed: an undeclared field, a missing one or a wrong type
fails the SDK's validation.

An httpx hook records every request the SDK sends; each case must have reached its route (resolved
by Django's URL resolver) with the documented success status. The guard test walks the URL patterns
of portal/api_urls.py and fails naming any route and method no case drives."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pydantic
import pytest
import telnyx
from django.apps import apps
from django.test import Client
from django.urls import URLPattern, resolve
from telnyx._models import validate_type

from accounts import services
from accounts.actor import Actor
from accounts.models import Account
from billing.invoices.builder import invoice_party
from billing.ledger.services import post_entry, post_usage_charges
from billing.models import LedgerEntry
from billing.usage.services import ingest_usage
from portal import api_urls
from tests import webhook_receiver
from tests.api.sdk_models import component, documented_operations, python_name, response_model

MONTH = date(2025, 3, 1)
# Telnyx's documentation's window: an instant with an offset, read as 2022-12-25T00:20:30Z .. +1 day.
TELNYX_WINDOW = {"start_date": "2022-12-24T19:20:30-05:00", "end_date": "2022-12-25T19:20:30-05:00"}
# Routes other work is adding today: listed here while they do not exist; once one does, the
# pending test fails until a case drives it and it leaves this list.
PENDING = ("credit_notes", "resale_rates", "billing_profile")


@dataclass
class Fleet:
    """The world's manager (Acme Reseller) with its roll-up managed account (Alpine Voice) and a
    separately billed one (Canyon Lines), a top-up, usage, an invoice, and SDK clients."""

    world: Any
    separate: Account
    invoice_id: str
    manager: telnyx.Telnyx
    on_behalf: telnyx.Telnyx  # the manager's key naming Canyon Lines in X-Managed-Account-Id
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status) the SDK sent
    hooks: str = ""  # the URL of a real receiver on loopback (tests/webhook_receiver.py): webhooks get a 204

    @property
    def separate_id(self) -> str:
        return str(self.separate.public_id)

    @property
    def manager_id(self) -> str:
        return str(self.world.manager.public_id)


@pytest.fixture
def fleet(world, transactional_db, live_server, make_key) -> Any:
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)  # flushed by the live server
    owner = world.users["owner"]
    separate = services.create_managed_account(
        manager=world.manager, name="Canyon Lines", owner_email="canyon@example.com", owner_password=None,
        billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False, pricing_hidden=False,
        actor=Actor(user=owner),
    )  # fmt: skip
    post_entry(account=world.manager, kind=LedgerEntry.Kind.TOP_UP, amount=Decimal("500.00"), key="sdk-top-up",
               description="Top-up")  # fmt: skip
    rows = [
        {"account": str(account.public_id), "product": product, "quantity": quantity, "started_at": started_at,
         "idempotency_key": f"sdk-{n}", "direction": direction, "country": country, "destination": destination}
        for n, (account, product, quantity, started_at, direction, country, destination) in enumerate([
            (world.managed, "voice.outbound", "10", "2025-03-02T10:00:00Z", "outbound", "US", "+18005550100"),
            (world.manager, "sms.outbound", "7", "2025-03-03T10:00:00Z", "outbound", "US", "+15551230001"),
            (separate, "voice.outbound", "30.5", "2025-03-04T10:00:00Z", "outbound", "GB", "+442071234567"),
            (world.manager, "sms.outbound", "2", "2022-12-25T00:20:30Z", "outbound", "CA", "+14165550001"),
            (world.manager, "sms.inbound", "3", "2022-12-25T10:00:00Z", "inbound", "US", "+15551230002"),
            (world.manager, "sms.outbound", "8", "2022-12-26T00:20:30Z", "outbound", "US", "+15551230003"),
        ])
    ]  # fmt: skip
    ingest_usage(submitter=world.manager, rows=rows, source="api", actor=Actor(user=owner))
    for account in (world.manager, separate):
        post_usage_charges(account=account, month=MONTH)
    invoice = invoice_party(account=world.manager, month=MONTH)
    seen: list[tuple[str, str, int]] = []

    def record(response: httpx.Response) -> None:
        seen.append((response.request.method, response.request.url.path, response.status_code))

    def client(**headers: str) -> telnyx.Telnyx:
        return telnyx.Telnyx(
            api_key=make_key(world.manager), base_url=live_server.url + "/v2", max_retries=0,
            _strict_response_validation=True, default_headers=headers,
            http_client=telnyx.DefaultHttpxClient(event_hooks={"response": [record]}),
        )  # fmt: skip

    on_behalf = client(**{"X-Managed-Account-Id": str(separate.public_id)})
    receiver = webhook_receiver.start()
    made = Fleet(world, separate, str(invoice.public_id), client(), on_behalf, seen, receiver.url)
    yield made
    made.manager.close()
    made.on_behalf.close()
    receiver.stop()


# --- Calls ---------------------------------------------------------------------------------------------


def typed(raw: Any, method: str, path: str, status: int = 200) -> Any:
    """A typed resource's raw answer: parsed by the SDK's own model (strictly) and by ours."""
    assert raw.status_code == status, (method, path, raw.status_code, raw.text()[:300])
    raw.parse()  # the SDK's model of Telnyx's resource
    return raw.parse(to=response_model(method, path, status))


def generic(client: telnyx.Telnyx, method: str, path: str, url: str, status: int = 200, *, body: Any = None,
            params: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Any:  # fmt: skip
    """The SDK's generic client: `client.get/post/put/patch/delete(url, cast_to=our model)`."""
    cast_to = response_model(method, path, status)
    options: dict[str, Any] = {"params": params or {}, "headers": headers or {}}
    if method == "GET":
        return client.get(url, cast_to=cast_to, options=options)
    return getattr(client, method.lower())(url, cast_to=cast_to, body=body, options=options)


def get(model: Any, name: str) -> Any:
    """A field of one of our models by the document's name (`from` is `from_`)."""
    return getattr(model, python_name(name))


CASES: dict[tuple[str, str], Callable[[Fleet], None]] = {}


def case(method: str, path: str) -> Callable[[Callable[[Fleet], None]], Callable[[Fleet], None]]:
    def register(drive: Callable[[Fleet], None]) -> Callable[[Fleet], None]:
        assert (method, path) not in CASES, (method, path)
        CASES[(method, path)] = drive
        return drive

    return register


@case("GET", "/openapi.json")
def _document(f: Fleet) -> None:
    served = generic(f.manager, "GET", "/openapi.json", "/openapi.json")
    assert served["openapi"].startswith("3.1") and "/credit_transfers" in served["paths"]


@case("GET", "/managed_accounts")
def _list_managed(f: Fleet) -> None:
    path = "/managed_accounts"
    page = typed(f.manager.managed_accounts.with_raw_response.list(filter={"status": {"eq": "active"}}, sort="email"),
                 "GET", path)  # fmt: skip
    assert [a.organization_name for a in page.data] == ["Alpine Voice", "Blue Harbor", "Canyon Lines"]
    assert page.meta.total_results == 3


@case("POST", "/managed_accounts")
def _create_managed(f: Fleet) -> None:
    raw = f.manager.managed_accounts.with_raw_response.create(business_name="Delta Dial")  # no email, as Telnyx allows
    made = typed(raw, "POST", "/managed_accounts", 201).data
    assert made.organization_name == "Delta Dial" and made.email == "" and made.api_key == made.api_token


@case("GET", "/managed_accounts/{managed_id}")
def _retrieve_managed(f: Fleet) -> None:
    one = typed(f.manager.managed_accounts.with_raw_response.retrieve(f.separate_id), "GET",
                "/managed_accounts/{managed_id}").data  # fmt: skip
    assert one.id == f.separate_id and one.rollup_billing is False and one.balance is not None


@case("PATCH", "/managed_accounts/{managed_id}")
def _update_managed(f: Fleet) -> None:
    raw = f.manager.managed_accounts.with_raw_response.update(f.separate_id, managed_account_allow_custom_pricing=True)
    assert typed(raw, "PATCH", "/managed_accounts/{managed_id}").data.managed_account_allow_custom_pricing is True


@case("POST", "/managed_accounts/{managed_id}/actions/disable")
def _disable(f: Fleet) -> None:
    raw = f.manager.managed_accounts.actions.with_raw_response.disable(f.separate_id)
    assert typed(raw, "POST", "/managed_accounts/{managed_id}/actions/disable").data.status == "disabled"


@case("POST", "/managed_accounts/{managed_id}/actions/enable")
def _enable(f: Fleet) -> None:
    f.manager.managed_accounts.actions.disable(f.separate_id)
    raw = f.manager.managed_accounts.actions.with_raw_response.enable(f.separate_id, reenable_all_connections=True)
    enabled = typed(raw, "POST", "/managed_accounts/{managed_id}/actions/enable")
    assert enabled.data.status == "enabled"
    assert [note.code for note in enabled.meta.notes] == ["ignored_field"]


@case("GET", "/audit_events")
def _audit_events(f: Fleet) -> None:
    f.manager.managed_accounts.update(f.separate_id, managed_account_allow_custom_pricing=True)
    events = typed(f.on_behalf.audit_events.with_raw_response.list(sort="desc"), "GET", "/audit_events").data
    # Canyon's log, read on its behalf: its own events and its manager's about it
    assert {e.organization_id for e in events} <= {f.separate_id, f.manager_id}
    assert (events[0].change_type, events[0].change_made_by) == ("managed_account.updated", "account_manager")


@case("GET", "/usage_reports")
def _usage_report(f: Fleet) -> None:
    raw = f.manager.usage_reports.with_raw_response.list(
        product="messaging", dimensions=["direction", "country_code"], metrics=["count", "cost"], **TELNYX_WINDOW
    )  # Telnyx's names and its documentation's window: an instant with an offset
    report = typed(raw, "GET", "/usage_reports")
    rows = report.data
    assert {(r.direction, r.country_code, r.count) for r in rows} >= {("outbound", "CA", 1), ("inbound", "US", 1)}
    assert (report.meta.window.start, report.meta.window.end) == ("2022-12-25T00:20:30Z", "2022-12-26T00:20:30Z")


@case("GET", "/usage_reports/options")
def _usage_options(f: Fleet) -> None:
    options = typed(f.manager.usage_reports.with_raw_response.get_options(product="messaging"), "GET",
                    "/usage_reports/options").data  # fmt: skip
    assert options and "direction" in options[0].product_dimensions


@case("POST", "/usage_records")
def _usage_records(f: Fleet) -> None:
    row = {"account": f.separate_id, "product": "sms.outbound", "quantity": "3", "started_at": "2025-03-05T10:00:00Z",
           "idempotency_key": "sdk-records-1", "direction": "outbound", "country": "US"}  # fmt: skip
    first = generic(f.manager, "POST", "/usage_records", "/usage_records", 201, body={"records": [row]}).data
    assert (first.accepted, first.duplicates) == (1, 0)
    again = generic(f.manager, "POST", "/usage_records", "/usage_records", 200, body={"records": [row]}).data
    assert (again.id, again.accepted, again.duplicates) == (None, 0, 1)


@case("GET", "/balance")
def _balance(f: Fleet) -> None:
    own = typed(f.manager.balance.with_raw_response.retrieve(), "GET", "/balance").data
    assert own.currency == "USD"
    theirs = typed(f.on_behalf.balance.with_raw_response.retrieve(), "GET", "/balance").data
    assert theirs.balance == "-3.05" or Decimal(theirs.balance) < 0  # Canyon's usage, billed to itself


@case("GET", "/invoices")
def _invoices(f: Fleet) -> None:
    listed = typed(f.manager.invoices.with_raw_response.list(sort="-period_start"), "GET", "/invoices").data
    assert [i.invoice_id for i in listed] == [f.invoice_id]


@case("GET", "/invoices/{invoice_id}")
def _invoice(f: Fleet) -> None:
    raw = f.manager.invoices.with_raw_response.retrieve(f.invoice_id, action="link")
    one = typed(raw, "GET", "/invoices/{invoice_id}").data
    assert one.invoice_id == f.invoice_id and one.period_start == "2025-03-01" and one.download_url


def _transfer(f: Fleet, amount: str, key: str, status: int = 201) -> Any:
    body = {"from": f.manager_id, "to": f.separate_id, "amount": amount, "reference": "SDK"}
    return generic(f.manager, "POST", "/credit_transfers", "/credit_transfers", status, body=body,
                   headers={"Idempotency-Key": key}).data  # fmt: skip


@case("POST", "/credit_transfers")
def _send_credit(f: Fleet) -> None:
    sent = _transfer(f, "25.00", "sdk-transfer-1")
    assert (get(sent, "from"), get(sent, "to"), sent.amount) == (f.manager_id, f.separate_id, "25.00")
    assert _transfer(f, "25.00", "sdk-transfer-1", 200).id == sent.id  # the idempotent replay


@case("GET", "/credit_transfers")
def _list_credit(f: Fleet) -> None:
    sent = _transfer(f, "10.00", "sdk-transfer-2")
    listed = generic(f.on_behalf, "GET", "/credit_transfers", "/credit_transfers",
                     params={"filter[account_id]": f.manager_id}).data  # fmt: skip
    assert [t.id for t in listed] == [sent.id]


@case("GET", "/credit_transfers/{transfer_id}")
def _one_credit(f: Fleet) -> None:
    sent = _transfer(f, "5.00", "sdk-transfer-3")
    one = generic(f.manager, "GET", "/credit_transfers/{transfer_id}", f"/credit_transfers/{sent.id}").data
    assert one.id == sent.id and one.amount == "5.00"


def _limit_cases(path: str, url: Callable[[Fleet], str], client: Callable[[Fleet], telnyx.Telnyx]) -> None:
    @case("PUT", path)
    def _put(f: Fleet) -> None:
        body = {"monthly_amount": "40.00", "daily_amount": "5.00", "action": "block"}
        limit = generic(client(f), "PUT", path, url(f), body=body).data.limit
        assert (limit.monthly_amount, limit.daily_amount) == ("40.00", "5.00")

    @case("GET", path)
    def _get(f: Fleet) -> None:
        assert generic(client(f), "GET", path, url(f)).data.limit is None  # none set yet
        client(f).put(url(f), cast_to=object, body={"monthly_amount": "40.00"})
        assert generic(client(f), "GET", path, url(f)).data.limit.monthly_amount == "40.00"

    @case("DELETE", path)
    def _delete(f: Fleet) -> None:
        client(f).put(url(f), cast_to=object, body={"monthly_amount": "40.00"})
        assert generic(client(f), "DELETE", path, url(f)).data.limit is None


# A manager's own spend limit is not its to set: Canyon Lines' own, through the on-behalf header.
_limit_cases("/spend_limit", lambda f: "/spend_limit", lambda f: f.on_behalf)
_limit_cases("/managed_accounts/{managed_id}/spend_limit", lambda f: f"/managed_accounts/{f.separate_id}/spend_limit",
             lambda f: f.manager)  # fmt: skip


@case("GET", "/managed_accounts/{managed_id}/credit_limit")
def _get_credit_limit(f: Fleet) -> None:
    path = "/managed_accounts/{managed_id}/credit_limit"
    limit = generic(f.manager, "GET", path, f"/managed_accounts/{f.separate_id}/credit_limit").data
    assert limit.account_id == f.separate_id and limit.credit_limit == "0.00"


@case("PUT", "/managed_accounts/{managed_id}/credit_limit")
def _put_credit_limit(f: Fleet) -> None:
    path = "/managed_accounts/{managed_id}/credit_limit"
    url = f"/managed_accounts/{f.separate_id}/credit_limit"
    assert generic(f.manager, "PUT", path, url, body={"credit_limit": "0.00"}).data.credit_limit == "0.00"


USERS = "/managed_accounts/{managed_id}/users"


@case("GET", USERS)
def _list_users(f: Fleet) -> None:
    listed = generic(f.manager, "GET", USERS, f"/managed_accounts/{f.separate_id}/users", params={"page[size]": 5})
    assert [(u.email, u.role, u.user_status) for u in listed.data] == [("canyon@example.com", "owner", "enabled")]


@case("POST", USERS)
def _invite_user(f: Fleet) -> None:
    body = {"email": "ada@example.com", "role": "reporting"}
    invited = generic(f.manager, "POST", USERS, f"/managed_accounts/{f.separate_id}/users", 201, body=body).data
    assert (invited.email, invited.role, invited.user_status) == ("ada@example.com", "reporting", "invited")


@case("DELETE", USERS + "/{user_id}")
def _remove_user(f: Fleet) -> None:
    url = f"/managed_accounts/{f.separate_id}/users"
    invited = f.manager.post(url, cast_to=response_model("POST", USERS, 201),
                             body={"email": "bob@example.com", "role": "billing"}).data  # fmt: skip
    removed = generic(f.manager, "DELETE", USERS + "/{user_id}", f"{url}/{invited.id}").data
    assert (removed.id, removed.user_status) == (invited.id, "invited")
    members = f.manager.get(url, cast_to=response_model("GET", USERS, 200)).data
    assert [u.email for u in members] == ["canyon@example.com"]


ENDPOINTS = "/webhook_endpoints"
ENDPOINT = ENDPOINTS + "/{endpoint_id}"
DELIVERIES = ENDPOINT + "/deliveries"
DELIVERY = DELIVERIES + "/{delivery_id}"


def _add_endpoint(f: Fleet, events: list[str], *, client: telnyx.Telnyx | None = None) -> Any:
    body = {"url": f.hooks, "event_types": events, "description": "SDK"}
    return generic(client or f.manager, "POST", ENDPOINTS, ENDPOINTS, 201, body=body).data


def _delivered(f: Fleet) -> tuple[Any, Any]:
    """(the manager's endpoint, its one delivery): Canyon Lines disabled, sent to the receiver."""
    made = _add_endpoint(f, ["managed_account.disabled"])
    f.manager.managed_accounts.actions.disable(f.separate_id)
    (one,) = generic(f.manager, "GET", DELIVERIES, f"{ENDPOINTS}/{made.id}/deliveries").data
    return made, one


@case("POST", ENDPOINTS)
def _create_endpoint(f: Fleet) -> None:
    made = _add_endpoint(f, ["managed_account.disabled", "balance.low"])
    assert made.secret.startswith("whsec_") and made.account_id == f.manager_id
    assert (made.url, made.event_types, made.enabled) == (f.hooks, ["managed_account.disabled", "balance.low"], True)
    theirs = _add_endpoint(f, ["service.blocked"], client=f.on_behalf)  # Canyon's own, on its behalf
    assert theirs.account_id == f.separate_id


@case("GET", ENDPOINTS)
def _list_endpoints(f: Fleet) -> None:
    made = _add_endpoint(f, ["service.blocked"])
    _add_endpoint(f, ["service.blocked"], client=f.on_behalf)
    listed = generic(f.manager, "GET", ENDPOINTS, ENDPOINTS, params={"page[size]": 5})
    assert [e.id for e in listed.data] == [made.id] and listed.data[0].secret is None
    assert listed.meta.total_results == 1


@case("GET", ENDPOINT)
def _one_endpoint(f: Fleet) -> None:
    made = _add_endpoint(f, ["service.blocked"])
    one = generic(f.manager, "GET", ENDPOINT, f"{ENDPOINTS}/{made.id}").data
    assert (one.id, one.url, one.secret) == (made.id, f.hooks, None)


@case("PATCH", ENDPOINT)
def _change_endpoint(f: Fleet) -> None:
    made = _add_endpoint(f, ["service.blocked"])
    body = {"enabled": False, "event_types": ["service.blocked", "payment.failed"], "include_managed_accounts": True}
    changed = generic(f.manager, "PATCH", ENDPOINT, f"{ENDPOINTS}/{made.id}", body=body).data
    assert (changed.enabled, changed.event_types, changed.include_managed_accounts) == (
        False, ["service.blocked", "payment.failed"], True
    )  # fmt: skip


@case("DELETE", ENDPOINT)
def _delete_endpoint(f: Fleet) -> None:
    made = _add_endpoint(f, ["service.blocked"])
    deleted = generic(f.manager, "DELETE", ENDPOINT, f"{ENDPOINTS}/{made.id}").data
    assert deleted.id == made.id
    assert generic(f.manager, "GET", ENDPOINTS, ENDPOINTS).data == []


@case("GET", DELIVERIES)
def _deliveries(f: Fleet) -> None:
    made, one = _delivered(f)
    assert (one.webhook_endpoint_id, one.event_type, one.status, one.attempts, one.response_code) == (
        made.id, "managed_account.disabled", "delivered", 1, 204
    )  # fmt: skip
    assert one.data["payload"]["account_id"] == f.separate_id
    failed = generic(f.manager, "GET", DELIVERIES, f"{ENDPOINTS}/{made.id}/deliveries",
                     params={"filter[status]": "failed"}).data  # fmt: skip
    assert failed == []


@case("GET", DELIVERY)
def _one_delivery(f: Fleet) -> None:
    made, listed = _delivered(f)
    one = generic(f.manager, "GET", DELIVERY, f"{ENDPOINTS}/{made.id}/deliveries/{listed.id}").data
    assert (one.id, one.webhook_id, one.status) == (listed.id, listed.webhook_id, "delivered")


@case("POST", DELIVERY + "/actions/resend")
def _resend(f: Fleet) -> None:
    made, listed = _delivered(f)
    url = f"{ENDPOINTS}/{made.id}/deliveries/{listed.id}/actions/resend"
    resent = generic(f.manager, "POST", DELIVERY + "/actions/resend", url, body={}).data
    assert (resent.id, resent.webhook_id) == (listed.id, listed.webhook_id)
    again = generic(f.manager, "GET", DELIVERY, f"{ENDPOINTS}/{made.id}/deliveries/{listed.id}").data
    assert (again.status, again.attempts) == ("delivered", 2)  # sent again after commit, same webhook-id


SETTINGS = "/notification_settings"


@case("GET", SETTINGS)
def _notification_settings(f: Fleet) -> None:
    listed = generic(f.manager, "GET", SETTINGS, SETTINGS).data
    chosen = {s.id: s.status for s in listed}
    assert chosen["balance.low"] == "enabled" and chosen["invoice.issued"] == "disabled"  # an owner's defaults
    assert {s.channel_destination for s in listed} == {f.world.users["owner"].email}


@case("GET", SETTINGS + "/{setting_id}")
def _notification_setting(f: Fleet) -> None:
    raw = f.manager.notification_settings.with_raw_response.retrieve("balance.low")  # enabled: Telnyx's status too
    one = typed(raw, "GET", SETTINGS + "/{setting_id}").data
    assert (one.id, one.status, one.associated_record_type_value) == ("balance.low", "enabled", f.manager_id)


@case("PATCH", SETTINGS + "/{setting_id}")
def _choose_notification(f: Fleet) -> None:
    body = {"status": "disabled", "managed_accounts": False}
    one = generic(f.manager, "PATCH", SETTINGS + "/{setting_id}", f"{SETTINGS}/balance.low", body=body).data
    assert (one.status, one.managed_accounts) == ("disabled", False)
    listed = {s.id: s.status for s in generic(f.manager, "GET", SETTINGS, SETTINGS).data}
    assert listed["balance.low"] == "disabled" and listed["service.blocked"] == "enabled"


THRESHOLD = "/low_balance_threshold"


@case("GET", THRESHOLD)
def _threshold(f: Fleet) -> None:
    none = generic(f.manager, "GET", THRESHOLD, THRESHOLD).data
    balance = f.manager.balance.retrieve().data.balance  # the top-up less March's usage
    assert (none.account_id, none.enabled, none.threshold_amount, none.balance) == (f.manager_id, False, None, balance)
    theirs = generic(f.on_behalf, "GET", THRESHOLD, THRESHOLD).data  # Canyon's, billed to itself
    assert theirs.account_id == f.separate_id


@case("PATCH", THRESHOLD)
def _set_threshold(f: Fleet) -> None:
    set_ = generic(f.manager, "PATCH", THRESHOLD, THRESHOLD, body={"threshold_amount": "600.00"}).data
    assert (set_.enabled, set_.threshold_amount, set_.below) == (True, "600.00", True)
    off = generic(f.manager, "PATCH", THRESHOLD, THRESHOLD, body={"enabled": False}).data
    assert (off.enabled, off.threshold_amount, off.below, off.below_since) == (False, "600.00", False, None)


# --- The tests -----------------------------------------------------------------------------------------

PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


def _route_name(path: str) -> str:
    match = resolve("/v2" + re.sub(r"\{\w+\}", PLACEHOLDER, path))
    assert match.func is not api_urls.api_not_found, f"{path} is no route of portal/api_urls.py"
    return str(match.url_name)


def _success(method: str, path: str) -> set[int]:
    from portal.openapi import document

    return {int(s) for s in document()["paths"][path][method.lower()]["responses"] if s.startswith("2")}


@pytest.mark.parametrize(
    ("method", "path"), documented_operations(), ids=[f"{m} {p}" for m, p in documented_operations()]
)
def test_the_sdk_drives_the_operation_with_strict_validation(fleet, method, path):
    drive = CASES.get((method, path))
    assert drive is not None, f"No SDK case drives {method} {path}: add one to tests/api/test_sdk_routes.py"
    drive(fleet)
    target = _route_name(path)
    reached = {status for m, p, status in fleet.seen if m == method and _route_name(p.removeprefix("/v2")) == target}
    assert reached, f"the case for {method} {path} never reached route {target}: {fleet.seen}"
    assert reached <= _success(method, path), (method, path, fleet.seen)


def _openapi_path(pattern: URLPattern) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))


def _methods_answered(path: str) -> set[str]:
    response = Client().generic("OPTIONS", "/v2" + re.sub(r"\{\w+\}", PLACEHOLDER, path))
    assert response.status_code == 405, (path, response.status_code, response.content[:300])
    return {m.strip().upper() for m in response["Allow"].split(",")} - {"HEAD"}


@pytest.mark.django_db
def test_every_route_of_api_urls_is_driven_by_an_sdk_case():
    routes = [p for p in api_urls.urlpatterns if isinstance(p, URLPattern) and p.callback is not api_urls.api_not_found]
    answered = {(method, _openapi_path(p)) for p in routes for method in _methods_answered(_openapi_path(p))}
    missing = sorted(answered - set(CASES))
    assert not missing, "routes no SDK case drives (add them to tests/api/test_sdk_routes.py): " + ", ".join(
        f"{m} /v2{p} ({_route_name(p)})" for m, p in missing
    )
    stale = sorted(set(CASES) - answered)
    assert not stale, f"SDK cases for routes that do not exist: {stale}"


def test_pending_routes_do_not_exist_yet():
    """A route other work is adding is 'pending' only while it is not in portal/api_urls.py."""
    routes = [str(p.pattern) for p in api_urls.urlpatterns if isinstance(p, URLPattern)]
    arrived = [name for name in PENDING if any(name in route for route in routes)]
    assert not arrived, f"now routes, drive them with SDK cases and take them off PENDING: {arrived}"


def test_our_models_refuse_what_the_document_does_not_say(db, world, make_key, raw_api):
    """The check the SDK's strict validation runs (`telnyx._models.validate_type`) with our models:
    the real answer passes; an undeclared field, a missing one, a wrong type, a value off its
    pattern or enum, a time without an offset all fail."""
    answer = raw_api(make_key(world.manager)).get("balance").json()
    model = response_model("GET", "/balance", 200)
    assert validate_type(type_=model, value=answer).data.currency == "USD"
    data = answer["data"]
    for wrong in (
        {**data, "undeclared": "x"},
        {k: v for k, v in data.items() if k != "pending"},
        {**data, "balance": 12.5},
        {**data, "balance": "12.5"},
        {**data, "record_type": "wallet"},
    ):
        with pytest.raises(pydantic.ValidationError):
            validate_type(type_=model, value={"data": wrong})
    with pytest.raises(pydantic.ValidationError):
        validate_type(type_=model, value={**answer, "meta": {}})
    account = raw_api(make_key(world.manager)).get(f"managed_accounts/{world.managed.public_id}").json()
    model = response_model("GET", "/managed_accounts/{managed_id}", 200)
    validate_type(type_=model, value=account)
    for name, value in (("created_at", "2025-03-01T10:00:00"), ("id", "not-a-uuid"), ("status", "gone")):
        with pytest.raises(pydantic.ValidationError):
            validate_type(type_=model, value={"data": {**account["data"], name: value}})


def test_error_answers_parse_into_the_documented_error_shape(fleet):
    """Errors through the SDK: its typed exception, whose body is the document's Error."""
    failures: list[telnyx.APIStatusError] = []
    for call in (
        lambda: fleet.manager.managed_accounts.retrieve(str(fleet.world.other_managed.public_id)),  # 404
        lambda: fleet.manager.usage_reports.list(product="messaging", dimensions=["planet"], metrics=["count"]),
        lambda: fleet.on_behalf.get(f"/managed_accounts/{fleet.separate_id}/users", cast_to=object),  # 403
        lambda: fleet.manager.post("/credit_transfers", cast_to=object, body={"from": fleet.manager_id}),  # 422
    ):
        with pytest.raises(telnyx.APIStatusError) as raised:
            call()
        failures.append(raised.value)
    assert [f.status_code for f in failures] == [404, 422, 403, 422]
    error = component("Error")
    for failure in failures:
        assert validate_type(type_=error, value=failure.body).errors[0].code
