"""Usage reports: grouping, totals, filters, manager scopes, CSV exports, hidden pricing, keyset
pagination, query counts and who may see them.

The usage (all list prices, USD): voice.outbound 0.01/minute, sms.outbound 0.004/message,
number.local 1.00/number-month.

    world.managed (Alpine Voice)   2025-03-01 voice 10 (+15551234567), sms 3; 2025-03-15 voice 2.5;
                                   2025-04-02 sms 5
    world.sibling (Blue Harbor)    2025-03-01 voice 4; 2025-04-10 number.local 1
    world.manager (its own usage)  2025-03-02 sms 7
    world.other_managed (another tenant's) 2025-03-01 voice 100: never in world.manager's reports
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.actor import Actor
from accounts.models import Account, Membership, Role
from billing.models import Product, UsageRecord
from billing.usage import selectors
from billing.usage.services import ingest_usage
from reporting.exports import escape_cell
from reporting.forms import today_utc
from tests.conftest import make_managed_accounts

RANGE = {"start": "2025-03-01", "end": "2025-04-30"}


def _owner(account: Account):
    return Membership.objects.get(account=account, role=Role.OWNER).user


def ingest(account: Account, rows: list[dict]):
    return ingest_usage(submitter=account, rows=rows, source="api", actor=Actor(user=_owner(account)))


def row(key: str, product: str, quantity: str, started_at: str, **dims) -> dict:
    return {"idempotency_key": key, "product": product, "quantity": quantity, "started_at": started_at, **dims}


@pytest.fixture
def usage(world):
    ingest(
        world.managed,
        [
            row("m1", "voice.outbound", "10", "2025-03-01T10:00:00Z", direction="outbound", destination="+15551234567"),
            row("m2", "sms.outbound", "3", "2025-03-01T11:00:00Z", country="US"),
            row("m3", "voice.outbound", "2.5", "2025-03-15T09:30:00Z"),
            row("m4", "sms.outbound", "5", "2025-04-02T23:59:59.999999Z"),
        ],
    )
    ingest(
        world.sibling,
        [
            row("s1", "voice.outbound", "4", "2025-03-01T08:00:00Z"),
            row("s2", "number.local", "1", "2025-04-10T00:00:00Z"),
        ],
    )
    ingest(world.manager, [row("o1", "sms.outbound", "7", "2025-03-02T12:00:00Z")])
    ingest(world.other_managed, [row("x1", "voice.outbound", "100", "2025-03-01T10:00:00Z")])
    return world


def summary(accounts, group_by: str, product: Product | None = None, start="2025-03-01", end="2025-04-30"):
    return selectors.usage_summary(
        accounts=accounts,
        start=date.fromisoformat(start),
        end=date.fromisoformat(end),
        product=product,
        group_by=group_by,
    )


def by_label(rows) -> dict[str, tuple[Decimal, int, Decimal]]:
    return {r.label: (r.quantity, r.records, r.cost) for r in rows}


def report_url(account: Account, name: str = "usage_report") -> str:
    return reverse(name, args=[account.public_id])


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# --- Grouping and totals ---------------------------------------------------------------------------------


def test_it_groups_by_day(usage):
    rows = summary([usage.managed.pk, usage.sibling.pk], "day")
    assert by_label(rows) == {
        "2025-03-01": (Decimal("17"), 3, Decimal("0.152")),  # 10 x 0.01 + 3 x 0.004 + 4 x 0.01
        "2025-03-15": (Decimal("2.5"), 1, Decimal("0.025")),
        "2025-04-02": (Decimal("5"), 1, Decimal("0.02")),
        "2025-04-10": (Decimal("1"), 1, Decimal("1")),
    }
    assert [r.key for r in rows] == sorted(r.key for r in rows)


def test_it_groups_by_month(usage):
    rows = summary([usage.managed.pk, usage.sibling.pk], "month")
    assert by_label(rows) == {
        "2025-03": (Decimal("19.5"), 4, Decimal("0.177")),
        "2025-04": (Decimal("6"), 2, Decimal("1.02")),
    }
    assert [r.key for r in rows] == [date(2025, 3, 1), date(2025, 4, 1)]


def test_it_groups_by_product_with_units(usage):
    rows = summary([usage.managed.pk, usage.sibling.pk], "product")
    assert by_label(rows) == {
        "Local number": (Decimal("1"), 1, Decimal("1")),
        "Outbound SMS": (Decimal("8"), 2, Decimal("0.032")),
        "Outbound voice": (Decimal("16.5"), 3, Decimal("0.165")),
    }
    assert {r.key: r.unit for r in rows}["voice.outbound"] == "minute"


def test_it_groups_by_managed_account(usage):
    rows = summary(Account.objects.filter(manager=usage.manager), "account")
    assert by_label(rows) == {
        "Alpine Voice": (Decimal("20.5"), 4, Decimal("0.157")),
        "Blue Harbor": (Decimal("5"), 2, Decimal("1.04")),
    }
    assert {r.key for r in rows} == {str(usage.managed.public_id), str(usage.sibling.public_id)}


def test_totals_equal_the_sum_of_the_records(usage):
    accounts = Account.objects.filter(manager=usage.manager)
    raw = UsageRecord.objects.filter(account__in=accounts).aggregate(q=Sum("quantity"), c=Sum("cost"), n=Count("id"))
    for group_by in selectors.GROUPINGS:
        totals = selectors.usage_totals(summary(accounts, group_by))
        assert (totals.quantity, totals.cost, totals.records) == (raw["q"], raw["c"], raw["n"]), group_by


def test_the_product_filter_and_the_range_bound_the_report(usage):
    sms = Product.objects.get(sku="sms.outbound")
    rows = summary([usage.managed.pk], "day", product=sms, start="2025-03-01", end="2025-04-02")
    assert by_label(rows) == {
        "2025-03-01": (Decimal("3"), 1, Decimal("0.012")),
        "2025-04-02": (Decimal("5"), 1, Decimal("0.02")),  # 23:59:59.999999 is still that UTC day
    }
    assert summary([usage.managed.pk], "day", start="2025-03-02", end="2025-03-14") == []


# --- The report page ---------------------------------------------------------------------------------------


def test_manager_sees_all_managed_accounts_by_default_with_costs(usage, persona):
    response = persona("owner").get(report_url(usage.manager), {**RANGE, "group_by": "account"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Alpine Voice" in body and "Blue Harbor" in body
    assert "Other Managed" not in body
    assert "<th" in body and "Cost" in body
    assert "USD 1.20" in body  # total cost 0.157 + 1.04, in cents
    assert response.context["filters"].scope == "all"
    assert response.context["totals"].records == 6


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("all", {"Alpine Voice": 4, "Blue Harbor": 2}),
        ("own", {"Acme Reseller": 1}),
        ("sibling", {"Blue Harbor": 2}),
    ],
)
def test_manager_scopes(usage, persona, scope, expected):
    value = str(usage.sibling.public_id) if scope == "sibling" else scope
    response = persona("owner").get(report_url(usage.manager), {**RANGE, "scope": value, "group_by": "account"})
    assert response.status_code == 200
    assert {row.label: row.records for row in response.context["table"].data} == expected


def test_default_range_is_the_last_30_days(usage, persona):
    response = persona("reporting").get(report_url(usage.manager))
    filters = response.context["filters"]
    today = today_utc()
    assert (filters.start, filters.end, filters.group_by) == (today - timedelta(days=29), today, "day")
    body = response.content.decode()
    assert f'value="{today.isoformat()}"' in body and f'value="{(today - timedelta(days=29)).isoformat()}"' in body


def test_an_empty_start_is_the_30_days_before_the_end(usage, persona):
    response = persona("reporting").get(report_url(usage.manager), {"start": "", "end": "2025-03-30"})
    filters = response.context["filters"]
    assert (filters.start, filters.end) == (date(2025, 3, 1), date(2025, 3, 30))
    assert response.context["totals"].records == 4  # managed 3, sibling 1 in March


def test_it_says_what_to_do_when_there_is_no_usage_yet(world, persona):
    response = persona("owner").get(report_url(world.manager))
    body = response.content.decode()
    assert "No usage yet" in body
    assert "upload a CSV" in body and "API" in body
    response = persona("reporting").get(report_url(world.manager, "usage_records"))
    assert "No usage yet" in response.content.decode()
    assert "ask an owner or admin" in response.content.decode()


def test_it_tells_an_empty_range_from_no_usage(usage, persona):
    response = persona("owner").get(report_url(usage.manager), {"start": "2024-01-01", "end": "2024-01-31"})
    body = response.content.decode()
    assert "No usage yet" not in body
    assert "No usage from 2024-01-01 to 2024-01-31" in body


# --- Filters and their errors --------------------------------------------------------------------------------


def test_end_before_start_is_refused_and_keeps_what_was_typed(usage, persona):
    response = persona("owner").get(report_url(usage.manager), {"start": "2025-04-30", "end": "2025-03-01"})
    body = response.content.decode()
    assert "The end date is before the start date." in body
    assert 'value="2025-04-30"' in body and 'value="2025-03-01"' in body
    assert response.context.get("filters") is None


def test_a_range_wider_than_366_days_is_refused(usage, persona):
    client = persona("owner")
    response = client.get(report_url(usage.manager), {"start": "2024-01-01", "end": "2025-01-01"})
    assert "at most 366 days" in response.content.decode()
    assert "The range is 367 days long" in response.content.decode()
    ok = client.get(report_url(usage.manager), {"start": "2024-01-01", "end": "2024-12-31"})  # a leap year
    assert ok.context["filters"] is not None


def test_a_bad_date_is_refused_and_shown_back(usage, persona):
    response = persona("owner").get(report_url(usage.manager), {"start": "2025-02-30"})
    body = response.content.decode()
    assert "Enter a valid date." in body
    assert 'value="2025-02-30"' in body


def test_another_managers_account_is_an_unknown_managed_account(usage, persona):
    foreign = str(usage.other_managed.public_id)
    response = persona("owner").get(report_url(usage.manager), {**RANGE, "scope": foreign})
    assert response.status_code == 200
    assert f"{foreign} is not one of your managed accounts." in response.content.decode()
    assert response.context.get("table") is None
    csv_response = persona("owner").get(report_url(usage.manager, "usage_report_csv"), {"scope": foreign})
    assert csv_response.status_code == 302  # back to the page that says what is wrong


def test_managed_accounts_have_no_scope_and_no_grouping_by_account(usage, persona):
    client = persona("managed_owner")
    response = client.get(report_url(usage.managed), {**RANGE, "scope": str(usage.sibling.public_id)})
    assert "scope" not in response.context["form"].fields
    assert response.context["totals"].records == 4  # its own usage only, the scope is ignored
    response = client.get(report_url(usage.managed), {**RANGE, "group_by": "account"})
    assert "account is not one of the available choices" in response.content.decode()


def test_the_scope_select_offers_the_scopes_and_the_chosen_account_escaped(usage, persona):
    Account.objects.filter(pk=usage.sibling.pk).update(name="<b>Blue</b> & Harbor", status="disabled")
    response = persona("owner").get(report_url(usage.manager), {"scope": str(usage.sibling.public_id)})
    body = response.content.decode()
    escaped = "&lt;b&gt;Blue&lt;/b&gt; &amp; Harbor (disabled)"
    assert f'<option value="{usage.sibling.public_id}" selected>{escaped}</option>' in body
    assert '<option value="all">All my managed accounts</option>' in body
    # Not every managed account: a manager may have 3,000; `find` picks another one.
    assert f'<option value="{usage.managed.public_id}"' not in body
    assert str(usage.other_managed.public_id) not in body
    assert response.context["filters"].managed.name == "<b>Blue</b> & Harbor"


@pytest.mark.parametrize(
    ("find", "expected"),
    [("alpine", "managed"), ("ALPINE VOICE", "managed"), ("blue harb", "sibling"), ("id:managed", "managed")],
)
def test_find_picks_one_managed_account_by_name_or_id(usage, persona, find, expected):
    if find == "id:managed":
        find = str(usage.managed.public_id).upper()
    response = persona("owner").get(report_url(usage.manager), {"find": find})
    assert response.context["filters"].managed.pk == getattr(usage, expected).pk
    assert list(response.context["filters"].accounts) == [getattr(usage, expected).pk]


@pytest.mark.parametrize(
    ("find", "message"),
    [
        ("al", "Type at least 3 characters of the name."),
        ("nothing like it", "None of your managed accounts matches"),
        ("other-managed", "None of your managed accounts matches"),
    ],
)
def test_find_explains_what_it_could_not_pick(usage, persona, find, message):
    if find == "other-managed":
        find = str(usage.other_managed.public_id)
    response = persona("owner").get(report_url(usage.manager), {"find": find})
    assert message in response.content.decode()


def test_find_refuses_an_ambiguous_name(usage, persona):
    Account.objects.filter(pk=usage.sibling.pk).update(name="Alpine Voice West")
    Account.objects.filter(pk=usage.managed.pk).update(name="Alpine Voice East")
    response = persona("owner").get(report_url(usage.manager), {"find": "alpine"})
    assert "Several managed accounts match: Alpine Voice East, Alpine Voice West" in response.content.decode()


def test_an_unknown_product_is_refused(usage, persona):
    response = persona("owner").get(report_url(usage.manager), {"product": "voice.free"})
    assert "voice.free is not a product." in response.content.decode()


# --- CSV exports -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+15551234567", "'+15551234567"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Alpine Voice", "Alpine Voice"),
        ("15551234567", "15551234567"),
        (Decimal("12.500000"), "12.5"),
        (Decimal("0E-12"), "0"),
        (None, ""),
        (date(2025, 3, 1), "2025-03-01"),
        (datetime(2025, 3, 1, 10, tzinfo=UTC), "2025-03-01T10:00:00.000000Z"),
    ],
)
def test_escape_cell(value, expected):
    assert escape_cell(value) == expected


def test_the_report_csv_streams_the_same_report_with_costs(usage, persona):
    response = persona("reporting").get(report_url(usage.manager, "usage_report_csv"), {**RANGE, "group_by": "product"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="usage-report-acme-reseller-2025-03-01-to-2025-04-30.csv"'
    )
    assert csv_rows(response) == [
        ["product", "product_name", "unit", "quantity", "records", "cost", "currency"],
        ["number.local", "Local number", "number-month", "1", "1", "1", "USD"],
        ["sms.outbound", "Outbound SMS", "message", "8", "2", "0.032", "USD"],
        ["voice.outbound", "Outbound voice", "minute", "16.5", "3", "0.165", "USD"],
    ]


def test_the_report_csv_escapes_account_names(usage, persona):
    Account.objects.filter(pk=usage.sibling.pk).update(name='=HYPERLINK("http://evil.example","Blue")')
    response = persona("owner").get(report_url(usage.manager, "usage_report_csv"), {**RANGE, "group_by": "account"})
    names = [r[1] for r in csv_rows(response)[1:]]
    assert '\'=HYPERLINK("http://evil.example","Blue")' in names


def test_the_records_csv_streams_every_matching_record_escaped(usage, persona):
    ingest(usage.managed, [row('=HYPERLINK("http://evil.example")', "sms.outbound", "1", "2025-03-03T00:00:00Z")])
    response = persona("owner").get(
        report_url(usage.manager, "usage_records_csv"), {**RANGE, "scope": str(usage.managed.public_id)}
    )
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"].startswith('attachment; filename="usage-records-acme-reseller-')
    rows = csv_rows(response)
    header = rows[0]
    assert header == [
        "started_at", "account_id", "account_name", "product", "quantity", "unit", "direction", "country",
        "destination", "idempotency_key", "rate", "cost", "currency",
    ]  # fmt: skip
    records = [dict(zip(header, r, strict=True)) for r in rows[1:]]
    assert len(records) == 5  # newest first
    assert [r["started_at"] for r in records][0] == "2025-04-02T23:59:59.999999Z"
    voice = next(r for r in records if r["idempotency_key"] == "m1")
    assert voice["destination"] == "'+15551234567"  # a phone number stays text in a spreadsheet
    assert (voice["quantity"], voice["rate"], voice["cost"]) == ("10", "0.01", "0.1")
    assert any(r["idempotency_key"] == '\'=HYPERLINK("http://evil.example")' for r in records)
    assert {r["account_name"] for r in records} == {"Alpine Voice"}


def test_the_records_csv_reads_the_records_in_chunks(usage, persona, monkeypatch):
    """The export never holds the rows in a list: the selector hands over a chunked iterator. (On
    PostgreSQL the database writes the CSV itself: tests/test_records_csv_copy.py streams it.)"""
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL streams the records CSV from COPY, not from the selector's rows")
    seen = {}
    original = selectors.usage_record_rows

    def spy(**kwargs):
        rows = original(**kwargs)
        seen["type"] = type(rows).__name__
        return rows

    monkeypatch.setattr(selectors, "usage_record_rows", spy)
    response = persona("owner").get(report_url(usage.manager, "usage_records_csv"), RANGE)
    assert len(csv_rows(response)) == 7
    assert seen["type"] == "generator"


# --- Hidden pricing ----------------------------------------------------------------------------------------


def _hide_pricing(world):
    world.managed.pricing_hidden = True
    world.managed.save(update_fields=["pricing_hidden"])


@pytest.mark.parametrize("who", ["managed_owner", "manager_acting"])
def test_it_hides_cost_from_hidden_pricing_accounts(usage, persona, who):
    _hide_pricing(usage)
    client = persona(who)
    for group_by in ("day", "month", "product"):
        response = client.get(report_url(usage.managed), {**RANGE, "group_by": group_by})
        body = response.content.decode()
        assert response.status_code == 200
        assert response.context["totals"].records == 4
        # Whole words: the acting banner names a generated person, who may be a "Costa".
        assert not re.search(r"\bCost\b", body) and "USD" not in body and "0.16" not in body, group_by
    report = csv_rows(client.get(report_url(usage.managed, "usage_report_csv"), {**RANGE, "group_by": "product"}))
    assert report[0] == ["product", "product_name", "unit", "quantity", "records"]
    records_page = client.get(report_url(usage.managed, "usage_records"), RANGE).content.decode()
    assert not re.search(r"\b(Rate|Cost)\b", records_page) and "USD" not in records_page
    records = csv_rows(client.get(report_url(usage.managed, "usage_records_csv"), RANGE))
    assert not {"rate", "cost", "currency"} & set(records[0])
    assert "account_name" not in records[0]
    assert len(records) == 5


@pytest.mark.parametrize("who", ["managed_owner", "manager_acting"])
def test_it_shows_cost_to_visible_pricing_accounts(usage, persona, who):
    client = persona(who)
    body = client.get(report_url(usage.managed), {**RANGE, "group_by": "product"}).content.decode()
    assert "Cost" in body and "USD 0.13" in body and "USD 0.16" in body  # voice 0.125, sms 0.032, total 0.157
    records_page = client.get(report_url(usage.managed, "usage_records"), RANGE).content.decode()
    assert "USD 0.01 / minute" in records_page and "USD 0.10" in records_page
    assert "rate" in csv_rows(client.get(report_url(usage.managed, "usage_records_csv"), RANGE))[0]


def test_a_manager_sees_the_cost_of_its_hidden_pricing_accounts_from_its_own_pages(usage, persona):
    _hide_pricing(usage)
    response = persona("owner").get(report_url(usage.manager), {**RANGE, "scope": str(usage.managed.public_id)})
    assert "USD 0.16" in response.content.decode()


# --- The usage detail page ----------------------------------------------------------------------------------


def test_records_page_lists_newest_first_with_the_account_for_managers(usage, persona):
    response = persona("owner").get(report_url(usage.manager, "usage_records"), RANGE)
    records = list(response.context["table"].data)
    assert [r.idempotency_key for r in records] == ["s2", "m4", "m3", "m2", "m1", "s1"]
    body = response.content.decode()
    assert "Alpine Voice" in body and "+15551234567" in body and "Outbound" in body
    assert response.context["next_query"] is None


def test_keyset_pagination_walks_every_record_once(world, persona):
    base = datetime(2025, 5, 1, 12, tzinfo=UTC)
    # 120 records, many sharing a start time, so the id must break ties.
    rows = [row(f"k{i}", "sms.outbound", "1", (base - timedelta(seconds=i // 3)).isoformat()) for i in range(120)]
    ingest(world.managed, rows)
    client = persona("managed_owner")
    url = report_url(world.managed, "usage_records")
    query = "start=2025-05-01&end=2025-05-01"
    seen, sizes = [], []
    for _ in range(10):
        response = client.get(f"{url}?{query}")
        assert response.status_code == 200
        page = [r.pk for r in response.context["table"].data]
        seen += page
        sizes.append(len(page))
        query = response.context["next_query"]
        if not query:
            break
        assert "after=" in query and "offset" not in query and "page=" not in query
    expected = list(
        UsageRecord.objects.filter(account=world.managed).order_by("-started_at", "-id").values_list("pk", flat=True)
    )
    assert sizes == [50, 50, 20]
    assert seen == expected  # no duplicate, no gap, newest first


def test_a_broken_cursor_says_so(usage, persona):
    response = persona("owner").get(report_url(usage.manager, "usage_records"), {"after": "yesterday_1"})
    assert "This page link is broken" in response.content.decode()


# --- Query counts --------------------------------------------------------------------------------------------


def _count_queries(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
        assert response.status_code == 200
        if response.streaming:
            b"".join(response.streaming_content)
    return len(queries)


def _more_usage(world):
    """Many more accounts, days, products and records than the `usage` fixture."""
    extra = make_managed_accounts(world.manager, 40)
    voice_days = [f"2025-03-{day:02d}T10:00:00Z" for day in range(1, 29)]
    enabled = [a for a in extra if a.is_enabled][:15]
    for account in [world.managed, world.sibling, *enabled]:
        ingest(
            account,
            [
                row(f"bulk-{sku}-{i}", sku, str(i % 7 + 1), moment, destination="+15550000000")
                for i, moment in enumerate(voice_days)
                for sku in ("voice.outbound", "sms.outbound", "mms.outbound")
            ],
        )


PAGES = [
    ("usage_report", {**RANGE, "group_by": "day"}),
    ("usage_report", {**RANGE, "group_by": "month"}),
    ("usage_report", {**RANGE, "group_by": "product"}),
    ("usage_report", {**RANGE, "group_by": "account"}),
    ("usage_report", {**RANGE, "group_by": "account", "scope": "own"}),
    ("usage_report_csv", {**RANGE, "group_by": "account"}),
    ("usage_records", RANGE),
    ("usage_records_csv", RANGE),
]


def test_pages_run_a_constant_number_of_queries(usage, persona):
    client = persona("owner")
    small = {
        f"{name} {params}": _count_queries(client, report_url(usage.manager, name), params) for name, params in PAGES
    }
    _more_usage(usage)
    assert Account.objects.filter(manager=usage.manager).count() == 42
    assert UsageRecord.objects.filter(account__manager=usage.manager).count() > 1400
    large = {
        f"{name} {params}": _count_queries(client, report_url(usage.manager, name), params) for name, params in PAGES
    }
    assert large == small
    assert max(small.values()) <= 9, small


def test_the_next_page_runs_as_many_queries_as_the_first(usage, persona):
    _more_usage(usage)
    client = persona("owner")
    url = report_url(usage.manager, "usage_records")
    next_query = client.get(url, RANGE).context["next_query"]
    assert next_query
    assert _count_queries(client, f"{url}?{next_query}") == _count_queries(client, url, RANGE)


# --- Who may see reports ---------------------------------------------------------------------------------------

URL_NAMES = ("usage_report", "usage_report_csv", "usage_records", "usage_records_csv")


@pytest.mark.parametrize("name", URL_NAMES)
@pytest.mark.parametrize(
    ("who", "status"),
    [("owner", 200), ("admin", 200), ("reporting", 200), ("billing", 403), ("other_tenant", 404),
     ("managed_owner", 404), ("manager_acting", 404), ("anonymous", 302)],
)  # fmt: skip
def test_who_may_see_the_managers_reports(usage, persona, name, who, status):
    response = persona(who).get(report_url(usage.manager, name), RANGE)
    assert response.status_code == status


@pytest.mark.parametrize("name", URL_NAMES)
def test_a_managed_accounts_reports_are_its_own_and_the_acting_managers(usage, persona, name):
    assert persona("managed_owner").get(report_url(usage.managed, name)).status_code == 200
    assert persona("manager_acting").get(report_url(usage.managed, name)).status_code == 200
    assert persona("owner").get(report_url(usage.managed, name)).status_code == 404
    assert persona("reporting").get(report_url(usage.managed, name)).status_code == 404


def test_reports_refuse_post(usage, persona):
    assert persona("owner").post(report_url(usage.manager)).status_code == 405
