"""A reporting-role user's usage report, through the real pages in a real browser: sign in, open the
report from the nav, filter it, read the table and the chart, download the CSV.

The usage (list prices, USD: voice.outbound 0.01/minute, sms.outbound 0.004/message) is on the
DAYS UTC days before today, in the past and inside the report's range (start = the first of them,
end = today, typed into the form). SMS is sent on every day but GAP_DAY, so the report by day has a
missing day (the chart draws it as zero) and voice usage exists to be filtered out.
"""

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import ConsoleMessage, Error, Page, expect

from accounts.actor import Actor
from accounts.models import Account, Role, User
from billing.money import format_money
from billing.usage.services import ingest_usage
from reporting.charts import span_label
from reporting.forms import today_utc
from reporting.tables import format_quantity
from tests.factories import PASSWORD, MembershipFactory, UserFactory, account_with_owner

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DAYS = 10
GAP_DAY = 4  # days ago with no SMS (voice only)
SMS_PRICE = Decimal("0.004")


@dataclass
class Scenario:
    account: Account
    user: User
    start: date
    end: date
    sms: dict[date, tuple[Decimal, int]]  # day -> (quantity, records)
    voice: dict[date, tuple[Decimal, int]]


def usage_scenario(*, pricing_hidden: bool) -> Scenario:
    manager, _ = account_with_owner(name="Acme Reseller", manager_kind=True)
    managed, _ = account_with_owner(
        name="Alpine Voice", managed_kind=True, manager=manager, pricing_hidden=pricing_hidden
    )
    user = UserFactory(email="reports@alpinevoice.example.com")
    MembershipFactory(user=user, account=managed, role=Role.REPORTING)

    today = today_utc()
    rows: list[dict] = []
    sms: dict[date, tuple[Decimal, int]] = {}
    voice: dict[date, tuple[Decimal, int]] = {}
    for ago in range(DAYS, 0, -1):  # whole past days: every time is before now
        day = today - timedelta(days=ago)
        at = lambda hour, minute, day=day: datetime.combine(day, time(hour, minute), UTC).isoformat()  # noqa: E731
        if ago != GAP_DAY:
            quantities = [Decimal(ago), Decimal(2), Decimal(ago % 3 + 1)]
            for n, (quantity, hour) in enumerate(zip(quantities, (8, 12, 19), strict=True)):
                rows.append(
                    {
                        "idempotency_key": f"sms-{ago}-{n}",
                        "product": "sms.outbound",
                        "quantity": str(quantity),
                        "started_at": at(hour, 15),
                        "country": "US",
                    }
                )
            sms[day] = (sum(quantities, Decimal(0)), len(quantities))
        quantities = [Decimal("2.5"), Decimal(ago + 3)]
        for n, (quantity, hour) in enumerate(zip(quantities, (9, 17), strict=True)):
            rows.append(
                {
                    "idempotency_key": f"voice-{ago}-{n}",
                    "product": "voice.outbound",
                    "quantity": str(quantity),
                    "started_at": at(hour, 40),
                    "direction": "outbound",
                    "destination": "+15551234567",
                }
            )
        voice[day] = (sum(quantities, Decimal(0)), len(quantities))
    result = ingest_usage(submitter=managed, rows=rows, source="api", actor=Actor(user=None))
    assert result.accepted == len(rows), result
    return Scenario(managed, user, today - timedelta(days=DAYS), today, sms, voice)


def watch_for_errors(page: Page) -> list[str]:
    """JS errors, console errors and failed requests of the page, except the browser's favicon."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "favicon" not in f"{message.text} {message.location.get('url', '')}":
            errors.append(f"console: {message.text} ({message.location.get('url', '')})")

    def on_page_error(error: Error) -> None:
        errors.append(f"pageerror: {error.message}")

    def on_response(response) -> None:
        if response.status >= 400 and "favicon" not in response.url:
            errors.append(f"HTTP {response.status}: {response.url}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    page.on("response", on_response)
    return errors


def sign_in_and_open_the_report(page: Page, live_server, scenario: Scenario) -> None:
    page.goto(reverse("account_login"))
    page.locator('input[name="login"]').fill(scenario.user.email)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).to_have_url(live_server.url + reverse("dashboard", args=[scenario.account.public_id]))

    page.locator(".account-nav").get_by_role("link", name="Usage reports", exact=True).click()
    expect(page).to_have_url(live_server.url + reverse("usage_report", args=[scenario.account.public_id]))
    expect(page.get_by_role("heading", level=1)).to_have_text("Usage report")


def filter_the_report(page: Page, scenario: Scenario, *, product: str, group_by: str, chart: str = "") -> None:
    form = page.locator("form.filters")
    form.get_by_label("From (UTC)").fill(scenario.start.isoformat())
    form.get_by_label("To (UTC)").fill(scenario.end.isoformat())
    # The labels wrap their selects, so a select's accessible name includes its options' text.
    form.locator('select[name="product"]').select_option(label=product)
    form.locator('select[name="group_by"]').select_option(label=group_by)
    if chart:
        form.locator('select[name="chart"]').select_option(label=chart)
    form.get_by_role("button", name="Show").click()
    expect(page).to_have_url(
        re.compile(re.escape(f"start={scenario.start.isoformat()}&end={scenario.end.isoformat()}"))
    )
    expect(form.get_by_label("From (UTC)")).to_have_value(scenario.start.isoformat())
    expect(form.get_by_label("To (UTC)")).to_have_value(scenario.end.isoformat())


def expect_a_drawn_chart(page: Page, bars: int, *, value_axis: bool = True) -> None:
    """The server draws the chart: one <svg> image with one <rect> a bar, some of them tall, and
    the value axis's round ticks as text."""
    svg = page.locator("#usage-chart svg.chart-svg")
    expect(svg).to_have_count(1)
    expect(svg).to_have_attribute("role", "img")
    expect(svg.locator(".chart-bars rect")).to_have_count(bars)
    heights = svg.locator(".chart-bars rect").evaluate_all("rects => rects.map(r => r.getBBox().height)")
    assert any(h > 10 for h in heights), heights
    if value_axis:  # a time chart's; a category chart writes each bar's value beside it
        assert svg.locator("text.chart-tick").count() >= 2


def page_overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (it then scrolls sideways)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def table_cells(page: Page, part: str) -> list[list[str]]:
    rows = page.locator(f"table.usage-summary {part} tr")
    return [[cell.strip() for cell in row.locator("th, td").all_inner_texts()] for row in rows.all()]


def download_csv(page: Page) -> tuple[str, list[list[str]], str]:
    """Clicks "Download CSV": (suggested file name, parsed rows, the URL it came from)."""
    with page.expect_download() as info:
        page.locator(".page-head").get_by_role("link", name="Download CSV").click()
    download = info.value
    assert download.failure() is None, download.failure()
    text = Path(download.path()).read_text(encoding="utf-8")
    return download.suggested_filename, list(csv.reader(io.StringIO(text))), download.url


def test_reporting_user_filters_the_sms_report_by_day_sees_chart_and_cost_and_downloads_it(
    page: Page, live_server, catalogue
):
    scenario = usage_scenario(pricing_hidden=False)
    errors = watch_for_errors(page)
    sms_quantity = sum((quantity for quantity, _ in scenario.sms.values()), Decimal(0))
    sms_records = sum(records for _, records in scenario.sms.values())
    assert len(scenario.sms) == DAYS - 1 and sms_records == 3 * (DAYS - 1)

    sign_in_and_open_the_report(page, live_server, scenario)
    filter_the_report(page, scenario, product="Outbound SMS", group_by="Day", chart="Quantity (message)")
    expect(page).to_have_url(re.compile(r"\?.*product=sms\.outbound.*group_by=day"))
    expect(page.locator("p.help").first).to_contain_text(
        f"Alpine Voice, {scenario.start.isoformat()} to {scenario.end.isoformat()} (UTC days, both included), "
        "Outbound SMS only."
    )
    expect(page.get_by_text("pricing is not shown")).to_have_count(0)

    # The table: one row a day with SMS (the day without is absent), the totals of SMS alone.
    expect(page.locator("table.usage-summary")).to_be_visible()
    assert table_cells(page, "thead") == [["Day", "Quantity", "Records", "Cost"]]
    assert table_cells(page, "tbody") == [
        [day.isoformat(), format_quantity(quantity), str(records), format_money(quantity * SMS_PRICE)]
        for day, (quantity, records) in sorted(scenario.sms.items())
    ]
    assert table_cells(page, "tfoot") == [
        ["Total", format_quantity(sms_quantity), str(sms_records), format_money(sms_quantity * SMS_PRICE)]
    ]
    expect(page.locator("table.usage-summary tfoot")).to_contain_text(format_quantity(sms_quantity))

    # The chart: a bar for every day of the range, the day without SMS and today included (as zero).
    expect(page.get_by_role("heading", name="Quantity (message) by day")).to_be_visible()
    expect_a_drawn_chart(page, bars=DAYS + 1)
    # The first bar's tooltip (its SVG <title>) names its day and its quantity.
    first_day = min(scenario.sms)
    tooltip = page.locator("#usage-chart .chart-bars rect").first.locator("title")
    expect(tooltip).to_have_text(
        f"{span_label(first_day, first_day)}: {format_quantity(scenario.sms[first_day][0])} message"
    )
    assert page_overflow(page) == 0, "the report by day is wider than the window"

    # The CSV: the same rows, exact, with cost and currency.
    filename, rows, url = download_csv(page)
    assert filename.endswith(".csv")
    assert filename == f"usage-report-alpine-voice-{scenario.start.isoformat()}-to-{scenario.end.isoformat()}.csv"
    assert "product=sms.outbound" in url and "group_by=day" in url
    assert rows[0] == ["day", "quantity", "records", "cost", "currency"]
    body = rows[1:]
    assert [row[0] for row in body] == [day.isoformat() for day in sorted(scenario.sms)]
    for row in body:
        quantity, records = scenario.sms[date.fromisoformat(row[0])]
        assert (Decimal(row[1]), int(row[2]), Decimal(row[3]), row[4]) == (
            quantity,
            records,
            quantity * SMS_PRICE,
            "USD",
        ), row
        assert row[1] == f"{quantity.normalize():f}", row  # exact, no trailing zeros
    assert sum(Decimal(row[1]) for row in body) == sms_quantity

    assert errors == []


def test_hidden_pricing_shows_no_cost_on_the_page_or_in_the_csv(page: Page, live_server, catalogue):
    scenario = usage_scenario(pricing_hidden=True)
    errors = watch_for_errors(page)
    sms_quantity = sum((quantity for quantity, _ in scenario.sms.values()), Decimal(0))
    voice_quantity = sum((quantity for quantity, _ in scenario.voice.values()), Decimal(0))

    sign_in_and_open_the_report(page, live_server, scenario)
    filter_the_report(page, scenario, product="All products", group_by="Product")
    expect(page.locator("p.help").first).to_contain_text("Quantities only: pricing is not shown for this account.")

    assert table_cells(page, "thead") == [["Product", "Unit", "Quantity", "Records"]]
    assert table_cells(page, "tbody") == [
        ["Outbound SMS", "message", format_quantity(sms_quantity), str(3 * (DAYS - 1))],
        ["Outbound voice", "minute", format_quantity(voice_quantity), str(2 * DAYS)],
    ]
    expect(page.locator("main")).not_to_contain_text("Cost")
    expect(page.locator("main")).not_to_contain_text("USD")
    # By product, the chart compares the products of one unit: without pricing, the most used one.
    expect(page.get_by_role("heading", name="Quantity (message) by product")).to_be_visible()
    expect_a_drawn_chart(page, bars=1, value_axis=False)

    filename, rows, _ = download_csv(page)
    assert filename.endswith(".csv")
    assert rows[0] == ["product", "product_name", "unit", "quantity", "records"]
    assert "cost" not in rows[0] and "currency" not in rows[0]
    assert rows[1:] == [
        ["sms.outbound", "Outbound SMS", "message", f"{sms_quantity.normalize():f}", str(3 * (DAYS - 1))],
        ["voice.outbound", "Outbound voice", "minute", f"{voice_quantity.normalize():f}", str(2 * DAYS)],
    ]

    assert errors == []

    # The category chart keeps within its card (Rickshaw's x axis used to widen the page by ~136 px).
    assert page_overflow(page) == 0, f"the report by product is {page_overflow(page)} px wider than the window"
