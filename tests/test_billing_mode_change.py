"""Changing a managed account's billing mode later (issue 12 item 5): the manager schedules it from
the settings page (or the API, tests/api/test_billing_mode_change_api.py); it takes effect at the
start of the next UTC month; each month is closed by the mode in force in it; going to roll-up
needs the account's own balance settled, when scheduled and again at the switch; the pending change
can be cancelled; every step is in the manager's and the managed account's logs."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts import audit, services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent, month_of
from billing.ledger import services as ledger
from billing.ledger.services import LedgerError
from billing.models import Balance, Invoice, LedgerEntry
from billing.tasks import apply_billing_mode_changes
from tests.test_monthly_close import (
    JULY,
    JUNE,
    backdate,
    clock,
    close,
    row,
    send,
    top_up,
    usage_charged,
)

IN_JUNE = datetime(2025, 6, 10, 9, 0, tzinfo=UTC)
JUNE_USAGE_AT = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)
JULY_USAGE_AT = datetime(2025, 7, 3, 12, 0, tzinfo=UTC)
SWITCH = datetime(2025, 7, 1, 0, 0, 5, tzinfo=UTC)  # beat's run at the top of the 1st
IN_DECEMBER = datetime(2026, 12, 15, 10, 0, tzinfo=UTC)


@pytest.fixture
def cedar(world) -> Account:
    """A separately billed managed account of the world's manager, beside roll-up Alpine Voice."""
    owner = Actor(user=world.users["owner"])
    cedar = services.create_managed_account(
        manager=world.manager, name="Cedar Separate", owner_email="cedar@customers.example.com",
        owner_password=None, billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False,
        pricing_hidden=False, actor=owner,
    )  # fmt: skip
    backdate()
    return cedar


def owner(world) -> Actor:
    return Actor(user=world.users["owner"])


def fresh(account: Account) -> Account:
    return Account.objects.get(pk=account.pk)


def settings_url(world, managed: Account) -> str:
    return reverse("managed_settings", args=[world.manager.public_id, managed.public_id])


def minutes(world, account: Account, key: str, *, at: datetime, quantity: str) -> None:
    send(world, account, [row(key, at=at, quantity=quantity)])


def platform_invoice(account: Account, month: date) -> Invoice | None:
    return Invoice.objects.filter(issuer__isnull=True, bill_to=account, period=month).first()


def section_total(invoice: Invoice, account: Account) -> Decimal:
    return sum(invoice.lines.filter(account_id=account.pk).values_list("amount", flat=True), Decimal("0.00"))


def change_types(reader: Account, managed: Account) -> list[str]:
    events = audit.events_for_account(reader).filter(related_account=managed, change_type__startswith="billing_mode")
    return list(events.order_by("created_at", "id").values_list("change_type", flat=True))


# --- Crossing a month boundary --------------------------------------------------------------------------


def test_a_change_pending_across_a_month_boundary_bills_each_month_by_the_mode_in_force_in_it(world, cedar):
    alpine = world.managed  # roll-up, going separate
    backdate()
    with clock(IN_JUNE):
        services.schedule_billing_mode_change(managed=alpine, mode=Account.BillingMode.SEPARATE, actor=owner(world))
        services.schedule_billing_mode_change(managed=cedar, mode=Account.BillingMode.ROLLUP, actor=owner(world))
    for account, tag in ((alpine, "a"), (cedar, "c")):
        minutes(world, account, f"{tag}-june", at=JUNE_USAGE_AT, quantity="100")
        minutes(world, account, f"{tag}-july", at=JULY_USAGE_AT, quantity="300")
    assert fresh(alpine).billing_mode == Account.BillingMode.ROLLUP  # not flipped until the month starts

    with clock(SWITCH):
        assert apply_billing_mode_changes() == {"changed": 2, "refused": 0, "skipped": 0}
    alpine, cedar = fresh(alpine), fresh(cedar)
    assert (alpine.billing_mode, cedar.billing_mode) == (Account.BillingMode.SEPARATE, Account.BillingMode.ROLLUP)

    # June, closed after the switch, by June's modes: Alpine on the manager's invoice, Cedar on its own.
    close(JUNE)
    june = platform_invoice(world.manager, JUNE)
    assert june is not None and section_total(june, alpine) == Decimal("1.00")  # 100 min at USD 0.01
    assert section_total(june, cedar) == Decimal("0.00")
    assert platform_invoice(alpine, JUNE) is None
    cedar_june = platform_invoice(cedar, JUNE)
    assert cedar_june is not None and cedar_june.total == Decimal("1.00") == usage_charged(cedar, JUNE)
    assert Invoice.objects.filter(issuer=world.manager, bill_to=alpine, period=JUNE).get().total == Decimal("1.00")
    assert not Invoice.objects.filter(issuer=world.manager, bill_to=cedar, period=JUNE).exists()

    # July by July's: Alpine on its own invoice and balance (zero until then), Cedar on the manager's.
    close(JULY)
    alpine_july = platform_invoice(alpine, JULY)
    assert alpine_july is not None and alpine_july.total == Decimal("3.00") == usage_charged(alpine, JULY)
    assert alpine_july.opening_balance == Decimal("0.00") and alpine_july.closing_balance == Decimal("-3.00")
    july = platform_invoice(world.manager, JULY)
    assert july is not None and section_total(july, cedar) == Decimal("3.00") == usage_charged(
        world.manager, JULY, cedar.pk
    )
    assert section_total(july, alpine) == Decimal("0.00") and platform_invoice(cedar, JULY) is None
    assert Invoice.objects.filter(issuer=world.manager, bill_to=cedar, period=JULY).get().total == Decimal("3.00")
    assert not Invoice.objects.filter(issuer=world.manager, bill_to=alpine, period=JULY).exists()
    # Every usage charge of the four (account, month) pairs landed once, on that month's payer.
    assert usage_charged(world.manager, JUNE, alpine.pk) == Decimal("1.00")
    assert usage_charged(world.manager, JUNE, cedar.pk) == Decimal("0.00")
    assert usage_charged(alpine, JUNE) == Decimal("0.00") and usage_charged(cedar, JULY) == Decimal("0.00")

    # Cedar's last separate month left it owing USD 1.00 on its own balance: the manager may settle
    # exactly that with a transfer, no more.
    with pytest.raises(LedgerError, match="at most the USD 1.00"):
        ledger.transfer(manager=world.manager, managed=cedar, amount=Decimal("5.00"), actor=owner(world))
    top_up(world.manager, "10.00", at=datetime(2025, 7, 2, tzinfo=UTC), key="m-top-up")
    ledger.transfer(manager=world.manager, managed=cedar, amount=Decimal("1.00"), actor=owner(world))
    assert Balance.objects.get(account=cedar).amount == Decimal("0.00")

    assert change_types(world.manager, alpine) == ["billing_mode.change_scheduled", "billing_mode.changed"]
    assert change_types(alpine, alpine) == ["billing_mode.change_scheduled", "billing_mode.changed"]
    changed = AuditEvent.objects.get(related_account=alpine, change_type="billing_mode.changed")
    assert changed.change_made_by == AuditEvent.MadeBy.PLATFORM


def test_running_the_switch_again_changes_nothing(world):
    with clock(IN_JUNE):
        services.schedule_billing_mode_change(
            managed=world.managed, mode=Account.BillingMode.SEPARATE, actor=owner(world)
        )
    with clock(SWITCH):
        assert apply_billing_mode_changes()["changed"] == 1
        assert apply_billing_mode_changes() == {"changed": 0, "refused": 0, "skipped": 0}
    assert AuditEvent.objects.filter(change_type="billing_mode.changed").count() == 1


# --- Refusals -------------------------------------------------------------------------------------------


def test_going_to_rollup_is_refused_while_the_accounts_own_balance_is_not_settled(world, cedar, owner_client):
    top_up(cedar, "12.50", at=datetime.now(UTC), key="cedar-credit")

    response = owner_client.post(settings_url(world, cedar), {"billing_action": "schedule"}, follow=True)

    text = response.content.decode()
    assert "Cedar Separate holds USD 12.50 of credit on its own balance. Settle it first" in text
    assert fresh(cedar).billing_mode_next == "" and not change_types(world.manager, cedar)

    ledger.transfer(
        manager=world.manager, managed=cedar, amount=Decimal("12.50"), actor=owner(world), direction="to_manager"
    )  # settled back to the manager through the ledger
    owner_client.post(settings_url(world, cedar), {"billing_action": "schedule"})
    assert fresh(cedar).billing_mode_next == Account.BillingMode.ROLLUP


def test_a_change_to_rollup_is_refused_at_the_switch_when_the_account_holds_credit_again(world, cedar):
    with clock(IN_JUNE):
        services.schedule_billing_mode_change(managed=cedar, mode=Account.BillingMode.ROLLUP, actor=owner(world))
    top_up(cedar, "5.00", at=datetime(2025, 6, 25, tzinfo=UTC), key="cedar-late-credit")

    with clock(SWITCH):
        assert apply_billing_mode_changes() == {"changed": 0, "refused": 1, "skipped": 0}

    cedar = fresh(cedar)
    assert cedar.billing_mode == Account.BillingMode.SEPARATE and cedar.billing_mode_from is None
    assert cedar.billing_mode_in(JULY) == Account.BillingMode.SEPARATE
    cancelled = AuditEvent.objects.get(related_account=cedar, change_type="billing_mode.change_cancelled")
    assert {"field": "reason", "from": None, "to": services.SETTLE_AT_SWITCH} in cancelled.changes
    assert change_types(cedar, cedar) == ["billing_mode.change_scheduled", "billing_mode.change_cancelled"]


def test_a_mode_holds_a_whole_month_before_the_next_change(world):
    with clock(IN_JUNE):
        services.schedule_billing_mode_change(
            managed=world.managed, mode=Account.BillingMode.SEPARATE, actor=owner(world)
        )
    with clock(SWITCH):
        apply_billing_mode_changes()
        with pytest.raises(services.ServiceError, match="next change can be scheduled from 2025-08-01"):
            services.schedule_billing_mode_change(
                managed=world.managed, mode=Account.BillingMode.ROLLUP, actor=owner(world)
            )
    assert fresh(world.managed).billing_mode_in(JUNE) == Account.BillingMode.ROLLUP


# --- Cancelling -----------------------------------------------------------------------------------------


def until_from_line() -> tuple[str, date]:
    """The page's line for a change from roll-up to separate scheduled now, and its first day."""
    start = services.next_month(month_of())
    return f"Roll-up until {start - timedelta(days=1):%Y-%m-%d}, separate from {start:%Y-%m-%d}", start


def test_the_manager_cancels_the_pending_change_before_it_takes_effect(world, owner_client):
    line, start = until_from_line()
    owner_client.post(settings_url(world, world.managed), {"billing_action": "schedule"})
    page = owner_client.get(settings_url(world, world.managed)).content.decode()
    assert line in page and "Cancel the change" in page

    response = owner_client.post(settings_url(world, world.managed), {"billing_action": "cancel"}, follow=True)

    text = response.content.decode()
    assert "The billing-mode change of Alpine Voice is cancelled." in text
    assert line not in text and "Roll-up billing." in text
    managed = fresh(world.managed)
    assert (managed.billing_mode_next, managed.billing_mode_from) == ("", None)
    with clock(datetime.combine(start, time(0, 0, 5), UTC)):
        assert apply_billing_mode_changes()["changed"] == 0
    assert fresh(world.managed).billing_mode_in(start) == Account.BillingMode.ROLLUP
    expected = ["billing_mode.change_scheduled", "billing_mode.change_cancelled"]
    assert change_types(world.manager, world.managed) == expected == change_types(world.managed, world.managed)


def test_the_until_from_line_for_december_2026(world):
    with clock(IN_DECEMBER):
        managed = services.schedule_billing_mode_change(
            managed=world.managed, mode=Account.BillingMode.SEPARATE, actor=owner(world)
        )
        assert (managed.billing_mode_until, managed.billing_mode_from) == (date(2026, 12, 31), date(2027, 1, 1))


def test_going_separate_the_page_offers_an_opening_credit_transfer_once_it_has_its_own_balance(world, owner_client):
    owner_client.post(settings_url(world, world.managed), {"billing_action": "schedule"})
    pending = owner_client.get(settings_url(world, world.managed)).content.decode()
    transfer_url = reverse("managed_transfer", args=[world.manager.public_id, world.managed.public_id])
    assert "transfer it an opening credit" in pending and transfer_url not in pending

    # As apply_billing_mode_changes leaves it once the month has begun (the page reads the real clock).
    Account.objects.filter(pk=world.managed.pk).update(
        billing_mode=Account.BillingMode.SEPARATE, billing_mode_from=month_of()
    )
    page = owner_client.get(settings_url(world, world.managed)).content.decode()

    assert "Separate billing." in page and "Transfer an opening credit" in page and transfer_url in page
    assert LedgerEntry.objects.filter(account=world.managed).count() == 0  # its own balance starts at zero
    transfer = owner_client.get(transfer_url)
    assert transfer.status_code == 200


# --- What the managed account reads -------------------------------------------------------------------


def test_a_hidden_pricing_account_reads_the_change_in_its_log_without_a_price(world, persona):
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)
    services.schedule_billing_mode_change(managed=world.managed, mode=Account.BillingMode.SEPARATE, actor=owner(world))
    start = services.next_month(month_of())

    page = persona("managed_owner").get(reverse("audit_log", args=[world.managed.public_id]))

    text = page.content.decode()
    (about,) = [r for r in re.findall(r"<tr.*?</tr>", text, flags=re.S) if "scheduled the billing of" in r]
    assert f"from Roll-up to Separate on {start:%Y-%m-%d}" in about
    for price in ("USD", "$", "0.0", "markup", " rate"):
        assert price not in about.lower(), price
    assert "USD" not in text and "$" not in text  # nowhere on its log page either
