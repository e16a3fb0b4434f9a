"""One manager key for the whole fleet: `X-Managed-Account-Id: <managed account id>` (as Stripe's
`Stripe-Account`) makes a manager's key act on one of its managed accounts on every /v2 endpoint,
under the log-in-as rule (permissions.log_in_as_rule) and audited as the manager acting.

Driven with the official telnyx SDK against the live server, the header set once for a client
(`default_headers`) or per call (`extra_headers`), with strict response validation.

The data (list prices, USD: voice.outbound 0.01/minute, sms.outbound 0.004/message), March 2025:

    world.manager (Acme Reseller)   top-up 500.00, transfer 120.00 to Canyon Lines; own sms 7
    world.managed (Alpine Voice)    roll-up: voice 10, sms 3 (cost 0.112); no balance of its own
    Canyon Lines                    separately billed, made here: voice 30.5; its own March invoice
    world.other_managed             another manager's: never reachable with world.manager's key
"""

from __future__ import annotations

import importlib
import uuid
from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest
import telnyx
from django.apps import apps
from telnyx.types import BalanceRetrieveResponse, InvoiceRetrieveResponse

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Role
from billing.invoices.builder import invoice_party
from billing.ledger.services import balance_of, post_entry, post_usage_charges, transfer_credit
from billing.models import LedgerEntry, UsageBatch, UsageRecord
from billing.usage.services import ingest_usage
from tests.api.conftest import owner_of

HEADER = "X-Managed-Account-Id"
MONTH = date(2025, 3, 1)
MARCH = {"start_date": "2025-03-01T00:00:00Z", "end_date": "2025-04-01T00:00:00Z"}
REPORT = {"product": "all", "dimensions": ["product"], "metrics": ["count", "quantity", "cost"], **MARCH}


@pytest.fixture
def catalogue(transactional_db):
    """The products and list prices: a data migration loads them, but each transactional test (the
    live server's) flushes every table when it ends."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)


def _usage(submitter: Account, *rows: tuple[Account, str, str]) -> None:
    records = [
        {
            "account": str(account.public_id),
            "product": product,
            "quantity": quantity,
            "started_at": f"2025-03-{n + 1:02d}T10:00:00Z",
            "idempotency_key": f"fleet-{account.pk}-{n}",
        }
        for n, (account, product, quantity) in enumerate(rows)
    ]
    ingest_usage(submitter=submitter, rows=records, source="api", actor=Actor(user=owner_of(submitter)))


@pytest.fixture
def fleet(world, catalogue):
    owner = world.users["owner"]
    canyon = services.create_managed_account(
        manager=world.manager, name="Canyon Lines", owner_email="canyon@example.com", owner_password=None,
        billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False, pricing_hidden=False,
        actor=Actor(user=owner),
    )  # fmt: skip
    post_entry(account=world.manager, kind=LedgerEntry.Kind.TOP_UP, amount=Decimal("500.00"), key="fleet-top-up",
               description="Top-up")  # fmt: skip
    transfer_credit(manager=world.manager, managed=canyon, amount=Decimal("120.00"), key="to-canyon",
                    actor=Actor(user=owner))  # fmt: skip
    _usage(
        world.manager,
        (world.managed, "voice.outbound", "10"),
        (world.managed, "sms.outbound", "3"),
        (world.manager, "sms.outbound", "7"),
        (canyon, "voice.outbound", "30.5"),
    )
    for account in (world.manager, canyon):
        post_usage_charges(account=account, month=MONTH)
    invoices = {"canyon": invoice_party(account=canyon, month=MONTH),
                "manager": invoice_party(account=world.manager, month=MONTH)}  # fmt: skip
    return SimpleNamespace(world=world, canyon=canyon, invoices=invoices)


@pytest.fixture
def client_of(live_server, make_key):
    """client_of(account, user=None, on_behalf=None) -> a telnyx.Telnyx client of the live server with a
    new key of `account` made by `user` (its owner by default); `on_behalf` goes in default_headers."""
    clients = []

    def make(account: Account, *, user=None, on_behalf: Account | str | None = None) -> telnyx.Telnyx:
        headers = {} if on_behalf is None else {HEADER: _id(on_behalf)}
        client = telnyx.Telnyx(
            api_key=make_key(account, user),
            base_url=live_server.url + "/v2",
            max_retries=0,
            default_headers=headers,
            _strict_response_validation=True,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _id(account: Account | str) -> str:
    return account if isinstance(account, str) else str(account.public_id)


def _on(account: Account | str) -> dict[str, str]:
    return {HEADER: _id(account)}


def _report(client: telnyx.Telnyx, **options) -> list[tuple]:
    rows = client.usage_reports.list(**{**REPORT, **options}).data
    return [(r["product"], r["count"], r.get("quantity"), r.get("cost")) for r in rows]


def _post_usage(client: telnyx.Telnyx, *records: dict, headers: dict | None = None):
    return client.post("/usage_records", cast_to=object, body={"records": list(records)},
                       options={"headers": headers or {}})  # fmt: skip


def _row(key: str, **fields) -> dict:
    return {"product": "sms.outbound", "quantity": "2", "started_at": "2025-04-12T09:00:00Z", "idempotency_key": key,
            **fields}  # fmt: skip


# --- Reading a managed account's data ------------------------------------------------------------------


def test_a_manager_key_reads_a_managed_accounts_balance_and_invoices_by_naming_it(fleet, client_of):
    world, canyon = fleet.world, fleet.canyon
    as_canyon = client_of(world.manager, on_behalf=canyon)
    own = client_of(canyon)

    balance = as_canyon.balance.retrieve()
    assert isinstance(balance, BalanceRetrieveResponse)
    assert balance.data == own.balance.retrieve().data
    assert Decimal(balance.data.balance) == balance_of(canyon).amount == Decimal("119.69")  # 120.00 - 0.31

    listed = as_canyon.invoices.list()
    assert [i.invoice_id for i in listed.data] == [str(fleet.invoices["canyon"].public_id)]
    one = as_canyon.invoices.retrieve(str(fleet.invoices["canyon"].public_id))
    assert isinstance(one, InvoiceRetrieveResponse) and one.data.total == "0.31"
    with pytest.raises(telnyx.NotFoundError):  # the manager's own invoice is not Canyon's
        as_canyon.invoices.retrieve(str(fleet.invoices["manager"].public_id))

    manager_itself = client_of(world.manager)  # the same kind of key without the header: its own account
    assert Decimal(manager_itself.balance.retrieve().data.balance) == balance_of(world.manager).amount
    assert [i.invoice_id for i in manager_itself.invoices.list().data] == [str(fleet.invoices["manager"].public_id)]


def test_extra_headers_name_the_managed_account_per_call(fleet, client_of):
    world = fleet.world
    client = client_of(world.manager)

    assert _report(client, extra_headers=_on(world.managed)) == [
        ("sms.outbound", 1, "3", "0.012"),
        ("voice.outbound", 1, "10", "0.1"),
    ]
    assert _report(client) == [("sms.outbound", 1, "7", "0.028")]  # the next call, without it: the manager's own
    assert _report(client, extra_headers=_on(world.managed)) == _report(client_of(world.managed))
    with pytest.raises(telnyx.PermissionDeniedError) as refused:  # roll-up: no balance of its own, as for its key
        client.balance.retrieve(extra_headers=_on(world.managed))
    assert refused.value.body["errors"][0]["code"] == "billed_to_manager"
    # A per-call header overrides the client's default one.
    as_canyon = client_of(world.manager, on_behalf=fleet.canyon)
    assert _report(as_canyon, extra_headers=_on(world.managed)) == _report(client, extra_headers=_on(world.managed))


def test_hidden_pricing_applies_as_it_applies_to_the_managed_account(fleet, client_of):
    world = fleet.world
    world.managed.pricing_hidden = True
    world.managed.save(update_fields=["pricing_hidden"])
    as_managed = client_of(world.manager, on_behalf=world.managed)

    with pytest.raises(telnyx.PermissionDeniedError) as refused:
        as_managed.usage_reports.list(**REPORT)
    assert refused.value.body["errors"][0]["code"] == "pricing_hidden"
    assert _report(as_managed, metrics=["count", "quantity"]) == [
        ("sms.outbound", 1, "3", None),
        ("voice.outbound", 1, "10", None),
    ]
    options = as_managed.usage_reports.get_options(product="voice.outbound")
    assert [d.product_metrics for d in options.data] == [["count", "quantity"]]
    # From its own key, without the header, the manager still sees what its managed account costs.
    by_account = client_of(world.manager).usage_reports.list(
        product="all", dimensions=["account"], metrics=["quantity", "cost"], managed_accounts=True, **MARCH
    )
    assert {(r["account_name"], r["cost"]) for r in by_account.data} >= {("Alpine Voice", "0.112")}


# --- Writing, and the audit ---------------------------------------------------------------------------------


def test_usage_posted_through_the_header_is_the_managed_accounts_audited_as_its_manager(fleet, client_of):
    world = fleet.world
    manager_owner, managed_owner = world.users["owner"], world.users["managed_owner"]
    as_managed = client_of(world.manager, on_behalf=world.managed)

    created = _post_usage(as_managed, _row("h1"), _row("h2"))

    assert (created["data"]["accepted"], created["data"]["duplicates"]) == (2, 0)
    batch = UsageBatch.objects.get(public_id=created["data"]["id"])
    assert (batch.submitted_by_account, batch.submitted_by) == (world.managed, manager_owner)
    assert set(UsageRecord.objects.filter(batch=batch).values_list("account_id", flat=True)) == {world.managed.pk}
    event = AuditEvent.objects.get(change_type="usage.ingested", resource_id=str(batch.public_id))
    assert event.account == world.managed
    assert event.change_made_by == AuditEvent.MadeBy.ACCOUNT_MANAGER
    assert (event.user, event.user_email, event.acting_as) == (manager_owner, manager_owner.email, managed_owner)
    # The managed account's log, read through the header, holds it, and only that account's events.
    logged = as_managed.audit_events.list(page_size=250)
    assert str(event.public_id) in {e.id for e in logged.data}
    assert all(e.organization_id == str(world.managed.public_id) for e in logged.data)


def test_acting_as_one_managed_account_it_cannot_put_usage_on_another(fleet, client_of):
    world = fleet.world
    as_managed = client_of(world.manager, on_behalf=world.managed)
    before = UsageRecord.objects.count()

    with pytest.raises(telnyx.UnprocessableEntityError) as refused:
        _post_usage(as_managed, _row("s1", account=str(world.sibling.public_id)))

    assert refused.value.body["errors"][0]["source"]["pointer"].startswith("/records/0")
    assert UsageRecord.objects.count() == before


def test_an_admins_key_acts_only_when_the_owner_lets_admins_log_in_as(fleet, client_of):
    """The log-in-as rule, with the key's creator as the real person, asked on every request."""
    world = fleet.world
    admin = world.users[Role.ADMIN]
    client = client_of(world.manager, user=admin, on_behalf=world.managed)

    with pytest.raises(telnyx.PermissionDeniedError) as refused:
        client.audit_events.list()
    assert refused.value.body["errors"][0]["code"] == "not_allowed"

    world.manager.admins_can_log_in_as = True
    world.manager.save(update_fields=["admins_can_log_in_as"])
    created = _post_usage(client, _row("a1"))

    event = AuditEvent.objects.get(change_type="usage.ingested", resource_id=created["data"]["id"])
    assert (event.account, event.change_made_by, event.user) == (world.managed, "account_manager", admin)


# --- Refusals ---------------------------------------------------------------------------------------------


def _every_endpoint(client: telnyx.Telnyx, headers: dict[str, str]):
    """Each /v2 endpoint the header reaches, called with `headers`."""
    return [
        lambda: client.balance.retrieve(extra_headers=headers),
        lambda: client.invoices.list(extra_headers=headers),
        lambda: client.usage_reports.list(**REPORT, extra_headers=headers),
        lambda: client.usage_reports.get_options(extra_headers=headers),
        lambda: client.audit_events.list(extra_headers=headers),
        lambda: _post_usage(client, _row("refused"), headers=headers),
    ]


def _refused(call, error: type[telnyx.APIStatusError]) -> dict:
    with pytest.raises(error) as refused:
        call()
    body = refused.value.body
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    return body["errors"][0]


def test_another_managers_account_is_a_404_that_reveals_nothing(fleet, client_of):
    world = fleet.world
    client = client_of(world.manager)
    nobody = str(uuid.uuid4())

    for target in (world.other_managed, world.other_manager, world.standard, world.manager, nobody):
        for call in _every_endpoint(client, _on(target)):
            assert _refused(call, telnyx.NotFoundError) == _refused(lambda: client.balance.retrieve(
                extra_headers=_on(nobody)), telnyx.NotFoundError)  # fmt: skip
    assert not UsageRecord.objects.filter(idempotency_key="refused").exists()
    # And the other way round: the other manager's key cannot reach world.managed.
    assert _refused(lambda: client_of(world.other_manager).balance.retrieve(extra_headers=_on(world.managed)),
                    telnyx.NotFoundError)["code"] == "not_found"  # fmt: skip


def test_a_managed_or_standard_accounts_own_key_cannot_use_the_header(fleet, client_of):
    world = fleet.world
    for own_key, target in ((world.managed, world.managed), (world.managed, world.sibling),
                            (fleet.canyon, world.managed), (world.standard, world.managed)):  # fmt: skip
        client = client_of(own_key)
        for call in _every_endpoint(client, _on(target)):
            problem = _refused(call, telnyx.PermissionDeniedError)
            assert problem["code"] == "managed_account_header_not_allowed", problem
            assert HEADER in problem["detail"] and "manager" in problem["detail"]
        assert client.audit_events.list().data  # without the header the key works as before


def test_a_disabled_or_cancelled_managed_account_is_refused_on_every_request(fleet, client_of):
    world, owner = fleet.world, Actor(user=fleet.world.users["owner"])
    client = client_of(world.manager, on_behalf=world.managed)
    assert client.invoices.list().data is not None  # allowed now

    services.change_managed_account_status(managed=world.managed, action="disable", actor=owner)
    for call in _every_endpoint(client, _on(world.managed)):
        problem = _refused(call, telnyx.PermissionDeniedError)
        assert problem["code"] == "account_not_enabled" and "Alpine Voice is disabled" in problem["detail"]

    services.change_managed_account_status(managed=world.managed, action="enable", actor=owner)
    assert _report(client, metrics=["count"])  # nothing was remembered from the refused requests

    services.change_managed_account_status(managed=world.managed, action="cancel", actor=owner)
    problem = _refused(lambda: client.audit_events.list(), telnyx.PermissionDeniedError)
    assert problem["code"] == "account_not_enabled" and "cancelled" in problem["detail"]


@pytest.mark.parametrize("value", ["not-a-uuid", "", "1234", "'; DROP TABLE accounts_account; --"])
def test_a_malformed_id_is_refused_clearly(fleet, client_of, value):
    client = client_of(fleet.world.manager)
    for call in _every_endpoint(client, {HEADER: value}):
        problem = _refused(call, telnyx.UnprocessableEntityError)
        assert problem["code"] == "invalid_header", problem
        assert HEADER in problem["detail"] and "UUID" in problem["detail"]


def test_the_managed_account_endpoints_answer_as_the_managed_account_would(fleet, client_of):
    """Acting as a managed account, the manager's endpoints are closed, as they are to its own key."""
    world = fleet.world
    as_managed = client_of(world.manager, on_behalf=world.managed)

    with pytest.raises(telnyx.PermissionDeniedError):
        as_managed.managed_accounts.list()
    with pytest.raises(telnyx.NotFoundError):
        as_managed.managed_accounts.retrieve(str(world.sibling.public_id))
    assert {a.id for a in client_of(world.manager).managed_accounts.list().data} >= {str(world.managed.public_id)}
