"""Per-product resale prices (issue 12 item 9): a manager sets resale rates per product, effective
from the first of a month, that win over its markup for that product; every account sees the prices
it pays (billing.pricing.prices_for): a roll-up account its manager's resale prices in its usage
report, CSV, chart, API usage reports, records, rate card and reseller invoice; a separately billed
account the platform's; the manager's own cost never reaches a managed account.

March 2025: world.manager's negotiated rates voice.outbound 0.010000, sms.outbound 0.004000 a unit;
markup 10 %; resale rate of sms.outbound 0.006000 from 2025-03-01 (set "earlier": written as the
row the service would have left). world.managed (Alpine Voice, roll-up) used 100 voice minutes and
1,000 messages: its platform cost 1.00 + 4.00 = 5.00, its resale price 1.10 + 6.00 = 7.10."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts.actor import Actor
from accounts.audit import events_for_account
from accounts.audit_text import PHRASES
from accounts.models import Account, AuditEvent
from accounts.services import create_api_key
from billing import pricing
from billing.invoices import services as invoice_services
from billing.invoices.builder import invoice_party
from billing.models import Invoice, Product, Rate, ResaleRate
from billing.resale_rates import (
    ResaleRateRefused,
    first_allowed_month,
    remove_resale_rate,
    set_resale_rate,
)
from billing.usage.services import ingest_usage
from tests.conftest import log_in_as

MARCH = date(2025, 3, 1)
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)
RANGE = {"start": "2025-03-01", "end": "2025-03-31"}


@pytest.fixture
def priced(world):
    Account.objects.update(created_at=LONG_AGO)
    owner = Actor(user=world.users["owner"])
    for sku, price in (("voice.outbound", "0.010000"), ("sms.outbound", "0.004000")):
        Rate.objects.create(
            product=Product.objects.get(sku=sku), account=world.manager, unit_price=price, effective_from=LONG_AGO
        )
    invoice_services.set_resale_markup(manager=world.manager, markup_percent=Decimal("10"), actor=owner)
    ResaleRate.objects.create(
        manager=world.manager,
        product=Product.objects.get(sku="sms.outbound"),
        unit_price=Decimal("0.006"),
        effective_from=MARCH,
    )
    rows = [
        {"account": str(world.managed.public_id), "product": "voice.outbound", "quantity": "100",
         "started_at": "2025-03-03T10:00:00Z", "idempotency_key": "rr-1"},
        {"account": str(world.managed.public_id), "product": "sms.outbound", "quantity": "1000",
         "started_at": "2025-03-04T10:00:00Z", "idempotency_key": "rr-2"},
    ]  # fmt: skip
    ingest_usage(submitter=world.manager, rows=rows, source="api", actor=owner)
    return world


def _client(world, who: str) -> Client:
    client = Client()
    client.force_login(world.users["owner" if who == "manager_acting" else who])
    if who == "manager_acting":
        assert log_in_as(client, world.manager, world.managed).status_code == 302
    return client


def _text(response) -> str:
    if hasattr(response, "streaming_content"):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


# --- The known bug: the usage report showed a roll-up account its manager's cost -------------------


@pytest.mark.parametrize("who", ["managed_owner", "manager_acting"])
def test_the_usage_report_shows_a_rollup_account_its_resale_price_not_its_managers_cost(priced, who):
    client = _client(priced, who)
    url = reverse("usage_report", args=[priced.managed.public_id])
    page = client.get(url, {**RANGE, "group_by": "product"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "7.10" in html  # 100 x 0.01 x 1.10 + 1,000 x 0.006
    assert "6.00" in html and "1.10" in html
    assert "5.00" not in html and "4.00" not in html  # the manager's cost

    csv_text = _text(
        client.get(reverse("usage_report_csv", args=[priced.managed.public_id]), {**RANGE, "group_by": "day"})
    )
    costs = {row["day"]: Decimal(row["cost"]) for row in csv.DictReader(io.StringIO(csv_text))}
    assert costs == {"2025-03-03": Decimal("1.1"), "2025-03-04": Decimal("6")}


def test_the_v2_usage_report_prices_a_rollup_account_at_its_resale_prices(priced):
    _, key = create_api_key(account=priced.managed, name="k", actor=Actor(user=priced.users["managed_owner"]))
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    params = {"product": "all", "metrics": "cost", "start_date": "2025-03-01", "end_date": "2025-04-01"}
    by_product = client.get("/v2/usage_reports", {**params, "dimensions": "product"}).json()["data"]
    assert {r["product"]: Decimal(r["cost"]) for r in by_product} == {
        "sms.outbound": Decimal("6"),
        "voice.outbound": Decimal("1.1"),
    }
    # From the records (a field of theirs as a dimension): the same prices.
    by_direction = client.get("/v2/usage_reports", {**params, "dimensions": "direction"}).json()["data"]
    assert sum(Decimal(r["cost"]) for r in by_direction) == Decimal("7.1")


def test_the_records_page_and_csv_show_resale_rates(priced):
    client = _client(priced, "managed_owner")
    html = client.get(reverse("usage_records", args=[priced.managed.public_id]), RANGE).content.decode()
    assert "0.006" in html and "0.011" in html
    assert "0.004 " not in html and "0.01 /" not in html  # the manager's rates, as the table writes them
    text = _text(client.get(reverse("usage_records_csv", args=[priced.managed.public_id]), RANGE))
    rows = {r["product"]: (Decimal(r["rate"]), Decimal(r["cost"])) for r in csv.DictReader(io.StringIO(text))}
    assert rows == {
        "sms.outbound": (Decimal("0.006"), Decimal("6")),
        "voice.outbound": (Decimal("0.011"), Decimal("1.1")),
    }


def test_the_manager_sees_its_own_cost_of_its_managed_accounts(priced):
    client = _client(priced, "owner")
    text = _text(
        client.get(
            reverse("usage_report_csv", args=[priced.manager.public_id]),
            {**RANGE, "group_by": "product", "scope": str(priced.managed.public_id)},
        )
    )
    costs = {row["product"]: Decimal(row["cost"]) for row in csv.DictReader(io.StringIO(text))}
    assert costs == {"sms.outbound": Decimal("4"), "voice.outbound": Decimal("1")}


def test_a_separately_billed_account_sees_the_platforms_price(priced):
    Account.objects.filter(pk=priced.managed.pk).update(billing_mode=Account.BillingMode.SEPARATE)
    client = _client(priced, "managed_owner")
    text = _text(
        client.get(reverse("usage_report_csv", args=[priced.managed.public_id]), {**RANGE, "group_by": "product"})
    )
    costs = {row["product"]: Decimal(row["cost"]) for row in csv.DictReader(io.StringIO(text))}
    assert costs == {"sms.outbound": Decimal("4"), "voice.outbound": Decimal("1")}


def test_the_chart_in_cost_reads_resale_prices(priced):
    client = _client(priced, "managed_owner")
    page = client.get(
        reverse("usage_report", args=[priced.managed.public_id]), {**RANGE, "group_by": "day", "chart": "cost"}
    )
    assert page.status_code == 200
    chart = page.context["chart"]
    assert sum(bar.value for bar in chart.bars) == Decimal("7.1")


# --- The invoice ----------------------------------------------------------------------------------


def test_the_reseller_invoice_prices_resale_rated_products_by_quantity_times_rate(priced):
    invoice_party(account=priced.manager, month=MARCH)
    platform = Invoice.objects.get(issuer__isnull=True, bill_to=priced.manager, period=MARCH)
    resale = Invoice.objects.get(issuer=priced.manager, bill_to=priced.managed, period=MARCH)
    section = sum(line.amount for line in platform.lines.filter(account=priced.managed))
    assert section == Decimal("5.00")
    amounts = {line.product.sku if line.product else "": line.amount for line in resale.lines.all()}
    assert amounts == {"sms.outbound": Decimal("6.00"), "voice.outbound": Decimal("1.10")}
    assert resale.total == Decimal("7.10") == sum(amounts.values())


def test_section_rule_at_zero_markup_and_no_resale_rates_is_the_platform_section(world):
    prices = pricing.Prices(world.managed)
    rows = [(1, Decimal("3"), Decimal("0.0149")), (2, Decimal("1"), Decimal("0.0149"))]
    assert prices.section(rows, MARCH).total == Decimal("0.03")
    assert prices.section(rows, MARCH).lines == [Decimal("0.01"), Decimal("0.01")]
    assert prices.section(rows, MARCH).rounding == Decimal("0.01")


def test_a_resale_rate_applies_from_the_first_of_its_month(priced):
    sms = Product.objects.get(sku="sms.outbound")
    ResaleRate.objects.create(manager=priced.manager, product=sms, unit_price=None, effective_from=date(2025, 4, 1))
    prices = pricing.prices_for(priced.managed)
    assert prices.resale_rate(sms.pk, date(2025, 2, 28)) is None
    assert prices.resale_rate(sms.pk, date(2025, 3, 31)) == Decimal("0.006")
    assert prices.resale_rate(sms.pk, date(2025, 4, 1)) is None  # back at the markup
    assert prices.cost(sms.pk, date(2025, 4, 2), Decimal("10"), Decimal("0.04")) == Decimal("0.044")


# --- The rate card ---------------------------------------------------------------------------------


def test_the_rollup_rate_card_shows_resale_prices_never_the_managers_cost(priced):
    html = _client(priced, "managed_owner").get(reverse("rate_card", args=[priced.managed.public_id])).content.decode()
    assert "0.011000" in html  # voice at the markup
    assert "0.010000" not in html and "0.004000" not in html  # the manager's cost
    this_month = pricing.prices_for(priced.managed)
    assert this_month.markup == Decimal("10.00")


def test_a_hidden_pricing_account_has_no_rate_card(priced):
    Account.objects.filter(pk=priced.managed.pk).update(pricing_hidden=True)
    response = _client(priced, "managed_owner").get(reverse("rate_card", args=[priced.managed.public_id]))
    assert response.status_code == 404


# --- Setting them: the manager's page --------------------------------------------------------------


def _page(world) -> str:
    return reverse("resale_rates", args=[world.manager.public_id])


def test_the_manager_sets_changes_and_removes_a_resale_rate_on_its_page(priced):
    client = _client(priced, "owner")
    page = client.get(_page(priced))
    assert page.status_code == 200
    html = page.content.decode()
    assert "0.010000" in html  # its own cost, for its eyes
    assert "first day of a month" in html
    month = first_allowed_month()
    response = client.post(
        _page(priced),
        {"action": "set", "product": "voice.outbound", "unit_price": "0.0125", "effective_from": month.isoformat()},
    )
    assert response.status_code == 302
    rate = ResaleRate.objects.get(manager=priced.manager, product__sku="voice.outbound")
    assert (rate.unit_price, rate.effective_from) == (Decimal("0.0125"), month)
    assert "0.012500" in client.get(_page(priced)).content.decode()
    event = AuditEvent.objects.get(change_type="resale_rate.set", account=priced.manager)
    assert event.user == priced.users["owner"]
    removal = {"action": "remove", "product": "voice.outbound", "effective_from": month.isoformat()}
    unconfirmed = client.post(_page(priced), removal)  # a removal asks first
    assert unconfirmed.status_code == 200 and "goes back to the markup" in unconfirmed.content.decode()
    assert ResaleRate.objects.filter(manager=priced.manager, product__sku="voice.outbound").exists()
    confirm = client.get(_page(priced), {"remove": "voice.outbound", "from": month.isoformat()})
    assert 'name="confirm" value="1"' in confirm.content.decode()
    response = client.post(_page(priced), {**removal, "confirm": "1"})
    assert response.status_code == 302
    assert not ResaleRate.objects.filter(manager=priced.manager, product__sku="voice.outbound").exists()
    assert AuditEvent.objects.filter(change_type="resale_rate.removed", account=priced.manager).count() == 1


def test_removing_a_rate_in_force_returns_the_product_to_the_markup_from_a_month(priced):
    owner = Actor(user=priced.users["owner"])
    sms = Product.objects.get(sku="sms.outbound")
    month = first_allowed_month()
    remove_resale_rate(manager=priced.manager, product=sms, effective_from=month, actor=owner)
    assert ResaleRate.objects.get(manager=priced.manager, product=sms, effective_from=month).unit_price is None
    with pytest.raises(ResaleRateRefused):  # nothing left to remove
        remove_resale_rate(
            manager=priced.manager, product=Product.objects.get(sku="voice.outbound"), effective_from=month, actor=owner
        )


@pytest.mark.parametrize(
    ("unit_price", "effective_from", "field"),
    [
        ("-1", None, "unit_price"),
        ("0.0000001", None, "unit_price"),
        ("1e9", None, "unit_price"),
        ("abc", None, "unit_price"),
        ("0.01", "2025-03-01", "effective_from"),  # back in time
        ("0.01", "mid", "effective_from"),  # not the first of a month
    ],
)
def test_it_refuses_bad_resale_rates(priced, unit_price, effective_from, field):
    month = first_allowed_month()
    when = {None: month.isoformat(), "mid": month.replace(day=15).isoformat()}.get(effective_from, effective_from)
    client = _client(priced, "owner")
    response = client.post(
        _page(priced), {"action": "set", "product": "voice.outbound", "unit_price": unit_price, "effective_from": when}
    )
    assert response.status_code == 422
    assert response.context["rate_form"].errors.get(field)
    assert not ResaleRate.objects.filter(product__sku="voice.outbound").exists()


@pytest.mark.parametrize("who", ["managed_owner", "manager_acting", "other_tenant", "reporting", "sibling_owner"])
def test_only_the_managers_reselling_people_reach_the_page(priced, who):
    response = _client(priced, who).get(_page(priced))
    assert response.status_code in (403, 404)


@pytest.mark.parametrize("who", ["owner", "admin", "billing"])
def test_the_managers_owner_admin_and_billing_people_reach_the_page(priced, who):
    assert _client(priced, who).get(_page(priced)).status_code == 200


def test_it_rejects_get_for_changes_and_needs_csrf(priced):
    client = Client(enforce_csrf_checks=True)
    client.force_login(priced.users["owner"])
    month = first_allowed_month().isoformat()
    response = client.post(
        _page(priced), {"action": "set", "product": "voice.outbound", "unit_price": "1", "effective_from": month}
    )
    assert response.status_code == 403
    assert not ResaleRate.objects.filter(product__sku="voice.outbound").exists()


# --- Audit -----------------------------------------------------------------------------------------


def test_resale_rate_changes_are_in_words_and_never_in_a_managed_accounts_log(priced):
    owner = Actor(user=priced.users["owner"])
    voice = Product.objects.get(sku="voice.outbound")
    set_resale_rate(
        manager=priced.manager,
        product=voice,
        unit_price=Decimal("0.02"),
        effective_from=first_allowed_month(),
        actor=owner,
    )
    assert "resale_rate.set" in PHRASES and "resale_rate.removed" in PHRASES
    assert events_for_account(priced.manager).filter(change_type="resale_rate.set").exists()
    assert not events_for_account(priced.managed).filter(change_type__startswith="resale_rate").exists()
    html = _client(priced, "owner").get(reverse("audit_log", args=[priced.manager.public_id])).content.decode()
    assert "resale rate of voice.outbound" in html
    acting = _client(priced, "manager_acting").get(reverse("audit_log", args=[priced.managed.public_id]))
    assert "0.02" not in acting.content.decode()


def test_the_audit_api_of_a_managed_account_carries_no_resale_rate(priced):
    owner = Actor(user=priced.users["owner"])
    set_resale_rate(
        manager=priced.manager,
        product=Product.objects.get(sku="voice.outbound"),
        unit_price=Decimal("0.02"),
        effective_from=first_allowed_month(),
        actor=owner,
    )
    _, key = create_api_key(account=priced.managed, name="k", actor=Actor(user=priced.users["managed_owner"]))
    body = Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/v2/audit_events").json()
    assert "resale_rate" not in json.dumps(body)
