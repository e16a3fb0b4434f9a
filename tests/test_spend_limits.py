"""Spend limits and credit exhaustion (issue 13 items 1-2): a manager sets a limit on a managed
account's page, usage ingested through the real ingestion service crosses it, the account's new
service is blocked (its usage still recorded and billed), once per crossing, audited with the rule;
the block lifts when the limit is raised, the period ends or credit is restored."""

from __future__ import annotations

import html
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Account, AuditEvent, ServiceBlock
from billing.invoices.services import set_resale_markup
from billing.ledger import services as ledger
from billing.models import LedgerEntry, MonthlyUsage, Product, ResaleRate, UsageRecord
from billing.pricing import prices_for
from billing.usage.services import ingest_usage
from controls.models import SpendLimit
from controls.selectors import limits_of, limits_overview
from controls.services import check_accounts
from controls.tasks import check_period_start
from tests.conftest import make_managed_accounts
from tests.factories import account_with_owner

KEYS = itertools.count()
PER_RECORD = Decimal("4.00")  # 1,000 outbound messages at the list price of USD 0.004


def usage(
    world,
    account: Account,
    records: int,
    *,
    quantity: str = "1000",
    submitter: Account | None = None,
    product: str = "sms.outbound",
):
    """`records` outbound-message records of `account`, through the one ingestion service, with the
    after-commit work (charges, the limit check) run as the worker would."""
    at = timezone.now() - timedelta(minutes=1)
    rows = [
        {
            "account": str(account.public_id),
            "product": product,
            "quantity": quantity,
            "started_at": at.isoformat(),
            "idempotency_key": f"k-{next(KEYS)}",
        }
        for _ in range(records)
    ]
    return ingest_usage(
        submitter=submitter or world.manager, rows=rows, source="api", actor=Actor(user=world.users["owner"])
    )


def events(account: Account, change_type: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(account=account, change_type=change_type).order_by("id"))


def text(response) -> str:
    return html.unescape(response.content.decode())


def fresh(account: Account) -> Account:
    return Account.objects.select_related("manager").get(pk=account.pk)


@pytest.fixture
def credit(world):
    """The manager has room to pay its roll-up accounts' usage (staff gave it a credit limit)."""
    ledger.set_credit_limit(account=world.manager, limit=Decimal("10000.00"), actor=Actor.platform_staff())


def set_limit(client, world, account: Account, **fields):
    data = {"product": "", "monthly_amount": "10.00", "daily_amount": "", "action": "block"} | fields
    return client.post(reverse("controls_managed_limit", args=[world.manager.public_id, account.public_id]), data)


def test_a_limit_set_on_the_page_blocks_new_service_once_when_usage_crosses_it(
    world, owner_client, credit, django_capture_on_commit_callbacks
):
    response = set_limit(owner_client, world, world.managed, monthly_amount="10.00")
    assert response.status_code == 302
    limit = SpendLimit.objects.get(account=world.managed)
    assert (limit.set_by, limit.monthly_amount, limit.action) == ("manager", Decimal("10.00"), "block")
    assert events(world.managed, "spend_limit.set")[0].user == world.users["owner"]

    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 2)  # USD 8.00: below
    assert fresh(world.managed).in_service
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 1)  # USD 12.00: crossed
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 3)  # still over: no second crossing

    managed = fresh(world.managed)
    assert managed.service_block == ServiceBlock.SPEND_LIMIT
    assert managed.is_usable  # sign-in, pages and keys stay open: only new service stops
    assert UsageRecord.objects.filter(account=managed).count() == 6  # usage that happened is all recorded
    (reached,) = events(managed, "spend_limit.reached")
    (blocked,) = events(managed, "service.blocked")
    assert reached.related_account == world.manager and reached.change_made_by == "platform"
    assert {"field": "rule", "from": None, "to": limit.rule} in reached.changes
    assert {"field": "reason", "from": None, "to": "spend_limit"} in blocked.changes
    assert "USD 10.00 a month on all products" in limit.rule
    # The manager's audit log names the rule too.
    log = owner_client.get(reverse("audit_log", args=[world.manager.public_id]))
    assert "spend_limit.reached" in log.content.decode()


def test_raising_the_limit_lifts_the_block_at_once_audited_as_the_manager(
    world, owner_client, credit, django_capture_on_commit_callbacks
):
    set_limit(owner_client, world, world.managed, monthly_amount="5.00")
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 2)
    assert fresh(world.managed).service_block == ServiceBlock.SPEND_LIMIT
    page = owner_client.get(reverse("controls_managed_limit", args=[world.manager.public_id, world.managed.public_id]))
    assert "Blocked: Spend limit reached" in page.content.decode()

    set_limit(owner_client, world, world.managed, monthly_amount="50.00")

    assert fresh(world.managed).in_service
    (lifted,) = events(world.managed, "service.unblocked")
    assert lifted.user == world.users["owner"] and lifted.change_made_by == "account_manager"
    page = owner_client.get(reverse("controls_managed_limit", args=[world.manager.public_id, world.managed.public_id]))
    assert "In service" in page.content.decode()
    # Crossing the new amount is a crossing of its own: acted on once more.
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 12)
    assert len(events(world.managed, "spend_limit.reached")) == 2
    assert len(events(world.managed, "service.blocked")) == 2


def test_an_alert_only_limit_records_the_crossing_and_shows_it_but_never_blocks(
    world, owner_client, credit, django_capture_on_commit_callbacks
):
    set_limit(owner_client, world, world.managed, monthly_amount="5.00", action="alert")
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 2)
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 2)
    assert fresh(world.managed).in_service
    assert len(events(world.managed, "spend_limit.reached")) == 1
    assert events(world.managed, "service.blocked") == []
    page = owner_client.get(reverse("controls_limits", args=[world.manager.public_id])).content.decode()
    assert "reached (alert only): USD 16.00 this month" in page


def test_a_daily_limit_blocks_until_the_day_ends_and_the_next_check_lifts_it(
    world, owner_client, credit, django_capture_on_commit_callbacks
):
    set_limit(owner_client, world, world.managed, monthly_amount="100.00", daily_amount="6.00")
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 2)
    managed = fresh(world.managed)
    tomorrow = datetime.combine(timezone.now().date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert (managed.service_block, managed.service_blocked_until) == (ServiceBlock.SPEND_LIMIT, tomorrow)
    (reached,) = events(managed, "spend_limit.reached")
    assert {"field": "amount", "from": None, "to": "6.00"} in reached.changes

    result = check_accounts(account_ids=[managed.pk], now=tomorrow + timedelta(minutes=1))

    assert result.unblocked == 1
    managed = fresh(managed)
    assert managed.service_blocked_reason == "" and managed.in_service
    (lifted,) = events(managed, "service.unblocked")
    assert {"field": "rule", "from": None, "to": "Its period ended (a new day or month)"} in lifted.changes
    assert check_accounts(account_ids=[managed.pk], now=tomorrow + timedelta(minutes=2)).unblocked == 0


def test_a_block_whose_period_has_ended_reads_as_lifted_before_any_task_runs(world):
    Account.objects.filter(pk=world.managed.pk).update(
        service_blocked_reason=ServiceBlock.SPEND_LIMIT, service_blocked_until=timezone.now() - timedelta(seconds=1)
    )
    assert fresh(world.managed).in_service


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"monthly_amount": ""}, "monthly_amount", "Enter an amount."),
        ({"monthly_amount": "abc"}, "monthly_amount", "Enter an amount such as 100.00."),
        ({"monthly_amount": "0"}, "monthly_amount", "Enter more than zero."),
        ({"monthly_amount": "-5"}, "monthly_amount", "Enter more than zero."),
        ({"monthly_amount": "10.005"}, "monthly_amount", "Use at most 2 decimal places (whole cents)."),
        ({"monthly_amount": "99999999999"}, "monthly_amount", "A limit is at most USD 10,000,000.00."),
        ({"daily_amount": "20.00"}, "daily_amount", "The daily limit cannot be more than the monthly limit."),
        ({"action": "explode"}, "action", "Choose alert only, or alert and block."),
        ({"product": "no.such"}, "product", "Choose a product from the list, or all products."),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_changes_nothing(world, owner_client, fields, field, message):
    response = set_limit(owner_client, world, world.managed, **fields)
    assert response.status_code == 422
    assert message in response.context["form"].errors[field]
    assert message in response.content.decode()
    assert not SpendLimit.objects.exists()
    assert not AuditEvent.objects.filter(change_type__startswith="spend_limit").exists()


def test_a_limit_per_product_counts_only_that_product(world, owner_client, credit, django_capture_on_commit_callbacks):
    set_limit(owner_client, world, world.managed, product="voice.outbound", monthly_amount="5.00")
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 3)  # messages, USD 12.00: not voice
    assert fresh(world.managed).in_service
    assert "on Outbound voice" in SpendLimit.objects.get().rule


def test_an_account_sets_its_own_limit_never_above_its_managers(world, owner_client, client):
    separate, separate_owner = account_with_owner(
        name="Cedar Call Centre", managed_kind=True, manager=world.manager, billing_mode=Account.BillingMode.SEPARATE
    )
    set_limit(owner_client, world, separate, monthly_amount="100.00", daily_amount="10.00")
    client.force_login(separate_owner)
    url = reverse("controls_own_limits", args=[separate.public_id])
    data = {"product": "", "monthly_amount": "150.00", "daily_amount": "5.00", "action": "block"}

    too_high = client.post(url, data)
    assert too_high.status_code == 422
    assert "Your manager's limit is USD 100.00 a month on all products; yours cannot be higher." in text(too_high)
    no_daily = client.post(url, data | {"monthly_amount": "50.00", "daily_amount": ""})
    assert "set a daily amount no higher" in text(no_daily)
    assert client.post(url, data | {"monthly_amount": "50.00"}).status_code == 302

    own = SpendLimit.objects.get(account=separate, set_by="owner")
    assert own.monthly_amount == Decimal("50.00")
    assert events(separate, "spend_limit.set")[-1].user == separate_owner
    page = text(client.get(url))
    assert "The account's own limit of USD 50.00 a month" in page
    assert "The manager's limit of USD 100.00 a month" in page


def test_roll_up_owners_have_no_limits_page_and_nobody_sees_anothers(world, persona):
    managed_owner = persona("managed_owner")  # Alpine Voice is billed to its manager
    assert managed_owner.get(reverse("controls_own_limits", args=[world.managed.public_id])).status_code == 404
    assert managed_owner.get(reverse("controls_limits", args=[world.manager.public_id])).status_code == 404
    other = persona("other_tenant")
    assert other.get(reverse("controls_limits", args=[world.manager.public_id])).status_code == 404
    url = reverse("controls_managed_limit", args=[world.other_manager.public_id, world.managed.public_id])
    assert other.get(url).status_code == 404
    assert persona("reporting").get(reverse("controls_limits", args=[world.manager.public_id])).status_code == 403


def test_hidden_pricing_owners_see_only_their_own_limit_and_no_others_costs(
    world, owner_client, client, credit, django_capture_on_commit_callbacks
):
    hidden, hidden_owner = account_with_owner(
        name="Hidden Dental",
        managed_kind=True,
        manager=world.manager,
        billing_mode=Account.BillingMode.SEPARATE,
        pricing_hidden=True,
    )
    ledger.post_entry(account=hidden, kind="top_up", amount=Decimal("100.00"), key="t1", description="Top-up")
    set_limit(owner_client, world, hidden, monthly_amount="40.00")
    set_limit(owner_client, world, world.sibling, monthly_amount="7.77")
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.sibling, 3)  # the sibling's USD 12.00
        usage(world, hidden, 2)  # its own USD 8.00: a priced amount, which hidden pricing hides too

    client.force_login(hidden_owner)
    assert client.get(reverse("controls_limits", args=[world.manager.public_id])).status_code == 404
    page = client.get(reverse("controls_own_limits", args=[hidden.public_id])).content.decode()
    assert "limit USD 40.00" in page
    for others in ("Blue Harbor", "7.77", "12.00", "Alpine Voice", "8.00"):
        assert others not in page
    manager_view = owner_client.get(reverse("controls_managed_limit", args=[world.manager.public_id, hidden.public_id]))
    assert "USD 8.00 of 40.00" in manager_view.content.decode()  # its manager sees the spend


def test_the_limits_page_puts_the_nearest_first_in_a_fixed_number_of_queries(
    world, owner_client, credit, django_capture_on_commit_callbacks
):
    def page_queries() -> tuple[int, str]:
        url = reverse("controls_limits", args=[world.manager.public_id])
        with CaptureQueriesContext(connection) as queries:
            response = owner_client.get(url)
        assert response.status_code == 200
        return len(queries), response.content.decode()

    (third,) = make_managed_accounts(world.manager, 1)  # 3 managed accounts
    SpendLimit.objects.create(account=third, set_by="manager", monthly_amount=Decimal("50.00"))
    set_limit(owner_client, world, world.managed, monthly_amount="100.00")  # 12 % used
    set_limit(owner_client, world, world.sibling, monthly_amount="10.00", action="alert")  # 120 %
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 3)
        usage(world, world.sibling, 3)
    few, html = page_queries()
    assert html.index("Blue Harbor") < html.index("Alpine Voice")
    assert "120.00 %" in html and "12.00 %" in html

    for account in make_managed_accounts(world.manager, 57):  # 60
        SpendLimit.objects.create(account=account, set_by="manager", monthly_amount=Decimal("50.00"))
    many, html = page_queries()
    assert many == few
    assert html.index("Blue Harbor") < html.index("Alpine Voice") < html.index("Bulk Customer")
    by_name = owner_client.get(reverse("controls_limits", args=[world.manager.public_id]), {"sort": "name"})
    assert by_name.status_code == 200


# --- Credit exhaustion -------------------------------------------------------------------------------------


def separate_account(world, name: str = "Cedar Call Centre") -> Account:
    account, _ = account_with_owner(
        name=name, managed_kind=True, manager=world.manager, billing_mode=Account.BillingMode.SEPARATE
    )
    return account


def test_an_account_whose_credit_is_used_up_is_blocked_and_a_top_up_lifts_it_at_once(
    world, django_capture_on_commit_callbacks
):
    cedar = separate_account(world)
    ledger.post_entry(account=cedar, kind="top_up", amount=Decimal("5.00"), key="t1", description="Top-up")
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, cedar, 2)  # USD 8.00 charged: balance -3.00, credit limit 0

    assert ledger.balance_of(cedar).amount == Decimal("-3.00")
    assert fresh(cedar).service_block == ServiceBlock.CREDIT_EXHAUSTED
    (blocked,) = events(cedar, "service.blocked")
    assert {"field": "reason", "from": None, "to": "credit_exhausted"} in blocked.changes
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, cedar, 1)  # still recorded, charged, and no second block
    assert len(events(cedar, "service.blocked")) == 1
    assert LedgerEntry.objects.filter(account=cedar, kind="usage_charge").count() == 2

    ledger.post_entry(account=cedar, kind="top_up", amount=Decimal("20.00"), key="t2", description="Top-up")

    assert fresh(cedar).in_service  # in the top-up's own transaction, before any task
    (lifted,) = events(cedar, "service.unblocked")
    assert {"field": "reason", "from": "credit_exhausted", "to": None} in lifted.changes


def test_a_managers_used_up_credit_blocks_its_roll_up_accounts_until_staff_raise_its_limit(
    world, django_capture_on_commit_callbacks
):
    cedar = separate_account(world)
    ledger.post_entry(account=cedar, kind="top_up", amount=Decimal("50.00"), key="t1", description="Top-up")
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 1)  # the manager pays: USD -4.00, no credit limit

    assert fresh(world.manager).service_block == ServiceBlock.CREDIT_EXHAUSTED
    assert fresh(world.managed).service_block == ServiceBlock.MANAGER_BLOCKED
    assert fresh(world.sibling).service_block == ServiceBlock.MANAGER_BLOCKED
    assert fresh(cedar).in_service  # pays its own usage, with credit left
    assert events(world.manager, "service.blocked")[0].account == world.manager

    ledger.set_credit_limit(account=world.manager, limit=Decimal("500.00"), actor=Actor.platform_staff())

    assert fresh(world.manager).in_service and fresh(world.managed).in_service


def test_a_manager_gives_credit_limits_up_to_what_it_guarantees(world, owner_client, credit):
    ledger.set_credit_limit(account=world.manager, limit=Decimal("100.00"), actor=Actor.platform_staff())
    cedar, delta = separate_account(world), separate_account(world, "Delta Dispatch")

    def give(account: Account, amount: str):
        url = reverse("controls_managed_credit", args=[world.manager.public_id, account.public_id])
        return owner_client.post(url, {"credit_limit": amount})

    assert give(cedar, "60.00").status_code == 302
    refused = give(delta, "50.00")
    assert refused.status_code == 422
    assert "USD 60.00 is given to others, so at most USD 40.00 here." in refused.content.decode()
    assert "Enter an amount such as 100.00." in give(delta, "lots").content.decode()
    assert give(delta, "40.00").status_code == 302
    assert ledger.balance_of(delta).credit_limit == Decimal("40.00")
    assert ledger.balance_of(cedar).credit_limit == Decimal("60.00")
    rollup = give(world.managed, "10.00")
    assert "billed to you (roll-up)" in rollup.content.decode()
    assert AuditEvent.objects.filter(account=delta, change_type="balance.credit_limit_changed").count() == 1


def test_a_credit_limit_lets_a_separately_billed_account_go_below_zero_before_the_block(
    world, owner_client, credit, django_capture_on_commit_callbacks
):
    ledger.set_credit_limit(account=world.manager, limit=Decimal("100.00"), actor=Actor.platform_staff())
    cedar = separate_account(world)
    owner_client.post(
        reverse("controls_managed_credit", args=[world.manager.public_id, cedar.public_id]), {"credit_limit": "10.00"}
    )
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, cedar, 2)  # -8.00 of a 10.00 credit limit
    assert fresh(cedar).in_service
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, cedar, 1)  # -12.00
    assert fresh(cedar).service_block == ServiceBlock.CREDIT_EXHAUSTED


# --- Measured ------------------------------------------------------------------------------------------------


def test_checking_a_5000_record_batch_over_500_accounts_costs_a_fixed_number_of_queries(
    world, credit, django_capture_on_commit_callbacks
):
    def crossing_batch(accounts: list[Account]) -> int:
        for account in accounts:
            SpendLimit.objects.create(account=account, set_by="manager", monthly_amount=Decimal("20.00"))
        rows = [
            {
                "account": str(account.public_id),
                "product": "sms.outbound",
                "quantity": "1000",
                "started_at": (timezone.now() - timedelta(minutes=1)).isoformat(),
                "idempotency_key": f"q-{next(KEYS)}",
            }
            for account in accounts
            for _ in range(10)
        ]
        ingest_usage(submitter=world.manager, rows=rows, source="api", actor=Actor(user=world.users["owner"]))
        with CaptureQueriesContext(connection) as queries:
            result = check_accounts(account_ids=[a.pk for a in accounts])
        assert result.reached == result.blocked == len(accounts)  # every one crossed its USD 20.00
        reads = [q for q in queries.captured_queries if q["sql"].startswith("SELECT")]
        return len(queries) if connection.vendor == "postgresql" else len(reads)

    enabled = [a for a in make_managed_accounts(world.manager, 600) if a.status == Account.Status.ENABLED]
    small, large = crossing_batch(enabled[:50]), crossing_batch(enabled[50:550])
    # SQLite caps a statement at 999 parameters, so Django splits its bulk writes there: its reads are
    # compared; on PostgreSQL every statement is.
    print(f"\nlimit check ({connection.vendor}): {large} queries for 5,000 records over 500 accounts, {small} over 50")
    assert large == small <= 14  # 12, and the manager's resale prices read once (controls.models.ResalePrices)


def test_the_hourly_task_lifts_blocks_whose_period_ended_and_blocks_used_up_credit(world):
    Account.objects.filter(pk=world.managed.pk).update(
        service_blocked_reason=ServiceBlock.SPEND_LIMIT, service_blocked_until=timezone.now() - timedelta(seconds=1)
    )
    cedar = separate_account(world)
    ledger.post_entry(
        account=cedar,
        kind="adjustment",
        amount=Decimal("-3.00"),
        key="old-debt",
        description="Debt",
        allow_overdraft=True,
    )  # a debt from before these rules, never checked
    Account.objects.filter(pk=cedar.pk).update(service_blocked_reason="")

    assert check_period_start.delay().get() == 2  # eager in tests: the checks ran too

    assert fresh(world.managed).service_blocked_reason == ""
    assert len(events(world.managed, "service.unblocked")) == 1
    assert fresh(cedar).service_block == ServiceBlock.CREDIT_EXHAUSTED
    assert check_period_start.delay().get() == 0


def test_a_roll_up_accounts_limit_counts_what_it_pays_at_its_resale_rate(
    world, owner_client, credit, django_capture_on_commit_callbacks
):
    """The one pricing rule (billing.pricing) holds for limits too: with a resale rate for SMS of
    USD 0.010 this month (the list price is 0.004), 2,000 messages cost the roll-up account USD 20.00
    (8.00 at the platform's price), so its USD 15.00 limit is crossed, and the limits page and its own
    limit say 20.00 spent, this month and today."""
    this_month = timezone.now().date().replace(day=1)
    sms = Product.objects.get(sku="sms.outbound")
    ResaleRate.objects.create(
        manager=world.manager, product=sms, unit_price=Decimal("0.010"), effective_from=this_month
    )
    assert set_limit(owner_client, world, world.managed, monthly_amount="15.00").status_code == 302

    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 2)

    assert fresh(world.managed).service_block == ServiceBlock.SPEND_LIMIT
    (limit,) = limits_of(fresh(world.managed), today=timezone.now().date())
    assert (limit.monthly_use, limit.daily_use) == (Decimal("20.00"), Decimal("20.00"))
    page = text(owner_client.get(reverse("controls_limits", args=[world.manager.public_id])))
    assert "20.00" in page and "8.00" not in page


def test_a_roll_up_accounts_limit_check_counts_its_managers_markup(
    world, owner_client, credit, django_capture_on_commit_callbacks
):
    """The check after a batch prices the roll-up account's usage as it pays it: 2,000 minutes of
    outbound voice are USD 20.00 at the platform's price and 22.00 with the manager's 10 % markup,
    so a USD 21.00 limit is crossed (on SQLite too, where a whole-number markup divided by 100 in
    SQL once came out as 0)."""
    set_resale_markup(manager=world.manager, markup_percent=Decimal("10"), actor=Actor(user=world.users["owner"]))
    assert set_limit(owner_client, world, world.managed, monthly_amount="21.00").status_code == 302

    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 2, product="voice.outbound")

    assert fresh(world.managed).service_block == ServiceBlock.SPEND_LIMIT
    (limit,) = limits_of(fresh(world.managed), today=timezone.now().date())
    assert (limit.monthly_use, limit.daily_use) == (Decimal("22.00"), Decimal("22.00"))


def test_the_limits_page_prices_each_account_as_it_pays_nearest_first_in_a_fixed_number_of_queries(
    world, owner_client, credit, django_capture_on_commit_callbacks
):
    """The manager's prices read once for the whole page, the one rule (billing.pricing.prices_for)
    for each account: with a 10 % markup and a resale rate for SMS of USD 0.010 this month, Alpine
    Voice (roll-up) pays 20.00 for 2,000 messages (8.00 at the platform's price), Blue Harbor
    (roll-up) 22.00 for 2,000 minutes of outbound voice (20.00 and the markup), Cedar (billed
    separately) the platform's 8.00 for its 2,000 messages. Nearest first: Blue Harbor 88 % of 25.00,
    Cedar 80 % of its daily 10.00, Alpine 66.67 % of its 30.00 on SMS, then an account without limits."""
    this_month = timezone.now().date().replace(day=1)
    sms = Product.objects.get(sku="sms.outbound")
    set_resale_markup(manager=world.manager, markup_percent=Decimal("10"), actor=Actor(user=world.users["owner"]))
    ResaleRate.objects.create(
        manager=world.manager, product=sms, unit_price=Decimal("0.010"), effective_from=this_month
    )
    cedar = separate_account(world)
    ledger.post_entry(account=cedar, kind="top_up", amount=Decimal("50.00"), key="t1", description="Top-up")
    set_limit(owner_client, world, world.managed, monthly_amount="40.00", action="alert")
    set_limit(owner_client, world, world.managed, product=sms.sku, monthly_amount="30.00", action="alert")
    set_limit(owner_client, world, world.sibling, monthly_amount="25.00", action="alert")
    set_limit(owner_client, world, cedar, monthly_amount="32.00", daily_amount="10.00", action="alert")
    (plain,) = make_managed_accounts(world.manager, 1)
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 2)
        usage(world, world.sibling, 2, product="voice.outbound")
        usage(world, cedar, 2)
    url = reverse("controls_limits", args=[world.manager.public_id])

    def page() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as queries:
            response = owner_client.get(url)
        assert response.status_code == 200
        return len(queries), text(response)

    few, html_text = page()
    rows = [html_text.index(name) for name in ("Blue Harbor", "Cedar Call Centre", "Alpine Voice", plain.name)]
    assert rows == sorted(rows)
    for shown in ("88.00 %", "80.00 %", "66.67 %", "USD 22.00", "USD 20.00", "USD 8.00"):
        assert shown in html_text
    assert "USD 8.00 this month, USD 8.00 today" in html_text  # Cedar's daily amount, at the platform's price
    # The page agrees with the rule itself, row by row, and with each account's own limits.
    today = timezone.now().date()
    spend = {account.pk: account.month_spend for account in limits_overview(world.manager, today=today)}
    for account, expected in ((world.managed, "20.00"), (world.sibling, "22.00"), (cedar, "8.00"), (plain, "0")):
        prices = prices_for(fresh(account))
        rows_of = MonthlyUsage.objects.filter(account=account, month=this_month)
        by_rule = sum((prices.cost(r.product_id, r.month, r.quantity, r.cost) for r in rows_of), Decimal(0))
        assert spend[account.pk] == by_rule == Decimal(expected), account.name
    assert [limit.monthly_use for limit in limits_of(fresh(world.managed), today=today)] == [
        Decimal("20.00"),
        Decimal("20.00"),
    ]
    (cedars,) = limits_of(fresh(cedar), today=today)
    assert (cedars.monthly_use, cedars.daily_use) == (Decimal("8.00"), Decimal("8.00"))

    for account in make_managed_accounts(world.manager, 30):
        SpendLimit.objects.create(account=account, set_by="manager", monthly_amount=Decimal("50.00"))
    ResaleRate.objects.create(
        manager=world.manager,
        product=Product.objects.get(sku="mms.outbound"),
        unit_price=Decimal("0.020"),
        effective_from=this_month,
    )
    many, html_text = page()
    assert many == few
    assert html_text.index("Blue Harbor") < html_text.index("Alpine Voice") < html_text.index("Bulk Customer")
