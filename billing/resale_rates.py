"""A manager's per-product resale rates (issue 12 item 9): set, change and remove them, each change
audited on the manager (never on a managed account: the rates are the manager's business, as its
markup is), and read them for the manager's pages and API. The pricing rule that applies them is
`billing.pricing`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.errors import Refusal
from accounts.locks import lock_or_create
from accounts.models import Account
from billing import periods, pricing
from billing.models import Product, ResaleRate, ResaleTerms
from billing.money import decimal_places
from billing.usage.rating import rate_card

MAX_RATE = Decimal("99999999.999999")  # what the column holds (14 digits, 6 after the point)
MONTHS_AHEAD = 24


class ResaleRateRefused(Refusal):
    """A resale rate the rules do not allow (bad price or month, nothing to remove)."""


def this_month() -> date:
    return timezone.now().date().replace(day=1)


def first_allowed_month() -> date:
    """Resale rates apply from the first of a month, the next one at the earliest: never back to
    usage a managed account has already seen priced."""
    return periods.next_month(this_month())


def _check_month(month: date) -> date:
    first, last = first_allowed_month(), this_month()
    for _ in range(MONTHS_AHEAD):
        last = periods.next_month(last)
    if month.day != 1:
        raise ResaleRateRefused("A resale rate starts on the first day of a month.", field="effective_from")
    if month < first:
        raise ResaleRateRefused(
            f"A resale rate applies from {first:%Y-%m-%d} at the earliest, never back.", field="effective_from"
        )
    if month > last:
        raise ResaleRateRefused(
            f"Set a resale rate at most {MONTHS_AHEAD} months ahead (until {last:%Y-%m-%d}).", field="effective_from"
        )
    return month


def _check_price(unit_price: Decimal) -> Decimal:
    try:
        price = Decimal(unit_price)
    except (InvalidOperation, TypeError, ValueError):
        raise ResaleRateRefused("Enter the price per unit as a number, e.g. 0.0125.", field="unit_price") from None
    if not price.is_finite() or price < 0:
        raise ResaleRateRefused("Enter a price per unit of 0 or more.", field="unit_price")
    if decimal_places(price) > 6:
        raise ResaleRateRefused("Use at most 6 decimals for a price per unit.", field="unit_price")
    if price > MAX_RATE:
        raise ResaleRateRefused(f"Enter a price per unit of at most {MAX_RATE}.", field="unit_price")
    return price.quantize(Decimal("0.000001"))


def _lock_manager(manager: Account) -> None:
    """Changes of one manager's resale prices queue behind one row lock (its resale terms)."""
    lock_or_create(ResaleTerms.objects, manager=manager)


def _refuse_unless_manager(manager: Account) -> None:
    if not manager.is_manager:
        raise ResaleRateRefused("Only a manager account sets resale prices.")


@transaction.atomic
def set_resale_rate(
    *, manager: Account, product: Product, unit_price: Decimal, effective_from: date, actor: Actor
) -> ResaleRate:
    """The manager's resale rate of `product` from the first day of `effective_from`'s month on
    (next month at the earliest), for its roll-up managed accounts, instead of the markup. Setting
    it again for the same month changes that scheduled rate."""
    _refuse_unless_manager(manager)
    price, month = _check_price(unit_price), _check_month(effective_from)
    _lock_manager(manager)
    rate, created = ResaleRate.objects.get_or_create(
        manager=manager,
        product=product,
        effective_from=month,
        defaults={"unit_price": price, "created_by": actor.user},
    )
    before = None if created else rate.unit_price
    if not created:
        if before == price:
            return rate
        rate.unit_price, rate.created_by = price, actor.user
        rate.save(update_fields=["unit_price", "created_by"])
    _audit(manager, audit.ChangeType.RESALE_RATE_SET, rate, before=before, after=price, actor=actor)
    return rate


@transaction.atomic
def remove_resale_rate(*, manager: Account, product: Product, effective_from: date, actor: Actor) -> None:
    """From the first day of `effective_from`'s month, `product` is back at the markup. A change
    scheduled for that very month is cancelled instead (the rate before it stays in force)."""
    _refuse_unless_manager(manager)
    month = _check_month(effective_from)
    _lock_manager(manager)
    rates = ResaleRate.objects.filter(manager=manager, product=product)
    scheduled = rates.filter(effective_from=month).first()
    if scheduled is not None:
        before = scheduled.unit_price
        scheduled.delete()
        _audit(manager, audit.ChangeType.RESALE_RATE_REMOVED, scheduled, before=before, after=None, actor=actor)
        return
    in_force = rates.filter(effective_from__lt=month).order_by("-effective_from").first()
    if in_force is None or in_force.unit_price is None:
        raise ResaleRateRefused(
            f"{product.name} has no resale rate in {month:%B %Y}: it is at the markup already.", field="product"
        )
    rate = ResaleRate.objects.create(
        manager=manager, product=product, effective_from=month, unit_price=None, created_by=actor.user
    )
    _audit(manager, audit.ChangeType.RESALE_RATE_REMOVED, rate, before=in_force.unit_price, after=None, actor=actor)


def _audit(
    manager: Account,
    change_type: audit.ChangeType,
    rate: ResaleRate,
    *,
    before: Decimal | None,
    after: Decimal | None,
    actor: Actor,
) -> None:
    # On the manager alone, no related account: as the markup, it never reaches a managed account's log.
    audit.record(
        account=manager,
        change_type=change_type,
        resource=manager,
        changes=[
            {"field": "product", "from": None, "to": rate.product.sku},
            {"field": "unit_price", "from": _text(before), "to": _text(after)},
            {"field": "effective_from", "from": None, "to": rate.effective_from.isoformat()},
        ],
        actor=actor,
    )


def _text(price: Decimal | None) -> str | None:
    return None if price is None else f"{price:f}"


# --- Reading ----------------------------------------------------------------------------------------------


def history_of(manager: Account) -> QuerySet[ResaleRate]:
    """Every resale rate change of the manager, newest month first."""
    rates = ResaleRate.objects.filter(manager=manager).select_related("product", "created_by")
    return rates.order_by("-effective_from", "product__sku")


@dataclass(frozen=True)
class ResalePriceLine:
    """One product of the manager's resale prices this month: its own cost (the manager's eyes
    only), its resale rate in force (None: the markup) and the changes scheduled after."""

    product: Product
    cost: Decimal | None
    resale_rate: Decimal | None
    scheduled: list[ResaleRate]


def resale_price_lines(manager: Account) -> list[ResalePriceLine]:
    """Per active product: the manager's platform rate now, its resale rate in force this month and
    its scheduled changes (three queries)."""
    month = this_month()
    timelines = pricing.resale_timelines(manager.pk)
    later: dict[int, list[ResaleRate]] = {}
    for rate in ResaleRate.objects.filter(manager=manager, effective_from__gt=month).order_by("effective_from"):
        later.setdefault(rate.product_id, []).append(rate)
    return [
        ResalePriceLine(product, cost, pricing.rate_in(timelines.get(product.pk), month), later.get(product.pk, []))
        for product, cost, _ in rate_card(manager, at=timezone.now())
    ]
