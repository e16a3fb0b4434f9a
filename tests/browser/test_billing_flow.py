"""A billing-role user pays, through the real pages in a real browser, against the session's
localstripe: adds a card in the Stripe Elements form (localstripe's Stripe.js stand-in, served by
localstripe itself), tops up, sees the balance change, and opens last month's invoice. Declined
cards show their message, whether declined when saved or when charged."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts.actor import Actor
from accounts.models import Account, Role, User
from billing.invoices import close as invoice_close
from billing.ledger import services as ledger
from billing.models import Invoice, Payment, PaymentMethod
from billing.money import format_money
from billing.usage.services import ingest_usage
from tests.factories import PASSWORD, MembershipFactory, UserFactory, account_with_owner
from tests.payments_support import DECLINED_ON_CHARGE, DECLINED_ON_SAVE, GOOD_CARD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("localstripe")]


@pytest.fixture
def billed_last_month(transactional_db) -> tuple[Account, User, Invoice]:
    """A standard account whose last month is used and closed (its invoice issued by the close
    machinery), and a member of it with the billing role."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)  # flushed by earlier tests
    account, owner = account_with_owner(name="Solo Telecom")
    Account.objects.filter(pk=account.pk).update(created_at=datetime(2020, 1, 1, tzinfo=UTC))
    user = UserFactory(email="payer@solotelecom.example.com")
    MembershipFactory(user=user, account=account, role=Role.BILLING)

    month = (datetime.now(UTC).date().replace(day=1) - timedelta(days=1)).replace(day=1)
    at = datetime.combine(month + timedelta(days=9), time(12), UTC).isoformat()
    rows = [
        {"idempotency_key": f"call-{n}", "product": "voice.outbound", "quantity": "250", "started_at": at}
        for n in range(4)
    ]
    ingest_usage(submitter=account, rows=rows, source="api", actor=Actor(user=owner))  # 1,000 min: USD 10.00
    run = invoice_close.start_close(month)
    for account_id in run.items.values_list("account_id", flat=True):
        invoice_close.close_item(run_id=run.pk, account_id=account_id)
    invoice = Invoice.objects.get(bill_to=account, period=month)
    assert invoice.total == Decimal("10.00")
    return account, user, invoice


def sign_in(page: Page, email: str) -> None:
    page.goto(reverse("account_login"))
    page.locator('input[name="login"]').fill(email)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()


def type_card(page: Page, number: str) -> None:
    """The card element localstripe's Stripe.js mounts: one input per part of the card."""
    element = page.locator("#card-element")
    element.locator('input[placeholder="number"]').fill(number)
    element.locator('input[placeholder="exp_month"]').fill("12")
    element.locator('input[placeholder="exp_year"]').fill("34")
    element.locator('input[placeholder="cvc"]').fill("123")
    element.locator('input[placeholder="postal_code"]').fill("10001")


def add_card(page: Page, number: str) -> None:
    page.get_by_role("link", name="Add a card").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Add a card")
    type_card(page, number)
    page.get_by_role("button", name="Save card").click()


def test_a_billing_member_adds_a_card_tops_up_and_opens_the_invoice(page: Page, live_server, billed_last_month):
    account, user, invoice = billed_last_month
    before = ledger.balance_of(account).amount
    assert before == Decimal("-10.00")  # last month's usage, charged
    sign_in(page, user.email)

    page.locator(".account-nav").get_by_role("link", name="Payments", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Payment methods")
    expect(page.get_by_text("No card yet.")).to_be_visible()
    add_card(page, GOOD_CARD)
    expect(page).to_have_url(live_server.url + reverse("payment_methods", args=[account.public_id]))
    expect(page.locator(".messages")).to_contain_text("Visa •••• 4242 saved. It is your default card.")
    expect(page.locator("table.payment-methods")).to_contain_text("Visa •••• 4242")
    expect(page.locator("table.payment-methods")).to_contain_text("Default")

    page.locator(".subnav").get_by_role("link", name="Make a payment").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Make a payment")
    page.get_by_label("Amount (USD)").fill("25.00")
    page.get_by_role("button", name="Pay").click()
    expect(page.locator(".payment-succeeded")).to_have_text("Paid: USD 25.00 was added to your balance.")
    payment = Payment.objects.get(account=account)
    assert payment.status == Payment.Status.SUCCEEDED and payment.created_by == user

    page.locator(".account-nav").get_by_role("link", name="Balance", exact=True).click()
    expect(page.locator(".balance-facts")).to_contain_text(format_money(before + Decimal("25.00")))
    expect(page.locator("table")).to_contain_text("Top-up with Visa •••• 4242")

    page.locator(".account-nav").get_by_role("link", name="Invoices", exact=True).click()
    page.get_by_role("link", name=invoice.number).click()
    expect(page).to_have_url(live_server.url + reverse("invoice_detail", args=[account.public_id, invoice.public_id]))
    expect(page.get_by_role("heading", level=1)).to_contain_text(invoice.number)
    expect(page.locator("main")).to_contain_text("USD 10.00")


def test_declined_cards_show_their_message(page: Page, live_server, billed_last_month):
    account, user, _ = billed_last_month
    sign_in(page, user.email)
    page.goto(reverse("payment_methods", args=[account.public_id]))

    # Declined when saved: the message comes back into the form, and nothing is recorded.
    add_card(page, DECLINED_ON_SAVE)
    expect(page.locator("#card-errors")).to_have_text("Your card was declined.")
    assert not PaymentMethod.objects.filter(account=account).exists()

    # Saved, but declined when charged: the payment form says so and the balance is unchanged.
    type_card(page, DECLINED_ON_CHARGE)
    page.get_by_role("button", name="Save card").click()
    expect(page.locator("table.payment-methods")).to_contain_text("Visa •••• 0341")
    page.locator(".subnav").get_by_role("link", name="Make a payment").click()
    page.get_by_label("Amount (USD)").fill("30.00")
    page.get_by_role("button", name="Pay").click()
    expect(page.locator("form .errorlist")).to_contain_text("Visa •••• 0341: Your card was declined.")
    expect(page.get_by_label("Amount (USD)")).to_have_value("30.00")
    assert ledger.balance_of(account).amount == Decimal("-10.00")
    page.locator(".subnav").get_by_role("link", name="Payment history").click()
    expect(page.locator("table.payment-history")).to_contain_text("Failed: Your card was declined.")
