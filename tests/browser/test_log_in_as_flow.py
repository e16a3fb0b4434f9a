"""A manager's whole "log in as" journey, through the real pages in a real browser."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts.models import Account, AuditEvent, User
from tests.browser.conftest import SCREENSHOT_DIR
from tests.factories import PASSWORD, account_with_owner

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def url_of(live_server, name: str, *args) -> str:
    return live_server.url + reverse(name, args=args)


def sign_in(page: Page, email: str, password: str) -> None:
    page.goto(reverse("account_login"))
    page.locator('input[name="login"]').fill(email)
    page.locator('input[name="password"]').fill(password)
    page.get_by_role("button", name="Sign In").click()


def test_manager_creates_a_managed_account_logs_in_as_it_and_returns(page: Page, live_server):
    manager, owner = account_with_owner(name="Acme Reseller", manager_kind=True)
    full_name = f"{owner.first_name} {owner.last_name}"
    assert owner.first_name and owner.last_name  # the banner must show a real name, not the e-mail fallback
    new_name = "Blue Lagoon Telecom"
    new_email = "owner@bluelagoon.example.com"

    # Sign in through allauth's real form; home sends a single-account user to their dashboard.
    sign_in(page, owner.email, PASSWORD)
    expect(page).to_have_url(url_of(live_server, "dashboard", manager.public_id))
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Reseller")
    expect(page.locator(".acting-banner")).to_have_count(0)

    # Managed accounts: nothing yet.
    page.locator(".account-nav").get_by_role("link", name="Managed accounts", exact=True).click()
    expect(page).to_have_url(url_of(live_server, "managed_list", manager.public_id))
    expect(page.get_by_role("heading", level=1)).to_have_text("Managed accounts")
    empty = page.locator(".empty")
    expect(empty).to_contain_text("You have no managed accounts yet.")
    expect(page.get_by_text("0 of 3000 managed accounts in use.")).to_be_visible()

    # Create one, leaving the billing mode at its default.
    empty.get_by_role("link", name="Create a managed account").click()
    expect(page).to_have_url(url_of(live_server, "managed_create", manager.public_id))
    expect(page.get_by_role("heading", level=1)).to_have_text("Create a managed account")
    page.get_by_label("Business name").fill(new_name)
    page.get_by_label("Owner e-mail").fill(new_email)
    expect(page.get_by_label("Roll-up")).to_be_checked()
    page.get_by_role("button", name="Create managed account").click()

    # The managed account's detail page, under the manager.
    detail_pattern = re.compile(re.escape(f"{live_server.url}/a/{manager.public_id}/managed/") + UUID + "/$")
    expect(page).to_have_url(detail_pattern)
    detail_url = page.url
    expect(page.get_by_role("heading", level=1)).to_contain_text(new_name)
    expect(page.locator(".messages")).to_contain_text(f"Managed account {new_name} created.")
    expect(page.locator(".facts")).to_contain_text(new_email)
    expect(page.locator(".facts")).to_contain_text("Roll-up")
    expect(page.locator(".acting-banner")).to_have_count(0)

    managed_id = detail_url.rstrip("/").rsplit("/", 1)[-1]

    # Log in as it: the banner names the real person and the account, and we see its dashboard.
    page.get_by_role("button", name=f"Log in as {new_name}").click()
    expect(page).to_have_url(url_of(live_server, "dashboard", managed_id))
    banner = page.locator(".acting-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(full_name)
    expect(banner).to_contain_text(owner.email)
    expect(banner).to_contain_text(f"is logged in as {new_name}")
    expect(banner).to_contain_text("a managed account of Acme Reseller")
    expect(page.get_by_role("heading", level=1)).to_have_text(new_name)
    expect(page.locator(".page-head")).to_contain_text("managed by Acme Reseller")
    expect(page.locator(".who")).to_have_text(new_email)  # the session is now the managed account's owner
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    # The end-of-test screenshot (conftest) comes after the return, so keep one of the banner too.
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "test_manager_log_in_as_banner.png"), full_page=True)

    # Return: back on the manager's detail page of that managed account, banner gone.
    banner.get_by_role("button", name="Return to Acme Reseller").click()
    expect(page).to_have_url(detail_url)
    expect(page.locator(".acting-banner")).to_have_count(0)
    expect(page.get_by_role("heading", level=1)).to_contain_text(new_name)
    expect(page.locator(".messages")).to_contain_text("You are back in Acme Reseller.")
    expect(page.locator(".who")).to_have_text(owner.email)

    # The audit trail names the manager's real person for all three steps.
    managed = Account.objects.get(public_id=managed_id)
    assert managed.name == new_name
    assert managed.manager_id == manager.pk
    for change_type in ("managed_account.created", "log_in_as.started", "log_in_as.ended"):
        assert AuditEvent.objects.filter(change_type=change_type, user=owner, related_account=managed).exists(), (
            change_type,
            list(AuditEvent.objects.values_list("change_type", "user__email")),
        )


def test_create_form_with_empty_name_shows_errors_keeps_input_and_never_calls_an_email_taken(page: Page, live_server):
    manager, owner = account_with_owner(name="Acme Reseller", manager_kind=True)
    accounts_before = Account.objects.count()
    users_before = User.objects.count()

    sign_in(page, owner.email, PASSWORD)
    expect(page).to_have_url(url_of(live_server, "dashboard", manager.public_id))
    page.goto(reverse("managed_create", args=[manager.public_id]))

    page.get_by_label("Business name").fill("")
    page.get_by_label("Owner e-mail").fill(owner.email)  # already the manager owner's e-mail
    page.get_by_role("button", name="Create managed account").click()

    # Still on the form, with the typed e-mail kept and the errors shown.
    expect(page).to_have_url(url_of(live_server, "managed_create", manager.public_id))
    expect(page.get_by_role("heading", level=1)).to_have_text("Create a managed account")
    expect(page.get_by_label("Owner e-mail")).to_have_value(owner.email)
    expect(page.locator(".messages")).to_have_count(0)
    expect(page.get_by_text("This field is required.")).to_be_visible()
    assert Account.objects.count() == accounts_before
    assert User.objects.count() == users_before
    # A registered address is never called out (issue 11, hole 9): its user would be invited instead.
    expect(page.get_by_text("already exists")).to_have_count(0)
