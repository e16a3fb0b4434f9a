"""The main pages as each persona sees them, in a real browser at 1400 px and 390 px (issue 14,
"Checked by"): nothing wider than the window, axe-core finds no serious or critical violation, and
below 800 px the navigation is a Menu that opens and whose links work.

Personas: the manager's owner, the manager's billing member, a separately billed managed account's
owner, a roll-up hidden-pricing managed account's owner, a standard account's owner, the manager's
owner logged in as a managed account, and platform staff (who land on the staff site). Every persona
is given every page of PAGES; a page it may not open (403 or 404) is skipped for it, and SKIPPED
names, for each persona, exactly which pages those are, so a page that starts refusing (or starts
being served) fails the test.

One browser and one world for the whole file, one context per persona, signed in once (the session comes from
Django's test client, as a signed-in browser holds it). axe runs at 1400 px, where the sidebar is
open (at 390 px the closed menu hides it from axe); the overflow check and the screenshot are
taken at both widths, by resizing the same page. Screenshots: var/screenshots/sweep/<persona>-<page>-<width>.png.
"""

from __future__ import annotations

import importlib
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.apps import apps
from django.conf import settings
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Browser, Page, expect

from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Membership, Role, User
from accounts.services import create_api_key, update_managed_account
from billing.invoices import builder
from billing.models import Invoice, Product
from billing.usage.services import ingest_usage
from controls.models import SpendLimit
from controls.services import set_spend_limit
from reporting.forms import today_utc
from tests.browser.conftest import SCREENSHOT_DIR
from tests.conftest import log_in_as
from tests.factories import AccountFactory, MembershipFactory, UserFactory, account_with_owner
from tests.mfa_support import force_login_with_mfa
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import create_endpoint

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDE, NARROW = 1400, 390
SWEEP_DIR = SCREENSHOT_DIR / "sweep"
LONG_NAME = "Supercalifragilisticexpialidocious" * 7 + "X" * (255 - 34 * 7)  # 255 characters, unbroken
AXE = Axe()


@dataclass
class World:
    manager: Account
    hub: Account  # the manager's roll-up managed account with the 255-character name: its hub is swept
    separate: Account  # billed separately
    hidden: Account  # roll-up, hidden pricing
    standard: Account
    users: dict[str, User]
    invoices: dict[int, Invoice]  # by bill-to account pk: one issued invoice each
    endpoints: dict[int, WebhookEndpoint]  # by account pk: one webhook endpoint with a delivery


@dataclass(frozen=True)
class Persona:
    user: str
    account: Callable[[World], Account]  # the account whose pages the persona opens
    acting: bool = False
    staff: bool = False


PERSONAS = {
    "manager-owner": Persona("owner", lambda w: w.manager),
    "manager-billing": Persona("billing", lambda w: w.manager),
    "separate-owner": Persona("separate_owner", lambda w: w.separate),
    "hidden-rollup-owner": Persona("hidden_owner", lambda w: w.hidden),
    "standard-owner": Persona("standard_owner", lambda w: w.standard),
    "manager-acting": Persona("owner", lambda w: w.hub, acting=True),
    "staff": Persona("staff", lambda w: w.manager, staff=True),
}


def _in(name: str, query: str = "") -> Callable[[World, Account], str]:
    return lambda w, a: reverse(name, args=[a.public_id]) + query


def _hub(name: str) -> Callable[[World, Account], str]:
    return lambda w, a: reverse(name, args=[a.public_id, w.hub.public_id])


def _usage(days: int) -> Callable[[World, Account], str]:
    def url(w: World, a: Account) -> str:
        end = today_utc() - timedelta(days=1) if days == 1 else today_utc()
        start = end - timedelta(days=days - 1)
        return reverse("usage_report", args=[a.public_id]) + f"?start={start}&end={end}"

    return url


def _limits(w: World, a: Account) -> str:
    name = "controls_limits" if a.is_manager else "controls_own_limits"
    return reverse(name, args=[a.public_id])


def _invoice(w: World, a: Account) -> str:
    invoice = w.invoices.get(a.pk) or w.invoices[w.manager.pk]  # another's invoice: a 404 for it
    return reverse("invoice_detail", args=[a.public_id, invoice.public_id])


def _deliveries(w: World, a: Account) -> str:
    endpoint = w.endpoints.get(a.pk) or w.endpoints[w.manager.pk]
    return reverse("webhooks_deliveries", args=[a.public_id, endpoint.public_id])


# The main pages, in the order a person would walk them.
PAGES: dict[str, Callable[[World, Account], str]] = {
    "landing": lambda w, a: reverse("home"),
    "overview": _in("dashboard"),
    "managed-list": _in("managed_list"),
    "hub-overview": _hub("managed_detail"),
    "hub-usage": _hub("managed_usage"),
    "hub-invoices": _hub("managed_invoices"),
    "hub-balance": _hub("managed_balance"),
    "hub-api-keys": _hub("managed_api_keys"),
    "hub-members": _hub("managed_members"),
    "hub-spend-limits": _hub("controls_managed_limit"),
    "hub-audit": _hub("managed_audit"),
    "hub-settings": _hub("managed_settings"),
    "managed-create": _in("managed_create"),
    "bulk-onboarding": _in("managed_onboarding"),
    "usage-one-day": _usage(1),
    "usage-year": _usage(365),
    "usage-records": _in("usage_records"),
    "balance": _in("balance"),
    "payments": _in("payment_history"),
    "payment-methods": _in("payment_methods"),
    "invoices": _in("invoice_list"),
    "invoice": _invoice,
    "reseller-invoices": _in("resale_invoices"),
    "rate-card": _in("rate_card"),
    "spend-limits": _limits,
    "api-keys": _in("api_keys"),
    "webhooks": _in("webhooks_endpoints"),
    "webhook-deliveries": _deliveries,
    "members": _in("members"),
    "security": lambda w, a: reverse("mfa_index"),
    "audit-log": _in("audit_log"),
    "account-settings": _in("account_settings"),
}
HUB = {key for key in PAGES if key.startswith("hub-")}
MANAGER_ONLY = HUB | {"managed-list", "managed-create", "bulk-onboarding", "reseller-invoices"}
OWN_ACCOUNT = {"api-keys", "webhooks", "webhook-deliveries", "members", "audit-log", "account-settings"}

# The pages each persona may not open (a 403 or 404), and why.
SKIPPED: dict[str, set[str]] = {
    "manager-owner": set(),
    # A billing member: money (balance, payments, invoices, reseller invoices, the hub's billing
    # tabs, rates), not the managed accounts, usage reports, developers' pages or settings.
    "manager-billing": (HUB - {"hub-invoices", "hub-balance"})
    | {"managed-list", "managed-create", "bulk-onboarding", "spend-limits", "usage-one-day", "usage-year"}
    | {"usage-records"}
    | OWN_ACCOUNT,
    # A separately billed managed account: its own money and limits; no managed accounts of its own.
    "separate-owner": MANAGER_ONLY,
    # A roll-up account is billed by its manager: no balance or payments of its own, its manager's
    # invoices to it; hidden pricing: no rate card; its manager sets its limits.
    "hidden-rollup-owner": MANAGER_ONLY | {"rate-card", "spend-limits"},
    "standard-owner": MANAGER_ONLY | {"spend-limits"},
    # Logged in as a roll-up managed account (pricing shown): its pages, never the owner's sign-in.
    "manager-acting": MANAGER_ONLY | {"spend-limits", "security"},
    # Platform staff belong to no account: they land on the staff site and have their own sign-in.
    "staff": set(PAGES) - {"landing", "security"},
}


def _catalogue() -> None:
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)  # flushed by earlier tests


@pytest.fixture
def world(transactional_db, live_server) -> World:
    """A manager with a roll-up account named with 255 unbroken characters (the hub swept), a
    separately billed and a hidden-pricing roll-up account, a standard account; usage last month
    (invoiced, reseller invoices issued) and yesterday; an API key, a spend limit, a webhook endpoint
    with a delivery per account; a billing member and platform staff."""
    _catalogue()
    manager, owner = account_with_owner(name="Acme Reseller", manager_kind=True)
    hub, _ = account_with_owner(name=LONG_NAME, managed_kind=True, manager=manager)
    separate, separate_owner = account_with_owner(
        name="Blue Harbor Telecom", managed_kind=True, manager=manager, billing_mode=Account.BillingMode.SEPARATE
    )
    hidden, hidden_owner = account_with_owner(
        name="Cedar Voice", managed_kind=True, manager=manager, pricing_hidden=True
    )
    standard, standard_owner = account_with_owner(name="Solo Standard")
    Membership.objects.create(
        user=owner, account=AccountFactory(name="Acme Labs"), role=Role.OWNER
    )  # so the switcher shows
    billing = UserFactory(email="billing@acme.example.com")
    MembershipFactory(user=billing, account=manager, role=Role.BILLING)
    staff = UserFactory(email="staff@platform.example.com", is_staff=True, is_superuser=True)
    Account.objects.update(created_at=datetime(2025, 1, 1, tzinfo=UTC))
    actor = Actor(user=owner)

    last_month = (today_utc().replace(day=1) - timedelta(days=1)).replace(day=1)
    moments = {
        "last": f"{last_month + timedelta(days=9)}T12:00:00Z",
        "yday": f"{today_utc() - timedelta(days=1)}T10:00:00Z",
    }
    products = (("sms.outbound", "120"), ("voice.outbound", "42.5"))
    rows = [
        {"account": str(a.public_id), "product": p, "quantity": q, "started_at": at,
         "idempotency_key": f"{k}-{a.pk}-{p}"}
        for k, at in moments.items() for a in (manager, hub, separate, hidden) for p, q in products
    ]  # fmt: skip
    assert ingest_usage(submitter=manager, rows=rows, source="api", actor=actor).accepted == len(rows)
    own = [
        {"product": p, "quantity": q, "started_at": at, "idempotency_key": f"{k}-std-{p}"}
        for k, at in moments.items() for p, q in products
    ]  # fmt: skip
    assert ingest_usage(submitter=standard, rows=own, source="api", actor=Actor(user=standard_owner)).accepted == 4
    invoices = {a.pk: builder.invoice_party(account=a, month=last_month) for a in (manager, separate, standard)}
    invoices |= {i.bill_to_id: i for i in Invoice.objects.resale().filter(issuer=manager, period=last_month)}

    create_api_key(account=manager, name="Production switch", actor=actor)
    update_managed_account(managed=hub, actor=actor, name=LONG_NAME[:-1] + "Y")
    set_spend_limit(
        account=hub,
        set_by=SpendLimit.SetBy.MANAGER,
        product=Product.objects.get(sku="sms.outbound"),
        monthly_amount=Decimal("500.00"),
        daily_amount=None,
        action=SpendLimit.Action.ALERT,
        actor=actor,
    )
    endpoints = {}
    for account in (manager, hub, separate, hidden, standard):
        endpoint, _secret = create_endpoint(
            account=account,
            url="https://hooks.example.com/mission-control",
            event_types=["managed_account.updated"] if account.is_manager else ["service.blocked"],
            actor=actor,
        )
        event = AuditEvent.objects.filter(account=account).latest("created_at")
        WebhookDelivery.objects.create(
            endpoint=endpoint,
            event=event,
            event_type="managed_account.updated",
            data={"event_type": "managed_account.updated", "payload": {"name": account.name}},
            status=WebhookDelivery.Status.DELIVERED,
            attempts=1,
            response_code=200,
            last_attempt_at=datetime.now(UTC),
        )
        endpoints[account.pk] = endpoint
    users = {
        "owner": owner,
        "billing": billing,
        "separate_owner": separate_owner,
        "hidden_owner": hidden_owner,
        "standard_owner": standard_owner,
        "staff": staff,
    }
    hub.refresh_from_db()
    return World(manager, hub, separate, hidden, standard, users, invoices, endpoints)


def signed_in_page(browser: Browser, live_server, world: World, persona: Persona) -> Page:
    """A browser context holding the persona's session: signed in by Django's test client (staff
    with a passed MFA step, as the staff site asks; the acting manager through the log-in-as POST)."""
    client = Client()
    user = world.users[persona.user]
    if persona.staff:
        force_login_with_mfa(client, user)
    else:
        client.force_login(user)
    if persona.acting:
        assert log_in_as(client, world.manager, world.hub).status_code == 302
    context = browser.new_context(base_url=live_server.url, viewport={"width": WIDE, "height": 900})
    context.set_default_timeout(10_000)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])
    return context.new_page()


def overflow(page: Page) -> str | None:
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return f"{scroll} px wide in a {inner} px window" if scroll > inner else None


def serious_violations(page: Page) -> list[str]:
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:4]}"
        for v in AXE.run(page).response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def screenshot(page: Page, name: str) -> None:
    page.screenshot(path=str(SWEEP_DIR / f"{name}.png"), full_page=True)


def check_menu(page: Page, persona: str, world: World) -> None:
    """At 390 px the sidebar is a closed Menu; opened, its second link (the first after the
    overview) leads to its page, which starts with the menu closed again."""
    page.set_viewport_size({"width": NARROW, "height": 900})
    page.goto(PAGES["overview"](world, PERSONAS[persona].account(world)))
    links = page.locator(".account-nav a")
    expect(links.first).to_be_hidden()
    page.get_by_text("Menu", exact=True).click()
    target = links.nth(1)
    expect(target).to_be_visible()
    href = target.get_attribute("href")
    screenshot(page, f"{persona}-menu-open-{NARROW}")
    target.click()
    page.wait_for_url(f"**{href}")
    expect(links.first).to_be_hidden()
    page.set_viewport_size({"width": WIDE, "height": 900})


def sweep(page: Page, world: World, persona: str, clock: dict[str, float]) -> tuple[set[str], list[str]]:
    """Every page of PAGES as `persona`: the pages it was refused, and the problems found."""
    account = PERSONAS[persona].account(world)
    refused: set[str] = set()
    problems: list[str] = []
    for key, url_of in PAGES.items():
        url = url_of(world, account)
        started = time.perf_counter()
        response = page.goto(url)
        clock["load"] += time.perf_counter() - started
        assert response is not None
        if response.status in (403, 404):
            refused.add(key)
            continue
        assert response.status == 200, f"{persona} {key}: {url} answered {response.status}"
        for width in (WIDE, NARROW):
            page.set_viewport_size({"width": width, "height": 900})
            too_wide = overflow(page)
            if too_wide:
                problems.append(f"{persona} {key} at {width} px ({page.url}): {too_wide}")
            if width == WIDE:
                started = time.perf_counter()
                problems += [f"{persona} {key} ({page.url}): {v}" for v in serious_violations(page)]
                clock["axe"] += time.perf_counter() - started
            started = time.perf_counter()
            screenshot(page, f"{persona}-{key}-{width}")
            clock["screenshots"] += time.perf_counter() - started
        page.set_viewport_size({"width": WIDE, "height": 900})
        clock["pages"] += 1
    return refused, problems


def test_each_personas_main_pages_fit_both_widths_and_pass_axe(browser, live_server, world: World):
    """One test for every persona, so that the world is built once: each persona's problems and
    unexpected refusals are gathered and reported together."""
    SWEEP_DIR.mkdir(parents=True, exist_ok=True)
    clock: dict[str, float] = defaultdict(float)
    problems: list[str] = []
    for persona in PERSONAS:
        page = signed_in_page(browser, live_server, world, PERSONAS[persona])
        try:
            refused, found = sweep(page, world, persona, clock)
            problems += found
            if refused != SKIPPED[persona]:
                problems.append(
                    f"{persona}: refused {sorted(refused - SKIPPED[persona])} that SKIPPED does not name; "
                    f"served {sorted(SKIPPED[persona] - refused)} that SKIPPED names"
                )
            if not PERSONAS[persona].staff:
                check_menu(page, persona, world)
        finally:
            page.context.close()
    print(
        f"persona sweep: {int(clock['pages'])} pages; "
        + ", ".join(f"{k} {v:.1f} s" for k, v in clock.items() if k != "pages")
    )
    assert problems == [], "\n".join(problems)
