"""How pages write money and quantities: `{{ amount|money }}` -> `USD 1,234.57`, `-USD 13.77`;
`{{ quantity|quantity }}` -> `1,234.5`. Rounded to cents by billing.money's one rule."""

from decimal import Decimal

from django import template

from billing.money import to_cents
from reporting.tables import format_quantity

register = template.Library()


@register.filter
def money(amount: Decimal | int | None, currency: str = "USD") -> str:
    """The sign before the currency, so a negative balance reads as one: `-USD 13.77`."""
    if amount is None or amount == "":
        return ""
    cents = to_cents(Decimal(amount))
    sign = "-" if cents < 0 else ""
    return f"{sign}{currency} {abs(cents):,.2f}"


@register.filter
def quantity(value: Decimal | int | None) -> str:
    """An exact quantity with thousands separators and no trailing zeros."""
    if value is None or value == "":
        return ""
    return format_quantity(Decimal(value))
