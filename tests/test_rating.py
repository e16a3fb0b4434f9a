"""Rating: which unit price applies (list, negotiated, inherited, custom), effective-date
boundaries, exact 6-decimal costs, the one rounding rule, the rate card and the Rate constraints."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.actor import Actor
from accounts.models import Account
from billing import money
from billing.models import Product, Rate, UsageRecord
from billing.money import to_cents
from billing.usage.rating import RateBook, rate_card, rate_for
from billing.usage.services import ingest_usage

LIST_SMS = Decimal("0.004")  # billing/migrations/0002_catalogue.py
LIST_VOICE = Decimal("0.01")
SINCE = datetime(2024, 1, 1, tzinfo=UTC)
AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CHANGE = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


@pytest.fixture
def sms(db):
    return Product.objects.get(sku="sms.outbound")


@pytest.fixture
def voice(db):
    return Product.objects.get(sku="voice.outbound")


def set_rate(product, account, price, effective_from=SINCE) -> Rate:
    return Rate.objects.create(
        product=product, account=account, unit_price=Decimal(price), effective_from=effective_from
    )


def allow_custom_pricing(account: Account) -> Account:
    account.allow_custom_pricing = True
    account.save()
    return account


def ingest_at(world, account, sku, quantity, times, prefix="k"):
    rows = [
        {"product": sku, "quantity": quantity, "started_at": t.isoformat(), "idempotency_key": f"{prefix}{i}"}
        for i, t in enumerate(times)
    ]
    return ingest_usage(submitter=account, rows=rows, source="api", actor=Actor(user=world.users["owner"]))


# --- Which rate applies ------------------------------------------------------------------------------


def test_list_price_applies_without_a_negotiated_rate(world, sms, voice):
    for account in (world.standard, world.manager, world.managed, world.other_managed):
        assert rate_for(account=account, product=sms, at=AT) == LIST_SMS
        assert rate_for(account=account, product=voice, at=AT) == LIST_VOICE


def test_a_managers_negotiated_rate_is_inherited_by_its_managed_accounts(world, sms, voice):
    set_rate(sms, world.manager, "0.0035")
    for account in (world.manager, world.managed, world.sibling):
        assert rate_for(account=account, product=sms, at=AT) == Decimal("0.0035")
        # Only the negotiated product changes.
        assert rate_for(account=account, product=voice, at=AT) == LIST_VOICE


def test_a_managed_account_with_custom_pricing_uses_its_custom_rate(world, sms):
    set_rate(sms, world.manager, "0.0035")
    allow_custom_pricing(world.managed)
    set_rate(sms, world.managed, "0.0031")
    assert rate_for(account=world.managed, product=sms, at=AT) == Decimal("0.0031")
    assert rate_for(account=world.sibling, product=sms, at=AT) == Decimal("0.0035")
    assert rate_for(account=world.manager, product=sms, at=AT) == Decimal("0.0035")


def test_custom_pricing_allowed_but_no_custom_rate_falls_back_to_the_manager(world, sms):
    set_rate(sms, world.manager, "0.0035")
    allow_custom_pricing(world.managed)
    assert rate_for(account=world.managed, product=sms, at=AT) == Decimal("0.0035")


def test_a_managed_account_without_custom_pricing_ignores_its_custom_rate(world, sms):
    set_rate(sms, world.manager, "0.0035")
    set_rate(sms, world.managed, "0.0001")  # e.g. left over after staff turned custom pricing off
    assert not world.managed.allow_custom_pricing
    assert rate_for(account=world.managed, product=sms, at=AT) == Decimal("0.0035")


def test_without_custom_pricing_and_no_manager_rate_the_list_price_applies(world, sms):
    set_rate(sms, world.managed, "0.0001")
    assert rate_for(account=world.managed, product=sms, at=AT) == LIST_SMS


def test_turning_custom_pricing_off_returns_to_the_managers_rate(world, sms):
    set_rate(sms, world.manager, "0.0035")
    allow_custom_pricing(world.managed)
    set_rate(sms, world.managed, "0.0031")
    world.managed.allow_custom_pricing = False
    world.managed.save()
    assert rate_for(account=world.managed, product=sms, at=AT) == Decimal("0.0035")


def test_a_standard_accounts_negotiated_rate_applies_to_it(world, sms):
    set_rate(sms, world.standard, "0.0038")
    assert rate_for(account=world.standard, product=sms, at=AT) == Decimal("0.0038")


def test_rates_of_one_account_do_not_reach_accounts_of_another_manager(world, sms):
    set_rate(sms, world.manager, "0.0035")
    allow_custom_pricing(world.managed)
    set_rate(sms, world.managed, "0.0031")
    set_rate(sms, world.standard, "0.0038")
    assert rate_for(account=world.other_manager, product=sms, at=AT) == LIST_SMS
    assert rate_for(account=world.other_managed, product=sms, at=AT) == LIST_SMS
    set_rate(sms, world.other_manager, "0.0039")
    assert rate_for(account=world.other_managed, product=sms, at=AT) == Decimal("0.0039")
    assert rate_for(account=world.managed, product=sms, at=AT) == Decimal("0.0031")
    assert rate_for(account=world.sibling, product=sms, at=AT) == Decimal("0.0035")
    assert rate_for(account=world.standard, product=sms, at=AT) == Decimal("0.0038")


def test_a_negotiated_rate_starting_later_leaves_earlier_usage_at_list_price(world, sms):
    set_rate(sms, world.manager, "0.0035", effective_from=CHANGE)
    assert rate_for(account=world.managed, product=sms, at=CHANGE - MICRO) == LIST_SMS
    assert rate_for(account=world.managed, product=sms, at=CHANGE) == Decimal("0.0035")


def test_a_product_with_no_price_yet_has_no_rate(world):
    product = Product.objects.create(sku="video.outbound", name="Outbound video", unit="minute")
    assert rate_for(account=world.standard, product=product, at=AT) is None
    set_rate(product, None, "0.05", effective_from=CHANGE)
    assert rate_for(account=world.standard, product=product, at=CHANGE - MICRO) is None
    assert rate_for(account=world.standard, product=product, at=CHANGE) == Decimal("0.05")


def test_the_rate_book_answers_like_rate_for_for_many_accounts_at_once(world, sms):
    set_rate(sms, world.manager, "0.0035")
    allow_custom_pricing(world.managed)
    set_rate(sms, world.managed, "0.0031")
    set_rate(sms, world.standard, "0.0038")
    accounts = [world.manager, world.managed, world.sibling, world.other_manager, world.other_managed, world.standard]
    book = RateBook(accounts)
    for account in accounts:
        assert book.rate_for(account, sms.pk, AT) == rate_for(account=account, product=sms, at=AT)


# --- Effective-date boundary -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "priced"),
    [
        ("manager", "managed"),  # inherited negotiated rate
        ("standard", "standard"),  # own negotiated rate
        (None, "other_managed"),  # list price
    ],
)
def test_a_rate_change_applies_from_its_instant_exactly(world, sms, owner, priced):
    owner_account = getattr(world, owner) if owner else None
    if owner_account is not None:
        set_rate(sms, owner_account, "0.0035")
    set_rate(sms, owner_account, "0.0030", effective_from=CHANGE)
    account = getattr(world, priced)
    old = Decimal("0.0035") if owner_account else LIST_SMS
    assert rate_for(account=account, product=sms, at=CHANGE - MICRO) == old
    assert rate_for(account=account, product=sms, at=CHANGE) == Decimal("0.0030")
    assert rate_for(account=account, product=sms, at=CHANGE + MICRO) == Decimal("0.0030")


def test_ingested_usage_is_rated_with_the_rate_in_force_at_its_start(world, sms):
    set_rate(sms, world.manager, "0.0035")
    set_rate(sms, world.manager, "0.0030", effective_from=CHANGE)
    times = [CHANGE - MICRO, CHANGE, CHANGE + MICRO]
    ingest_at(world, world.managed, "sms.outbound", "7", times)
    stored = {r.idempotency_key: r for r in UsageRecord.objects.filter(account=world.managed)}
    assert stored["k0"].started_at == CHANGE - MICRO  # the microsecond survives storage
    assert (stored["k0"].rate, stored["k0"].cost) == (Decimal("0.0035"), Decimal("0.0245"))
    assert (stored["k1"].rate, stored["k1"].cost) == (Decimal("0.0030"), Decimal("0.0210"))
    assert (stored["k2"].rate, stored["k2"].cost) == (Decimal("0.0030"), Decimal("0.0210"))


def test_a_boundary_given_with_an_offset_is_the_same_instant(world, sms):
    set_rate(sms, world.standard, "0.0035")
    set_rate(sms, world.standard, "0.0030", effective_from=CHANGE)  # 12:00 UTC is 14:00 at +02:00
    times = {
        "just-before": "2025-03-01T13:59:59.999999+02:00",
        "at": "2025-03-01T14:00:00+02:00",
        "just-after": "2025-03-01T14:00:00.000001+02:00",
    }
    rows = [
        {"product": "sms.outbound", "quantity": "1", "started_at": t, "idempotency_key": k} for k, t in times.items()
    ]
    ingest_usage(submitter=world.standard, rows=rows, source="api", actor=Actor(user=world.users["standard_owner"]))
    rates = dict(UsageRecord.objects.values_list("idempotency_key", "rate"))
    assert rates == {"just-before": Decimal("0.0035"), "at": Decimal("0.0030"), "just-after": Decimal("0.0030")}


def test_a_later_rate_change_does_not_rerate_stored_usage(world, sms):
    ingest_at(world, world.managed, "sms.outbound", "10", [AT])
    set_rate(sms, world.manager, "0.0001", effective_from=AT - timedelta(days=1))
    record = UsageRecord.objects.get(account=world.managed)
    assert (record.rate, record.cost) == (LIST_SMS, Decimal("0.04"))


# --- Exact 6-decimal rates and costs ------------------------------------------------------------------


def test_a_six_decimal_rate_gives_an_exact_cost(world, sms):
    set_rate(sms, world.standard, "0.004125")
    ingest_at(world, world.standard, "sms.outbound", "3.5", [AT])
    record = UsageRecord.objects.get(account=world.standard)
    assert record.rate == Decimal("0.004125")
    assert record.cost == Decimal("0.0144375")
    assert isinstance(record.cost, Decimal)
    assert to_cents(record.cost) == Decimal("0.01")


def test_the_smallest_rate_and_quantity_give_an_exact_twelve_decimal_cost(world, sms):
    set_rate(sms, world.standard, "0.000001")
    ingest_at(world, world.standard, "sms.outbound", "0.000001", [AT])
    assert UsageRecord.objects.get(account=world.standard).cost == Decimal("0.000000000001")


def test_costs_summed_over_many_records_equal_the_exact_decimal_sum(world, voice):
    set_rate(voice, world.manager, "0.004125")
    rows = [
        {
            "account": str(world.managed.public_id),
            "product": "voice.outbound",
            "quantity": f"{i % 37}.{(i * 7919) % 1_000_000:06d}",
            "started_at": (AT - timedelta(minutes=i)).isoformat(),
            "idempotency_key": f"call-{i}",
        }
        for i in range(500)
    ]
    ingest_usage(submitter=world.manager, rows=rows, source="api", actor=Actor(user=world.users["owner"]))
    expected = sum((Decimal(r["quantity"]) * Decimal("0.004125") for r in rows), Decimal(0))
    stored = list(UsageRecord.objects.filter(account=world.managed).values_list("quantity", "cost"))
    assert len(stored) == 500
    assert all(cost == quantity * Decimal("0.004125") for quantity, cost in stored)
    assert sum((cost for _, cost in stored), Decimal(0)) == expected
    assert expected.as_tuple().exponent <= -10  # the sum really carries sub-cent digits


# --- The rounding rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        ("0.005", "0.01"),
        ("0.0049999", "0.00"),
        ("0.0149999", "0.01"),
        ("0.015", "0.02"),
        ("2.675", "2.68"),  # 2.675 is 2.67499999... as a float; Decimal keeps it exact
        ("2.665", "2.67"),  # half up, not half even
        ("0.0144375", "0.01"),
        ("1234.565000000001", "1234.57"),
        ("-0.005", "-0.01"),  # half up is away from zero for credits
        ("7", "7.00"),
    ],
)
def test_amounts_are_rounded_to_cents_half_up(amount, cents):
    rounded = to_cents(Decimal(amount))
    assert rounded == Decimal(cents)
    assert rounded.as_tuple().exponent == -2


def test_the_rounding_rule_is_written_down_where_it_is_applied():
    assert "half up" in money.__doc__
    assert money.format_money(Decimal("1234.565")) == "USD 1,234.57"


# --- The rate card -------------------------------------------------------------------------------------


def test_the_rate_card_lists_every_active_product_with_its_price_and_source(world, sms, voice):
    set_rate(sms, world.manager, "0.0035")
    Product.objects.filter(sku="fax.outbound").update(active=False)
    card = rate_card(world.manager, at=AT)
    assert [p.sku for p, _, _ in card] == sorted(Product.objects.filter(active=True).values_list("sku", flat=True))
    assert "fax.outbound" not in {p.sku for p, _, _ in card}
    by_sku = {p.sku: (price, source) for p, price, source in card}
    assert len(by_sku) == 9
    assert by_sku["sms.outbound"] == (Decimal("0.0035"), "negotiated rate")
    assert by_sku["voice.outbound"] == (LIST_VOICE, "list price")
    assert by_sku["number.tollfree"] == (Decimal("2"), "list price")
    for product, price, _ in card:
        assert price == rate_for(account=world.manager, product=product, at=AT)


def test_the_rate_card_of_a_managed_account_shows_inherited_and_custom_sources(world, sms, voice):
    set_rate(sms, world.manager, "0.0035")
    set_rate(voice, world.managed, "0.0090")  # ignored: no custom pricing yet
    card = {p.sku: (price, source) for p, price, source in rate_card(world.managed, at=AT)}
    assert card["sms.outbound"] == (Decimal("0.0035"), "negotiated rate")
    assert card["voice.outbound"] == (LIST_VOICE, "list price")
    allow_custom_pricing(world.managed)
    card = {p.sku: (price, source) for p, price, source in rate_card(world.managed, at=AT)}
    assert card["voice.outbound"] == (Decimal("0.0090"), "custom rate")
    assert card["sms.outbound"] == (Decimal("0.0035"), "negotiated rate")


def test_the_rate_card_is_dated(world, sms):
    set_rate(sms, world.standard, "0.0030", effective_from=CHANGE)
    before = {p.sku: (price, source) for p, price, source in rate_card(world.standard, at=CHANGE - MICRO)}
    after = {p.sku: (price, source) for p, price, source in rate_card(world.standard, at=CHANGE)}
    assert before["sms.outbound"] == (LIST_SMS, "list price")
    assert after["sms.outbound"] == (Decimal("0.0030"), "negotiated rate")


# --- Rate constraints --------------------------------------------------------------------------------


def test_the_database_refuses_a_negative_unit_price(world, sms):
    with pytest.raises(IntegrityError), transaction.atomic():
        set_rate(sms, world.standard, "-0.000001")
    with pytest.raises(IntegrityError), transaction.atomic():
        set_rate(sms, None, "-1", effective_from=CHANGE)
    set_rate(sms, world.standard, "0")  # free is allowed


def test_the_database_refuses_two_list_prices_for_one_product_and_instant(sms):
    set_rate(sms, None, "0.0042", effective_from=CHANGE)
    with pytest.raises(IntegrityError), transaction.atomic():
        set_rate(sms, None, "0.0043", effective_from=CHANGE)
    assert Rate.objects.filter(product=sms, account=None, effective_from=CHANGE).count() == 1


def test_the_database_refuses_two_rates_for_one_account_product_and_instant(world, sms):
    set_rate(sms, world.manager, "0.0035", effective_from=CHANGE)
    with pytest.raises(IntegrityError), transaction.atomic():
        set_rate(sms, world.manager, "0.0036", effective_from=CHANGE)
    # Other accounts may have their own rate at that instant, and so may the list price.
    set_rate(sms, world.standard, "0.0036", effective_from=CHANGE)
    set_rate(sms, None, "0.0045", effective_from=CHANGE)


def test_clean_refuses_a_custom_rate_for_a_managed_account_without_custom_pricing(world, sms):
    rate = Rate(product=sms, account=world.managed, unit_price=Decimal("0.003"), effective_from=CHANGE)
    with pytest.raises(ValidationError, match="may not have custom pricing"):
        rate.clean()
    allow_custom_pricing(world.managed)
    rate.clean()


def test_clean_accepts_negotiated_and_list_rates(world, sms):
    for account in (world.manager, world.standard, None):
        Rate(product=sms, account=account, unit_price=Decimal("0.003"), effective_from=CHANGE).clean()
