"""The one rounding rule: amounts are exact until an invoice or ledger line is written, then
rounded to cents, half up (0.005 -> 0.01)."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def to_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str = "USD") -> str:
    """How money is shown on pages and in e-mails: `USD 1,234.57`."""
    return f"{currency} {to_cents(amount):,.2f}"


def decimal_places(value: Decimal) -> int:
    """How many digits a finite Decimal has after the point, as written (2.50 has 2); 0 for NaN and
    infinities, whose exponent is a letter."""
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) else 0
