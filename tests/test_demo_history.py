"""The demo data as a product demo: accounts that joined over the last months, usage only once an
account exists, every complete month closed and paid, a few accounts in trouble, and a second run of
the demo steps of `./dev run` that changes nothing, least of all accounts a person added by hand."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db.models import F, Sum
from django.utils import timezone

from accounts import services
from accounts.actor import Actor
from accounts.demo import MANAGED_NAMES, MANAGER_EMAIL, demo_accounts
from accounts.models import Account, User
from billing.management.commands.demo_close import TROUBLE, complete_months_since
from billing.models import Balance, Invoice, ResaleRate, UsageRecord
from billing.usage.simulator import account_usage, simulate_usage
from tests.factories import AccountFactory


def run_demo(end: str) -> None:
    """The demo steps of `./dev run` (at a low traffic rate, to stay quick), ending at `end`."""
    call_command("demo_data", stdout=StringIO())
    simulate = ("--demo", "--days", "160", "--records-per-day", "2", "--end", end)
    call_command("simulate_usage", *simulate, stdout=StringIO())
    call_command("demo_close", stdout=StringIO())


def every_table() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


@pytest.fixture
def demo(db) -> str:
    end = timezone.now().isoformat()
    run_demo(end)
    return end


def test_a_second_run_of_the_demo_changes_nothing(demo):
    counts = every_table()
    balances = list(Balance.objects.order_by("pk").values_list("account_id", "amount"))
    invoices = list(Invoice.objects.order_by("pk").values_list("pk", "status", "total"))

    run_demo(demo)

    assert every_table() == counts
    assert list(Balance.objects.order_by("pk").values_list("account_id", "amount")) == balances
    assert list(Invoice.objects.order_by("pk").values_list("pk", "status", "total")) == invoices


def test_the_accounts_joined_over_the_last_five_months_the_manager_first(demo):
    now = timezone.now()
    accounts = list(demo_accounts().order_by("created_at"))
    manager = Account.objects.get(kind=Account.Kind.MANAGER, email=MANAGER_EMAIL)

    assert len(accounts) == len(MANAGED_NAMES) + 2
    assert accounts[0] == manager
    assert timedelta(days=140) < now - manager.created_at < timedelta(days=160)
    assert now - accounts[-1].created_at < timedelta(days=10)
    assert len({a.created_at.date().replace(day=1) for a in accounts}) >= 5
    assert len({a.created_at.date() for a in accounts}) == len(accounts)  # one a day at most


def test_no_usage_record_starts_before_its_account_was_created(demo):
    assert UsageRecord.objects.count() > 1000
    assert not UsageRecord.objects.filter(started_at__lt=F("account__created_at")).exists()
    with_traffic = set(UsageRecord.objects.values_list("account_id", flat=True).distinct())
    assert len(with_traffic) >= 15  # most demo accounts have traffic


def test_every_complete_month_since_the_manager_is_closed_with_invoices_and_reseller_invoices(demo):
    manager = Account.objects.get(kind=Account.Kind.MANAGER, email=MANAGER_EMAIL)
    months = complete_months_since(manager.created_at.date(), timezone.now().date())
    issued = Invoice.objects.issued()

    assert len(months) >= 4
    for month in months:  # each a closed month: the manager's own invoice, paid
        own = issued.platform().get(bill_to=manager, period=month)
        assert own.status == Invoice.Status.PAID and own.number
    with_resale = {m for m in months if issued.resale().filter(issuer=manager, period=m).exists()}
    assert len(with_resale) >= 4
    resale = issued.resale().filter(issuer=manager)
    assert resale.filter(status=Invoice.Status.PAID).exists()
    assert not resale.filter(period=months[-1], status=Invoice.Status.PAID).exists()  # not due yet
    assert resale.filter(bill_to__name="Maple Dental", status=Invoice.Status.FINALIZED).exists()  # in trouble


def test_a_few_accounts_are_in_trouble_and_most_are_healthy(demo):
    managed = Account.objects.filter(kind=Account.Kind.MANAGED, manager__email=MANAGER_EMAIL)
    separate = managed.paying_own_usage().filter(status=Account.Status.ENABLED)
    negative = {b.account.name for b in Balance.objects.filter(account__in=separate, amount__lt=0)}

    assert {"Lumen Realty", "Juniper Schools"} <= negative
    assert len(negative) <= 4 < separate.count() - len(negative)
    assert managed.filter(status=Account.Status.DISABLED).count() == 3
    assert Invoice.objects.platform().filter(bill_to__name__in=TROUBLE, status=Invoice.Status.FINALIZED).exists()
    assert not Invoice.objects.platform().filter(bill_to__name__in=TROUBLE, status=Invoice.Status.PAID).exists()


def test_an_account_created_by_hand_between_two_runs_gets_no_demo_usage(demo):
    manager = Account.objects.get(kind=Account.Kind.MANAGER, email=MANAGER_EMAIL)
    owner = Actor(user=User.objects.get(email=MANAGER_EMAIL))
    by_hand = [
        services.create_managed_account(
            manager=manager,
            name=name,
            owner_email=email,
            owner_password=None,
            billing_mode=mode,
            allow_custom_pricing=False,
            pricing_hidden=False,
            actor=owner,
        )
        for name, email, mode in (
            ("Hand Made Ltd", "hand@example.net", Account.BillingMode.SEPARATE),
            ("Alpine Voice", "someone@example.net", Account.BillingMode.ROLLUP),  # a demo name, not its owner
        )
    ]
    demo_before = UsageRecord.objects.count()

    run_demo(timezone.now().isoformat())

    assert not UsageRecord.objects.filter(account__in=by_hand).exists()
    assert not Invoice.objects.filter(bill_to__in=by_hand).exists()
    assert not set(demo_accounts()) & set(by_hand)
    assert UsageRecord.objects.count() >= demo_before


def test_the_simulator_never_generates_usage_before_an_account_was_created(db):
    account = AccountFactory(name="Joined Mid-Week")
    joined = datetime(2025, 3, 12, 14, 30, tzinfo=UTC)
    Account.objects.filter(pk=account.pk).update(created_at=joined)
    account.refresh_from_db()
    start, end = datetime(2025, 2, 20, tzinfo=UTC), datetime(2025, 4, 5, tzinfo=UTC)

    rows = list(account_usage(account, start=start, end=end, records_per_day=200, seed=0))
    result = simulate_usage(accounts=[account], start=start, end=end, records_per_day=200)

    assert rows and min(datetime.fromisoformat(r["started_at"]) for r in rows) >= joined
    numbers = {r["idempotency_key"] for r in rows if r["product"].startswith("number.")}
    assert "sim0-202504-number.local" in numbers  # April's; March's are billed on the 1st, before it joined
    assert not any("202503" in key or "202502" in key for key in numbers)
    assert result.accepted == len(rows) == UsageRecord.objects.filter(account=account).count()
    assert not UsageRecord.objects.filter(account=account, started_at__lt=joined).exists()


def test_the_demos_reseller_invoices_at_0_percent_equal_their_platform_sections(demo):
    """Issue 12 item 1 on the demo data: the demo manager resells at 0 % with no resale rates, so
    each of its reseller invoices is its account's section of the manager's platform invoice of the
    month, to the cent, with lines that add up to it."""
    manager = Account.objects.get(kind=Account.Kind.MANAGER, email=MANAGER_EMAIL)
    resale = list(Invoice.objects.issued().resale().filter(issuer=manager).select_related("bill_to"))
    assert len([i for i in resale if i.total > 0]) >= 10 and {i.markup_percent for i in resale} == {Decimal("0.00")}
    assert not ResaleRate.objects.filter(manager=manager).exists()
    for invoice in resale:
        platform = Invoice.objects.issued().platform().get(bill_to=manager, period=invoice.period)
        lines = platform.lines.filter(account=invoice.bill_to)
        section = lines.aggregate(total=Sum("amount", default=Decimal("0.00")))["total"]  # none: no usage
        assert (invoice.bill_to.name, invoice.period, invoice.total) == (invoice.bill_to.name, invoice.period, section)
        assert invoice.lines.aggregate(total=Sum("amount", default=Decimal("0.00")))["total"] == invoice.total
