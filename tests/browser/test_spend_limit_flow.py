"""A manager sets a spend limit in a real browser, usage (through the real ingestion service)
crosses it, the account shows blocked, the manager raises the limit and the block lifts."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from billing.ledger import services as ledger
from billing.usage.services import ingest_usage
from tests.browser.test_log_in_as_flow import sign_in
from tests.factories import PASSWORD, account_with_owner

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_manager_limits_an_account_sees_it_blocked_and_lifts_the_block(page: Page, live_server, catalogue):
    manager, owner = account_with_owner(name="Acme Reseller", manager_kind=True)
    ledger.set_credit_limit(account=manager, limit=Decimal("1000.00"), actor=Actor.platform_staff())
    managed, _ = account_with_owner(name="Alpine Voice", managed_kind=True, manager=manager)
    sign_in(page, owner.email, PASSWORD)

    page.goto(reverse("controls_managed_limit", args=[manager.public_id, managed.public_id]))
    expect(page.locator("#service-status")).to_contain_text("In service")
    form = page.locator("#limit-form")
    form.get_by_label("Monthly limit (USD)").fill("5.5")
    form.get_by_label("Daily limit (USD)").fill("9")
    form.get_by_role("button", name="Save limit").click()
    expect(page.locator("main")).to_contain_text("The daily limit cannot be more than the monthly limit.")
    form.get_by_label("Daily limit (USD)").fill("")
    form.get_by_label("Alert and block").check()
    form.get_by_role("button", name="Save limit").click()
    expect(page.locator("main")).to_contain_text("Saved: The manager's limit of USD 5.50 a month on all products")

    at = (timezone.now() - timedelta(minutes=1)).isoformat()
    rows = [
        {"account": str(managed.public_id), "product": "sms.outbound", "quantity": "1000", "started_at": at,
         "idempotency_key": f"browser-{i}"}
        for i in range(2)
    ]  # fmt: skip
    ingest_usage(submitter=manager, rows=rows, source="api", actor=Actor(user=owner))  # USD 8.00, checked on commit

    page.goto(reverse("controls_limits", args=[manager.public_id]))
    row = page.get_by_role("row", name="Alpine Voice")
    expect(row).to_contain_text("Blocked: Spend limit reached")
    expect(row).to_contain_text("USD 8.00")
    expect(row).to_contain_text("145.45 %")
    row.get_by_role("link", name="Alpine Voice").click()
    expect(page.locator("#service-status")).to_contain_text("Blocked: Spend limit reached")

    form = page.locator("#limit-form")
    form.get_by_label("Monthly limit (USD)").fill("50")
    form.get_by_role("button", name="Save limit").click()
    expect(page.locator("#service-status")).to_contain_text("In service")
    assert Account.objects.select_related("manager").get(pk=managed.pk).in_service
    lifted = AuditEvent.objects.get(account=managed, change_type="service.unblocked")
    assert lifted.user == owner
