"""`GET /v2/invoices` and `GET /v2/invoices/{id}` through the official telnyx SDK (strict response
validation: every response must parse into the SDK's own models), and raw HTTP for what the SDK
would refuse to send.

Invoices are made as the monthly close makes them (billing.invoices.builder.invoice_party): world.manager
for January, February and March 2025 (March: Alpine Voice's roll-up voice 250 = 2.50 and its own
sms 7 = 0.028 -> 0.03, total 2.53); Canyon Lines, a separately billed hidden-pricing managed
account, for March (voice 30.5 = 0.305 -> 0.31).
"""

from __future__ import annotations

import importlib
import uuid
from datetime import date
from decimal import Decimal

import pytest
import telnyx
from django.apps import apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from telnyx.types import InvoiceListResponse, InvoiceRetrieveResponse

from accounts import services
from accounts.actor import Actor
from accounts.models import Account
from billing.invoices.builder import invoice_party
from billing.models import Invoice
from billing.usage.services import ingest_usage
from tests.api.conftest import assert_error, owner_of

JANUARY, FEBRUARY, MARCH = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)
CONTRACT_FIELDS = {"invoice_id", "file_id", "paid", "period_start", "period_end", "url"}
EXTRA_FIELDS = {"record_type", "number", "status", "currency", "total", "issued_by"}
EXTRA_FIELDS |= {"payment_status", "issue_date", "due_date"}  # issue 12 item 7


def _usage(submitter: Account, *rows: tuple[Account, str, str]) -> None:
    records = [
        {
            "account": str(account.public_id),
            "product": product,
            "quantity": quantity,
            "started_at": f"2025-03-{n + 1:02d}T10:00:00Z",
            "idempotency_key": f"invoice-api-{account.pk}-{n}",
        }
        for n, (account, product, quantity) in enumerate(rows)
    ]
    ingest_usage(submitter=submitter, rows=records, source="api", actor=Actor(user=owner_of(submitter)))


@pytest.fixture
def catalogue(transactional_db):
    """The products and list prices: a data migration loads them, but each transactional test (the
    live server's) flushes every table when it ends."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)


@pytest.fixture
def invoices(world, catalogue) -> dict:
    canyon = services.create_managed_account(
        manager=world.manager, name="Canyon Lines", owner_email="canyon@example.com", owner_password=None,
        billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False, pricing_hidden=True,
        actor=Actor(user=world.users["owner"]),
    )  # fmt: skip
    _usage(world.manager, (world.managed, "voice.outbound", "250"), (world.manager, "sms.outbound", "7"))
    _usage(canyon, (canyon, "voice.outbound", "30.5"))
    made = {month: invoice_party(account=world.manager, month=month) for month in (JANUARY, FEBRUARY, MARCH)}
    made["canyon"] = invoice_party(account=canyon, month=MARCH)
    made["other"] = invoice_party(account=world.other_manager, month=MARCH)
    made["canyon_account"] = canyon
    assert made[MARCH].total == Decimal("2.53") and made["canyon"].total == Decimal("0.31")
    return made


def _page_url(base: str, account: Account, invoice: Invoice) -> str:
    return base + reverse("invoice_detail", args=[account.public_id, invoice.public_id])


# --- Through the SDK ----------------------------------------------------------------------------------


def test_the_sdk_lists_a_managers_invoices_newest_first(world, invoices, make_key, sdk, live_server):
    listed = sdk(make_key(world.manager)).invoices.list()

    assert all(isinstance(item, InvoiceListResponse) for item in listed.data)
    assert [item.period_start for item in listed.data] == [MARCH, FEBRUARY, JANUARY]
    assert [item.period_end for item in listed.data] == [date(2025, 3, 31), date(2025, 2, 28), date(2025, 1, 31)]
    march = listed.data[0]
    assert march.invoice_id == str(invoices[MARCH].public_id)
    assert march.paid is False and march.file_id is None
    assert march.url == f"{live_server.url}/v2/invoices/{invoices[MARCH].public_id}"
    assert march.to_dict()["total"] == "2.53"  # an extra of ours: money the account owes
    assert listed.meta.page_number == 1 and listed.meta.total_pages == 1


def test_the_sdk_sorts_and_pages_through_the_invoices(world, invoices, make_key, sdk):
    client = sdk(make_key(world.manager))

    oldest_first = client.invoices.list(sort="period_start")
    newest_first = client.invoices.list(sort="-period_start", page_size=2)
    every = list(client.invoices.list(page_size=2))  # the SDK follows the pages itself

    assert [i.period_start for i in oldest_first.data] == [JANUARY, FEBRUARY, MARCH]
    assert [i.period_start for i in newest_first.data] == [MARCH, FEBRUARY]
    assert newest_first.meta.total_pages == 2
    second = client.invoices.list(sort="-period_start", page_size=2, page_number=2)
    assert [i.period_start for i in second.data] == [JANUARY]
    assert [i.period_start for i in every] == [MARCH, FEBRUARY, JANUARY]


def test_the_sdk_retrieves_an_invoice_as_json_and_as_a_link(world, invoices, make_key, sdk, live_server):
    client = sdk(make_key(world.manager))
    march = invoices[MARCH]

    as_json = client.invoices.retrieve(str(march.public_id))
    as_link = client.invoices.retrieve(str(march.public_id), action="link")

    assert isinstance(as_json, InvoiceRetrieveResponse) and isinstance(as_link, InvoiceRetrieveResponse)
    assert as_json.data.invoice_id == str(march.public_id)
    assert (as_json.data.period_start, as_json.data.period_end) == (MARCH, date(2025, 3, 31))
    assert as_json.data.download_url is None
    assert as_link.data.download_url.startswith(f"{live_server.url}/invoices/download/")
    assert as_json.data.url == as_link.data.url == f"{live_server.url}/v2/invoices/{march.public_id}"


def test_the_download_link_serves_the_pdf_without_a_session(world, invoices, make_key, sdk):
    link = sdk(make_key(world.manager)).invoices.retrieve(str(invoices[MARCH].public_id), action="link")
    path = "/" + link.data.download_url.split("/", 3)[3]

    download = Client().get(path)

    assert download.status_code == 200
    assert download["Content-Type"] == "application/pdf"
    assert download.content.startswith(b"%PDF")


def test_a_paid_invoice_reads_as_paid(world, invoices, make_key, sdk):
    Invoice.objects.filter(pk=invoices[FEBRUARY].pk).update(status=Invoice.Status.PAID)
    client = sdk(make_key(world.manager))

    assert [i.paid for i in client.invoices.list().data] == [False, True, False]
    assert client.invoices.retrieve(str(invoices[FEBRUARY].public_id)).data.paid is True


def test_the_sdk_sees_404_for_invoices_the_key_may_not_see(world, invoices, make_key, sdk):
    manager_api = sdk(make_key(world.manager))
    canyon_api = sdk(make_key(invoices["canyon_account"]))
    other_api = sdk(make_key(world.other_manager))

    with pytest.raises(telnyx.NotFoundError):
        manager_api.invoices.retrieve(str(invoices["canyon"].public_id))  # a managed account's own invoice
    with pytest.raises(telnyx.NotFoundError):
        manager_api.invoices.retrieve(str(invoices["other"].public_id))
    for march in (invoices[MARCH], invoices["other"]):
        with pytest.raises(telnyx.NotFoundError):
            canyon_api.invoices.retrieve(str(march.public_id))
    with pytest.raises(telnyx.NotFoundError):
        other_api.invoices.retrieve(str(invoices[MARCH].public_id))
    assert [i.invoice_id for i in canyon_api.invoices.list().data] == [str(invoices["canyon"].public_id)]
    assert [i.invoice_id for i in other_api.invoices.list().data] == [str(invoices["other"].public_id)]


def test_a_roll_up_accounts_key_lists_only_its_managers_invoices_to_it(world, invoices, make_key, sdk):
    client = sdk(make_key(world.managed))

    listed = client.invoices.list()

    resale = Invoice.objects.filter(issuer=world.manager, bill_to=world.managed)
    assert resale.exists()
    assert sorted(i.invoice_id for i in listed.data) == sorted(str(i.public_id) for i in resale)
    assert {i.issued_by for i in listed.data} == {str(world.manager.public_id)}
    with pytest.raises(telnyx.NotFoundError):
        client.invoices.retrieve(str(invoices[MARCH].public_id))  # the manager's, with its section in it


# --- Raw HTTP -----------------------------------------------------------------------------------------


def test_the_records_carry_the_contract_fields_and_no_rate_or_line_amount(world, invoices, make_key, raw_api):
    """A hidden-pricing account sees its invoice total (money it owes), nothing priced per line."""
    api = raw_api(make_key(invoices["canyon_account"]))

    listed = api.get("invoices").json()
    one = api.get(f"invoices/{invoices['canyon'].public_id}", {"action": "link"}).json()["data"]

    assert set(listed) == {"data", "meta"}
    assert listed["meta"] == {"page_number": 1, "page_size": 20, "total_pages": 1, "total_results": 1}
    record = listed["data"][0]
    assert set(record) == CONTRACT_FIELDS | EXTRA_FIELDS
    assert set(one) == CONTRACT_FIELDS | EXTRA_FIELDS | {"download_url"}
    assert record["record_type"] == "invoice" and record["status"] == "finalized" and record["currency"] == "USD"
    assert record["total"] == "0.31" and record["number"] == invoices["canyon"].number
    assert (record["period_start"], record["period_end"]) == ("2025-03-01", "2025-03-31")
    for body in (api.get("invoices").content, api.get(f"invoices/{invoices['canyon'].public_id}").content):
        assert b"0.305" not in body and b"0.01" not in body  # neither the exact cost nor the rate


def test_bad_input_is_a_422_naming_the_parameter(world, invoices, make_key, raw_api):
    api = raw_api(make_key(world.manager))
    march = invoices[MARCH].public_id

    assert_error(api.get("invoices", {"sort": "created_at"}), 422, parameter="sort")
    assert_error(api.get("invoices", {"sort": "period_end"}), 422, parameter="sort")
    assert_error(api.get("invoices", {"page[size]": "0"}), 422, parameter="page[size]")
    assert_error(api.get("invoices", {"page[size]": "1000"}), 422, parameter="page[size]")
    assert_error(api.get("invoices", {"page[number]": "x"}), 422, parameter="page[number]")
    assert_error(api.get(f"invoices/{march}", {"action": "pdf"}), 422, parameter="action")


def test_unknown_ids_methods_and_keys(world, invoices, make_key, raw_api):
    api = raw_api(make_key(world.manager))

    assert_error(api.get("invoices/not-a-uuid"), 404)
    assert_error(api.get(f"invoices/{uuid.uuid4()}"), 404)
    refused = api.post("invoices", {})
    assert_error(refused, 405)
    assert refused["Allow"] == "GET"
    assert_error(api.send("DELETE", f"invoices/{invoices[MARCH].public_id}"), 405)
    assert_error(raw_api(None).get("invoices"), 401)
    assert_error(raw_api("KEYnot-a-real-key").get(f"invoices/{invoices[MARCH].public_id}"), 401)


def test_a_disabled_accounts_key_is_refused(world, invoices, make_key, raw_api):
    raw = make_key(invoices["canyon_account"])
    services.change_managed_account_status(
        managed=invoices["canyon_account"], action="disable", actor=Actor(user=world.users["owner"])
    )

    assert_error(raw_api(raw).get("invoices"), 401)


def test_listing_runs_the_same_queries_for_3_and_30_invoices(world, catalogue, make_key, raw_api):
    for n in range(3):
        invoice_party(account=world.standard, month=date(2024, n + 1, 1))
    for n in range(30):
        invoice_party(account=world.other_manager, month=date(2022 + n // 12, n % 12 + 1, 1))
    counts = []
    for account in (world.standard, world.other_manager):
        api = raw_api(make_key(account))
        api.get("invoices")  # the key's last-used write happens here
        with CaptureQueriesContext(connection) as queries:
            response = api.get("invoices", {"page[size]": "50"})
        assert response.status_code == 200
        counts.append((len(queries), len(response.json()["data"])))
    assert counts[0][0] == counts[1][0], counts
    assert [n for _, n in counts] == [3, 30]
