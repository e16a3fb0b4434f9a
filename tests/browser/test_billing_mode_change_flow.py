"""A manager switches a roll-up managed account to separate billing from its settings page in a real
browser: the page says the change takes effect next month ("Roll-up until ..., separate from ..."),
and the manager cancels it before it does; and a change scheduled in the browser that crosses a month
boundary, each month then billed by the mode in force in it (issue 12 item 5)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts import services
from accounts.models import Account, month_of
from billing.models import Invoice
from billing.tasks import apply_billing_mode_changes
from tests.browser.test_billing_flow import sign_in
from tests.factories import account_with_owner
from tests.test_billing_mode_change import IN_JUNE, JULY_USAGE_AT, JUNE_USAGE_AT, SWITCH
from tests.test_monthly_close import JULY, JUNE, backdate, clock, close, row, send

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


def test_a_change_scheduled_in_the_browser_crosses_the_month_and_each_month_is_billed_by_its_mode(
    page: Page, live_server, catalogue, world
):
    """Issue 12's "Done when": in June 2025 (the clock of this process, which the live server shares)
    the manager switches roll-up Alpine Voice to separate billing from July in the browser; June's
    and July's usage arrive; beat's switch runs at the top of July 1; both months are closed. June is
    on the manager's invoice and its reseller invoice to Alpine, July on Alpine's own invoice, and
    the pages say so."""
    alpine = world.managed
    backdate()
    with clock(IN_JUNE):
        sign_in(page, world.users["owner"].email)
        page.goto(reverse("managed_settings", args=[world.manager.public_id, alpine.public_id]))
        page.get_by_role("button", name="Switch to separate billing from 2025-07-01").click()
        expect(page.locator("#billing-mode-line")).to_have_text("Roll-up until 2025-06-30, separate from 2025-07-01")
    send(world, alpine, [row("june", at=JUNE_USAGE_AT, quantity="100"), row("july", at=JULY_USAGE_AT, quantity="300")])
    assert Account.objects.get(pk=alpine.pk).billing_mode == Account.BillingMode.ROLLUP  # until July 1

    with clock(SWITCH):
        assert apply_billing_mode_changes()["changed"] == 1
    close(JUNE)
    close(JULY)

    june = Invoice.objects.get(issuer=None, bill_to=world.manager, period=JUNE)
    assert sum(june.lines.filter(account=alpine).values_list("amount", flat=True)) == Decimal("1.00")
    resale = Invoice.objects.get(issuer=world.manager, bill_to=alpine, period=JUNE)
    own_july = Invoice.objects.get(issuer=None, bill_to=alpine, period=JULY)
    assert (resale.total, own_july.total) == (Decimal("1.00"), Decimal("3.00"))
    assert not Invoice.objects.filter(issuer=world.manager, bill_to=alpine, period=JULY).exists()

    sign_in(page, world.users["owner"].email)  # today: the June session has long expired
    page.goto(reverse("managed_settings", args=[world.manager.public_id, alpine.public_id]))
    expect(page.locator("#billing-mode-line")).to_have_text("Separate billing.")
    page.goto(reverse("managed_invoices", args=[world.manager.public_id, alpine.public_id]))
    expect(page.locator("main")).to_contain_text(resale.number)  # the manager's to it: June's, not July's
    expect(page.locator("main")).not_to_contain_text(own_july.number)
    # Alpine's owner sees both: June's from its manager, July's from the platform.
    page.context.clear_cookies()
    sign_in(page, world.users["managed_owner"].email)
    page.goto(reverse("invoice_list", args=[alpine.public_id]))
    expect(page.locator("main")).to_contain_text(resale.number)
    expect(page.locator("main")).to_contain_text(own_july.number)
