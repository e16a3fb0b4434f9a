"""v2 API: usage ingestion (`POST /v2/usage_records`) and usage reports (`GET /v2/usage_reports`).

The official telnyx SDK drives the report where it has the call (`client.usage_reports.list`,
`.get_options`) and every response must parse into its models; raw HTTP (Django's test client)
sends what the SDK would not: bad batches, bad ranges, unknown parameters.

The usage (list prices, USD: voice.outbound 0.01/minute, sms.outbound 0.004/message), March 2025:

    world.managed (Alpine Voice)   03-01 voice 10, sms 3; 03-15 voice 2.5; 03-20 sms 5
    world.sibling (Blue Harbor)    03-01 voice 4
    world.manager (its own usage)  03-02 sms 7
    world.other_managed            03-01 voice 100: never in world.manager's reports
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import time
import uuid

import pytest
import telnyx
from django.apps import apps
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from accounts.services import create_api_key
from billing.models import DailyUsage, MonthlyUsage, UsageBatch, UsageRecord
from billing.usage.services import MAX_BATCH, ingest_usage
from reporting.forms import today_utc
from tests.api.conftest import owner_of

MARCH = {"start_date": "2025-03-01T00:00:00Z", "end_date": "2025-04-01T00:00:00Z"}  # 31 days, end exclusive


# --- Helpers ------------------------------------------------------------------------------------------


def key_for(account: Account) -> str:
    _, raw = create_api_key(account=account, name="Test key", actor=Actor(user=owner_of(account)))
    return raw


class Api:
    """Raw HTTP with a key, through Django's test client."""

    def __init__(self, account: Account):
        self.raw_key = key_for(account)
        self.client = Client(raise_request_exception=False)
        self.auth = {"HTTP_AUTHORIZATION": f"Bearer {self.raw_key}"}

    def report(self, **params):
        return self.client.get("/v2/usage_reports", params, **self.auth)

    def ingest(self, records=None, *, body=None, content_type="application/json", raw: bytes | None = None):
        data = raw if raw is not None else json.dumps(body if body is not None else {"records": records})
        return self.client.post("/v2/usage_records", data=data, content_type=content_type, **self.auth)


def record(n: int, **fields) -> dict:
    values = {
        "product": "sms.outbound",
        "quantity": "1",
        "started_at": f"2025-03-10T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
        "idempotency_key": f"msg-{n}",
    }
    return {**values, **fields}


def stored() -> dict:
    return {
        "records": UsageRecord.objects.count(),
        "batches": UsageBatch.objects.count(),
        "daily": sorted(DailyUsage.objects.values_list("account_id", "product_id", "day", "quantity", "records")),
        "monthly": sorted(MonthlyUsage.objects.values_list("account_id", "product_id", "month", "quantity")),
    }


def errors_of(response) -> list[tuple[str | None, str]]:
    """[(pointer or parameter, detail)] of an error response."""
    return [
        ((e.get("source") or {}).get("pointer") or (e.get("source") or {}).get("parameter"), e["detail"])
        for e in response.json()["errors"]
    ]


def usage_row(key, product, quantity, started_at) -> dict:
    return {"idempotency_key": key, "product": product, "quantity": quantity, "started_at": started_at}


@pytest.fixture
def usage(world):
    def ingest(account, rows):
        ingest_usage(submitter=account, rows=rows, source="api", actor=Actor(user=owner_of(account)))

    ingest(
        world.managed,
        [
            usage_row("m1", "voice.outbound", "10", "2025-03-01T10:00:00Z"),
            usage_row("m2", "sms.outbound", "3", "2025-03-01T11:00:00Z"),
            usage_row("m3", "voice.outbound", "2.5", "2025-03-15T09:30:00Z"),
            usage_row("m4", "sms.outbound", "5", "2025-03-20T08:00:00Z"),
        ],
    )
    ingest(world.sibling, [usage_row("s1", "voice.outbound", "4", "2025-03-01T12:00:00Z")])
    ingest(world.manager, [usage_row("o1", "sms.outbound", "7", "2025-03-02T12:00:00Z")])
    ingest(world.other_managed, [usage_row("x1", "voice.outbound", "100", "2025-03-01T12:00:00Z")])
    return world


def hide_pricing(account: Account) -> None:
    account.pricing_hidden = True
    account.save(update_fields=["pricing_hidden"])


# --- The SDK against the live server --------------------------------------------------------------------


@pytest.fixture
def catalogue(transactional_db):
    """The products and list prices: a data migration loads them, but transactional tests (the
    live server's) flush every table when they end."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)


@pytest.fixture
def sdk(live_server, catalogue):
    """sdk(account) -> a telnyx.Telnyx client of the live server with a new key of `account`,
    validating every response against the SDK's own models."""
    clients = []

    def make(account: Account) -> telnyx.Telnyx:
        client = telnyx.Telnyx(
            api_key=key_for(account),
            base_url=live_server.url + "/v2",
            max_retries=0,
            _strict_response_validation=True,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_sdk_lists_a_report_by_date_and_pages_through_it(sdk, usage):
    client = sdk(usage.managed)
    first = client.usage_reports.list(
        product="all", dimensions=["date"], metrics=["count", "quantity", "cost"], page_size=2, **MARCH
    )
    assert isinstance(first, telnyx.pagination.SyncDefaultFlatPagination)
    assert first.meta.page_number == 1 and first.meta.total_pages == 2
    rows = list(first)  # the SDK fetches page 2 by itself
    assert rows == [
        {"record_type": "usage_report", "product": "all", "date": "2025-03-01", "count": 2, "quantity": "13",
         "cost": "0.112", "currency": "USD"},
        {"record_type": "usage_report", "product": "all", "date": "2025-03-15", "count": 1, "quantity": "2.5",
         "cost": "0.025", "currency": "USD"},
        {"record_type": "usage_report", "product": "all", "date": "2025-03-20", "count": 1, "quantity": "5",
         "cost": "0.02", "currency": "USD"},
    ]  # fmt: skip


def test_sdk_manager_aggregates_its_managed_accounts_only_with_managed_accounts_true(sdk, usage):
    client = sdk(usage.manager)
    by_account = client.usage_reports.list(
        product="voice.outbound",
        dimensions=["account"],
        metrics=["quantity", "cost"],
        managed_accounts=True,
        sort=["-quantity"],
        **MARCH,
    )
    assert [(r["account_name"], r["quantity"], r["cost"], r["unit"]) for r in by_account.data] == [
        ("Alpine Voice", "12.5", "0.125", "minute"),
        ("Blue Harbor", "4", "0.04", "minute"),
    ]  # another manager's managed account (voice 100) is not there
    assert by_account.meta.total_pages == 1
    own = client.usage_reports.list(product="all", dimensions=["product"], metrics=["count", "quantity"], **MARCH)
    assert [(r["product"], r["product_name"], r["count"], r["quantity"]) for r in own.data] == [
        ("sms.outbound", "Outbound SMS", 1, "7")
    ]


def test_sdk_reads_the_options(sdk, usage):
    options = sdk(usage.managed).usage_reports.get_options(product="voice.outbound")
    assert isinstance(options, telnyx.types.UsageReportGetOptionsResponse)
    dimensions = ["date", "month", "product", "account", "direction", "country", "country_code", "country_iso"]
    assert [(d.product, d.product_dimensions, d.product_metrics) for d in options.data] == [
        ("voice.outbound", [*dimensions, "destination_type"], ["count", "quantity", "cost"])
    ]
    hide_pricing(usage.managed)
    every = sdk(usage.managed).usage_reports.get_options()
    assert len(every.data) >= 10 and all(d.product_metrics == ["count", "quantity"] for d in every.data)


def test_sdk_raises_its_own_errors_for_hidden_cost_and_a_long_range(sdk, usage):
    hide_pricing(usage.managed)
    client = sdk(usage.managed)
    with pytest.raises(telnyx.PermissionDeniedError) as denied:
        client.usage_reports.list(product="all", dimensions=["date"], metrics=["quantity", "cost"], **MARCH)
    assert denied.value.body["errors"][0]["code"] == "pricing_hidden"
    assert "pricing is hidden" in denied.value.body["errors"][0]["detail"]
    with pytest.raises(telnyx.UnprocessableEntityError) as refused:
        client.usage_reports.list(
            product="all", dimensions=["date"], metrics=["quantity"], start_date="2025-03-01T00:00:00Z",
            end_date="2025-04-02T00:00:00Z",
        )  # fmt: skip
    assert refused.value.body["errors"][0]["source"] == {"parameter": "end_date"}
    quantities = client.usage_reports.list(product="all", dimensions=["month"], metrics=["count", "quantity"], **MARCH)
    assert quantities.data == [
        {"record_type": "usage_report", "product": "all", "month": "2025-03", "count": 4, "quantity": "20.5"}
    ]


def test_sdk_fetches_the_csv_format(sdk, usage):
    response = sdk(usage.manager).usage_reports.with_raw_response.list(
        product="all", dimensions=["account"], metrics=["count", "cost"], managed_accounts=True, format="csv", **MARCH
    )
    assert response.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(response.text()))) == [
        ["product", "account_id", "account_name", "count", "cost", "currency"],
        ["all", str(usage.managed.public_id), "Alpine Voice", "4", "0.157", "USD"],
        ["all", str(usage.sibling.public_id), "Blue Harbor", "1", "0.04", "USD"],
    ]


def test_sdk_client_posts_a_batch(sdk, usage):
    """The SDK has no call for our own extension; its generic post reaches it with the same key."""
    client = sdk(usage.managed)
    body = {"records": [record(1), record(2)]}
    created = client.post("/usage_records", cast_to=object, body=body)
    assert created["data"]["record_type"] == "usage_batch"
    assert (created["data"]["accepted"], created["data"]["duplicates"]) == (2, 0)
    assert UsageBatch.objects.get(public_id=created["data"]["id"]).submitted_by_account == usage.managed
    again = client.post("/usage_records", cast_to=object, body=body)
    assert again["data"] == {"record_type": "usage_batch", "id": None, "accepted": 0, "duplicates": 2}


# --- Ingestion ----------------------------------------------------------------------------------------------


def test_a_batch_is_stored_for_the_keys_account_and_audited(world):
    api = Api(world.managed)
    response = api.ingest([record(1), record(2, quantity=3, product="voice.outbound"), record(3, quantity="0.5")])
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["record_type"] == "usage_batch" and data["accepted"] == 3 and data["duplicates"] == 0
    batch = UsageBatch.objects.get(public_id=data["id"])
    assert (batch.source, batch.submitted_by_account) == ("api", world.managed)
    assert batch.submitted_by == owner_of(world.managed)  # the key's creator
    assert set(UsageRecord.objects.values_list("account_id", flat=True)) == {world.managed.pk}
    event = AuditEvent.objects.get(change_type="usage.ingested")
    assert event.account == world.managed and event.user == owner_of(world.managed)


def test_a_10000_record_batch_with_one_bad_row_is_refused_naming_that_row_and_stores_nothing(world):
    api = Api(world.manager)
    api.ingest([record(0, idempotency_key="before")])  # existing totals must not move either
    before = stored()
    records = [record(n) for n in range(1, MAX_BATCH + 1)]
    records[7345]["quantity"] = "-2"
    response = api.ingest(records)
    assert response.status_code == 422
    assert errors_of(response) == [("/records/7345/quantity", "Row 7346, quantity: cannot be negative.")]
    assert response.json()["errors"][0]["code"] == "invalid_record"
    assert stored() == before
    records[7345]["quantity"] = "2"
    accepted = api.ingest(records)
    assert accepted.status_code == 201 and accepted.json()["data"]["accepted"] == MAX_BATCH


def test_10001_records_are_refused(world):
    api = Api(world.manager)
    response = api.ingest([record(n) for n in range(MAX_BATCH + 1)])
    assert response.status_code == 422
    assert errors_of(response) == [("/records", "records: A batch holds at most 10,000 records; this one has 10,001.")]
    assert UsageRecord.objects.count() == 0


def test_a_resent_batch_is_all_duplicates_and_adds_nothing(world):
    api = Api(world.managed)
    batch = [record(n) for n in range(5)]
    assert api.ingest(batch).status_code == 201
    before = stored()
    again = api.ingest(batch)
    assert again.status_code == 200
    assert again.json() == {"data": {"record_type": "usage_batch", "id": None, "accepted": 0, "duplicates": 5}}
    assert stored() == before
    partly = api.ingest([*batch, record(5)])
    assert partly.status_code == 201 and partly.json()["data"]["accepted"] == 1
    assert partly.json()["data"]["duplicates"] == 5


def test_a_manager_submits_for_its_managed_accounts_and_itself(world):
    api = Api(world.manager)
    managed_id = str(world.managed.public_id)
    response = api.ingest(
        [
            record(1, account=managed_id),
            record(2, account=managed_id.upper().replace("-", "")),  # any spelling of the id
            record(3, account=str(world.sibling.public_id)),
            record(4),  # no account: the manager's own
        ]
    )
    assert response.status_code == 201, response.content
    per_account = dict(UsageRecord.objects.values_list("idempotency_key", "account_id"))
    assert per_account == {
        "msg-1": world.managed.pk,
        "msg-2": world.managed.pk,
        "msg-3": world.sibling.pk,
        "msg-4": world.manager.pk,
    }


@pytest.mark.parametrize("whose", ["other_managed", "other_manager", "standard", "unknown"])
def test_another_managers_or_unknown_account_is_refused_alike(world, whose):
    target = str(uuid.uuid4()) if whose == "unknown" else str(getattr(world, whose).public_id)
    response = Api(world.manager).ingest([record(1), record(2, account=target)])
    assert response.status_code == 422
    assert errors_of(response) == [
        ("/records/1/account", f"Row 2, account: '{target}' is not this account or one of its managed accounts.")
    ]  # the same words whether the account exists or not
    assert UsageRecord.objects.count() == 0


@pytest.mark.parametrize("whose", ["manager", "sibling"])
def test_a_managed_key_submits_only_for_itself(world, whose):
    response = Api(world.managed).ingest([record(1, account=str(getattr(world, whose).public_id))])
    assert response.status_code == 422
    assert errors_of(response)[0][0] == "/records/0/account"


def test_a_disabled_managed_account_gets_no_usage(world):
    world.sibling.status = Account.Status.DISABLED
    world.sibling.save(update_fields=["status"])
    response = Api(world.manager).ingest([record(1, account=str(world.sibling.public_id))])
    assert response.status_code == 422
    assert errors_of(response) == [
        ("/records/0/account", "Row 1, account: Blue Harbor is disabled; its usage is refused.")
    ]


@pytest.mark.parametrize(
    ("bad", "pointer"),
    [
        ({"quantity": 1.5}, "/records/1/quantity"),  # a float: decimals travel as strings
        ({"quantity": True}, "/records/1/quantity"),
        ({"quantity": "lots"}, "/records/1/quantity"),
        ({"product": "sms.pigeon"}, "/records/1/product"),
        ({"started_at": "yesterday"}, "/records/1/started_at"),
        ({"idempotency_key": ""}, "/records/1/idempotency_key"),
        ({"idempotency_key": "msg-0"}, "/records/1/idempotency_key"),  # also used in row 1
        ({"direction": "sideways"}, "/records/1/direction"),
        ({"colour": "red"}, "/records/1/colour"),
        ({"a/b~c": 1}, "/records/1/a~1b~0c"),  # JSON pointer escaping
    ],
)
def test_row_errors_point_at_the_field(world, bad, pointer):
    response = Api(world.managed).ingest([record(0), record(1, **bad), record(2)])
    assert response.status_code == 422
    assert [p for p, _ in errors_of(response)] == [pointer]
    assert errors_of(response)[0][1].startswith("Row 2, ")
    assert UsageRecord.objects.count() == 0


def test_a_record_that_is_not_an_object_points_at_the_record(world):
    response = Api(world.managed).ingest([record(0), ["sms.outbound", "1"]])
    assert errors_of(response) == [("/records/1", "Row 2, record: must be an object with named fields.")]


def test_more_than_100_errors_are_cut_short_with_a_count(world):
    response = Api(world.managed).ingest([record(n, quantity="-1") for n in range(150)])
    errors = response.json()["errors"]
    assert len(errors) == 101
    assert errors[-1]["code"] == "too_many_errors" and "50 more error(s)" in errors[-1]["detail"]


@pytest.mark.parametrize(
    ("kwargs", "status", "pointer"),
    [
        ({"raw": b'{"records": [', "content_type": "application/json"}, 400, None),
        ({"raw": b"records=1", "content_type": "application/x-www-form-urlencoded"}, 415, None),
        ({"body": {"records": [], "batch_name": "x"}}, 422, "/batch_name"),
        ({"body": {}}, 422, "/records"),
        ({"body": {"records": {"0": {}}}}, 422, "/records"),
        ({"body": {"records": []}}, 422, "/records"),
        ({"raw": b"[1, 2]", "content_type": "application/json"}, 422, ""),
    ],
)
def test_bad_bodies_are_refused_in_the_contracts_shape(world, kwargs, status, pointer):
    response = Api(world.managed).ingest(**kwargs)
    assert response.status_code == status, response.content
    error = response.json()["errors"][0]
    assert error["code"] and error["title"] and error["detail"]
    if pointer is not None:
        assert error["source"] == {"pointer": pointer}


def test_a_body_over_the_servers_limit_is_a_413_in_the_contracts_shape(world):
    api = Api(world.managed)
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        response = api.ingest([record(n) for n in range(50)])
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "payload_too_large"


def test_a_full_batch_of_realistic_records_fits_the_servers_body_limit(world):
    managed_id = str(world.managed.public_id)
    records = [
        record(n, idempotency_key=str(uuid.uuid4()), account=managed_id, started_at="2025-03-10T10:00:00.123456Z",
               quantity="12.345", direction="outbound", country="US", destination="+15551234567")
        for n in range(MAX_BATCH)
    ]  # fmt: skip
    response = Api(world.manager).ingest(records)
    assert response.status_code == 201, response.content[:300]


def test_ingestion_needs_a_key_and_a_post(world):
    assert Client().post("/v2/usage_records", {"records": []}, content_type="application/json").status_code == 401
    api = Api(world.managed)
    response = api.client.get("/v2/usage_records", **api.auth)
    assert response.status_code == 405 and response["Allow"] == "POST"


# --- Reports: raw HTTP -----------------------------------------------------------------------------------

DAILY = {"product": "all", "dimensions": "date", "metrics": "count,quantity", **MARCH}


def test_the_report_reads_the_totals_never_the_records(usage):
    api = Api(usage.managed)
    with CaptureQueriesContext(connection) as queries:
        response = api.report(**{**DAILY, "metrics": "count,quantity,cost"})
    assert response.status_code == 200
    assert not [q["sql"] for q in queries if UsageRecord._meta.db_table in q["sql"]]
    meta = response.json()["meta"]
    assert meta.pop("window")["source"] == "daily_totals"
    assert meta == {"page_number": 1, "page_size": 20, "total_pages": 1, "total_results": 3}


def test_it_pages_like_the_other_lists(usage):
    api = Api(usage.managed)
    second = api.report(**DAILY, **{"page[number]": "2", "page[size]": "2"})
    assert [r["date"] for r in second.json()["data"]] == ["2025-03-20"]
    meta = {k: v for k, v in second.json()["meta"].items() if k != "window"}
    assert meta == {"page_number": 2, "page_size": 2, "total_pages": 2, "total_results": 3}
    for size in ("0", "251", "x"):
        refused = api.report(**DAILY, **{"page[size]": size})
        assert refused.status_code == 422 and errors_of(refused)[0][0] == "page[size]"


@pytest.mark.parametrize(
    ("dates", "parameter"),
    [
        ({"start_date": "2025-03-01T00:00:00Z", "end_date": "2025-04-02T00:00:00Z"}, "end_date"),  # 32 days
        ({"start_date": "2025-01-01", "end_date": "2025-06-01"}, "end_date"),
        ({"start_date": "2025-03-10", "end_date": "2025-03-01"}, "end_date"),  # before the start
        ({"start_date": "2025-03-10", "end_date": "2025-03-10"}, "end_date"),  # empty: end is exclusive
        ({"start_date": "2025-03-32", "end_date": "2025-04-10"}, "start_date"),
        ({"start_date": "March", "end_date": "2025-04-10"}, "start_date"),
        ({"start_date": "2025-03-01"}, "end_date"),
        ({"end_date": "2025-03-01"}, "start_date"),
        ({"date_range": "last_5_weeks"}, "end_date"),  # 35 days
        ({"date_range": "last_0_days"}, "date_range"),
        ({"date_range": "fortnight"}, "date_range"),
        ({"date_range": "today", "start_date": "2025-03-01"}, "date_range"),
    ],
)
def test_bad_ranges_are_refused(usage, dates, parameter):
    params = {k: v for k, v in DAILY.items() if k not in MARCH} | dates
    response = Api(usage.managed).report(**params)
    assert response.status_code == 422, response.content
    assert errors_of(response)[0][0] == parameter


@pytest.mark.parametrize(
    ("dates", "first", "last"),
    [
        ({"start_date": "2025-03-01T00:00:00Z", "end_date": "2025-04-01T00:00:00Z"}, "2025-03-01", "2025-03-31"),
        ({"start_date": "2025-03-01", "end_date": "2025-03-02"}, "2025-03-01", "2025-03-01"),
        ({"start_date": "2025-03-01T01:00:00+01:00", "end_date": "2025-03-16T00:00:00"}, "2025-03-01", "2025-03-15"),
    ],
)
def test_start_is_inclusive_and_end_exclusive(usage, dates, first, last):
    params = {k: v for k, v in DAILY.items() if k not in MARCH} | dates
    days = [r["date"] for r in Api(usage.managed).report(**params).json()["data"]]
    assert days and all(first <= d <= last for d in days)
    assert days[-1] == max(d for d in ("2025-03-01", "2025-03-15", "2025-03-20") if d <= last)


def test_date_ranges_and_the_default_cover_today(world):
    today = today_utc()
    ingest_usage(
        submitter=world.managed,
        rows=[usage_row("now", "sms.outbound", "2", f"{today.isoformat()}T00:00:00Z")],
        source="api",
        actor=Actor(user=owner_of(world.managed)),
    )
    api = Api(world.managed)
    base = {"product": "sms.outbound", "dimensions": "date", "metrics": "quantity"}
    for literal in ("today", "this_month", "last_1_days", "last_7_days", "last_1_weeks", None):
        params = base | ({"date_range": literal} if literal else {})
        response = api.report(**params)
        assert response.status_code == 200, (literal, response.content)
        assert [r["date"] for r in response.json()["data"]] == [today.isoformat()], literal
    for literal in ("yesterday", "last_month"):
        assert api.report(**base, date_range=literal).json()["data"] == [], literal


def test_cost_on_hidden_pricing_is_a_403_never_a_zero(usage):
    hide_pricing(usage.managed)
    api = Api(usage.managed)
    for output in ("json", "csv"):
        denied = api.report(**{**DAILY, "metrics": "count,cost"}, format=output)
        assert denied.status_code == 403
        assert denied.json()["errors"][0]["code"] == "pricing_hidden"
        assert denied.json()["errors"][0]["source"] == {"parameter": "metrics"}
    assert api.report(**DAILY, sort="-cost").status_code == 422  # cost cannot order the rows either
    quantities = api.report(**DAILY)
    assert quantities.status_code == 200 and "cost" not in quantities.content.decode()
    table = api.report(**DAILY, format="csv")
    assert "cost" not in b"".join(table.streaming_content).decode()
    # The manager sees its hidden-pricing managed account's costs, as on its own pages.
    manager = Api(usage.manager).report(
        product="all", dimensions="account", metrics="cost", managed_accounts="true", **MARCH
    )
    assert [r["cost"] for r in manager.json()["data"]] == ["0.157", "0.04"]


def test_csv_streams_every_row_escaped(usage):
    usage.sibling.name = '=HYPERLINK("http://evil.example","x")'
    usage.sibling.save(update_fields=["name"])
    response = Api(usage.manager).report(
        product="all", dimensions="account", metrics="count,quantity", managed_accounts="true", format="csv",
        **{"page[size]": "1"}, **MARCH,
    )  # fmt: skip
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    filename = "usage-report-acme-reseller-2025-03-01-to-2025-03-31.csv"
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows == [
        ["product", "account_id", "account_name", "count", "quantity"],
        ["all", str(usage.sibling.public_id), '\'=HYPERLINK("http://evil.example","x")', "1", "4"],
        ["all", str(usage.managed.public_id), "Alpine Voice", "4", "20.5"],
    ]  # every row (paging is for JSON), the formula quoted


def test_a_managed_key_sees_only_its_own_usage(usage):
    api = Api(usage.managed)
    by_account = api.report(product="all", dimensions="account", metrics="count", **MARCH).json()["data"]
    assert [(r["account_id"], r["count"]) for r in by_account] == [(str(usage.managed.public_id), 4)]
    denied = api.report(**DAILY, managed_accounts="true")
    assert denied.status_code == 403 and "manager" in denied.json()["errors"][0]["detail"]
    assert Api(usage.standard).report(**DAILY, managed_accounts="true").status_code == 403
    assert api.report(**DAILY, managed_accounts="yes").status_code == 422


def test_another_manager_never_sees_these_accounts(usage):
    api = Api(usage.other_manager)
    response = api.report(product="all", dimensions="account", metrics="quantity", managed_accounts="true", **MARCH)
    rows = response.json()["data"]
    assert [(r["account_name"], r["quantity"]) for r in rows] == [("Other Managed", "100")]
    assert api.report(**DAILY).json()["data"] == []  # its own account has no usage


def test_sorting(usage):
    api = Api(usage.managed)
    rows = api.report(**DAILY, sort="-quantity").json()["data"]
    assert [r["quantity"] for r in rows] == ["13", "5", "2.5"]
    rows = api.report(**DAILY, sort="count,-date").json()["data"]
    assert [r["date"] for r in rows] == ["2025-03-20", "2025-03-15", "2025-03-01"]
    assert api.report(**DAILY, sort="month").status_code == 422


@pytest.mark.parametrize(
    ("changes", "parameter"),
    [
        ({"product": None}, "product"),
        ({"product": "sms.pigeon"}, "product"),
        ({"dimensions": None}, "dimensions"),
        ({"dimensions": "destination"}, "dimensions"),
        ({"dimensions": "date,colour"}, "dimensions"),
        ({"metrics": None}, "metrics"),
        ({"metrics": "count,parts"}, "metrics"),
        ({"format": "xml"}, "format"),
        ({"filter[direction]": "outbound"}, "filter[direction]"),
        ({"filter": "direction:outbound"}, "filter"),
        ({"managed_acounts": "true"}, "managed_acounts"),  # a typo is not silently ignored
    ],
)
def test_bad_parameters_are_refused(usage, changes, parameter):
    params = {k: v for k, v in ({**DAILY, **changes}).items() if v is not None}
    response = Api(usage.managed).report(**params)
    assert response.status_code == 422, response.content
    assert errors_of(response)[0][0] == parameter


def test_list_parameters_may_also_be_repeated(usage):
    api = Api(usage.managed)
    response = api.client.get(
        "/v2/usage_reports?product=all&dimensions=product&metrics=count&metrics=quantity"
        "&start_date=2025-03-01&end_date=2025-04-01",
        **api.auth,
    )
    assert [(r["product"], r["count"], r["quantity"]) for r in response.json()["data"]] == [
        ("sms.outbound", 2, "8"),
        ("voice.outbound", 2, "12.5"),
    ]


def test_reports_need_a_key(usage):
    assert Client().get("/v2/usage_reports", DAILY).status_code == 401


# --- Throughput -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ingest_throughput_through_the_api(sdk, world, capsys):
    """Real HTTP to the live server (committed transactions), half the records for a managed account."""
    client = sdk(world.manager)
    managed_id = str(world.managed.public_id)
    batch = [
        record(n, account=managed_id if n % 2 else "", started_at=f"2025-03-{1 + n % 28:02d}T10:00:00Z",
               idempotency_key=str(uuid.uuid4()), destination="+15551234567", direction="outbound", country="US")
        for n in range(5000)
    ]  # fmt: skip
    timings = []
    for expected in ("accepted", "duplicates"):
        started = time.perf_counter()
        response = client.post("/usage_records", cast_to=object, body={"records": batch})
        timings.append(time.perf_counter() - started)
        assert response["data"][expected] == 5000
    assert UsageRecord.objects.count() == 5000
    with capsys.disabled():
        print(
            f"\n[{connection.vendor}] 5,000-record batch through POST /v2/usage_records: {timings[0]:.2f} s "
            f"({5000 / timings[0]:,.0f} records/s); re-sent, all duplicates: {timings[1]:.2f} s "
            f"({5000 / timings[1]:,.0f} records/s)"
        )
