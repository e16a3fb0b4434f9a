"""A manager switches a roll-up managed account to separate billing from its settings page in a real
browser: the page says the change takes effect next month ("Roll-up until ..., separate from ..."),
and the manager cancels it before it does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts import services
from accounts.models import Account, month_of
from tests.browser.test_billing_flow import sign_in
from tests.factories import account_with_owner

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_manager_schedules_separate_billing_for_next_month_and_cancels_it(page: Page, live_server):
    manager, manager_owner = account_with_owner(name="Harbor Reseller", manager_kind=True)
    managed, _ = account_with_owner(name="Pier Calls", managed_kind=True, manager=manager)
    start = services.next_month(month_of())
    line = f"Roll-up until {start - timedelta(days=1):%Y-%m-%d}, separate from {start:%Y-%m-%d}"
    sign_in(page, manager_owner.email)

    page.goto(reverse("managed_settings", args=[manager.public_id, managed.public_id]))
    expect(page.locator("#billing-mode-line")).to_have_text("Roll-up billing.")
    page.get_by_role("button", name=f"Switch to separate billing from {start:%Y-%m-%d}").click()

    expect(page.locator("main")).to_contain_text(f"Pier Calls changes to separate billing on {start:%Y-%m-%d}.")
    expect(page.locator("#billing-mode-line")).to_have_text(line)
    expect(page.locator("main")).to_contain_text("this page then offers you to transfer it an opening credit")
    assert Account.objects.get(pk=managed.pk).billing_mode_next == Account.BillingMode.SEPARATE

    page.get_by_role("button", name="Cancel the change").click()

    expect(page.locator("main")).to_contain_text("The billing-mode change of Pier Calls is cancelled.")
    expect(page.locator("#billing-mode-line")).to_have_text("Roll-up billing.")
    assert Account.objects.get(pk=managed.pk).billing_mode_from is None
