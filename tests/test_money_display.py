"""How pages write money and quantities: thousands separators, cents, and `-USD 13.77` negatives."""

from decimal import Decimal

from django.template import Context, Template


def render(source: str, **context) -> str:
    return Template("{% load portal_money %}" + source).render(Context(context))


def test_it_writes_thousands_separators_and_cents():
    assert render("{{ amount|money }}", amount=Decimal("1234567.891")) == "USD 1,234,567.89"


def test_it_puts_the_sign_before_the_currency():
    assert render("{{ amount|money }}", amount=Decimal("-13.77")) == "-USD 13.77"
    assert render("{{ amount|money }}", amount=Decimal("-1234.5")) == "-USD 1,234.50"


def test_it_rounds_half_up_to_cents_by_the_one_rule():
    assert render("{{ amount|money }}", amount=Decimal("0.005")) == "USD 0.01"
    assert render("{{ amount|money }}", amount=Decimal("-0.004")) == "USD 0.00"


def test_it_takes_the_currency_as_its_argument():
    assert render("{{ amount|money:currency }}", amount=Decimal("-2"), currency="EUR") == "-EUR 2.00"


def test_nothing_shows_nothing():
    assert render("[{{ amount|money }}]", amount=None) == "[]"


def test_quantities_are_exact_with_separators_and_no_trailing_zeros():
    assert render("{{ q|quantity }}", q=Decimal("1234.500000")) == "1,234.5"
    assert render("{{ q|quantity }}", q=Decimal("3000")) == "3,000"
    assert render("{{ q|quantity }}", q=3000) == "3,000"
