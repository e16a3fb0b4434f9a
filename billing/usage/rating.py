"""Which unit price applies: the one function `rate_for`, and `RateBook`, the same answer for
many records at once without a query per record."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from accounts.models import Account
from billing.models import Product, Rate
from billing.pricing import prices_for, utc_day


def rate_accounts(account: Account) -> list[int]:
    """The accounts whose rates apply to `account`, most specific first. A managed account uses
    its manager's rates, or its own custom rate where custom pricing is allowed and one is set."""
    if account.is_managed and account.manager_id is not None:  # a managed account always has a manager
        return [account.pk, account.manager_id] if account.allow_custom_pricing else [account.manager_id]
    return [account.pk]


class RateBook:
    def __init__(self, accounts: Iterable[Account]):
        self._accounts = {a.pk: a for a in accounts}
        owners = {pk for a in self._accounts.values() for pk in rate_accounts(a)}
        self._timeline: dict[tuple[int | None, int], tuple[list[datetime], list[Decimal]]] = {}
        grouped: dict[tuple[int | None, int], list[tuple[datetime, Decimal]]] = defaultdict(list)
        rates = Rate.objects.filter(account_id__in=owners) | Rate.objects.filter(account__isnull=True)
        for account_id, product_id, start, price in rates.values_list(
            "account_id", "product_id", "effective_from", "unit_price"
        ):
            grouped[(account_id, product_id)].append((start, price))
        self._products_of: dict[int | None, set[int]] = defaultdict(set)
        for key, entries in grouped.items():
            entries.sort()
            self._timeline[key] = ([e[0] for e in entries], [e[1] for e in entries])
            self._products_of[key[0]].add(key[1])

    def set_by(self, owner: int | None, product_id: int, at: datetime) -> Decimal | None:
        """The rate `owner` itself set for the product (None: the list price) in force at `at`: the
        last one started by then. Rates never apply back, so an instant before the first has none."""
        timeline = self._timeline.get((owner, product_id))
        if timeline is None:
            return None
        index = bisect.bisect_right(timeline[0], at) - 1
        return timeline[1][index] if index >= 0 else None

    def rates_set_by(self, owner: int, at: datetime) -> dict[int, Decimal]:
        """{product id: unit price} of the rates `owner` itself set that are in force at `at`."""
        in_force = {product_id: self.set_by(owner, product_id, at) for product_id in self._products_of.get(owner, ())}
        return {product_id: price for product_id, price in in_force.items() if price is not None}

    def rate_for(self, account: Account, product_id: int, at: datetime) -> Decimal | None:
        for owner in (*rate_accounts(account), None):
            price = self.set_by(owner, product_id, at)
            if price is not None:
                return price
        return None


def rate_for(*, account: Account, product: Product, at: datetime) -> Decimal | None:
    """The unit price for this account, product and instant; None when the product has no price yet."""
    return RateBook([account]).rate_for(account, product.pk, at)


RESALE_PRICE = "resale price"


def rate_card(account: Account, *, at: datetime) -> list[tuple[Product, Decimal | None, str]]:
    """Every active product with the price `account` pays at `at`, and where that price comes from:
    the platform's rate (list, negotiated or custom), or for a roll-up account the price its manager
    bills it (billing.pricing.prices_for: a resale rate, or the platform's rate with the markup;
    the same platform rate at 0 % and no resale rate, so its source is then told as before)."""
    book = RateBook([account])
    prices = prices_for(account)
    day = utc_day(at)
    card = []
    for product in Product.objects.filter(active=True):
        source = "list price"
        for owner in rate_accounts(account):
            if book.set_by(owner, product.pk, at) is not None:
                source = "custom rate" if owner == account.pk and account.is_managed else "negotiated rate"
                break
        price = book.rate_for(account, product.pk, at)
        resale = prices.resale_rate(product.pk, day)
        if resale is not None:
            price, source = resale, RESALE_PRICE
        elif price is not None and prices.is_resale_in(day) and prices.markup:
            price, source = prices.unit_price(product.pk, day, price), RESALE_PRICE
        card.append((product, price, source))
    return card
