"""Property tests of the money rules (DESIGN section 5, issue 12): for random months of usage (quantities
and rates with up to 6 decimals, many records per product, several products and accounts, roll-up and
separate billing, a rate change inside the month, markups 0..1,000 % with two decimals), ingested
through `ingest_usage` and closed through the close services (`start_close`, `close_plan`,
`close_item` / `close_items`):

- every invoice's lines add up to its total, with at most one rounding line per section;
- every platform invoice equals the ledger's usage charges of its party and month, and each of its
  sections the exact cost of that account's usage (computed here from the generated records and
  rates, not read back) rounded to cents once;
- every reseller invoice is its platform section x (1 + markup / 100), rounded once; at 0 % it is
  the section line for line;
- the manager's roll-up sections add up to the usage charges the ledger posted to the manager for
  its roll-up accounts;
- with per-product resale rates (issue 12 item 9; effective per month, some set before the month,
  changed or removed at its start, or only from the next month), every reseller invoice is the
  sum of quantity x resale rate rounded once per product in force in the month, plus the other
  products' platform cost with the markup applied once and rounded once (billing.pricing); its
  lines still add up to its total, and without resale rates in force it is the rule above.

Each example builds its data inside a transaction that it rolls back, so examples never see each
other's. `./dev test` runs 25 examples (on whichever database DATABASE_URL names: SQLite, or
PostgreSQL in CI's second pass, where the roll-up sections and reseller invoices are written by SQL);
`./dev bench` (-m slow) runs 300, with more accounts and records."""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.actor import Actor
from accounts.models import Account
from billing.invoices import services as invoice_services
from billing.invoices.close import close_item, close_items, close_plan, start_close
from billing.models import Invoice, InvoiceLine, LedgerEntry, Product, Rate, ResaleRate
from billing.money import to_cents
from billing.usage.services import ingest_usage
from tests.factories import AccountFactory, account_with_owner

pytestmark = pytest.mark.django_db

MONTH = date(2025, 3, 1)
START, END = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)
SECONDS = int((END - START).total_seconds())
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)
SKUS = ["voice.outbound", "voice.inbound", "sms.outbound", "mms.inbound", "number.local", "fax.outbound"]
ROUNDING = "Rounding to the section total"

DEFAULT = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BENCH = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- The generated month ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductPlan:
    sku: str
    list_price_from: timedelta  # a new list price from this far into the month
    new_list_price: Decimal
    negotiated: tuple[Decimal, timedelta, Decimal] | None  # the manager's rate, changed this far in, to


@dataclass(frozen=True)
class AccountPlan:
    kind: str  # "manager", "rollup", "separate" or "standard"
    records: list[tuple[int, Decimal, timedelta]]  # (product index, quantity, this far into the month)


@dataclass(frozen=True)
class MonthPlan:
    products: list[ProductPlan]
    accounts: list[AccountPlan]
    markup: Decimal
    batch_size: int
    one_by_one: bool
    # Per product index: how its resale rate stands (RESALE_HISTORIES) and two rates for it.
    resale: tuple[tuple[str, Decimal, Decimal], ...] = ()


FEBRUARY, APRIL = date(2025, 2, 1), date(2025, 4, 1)
# none; from March; February then changed in March; February then removed in March (the markup);
# February, in force in March; only from April (not in force in March).
RESALE_HISTORIES = ("none", "march", "changed", "removed", "before", "april")


rates = st.integers(0, 2_000_000).map(lambda n: Decimal(n).scaleb(-6))  # 0 .. 2.000000, six decimals
instants = st.builds(
    lambda s, us: timedelta(seconds=s, microseconds=us), st.integers(0, SECONDS - 1), st.integers(0, 999_999)
)
quantities = st.one_of(
    st.builds(lambda n, places: Decimal(n).scaleb(-places), st.integers(0, 99_999_999), st.integers(0, 6)),
    st.sampled_from(["0.5", "1.25", "1.5", "250.5", "1001.25", "3", "0.000001"]).map(Decimal),  # half cents
)
markups = st.one_of(st.just(Decimal("0.00")), st.integers(0, 100_000).map(lambda n: Decimal(n).scaleb(-2)))


def product_plans() -> st.SearchStrategy[ProductPlan]:
    negotiated = st.none() | st.tuples(rates, instants, rates)
    return st.builds(ProductPlan, st.sampled_from(SKUS), instants, rates, negotiated)


@st.composite
def month_plans(draw: st.DrawFn, *, max_managed: int, max_records: int) -> MonthPlan:
    products = draw(st.lists(product_plans(), min_size=1, max_size=4, unique_by=lambda p: p.sku))
    record = st.tuples(st.integers(0, len(products) - 1), quantities, instants)
    kinds = ["manager", *draw(st.lists(st.sampled_from(["rollup", "separate"]), max_size=max_managed))]
    kinds += ["standard"] * draw(st.integers(0, 1))
    accounts = [AccountPlan(kind, draw(st.lists(record, max_size=max_records))) for kind in kinds]
    resale = draw(
        st.one_of(
            st.just(()),
            st.tuples(*[st.tuples(st.sampled_from(RESALE_HISTORIES), rates, rates) for _ in products]),
        )
    )
    return MonthPlan(products, accounts, draw(markups), draw(st.integers(1, 3)), draw(st.booleans()), resale)


def resale_rate_in_march(history: str, first: Decimal, then: Decimal) -> Decimal | None:
    """The resale rate in force in March for a product of that history (written here, not the rule's code)."""
    return {"march": first, "changed": then, "before": first}.get(history)


# --- Building it through the real services -------------------------------------------------------------


def schedule(
    first: Decimal, change: timedelta, then: Decimal, *, since: datetime
) -> tuple[list[datetime], list[Decimal]]:
    return [since, START + change], [first, then]


def price_at(timeline: tuple[list[datetime], list[Decimal]], at: datetime) -> Decimal:
    """The rate in force at `at`: the last one started by then (written here, not the rating's code)."""
    return timeline[1][bisect.bisect_right(timeline[0], at) - 1]


def add_resale_rates(plan: MonthPlan, manager: Account) -> None:
    """The manager's resale rates of the plan, written as the rows a manager's earlier changes left."""
    for product_plan, (history, first, then) in zip(plan.products, plan.resale, strict=False):
        product = Product.objects.get(sku=product_plan.sku)
        rows = {
            "none": [],
            "march": [(MONTH, first)],
            "changed": [(FEBRUARY, first), (MONTH, then)],
            "removed": [(FEBRUARY, first), (MONTH, None)],
            "before": [(FEBRUARY, first)],
            "april": [(APRIL, first)],
        }[history]
        for start, price in rows:
            ResaleRate.objects.create(manager=manager, product=product, unit_price=price, effective_from=start)


ByProduct = dict[tuple[int, str], list[Decimal]]  # (account pk, sku) -> [quantity, exact platform cost]


def build(plan: MonthPlan) -> tuple[list[Account], dict[int, Decimal], ByProduct]:
    """The plan's accounts, rates, markup, resale rates and usage; returns the accounts (manager
    first), each account's exact cost of the month, and its quantity and exact cost per product,
    worked out here from the plan."""
    manager, owner = account_with_owner(name="Prop Reseller", manager_kind=True)
    accounts = [manager]
    for n, account_plan in enumerate(plan.accounts[1:]):
        if account_plan.kind == "standard":
            accounts.append(AccountFactory(name=f"Prop Standard {n}"))
        else:
            mode = Account.BillingMode.ROLLUP if account_plan.kind == "rollup" else Account.BillingMode.SEPARATE
            accounts.append(
                AccountFactory(name=f"Prop Managed {n}", managed_kind=True, manager=manager, billing_mode=mode)
            )
    Account.objects.filter(pk__in=[a.pk for a in accounts]).update(created_at=LONG_AGO)
    list_prices, negotiated = {}, {}
    for product_plan in plan.products:
        product = Product.objects.get(sku=product_plan.sku)
        base = Rate.objects.filter(product=product, account=None).order_by("effective_from").first()
        assert base is not None
        Rate.objects.create(
            product=product, unit_price=product_plan.new_list_price, effective_from=START + product_plan.list_price_from
        )
        list_prices[product_plan.sku] = schedule(
            base.unit_price, product_plan.list_price_from, product_plan.new_list_price, since=base.effective_from
        )
        if product_plan.negotiated is not None:
            first, change, then = product_plan.negotiated
            Rate.objects.create(product=product, account=manager, unit_price=first, effective_from=LONG_AGO)
            Rate.objects.create(product=product, account=manager, unit_price=then, effective_from=START + change)
            negotiated[product_plan.sku] = schedule(first, change, then, since=LONG_AGO)
    actor = Actor(user=owner)
    invoice_services.set_resale_markup(manager=manager, markup_percent=plan.markup, actor=actor)
    add_resale_rates(plan, manager)
    exact: dict[int, Decimal] = {}
    by_product: ByProduct = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for account, account_plan in zip(accounts, plan.accounts, strict=True):
        rows, exact[account.pk] = [], Decimal(0)
        for n, (index, quantity, offset) in enumerate(account_plan.records):
            sku, at = plan.products[index].sku, START + offset
            timeline = list_prices[sku] if account_plan.kind == "standard" else negotiated.get(sku, list_prices[sku])
            exact[account.pk] += quantity * price_at(timeline, at)
            by_product[(account.pk, sku)][0] += quantity
            by_product[(account.pk, sku)][1] += quantity * price_at(timeline, at)
            row = {"product": sku, "quantity": str(quantity), "started_at": at.isoformat(), "idempotency_key": f"p{n}"}
            rows.append({**row, "account": str(account.public_id)} if account.is_managed else row)
        if rows:
            submitter = manager if account.is_managed else account
            ingest_usage(submitter=submitter, rows=rows, source="api", actor=actor)
    return accounts, exact, by_product


def close_the_month(plan: MonthPlan) -> None:
    run = start_close(MONTH)
    batches, alone = close_plan(run, plan.batch_size)
    for account_id in [*alone, *(pk for batch in batches for pk in batch)] if plan.one_by_one else alone:
        close_item(run_id=run.pk, account_id=account_id)
    if not plan.one_by_one:
        for batch in batches:
            assert close_items(run_id=run.pk, account_ids=batch) == {}


# --- The properties ------------------------------------------------------------------------------------


def sections(invoice: Invoice) -> dict[int, list[InvoiceLine]]:
    by_account: dict[int, list[InvoiceLine]] = defaultdict(list)
    for line in invoice.lines.order_by("position"):
        by_account[line.account_id].append(line)
    return by_account


def usage_charges(account: Account, **related: object) -> Decimal:
    entries = LedgerEntry.objects.filter(account=account, kind=LedgerEntry.Kind.USAGE_CHARGE, period=MONTH, **related)
    return -(entries.aggregate(total=Sum("amount"))["total"] or Decimal(0))


def resale_total(plan: MonthPlan, account: Account, by_product: ByProduct) -> Decimal:
    """A reseller invoice's total as the rule states it: quantity x resale rate rounded once per
    product with a resale rate in force, plus the others' cost with the markup applied once to
    their sum and rounded once."""
    in_march = {
        product_plan.sku: resale_rate_in_march(*history)
        for product_plan, history in zip(plan.products, plan.resale, strict=False)
    }
    resold, rest = Decimal("0.00"), Decimal(0)
    for (account_id, sku), (quantity, cost) in by_product.items():
        if account_id != account.pk:
            continue
        rate = in_march.get(sku)
        if rate is None:
            rest += cost
        else:
            resold += to_cents(quantity * rate)
    return resold + to_cents(to_cents(rest) * (1 + plan.markup / 100))


def assert_the_money_adds_up(
    plan: MonthPlan, accounts: list[Account], exact: dict[int, Decimal], by_product: ByProduct
) -> None:
    manager, rollups = accounts[0], [a for a in accounts if a.is_managed and not a.has_own_balance]
    payers = [a for a in accounts if a.has_own_balance]
    invoices = list(Invoice.objects.filter(period=MONTH).select_related("bill_to"))
    platform = {i.bill_to_id: i for i in invoices if i.issuer_id is None}
    resale = {i.bill_to_id: i for i in invoices if i.issuer_id is not None}
    assert sorted(platform) == sorted(a.pk for a in payers)
    assert sorted(resale) == sorted(a.pk for a in rollups)

    for invoice in invoices:  # lines add up to the total, one rounding line per section at most
        assert invoice.status == Invoice.Status.FINALIZED
        assert invoice.charges == invoice.total
        for lines in sections(invoice).values():
            assert [line.description for line in lines].count(ROUNDING) <= 1
        assert sum((line.amount for line in invoice.lines.all()), Decimal("0.00")) == invoice.total

    section_totals: dict[int, Decimal] = {}
    for invoice in platform.values():  # the ledger's usage charges, section by section
        assert invoice.total == usage_charges(invoice.bill_to)
        for account_id, lines in sections(invoice).items():
            section_totals[account_id] = sum((line.amount for line in lines), Decimal("0.00"))
            assert section_totals[account_id] == to_cents(exact[account_id])
            assert section_totals[account_id] == usage_charges(invoice.bill_to, related_account_id=account_id)
    assert all(exact[a.pk] == 0 for a in accounts if a.pk not in section_totals)

    rolled_up = sum((section_totals.get(a.pk, Decimal(0)) for a in rollups), Decimal("0.00"))
    assert rolled_up == usage_charges(manager, related_account_id__in=[a.pk for a in rollups])

    manager_sections = sections(platform[manager.pk])
    for account in rollups:  # the section at the markup, rounded once
        invoice, section = resale[account.pk], section_totals.get(account.pk, Decimal("0.00"))
        assert invoice.markup_percent == plan.markup
        assert invoice.total == resale_total(plan, account, by_product)
        if not any(resale_rate_in_march(*history) is not None for history in plan.resale):
            assert invoice.total == to_cents(section * (1 + plan.markup / 100))
        if plan.markup == 0 and not any(resale_rate_in_march(*history) is not None for history in plan.resale):
            assert invoice.total == section
            ours = [(line.description, line.quantity, line.amount) for line in invoice.lines.order_by("position")]
            theirs = [(line.description, line.quantity, line.amount) for line in manager_sections.get(account.pk, [])]
            assert ours == theirs


def check(plan: MonthPlan) -> None:
    with transaction.atomic():
        accounts, exact, by_product = build(plan)
        close_the_month(plan)
        assert_the_money_adds_up(plan, accounts, exact, by_product)
        transaction.set_rollback(True)


@DEFAULT
@given(month_plans(max_managed=3, max_records=10))
def test_every_invoice_of_a_random_month_adds_up_to_the_ledger_and_its_sections(plan):
    check(plan)


@pytest.mark.slow
@BENCH
@given(month_plans(max_managed=6, max_records=40))
def test_every_invoice_of_a_random_month_adds_up_at_bench_scale(plan):
    check(plan)
