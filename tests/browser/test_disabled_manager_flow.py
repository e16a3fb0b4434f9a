"""A disabled manager's managed account, as its owner meets it in a real browser (issue 11, "Also")."""

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts.models import Account
from tests.browser.test_log_in_as_flow import sign_in, url_of
from tests.factories import PASSWORD, account_with_owner

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_disabled_manager_keeps_its_managed_owner_out_and_says_why_until_enabled(page: Page, live_server):
    manager, _ = account_with_owner(name="Acme Reseller", manager_kind=True)
    managed, managed_owner = account_with_owner(name="Alpine Voice", managed_kind=True, manager=manager)
    Account.objects.filter(pk=manager.pk).update(status=Account.Status.DISABLED)  # staff disable the manager

    sign_in(page, managed_owner.email, PASSWORD)

    expect(page.get_by_role("heading", level=1)).to_have_text("Your account is disabled")
    expect(page.locator("main")).to_contain_text(
        "Alpine Voice is unavailable while its manager, Acme Reseller, is disabled"
    )
    page.goto(reverse("dashboard", args=[managed.public_id]))
    expect(page).to_have_url(
        f"{live_server.url}{reverse('account_login')}?next={reverse('dashboard', args=[managed.public_id])}"
    )

    Account.objects.filter(pk=manager.pk).update(status=Account.Status.ENABLED)
    managed.refresh_from_db()
    assert managed.status == Account.Status.ENABLED  # its own status never changed

    sign_in(page, managed_owner.email, PASSWORD)
    expect(page).to_have_url(url_of(live_server, "dashboard", managed.public_id))
    expect(page.get_by_role("heading", level=1)).to_have_text("Alpine Voice")


def test_disabled_manager_shows_a_signed_in_managed_owner_why_its_pages_are_closed(page: Page, live_server):
    manager, _ = account_with_owner(name="Acme Reseller", manager_kind=True)
    managed, managed_owner = account_with_owner(name="Alpine Voice", managed_kind=True, manager=manager)
    sign_in(page, managed_owner.email, PASSWORD)
    expect(page).to_have_url(url_of(live_server, "dashboard", managed.public_id))

    Account.objects.filter(pk=manager.pk).update(status=Account.Status.DISABLED)
    response = page.goto(reverse("dashboard", args=[managed.public_id]))

    assert response is not None and response.status == 403
    expect(page.locator("main")).to_contain_text(
        "Alpine Voice is unavailable while its manager, Acme Reseller, is disabled"
    )
