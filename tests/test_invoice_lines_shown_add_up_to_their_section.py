"""How a section's lines are shown (issue 12, items 1 and 7): the stored rounding line of a section
is never shown; its cents are spread a cent at a time over the section's largest lines (ties by
position), so the lines shown add up to the stored section total, which is what the ledger charged.
The rule is billing.invoices.lines.shown_amounts; the stored lines never change."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.invoices.lines import section_amounts, shown_amounts
from billing.money import CENT

PROPERTY = settings(max_examples=300, deadline=None)


def d(*values: str) -> list[Decimal]:
    return [Decimal(value) for value in values]


@st.composite
def lines_and_rounding(draw: st.DrawFn) -> tuple[list[Decimal], Decimal]:
    """Line amounts in cents (usage lines: never negative) and a rounding of at most half a cent
    per line, either sign."""
    cents = draw(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=30))
    limit = len(cents) // 2
    rounding = draw(st.integers(min_value=-limit, max_value=limit))
    return [c * CENT for c in cents], rounding * CENT


@PROPERTY
@given(lines_and_rounding())
def test_the_lines_shown_add_up_to_the_lines_plus_the_rounding_each_moved_a_cent_at_most(case):
    amounts, rounding = case

    shown = shown_amounts(amounts, rounding)

    assert sum(shown, Decimal("0.00")) == sum(amounts, Decimal("0.00")) + rounding
    assert len(shown) == len(amounts)
    assert all(amount.as_tuple().exponent == -2 for amount in shown)  # cents, as stored
    moved = [s - a for s, a in zip(shown, amounts, strict=True)]
    if rounding > 0 or sum(1 for a in amounts if a >= CENT) >= abs(rounding / CENT):
        assert all(abs(m) <= CENT for m in moved)
    assert all(m * rounding >= 0 for m in moved)  # each moves the rounding's way, never back
    if sum(amounts) + rounding >= 0:
        assert all(s >= 0 for s in shown)  # a usage line never reads negative
    assert shown_amounts(amounts, rounding) == shown  # deterministic
    assert shown_amounts(amounts, Decimal("0.00")) == amounts


@PROPERTY
@given(
    st.lists(
        st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=12,
    ),
    st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False, allow_infinity=False),
)
def test_every_section_the_invoices_store_is_shown_adding_up_to_its_total(costs, markup):
    """From exact costs, as billing.invoices.lines.section_amounts stores a section (platform at
    0 %, reseller at any markup 0..1,000 %): the lines shown add up to the section total and never
    read negative; at 0 % each line moves a cent at most."""
    for percent in (None, markup):
        stored = section_amounts(costs, percent)

        shown = shown_amounts(stored.lines, stored.rounding)

        assert sum(shown, Decimal("0.00")) == stored.total
        assert all(amount >= 0 for amount in shown)
        if not percent:
            assert all(abs(s - a) <= CENT for s, a in zip(shown, stored.lines, strict=True))


def test_the_cent_goes_to_the_largest_line_and_ties_go_to_the_first():
    # Blue Harbor: 1,001 messages 4.004 -> 4.00, 33.3 minutes 0.333 -> 0.33; charged 4.337 -> 4.34.
    assert shown_amounts(d("4.00", "0.33"), Decimal("0.01")) == d("4.01", "0.33")
    assert shown_amounts(d("0.33", "4.00"), Decimal("0.01")) == d("0.33", "4.01")
    assert shown_amounts(d("1.00", "2.00", "2.00", "0.50"), Decimal("0.02")) == d("1.00", "2.01", "2.01", "0.50")
    assert shown_amounts(d("1.00", "2.00", "2.00", "0.50"), Decimal("0.01")) == d("1.00", "2.01", "2.00", "0.50")
    # Alpine at +10 %: 1.66 + 4.41 + 2.76 = 8.83 for a total of 8.82.
    assert shown_amounts(d("1.66", "4.41", "2.76"), Decimal("-0.01")) == d("1.66", "4.40", "2.76")
    assert shown_amounts(d("0.00", "0.00"), Decimal("0.01")) == d("0.01", "0.00")


def test_a_rounding_of_more_cents_than_lines_goes_round_again_and_never_below_zero():
    """Only at a markup: 0.004999 + 0.0004 at +1,000 % are lines 0.05 + 0.00 (0.054989, 0.0044), but
    the section is 0.01 (0.005399 -> 0.01) x 11 = 0.11 -> 0.11, a rounding of +0.06."""
    stored = section_amounts(d("0.004999", "0.0004"), Decimal("1000"))
    assert (stored.lines, stored.rounding) == (d("0.05", "0.00"), Decimal("0.06"))
    assert shown_amounts(stored.lines, stored.rounding) == d("0.08", "0.03")
    # Taking cents back, a line with none left to give is passed over.
    assert shown_amounts(d("0.05", "0.00", "0.00", "0.00"), Decimal("-0.02")) == d("0.03", "0.00", "0.00", "0.00")
    assert shown_amounts(d("0.03", "0.01"), Decimal("-0.04")) == d("0.00", "0.00")


def test_a_rounding_not_in_cents_or_without_lines_is_refused():
    with pytest.raises(ValueError, match="whole cents"):
        shown_amounts(d("1.00"), Decimal("0.005"))
    with pytest.raises(ValueError, match="no lines"):
        shown_amounts([], Decimal("0.01"))
    assert shown_amounts([], Decimal("0.00")) == []
