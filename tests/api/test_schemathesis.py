"""Schemathesis holds the live server to its OpenAPI document (GET /v2/openapi.json, portal/openapi.py):
for every documented operation, a bounded number of generated requests, with three keys (a
manager's, the same key naming a separately billed managed account in X-Managed-Account-Id, and a
roll-up managed account's own key), and each answer must be no 5xx, in the documented schema and
content type, with a documented status code and the documented headers (X-Request-Id, Retry-After).

Two phases per operation and key. Explicit: one request per combination of real path ids (the
managed accounts, both parties' invoices, a credit transfer, a pending invitation and a member), and
one per example of the document (schemathesis' examples phase: the usage batch of POST
/usage_records is the document's own example, so its 201 is exercised). Then EXAMPLES generated
requests, their path ids drawn at random or from the real ones. REACHED names answers the run must
have seen (a 2xx past the 404s of random ids). Derandomized: CI sends the same requests every run.

Measured 2026-12-03 (41 operations, 3 keys: 123 tests): 1,431 requests in 2 min 39 s on SQLite,
load average 1.4; the README's API section gives the command."""

from __future__ import annotations

import importlib
import itertools
import re
from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest
import requests
import schemathesis
from django.apps import apps
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.examples import get_strategies_from_examples

from accounts import services
from accounts.actor import Actor
from accounts.api import invitation_public_id
from accounts.models import Account, Role
from billing.invoices.builder import invoice_party
from billing.ledger.services import post_entry, post_usage_charges, transfer
from billing.models import LedgerEntry
from billing.usage.services import ingest_usage
from notifications.alerts import Alert
from portal.openapi import document
from tests import webhook_receiver
from tests.api.conftest import owner_of
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import create_endpoint

EXAMPLES = 10  # generated requests per operation and key, after the explicit ones
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]
MONTH = date(2025, 3, 1)
OPERATIONS = [
    (method.upper(), path)
    for path, item in document()["paths"].items()
    for method in item
    if method in ("get", "put", "post", "patch", "delete")
]
KEYS = ("manager", "manager_on_behalf", "managed")
# (key, METHOD, path): a status the run must have seen, so the operation is reached past its 404s.
REACHED = {
    ("manager", "POST", "/usage_records"): 201,  # the document's example batch
    ("manager_on_behalf", "POST", "/usage_records"): 201,
    ("managed", "POST", "/usage_records"): 201,
    ("manager", "GET", "/credit_transfers/{transfer_id}"): 200,
    ("manager_on_behalf", "GET", "/credit_transfers/{transfer_id}"): 200,  # Canyon is a party to it
    ("manager", "GET", "/invoices/{invoice_id}"): 200,
    ("manager_on_behalf", "GET", "/invoices/{invoice_id}"): 200,  # Canyon's own invoice
    ("manager", "GET", "/managed_accounts/{managed_id}"): 200,
    ("manager", "GET", "/usage_reports"): 200,  # the examples: Telnyx names, an instant-with-offset window
    ("manager_on_behalf", "GET", "/usage_reports"): 200,
    ("managed", "GET", "/usage_reports"): 200,
    ("manager", "GET", "/managed_accounts/{managed_id}/credit_limit"): 200,
    ("manager", "GET", "/managed_accounts/{managed_id}/spend_limit"): 200,
    ("manager", "DELETE", "/managed_accounts/{managed_id}/users/{user_id}"): 200,  # the pending invitation
    # Each key's own webhook endpoint and (manager, Canyon) its delivery; the key creator's alert choices.
    **{
        (kind, method, path): 200
        for kind in KEYS
        for method, path in (
            ("GET", "/webhook_endpoints/{endpoint_id}"),
            ("PATCH", "/webhook_endpoints/{endpoint_id}"),
            ("DELETE", "/webhook_endpoints/{endpoint_id}"),
            ("GET", "/webhook_endpoints/{endpoint_id}/deliveries"),
            ("GET", "/notification_settings/{setting_id}"),
            ("PATCH", "/notification_settings/{setting_id}"),
        )
    },
    **{
        (kind, method, path): 200
        for kind in ("manager", "manager_on_behalf")
        for method, path in (
            ("GET", "/webhook_endpoints/{endpoint_id}/deliveries/{delivery_id}"),
            ("POST", "/webhook_endpoints/{endpoint_id}/deliveries/{delivery_id}/actions/resend"),
        )
    },
    ("manager", "PATCH", "/low_balance_threshold"): 200,
    ("manager_on_behalf", "PATCH", "/low_balance_threshold"): 200,
    ("managed", "GET", "/low_balance_threshold"): 404,  # a roll-up account has no balance of its own
    # Under X-Managed-Account-Id the key acts as Canyon, which manages no account: the manager's
    # /managed_accounts/{id} paths are a 404 there whatever the id (accounts.api_access.managed_account_of),
    # its users a 403 (a manager's key only); both are what the document says.
    ("manager_on_behalf", "GET", "/managed_accounts/{managed_id}"): 404,
}


@pytest.fixture
def fleet(world, transactional_db):
    """A manager with a roll-up managed account (world.managed) and a separately billed one, usage
    for each and an invoice of the manager's for March 2025; a webhook endpoint each, sent to a
    real receiver on loopback: the manager's has the delivery of Canyon's creation, Canyon's that
    of its invoice."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)  # flushed by the live server
    owner = world.users["owner"]
    receiver = webhook_receiver.start()

    def endpoint(account: Account, events: list[str]) -> WebhookEndpoint:
        return create_endpoint(account=account, url=receiver.url, event_types=events,
                               actor=Actor(user=owner_of(account)))[0]  # fmt: skip

    endpoints = [endpoint(world.manager, ["managed_account.created"]), endpoint(world.managed, ["service.blocked"])]
    separate = services.create_managed_account(
        manager=world.manager, name="Canyon Lines", owner_email="canyon@example.com", owner_password=None,
        billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False, pricing_hidden=False,
        actor=Actor(user=owner),
    )  # fmt: skip
    post_entry(account=world.manager, kind=LedgerEntry.Kind.TOP_UP, amount=Decimal("500.00"), key="fuzz-top-up",
               description="Top-up")  # fmt: skip
    rows = [
        {
            "account": str(account.public_id),
            "product": product,
            "quantity": quantity,
            "started_at": f"2025-03-{n + 1:02d}T10:00:00Z",
            "idempotency_key": f"fuzz-{n}",
            "direction": "outbound",
            "country": "US",
            "destination": "+18005550100",
        }  # fmt: skip
        for n, (account, product, quantity) in enumerate(
            [
                (world.managed, "voice.outbound", "10"),
                (world.manager, "sms.outbound", "7"),
                (separate, "voice.outbound", "30.5"),
            ]  # fmt: skip
        )
    ]
    ingest_usage(submitter=world.manager, rows=rows, source="api", actor=Actor(user=owner))
    for account in (world.manager, separate):
        post_usage_charges(account=account, month=MONTH)
    endpoints.append(endpoint(separate, ["invoice.finalized"]))
    invoice = invoice_party(account=world.manager, month=MONTH)
    separate_invoice = invoice_party(account=separate, month=MONTH)
    deliveries = list(WebhookDelivery.objects.filter(endpoint__in=endpoints).order_by("id"))
    assert [(d.endpoint.account, d.event_type, d.status) for d in deliveries] == [
        (world.manager, "managed_account.created", "delivered"), (separate, "invoice.finalized", "delivered")
    ]  # fmt: skip
    sent = transfer(manager=world.manager, managed=separate, amount=Decimal("20.00"), actor=Actor(user=owner),
                    key="fuzz-transfer", reference="Fuzz")  # fmt: skip
    invited = services.invite_member(account=separate, email="ada@example.com", role=Role.REPORTING,
                                     actor=Actor(user=owner_of(separate)))  # fmt: skip
    real_ids = {  # path parameter -> real ids
        "managed_id": [world.managed.public_id, separate.public_id],
        "invoice_id": [invoice.public_id, separate_invoice.public_id],
        "transfer_id": [sent.transfer.public_id],
        "user_id": [invitation_public_id(invited), owner_of(separate).public_id],
        "endpoint_id": [e.public_id for e in endpoints],
        "delivery_id": [d.public_id for d in deliveries],
        "setting_id": [str(alert) for alert in Alert],
    }
    yield SimpleNamespace(world=world, separate=separate, invoice=invoice, real_ids=real_ids)
    receiver.stop()


def _real_path_parameters(fleet: SimpleNamespace, path: str) -> list[dict[str, str]]:
    names = re.findall(r"\{(\w+)\}", path)
    if not names:
        return []
    return [dict(zip(names, map(str, values), strict=True))
            for values in itertools.product(*(fleet.real_ids[name] for name in names))]  # fmt: skip


def _auth(kind: str, fleet: SimpleNamespace, make_key) -> dict[str, str]:
    world = fleet.world
    if kind == "managed":
        return {"Authorization": f"Bearer {make_key(world.managed, owner_of(world.managed))}"}
    headers = {"Authorization": f"Bearer {make_key(world.manager)}"}
    if kind == "manager_on_behalf":
        headers["X-Managed-Account-Id"] = str(fleet.separate.public_id)
    return headers


@pytest.mark.parametrize("kind", KEYS)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_the_live_server_keeps_to_its_openapi_document(live_server, fleet, make_key, kind, method, path):
    base_url = live_server.url + "/v2"
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    operation = schema[path][method]
    real = _real_path_parameters(fleet, path)
    explicit = [operation.as_strategy(path_parameters=ids) for ids in real]
    for ids in real or [None]:
        explicit.extend(get_strategies_from_examples(operation, path_parameters=ids))
    generated = st.one_of([operation.as_strategy(), *(operation.as_strategy(path_parameters=ids) for ids in real)])
    headers = _auth(kind, fleet, make_key)
    session = requests.Session()
    statuses: list[int] = []

    def run(strategy, examples: int) -> None:
        @given(case=strategy)
        @settings(max_examples=examples, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def call(case) -> None:
            response = case.call_and_validate(base_url=base_url, session=session, headers=headers, checks=CHECKS)
            statuses.append(response.status_code)

        call()

    try:
        for strategy in explicit:
            run(strategy, 1)
        run(generated, EXAMPLES)
    finally:
        session.close()
    print(f"\nschemathesis: {kind} {method} {path}: {len(statuses)} requests")  # summed for the README
    assert statuses, f"{method} {path}: no request was made"
    expected = REACHED.get((kind, method, path))
    assert expected is None or expected in statuses, f"{kind} {method} {path}: never {expected}, only {statuses}"
