"""The usage report grouped by managed account reads one page of its groups from the database
(reporting.selectors.account_groups through reporting.tables.AccountGroupsData): the same rows, order,
totals, chart and links as the whole list sorted and paged in Python, in as many queries for 30
managed accounts as for 3, and never a price where pricing is hidden."""

from __future__ import annotations

import re
from datetime import date

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.actor import Actor
from accounts.models import Account, Membership, Role
from billing.pricing import prices_for
from billing.scale import build_usage
from billing.usage import selectors
from billing.usage.services import ingest_usage
from portal.pagination import paginate_table
from reporting.forms import UsageReportForm
from reporting.tables import UsageSummaryTable
from reporting.views import _row_link, report_chart, summary_rows
from tests.conftest import make_managed_accounts

MONTH = {"start": "2025-03-01", "end": "2025-03-31"}
BY_ACCOUNT = {**MONTH, "scope": "all", "group_by": "account"}


def _owner(account: Account):
    return Membership.objects.get(account=account, role=Role.OWNER).user


def _ingest(account: Account, rows: list[tuple[str, str, str]]) -> None:
    ingest_usage(
        submitter=account,
        rows=[
            {"idempotency_key": f"{account.pk}-{i}", "product": sku, "quantity": quantity, "started_at": moment}
            for i, (sku, quantity, moment) in enumerate(rows)
        ],
        source="api",
        actor=Actor(user=_owner(account)),
    )


def _with_usage(world, count: int) -> list[Account]:
    """`count` more managed accounts with usage in March 2025 (random), some of them twins: the same
    name and the same usage, so that sorting has ties to break."""
    accounts = make_managed_accounts(world.manager, count)
    build_usage(accounts=accounts, start=date(2025, 3, 1), days=31, records=count * 12, seed=count)
    twins = [account for account in make_managed_accounts(world.manager, 4) if account.is_enabled][:3]
    for twin in twins:
        twin.name = "Twin Customer"
        twin.save(update_fields=["name"])
        _ingest(twin, [("voice.outbound", "10", "2025-03-31T23:00:00Z")])
    return [*accounts, *twins]


def _request(manager: Account, params: dict):
    request = RequestFactory().get(reverse("usage_report", args=[manager.public_id]), params)
    request.user = _owner(manager)
    return request


def _reference(manager: Account, params: dict):
    """What the page showed before it read a page at a time: every group as a list, sorted and
    paged by django-tables2, and the chart drawn from every row."""
    request = _request(manager, params)
    form = UsageReportForm(request.GET, account=manager)
    assert form.is_valid(), form.errors
    filters = form.filters()
    rows = summary_rows(filters, prices_for(manager))
    table = UsageSummaryTable(
        rows,
        group_by=filters.group_by,
        totals=selectors.usage_totals(rows),
        pricing=True,
        link=_row_link(request, type("Access", (), {"account": manager})(), filters),
    )
    paginate_table(request, table, per_page=100)
    chart = report_chart(rows, filters, choice=form.cleaned_data["chart"], pricing=True, prices=prices_for(manager))
    return table, chart


def _tbody(html: str) -> str:
    body = html[html.index('<table class="table usage-summary">') :]
    return re.sub(r"\s+", " ", body[body.index("<tbody") : body.index("</tfoot>")])


@pytest.fixture
def many(world):
    _with_usage(world, 30)
    return world


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"sort": "label"},
        {"sort": "-label"},
        {"sort": "cost"},
        {"sort": "-cost", "page": "2"},
        {"sort": "records", "per_page": "7", "page": "3"},
        {"sort": "-quantity", "per_page": "7", "page": "5"},
        {"sort": "-records,label", "per_page": "4", "page": "2"},
        {"sort": "unit"},  # not a column of this grouping: ignored, as django-tables2 ignores it
        {"per_page": "10", "page": "99"},  # past the end: the last page
        {"per_page": "10", "page": "nope"},  # no number: the first page
        {"start": "2025-03-05", "end": "2025-03-20"},  # days only
        {"start": "2025-02-20", "end": "2025-04-05", "per_page": "9", "page": "2"},  # a month and its edges
        {"product": "voice.outbound", "sort": "-quantity"},
        {"chart": "minute"},
    ],
)
def test_the_page_shows_the_rows_the_whole_list_showed(many, persona, extra):
    params = {**BY_ACCOUNT, **extra}
    response = persona("owner").get(reverse("usage_report", args=[many.manager.public_id]), params)
    assert response.status_code == 200
    table, chart = _reference(many.manager, params)
    shown = response.context["table"]
    assert [row.record for row in shown.page.object_list] == [row.record for row in table.page.object_list]
    assert shown.page.number == table.page.number and shown.paginator.num_pages == table.paginator.num_pages
    assert response.context["totals"] == table.totals
    assert _tbody(response.content.decode()) == _tbody(table.as_html(_request(many.manager, params)))
    got = response.context["chart"]
    assert [(bar.label, bar.value) for bar in got.bars] == [(bar.label, bar.value) for bar in chart.bars]
    assert got.hidden == chart.hidden and got.measure == chart.measure and got.title == chart.title
    if chart.measure.is_money or "product" in params:  # the chart of every row
        assert got.total == chart.total and got.description == chart.description


def test_the_twins_keep_their_order_whichever_way_the_names_sort(many, persona):
    client = persona("owner")
    url = reverse("usage_report", args=[many.manager.public_id])
    twins = list(Account.objects.filter(name="Twin Customer").order_by("public_id"))
    for sort in ("label", "-label", "-cost"):
        rows = [row.record for row in client.get(url, {**BY_ACCOUNT, "sort": sort}).context["table"].page.object_list]
        keys = [row.key for row in rows if row.label == "Twin Customer"]
        assert keys == [str(twin.public_id) for twin in twins], sort


def _queries(client, url, params) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, params).status_code == 200
    return len(queries)


PAGES = [
    BY_ACCOUNT,
    {**BY_ACCOUNT, "sort": "-cost", "per_page": "2", "page": "2"},
    {**BY_ACCOUNT, "chart": "minute", "sort": "label"},
    {**BY_ACCOUNT, "start": "2025-02-20", "end": "2025-04-05"},
    {**BY_ACCOUNT, "per_page": "2", "page": "999"},
]


def test_the_query_count_does_not_grow_with_the_managed_accounts(world, persona):
    client = persona("owner")
    url = reverse("usage_report", args=[world.manager.public_id])
    _with_usage(world, 3)
    assert Account.objects.filter(manager=world.manager).count() == 9
    small = [_queries(client, url, params) for params in PAGES]
    _with_usage(world, 27)
    assert Account.objects.filter(manager=world.manager).count() == 40
    large = [_queries(client, url, params) for params in PAGES]
    assert large == small
    assert max(small) <= 7, small
    # The groups themselves: one query brings the page, the count, the totals and the chart.
    with CaptureQueriesContext(connection) as queries:
        client.get(url, BY_ACCOUNT)
    assert sum("ROW_NUMBER()" in q["sql"] for q in queries.captured_queries) == 1


@pytest.mark.parametrize("who", ["managed_owner", "manager_acting"])
def test_hidden_pricing_shows_no_money_in_any_grouping(many, persona, who):
    many.managed.pricing_hidden = True
    many.managed.save(update_fields=["pricing_hidden"])
    _ingest(
        many.managed, [("voice.outbound", "12", "2025-03-03T10:00:00Z"), ("sms.outbound", "3", "2025-03-04T10:00:00Z")]
    )
    client = persona(who)
    url = reverse("usage_report", args=[many.managed.public_id])
    for group_by in ("day", "month", "product", "account"):  # by account is a manager's, refused here
        response = client.get(url, {**MONTH, "group_by": group_by, "sort": "-cost"})
        body = response.content.decode()
        assert response.status_code == 200
        assert not re.search(r"\bCost\b", body) and "USD" not in body and "0.13" not in body, group_by
        if group_by != "account":
            assert response.context["totals"].records == 2
        else:
            assert response.context["form"].errors["group_by"]


def test_the_manager_sees_its_hidden_pricing_accounts_costs_on_its_own_page(many, persona):
    hidden = Account.objects.filter(manager=many.manager, pricing_hidden=True, name__startswith="Bulk").first()
    response = persona("owner").get(
        reverse("usage_report", args=[many.manager.public_id]), {**BY_ACCOUNT, "per_page": "250"}
    )
    rows = {row.record.key: row.record for row in response.context["table"].page.object_list}
    expected = Account.objects.get(pk=hidden.pk).monthly_usage.filter(month="2025-03-01")
    row = rows[str(hidden.public_id)]
    assert row.cost == sum(m.cost for m in expected) and row.cost > 0
    assert f'<td class="num">{row.records:,}</td>' in response.content.decode()
