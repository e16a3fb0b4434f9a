"""The usage report's chart in a real browser, for one day of usage and for a year of it: drawn by
the server (no script), dates that read as dates (never "0ms 100ms ..."), round values, one unit or
cost chosen in the filters, names with HTML in them shown as text, its figures in a table.

Screenshots at 1400 and 390 px wide go to var/screenshots/ (usage-chart-one-day-*, usage-chart-year-*).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts.actor import Actor
from accounts.models import Account, User
from billing.usage.services import ingest_usage
from reporting.charts import span_label
from reporting.forms import today_utc
from tests.browser.conftest import SCREENSHOT_DIR
from tests.factories import PASSWORD, account_with_owner

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE = 'Alpine<img src=x onerror="window.__xss=1"><b>bold</b>'
MONTH_LABEL = re.compile(r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)( \d{4})?$")


@dataclass
class Reseller:
    manager: Account
    owner: User
    managed: Account
    sibling: Account


@pytest.fixture
def reseller(catalogue) -> Reseller:
    manager, owner = account_with_owner(name="Acme Reseller", manager_kind=True)
    managed, _ = account_with_owner(name=HOSTILE, managed_kind=True, manager=manager)
    sibling, _ = account_with_owner(name="Blue Harbor", managed_kind=True, manager=manager)
    long_ago = datetime.now(UTC) - timedelta(days=400)
    Account.objects.filter(pk__in=[manager.pk, managed.pk, sibling.pk]).update(created_at=long_ago)
    return Reseller(manager, owner, managed, sibling)


def send_sms(r: Reseller, days: list[date]) -> None:
    """SMS on each of `days` at noon UTC: 30 from the hostile-named account, 10 from its sibling."""
    rows = [
        {
            "account": str(account.public_id),
            "product": "sms.outbound",
            "quantity": str(quantity),
            "started_at": datetime.combine(day, time(12), UTC).isoformat(),
            "idempotency_key": f"chart-{account.pk}-{day}",
        }
        for day in days
        for account, quantity in ((r.managed, 30), (r.sibling, 10))
    ]
    result = ingest_usage(submitter=r.manager, rows=rows, source="api", actor=Actor(user=r.owner))
    assert result.accepted == len(rows), result


def sign_in(page: Page, user: User) -> None:
    page.goto(reverse("account_login"))
    page.locator('input[name="login"]').fill(user.email)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: "login" not in url)


def open_report(page: Page, r: Reseller, start: date, end: date, **params: str) -> None:
    query = "&".join(f"{k}={v}" for k, v in {"start": start, "end": end, **params}.items())
    page.goto(f"{reverse('usage_report', args=[r.manager.public_id])}?{query}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Usage report")


def chart_texts(page: Page, css: str) -> list[str]:
    return page.locator(f"#usage-chart svg text.{css}").all_text_contents()


def assert_no_duration_labels(page: Page) -> None:
    texts = page.locator("#usage-chart svg text").all_text_contents()
    assert texts and not any(re.search(r"\dms\b", text) for text in texts), texts


def screenshots(page: Page, name: str) -> None:
    """At 1400 and 390 px: the chart's figure never reaches past the window (it scrolls inside)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for width in (1400, 390):
        page.set_viewport_size({"width": width, "height": 900})
        right = page.locator("#usage-chart").evaluate("e => e.getBoundingClientRect().right")
        assert right <= width, f"the chart reaches {right} px in a {width} px window"
        page.screenshot(path=str(SCREENSHOT_DIR / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def test_one_day_of_usage_is_one_bar_with_its_date(page: Page, live_server, reseller):
    r = reseller
    yesterday = today_utc() - timedelta(days=1)
    send_sms(r, [yesterday])
    sign_in(page, r.owner)

    open_report(page, r, yesterday, yesterday)
    expect(page.get_by_role("heading", name="Cost (USD) by day")).to_be_visible()
    svg = page.locator("#usage-chart svg.chart-svg")
    expect(svg).to_have_attribute("role", "img")
    expect(svg.locator(".chart-bars rect")).to_have_count(1)
    width = svg.locator(".chart-bars rect").evaluate("r => r.getBBox().width")
    assert width < 100, f"one day drawn {width} units wide"
    assert chart_texts(page, "chart-x") == [f"{yesterday.day} {yesterday:%b} {yesterday.year}"]
    ticks = chart_texts(page, "chart-tick")
    assert ticks[0] == "USD 0.00" and all(t.startswith("USD ") for t in ticks), ticks
    assert_no_duration_labels(page)
    expect(svg.locator(".chart-bars rect title")).to_have_text(f"{span_label(yesterday, yesterday)}: USD 0.16")

    # One unit at a time, chosen in the filters; its figures as a table without any script.
    page.locator("form.filters").locator('select[name="chart"]').select_option(label="Quantity (message)")
    page.locator("form.filters").get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name="Quantity (message) by day")).to_be_visible()
    expect(page.locator("#usage-chart .chart-bars rect title")).to_have_text(
        f"{span_label(yesterday, yesterday)}: 40 message"
    )
    assert chart_texts(page, "chart-tick")[-1] in ("40", "50")  # round
    page.locator("#usage-chart summary").click()
    expect(page.locator("#usage-chart .chart-data tbody tr")).to_have_text(
        re.compile(rf"{re.escape(span_label(yesterday, yesterday))}\s*40 message")
    )

    # By managed account: the names, with their HTML, are text on the axis, in tooltips and caption.
    open_report(page, r, yesterday, yesterday, group_by="account", chart="message")
    names = chart_texts(page, "chart-x")
    assert names[0].startswith("Alpine<img src=x") and names[1] == "Blue Harbor", names
    expect(page.locator("#usage-chart .chart-bars rect title").first).to_have_text(f"{HOSTILE}: 30 message")
    expect(page.locator("#usage-chart figcaption")).to_contain_text(HOSTILE)
    assert page.locator('img[src="x"]').count() == 0 and page.locator("main b", has_text="bold").count() == 0
    assert page.evaluate("window.__xss") is None
    screenshots(page, "usage-chart-one-day-by-account")
    open_report(page, r, yesterday, yesterday)
    screenshots(page, "usage-chart-one-day")


def test_a_year_of_usage_is_charted_by_month_with_month_labels(page: Page, live_server, reseller):
    r = reseller
    today = today_utc()
    start = today - timedelta(days=365)  # 366 days, today included: the longest range
    days = sorted({(today - timedelta(days=30 * n)).replace(day=10) for n in range(12)})
    days = [day for day in days if start <= day < today]
    send_sms(r, days)
    sign_in(page, r.owner)

    open_report(page, r, start, today)
    expect(page.get_by_role("heading", name="Cost (USD) by month")).to_be_visible()
    bars = page.locator("#usage-chart .chart-bars rect")
    expect(bars).to_have_count(13)  # 12 months and the days of a 13th at the edges
    labels = chart_texts(page, "chart-x")
    assert 6 <= len(labels) <= 13 and all(MONTH_LABEL.match(label) for label in labels), labels
    assert re.search(r" \d{4}$", labels[0]), labels  # the year on the first label
    assert_no_duration_labels(page)
    ticks = chart_texts(page, "chart-tick")
    assert ticks[0] == "USD 0" or ticks[0] == "USD 0.00", ticks
    used = page.locator("#usage-chart .chart-bars rect title").all_text_contents()
    assert sum(text.endswith(": USD 0.16") for text in used) == len(days), used

    # The report's own table stays by day: one row a day with usage.
    expect(page.locator("table.usage-summary tbody tr")).to_have_count(len(days))
    screenshots(page, "usage-chart-year")
