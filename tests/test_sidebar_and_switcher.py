"""The sidebar (grouped sections, the current page marked, only what the person may open) and the
account switcher's search (the person's own accounts only, a page at a time, as fast at 3,000
accounts as at 3)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Account, Membership, Role
from tests.conftest import World
from tests.factories import UserFactory, account_with_owner

NAV = re.compile(r'<nav class="account-nav"[^>]*>(.*?)</nav>', re.S)
CURRENT = re.compile(r'<a href="([^"]+)" aria-current="page"')
HEADINGS = re.compile(r'<p class="nav-heading"[^>]*>([^<]+)</p>')
LINK_TEXT = re.compile(r"<a [^>]*>([^<]+)</a>")


def nav_html(response) -> str:
    assert response.status_code == 200
    found = NAV.search(response.content.decode())
    assert found, "no sidebar navigation"
    return found.group(1)


def member_of(count: int, prefix: str = "Customer") -> tuple[Client, list[Account]]:
    """A person who belongs to `count` accounts (as a manager's staff member would), signed in."""
    user = UserFactory()
    accounts = Account.objects.bulk_create(
        Account(name=f"{prefix} {i:04d}", email=f"{prefix.lower()}{i}@example.com") for i in range(count)
    )
    Membership.objects.bulk_create(Membership(user=user, account=a, role=Role.ADMIN) for a in accounts)
    client = Client()
    client.force_login(user)
    return client, accounts


# --- The sidebar --------------------------------------------------------------------------------------


def test_it_groups_the_owners_pages_as_a_reseller_thinks(persona, world: World):
    nav = nav_html(persona("owner").get(reverse("dashboard", args=[world.manager.public_id])))
    assert HEADINGS.findall(nav) == ["Usage", "Billing", "Developers", "Settings"]
    assert LINK_TEXT.findall(nav) == [
        "Overview",
        "Managed accounts",
        "Usage reports",
        "Usage records",
        "Upload usage",
        "Balance",
        "Payments",
        "Invoices",
        "Reseller invoices",
        "Billing profile",
        "Rates",
        "Spend limits",
        "API keys",
        "Webhooks",
        "Members",
        "Security",
        "Notifications",
        "Audit log",
        "Account settings",
    ]


@pytest.mark.parametrize(
    ("url_name", "marked"),
    [
        ("dashboard", "dashboard"),
        ("invoice_list", "invoice_list"),
        ("payment_history", "payment_methods"),  # a page under Payments
        ("auto_recharge", "payment_methods"),
        ("members", "members"),
        ("audit_log", "audit_log"),
        ("usage_records", "usage_records"),
    ],
)
def test_it_marks_the_current_page_and_only_it(persona, world: World, url_name, marked):
    client = persona("owner")
    nav = nav_html(client.get(reverse(url_name, args=[world.manager.public_id])))
    assert CURRENT.findall(nav) == [reverse(marked, args=[world.manager.public_id])]


def test_a_managed_accounts_page_marks_managed_accounts(persona, world: World):
    url = reverse("managed_detail", args=[world.manager.public_id, world.managed.public_id])
    nav = nav_html(persona("owner").get(url))
    assert CURRENT.findall(nav) == [reverse("managed_list", args=[world.manager.public_id])]


def test_a_billing_member_sees_billing_but_not_members(persona, world: World):
    nav = nav_html(persona("billing").get(reverse("dashboard", args=[world.manager.public_id])))
    assert "Billing" in HEADINGS.findall(nav)
    links = LINK_TEXT.findall(nav)
    assert {"Balance", "Invoices", "Reseller invoices", "Payments"} <= set(links)
    assert not {"Members", "API keys", "Audit log", "Account settings", "Usage reports"} & set(links)


def test_a_reporting_member_sees_usage_and_no_billing(persona, world: World):
    nav = nav_html(persona("reporting").get(reverse("dashboard", args=[world.manager.public_id])))
    assert "Billing" not in HEADINGS.findall(nav)
    assert {"Usage reports", "Usage records"} <= set(LINK_TEXT.findall(nav))


def test_a_manager_acting_has_no_security_link_for_the_owner(persona, world: World):
    nav = nav_html(persona("manager_acting").get(reverse("dashboard", args=[world.managed.public_id])))
    assert "Security" not in LINK_TEXT.findall(nav)
    assert "Managed accounts" not in LINK_TEXT.findall(nav)


def test_the_security_pages_mark_security(persona):
    nav = nav_html(persona("owner").get(reverse("mfa_index")))
    assert CURRENT.findall(nav) == [reverse("mfa_index")]


# --- The account switcher ------------------------------------------------------------------------------


def test_the_sidebar_counts_every_account_and_lists_a_few(db):
    client, accounts = member_of(45)
    html = client.get(reverse("dashboard", args=[accounts[0].public_id])).content.decode()
    assert "45 accounts" in html
    listed = re.findall(r'class="switcher-result-name">([^<]+)<', html)
    assert listed == [f"Customer {i:04d}" for i in range(8)]
    assert "All 45 accounts" in html


def test_it_searches_only_the_persons_own_accounts(db):
    client, _ = member_of(12)
    account_with_owner(name="Customer 0003 of someone else")
    answer = client.get(reverse("account_switcher"), {"q": "0003", "format": "json"}).json()
    assert [found["name"] for found in answer["data"]] == ["Customer 0003"]
    assert answer["meta"] == {"page_number": 1, "total_pages": 1, "total_results": 1}
    assert answer["data"][0]["url"].startswith("/a/")


def test_it_answers_a_page_at_a_time(db):
    client, _ = member_of(45)
    answer = client.get(reverse("account_switcher"), {"q": "customer", "format": "json", "page": 3}).json()
    assert answer["meta"] == {"page_number": 3, "total_pages": 3, "total_results": 45}
    assert [found["name"] for found in answer["data"]] == [f"Customer {i:04d}" for i in range(40, 45)]


def test_it_shows_disabled_accounts_with_their_status(db):
    client, accounts = member_of(3)
    Account.objects.filter(pk=accounts[1].pk).update(status=Account.Status.DISABLED)
    answer = client.get(reverse("account_switcher"), {"format": "json"}).json()
    assert [(found["name"], found["status_label"]) for found in answer["data"]] == [
        ("Customer 0000", "Enabled"),
        ("Customer 0001", "Disabled"),
        ("Customer 0002", "Enabled"),
    ]


def test_the_search_page_works_without_script(db):
    client, _ = member_of(30)
    response = client.get(reverse("account_switcher"), {"q": "Customer 002"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "10 accounts matching" in html
    assert html.count('class="badge badge-enabled"') == 10
    assert client.get(reverse("account_switcher"), {"q": "nothing like it"}).content.decode().count("No account") == 1


def test_it_needs_a_signed_in_person(client):
    response = client.get(reverse("account_switcher"), {"format": "json"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


def test_pages_run_as_many_queries_at_3000_accounts_as_at_3(db):
    counts = {}
    for size in (3, 3000):
        client, accounts = member_of(size, prefix=f"Size{size}")
        url = reverse("dashboard", args=[accounts[0].public_id])
        client.get(url)  # warm the session
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        counts[size] = len(queries)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("account_switcher"), {"q": "1", "format": "json"}).status_code == 200
        counts[f"search {size}"] = len(queries)
    assert counts[3] == counts[3000] and counts["search 3"] == counts["search 3000"], counts


# --- The person's own pages, outside any account ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url_name", "current"),
    [
        ("mfa_index", "Two-factor authentication"),
        ("account_change_password", "Password"),
        ("account_email", "E-mail addresses"),
    ],
)
def test_the_sign_in_pages_list_the_persons_accounts_and_their_sign_in_pages(persona, world: World, url_name, current):
    Membership.objects.create(user=world.users["owner"], account=world.standard, role=Role.ADMIN)
    nav = nav_html(persona("owner").get(reverse(url_name)))

    assert HEADINGS.findall(nav) == ["Your accounts", "Your sign-in"]
    assert LINK_TEXT.findall(nav) == [
        "Acme Reseller",
        "Solo Standard",
        "Two-factor authentication",
        "Password",
        "E-mail addresses",
    ]
    assert f'href="{reverse("dashboard", args=[world.manager.public_id])}"' in nav
    assert CURRENT.findall(nav) == [reverse(url_name)]


def test_the_sign_in_pages_link_to_every_account_beyond_the_first_few(db):
    client, _ = member_of(12)
    nav = nav_html(client.get(reverse("mfa_index")))

    assert LINK_TEXT.findall(nav)[8] == "All 12 accounts"


def test_platform_staff_find_the_staff_site_in_the_sidebar(db):
    staff = UserFactory(is_staff=True)
    client = Client()
    client.force_login(staff)

    nav = nav_html(client.get(reverse("mfa_index")))

    assert "Platform staff" in HEADINGS.findall(nav)
    assert f'href="{reverse("admin:index")}"' in nav


# --- Two accounts of one name ----------------------------------------------------------------------------


def twins(client_accounts: tuple[Client, list[Account]]) -> tuple[Client, list[Account]]:
    client, accounts = client_accounts
    Account.objects.filter(pk__in=[accounts[0].pk, accounts[1].pk]).update(name="Alpine Voice")
    Account.objects.filter(pk=accounts[1].pk).update(name="alpine voice")  # case aside, the same name
    return client, accounts


def test_the_switcher_shows_the_owner_email_beside_a_name_two_accounts_share(db):
    client, accounts = twins(member_of(4))
    html = client.get(reverse("dashboard", args=[accounts[2].public_id])).content.decode()

    metas = re.findall(r'class="switcher-result-meta">([^<]*)<', html)
    assert sum(accounts[0].email in meta for meta in metas) == 1
    assert sum(accounts[1].email in meta for meta in metas) == 1
    assert not any(accounts[2].email in meta or accounts[3].email in meta for meta in metas)


def test_the_type_ahead_answers_the_owner_email_of_a_shared_name_only(db):
    client, accounts = twins(member_of(4))
    answer = client.get(reverse("account_switcher"), {"format": "json"}).json()

    emails = {found["name"]: found["owner_email"] for found in answer["data"]}
    assert emails["Alpine Voice"] == accounts[0].email and emails["alpine voice"] == accounts[1].email
    assert emails["Customer 0002"] is None and emails["Customer 0003"] is None


def test_the_search_page_shows_the_owner_email_of_a_shared_name(db):
    client, accounts = twins(member_of(4))
    html = client.get(reverse("account_switcher"), {"q": "alpine"}).content.decode()

    assert html.count('class="help owner-email"') == 2 and accounts[0].email in html


def test_shared_names_cost_no_more_queries_at_3000_accounts(db):
    counts = {}
    for size in (3, 3000):
        client, accounts = twins(member_of(size, prefix=f"Twin{size}"))
        for name in ("dashboard", "account_switcher"):
            url = reverse(name, args=[accounts[2].public_id]) if name == "dashboard" else reverse(name)
            client.get(url)
            with CaptureQueriesContext(connection) as queries:
                assert client.get(url, {"format": "json"} if name != "dashboard" else {}).status_code == 200
            counts[(name, size)] = len(queries)
    assert counts[("dashboard", 3)] == counts[("dashboard", 3000)], counts
    assert counts[("account_switcher", 3)] == counts[("account_switcher", 3000)], counts
