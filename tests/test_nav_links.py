"""The account navigation offers exactly the pages a person may open.

For each persona, every link in the nav leads to a page that answers 200, and every section page
that answers 200 has its link in the nav: the links read the same permission flags
(`accounts.permissions.permissions_for`, as `access.can`) the pages' views check. Section pages are
the account's top-level pages; their sub-pages (a top-up, a new managed account, resale prices)
are reached from their section, not from the nav.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.models import Account, Membership, Role
from accounts.permissions import Permissions, permissions_for
from tests.conftest import World

SECTION_PAGES = (
    "dashboard",
    "usage_report",
    "usage_records",
    "balance",
    "payment_methods",
    "invoice_list",
    "resale_invoices",
    "billing_profile",
    "managed_list",
    "usage_upload",
    "rate_card",
    "controls_limits",
    "controls_own_limits",
    "members",
    "api_keys",
    "webhooks_endpoints",
    "notification_settings",
    "audit_log",
    "account_settings",
)
NAV = re.compile(r'<nav class="account-nav"[^>]*>(.*?)</nav>', re.S)
PERSON_PAGES = ("mfa_index",)  # the person's own pages (their sign-in security), in every account's nav
HREF = re.compile(r'href="([^"]+)"')

# The personas and the account whose portal they use.
MANAGER_PERSONAS = ("owner", "admin", "billing", "reporting")
PERSONA_ACCOUNTS = {**dict.fromkeys(MANAGER_PERSONAS, "manager"), "standard_owner": "standard"}


def nav_links(html: str) -> set[str]:
    found = NAV.search(html)
    assert found, "no account nav on the page"
    return set(HREF.findall(found.group(1))) - {reverse(name) for name in PERSON_PAGES}


def section_urls(account: Account) -> dict[str, str]:
    return {name: reverse(name, args=[account.public_id]) for name in SECTION_PAGES}


@pytest.mark.parametrize("name", list(PERSONA_ACCOUNTS))
def test_every_nav_link_opens_and_every_open_section_has_its_link(persona, world: World, name):
    client = persona(name)
    account = getattr(world, PERSONA_ACCOUNTS[name])
    urls = section_urls(account)
    links = nav_links(client.get(urls["dashboard"]).content.decode())

    open_pages = set()
    for page, url in urls.items():
        response = client.get(url)
        if response.status_code == 200:
            open_pages.add(url)
            assert nav_links(response.content.decode()) == links, f"{page}: the nav differs between pages"
        else:
            assert response.status_code in (403, 404), (page, response.status_code)

    assert links <= set(urls.values()), f"nav links outside the section pages: {links - set(urls.values())}"
    assert {p for p, u in urls.items() if u in links - open_pages} == set(), "nav links to pages that refuse"
    assert {p for p, u in urls.items() if u in open_pages - links} == set(), "open pages without a nav link"


def test_a_billing_member_sees_the_rates_link(persona, world: World):
    url = reverse("rate_card", args=[world.manager.public_id])
    client = persona("billing")
    assert url in nav_links(client.get(reverse("dashboard", args=[world.manager.public_id])).content.decode())
    assert client.get(url).status_code == 200


def test_a_reporting_member_has_no_rates_link(persona, world: World):
    url = reverse("rate_card", args=[world.manager.public_id])
    client = persona("reporting")
    assert url not in nav_links(client.get(reverse("dashboard", args=[world.manager.public_id])).content.decode())
    assert client.get(url).status_code == 403


def test_it_hides_the_rates_link_from_hidden_pricing_accounts(persona, world: World):
    world.managed.pricing_hidden = True
    world.managed.save(update_fields=["pricing_hidden"])
    url = reverse("rate_card", args=[world.managed.public_id])
    client = persona("managed_owner")
    assert url not in nav_links(client.get(reverse("dashboard", args=[world.managed.public_id])).content.decode())
    assert client.get(url).status_code == 404


# --- The flags themselves -----------------------------------------------------------------------------

FLAGS_ON_A_MANAGER = {
    # role: the flags that are True; every other flag is False
    Role.OWNER: {"view_account", "manage_account", "manage_managed_accounts", "view_billing", "manage_billing",
                 "resell", "view_reports", "submit_usage", "see_pricing", "view_rates", "log_in_as",
                 "grant_log_in_as"},
    Role.ADMIN: {"view_account", "manage_account", "manage_managed_accounts", "view_billing", "manage_billing",
                 "resell", "view_reports", "submit_usage", "see_pricing", "view_rates"},
    Role.BILLING: {"view_account", "view_billing", "manage_billing", "resell", "see_pricing", "view_rates"},
    Role.REPORTING: {"view_account", "view_reports", "see_pricing"},
}  # fmt: skip


def true_flags(flags: Permissions) -> set[str]:
    return {name for name, value in vars(flags).items() if value}


@pytest.mark.parametrize("role", list(FLAGS_ON_A_MANAGER))
def test_it_computes_each_roles_flags_on_a_manager_account(world: World, role):
    membership = Membership.objects.get(account=world.manager, role=role)
    assert true_flags(permissions_for(membership=membership)) == FLAGS_ON_A_MANAGER[role]


def test_it_lets_admins_log_in_as_only_when_the_owner_allows_it(world: World):
    membership = Membership.objects.get(account=world.manager, role=Role.ADMIN)
    world.manager.admins_can_log_in_as = True
    world.manager.save(update_fields=["admins_can_log_in_as"])
    membership.refresh_from_db()
    assert permissions_for(membership=membership).log_in_as


def test_it_offers_no_manager_flags_outside_manager_accounts(world: World):
    for account in (world.standard, world.managed):
        flags = permissions_for(membership=account.memberships.get(role=Role.OWNER))
        assert not (flags.manage_managed_accounts or flags.resell or flags.log_in_as or flags.grant_log_in_as), account


def test_it_hides_pricing_flags_from_hidden_pricing_accounts(world: World):
    world.managed.pricing_hidden = True
    world.managed.save(update_fields=["pricing_hidden"])
    flags = permissions_for(membership=world.managed.memberships.select_related("account").get(role=Role.OWNER))
    assert flags.view_billing and not flags.see_pricing and not flags.view_rates


def test_the_session_access_object_carries_the_flags(persona, world: World):
    response = persona("billing").get(reverse("dashboard", args=[world.manager.public_id]))
    assert response.context["access"].can == permissions_for(
        membership=Membership.objects.select_related("account").get(account=world.manager, role=Role.BILLING)
    )
