"""The usage report's chart, drawn on the server as SVG: one unit at a time or cost (only where
pricing is visible), any range from one day to a year, names as escaped text, its figures as a table.

The usage is test_usage_reports.py's (list prices, USD: voice.outbound 0.01/minute, sms.outbound
0.004/message, number.local 1.00/number-month):

    world.managed (Alpine Voice)   2025-03-01 voice 10, sms 3; 2025-03-15 voice 2.5; 2025-04-02 sms 5
    world.sibling (Blue Harbor)    2025-03-01 voice 4; 2025-04-10 number.local 1
    world.manager (its own usage)  2025-03-02 sms 7
    world.other_managed (another tenant's) 2025-03-01 voice 100
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest

from accounts.actor import Actor
from accounts.models import Account
from billing.usage.services import ingest_usage
from reporting import charts
from tests.conftest import make_managed_accounts
from tests.test_usage_reports import _count_queries, _hide_pricing, _more_usage, _owner, report_url
from tests.test_usage_reports import usage as usage  # noqa: F401  (the fixture)

MARCH = {"start": "2025-03-01", "end": "2025-03-31"}


def chart_of(response) -> charts.Chart:
    assert response.status_code == 200, response.content.decode()[:2000]
    chart = response.context["chart"]
    assert isinstance(chart, charts.Chart)
    return chart


def values(chart: charts.Chart) -> dict[str, Decimal]:
    return {bar.label: bar.value for bar in chart.bars}


def test_the_chart_is_an_svg_image_drawn_without_script(usage, persona):
    response = persona("owner").get(report_url(usage.manager), {**MARCH, "chart": "minute"})
    chart = chart_of(response)
    body = response.content.decode()
    assert chart.kind == "time" and chart.bucket == "day" and len(chart.bars) == 31
    assert chart.bars[0].value == Decimal(14) and chart.bars[14].value == Decimal("2.5")  # managed + sibling
    assert '<svg class="chart-svg"' in body and 'role="img"' in body
    assert 'aria-labelledby="usage-chart-title usage-chart-desc"' in body
    assert '<title id="usage-chart-title">Quantity (minute) by day</title>' in body
    assert "<title>Sat 1 Mar 2025: 14 minute</title>" in body
    assert "rickshaw" not in body and "d3.js" not in body and "usage_chart.js" not in body
    assert 'href="/static/css/chart.css"' in body
    assert ">1 Mar 2025</text>" in body and not re.search(r"\dms\b", body)


def test_the_charts_figures_are_a_table_too(usage, persona):
    body = persona("owner").get(report_url(usage.manager), {**MARCH, "chart": "minute"}).content.decode()
    table = body.split('<details class="chart-data">')[1].split("</details>")[0]
    assert '<td>Sat 1 Mar 2025</td><td class="num">14 minute</td>' in table
    assert '<td>Sat 15 Mar 2025</td><td class="num">2.5 minute</td>' in table
    assert '<td>Total</td><td class="num">16.5 minute</td>' in table


def test_one_unit_at_a_time_never_minutes_plus_messages(usage, persona):
    client = persona("owner")
    messages = chart_of(client.get(report_url(usage.manager), {**MARCH, "chart": "message"}))
    assert messages.title == "Quantity (message) by day"
    assert values(messages)["Sat 1 Mar 2025"] == Decimal(3)  # not 3 messages + 14 minutes
    assert messages.total == "3 message"


def test_a_manager_sees_cost_by_default(usage, persona):
    response = persona("owner").get(report_url(usage.manager), MARCH)
    chart = chart_of(response)
    assert chart.measure.is_money and chart.title == "Cost (USD) by day"
    assert chart.bars[0].value == Decimal("0.152") and chart.bars[0].text == "USD 0.15"  # 0.10 + 0.012 + 0.04
    assert '<option value="cost" selected>Cost</option>' in response.content.decode()


@pytest.mark.parametrize("who", ["managed_owner", "manager_acting"])
def test_it_never_charts_cost_for_hidden_pricing_accounts(usage, persona, who):
    _hide_pricing(usage)
    client = persona(who)
    response = client.get(report_url(usage.managed), MARCH)
    chart = chart_of(response)
    body = response.content.decode()
    assert not chart.measure.is_money
    assert chart.measure.unit == "minute"  # 2 minute records, 1 message record in March
    # The word as the page would print a cost (a column, an option, a chart title), not inside a
    # person's name: the banner of a manager acting names a generated person ("Kyle Costa").
    assert not re.search(r"\bCost\b", body) and "USD" not in body and 'value="cost"' not in body
    refused = client.get(report_url(usage.managed), {**MARCH, "chart": "cost"})
    assert refused.context["form"].errors == {"chart": ["The chart cannot show cost."]}
    assert "USD" not in refused.content.decode()


def test_the_chart_follows_the_product_filter(usage, persona):
    response = persona("owner").get(report_url(usage.manager), {**MARCH, "chart": "minute", "product": "sms.outbound"})
    chart = chart_of(response)
    assert chart.measure.unit == "message" and values(chart)["Sat 1 Mar 2025"] == Decimal(3)
    assert '<option value="message" selected>' in response.content.decode()


def test_one_day_is_one_bar_labelled_with_its_date(usage, persona):
    day = {"start": "2025-03-01", "end": "2025-03-01", "chart": "minute"}
    chart = chart_of(persona("owner").get(report_url(usage.manager), day))
    assert [(bar.label, bar.text) for bar in chart.bars] == [("Sat 1 Mar 2025", "14 minute")]
    assert [label.text for label in chart.x_labels] == ["1 Mar 2025"]
    assert chart.bars[0].width <= charts.MAX_BAR_WIDTH


def test_a_year_is_charted_by_month_from_the_monthly_and_daily_totals(usage, persona):
    client = persona("owner")
    year = chart_of(client.get(report_url(usage.manager), {"start": "2024-05-01", "end": "2025-04-30"}))
    assert year.bucket == "month" and len(year.bars) == 12
    assert values(year)["March 2025"] == Decimal("0.177")  # voice 16.5 x 0.01 + sms 3 x 0.004
    assert values(year)["April 2025"] == Decimal("1.02")  # sms 5 x 0.004 + a number 1.00
    assert [label.text for label in year.x_labels][:2] == ["May 2024", "Jun"]
    # A range starting mid-month: its first month is the days inside the range, from the daily totals.
    edge = {"start": "2025-03-15", "end": "2025-12-31", "chart": "minute"}
    chart = chart_of(client.get(report_url(usage.manager), edge))
    assert chart.bars[0].label == "15–31 Mar 2025" and chart.bars[0].value == Decimal("2.5")
    assert len(chart.bars) == 10


def test_a_quarter_is_charted_by_week(usage, persona):
    quarter = {"start": "2025-03-01", "end": "2025-05-31", "chart": "message"}
    chart = chart_of(persona("owner").get(report_url(usage.manager), quarter))
    assert chart.bucket == "week" and chart.title == "Quantity (message) by week"
    assert chart.bars[0].label == "1–2 Mar 2025" and chart.bars[0].value == Decimal(3)
    assert values(chart)["31 Mar – 6 Apr 2025"] == Decimal(5)


def test_grouped_by_month_the_chart_is_by_month(usage, persona):
    chart = chart_of(persona("owner").get(report_url(usage.manager), {**MARCH, "group_by": "month"}))
    assert chart.bucket == "month" and [bar.label for bar in chart.bars] == ["March 2025"]


def test_by_product_the_chart_compares_products_of_one_unit_or_their_cost(usage, persona):
    client = persona("owner")
    params = {"start": "2025-03-01", "end": "2025-04-30", "group_by": "product"}
    cost = chart_of(client.get(report_url(usage.manager), params))
    assert cost.kind == "category"
    assert [(bar.label, bar.text) for bar in cost.bars] == [
        ("Local number", "USD 1.00"),
        ("Outbound voice", "USD 0.17"),
        ("Outbound SMS", "USD 0.03"),
    ]
    minutes = chart_of(client.get(report_url(usage.manager), {**params, "chart": "minute"}))
    assert [(bar.label, bar.text) for bar in minutes.bars] == [("Outbound voice", "16.5 minute")]


def test_by_managed_account_the_chart_names_the_largest_and_counts_the_rest(usage, persona):
    extra = [a for a in make_managed_accounts(usage.manager, 26) if a.is_enabled][:22]
    rows = [
        {
            "account": str(account.public_id),
            "product": "voice.outbound",
            "quantity": str(n + 1),
            "started_at": "2025-03-05T10:00:00Z",
            "idempotency_key": f"chart-{account.pk}",
        }
        for n, account in enumerate(extra)
    ]
    result = ingest_usage(submitter=usage.manager, rows=rows, source="api", actor=Actor(user=_owner(usage.manager)))
    assert result.accepted == 22
    params = {**MARCH, "group_by": "account", "chart": "minute"}
    chart = chart_of(persona("owner").get(report_url(usage.manager), params))
    assert chart.kind == "category" and len(chart.bars) == 20 and chart.hidden == 4  # 24 used minutes
    assert chart.bars[0].label == extra[-1].name and chart.bars[0].value == Decimal(22)
    assert chart.bars[10].label == "Alpine Voice"  # 12.5 minutes: after the 10 accounts with 13 to 22
    assert "Other Managed" not in [bar.label for bar in chart.bars]


def test_names_with_html_are_text_in_the_chart(usage, persona):
    Account.objects.filter(pk=usage.managed.pk).update(name='Alpine<img src=x onerror="alert(1)">')
    params = {**MARCH, "group_by": "account", "chart": "minute"}
    response = persona("owner").get(report_url(usage.manager), params)
    body = response.content.decode()
    svg = body.split('<svg class="chart-svg"')[1].split("</svg>")[0]
    assert "<img" not in svg and "Alpine&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in svg
    assert chart_of(response).bars[0].label == 'Alpine<img src=x onerror="alert(1)">'


def test_the_chart_read_adds_up_to_the_report(usage, persona):
    """The chart's totals per unit equal the report's, whichever totals (daily, monthly) it read."""
    for by in (charts.BY_DAY, charts.BY_MONTH, charts.BY_ACCOUNT):
        amounts = charts.usage_amounts(
            accounts=[usage.managed.pk, usage.sibling.pk],
            start=date(2025, 2, 20),
            end=date(2025, 4, 30),
            product=None,
            by=by,
        )
        minutes = sum((a.quantity for a in amounts if a.unit == "minute"), Decimal(0))
        cost = sum((a.cost for a in amounts), Decimal(0))
        assert (minutes, cost, sum(a.records for a in amounts)) == (Decimal("16.5"), Decimal("1.197"), 6), by


def test_a_chart_of_one_unit_runs_a_constant_number_of_queries(usage, persona):
    client = persona("owner")
    cases = [{**MARCH, "group_by": group_by, "chart": "minute"} for group_by in ("day", "month", "account")]
    cases.append({"start": "2024-05-01", "end": "2025-04-30", "chart": "message"})
    small = [_count_queries(client, report_url(usage.manager), params) for params in cases]
    _more_usage(usage)
    large = [_count_queries(client, report_url(usage.manager), params) for params in cases]
    assert large == small and max(small) <= 9, small  # at most 2 more than the report: amounts, names
