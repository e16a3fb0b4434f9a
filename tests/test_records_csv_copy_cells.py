"""The cell rules of the CSV exports on any database (issue 16): the Python side of each rule whose
SQL twin tests/test_records_csv_copy.py checks on PostgreSQL, and which path the records CSV takes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest
from django.db import connection

from billing.models import UsageRecord
from reporting import exports


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("123456789012345678.123456789012"), "123456789012345678.123456789012"),  # 30 digits, exact
        (Decimal("99999999999999.999999"), "99999999999999.999999"),
        (Decimal("0E-12"), "0"),
        (Decimal("0.000000000001"), "0.000000000001"),
        (Decimal("12.500000"), "12.5"),
        (Decimal("100"), "100"),
        (Decimal("1E+2"), "100"),
        (Decimal("-1.50"), "'-1.5"),
        (datetime(2025, 4, 2, 12, 34, 56, 500000, tzinfo=timezone(timedelta(hours=2))), "2025-04-02T10:34:56.500000Z"),
        (date(2025, 4, 2), "2025-04-02"),
        (UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
        (None, ""),
        ("", ""),
        ("=1+1", "'=1+1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        (" =x", " =x"),
        (7, "7"),
    ],
)
def test_each_cell_is_written_by_its_rule(value, text):
    assert exports.escape_cell(value) == text


def test_a_decimal_is_never_rounded_to_the_context_precision():
    """normalize() would round a 30-digit cost to 28 digits; the export writes every digit."""
    cost = Decimal("987654321098765432.109876543219")
    assert f"{cost.normalize():f}" != str(cost)  # what the rule was: 28 significant digits
    assert exports.escape_cell(cost) == str(cost)


@pytest.mark.django_db
def test_the_records_csv_is_written_by_copy_only_on_postgresql():
    assert exports.copies_csv(UsageRecord.objects.all()) is (connection.vendor == "postgresql")


def test_every_column_of_the_records_export_has_a_sql_twin():
    columns = exports.record_columns(pricing=True, show_account=True)
    statement, params = exports.copy_select(UsageRecord.objects.order_by("-started_at", "-id"), columns)
    assert statement.startswith("COPY (SELECT ") and statement.endswith(") TO STDOUT WITH (FORMAT csv, HEADER)")
    for name, _ in columns:
        assert f' AS "{name}"' in statement
    assert params == ()
    with pytest.raises(TypeError, match="no SQL twin"):
        exports.copy_select(UsageRecord.objects.all(), [("active", "product__active")])


def test_the_instant_rule_is_utc():
    assert exports.escape_cell(datetime(2025, 1, 1, tzinfo=UTC)) == "2025-01-01T00:00:00.000000Z"
