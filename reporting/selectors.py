"""Read-side rules of the reports that the pages, their CSV exports and the API share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Case, CharField, Count, DateField, Q, Sum, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import TruncDate, TruncMonth

from accounts.models import Account
from accounts.selectors import managed_accounts_for
from billing.models import Product, UsageRecord
from billing.usage.selectors import AccountScope

# What a destination is, from the record: a toll-free product or a North American toll-free number
# (800, 833, 844, 855, 866, 877, 888), a short code (3 to 8 digits without +), any other number.
TOLL_FREE_NUMBER = r"^\+?1(800|833|844|855|866|877|888)[0-9]{7}$"
SHORT_CODE = r"^[0-9]{3,8}$"
DESTINATION_TYPE = Case(
    When(Q(product__sku__contains="tollfree") | Q(destination__regex=TOLL_FREE_NUMBER), then=Value("toll_free")),
    When(destination__regex=SHORT_CODE, then=Value("short_code")),
    When(~Q(destination=""), then=Value("long_code")),
    default=Value(""),
    output_field=CharField(),
)
# A dimension of the records -> its output fields, each read from a field path or an expression.
RECORD_DIMENSIONS: dict[str, dict[str, str | Combinable]] = {
    "date": {"date": TruncDate("started_at", tzinfo=UTC)},
    "month": {"month": TruncMonth("started_at", output_field=DateField(), tzinfo=UTC)},
    "product": {"product": "product__sku", "product_name": "product__name", "unit": "product__unit"},
    "account": {"account_id": "account__public_id", "account_name": "account__name"},
    "direction": {"direction": "direction"},
    "country": {"country": "country"},
    "destination_type": {"destination_type": DESTINATION_TYPE},
}


def report_accounts(*, account: Account, managed: bool, only: int | None = None) -> AccountScope:
    """Which accounts (as pks) a usage report of `account` covers: the account itself; or, for a
    manager asking for its managed accounts, all of them, or only `only` (the pk of one of them the
    caller has already found among them). All of them is a subquery, not 3,000 ids: the database joins
    the daily totals to the manager's accounts. Only a manager has managed accounts to report on."""
    if not managed:
        return [account.pk]
    if not account.is_manager:
        raise PermissionDenied("Only a manager account has managed accounts to report on.")
    if only is not None:
        return [only]
    return managed_accounts_for(account).order_by().values("pk")


def record_totals(
    *,
    accounts: AccountScope,
    since: datetime,
    until: datetime,
    products: Sequence[Product] | None,
    dimensions: Sequence[str],
) -> list[dict[str, Any]]:
    """Count, quantity and exact cost of the usage records that started at or after `since` and
    before `until`, per group of `dimensions` (keys of RECORD_DIMENSIONS), in one GROUP BY query.
    Each record counts whole, in the window its start falls in. Reports read the records only for
    what the daily totals cannot tell: a window that is not whole UTC days, or a record's fields."""
    records = UsageRecord.objects.filter(account__in=accounts, started_at__gte=since, started_at__lt=until)
    if products is not None:
        records = records.filter(product__in=products)
    fields = {name: source for d in dimensions for name, source in RECORD_DIMENSIONS[d].items()}
    paths = {source: name for name, source in fields.items() if isinstance(source, str)}
    expressions = {name: source for name, source in fields.items() if not isinstance(source, str)}
    grouped = records.values(*paths, **expressions).annotate(
        records_count=Count("id"), quantity_sum=Sum("quantity"), cost_sum=Sum("cost")
    )
    return [
        {
            **{paths.get(key, key): value for key, value in row.items() if not key.endswith(("_count", "_sum"))},
            "count": row["records_count"],
            "quantity": row["quantity_sum"],
            "cost": row["cost_sum"],
        }
        for row in grouped.order_by()
    ]
