"""The overview's and the invoice page's reads in their faster shapes (issue 16: pages at 3,000
managed accounts) give what the slower ones gave, to each person who sees them:

- the overview's recent activity (accounts.audit.latest_events_for_account: the newest events of
  each part of the log, then those few) is the newest of events_for_account, hidden pricing and
  withheld manager notes included;
- the overview's spend by day (the cost alone, grouped by day) is usage_summary's by day, and its
  top accounts are the monthly totals summed per account;
- a page of a long invoice (the sections' count and total in one aggregate, the page's section
  starts by a window, its lines alone without their account and product rows) is that slice of the
  whole invoice's sections, for the owner, a billing member and the manager acting as a roll-up
  account with hidden pricing.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts import audit
from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Membership, Role
from billing.invoices.builder import invoice_party
from billing.invoices.selectors import invoice_layout
from billing.models import Invoice, InvoiceLine, MonthlyUsage
from billing.usage.selectors import GROUP_BY_DAY, usage_summary
from billing.usage.services import ingest_usage
from reporting import dashboard
from tests.conftest import log_in_as, make_managed_accounts

STAFF = Actor.platform_staff()
MARCH = date(2025, 3, 1)


def _owner(account: Account):
    return Membership.objects.get(account=account, role=Role.OWNER).user


def _ingest(submitter: Account, rows: list[tuple[Account, str, str, datetime]]) -> None:
    ingest_usage(
        submitter=submitter,
        rows=[
            {
                "account": str(account.public_id),
                "product": sku,
                "quantity": quantity,
                "started_at": moment.isoformat(),
                "idempotency_key": uuid.uuid4().hex,
            }
            for account, sku, quantity, moment in rows
        ],
        source="api",
        actor=STAFF,
    )


# --- Recent activity --------------------------------------------------------------------------------


def _event(account: Account, change_type: str, *, when: datetime, actor: Actor, **fields) -> AuditEvent:
    event = audit.record(
        account=account,
        actor=actor,
        change_type=audit.ChangeType(change_type),
        resource=account,
        changes=fields.pop("changes", []),
        related_account=fields.pop("related_account", None),
    )
    AuditEvent.objects.filter(pk=event.pk).update(created_at=when, **fields)
    return event


def _seen(events) -> list[tuple[int, list]]:
    return [(event.pk, event.changes) for event in events]


def test_recent_activity_is_the_newest_of_the_log_for_every_reader(world):
    """Events of every part of each log, interleaved in time, with events of another manager newer
    than all of them, a priced change in a hidden-pricing account and a manager's note on an
    invoice billed to it: the few newest read part by part are the log's newest, in its order."""
    owner, managed_owner = world.users["owner"], world.users["managed_owner"]
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)
    world.managed.refresh_from_db()
    acting = Actor(user=owner, acting_as=managed_owner)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for n in range(12):
        when = start + timedelta(hours=n)
        part = n % 4
        if part == 0:  # the manager's own
            _event(world.manager, "account.updated", when=when, actor=Actor(user=owner))
        elif part == 1:  # on the manager, concerning a managed account
            _event(world.manager, "managed_account.updated", when=when, actor=Actor(user=owner),
                   related_account=world.managed if n % 8 == 1 else world.sibling)  # fmt: skip
        elif part == 2:  # the manager's people in a managed account (acting): both logs
            _event(world.managed if n % 8 == 2 else world.sibling, "account.updated", when=when, actor=acting)
        else:  # the managed account's own, not made by the manager's people
            _event(world.managed, "account.updated", when=when, actor=Actor(user=managed_owner))
    # A priced change in the hidden-pricing account, made by the manager acting: the manager's log
    # shows it, the managed account's does not.
    _event(world.managed, "rate.changed", when=start + timedelta(hours=20), actor=acting)
    # A reseller invoice's event with the manager's note, billed to the hidden-pricing account.
    _event(world.manager, "invoice.marked_paid", when=start + timedelta(hours=21), actor=Actor(user=owner),
           related_account=world.managed, resource_type=audit.INVOICE_RESOURCE_TYPE,
           changes=[{"field": audit.STATUS_NOTE_FIELD, "from": "", "to": "paid by wire, thanks"}])  # fmt: skip
    for n in range(30):  # another manager's, newer than every one above
        _event(world.other_manager, "account.updated", when=start + timedelta(days=2, minutes=n),
               actor=Actor(user=world.users["other_tenant"]))  # fmt: skip

    for reader in (world.manager, world.managed, world.sibling, world.other_manager):
        reader.refresh_from_db()
        for limit in (1, 3, 8, 50):
            expected = _seen(audit.events_for_account(reader)[:limit])
            assert _seen(audit.latest_events_for_account(reader, limit)) == expected, (reader.name, limit)
    managed_log = _seen(audit.latest_events_for_account(world.managed, 50))
    assert all(c.get("field") != audit.STATUS_NOTE_FIELD for _, changes in managed_log for c in changes)
    assert not [pk for pk, _ in managed_log if AuditEvent.objects.get(pk=pk).change_type == "rate.changed"]
    manager_log = audit.latest_events_for_account(world.manager, 50)
    assert {"rate.changed", "invoice.marked_paid"} <= {event.change_type for event in manager_log}


def test_the_overviews_recent_activity_is_shown_to_the_owner_not_to_a_billing_member(world, persona):
    owner = world.users["owner"]
    _event(world.manager, "account.updated", when=datetime.now(UTC), actor=Actor(user=owner))
    url = reverse("dashboard", args=[world.manager.public_id])
    owner_page = persona("owner").get(url).content.decode()
    billing_page = persona(Role.BILLING).get(url).content.decode()
    assert "Recent activity" in owner_page and "Recent activity" not in billing_page


# --- Spend by day and the top accounts ---------------------------------------------------------------


def test_the_overviews_spend_by_day_and_top_accounts_are_the_totals_read_before(world, persona):
    """Usage over several days of this month, the manager's own, its roll-up accounts' (one with
    hidden pricing), a separately billed one's (not the manager's spend) and another manager's."""
    today = datetime.now(UTC).date()
    start = today.replace(day=1)
    days = [start + timedelta(days=n) for n in range((today - start).days + 1)]
    accounts = [world.managed, world.sibling, *make_managed_accounts(world.manager, 14)]
    Account.objects.filter(pk__in=[a.pk for a in accounts]).update(status=Account.Status.ENABLED)
    Account.objects.filter(pk=world.sibling.pk).update(pricing_hidden=True)
    rows = []
    for n, account in enumerate(accounts):
        for m, day in enumerate(days[-3:]):
            moment = datetime(day.year, day.month, day.day, 0, 30 + m, tzinfo=UTC)
            rows.append((account, "voice.outbound", str(10 * (n + 1) + m), moment))
            rows.append((account, "sms.outbound", str(n + 2), moment))
    _ingest(world.manager, [*rows, (world.manager, "sms.outbound", "9", datetime.now(UTC) - timedelta(seconds=5))])
    _ingest(
        world.other_manager, [(world.other_managed, "voice.outbound", "999", datetime.now(UTC) - timedelta(seconds=5))]
    )

    spend = dashboard.manager_spend(manager=world.manager, start=start, end=today)
    payers = (Account.objects.filter(pk=world.manager.pk) | Account.objects.rollups_of(world.manager)).values("pk")
    before = {
        row.key: row.cost
        for row in usage_summary(accounts=payers, start=start, end=today, product=None, group_by=GROUP_BY_DAY)
    }
    assert [(d.day, d.cost) for d in spend.days] == [(day, before.get(day, Decimal(0))) for day in days]
    assert spend.total == sum(before.values(), Decimal(0)) and spend.total > 0

    top = dashboard.top_accounts_by_spend(manager=world.manager, month=start)
    sums: dict[int, tuple[Decimal, int]] = {}
    for total in MonthlyUsage.objects.filter(account__manager=world.manager, month=start):
        cost, records = sums.get(total.account_id, (Decimal(0), 0))
        sums[total.account_id] = (cost + total.cost, records + total.records)
    ranked = sorted(sums.items(), key=lambda item: (-item[1][0], item[0]))[: dashboard.TOP_ACCOUNTS]
    names = {a.pk: a for a in Account.objects.filter(pk__in=sums)}
    assert [(t.public_id, t.name, t.billing_mode, t.cost, t.records) for t in top] == [
        (names[pk].public_id, names[pk].name, names[pk].get_billing_mode_display(), cost, records)
        for pk, (cost, records) in ranked
    ]

    url = reverse("dashboard", args=[world.manager.public_id])
    for who in ("owner", Role.BILLING):
        page = re.sub(r"\s+", " ", persona(who).get(url).content.decode())
        assert "Top managed accounts this month" in page and top[0].name in page, who
        assert f"{spend.total.quantize(Decimal('0.01')):,}" in page, who
    # The manager acting as its hidden-pricing account sees that account's overview, no money of the manager's.
    client = persona("owner")
    assert log_in_as(client, world.manager, world.sibling).status_code == 302
    acting = client.get(reverse("dashboard", args=[world.sibling.public_id])).content.decode()
    assert "Top managed accounts this month" not in acting and "Spend this month" not in acting


# --- A page of a long invoice -------------------------------------------------------------------------


def _shape(sections) -> list[tuple[int, bool, str, list[int], Decimal]]:
    return [(s.account_id, s.own, s.name, [line.pk for line in s.lines], s.subtotal) for s in sections]


@pytest.fixture
def long_invoice(world) -> Invoice:
    """world.manager's March invoice with its own section and 7 roll-up sections (the sibling's
    with hidden pricing), one section's lines without the name (as lines written before names were)."""
    Account.objects.filter(pk=world.sibling.pk).update(pricing_hidden=True)
    accounts = [world.managed, world.sibling, *make_managed_accounts(world.manager, 10)]
    Account.objects.filter(pk__in=[a.pk for a in accounts]).update(
        billing_mode=Account.BillingMode.ROLLUP, status=Account.Status.ENABLED
    )
    rows = [(world.manager, "sms.outbound", "7", datetime(2025, 3, 2, 10, tzinfo=UTC))]
    for n, account in enumerate(accounts[:7]):
        rows.append((account, "voice.outbound", f"{33.3 + n}", datetime(2025, 3, 3 + n, 10, tzinfo=UTC)))
        rows.append((account, "sms.outbound", f"{1001 + n}", datetime(2025, 3, 3 + n, 11, tzinfo=UTC)))
    _ingest(world.manager, rows)
    invoice = invoice_party(account=world.manager, month=MARCH)
    InvoiceLine.objects.filter(invoice=invoice, account=accounts[3]).update(account_name="")
    return invoice


@pytest.mark.parametrize("per_page", [1, 2, 3, 50])
def test_each_page_of_an_invoice_is_that_slice_of_its_sections(world, long_invoice, per_page):
    whole = invoice_layout(long_invoice)
    assert whole.section_count == 8 and whole.sections_total == long_invoice.total
    assert all(s.name for s in whole.sections)  # the unnamed lines' section named after its account
    pages = -(-whole.section_count // per_page)
    shown = []
    for number in range(0, pages + 2):  # 0 and past the end: the first and the last page
        layout = invoice_layout(long_invoice, page=number, per_page=per_page)
        clamped = min(max(1, number), pages)
        expected = whole.sections[(clamped - 1) * per_page : clamped * per_page]
        assert _shape(layout.sections) == _shape(expected), (per_page, number)
        assert (layout.section_count, layout.sections_total) == (whole.section_count, whole.sections_total)
        assert layout.page is not None and (layout.page.number, layout.page.pages) == (clamped, pages)
        assert (layout.page.first, layout.page.last) == (
            (clamped - 1) * per_page + 1,
            (clamped - 1) * per_page + len(expected),
        )
        if 1 <= number <= pages:
            shown += _shape(layout.sections)
    assert shown == _shape(whole.sections)


def _sections(html: str) -> list[tuple[str, list[str]]]:
    found = []
    for block in re.findall(r'<section class="invoice-section">(.*?)</section>', html, re.S):
        title = re.sub(r"<small>.*?</small>", "", re.search(r"<h3>(.*?)</h3>", block, re.S).group(1)).strip()
        found.append((title, re.findall(r"<tr><td>(.*?)</tr>", block, re.S)))
    return found


def test_the_invoice_page_shows_the_same_sections_to_owner_billing_member_and_manager_acting(
    world, persona, long_invoice
):
    url = reverse("invoice_detail", args=[world.manager.public_id, long_invoice.public_id])
    owner_page = persona("owner").get(url).content.decode()
    billing_page = persona(Role.BILLING).get(url).content.decode()
    assert _sections(owner_page) == _sections(billing_page)
    titles = [title for title, _ in _sections(owner_page)]
    assert titles == [s.name for s in invoice_layout(long_invoice).sections]
    assert "Amount</th>" in owner_page  # the manager sees its roll-up accounts' amounts, hidden pricing or not

    # The hidden-pricing roll-up account's reseller invoice, as the manager acting as it sees it.
    resale = Invoice.objects.get(issuer=world.manager, bill_to=world.sibling, period=MARCH)
    client = Client()
    client.force_login(world.users["owner"])
    assert log_in_as(client, world.manager, world.sibling).status_code == 302
    page = re.sub(
        r"\s+",
        " ",
        client.get(reverse("invoice_detail", args=[world.sibling.public_id, resale.public_id])).content.decode(),
    )
    assert "Quantities only" in page and "Amount</th>" not in page and "Subtotal" not in page
    rows = [row for _, lines in _sections(page) for row in lines]
    assert rows and not [row for row in rows if "USD" in row]
    assert f"<span>Total</span><span>USD {resale.total}</span>" in page
    assert _owner(world.sibling) != world.users["owner"]
