"""v2 usage reports in Telnyx's own names: product families (`messaging`, `call-control`, ...),
record dimensions (`direction`, `country_code`, `destination_type`) and any instant with an offset
for `start_date` / `end_date`, beside our own SKUs, dimensions and midnight dates.

The official telnyx SDK drives the report against the live server (strict response validation);
Django's test client sends the bad input. List prices (USD), world.managed (Alpine Voice):

    started at (UTC)      product                 quantity  direction  country  destination
    2022-12-24 23:00      sms.outbound            1         outbound   US       +15551230001   before the window
    2022-12-25 00:20:30   sms.outbound            2         outbound   CA       +14165550001   the first instant
    2022-12-25 06:00      number.local            1                    US
    2022-12-25 10:00      sms.inbound             3         inbound    US       +15551230002
    2022-12-25 12:00      voice.outbound          10        outbound   GB       +442071234567
    2022-12-25 13:00      voice.tollfree.inbound  5         inbound    US       +18885550199
    2022-12-25 15:00      fax.outbound            3         outbound   DE       +4930123456
    2022-12-25 23:59      mms.outbound            4         outbound   US       +18005550100   a toll-free number
    2022-12-26 00:20:30   sms.outbound            8         outbound   US       +15551230003   the window's end: out

The window of Telnyx's documentation: 2022-12-24T19:20:30-05:00 to 2022-12-25T19:20:30-05:00,
that is 2022-12-25T00:20:30Z (included) to 2022-12-26T00:20:30Z (excluded).
"""

from __future__ import annotations

import csv
import importlib
import io

import pytest
import telnyx
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.actor import Actor
from accounts.models import Account
from billing.models import Product, UsageRecord
from billing.usage.services import ingest_usage
from reporting import telnyx_names
from tests.api.conftest import assert_error, owner_of

WINDOW = {"start_date": "2022-12-24T19:20:30-05:00", "end_date": "2022-12-25T19:20:30-05:00"}
READ_WINDOW = {"start": "2022-12-25T00:20:30Z", "end": "2022-12-26T00:20:30Z"}
DAYS = {"start_date": "2022-12-24", "end_date": "2022-12-27"}  # midnight dates: the daily totals

# Telnyx's usage-reports product names (its documentation's "Products Supported" list), and
# "numbers", which that list lacks: see reporting.telnyx_names.
TELNYX_PRODUCTS = {"sip-trunking", "messaging", "call-control", "fax-api", "wireless", "webrtc", "numbers"}


def _row(key, product, quantity, started_at, direction="", country="", destination=""):
    return {"idempotency_key": key, "product": product, "quantity": quantity, "started_at": started_at,
            "direction": direction, "country": country, "destination": destination}  # fmt: skip


ROWS = [
    _row("a", "sms.outbound", "1", "2022-12-24T23:00:00Z", "outbound", "US", "+15551230001"),
    _row("b", "sms.outbound", "2", "2022-12-25T00:20:30Z", "outbound", "CA", "+14165550001"),
    _row("c", "number.local", "1", "2022-12-25T06:00:00Z", "", "US"),
    _row("d", "sms.inbound", "3", "2022-12-25T10:00:00Z", "inbound", "US", "+15551230002"),
    _row("e", "voice.outbound", "10", "2022-12-25T12:00:00Z", "outbound", "GB", "+442071234567"),
    _row("f", "voice.tollfree.inbound", "5", "2022-12-25T13:00:00Z", "inbound", "US", "+18885550199"),
    _row("g", "fax.outbound", "3", "2022-12-25T15:00:00Z", "outbound", "DE", "+4930123456"),
    _row("h", "mms.outbound", "4", "2022-12-25T23:59:00Z", "outbound", "US", "+18005550100"),
    _row("i", "sms.outbound", "8", "2022-12-26T00:20:30Z", "outbound", "US", "+15551230003"),
]


def _ingest(account: Account, rows) -> None:
    ingest_usage(submitter=account, rows=rows, source="api", actor=Actor(user=owner_of(account)))


@pytest.fixture
def usage(world):
    _ingest(world.managed, ROWS)
    _ingest(world.sibling, [_row("s1", "sms.outbound", "6", "2022-12-25T09:00:00Z", "outbound", "US", "+15550000001")])
    _ingest(world.other_managed, [_row("x1", "sms.outbound", "100", "2022-12-25T09:00:00Z", "outbound", "US")])
    return world


@pytest.fixture
def catalogue(transactional_db):
    """The catalogue's data migration, again: the live server's transactional tests flush it."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)


@pytest.fixture
def client_of(sdk, make_key, catalogue):
    return lambda account: sdk(make_key(account))


def hide_pricing(account: Account) -> None:
    account.pricing_hidden = True
    account.save(update_fields=["pricing_hidden"])


def report(raw_api, make_key, account: Account, **params):
    return raw_api(make_key(account)).get("usage_reports", params)


# --- The mapping -------------------------------------------------------------------------------------------


def test_every_sku_of_the_catalogue_maps_to_exactly_one_telnyx_family(db):
    skus = list(Product.objects.values_list("sku", flat=True))
    assert len(skus) >= 10  # the catalogue migration's products
    for sku in skus:
        families = [family for family in telnyx_names.FAMILIES if sku in telnyx_names.skus_of(family, skus)]
        assert families == [telnyx_names.family_of(sku)], sku
        assert families[0] in TELNYX_PRODUCTS, sku
    assert {telnyx_names.family_of(s) for s in skus} == {"call-control", "messaging", "fax-api", "numbers"}
    assert telnyx_names.family_of("sms.outbound") == telnyx_names.family_of("mms.inbound") == "messaging"
    assert telnyx_names.family_of("voice.tollfree.inbound") == "call-control"
    assert telnyx_names.family_of("pigeon.outbound") is None


# --- The SDK against the live server -----------------------------------------------------------------------


def test_sdk_reports_a_family_by_direction_over_an_instant_window_with_an_offset(client_of, usage):
    client = client_of(usage.managed)
    page = client.usage_reports.list(
        product="messaging", dimensions=["direction"], metrics=["count", "quantity", "cost"], **WINDOW
    )
    assert page.data == [
        {"record_type": "usage_report", "product": "messaging", "unit": "message", "direction": "inbound",
         "count": 1, "quantity": "3", "cost": "0.003", "currency": "USD"},
        {"record_type": "usage_report", "product": "messaging", "unit": "message", "direction": "outbound",
         "count": 2, "quantity": "6", "cost": "0.068", "currency": "USD"},
    ]  # fmt: skip  # sms 2 at the first instant and mms 4; sms 1 before and sms 8 at the end are out
    window = page.meta.model_extra["window"]
    assert {k: window[k] for k in ("start", "end", "source")} == {**READ_WINDOW, "source": "usage_records"}
    assert window["given"] == WINDOW
    assert (page.meta.page_number, page.meta.total_pages) == (1, 1)


def test_sdk_reports_call_control_by_country_code_and_destination_type(client_of, usage):
    page = client_of(usage.managed).usage_reports.list(
        product="call-control", dimensions=["country_code", "destination_type"], metrics=["count", "quantity"],
        **WINDOW,
    )  # fmt: skip
    assert page.data == [
        {"record_type": "usage_report", "product": "call-control", "unit": "minute", "country_code": "GB",
         "destination_type": "long_code", "count": 1, "quantity": "10"},
        {"record_type": "usage_report", "product": "call-control", "unit": "minute", "country_code": "US",
         "destination_type": "toll_free", "count": 1, "quantity": "5"},
    ]  # fmt: skip


def test_sdk_groups_a_family_per_sku_and_direction_and_sorts(client_of, usage):
    page = client_of(usage.managed).usage_reports.list(
        product="messaging", dimensions=["product", "direction"], metrics=["quantity"], sort=["-quantity"],
        **WINDOW,
    )  # fmt: skip
    assert [(r["product"], r["product_name"], r["direction"], r["quantity"]) for r in page.data] == [
        ("mms.outbound", "Outbound MMS", "outbound", "4"),
        ("sms.inbound", "Inbound SMS", "inbound", "3"),
        ("sms.outbound", "Outbound SMS", "outbound", "2"),
    ]


def test_sdk_manager_reports_its_managed_accounts_by_account_and_country_iso(client_of, usage):
    page = client_of(usage.manager).usage_reports.list(
        product="messaging", dimensions=["account", "country_iso"], metrics=["count", "quantity"],
        managed_accounts=True, **WINDOW,
    )  # fmt: skip
    assert [(r["account_name"], r["country_iso"], r["count"], r["quantity"]) for r in page.data] == [
        ("Alpine Voice", "CA", 1, "2"),
        ("Alpine Voice", "US", 2, "7"),
        ("Blue Harbor", "US", 1, "6"),
    ]  # another manager's managed account (sms 100) is not there


def test_sdk_midnight_dates_keep_reading_whole_days_and_a_family_adds_up_its_skus(client_of, usage):
    page = client_of(usage.managed).usage_reports.list(
        product="messaging", dimensions=["date"], metrics=["count", "quantity"], **DAYS
    )
    assert [(r["date"], r["count"], r["quantity"]) for r in page.data] == [
        ("2022-12-24", 1, "1"),
        ("2022-12-25", 3, "9"),
        ("2022-12-26", 1, "8"),
    ]
    window = page.meta.model_extra["window"]
    assert (window["start"], window["end"], window["source"]) == (
        "2022-12-24T00:00:00Z",
        "2022-12-27T00:00:00Z",
        "daily_totals",
    )


def test_sdk_our_own_names_still_work_with_an_instant_window(client_of, usage):
    page = client_of(usage.managed).usage_reports.list(
        product="sms.outbound", dimensions=["country"], metrics=["count", "quantity"],
        start_date="2022-12-25T00:20:30Z", end_date="2022-12-26T00:20:31Z",
    )  # fmt: skip
    assert [(r["product"], r["country"], r["quantity"]) for r in page.data] == [
        ("sms.outbound", "CA", "2"),
        ("sms.outbound", "US", "8"),
    ]  # the end instant is exclusive: one second more takes the 00:20:30 record in


def test_sdk_options_list_the_telnyx_families_and_dimensions(client_of, usage):
    client = client_of(usage.managed)
    every = client.usage_reports.get_options()
    by_product = {d.product: d for d in every.data}
    assert {"messaging", "call-control", "fax-api", "numbers", "sms.outbound", "voice.outbound"} <= set(by_product)
    messaging = by_product["messaging"]
    assert {"direction", "country_code", "country_iso", "destination_type", "date", "product"} <= set(
        messaging.product_dimensions
    )
    assert messaging.product_metrics == ["count", "quantity", "cost"]
    assert [r.record_type for r in messaging.record_types] == ["mms.inbound", "mms.outbound", "sms.inbound",
                                                               "sms.outbound"]  # fmt: skip
    one = client.usage_reports.get_options(product="call-control")
    assert [d.product for d in one.data] == ["call-control"]
    assert {r.record_type for r in one.data[0].record_types} == {
        "voice.outbound",
        "voice.inbound",
        "voice.tollfree.inbound",
    }


def test_sdk_hidden_pricing_hides_cost_in_telnyx_names_too(client_of, usage):
    hide_pricing(usage.managed)
    client = client_of(usage.managed)
    with pytest.raises(telnyx.PermissionDeniedError) as denied:
        client.usage_reports.list(product="messaging", dimensions=["direction"], metrics=["cost"], **WINDOW)
    assert denied.value.body["errors"][0]["code"] == "pricing_hidden"
    page = client.usage_reports.with_raw_response.list(
        product="call-control", dimensions=["country_code"], metrics=["count", "quantity"], **WINDOW
    )
    assert "cost" not in page.text() and "currency" not in page.text()
    options = client.usage_reports.get_options(product="messaging")
    assert options.data[0].product_metrics == ["count", "quantity"]
    assert all(r.product_metrics == ["count", "quantity"] for r in options.data[0].record_types)


def test_sdk_csv_of_an_instant_window(client_of, usage):
    response = client_of(usage.managed).usage_reports.with_raw_response.list(
        product="messaging", dimensions=["destination_type"], metrics=["count", "quantity"], format="csv", **WINDOW
    )
    assert response.headers["content-type"].startswith("text/csv")
    assert (response.headers["x-usage-window-start"], response.headers["x-usage-window-end"]) == (
        READ_WINDOW["start"],
        READ_WINDOW["end"],
    )
    assert list(csv.reader(io.StringIO(response.text()))) == [
        ["product", "unit", "destination_type", "count", "quantity"],
        ["messaging", "message", "long_code", "2", "5"],
        ["messaging", "message", "toll_free", "1", "4"],
    ]


# --- Raw HTTP: which totals are read, and bad input --------------------------------------------------------


def test_midnight_windows_read_the_totals_and_instant_windows_the_records(usage, raw_api, make_key):
    params = {"product": "messaging", "dimensions": "month", "metrics": "count,quantity"}
    with CaptureQueriesContext(connection) as queries:
        days = report(raw_api, make_key, usage.managed, **params, **DAYS)
    assert days.status_code == 200, days.content
    assert not [q["sql"] for q in queries if UsageRecord._meta.db_table in q["sql"]]
    assert days.json()["data"] == [
        {"record_type": "usage_report", "product": "messaging", "unit": "message", "month": "2022-12", "count": 5,
         "quantity": "18"}
    ]  # fmt: skip
    instants = report(raw_api, make_key, usage.managed, **params, **WINDOW)
    assert [(r["month"], r["count"], r["quantity"]) for r in instants.json()["data"]] == [("2022-12", 3, "9")]
    assert instants.json()["meta"]["window"]["source"] == "usage_records"


@pytest.mark.parametrize(
    ("changes", "parameter", "words"),
    [
        ({"product": "wireless"}, "product", "messaging"),  # a Telnyx product we do not sell: the list says ours
        ({"product": "Messaging"}, "product", "messaging"),
        ({"dimensions": "destination"}, "dimensions", "destination_type"),
        ({"dimensions": "colour"}, "dimensions", "country_code"),
        ({"dimensions": "country,country_code"}, "dimensions", "same"),
        ({"sort": "country"}, "sort", "direction"),
        ({"start_date": "2022-12-24T19:20:30+25:00"}, "start_date", "ISO 8601"),
        ({"start_date": "2022-12-24 19:20:30 EST"}, "start_date", "ISO 8601"),
        ({"end_date": "0001-01-01T00:00:00+01:00"}, "end_date", "ISO 8601"),
        ({"end_date": "2022-12-24T19:20:30-05:00"}, "end_date", "after"),  # an empty window
        ({"end_date": "2023-01-24T19:20:31-05:00"}, "end_date", "31 days"),  # 31 days and a second
        ({"end_date": None}, "end_date", "both"),
    ],
)
def test_bad_telnyx_style_input_is_refused_naming_the_parameter(usage, raw_api, make_key, changes, parameter, words):
    params = {"product": "messaging", "dimensions": "direction", "metrics": "count", **WINDOW}
    params = {k: v for k, v in {**params, **changes}.items() if v is not None}
    error = assert_error(report(raw_api, make_key, usage.managed, **params), 422, parameter=parameter)
    assert words in error["detail"], error


def test_a_window_of_exactly_31_days_with_offsets_is_accepted(usage, raw_api, make_key):
    response = report(
        raw_api, make_key, usage.managed, product="numbers", dimensions="country_code", metrics="quantity",
        start_date="2022-12-24T19:20:30-05:00", end_date="2023-01-25T01:20:30+01:00",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json()["data"] == [
        {"record_type": "usage_report", "product": "numbers", "unit": "number-month", "country_code": "US",
         "quantity": "1"}
    ]  # fmt: skip
    window = response.json()["meta"]["window"]
    assert (window["start"], window["end"]) == ("2022-12-25T00:20:30Z", "2023-01-25T00:20:30Z")


def test_options_refuse_an_unknown_family_naming_the_parameter(usage, raw_api, make_key):
    response = raw_api(make_key(usage.managed)).get("usage_reports/options", {"product": "wireless"})
    assert "call-control" in assert_error(response, 422, parameter="product")["detail"]
