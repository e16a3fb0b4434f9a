"""A manager opens a managed account's hub, walks its tabs, logs in as it from the list's row
action and returns, in a real browser."""

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts.models import Role
from tests.browser.conftest import SCREENSHOT_DIR
from tests.factories import PASSWORD, MembershipFactory, UserFactory, account_with_owner

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TABS = [
    "Overview",
    "Usage",
    "Invoices",
    "Balance and transfers",
    "API keys",
    "Members",
    "Spend limits",
    "Audit",
    "Settings",
]


def sign_in(page: Page, email: str) -> None:
    page.goto(reverse("account_login"))
    page.locator('input[name="login"]').fill(email)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()


def test_the_manager_walks_the_hub_logs_in_from_the_list_and_returns(page: Page, live_server):
    manager, owner = account_with_owner(name="Acme Reseller", manager_kind=True)
    managed, _ = account_with_owner(name="Alpine Voice", managed_kind=True, manager=manager)
    list_url = live_server.url + reverse("managed_list", args=[manager.public_id])
    hub_url = live_server.url + reverse("managed_detail", args=[manager.public_id, managed.public_id])
    sign_in(page, owner.email)
    expect(page).to_have_url(live_server.url + reverse("dashboard", args=[manager.public_id]))

    page.goto(list_url)
    page.get_by_role("link", name="Alpine Voice", exact=True).click()
    expect(page).to_have_url(hub_url)
    tabs = page.locator("nav.managed-hub-tabs")
    expect(tabs.get_by_role("link")).to_have_text(TABS)

    for label in TABS:
        page.locator("nav.managed-hub-tabs").get_by_role("link", name=label, exact=True).click()
        if label == "Spend limits":  # controls' own page for this account, outside the hub
            expect(page).to_have_url(
                live_server.url + reverse("controls_managed_limit", args=[manager.public_id, managed.public_id])
            )
            page.go_back()
            continue
        current = page.locator('nav.managed-hub-tabs a[aria-current="page"]')
        expect(current).to_have_text(label)
        expect(page.get_by_role("heading", level=1)).to_contain_text("Alpine Voice")
        expect(page.get_by_role("button", name="Log in as Alpine Voice")).to_be_visible()
        if label == "Balance and transfers":
            expect(page.get_by_text("Billed to you (roll-up)")).to_be_visible()
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "test_managed_hub_settings_tab.png"), full_page=True)

    # Back to the list: the row's own "Log in as" (a POST form) opens the account's dashboard.
    page.get_by_role("link", name="← Managed accounts").click()
    expect(page).to_have_url(list_url)
    row = page.locator("tr", has=page.get_by_role("link", name="Alpine Voice", exact=True))
    expect(row.get_by_role("link", name="Usage of Alpine Voice")).to_be_visible()
    expect(row.get_by_role("link", name="Disable Alpine Voice")).to_be_visible()
    row.get_by_role("button", name="Log in as Alpine Voice").click()
    expect(page).to_have_url(live_server.url + reverse("dashboard", args=[managed.public_id]))
    banner = page.locator(".acting-banner")
    expect(banner).to_contain_text("is logged in as Alpine Voice")

    banner.get_by_role("button", name="Return to Acme Reseller").click()
    expect(page).to_have_url(hub_url)
    expect(page.locator(".acting-banner")).to_have_count(0)
    expect(page.locator(".messages")).to_contain_text("You are back in Acme Reseller.")


def test_a_billing_member_sees_only_the_billing_tabs_and_no_log_in_as(page: Page, live_server):
    manager, _ = account_with_owner(name="Acme Reseller", manager_kind=True)
    managed, _ = account_with_owner(name="Alpine Voice", managed_kind=True, manager=manager)
    billing = UserFactory(email="books@acme.example.com")
    MembershipFactory(user=billing, account=manager, role=Role.BILLING)
    sign_in(page, billing.email)
    expect(page).to_have_url(live_server.url + reverse("dashboard", args=[manager.public_id]))

    page.goto(reverse("managed_invoices", args=[manager.public_id, managed.public_id]))
    expect(page.locator("nav.managed-hub-tabs").get_by_role("link")).to_have_text(["Invoices", "Balance and transfers"])
    expect(page.get_by_role("button", name="Log in as Alpine Voice")).to_have_count(0)
    page.locator("nav.managed-hub-tabs").get_by_role("link", name="Balance and transfers").click()
    expect(page.locator('nav.managed-hub-tabs a[aria-current="page"]')).to_have_text("Balance and transfers")
    expect(page.get_by_text("Billed to you (roll-up)")).to_be_visible()
