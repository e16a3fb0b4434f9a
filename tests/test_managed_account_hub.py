"""A managed account's page is its hub (issue 14, item 3): tabs for its overview, usage, invoices,
balance and transfers, API keys, members, spend limits, audit and settings, each from the same
selectors as the account's own pages, with "Log in as" on every tab; and row actions on the list."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, Membership, Role
from billing.invoices.builder import invoice_party
from billing.ledger import services as ledger
from billing.models import Invoice
from billing.money import format_money
from billing.usage.services import ingest_usage
from tests.conftest import make_managed_accounts
from tests.factories import MembershipFactory, UserFactory

STAFF = Actor.platform_staff()
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
TABS = {
    "managed_detail": "Overview",
    "managed_usage": "Usage",
    "managed_invoices": "Invoices",
    "managed_balance": "Balance and transfers",
    "managed_api_keys": "API keys",
    "managed_members": "Members",
    "controls_managed_limit": "Spend limits",
    "managed_audit": "Audit",
    "managed_settings": "Settings",
}
HUB_PAGES = list(TABS)  # the Spend limits tab is controls' page, with the hub's header and tab bar
BILLING_TABS = ["managed_invoices", "managed_balance"]


def tab_url(name: str, manager: Account, managed: Account) -> str:
    return reverse(name, args=[manager.public_id, managed.public_id])


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def tab_bar(page: str) -> list[tuple[str, bool]]:
    """(label, is current) of each tab in the hub's tab bar."""
    nav = re.search(r'<nav class="subnav managed-hub-tabs"[^>]*>(.*?)</nav>', page)
    assert nav, "no tab bar"
    return [
        (label, bool(current))
        for current, label in re.findall(r'<a href="[^"]+"( aria-current="page")?>([^<]+)</a>', nav.group(1))
    ]


def log_in_as_button(managed: Account) -> str:
    return f"Log in as {managed.name}</button>"


def separate(account: Account) -> Account:
    Account.objects.filter(pk=account.pk).update(billing_mode=Account.BillingMode.SEPARATE)
    account.refresh_from_db()
    return account


def usage(manager: Account, managed: Account, count: int, *, day: date, key: str = "hub") -> None:
    owner = Membership.objects.filter(account=manager, role=Role.OWNER).select_related("user").get()
    rows = [
        {
            "account": str(managed.public_id),
            "product": ("voice.outbound", "sms.outbound")[n % 2],
            "quantity": str(n + 1),
            "started_at": f"{day.isoformat()}T{n % 24:02d}:00:00Z",
            "idempotency_key": f"{key}-{managed.pk}-{day}-{n}",
        }
        for n in range(count)
    ]
    ingest_usage(submitter=manager, rows=rows, source="api", actor=Actor(user=owner.user))


# --- The owner walks the tabs ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", HUB_PAGES)
def test_every_tab_shows_the_tab_bar_with_itself_current_and_log_in_as(world, persona, name):
    response = persona("owner").get(tab_url(name, world.manager, world.managed))

    assert response.status_code == 200
    page = text(response)
    bar = tab_bar(page)
    assert [label for label, _ in bar] == list(TABS.values())
    assert [label for label, current in bar if current] == [TABS[name]]
    assert log_in_as_button(world.managed) in page
    assert f'action="{tab_url("managed_log_in_as", world.manager, world.managed)}"' in page


def test_the_tab_bar_links_to_each_tab_and_to_controls_spend_limits(world, persona):
    page = text(persona("owner").get(tab_url("managed_detail", world.manager, world.managed)))

    for name in TABS:
        assert f'href="{tab_url(name, world.manager, world.managed)}"' in page, name


def test_an_admin_without_the_grant_is_told_why_on_every_tab(world, persona):
    client = persona("admin")
    for name in HUB_PAGES:
        page = text(client.get(tab_url(name, world.manager, world.managed)))
        assert log_in_as_button(world.managed) not in page, name
        assert "Log in as: Only the manager account&#x27;s owners (or admins the owner allows)" in page, name


def test_a_disabled_account_says_why_it_cannot_be_logged_in_as(world, persona):
    Account.objects.filter(pk=world.managed.pk).update(status=Account.Status.DISABLED)
    page = text(persona("owner").get(tab_url("managed_invoices", world.manager, world.managed)))

    assert log_in_as_button(world.managed) not in page
    assert "Log in as: Alpine Voice is disabled; enable it first." in page


def test_a_cancelled_account_has_no_settings_tab(world, persona):
    Account.objects.filter(pk=world.managed.pk).update(status=Account.Status.CANCELLED)
    page = text(persona("owner").get(tab_url("managed_detail", world.manager, world.managed)))

    assert "Settings" not in [label for label, _ in tab_bar(page)]


# --- What each tab shows -----------------------------------------------------------------------------------


def test_the_usage_tab_summarises_the_accounts_own_usage_and_links_to_the_scoped_report(world, persona):
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    usage(world.manager, world.managed, 4, day=yesterday)  # voice 1 + 3 minutes, sms 2 + 4 messages
    usage(world.manager, world.sibling, 2, day=yesterday, key="other")

    page = text(persona("owner").get(tab_url("managed_usage", world.manager, world.managed)))

    report = reverse("usage_report", args=[world.manager.public_id])
    assert f'href="{report}?scope={world.managed.public_id}"' in page
    assert "Open the full report" in page
    assert "?sort=" not in page  # a summary: sorting is the full report's
    by_product = f"{report}?scope={world.managed.public_id}&amp;product=voice.outbound&amp;group_by=day"
    assert f'<a href="{by_product}">Outbound voice</a>' in page
    footer = re.search(r"<tfoot >(.*?)</tfoot>", page).group(1)
    assert re.findall(r'<td class="num">([^<]*)</td>', footer)[:2] == ["10", "4"]  # not the sibling's 2 records


def test_the_invoices_tab_lists_the_reseller_invoices_issued_to_this_account_only(world, persona):
    Account.objects.update(created_at=LONG_AGO)
    march = date(2025, 3, 1)
    usage(world.manager, world.managed, 2, day=march)
    usage(world.manager, world.sibling, 2, day=march, key="sibling")
    invoice_party(account=world.manager, month=march)
    own = Invoice.objects.get(issuer=world.manager, bill_to=world.managed)
    sibling = Invoice.objects.get(issuer=world.manager, bill_to=world.sibling)

    page = text(persona("billing").get(tab_url("managed_invoices", world.manager, world.managed)))

    assert own.number in page
    assert f'href="{reverse("issued_invoice_detail", args=[world.manager.public_id, own.public_id])}"' in page
    assert sibling.number not in page
    assert "billed to you (roll-up)" in page


def test_the_invoices_tab_of_a_separate_account_shows_none_of_its_platform_invoices(world, persona):
    Account.objects.update(created_at=LONG_AGO)
    cedar = separate(world.sibling)
    march = date(2025, 3, 1)
    usage(world.manager, cedar, 2, day=march)
    platform = invoice_party(account=cedar, month=march)

    page = text(persona("owner").get(tab_url("managed_invoices", world.manager, cedar)))

    assert platform.number not in page  # the account's own: its manager reads it only by logging in as it
    assert "Mission Control bills Blue Harbor directly" in page
    assert "Log in as Blue Harbor to see them" in page


def test_the_balance_tab_of_a_separate_account_shows_its_balance_and_the_managers_transfers(world, persona):
    cedar = separate(world.sibling)
    ledger.adjust_balance(account=world.manager, amount=Decimal("100"), reason="Wire", key="w", actor=STAFF)
    ledger.adjust_balance(account=cedar, amount=Decimal("-12.34"), reason="Usage", key="u", actor=STAFF)
    ledger.transfer_credit(
        manager=world.manager, managed=cedar, amount=Decimal("40"), key="t1", actor=Actor(user=world.users["owner"])
    )

    page = text(persona("owner").get(tab_url("managed_balance", world.manager, cedar)))

    assert "<dt>Balance</dt><dd><strong>USD 27.66</strong></dd>" in page
    assert "<dt>Available credit</dt><dd>USD 27.66</dd>" in page
    assert f'<span class="debit">{format_money(Decimal("-40.00"))}</span>' in page  # the manager's transfer out
    assert f'href="{reverse("managed_transfer", args=[world.manager.public_id, cedar.public_id])}"' in page
    billing = text(persona("billing").get(tab_url("managed_balance", world.manager, cedar)))
    assert "USD 27.66" in billing and "Transfer credit</a>" not in billing  # transfers are owners' and admins'


def test_the_balance_tab_of_a_roll_up_account_says_it_is_billed_to_you(world, persona):
    page = text(persona("owner").get(tab_url("managed_balance", world.manager, world.managed)))

    assert "Billed to you (roll-up)" in page
    assert "Transfer credit" not in page


def test_the_members_tab_lists_its_people_read_only(world, persona):
    MembershipFactory(user=UserFactory(email="ops@alpine.example.com"), account=world.managed, role=Role.BILLING)

    page = text(persona("owner").get(tab_url("managed_members", world.manager, world.managed)))

    assert "ops@alpine.example.com" in page and world.users["managed_owner"].email in page
    assert "Change role" not in page and "Remove" not in page and "<form" not in page.split("managed-hub-tabs")[1]


def test_the_audit_tab_reads_the_accounts_log_in_words(world, persona):
    services.update_managed_account(
        managed=world.managed, actor=Actor(user=world.users["owner"]), name="Alpine Voice Two"
    )

    page = text(persona("owner").get(tab_url("managed_audit", world.manager, world.managed)))

    assert "renamed the account from ‘Alpine Voice’ to ‘Alpine Voice Two’" in page or (
        "renamed the account" in page and "Alpine Voice Two" in page
    )
    assert "None" not in page.split("managed-hub-tabs")[1]


def test_the_api_keys_tab_creates_a_key_and_comes_back_to_it(world, persona):
    client = persona("owner")
    response = client.post(tab_url("managed_api_key_create", world.manager, world.managed), {"name": "PBX"})

    assert response.status_code == 200
    assert f'href="{tab_url("managed_api_keys", world.manager, world.managed)}"' in text(response)
    assert "PBX" in text(client.get(tab_url("managed_api_keys", world.manager, world.managed)))


# --- Who sees which tab --------------------------------------------------------------------------------------


def test_a_billing_member_sees_the_billing_tabs_and_no_log_in_as(world, persona):
    client = persona("billing")
    for name in BILLING_TABS:
        response = client.get(tab_url(name, world.manager, world.managed))
        assert response.status_code == 200, name
        page = text(response)
        assert [label for label, _ in tab_bar(page)] == ["Invoices", "Balance and transfers"]
        assert "Log in as" not in page, name
    for name in set(HUB_PAGES) - set(BILLING_TABS):
        assert client.get(tab_url(name, world.manager, world.managed)).status_code == 403, name


def test_a_reporting_member_sees_the_usage_tab_only(world, persona):
    client = persona("reporting")
    page = text(client.get(tab_url("managed_usage", world.manager, world.managed)))

    assert [label for label, _ in tab_bar(page)] == ["Usage"]
    assert "Log in as" not in page
    assert client.get(tab_url("managed_invoices", world.manager, world.managed)).status_code == 403


@pytest.mark.parametrize("name", HUB_PAGES)
def test_another_tenant_gets_404_on_every_tab(world, persona, name):
    stranger = persona("other_tenant")
    assert stranger.get(tab_url(name, world.manager, world.managed)).status_code == 404
    # ...and its own manager's URL with a managed account that is not its own
    assert stranger.get(tab_url(name, world.other_manager, world.managed)).status_code == 404


# --- A constant number of queries per tab ------------------------------------------------------------------


def _seed(world, name: str, start: int, stop: int) -> None:
    """Records `start`..`stop` of what tab `name` lists."""
    owner = Actor(user=world.users["owner"])
    if name == "managed_usage":
        for n in range(start, stop):
            usage(world.manager, world.managed, 1, day=datetime.now(UTC).date() - timedelta(days=n % 25), key=f"q{n}")
    elif name == "managed_invoices":
        for n in range(start, stop):
            month = date(2021 + n // 12, n % 12 + 1, 1)
            usage(world.manager, world.managed, 1, day=month, key=f"m{n}")
            invoice_party(account=world.manager, month=month)
        assert Invoice.objects.filter(issuer=world.manager, bill_to=world.managed).count() == stop
    elif name == "managed_balance":
        ledger.adjust_balance(account=world.manager, amount=Decimal(100), reason="Wire", key=f"w{start}", actor=STAFF)
        for n in range(start, stop):
            ledger.transfer_credit(
                manager=world.manager, managed=world.managed, amount=Decimal(1), key=f"t{n}", actor=owner
            )
    elif name == "managed_api_keys":
        for n in range(start, stop):
            services.create_api_key(account=world.managed, name=f"Key {n}", actor=owner)
    elif name == "managed_members":
        for n in range(start, stop):
            MembershipFactory(
                user=UserFactory(email=f"m{n}@alpine.example.com"), account=world.managed, role=Role.ADMIN
            )
    else:  # the overview's recent activity, the audit log, the settings page
        for n in range(start, stop):
            services.update_managed_account(managed=world.managed, actor=owner, name=f"Alpine Voice {n}")


@pytest.mark.parametrize("name", HUB_PAGES)
def test_each_tab_runs_the_same_number_of_queries_at_3_and_30_records(world, persona, django_assert_num_queries, name):
    Account.objects.update(created_at=LONG_AGO)
    if name == "managed_balance":
        separate(world.managed)
    client = persona("owner")
    url = tab_url(name, world.manager, world.managed)
    _seed(world, name, 0, 3)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    _seed(world, name, 3, 30)

    with django_assert_num_queries(len(few)):
        assert client.get(url).status_code == 200


# --- Row actions on the managed-accounts list --------------------------------------------------------------


def list_url(world) -> str:
    return reverse("managed_list", args=[world.manager.public_id])


def row_of(page: str, account: Account) -> str:
    for row in re.findall(r"<tr[^>]*>.*?</tr>", page):
        if f"/managed/{account.public_id}/" in row:
            return row
    raise AssertionError(f"no row for {account.name}")


def test_each_row_offers_log_in_as_usage_and_disable_or_enable(world, persona):
    Account.objects.filter(pk=world.sibling.pk).update(status=Account.Status.DISABLED)
    page = text(persona("owner").get(list_url(world)))

    alpine = row_of(page, world.managed)
    assert f'<form method="post" action="{tab_url("managed_log_in_as", world.manager, world.managed)}"' in alpine
    assert 'name="csrfmiddlewaretoken"' in alpine
    assert f'href="{tab_url("managed_usage", world.manager, world.managed)}"' in alpine
    assert f'href="{tab_url("managed_disable", world.manager, world.managed)}"' in alpine
    blue = row_of(page, world.sibling)
    assert "managed_log_in_as" not in blue and "log-in-as" not in blue  # disabled: the rule refuses
    assert f'href="{tab_url("managed_enable", world.manager, world.sibling)}"' in blue


def test_no_row_offers_log_in_as_where_the_owner_belongs_elsewhere(world, persona):
    MembershipFactory(user=world.users["managed_owner"], account=world.standard, role=Role.ADMIN)
    page = text(persona("owner").get(list_url(world)))

    assert "log-in-as" not in row_of(page, world.managed)
    assert "log-in-as" in row_of(page, world.sibling)


def test_an_admin_without_the_grant_gets_no_log_in_as_button_on_the_list(world, persona):
    page = text(persona("admin").get(list_url(world)))

    assert "log-in-as" not in page
    assert f'href="{tab_url("managed_usage", world.manager, world.managed)}"' in page


def test_logging_in_from_the_row_action_opens_the_account(world, persona):
    client = persona("owner")
    page = client.get(list_url(world)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    client.handler.enforce_csrf_checks = True

    response = client.post(tab_url("managed_log_in_as", world.manager, world.managed), {"csrfmiddlewaretoken": token})

    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard", args=[world.managed.public_id])
    assert client.session.get("hijack_history")


def test_the_list_runs_the_same_number_of_queries_at_3_and_3000_accounts(world, persona, django_assert_num_queries):
    client = persona("owner")
    make_managed_accounts(world.manager, 1)  # 3 managed accounts
    with CaptureQueriesContext(connection) as few:
        assert client.get(list_url(world)).status_code == 200
    make_managed_accounts(world.manager, 2997)

    with django_assert_num_queries(len(few)):
        response = client.get(list_url(world))
    assert text(response).count("log-in-as/") >= 20  # a full page of rows, most of them offering it
