"""The portal's layout in a real browser, at a desktop width (1400 px) and a phone's (390 px).

On the main pages (and the sign-in page) nothing is wider than the window, a 255-character
unbroken account name included; below 800 px the sidebar is a Menu that opens; the current page is
marked; a billing member's navigation shows Billing and no Members; axe-core finds no serious or
critical accessibility violation. Screenshots of every page at both widths are left in
var/screenshots/layout-<page>-<width>.png for a person to look at.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.apps import apps
from django.urls import reverse
from playwright.sync_api import Browser, Page, expect

from accounts.actor import Actor
from accounts.models import Account, Membership, Role, User
from accounts.services import create_api_key
from billing.invoices import builder
from billing.usage.services import ingest_usage
from reporting.forms import today_utc
from tests.browser.conftest import SCREENSHOT_DIR
from tests.factories import PASSWORD, AccountFactory, MembershipFactory, UserFactory, account_with_owner

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (1400, 390)
LONG_NAME = "Supercalifragilisticexpialidocious" * 7 + "X" * (255 - 34 * 7)  # 255 characters, unbroken
MAIN_PAGES = (
    "dashboard",
    "managed_list",
    "usage_report",
    "balance",
    "invoice_list",
    "members",
    "api_keys",
    "audit_log",
)
SIGNED_OUT_PAGES = {"account_login": "Sign In", "account_signup": "Sign Up", "account_reset_password": "Password Reset"}
AXE = Axe()


@dataclass
class Portal:
    manager: Account
    owner: User
    billing: User
    long_named: Account


@pytest.fixture
def portal(transactional_db) -> Portal:
    """A manager with a few managed accounts (one named with 255 unbroken characters), usage last
    month (invoiced) and yesterday (charted), an API key, a billing member, and a second account of
    the owner's (so the switcher shows)."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)  # flushed by earlier tests
    manager, owner = account_with_owner(name="Acme Reseller", manager_kind=True)
    long_named, _ = account_with_owner(name=LONG_NAME, managed_kind=True, manager=manager)
    separate, _ = account_with_owner(
        name="Blue Harbor Telecom", managed_kind=True, manager=manager, billing_mode=Account.BillingMode.SEPARATE
    )
    account_with_owner(name="Cedar Networks", managed_kind=True, manager=manager, status=Account.Status.DISABLED)
    Membership.objects.create(user=owner, account=AccountFactory(name="Solo Standard"), role=Role.OWNER)
    billing = UserFactory(email="billing@acme.example.com")
    MembershipFactory(user=billing, account=manager, role=Role.BILLING)
    Account.objects.update(created_at=datetime(2025, 1, 1, tzinfo=UTC))

    last_month = (today_utc().replace(day=1) - timedelta(days=1)).replace(day=1)
    moments = {
        "last-month": f"{last_month + timedelta(days=9)}T12:00:00Z",
        "yesterday": f"{today_utc() - timedelta(days=1)}T10:00:00Z",
    }
    rows = [
        {"account": str(account.public_id), "product": product, "quantity": quantity, "started_at": at,
         "idempotency_key": f"{when}-{account.pk}-{product}"}
        for when, at in moments.items()
        for account in (manager, long_named, separate)
        for product, quantity in (("sms.outbound", "120"), ("voice.outbound", "42.5"))
    ]  # fmt: skip
    result = ingest_usage(submitter=manager, rows=rows, source="api", actor=Actor(user=owner))
    assert result.accepted == len(rows), result
    builder.invoice_party(account=manager, month=last_month)
    create_api_key(account=manager, name="Production switch", actor=Actor(user=owner))
    return Portal(manager, User.objects.get(pk=owner.pk), billing, long_named)


def new_page(browser: Browser, live_server, width: int) -> Page:
    context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 900})
    context.set_default_timeout(10_000)
    return context.new_page()


def sign_in(page: Page, email: str) -> None:
    page.goto(reverse("account_login"))
    page.locator('input[name="login"]').fill(email)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page.locator(".who")).to_have_text(email)


def assert_no_horizontal_overflow(page: Page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{page.url} is {widths[0]} px wide in a {widths[1]} px window"


def assert_no_serious_violations(page: Page) -> None:
    violations = AXE.run(page).response["violations"]
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{page.url}: {serious}"


def screenshot(page: Page, name: str, width: int) -> None:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"layout-{name}-{width}.png"), full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_main_pages_fit_the_window_and_pass_axe(browser, live_server, portal: Portal, width):
    page = new_page(browser, live_server, width)
    try:
        for name, heading in SIGNED_OUT_PAGES.items():
            page.goto(reverse(name))
            expect(page.get_by_role("heading", level=1)).to_have_text(heading)
            assert_no_horizontal_overflow(page)
            assert_no_serious_violations(page)
            screenshot(page, name.replace("account_", "").replace("_", "-"), width)

        sign_in(page, portal.owner.email)
        for name in MAIN_PAGES:
            page.goto(reverse(name, args=[portal.manager.public_id]))
            expect(page.locator(".account-nav a[aria-current=page]")).to_have_count(1)
            assert_no_horizontal_overflow(page)
            assert_no_serious_violations(page)
            screenshot(page, name.replace("_", "-"), width)
        page.goto(reverse("mfa_index"))  # the person's own security: allauth's page in the portal
        expect(page.locator(".account-nav a[aria-current=page]")).to_have_count(1)
        assert_no_horizontal_overflow(page)
        assert_no_serious_violations(page)
        screenshot(page, "security", width)
        # The 255-character name is on the managed accounts list, wrapped inside its cell.
        page.goto(reverse("managed_list", args=[portal.manager.public_id]))
        expect(page.locator("main table")).to_contain_text(LONG_NAME)
        assert_no_horizontal_overflow(page)
    finally:
        page.context.close()


def test_below_800_px_the_navigation_is_a_menu_that_opens(browser, live_server, portal: Portal):
    page = new_page(browser, live_server, 390)
    try:
        sign_in(page, portal.owner.email)
        page.goto(reverse("dashboard", args=[portal.manager.public_id]))
        invoices = page.locator(".account-nav").get_by_role("link", name="Invoices", exact=True)
        expect(invoices).to_be_hidden()
        page.get_by_text("Menu", exact=True).click()
        expect(invoices).to_be_visible()
        screenshot(page, "menu-open", 390)
        invoices.click()
        expect(page).to_have_url(reverse("invoice_list", args=[portal.manager.public_id]))
        expect(invoices).to_be_hidden()  # a new page starts with the menu closed again
        page.get_by_text("Menu", exact=True).click()
        expect(invoices).to_have_attribute("aria-current", "page")
    finally:
        page.context.close()


def test_the_current_page_is_marked_to_the_eye_and_to_screen_readers(browser, live_server, portal: Portal):
    page = new_page(browser, live_server, 1400)
    try:
        sign_in(page, portal.owner.email)
        page.goto(reverse("balance", args=[portal.manager.public_id]))
        nav = page.locator(".account-nav")
        balance = nav.get_by_role("link", name="Balance", exact=True)
        invoices = nav.get_by_role("link", name="Invoices", exact=True)
        expect(balance).to_have_attribute("aria-current", "page")
        expect(invoices).not_to_have_attribute("aria-current", "page")
        style = "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).borderLeftColor]"
        assert balance.evaluate(style) != invoices.evaluate(style)
        # A page under a section marks the section: a managed account's page, Managed accounts.
        page.goto(reverse("managed_detail", args=[portal.manager.public_id, portal.long_named.public_id]))
        expect(nav.locator("a[aria-current=page]")).to_have_text("Managed accounts")
        assert_no_horizontal_overflow(page)
    finally:
        page.context.close()


def test_a_billing_member_sees_billing_but_not_members(browser, live_server, portal: Portal):
    page = new_page(browser, live_server, 1400)
    try:
        sign_in(page, portal.billing.email)
        page.goto(reverse("dashboard", args=[portal.manager.public_id]))
        nav = page.locator(".account-nav")
        expect(nav.get_by_text("Billing", exact=True)).to_be_visible()
        expect(nav.get_by_role("link", name="Invoices", exact=True)).to_be_visible()
        expect(nav.get_by_role("link", name="Members", exact=True)).to_have_count(0)
        expect(nav.get_by_role("link", name="API keys", exact=True)).to_have_count(0)
        screenshot(page, "billing-member-dashboard", 1400)
    finally:
        page.context.close()


def test_the_switcher_finds_one_account_among_many_as_one_types(browser, live_server, portal: Portal):
    extra = Account.objects.bulk_create(Account(name=f"Customer {i:04d}", email=f"c{i}@example.com") for i in range(40))
    Membership.objects.bulk_create(Membership(user=portal.owner, account=a, role=Role.ADMIN) for a in extra)
    page = new_page(browser, live_server, 1400)
    try:
        sign_in(page, portal.owner.email)
        page.goto(reverse("dashboard", args=[portal.manager.public_id]))
        page.locator(".switcher summary").click()
        results = page.locator(".switcher-results")
        expect(results.locator("li")).to_have_count(8)
        page.get_by_label("Find an account").press_sequentially("0025")
        expect(results.locator(".switcher-result-name")).to_have_text(["Customer 0025"])
        screenshot(page, "switcher-search", 1400)
        # The results are a listbox whose options are still links (static/js/portal.js): a click opens one.
        results.get_by_role("option").click()
        expect(page).to_have_url(reverse("dashboard", args=[extra[25].public_id]))
        # And from the keyboard: the focus stays in the box, Arrow Down picks the match, Enter opens it.
        page.locator(".switcher summary").click()
        page.get_by_label("Find an account").press_sequentially("0031")
        expect(results.locator(".switcher-result-name")).to_have_text(["Customer 0031"])
        page.get_by_label("Find an account").press("ArrowDown")
        expect(results.get_by_role("option", selected=True)).to_have_count(1)
        page.get_by_label("Find an account").press("Enter")
        expect(page).to_have_url(reverse("dashboard", args=[extra[31].public_id]))
    finally:
        page.context.close()
