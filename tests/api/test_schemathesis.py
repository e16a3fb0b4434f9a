"""Schemathesis holds the live server to its OpenAPI document (GET /v2/openapi.json, portal/openapi.py):
for every documented operation, a bounded number of generated requests, with three keys (a
manager's, the same key naming a separately billed managed account in X-Managed-Account-Id, and a
roll-up managed account's own key), and each answer must be no 5xx, in the documented schema and
content type, with a documented status code and the documented headers (X-Request-Id, Retry-After).

Path ids are drawn both at random and from the real records (the managed account, the invoice), so
the operations are reached past their 404s. Examples are derandomized: CI sees the same requests on
every run; change EXAMPLES or the data to explore more."""

from __future__ import annotations

import importlib
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

from accounts import services
from accounts.actor import Actor
from accounts.models import Account
from billing.invoices.builder import invoice_party
from billing.ledger.services import post_entry, post_usage_charges
from billing.models import LedgerEntry
from billing.usage.services import ingest_usage
from portal.openapi import document
from tests.api.conftest import owner_of

EXAMPLES = 10  # per operation and key: 25 operations x 3 keys x 10 is about 40 s of CPU
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


@pytest.fixture
def fleet(world, transactional_db):
    """A manager with a roll-up managed account (world.managed) and a separately billed one, usage
    for each and an invoice of the manager's for March 2025."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)  # flushed by the live server
    owner = world.users["owner"]
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
    invoice = invoice_party(account=world.manager, month=MONTH)
    return SimpleNamespace(world=world, separate=separate, invoice=invoice)


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
    strategies = [operation.as_strategy()]
    real_ids = {"managed_id": fleet.world.managed.public_id, "invoice_id": fleet.invoice.public_id}
    for name, value in real_ids.items():
        if "{" + name + "}" in path:
            strategies.append(operation.as_strategy(path_parameters={name: str(value)}))
    headers = _auth(kind, fleet, make_key)
    session = requests.Session()
    statuses: list[int] = []

    @given(case=st.one_of(strategies))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, phases=[Phase.explicit,
              Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case) -> None:
        response = case.call_and_validate(base_url=base_url, session=session, headers=headers, checks=CHECKS)
        statuses.append(response.status_code)

    try:
        run()
    finally:
        session.close()
    assert statuses, f"{method} {path}: no request was made"
