"""The overview page, the first page of each person's portal (issue 14 item 2).

A manager's overview: balance and available credit, month-to-date spend at the rates the manager
pays with a per-day table, managed accounts in use of the limit, accounts needing attention, the top
10 managed accounts by spend, recent activity. A managed or standard account's: its balance (or
"Billed to <manager>"), month-to-date usage per product (cost only where pricing is seen), its last
invoice, a link to reports. Through the Django client as each persona.
"""

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.actor import Actor
from accounts.models import Account
from accounts.services import update_account_settings
from billing.invoices.builder import invoice_party
from billing.ledger import services as ledger
from billing.models import Balance, Product, Rate, ResaleTerms
from billing.usage.services import ingest_usage
from tests.conftest import make_managed_accounts
from tests.factories import account_with_owner

STAFF = Actor.platform_staff()


def now() -> datetime:
    """A moment of this UTC month, whatever the hour the suite runs at."""
    moment = datetime.now(UTC).replace(microsecond=0)
    return max(moment - timedelta(minutes=1), moment.replace(day=1, hour=0, minute=0, second=0))


def use(account: Account, *rows: tuple[str, str], at: datetime | None = None) -> None:
    """Usage of `account`, (sku, quantity) per row, rated as it arrives."""
    moment = at or now()
    ingest_usage(
        submitter=account,
        rows=[
            {"product": sku, "quantity": q, "started_at": moment.isoformat(), "idempotency_key": uuid.uuid4().hex}
            for sku, q in rows
        ],
        source="api",
        actor=STAFF,
    )


def credit(account: Account, amount: str) -> None:
    ledger.adjust_balance(account=account, amount=Decimal(amount), reason="Test", key=uuid.uuid4().hex, actor=STAFF)


def separate(account: Account) -> Account:
    Account.objects.filter(pk=account.pk).update(billing_mode=Account.BillingMode.SEPARATE)
    account.refresh_from_db()
    return account


def managed(world, name: str, **fields) -> Account:
    account, _ = account_with_owner(name=name, managed_kind=True, manager=world.manager, **fields)
    return account


def page(client: Client, account: Account) -> str:
    response = client.get(reverse("dashboard", args=[account.public_id]))
    assert response.status_code == 200
    return re.sub(r"\s+", " ", response.content.decode())


def section(html: str, css_class: str) -> str:
    """The text of the <section> whose class list has `css_class` ("" when there is none)."""
    found = re.search(rf'<section class="card {css_class}".*?</section>', html)
    return found.group(0) if found else ""


# --- A manager's overview ---------------------------------------------------------------------------


def test_the_manager_sees_its_balance_and_available_credit(world, persona):
    credit(world.manager, "1234.56")
    Balance.objects.filter(account=world.manager).update(credit_limit=Decimal("500.00"))

    balance = section(page(persona("owner"), world.manager), "overview-balance")

    assert "USD 1,234.56" in balance
    assert "Available credit" in balance and "USD 1,734.56" in balance


def test_a_negative_balance_reads_minus_usd_and_is_marked(world, persona):
    credit(world.manager, "-13.77")

    balance = section(page(persona("owner"), world.manager), "overview-balance")

    assert '<p class="figure status-negative">-USD 13.77</p>' in balance
    assert "USD -13.77" not in balance


def test_month_to_date_spend_is_what_the_manager_pays_by_day(world, persona):
    voice = Product.objects.get(sku="voice.outbound")
    since = now() - timedelta(days=60)
    Rate.objects.create(product=voice, account=world.manager, unit_price=Decimal("0.008"), effective_from=since)
    use(world.managed, ("voice.outbound", "1000"))  # roll-up: USD 8.00 at the manager's rate
    use(world.sibling, ("sms.outbound", "250"))  # roll-up: USD 1.00 at the list price
    use(world.manager, ("voice.outbound", "125"))  # its own: USD 1.00
    use(separate(managed(world, "Pays Itself")), ("voice.outbound", "5000"))  # not the manager's
    use(world.other_managed, ("voice.outbound", "9999"))  # another manager's

    html = page(persona("owner"), world.manager)

    assert "USD 10.00" in section(html, "overview-spend")
    days = section(html, "overview-days")
    table = re.search(r'<table class="table spend-by-day">.*?</table>', days).group(0)
    today = now().date()
    assert f'<time datetime="{today.isoformat()}">' in table
    assert table.count("<tr>") == today.day + 2  # the header, a row for every day so far, the total
    assert "USD 10.00" in table
    chart = re.search(r'<svg class="chart-svg".*?</svg>', days).group(0)  # reporting.charts drew it
    assert chart.count("<rect ") == today.day and "USD 10.00" in chart


def test_the_spend_table_is_an_empty_state_before_any_usage(world, persona):
    html = page(persona("owner"), world.manager)

    assert "USD 0.00" in section(html, "overview-spend")
    assert '<p class="empty-state">No usage yet this month.</p>' in section(html, "overview-days")


def test_it_shows_managed_accounts_in_use_of_the_limit_with_separators(world, persona):
    make_managed_accounts(world.manager, 410)
    managed(world, "Gone", cancelled=True)

    html = section(page(persona("owner"), world.manager), "overview-managed")

    assert "412 of 3,000 managed accounts in use" in html
    assert "1 cancelled" in html


def test_accounts_needing_attention_are_negative_low_or_disabled(world, persona):
    credit(separate(managed(world, "In The Red")), "-177.56")
    credit(separate(managed(world, "Running Low")), "4.20")
    credit(separate(managed(world, "Healthy Co")), "500.00")
    managed(world, "Switched Off", disabled=True)
    credit(separate(managed(world, "Cancelled Debt", cancelled=True)), "-50.00")

    attention = section(page(persona("owner"), world.manager), "overview-attention")

    rows = re.findall(r"<tr>.*?</tr>", attention)[1:]
    assert [re.search(r">([^<>]+)</a>", row).group(1) for row in rows] == ["In The Red", "Running Low", "Switched Off"]
    assert "Negative balance" in rows[0] and '<td class="num status-negative">-USD 177.56</td>' in rows[0]
    assert "Low balance" in rows[1] and "USD 4.20" in rows[1]
    assert "Disabled" in rows[2] and "Roll-up" in rows[2]
    assert "Healthy Co" not in attention and "Cancelled Debt" not in attention
    assert "Alpine Voice" not in attention  # roll-up: no balance of its own to run low


def test_nothing_needing_attention_is_an_empty_state(world, persona):
    attention = section(page(persona("owner"), world.manager), "overview-attention")

    assert 'class="empty-state"' in attention and "Nothing needs attention" in attention


def test_the_top_10_managed_accounts_by_spend_this_month(world, persona):
    accounts = [managed(world, f"Customer {n:02d}") for n in range(12)]
    for n, account in enumerate(accounts):
        use(account, ("voice.outbound", str(100 * (n + 1))))  # USD 1.00 .. 12.00
    last_month = now().replace(day=1) - timedelta(days=1)
    use(accounts[0], ("voice.outbound", "100000"), at=last_month)  # not this month

    top = section(page(persona("owner"), world.manager), "overview-top")

    names = re.findall(r'">(Customer \d\d)</a>', top)
    assert names == [f"Customer {n:02d}" for n in range(11, 1, -1)]
    assert "USD 12.00" in top and "USD 3.00" in top and "USD 2.00" not in top


def test_recent_activity_shows_the_latest_events_in_words(world, persona):
    owner = world.users["owner"]
    update_account_settings(
        account=world.manager, actor=Actor(user=owner), name="Acme Resale", admins_can_log_in_as=None
    )

    activity = section(page(persona("owner"), world.manager), "overview-activity")

    name = owner.display_name
    assert f"{name} renamed the account from &#x27;Acme Reseller&#x27; to &#x27;Acme Resale&#x27;" in activity
    assert "None" not in activity
    assert reverse("audit_log", args=[world.manager.public_id]) in activity


def test_a_billing_member_sees_money_but_not_the_audit_log(world, persona):
    credit(world.manager, "-13.77")
    credit(separate(managed(world, "In The Red")), "-1.00")

    html = page(persona("billing"), world.manager)

    assert "-USD 13.77" in section(html, "overview-balance")
    assert section(html, "overview-spend") and section(html, "overview-top")
    assert "In The Red" in section(html, "overview-attention")
    assert section(html, "overview-activity") == ""
    assert reverse("managed_list", args=[world.manager.public_id]) not in html  # may not manage them


def test_a_reporting_member_sees_spend_but_no_balances(world, persona):
    credit(world.manager, "-13.77")
    credit(separate(managed(world, "In The Red")), "-1.00")
    managed(world, "Switched Off", disabled=True)

    html = page(persona("reporting"), world.manager)

    assert section(html, "overview-balance") == ""
    assert "-USD 13.77" not in html and "-USD 1.00" not in html
    assert section(html, "overview-spend")
    attention = section(html, "overview-attention")
    assert "Switched Off" in attention and "In The Red" not in attention


# --- A managed or standard account's overview --------------------------------------------------------


def test_a_roll_up_account_is_billed_to_its_manager_and_sees_its_usage_at_its_resale_price(world, persona):
    ResaleTerms.objects.create(manager=world.manager, markup_percent=Decimal("50.00"))
    use(world.managed, ("voice.outbound", "1234.5"), ("sms.outbound", "2000"))  # USD 12.345 + 8.00 platform

    html = page(persona("managed_owner"), world.managed)

    assert "Billed to Acme Reseller" in section(html, "overview-balance")
    usage = section(html, "overview-usage")
    assert "1,234.5" in usage and "minute" in usage and "2,000" in usage and "message" in usage
    # The lines at +50 % (18.52 and 12.00), shown as its reseller invoice shows them: the total's
    # cent of rounding on the largest line, so the lines add up to the total with no rounding line.
    assert "USD 18.53" in usage and "USD 12.00" in usage
    assert "Rounding" not in usage
    assert "USD 30.53" in usage  # to_cents(to_cents(20.345) * 1.5)
    assert "USD 20.35" not in usage and "USD 12.35" not in usage  # never the manager's cost
    assert reverse("usage_report", args=[world.managed.public_id]) in usage


def test_a_separately_billed_account_sees_its_balance_and_cost(world, persona):
    separate(world.managed)
    credit(world.managed, "-13.77")
    use(world.managed, ("voice.outbound", "100"))

    html = page(persona("managed_owner"), world.managed)

    assert "-USD 13.77" in section(html, "overview-balance")
    assert "Billed to" not in html
    assert "USD 1.00" in section(html, "overview-usage")


@pytest.mark.parametrize("who", ["managed_owner", "manager_acting"])
def test_hidden_pricing_shows_quantities_without_cost(world, persona, who):
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)
    use(world.managed, ("voice.outbound", "1234.5"))

    usage = section(page(persona(who), world.managed), "overview-usage")

    assert "1,234.5" in usage and "minute" in usage
    assert "USD" not in usage and "Cost" not in usage and "12.35" not in usage


def test_a_hidden_pricing_separate_account_still_sees_its_balance(world, persona):
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True, billing_mode=Account.BillingMode.SEPARATE)
    world.managed.refresh_from_db()
    credit(world.managed, "25.00")

    assert "USD 25.00" in section(page(persona("managed_owner"), world.managed), "overview-balance")


def test_the_manager_acting_as_a_managed_account_sees_its_overview_not_the_managers(world, persona):
    credit(world.manager, "999.99")
    use(world.managed, ("voice.outbound", "42"))
    client = persona("manager_acting")

    html = page(client, world.managed)

    assert "<h1>Alpine Voice</h1>" in html
    assert "Billed to Acme Reseller" in html
    assert "42" in section(html, "overview-usage")
    assert "managed accounts in use" not in html and "999.99" not in html
    assert section(html, "overview-top") == "" and section(html, "overview-attention") == ""
    assert client.get(reverse("dashboard", args=[world.manager.public_id])).status_code == 404


def test_a_standard_account_sees_balance_last_invoice_usage_and_reports(world, persona):
    last_month = now().replace(day=1) - timedelta(days=1)
    use(world.standard, ("voice.outbound", "123456"), at=last_month)  # USD 1,234.56
    invoice = invoice_party(account=world.standard, month=last_month.date().replace(day=1))
    use(world.standard, ("sms.outbound", "10"))

    html = page(persona("standard_owner"), world.standard)

    assert "-USD 1,234.56" in section(html, "overview-balance")
    last = section(html, "overview-invoice")
    assert invoice.number and invoice.number in last and "USD 1,234.56" in last
    assert reverse("invoice_detail", args=[world.standard.public_id, invoice.public_id]) in last
    usage = section(html, "overview-usage")
    assert "Outbound SMS" in usage and "USD 0.04" in usage and "Outbound voice" not in usage
    assert reverse("usage_report", args=[world.standard.public_id]) in html


def test_an_account_without_an_invoice_yet_says_so(world, persona):
    assert "No invoice yet" in section(page(persona("standard_owner"), world.standard), "overview-invoice")


# --- Queries ------------------------------------------------------------------------------------------------


def _busy(manager: Account, accounts: list[Account]) -> None:
    """Usage for each account, a balance for each separately billed one, an event for the log."""
    for n, account in enumerate(accounts):
        if account.status == Account.Status.DISABLED:
            continue  # a disabled account's new usage is refused
        use(account, ("voice.outbound", str(10 + n)), ("sms.outbound", "3"))
        if account.billing_mode == Account.BillingMode.SEPARATE:
            credit(account, str(n - 5))


def test_the_managers_overview_runs_the_same_queries_at_3_60_and_3000_managed_accounts(db, django_assert_num_queries):
    manager, owner = account_with_owner(name="Counting Reseller", manager_kind=True)
    first = make_managed_accounts(manager, 3)
    _busy(manager, first)
    credit(manager, "100.00")
    update_account_settings(account=manager, actor=Actor(user=owner), name="Counting Resale", admins_can_log_in_as=None)
    client = Client()
    client.force_login(owner)
    url = reverse("dashboard", args=[manager.public_id])
    client.get(url)
    with CaptureQueriesContext(connection) as at_3:
        assert client.get(url).status_code == 200

    _busy(manager, make_managed_accounts(manager, 57))

    with django_assert_num_queries(len(at_3)):
        response = client.get(url)
    assert response.status_code == 200
    assert "60 of 3,000 managed accounts in use" in response.content.decode()

    make_managed_accounts(manager, 2940)  # the cap: 3,000 (idle ones: the reads are per manager, not per account)

    with django_assert_num_queries(len(at_3)):
        response = client.get(url)
    assert "3,000 of 3,000 managed accounts in use" in response.content.decode()


# --- A managed or standard account's month-to-date chart ---------------------------------------------------


def chart_of(html: str) -> str:
    found = re.search(r'<figure class="chart chart-time" id="usage-chart">.*?</figure>', html)
    return found.group(0) if found else ""


def test_a_standard_account_sees_its_month_by_day_as_a_chart_of_cost_with_its_table(world, persona):
    use(world.standard, ("voice.outbound", "100"), ("sms.outbound", "10"))  # USD 1.00 + 0.04 today

    chart = chart_of(page(persona("standard_owner"), world.standard))

    assert "<svg" in chart and "Cost this month by day" in chart
    assert "The chart&#x27;s figures as a table" in chart or "The chart's figures as a table" in chart
    assert f"{now():%-d} {now():%b}" in chart and "USD 1.04" in chart  # today's bar, costs added up


def test_a_roll_up_accounts_chart_is_at_its_resale_price_never_the_managers_cost(world, persona):
    ResaleTerms.objects.create(manager=world.manager, markup_percent=Decimal("50.00"))
    use(world.managed, ("voice.outbound", "1234.5"), ("sms.outbound", "2000"))  # USD 20.345 platform

    chart = chart_of(page(persona("managed_owner"), world.managed))

    assert "USD 30.53" in chart  # the day's platform cost with the markup, rounded once: as the total
    assert "20.35" not in chart and "20.34" not in chart


@pytest.mark.parametrize("who", ["managed_owner", "manager_acting"])
def test_hidden_pricing_charts_the_most_used_unit_without_cost(world, persona, who):
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)
    use(world.managed, ("voice.outbound", "1234.5"), ("voice.outbound", "1"), ("sms.outbound", "3"))

    chart = chart_of(page(persona(who), world.managed))

    assert "Usage this month by day, in minutes (the most used of 2 units)" in chart
    assert "1,235.5 minute" in chart
    assert "USD" not in chart and "Cost" not in chart and "12.35" not in chart


def test_no_chart_before_any_usage_this_month(world, persona):
    html = page(persona("standard_owner"), world.standard)

    assert chart_of(html) == "" and "No usage yet this month." in section(html, "overview-usage")


# --- The service block, on the account's own overview --------------------------------------------------------


def test_a_roll_up_account_is_told_its_provider_stopped_its_service_never_why(world, persona):
    Account.objects.filter(pk=world.manager.pk).update(service_blocked_reason="credit_exhausted")

    html = page(persona("managed_owner"), world.managed)

    alert = re.search(r'<div class="message warning service-alert" role="alert">(.*?)</div>', html).group(1)
    assert "New service is stopped: Manager blocked." in alert
    assert "Acme Reseller has stopped new service for this account" in alert
    assert "credit" not in alert.lower()  # the manager's own credit is not its customers' business


def test_a_spend_limit_block_says_when_it_lifts(world, persona):
    until = datetime(2031, 1, 1, tzinfo=UTC)
    Account.objects.filter(pk=world.managed.pk).update(
        service_blocked_reason="spend_limit", service_blocked_until=until
    )

    html = page(persona("managed_owner"), world.managed)

    assert "New service is stopped: Spend limit reached." in html
    assert '<time datetime="2031-01-01T00:00:00+00:00">1 Jan 2031, 00:00 UTC</time>' in html


def test_the_manager_sees_its_own_exhausted_credit_on_its_overview(world, persona):
    Account.objects.filter(pk=world.manager.pk).update(service_blocked_reason="credit_exhausted")

    html = page(persona("owner"), world.manager)

    assert "New service is stopped: Credit exhausted." in html and "topped up" in html


def test_an_account_in_service_shows_no_alert(world, persona):
    assert "service-alert" not in page(persona("managed_owner"), world.managed)


def test_a_managed_accounts_overview_runs_the_same_queries_at_3_and_at_3000_managed_accounts(
    world, persona, django_assert_num_queries
):
    """The chart, the alert and the usage table of one managed account read only that account: its
    manager's other 2,999 managed accounts and more days of usage cost no query."""
    separate(world.managed)
    use(world.managed, ("voice.outbound", "10"))
    client = persona("managed_owner")
    url = reverse("dashboard", args=[world.managed.public_id])
    client.get(url)
    with CaptureQueriesContext(connection) as at_3:
        assert client.get(url).status_code == 200

    make_managed_accounts(world.manager, 2998)
    use(world.managed, ("sms.outbound", "4"), at=now().replace(day=1, hour=0, minute=0))
    Account.objects.filter(pk=world.managed.pk).update(service_blocked_reason="spend_limit")

    with django_assert_num_queries(len(at_3)):
        response = client.get(url)
    assert "service-alert" in response.content.decode() and 'id="usage-chart"' in response.content.decode()
