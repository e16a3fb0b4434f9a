"""Usage ingestion: the one way usage gets in (API, CSV upload, simulator).

A batch is validated whole (row-numbered errors, nothing stored when any row is bad), rated with
the rate in force at each record's start, stored atomically with its daily totals, and
idempotent: a record whose (account, idempotency key) is already stored is counted as a
duplicate, never added twice, even when the same batch arrives twice at the same moment.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, InvalidOperation

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.models import Account
from billing import period_lock
from billing.ledger import billed_party
from billing.models import DailyUsage, Invoice, MonthlyUsage, Product, UsageBatch, UsageRecord
from billing.pricing import RateBook

MAX_BATCH = 10_000
MAX_ERRORS_SHOWN = 100
REQUIRED_FIELDS = ("product", "quantity", "started_at", "idempotency_key")
OPTIONAL_FIELDS = ("account", "direction", "country", "destination")
MAX_QUANTITY = Decimal("1000000000")  # a billion units in one record is a bug upstream, not usage
# Wide enough for quantity (16 digits) x rate (14 digits) with no rounding.
EXACT = Context(prec=60)
_DESTINATION = re.compile(r"^\+?[0-9]{1,31}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based position of the record in the batch (the CSV data line, header excluded)
    field: str
    message: str

    def __str__(self) -> str:
        return f"Row {self.row}, {self.field}: {self.message}" if self.row else f"{self.field}: {self.message}"


class UsageRejected(Exception):
    def __init__(self, errors: list[RowError]):
        super().__init__(f"{len(errors)} error(s)")
        self.total = len(errors)
        self.errors = errors[:MAX_ERRORS_SHOWN]


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    batch: UsageBatch | None


@dataclass
class _Record:
    account: Account
    product: Product
    quantity: Decimal
    started_at: datetime
    key: str
    direction: str
    country: str
    destination: str
    rate: Decimal | None = None


def ingest_usage(
    *,
    submitter: Account,
    rows: Sequence[Mapping[str, object]],
    source: str,
    actor: Actor,
    filename: str = "",
) -> IngestResult:
    records = _validate(submitter, rows)
    for attempt in range(3):
        try:
            return _store(submitter, records, source=source, actor=actor, filename=filename)
        except IntegrityError:
            # Another transaction stored some of these keys between our check and our insert;
            # the next attempt sees them as duplicates.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# --- Validation -------------------------------------------------------------------------------------


def _validate(submitter: Account, rows: Sequence[Mapping[str, object]]) -> list[_Record]:
    if not submitter.is_enabled:
        raise UsageRejected([RowError(0, "account", f"{submitter.name} is {submitter.status}; its usage is refused.")])
    if not rows:
        raise UsageRejected([RowError(0, "records", "The batch is empty.")])
    if len(rows) > MAX_BATCH:
        raise UsageRejected(
            [RowError(0, "records", f"A batch holds at most {MAX_BATCH:,} records; this one has {len(rows):,}.")]
        )
    products = {p.sku: p for p in Product.objects.filter(active=True)}
    accounts = _accounts_by_id(submitter, rows)
    errors: list[RowError] = []
    records: list[_Record] = []
    first_row_of_key: dict[tuple[int, str], int] = {}
    for number, row in enumerate(rows, start=1):
        row_errors: list[RowError] = []
        record = _parse_row(number, row, submitter, accounts, products, row_errors)
        if record is not None:
            seen = first_row_of_key.setdefault((record.account.pk, record.key), number)
            if seen != number:
                row_errors.append(RowError(number, "idempotency_key", f"'{record.key}' is also used in row {seen}."))
        errors.extend(row_errors)
        if record is not None and not row_errors:
            records.append(record)
    if not errors:
        errors = _rate_errors(records) or _closed_month_errors(records)
    if errors:
        raise UsageRejected(errors)
    return records


def _accounts_by_id(submitter: Account, rows: Sequence[Mapping[str, object]]) -> dict[str, Account]:
    """The accounts a batch may name: the submitter and, for a manager, its managed accounts."""
    named = {_canonical_id(row.get("account")) for row in rows if isinstance(row, Mapping)} - {None}
    found = {str(submitter.public_id): submitter}
    if named and submitter.is_manager:
        ids = list(named)
        for account in Account.objects.filter(manager=submitter, public_id__in=ids).select_related("manager"):
            found[str(account.public_id)] = account
    return found


def _parse_row(number, row, submitter, accounts, products, errors) -> _Record | None:
    if not isinstance(row, Mapping):
        errors.append(RowError(number, "record", "must be an object with named fields."))
        return None
    for field in REQUIRED_FIELDS:
        if row.get(field) is None or str(row[field]).strip() == "":
            errors.append(RowError(number, field, "is required."))
    unknown = set(row) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS)
    if unknown:
        errors.append(RowError(number, sorted(unknown)[0], "is not a known field."))
    if errors:
        return None
    account = _parse_account(number, row.get("account"), submitter, accounts, errors)
    product = products.get(str(row["product"]).strip())
    if product is None:
        errors.append(RowError(number, "product", f"'{row['product']}' is not a known product."))
    quantity = _parse_quantity(number, row["quantity"], errors)
    started_at = _parse_time(number, row["started_at"], errors)
    key = str(row["idempotency_key"]).strip()
    if len(key) > 100:
        errors.append(RowError(number, "idempotency_key", "is longer than 100 characters."))
    dims = _parse_dimensions(number, row, errors)
    if errors or account is None or product is None or quantity is None or started_at is None:
        return None
    return _Record(account, product, quantity, started_at, key, *dims)


def _canonical_id(value: object) -> str | None:
    """Any spelling of a UUID (upper case, no dashes) as the canonical string, else None."""
    try:
        return str(uuid.UUID(str(value).strip())) if value not in (None, "") else None
    except ValueError:
        return None


def _parse_account(number, value, submitter, accounts, errors) -> Account | None:
    blank = value is None or str(value).strip() == ""
    account = submitter if blank else accounts.get(_canonical_id(value) or "")
    if account is None:
        errors.append(RowError(number, "account", f"'{value}' is not this account or one of its managed accounts."))
        return None
    if not account.is_enabled:
        errors.append(RowError(number, "account", f"{account.name} is {account.status}; its usage is refused."))
        return None
    return account


def _parse_quantity(number, value, errors) -> Decimal | None:
    if isinstance(value, bool | float):
        errors.append(RowError(number, "quantity", "must be a decimal number written as a string or an integer."))
        return None
    try:
        quantity = Decimal(str(value).strip())
    except InvalidOperation:
        errors.append(RowError(number, "quantity", f"'{value}' is not a number."))
        return None
    if not quantity.is_finite():
        errors.append(RowError(number, "quantity", f"'{value}' is not a number."))
    elif quantity < 0:
        errors.append(RowError(number, "quantity", "cannot be negative."))
    elif quantity >= MAX_QUANTITY:
        errors.append(RowError(number, "quantity", "is too large."))
    elif -quantity.as_tuple().exponent > 6:
        errors.append(RowError(number, "quantity", "has more than 6 decimal places."))
    else:
        return quantity
    return None


def _parse_time(number, value, errors) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        errors.append(RowError(number, "started_at", f"'{value}' is not an ISO 8601 time (2026-11-27T14:05:00Z)."))
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # times without an offset are UTC
    moment = moment.astimezone(UTC)
    if moment > timezone.now() + timedelta(minutes=5):
        errors.append(RowError(number, "started_at", "is in the future."))
        return None
    if moment.year < 2000:
        errors.append(RowError(number, "started_at", "is before 2000."))
        return None
    return moment


def _parse_dimensions(number, row, errors) -> tuple[str, str, str]:
    direction = str(row.get("direction") or "").strip().lower()
    if direction not in ("", *UsageRecord.Direction.values):
        errors.append(RowError(number, "direction", "must be inbound or outbound."))
    country = str(row.get("country") or "").strip().upper()
    if country and not _COUNTRY.match(country):
        errors.append(RowError(number, "country", "must be a two-letter ISO 3166 code."))
    destination = str(row.get("destination") or "").strip()
    if destination and not _DESTINATION.match(destination):
        errors.append(RowError(number, "destination", "must be a phone number: digits with an optional leading +."))
    return direction, country, destination


def _rate_errors(records: list[_Record]) -> list[RowError]:
    book = RateBook({r.account.pk: r.account for r in records}.values())
    errors = []
    for number, record in enumerate(records, start=1):
        record.rate = book.rate_for(record.account, record.product.pk, record.started_at)
        if record.rate is None:
            errors.append(RowError(number, "product", f"{record.product.sku} has no price at {record.started_at}."))
    return errors


def _closed_month_errors(records: list[_Record]) -> list[RowError]:
    """Usage for a month its payer has already been invoiced for is refused: a finalized invoice
    never changes (billing.invoicing)."""
    payer_months = {(billed_party(r.account).pk, r.started_at.date().replace(day=1)) for r in records}
    closed = set(
        Invoice.objects.filter(
            issuer__isnull=True,
            bill_to_id__in={payer for payer, _ in payer_months},
            period__in={month for _, month in payer_months},
        )
        .exclude(status=Invoice.Status.DRAFT)
        .values_list("bill_to_id", "period")
    )
    if not closed:
        return []
    return [
        RowError(number, "started_at", f"{record.started_at:%B %Y} is already invoiced; its usage is closed.")
        for number, record in enumerate(records, start=1)
        if (billed_party(record.account).pk, record.started_at.date().replace(day=1)) in closed
    ]


# --- Storing -------------------------------------------------------------------------------------------


@transaction.atomic
def _store(submitter, records: list[_Record], *, source, actor, filename) -> IngestResult:
    # Validation saw the months open; a close may have finished since. Under the shared period
    # lock, check again: a month invoiced meanwhile refuses the whole batch (nothing stored).
    period_lock.hold_shared((billed_party(r.account).pk, r.started_at.date().replace(day=1)) for r in records)
    closed = _closed_month_errors(records)
    if closed:
        raise UsageRejected(closed)
    stored = _already_stored(records)
    new = [r for r in records if (r.account.pk, r.key) not in stored]
    if not new:
        return IngestResult(accepted=0, duplicates=len(records), batch=None)
    batch = UsageBatch.objects.create(
        submitted_by_account=submitter,
        submitted_by=actor.user,
        source=source,
        filename=filename[:255],
        accepted=len(new),
        duplicates=len(records) - len(new),
    )
    UsageRecord.objects.bulk_create(
        (
            UsageRecord(
                account=r.account,
                product=r.product,
                quantity=r.quantity,
                started_at=r.started_at,
                idempotency_key=r.key,
                direction=r.direction,
                country=r.country,
                destination=r.destination,
                rate=r.rate,
                cost=EXACT.multiply(r.quantity, r.rate),
                batch=batch,
            )
            for r in new
        ),
        batch_size=2000,
    )
    _add_to_totals(new)
    _charge_after_commit(new)
    audit.record(
        account=submitter,
        actor=actor,
        change_type="usage.ingested",
        resource=batch,
        changes=[{"field": "records", "from": None, "to": len(new)}, {"field": "source", "from": None, "to": source}],
    )
    return IngestResult(accepted=len(new), duplicates=len(records) - len(new), batch=batch)


def _charge_after_commit(records: list[_Record]) -> None:
    """Usage charges follow in a task once the batch is committed: ingestion never waits on a
    manager's balance lock, and the charge is idempotent (billing.ledger.post_usage_charges)."""
    from billing.tasks import charge_usage

    months = sorted({(r.account.pk, r.started_at.date().replace(day=1).isoformat()) for r in records})
    transaction.on_commit(lambda: [charge_usage.delay(account_id, month) for account_id, month in months])


def _already_stored(records: list[_Record]) -> set[tuple[int, str]]:
    keys_by_account: dict[int, list[str]] = defaultdict(list)
    for r in records:
        keys_by_account[r.account.pk].append(r.key)
    stored: set[tuple[int, str]] = set()
    for account_id, keys in keys_by_account.items():
        for start in range(0, len(keys), 5000):
            stored.update(
                UsageRecord.objects.filter(account_id=account_id, idempotency_key__in=keys[start : start + 5000])
                .values_list("account_id", "idempotency_key")
                .iterator()
            )
    return stored


def _add_to_totals(records: list[_Record]) -> None:
    """Adds the records to their daily and monthly totals: one upsert per table that adds in the
    database (never a read-modify-write), rows in key order so that concurrent batches lock the
    same rows in the same order (daily, then monthly)."""
    _upsert_totals(DailyUsage, "day", records, lambda moment: moment.date())
    _upsert_totals(MonthlyUsage, "month", records, lambda moment: moment.date().replace(day=1))


def _upsert_totals(model, period: str, records: list[_Record], period_of) -> None:
    sums: dict[tuple[int, int, object], list] = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    for r in records:
        total = sums[(r.account.pk, r.product.pk, period_of(r.started_at))]
        total[0] = EXACT.add(total[0], r.quantity)
        total[1] = EXACT.add(total[1], EXACT.multiply(r.quantity, r.rate))
        total[2] += 1
    table = connection.ops.quote_name(model._meta.db_table)
    rows = sorted(sums.items())
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
            params = [v for (account, product, when), (q, c, n) in chunk for v in (account, product, when, q, c, n)]
            cursor.execute(
                f"INSERT INTO {table} (account_id, product_id, {period}, quantity, cost, records) VALUES {values} "  # noqa: S608
                f"ON CONFLICT (account_id, product_id, {period}) DO UPDATE SET "
                f"quantity = {table}.quantity + EXCLUDED.quantity, "
                f"cost = {table}.cost + EXCLUDED.cost, "
                f"records = {table}.records + EXCLUDED.records",
                params,
            )
