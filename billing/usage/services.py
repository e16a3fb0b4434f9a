"""Usage ingestion: the one way usage gets in (API, CSV upload, simulator).

A batch is validated whole (row-numbered errors, nothing stored when any row is bad), rated with
the rate in force at each record's start, stored atomically with its daily totals, and
idempotent: a record whose (account, idempotency key) is already stored is counted as a
duplicate, never added twice, even when the same batch arrives twice at the same moment.

Set-based on PostgreSQL (a 5,000-record batch in a handful of statements, BENCHMARKS.md): the batch
is COPYed into a temporary table and stored with one INSERT ... ON CONFLICT DO NOTHING RETURNING,
its daily sums COPYed and added to the daily and monthly totals with one upsert each. SQLite, the
embedded default, keeps the plain ORM path.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, InvalidOperation
from typing import TypeVar

from django.db import IntegrityError, connection, models, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.errors import Problem, Refusal
from accounts.models import Account
from billing import period_lock
from billing.ledger.selectors import billed_party
from billing.models import DailyUsage, Invoice, MonthlyUsage, Product, UsageBatch, UsageRecord
from billing.money import decimal_places
from billing.tasks import charge_usage_many
from billing.usage.rating import RateBook
from billing.usage.signals import usage_stored

MAX_BATCH = 10_000
MAX_ERRORS_SHOWN = 100
REQUIRED_FIELDS = ("product", "quantity", "started_at", "idempotency_key")
OPTIONAL_FIELDS = ("account", "direction", "country", "destination")
MAX_QUANTITY = Decimal("1000000000")  # a billion units in one record is a bug upstream, not usage
# Wide enough for quantity (16 digits) x rate (14 digits) with no rounding.
EXACT = Context(prec=60)
_DESTINATION = re.compile(r"^\+?[0-9]{1,31}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_DIRECTIONS = frozenset(("", *UsageRecord.Direction.values))
_FIELDS = frozenset((*REQUIRED_FIELDS, *OPTIONAL_FIELDS))


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based position of the record in the batch (the CSV data line, header excluded)
    field: str
    message: str

    def __str__(self) -> str:
        return f"Row {self.row}, {self.field}: {self.message}" if self.row else f"{self.field}: {self.message}"

    def problem(self) -> Problem:
        """This error at `/records/<0-based index>/<field>` of an API batch; batch-wide ones (row 0)
        at `/records`, or at no field when they concern the account or the file."""
        if self.row == 0:
            pointer = "/records" if self.field == "records" else None
            return Problem(detail=str(self), pointer=pointer, code="invalid_batch", title="Invalid batch")
        record = f"/records/{self.row - 1}"
        # "record" is the whole row (not an object); any other field is a field of the row.
        pointer = record if self.field == "record" else f"{record}/{_pointer_token(self.field)}"
        return Problem(detail=str(self), pointer=pointer, code="invalid_record", title="Invalid record")


def _pointer_token(name: str) -> str:
    """A JSON pointer token (RFC 6901): an unknown field's name may hold ~ or /."""
    return name.replace("~", "~0").replace("/", "~1")


class UsageRejected(Refusal):
    """A batch refused whole, with its row-numbered errors (the first MAX_ERRORS_SHOWN of `total`)."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} error(s)")
        self.total = len(errors)
        self.errors = errors[:MAX_ERRORS_SHOWN]

    def problems(self) -> list[Problem]:
        """One API error per bad row and field, then how many more were left out."""
        problems = [row_error.problem() for row_error in self.errors]
        hidden = self.total - len(self.errors)
        if hidden:
            detail = f"{hidden:,} more error(s) not shown; fix these and send again."
            problems.append(Problem(detail=detail, pointer="/records", code="too_many_errors", title="More errors"))
        return problems


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    batch: UsageBatch | None


@dataclass(slots=True)
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
    cost: Decimal | None = None
    payer_month: tuple[int, date] | None = None  # the period lock and the closed-month rule read it
    account_id: int = 0
    product_id: int = 0

    def __post_init__(self) -> None:
        self.account_id, self.product_id = self.account.pk, self.product.pk

    # Rating (`_rate_errors`) sets these, and storing the cost, before anything reads them.
    @property
    def payer_key(self) -> tuple[int, date]:
        if self.payer_month is None:
            raise AssertionError("a record's payer is read before rating")
        return self.payer_month

    @property
    def unit_rate(self) -> Decimal:
        if self.rate is None:
            raise AssertionError("a record's rate is read before rating")
        return self.rate

    @property
    def exact_cost(self) -> Decimal:
        if self.cost is None:
            raise AssertionError("a record's cost is read before it is computed")
        return self.cost


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
    blocked = submitter.blocked_reason
    if blocked is not None:
        raise UsageRejected([RowError(0, "account", f"{blocked}; its usage is refused.")])
    if not rows:
        raise UsageRejected([RowError(0, "records", "The batch is empty.")])
    if len(rows) > MAX_BATCH:
        raise UsageRejected(
            [RowError(0, "records", f"A batch holds at most {MAX_BATCH:,} records; this one has {len(rows):,}.")]
        )
    products = {p.sku: p for p in Product.objects.filter(active=True)}
    accounts = _Accounts(submitter, rows)
    latest = timezone.now() + timedelta(minutes=5)  # a moment ahead is clock skew, not the future
    errors: list[RowError] = []
    records: list[_Record] = []
    first_row_of_key: dict[tuple[int, str], int] = {}
    for number, row in enumerate(rows, start=1):
        row_errors: list[RowError] = []
        record = _parse_row(number, row, accounts, products, latest, row_errors)
        if record is not None:
            seen = first_row_of_key.setdefault((record.account_id, record.key), number)
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


class _Accounts:
    """The accounts a batch may name: the submitter and, for a manager, its managed accounts,
    loaded in one query; each spelling of an id is resolved once per batch."""

    def __init__(self, submitter: Account, rows: Sequence[Mapping[str, object]]):
        self.submitter = submitter
        self._spellings: dict[str, Account | None] = {}
        values = [row.get("account") for row in rows if isinstance(row, Mapping)]
        spellings = {value for value in values if isinstance(value, str)}
        others = [value for value in values if not isinstance(value, str)]
        canonical = {c for c in map(_canonical_id, (*spellings, *others)) if c is not None}
        self._blocked: dict[int, str | None] = {}
        self.quantities: dict[tuple[type, object], tuple[Decimal | None, str]] = {}
        self._by_id = {str(submitter.public_id): submitter}
        if canonical and submitter.is_manager:
            for account in Account.objects.filter(manager=submitter, public_id__in=_id_list(canonical)):
                account.manager = submitter  # what select_related would give, without a copy per row
                self._by_id[str(account.public_id)] = account

    def blocked(self, account: Account) -> str | None:
        """`account.blocked_reason`, asked once per account of the batch."""
        if account.pk not in self._blocked:
            self._blocked[account.pk] = account.blocked_reason
        return self._blocked[account.pk]

    def named(self, value: object) -> Account | None:
        if not isinstance(value, str):
            return self._by_id.get(_canonical_id(value) or "")
        if value not in self._spellings:
            self._spellings[value] = self._by_id.get(_canonical_id(value) or "")
        return self._spellings[value]


_Id = TypeVar("_Id", str, int)


def _id_list(ids: set[_Id], sql_type: str = "uuid") -> RawSQL | list[_Id]:
    """For `__in`: on PostgreSQL one array parameter, where Django would prepare each of thousands of
    ids in Python."""
    if connection.vendor == "postgresql":
        assert sql_type in ("uuid", "bigint")
        return RawSQL(f"SELECT unnest(%s::{sql_type}[])", [sorted(ids)])  # noqa: S611 (the ids are a parameter)
    return sorted(ids)


def _parse_row(
    number: int,
    row: object,
    accounts: _Accounts,
    products: dict[str, Product],
    latest: datetime,
    errors: list[RowError],
) -> _Record | None:
    if not isinstance(row, Mapping):
        errors.append(RowError(number, "record", "must be an object with named fields."))
        return None
    for field in REQUIRED_FIELDS:
        value = row.get(field)
        if value is None or (value if isinstance(value, str) else str(value)).strip() == "":
            errors.append(RowError(number, field, "is required."))
    if not _FIELDS.issuperset(row.keys()):
        errors.append(RowError(number, sorted(row.keys() - _FIELDS)[0], "is not a known field."))
    if errors:
        return None
    account = _parse_account(number, row.get("account"), accounts, errors)
    product = products.get(str(row["product"]).strip())
    if product is None:
        errors.append(RowError(number, "product", f"'{row['product']}' is not a known product."))
    quantity = _quantity(number, row["quantity"], errors, accounts.quantities)
    started_at = _parse_time(number, row["started_at"], latest, errors)
    key = str(row["idempotency_key"]).strip()
    if len(key) > 100:
        errors.append(RowError(number, "idempotency_key", "is longer than 100 characters."))
    elif "\x00" in key:  # PostgreSQL refuses NUL in text; SQLite would store a key no tool can handle
        errors.append(RowError(number, "idempotency_key", "contains a NUL character."))
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


def _parse_account(number: int, value: object, accounts: _Accounts, errors: list[RowError]) -> Account | None:
    blank = value is None or str(value).strip() == ""
    account = accounts.submitter if blank else accounts.named(value)
    if account is None:
        errors.append(RowError(number, "account", f"'{value}' is not this account or one of its managed accounts."))
        return None
    blocked = accounts.blocked(account)
    if blocked is not None:
        errors.append(RowError(number, "account", f"{blocked}; its usage is refused."))
        return None
    return account


def _quantity(
    number: int, value: object, errors: list[RowError], seen: dict[tuple[type, object], tuple[Decimal | None, str]]
) -> Decimal | None:
    """`_parse_quantity`, each spelling parsed once per batch (a feed repeats a few quantities): the
    same value, or the same message for this row."""
    if type(value) not in (str, int):
        return _parse_quantity(number, value, errors)
    known = seen.get((type(value), value))
    if known is None:
        found: list[RowError] = []
        known = (_parse_quantity(0, value, found), found[0].message if found else "")
        seen[(type(value), value)] = known
    quantity, message = known
    if message:
        errors.append(RowError(number, "quantity", message))
    return quantity


def _parse_quantity(number: int, value: object, errors: list[RowError]) -> Decimal | None:
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
    elif decimal_places(quantity) > 6:
        errors.append(RowError(number, "quantity", "has more than 6 decimal places."))
    else:
        return quantity
    return None


def _parse_time(number: int, value: object, latest: datetime, errors: list[RowError]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        errors.append(RowError(number, "started_at", f"'{value}' is not an ISO 8601 time (2026-11-27T14:05:00Z)."))
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # times without an offset are UTC
    moment = moment.astimezone(UTC)
    if moment > latest:
        errors.append(RowError(number, "started_at", "is in the future."))
        return None
    if moment.year < 2000:
        errors.append(RowError(number, "started_at", "is before 2000."))
        return None
    return moment


def _parse_dimensions(number: int, row: Mapping[str, object], errors: list[RowError]) -> tuple[str, str, str]:
    direction = str(row.get("direction") or "").strip().lower()
    if direction not in _DIRECTIONS:
        errors.append(RowError(number, "direction", "must be inbound or outbound."))
    country = str(row.get("country") or "").strip().upper()
    if country and not _COUNTRY.match(country):
        errors.append(RowError(number, "country", "must be a two-letter ISO 3166 code."))
    destination = str(row.get("destination") or "").strip()
    if destination and not _DESTINATION.match(destination):
        errors.append(RowError(number, "destination", "must be a phone number: digits with an optional leading +."))
    return direction, country, destination


def _rate_errors(records: list[_Record]) -> list[RowError]:
    book = RateBook({r.account_id: r.account for r in records}.values())
    errors: list[RowError] = []
    months: dict[date, date] = {}
    payers: dict[tuple[int, date], tuple[int, date]] = {}
    for number, record in enumerate(records, start=1):
        day = record.started_at.date()
        month = months.get(day) or months.setdefault(day, day.replace(day=1))
        payer = payers.get((record.account_id, month))
        if payer is None:  # the payer of that month, asked once per account and month
            payer = payers.setdefault((record.account_id, month), (billed_party(record.account, month).pk, month))
        record.payer_month = payer
        record.rate = book.rate_for(record.account, record.product_id, record.started_at)
        if record.rate is None:
            errors.append(RowError(number, "product", f"{record.product.sku} has no price at {record.started_at}."))
    return errors


def _closed_month_errors(records: list[_Record]) -> list[RowError]:
    """Usage for a month its payer has already been invoiced for is refused: a finalized invoice
    never changes (billing.invoices)."""
    payer_months = {r.payer_key for r in records}
    closed = set(
        Invoice.objects.closed_for(
            payers=_id_list({payer for payer, _ in payer_months}, "bigint"),
            months={month for _, month in payer_months},
        ).values_list("bill_to_id", "period")
    )
    if not closed:
        return []
    return [
        RowError(number, "started_at", f"{record.started_at:%B %Y} is already invoiced; its usage is closed.")
        for number, record in enumerate(records, start=1)
        if record.payer_month in closed
    ]


# --- Storing -------------------------------------------------------------------------------------------


@transaction.atomic
def _store(submitter: Account, records: list[_Record], *, source: str, actor: Actor, filename: str) -> IngestResult:
    # Validation saw the months open; a close may have finished since. Under the shared period
    # lock, check again: a month invoiced meanwhile refuses the whole batch (nothing stored).
    period_lock.hold_shared({r.payer_key for r in records})
    closed = _closed_month_errors(records)
    if closed:
        raise UsageRejected(closed)
    for r in records:
        r.cost = EXACT.multiply(r.quantity, r.unit_rate)
    insert = _insert_new_postgresql if connection.vendor == "postgresql" else _insert_new_portable
    batch = UsageBatch.objects.create(
        submitted_by_account=submitter,
        submitted_by=actor.user,
        source=source,
        filename=filename[:255],
        accepted=len(records),
        duplicates=0,
    )
    new = insert(batch, records)
    if not new:
        # Every record was already stored: no batch to point at, nothing to audit.
        UsageBatch.objects.filter(pk=batch.pk).delete()
        return IngestResult(accepted=0, duplicates=len(records), batch=None)
    if len(new) != len(records):
        batch.accepted, batch.duplicates = len(new), len(records) - len(new)
        UsageBatch.objects.filter(pk=batch.pk).update(accepted=batch.accepted, duplicates=batch.duplicates)
    _add_to_totals(new)
    _charge_after_commit(new, batch_id=batch.pk)
    audit.record(
        account=submitter,
        actor=actor,
        change_type=audit.ChangeType.USAGE_INGESTED,
        resource=batch,
        changes=[{"field": "records", "from": None, "to": len(new)}, {"field": "source", "from": None, "to": source}],
    )
    return IngestResult(accepted=len(new), duplicates=len(records) - len(new), batch=batch)


_INCOMING = "usage_incoming"  # a temporary table per database session, emptied at every commit
_INCOMING_COLUMNS = (
    "account_id, product_id, quantity, started_at, idempotency_key, direction, country, destination, rate, cost"
)


def _insert_new_postgresql(batch: UsageBatch, records: list[_Record]) -> list[_Record]:
    """Set-based: COPY the batch into a temporary table, then one INSERT ... SELECT that skips
    keys already stored in any month (NOT EXISTS, one index probe per month's partition) and
    returns the keys it stored. A re-sent record has the same start: when the same batch arrives
    twice at the same moment, ON CONFLICT on (account, key, started_at) makes the second wait for
    the first and then skip it. (Only a key reused for another start time by two batches
    committing at the same moment could be stored twice: the unique index of a partitioned table
    must hold the partition key.)"""
    table = connection.ops.quote_name(UsageRecord._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_INCOMING} (account_id bigint, product_id bigint, "
            "quantity numeric, started_at timestamptz, idempotency_key text, direction text, country text, "
            "destination text, rate numeric, cost numeric) ON COMMIT DELETE ROWS"
        )
        with cursor.cursor.copy(f"COPY {_INCOMING} ({_INCOMING_COLUMNS}) FROM STDIN") as copy:
            for r in records:
                copy.write_row(
                    (r.account_id, r.product_id, r.quantity, r.started_at, r.key, r.direction, r.country,
                     r.destination, r.rate, r.cost)
                )  # fmt: skip
        cursor.execute(
            f"INSERT INTO {table} ({_INCOMING_COLUMNS}, batch_id, created_at) "  # noqa: S608
            f"SELECT {_INCOMING_COLUMNS}, %s, now() FROM {_INCOMING} AS incoming "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS stored WHERE stored.account_id = incoming.account_id "
            "AND stored.idempotency_key = incoming.idempotency_key) "
            "ON CONFLICT (account_id, idempotency_key, started_at) DO NOTHING RETURNING account_id, idempotency_key",
            [batch.pk],
        )
        stored = cursor.fetchall()
        cursor.execute(f"DELETE FROM {_INCOMING}")  # noqa: S608  (an outer transaction may ingest again)
    if len(stored) == len(records):
        return records
    keys = set(stored)
    return [r for r in records if (r.account_id, r.key) in keys]


def _insert_new_portable(batch: UsageBatch, records: list[_Record]) -> list[_Record]:
    """SQLite (the embedded default): look the keys up, then insert the new ones. SQLite runs one
    write transaction at a time, so nothing can store the same key in between."""
    stored = _already_stored(records)
    new = [r for r in records if (r.account_id, r.key) not in stored]
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
                rate=r.unit_rate,
                cost=r.exact_cost,
                batch=batch,
            )
            for r in new
        ),
        batch_size=2000,
    )
    return new


def _charge_after_commit(records: list[_Record], *, batch_id: int) -> None:
    """Usage charges follow in tasks once the batch is committed: ingestion never waits on a
    manager's balance lock, and the charge is idempotent (billing.ledger.post_usage_charges).
    A batch touches up to thousands of (account, month) pairs: they go out as a few messages of
    CHARGES_PER_MESSAGE pairs each, each posted set-based (billing.tasks.charge_usage_many). Then
    `usage_stored` tells the apps built on billing (controls checks spend limits)."""
    months = sorted(
        {
            (r.account_id, month.isoformat())
            for r, month in {(r.account_id, r.payer_key[1]): (r, r.payer_key[1]) for r in records}.values()
        }
    )
    chunks = [months[i : i + CHARGES_PER_MESSAGE] for i in range(0, len(months), CHARGES_PER_MESSAGE)]
    account_ids = sorted({r.account_id for r in records})

    def send() -> None:
        for chunk in chunks:
            charge_usage_many.delay(chunk)
        usage_stored.send(sender=UsageBatch, batch_id=batch_id, account_ids=account_ids)

    transaction.on_commit(send)


CHARGES_PER_MESSAGE = 200


def _already_stored(records: list[_Record]) -> set[tuple[int, str]]:
    keys_by_account: dict[int, list[str]] = defaultdict(list)
    for r in records:
        keys_by_account[r.account_id].append(r.key)
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
    """Adds the records to their daily and monthly totals: summed per (account, product, day) here,
    then added in the database (never a read-modify-write), rows in key order so that concurrent
    batches lock the same rows in the same order (daily, then monthly)."""
    sums: dict[tuple[int, int, date], _Sum] = {}
    for r in records:
        key = (r.account_id, r.product_id, r.started_at.date())
        total = sums.get(key)
        if total is None:
            sums[key] = _Sum(r.quantity, r.exact_cost, 1)
        else:
            total.quantity = EXACT.add(total.quantity, r.quantity)
            total.cost = EXACT.add(total.cost, r.exact_cost)
            total.records += 1
    daily = sorted((*key, *total.row()) for key, total in sums.items())
    if connection.vendor == "postgresql":
        _upsert_totals_postgresql(daily)
        return
    months: dict[tuple[int, int, date], _Sum] = defaultdict(lambda: _Sum(Decimal(0), Decimal(0), 0))
    for account, product, day, quantity, cost, count in daily:
        total = months[(account, product, day.replace(day=1))]
        total.quantity, total.cost = EXACT.add(total.quantity, quantity), EXACT.add(total.cost, cost)
        total.records += count
    _upsert_values(DailyUsage, "day", daily)
    _upsert_values(MonthlyUsage, "month", sorted((*key, *total.row()) for key, total in months.items()))


@dataclass(slots=True)
class _Sum:
    quantity: Decimal
    cost: Decimal
    records: int

    def row(self) -> tuple[Decimal, Decimal, int]:
        return self.quantity, self.cost, self.records


# (account id, product id, day or month, quantity, cost, records): one row of a totals table.
_TotalsRow = tuple[int, int, date, Decimal, Decimal, int]


def _adding(table: str, period: str) -> str:
    return (
        f"ON CONFLICT (account_id, product_id, {period}) DO UPDATE SET "
        f"quantity = {table}.quantity + EXCLUDED.quantity, cost = {table}.cost + EXCLUDED.cost, "
        f"records = {table}.records + EXCLUDED.records"
    )


_DAILY_INCOMING = "usage_daily_incoming"


def _upsert_totals_postgresql(daily: list[_TotalsRow]) -> None:
    """COPY the batch's daily sums into a temporary table; one upsert per totals table from it."""
    days = connection.ops.quote_name(DailyUsage._meta.db_table)
    months = connection.ops.quote_name(MonthlyUsage._meta.db_table)
    columns = "account_id, product_id, day, quantity, cost, records"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_DAILY_INCOMING} (account_id bigint, product_id bigint, "
            "day date, quantity numeric, cost numeric, records integer) ON COMMIT DELETE ROWS"
        )
        with cursor.cursor.copy(f"COPY {_DAILY_INCOMING} ({columns}) FROM STDIN") as copy:
            for row in daily:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {days} ({columns}) SELECT {columns} FROM {_DAILY_INCOMING} "  # noqa: S608
            f"ORDER BY account_id, product_id, day {_adding(days, 'day')}"
        )
        cursor.execute(
            f"INSERT INTO {months} (account_id, product_id, month, quantity, cost, records) "  # noqa: S608
            f"SELECT account_id, product_id, date_trunc('month', day)::date, SUM(quantity), SUM(cost), SUM(records) "
            f"FROM {_DAILY_INCOMING} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 {_adding(months, 'month')}"
        )
        cursor.execute(f"DELETE FROM {_DAILY_INCOMING}")  # noqa: S608


def _upsert_values(model: type[models.Model], period: str, rows: list[_TotalsRow]) -> None:
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} (account_id, product_id, {period}, quantity, cost, records) "  # noqa: S608
                f"VALUES {values} {_adding(table, period)}",
                [v for row in chunk for v in row],
            )
