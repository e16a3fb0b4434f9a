"""Usage ingestion: a batch is validated whole with row-numbered errors and stored atomically,
only for accounts the submitter may name; a re-sent batch adds nothing twice; each accepted
batch is audited."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from billing.models import DailyUsage, Product, Rate, UsageBatch, UsageRecord
from billing.usage.services import MAX_BATCH, RowError, UsageRejected, ingest_usage

AT = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
MISSING = object()


def row(n: int = 0, **fields) -> dict:
    values = {
        "product": "sms.outbound",
        "quantity": "1",
        "started_at": (AT + timedelta(seconds=n)).isoformat(),
        "idempotency_key": f"msg-{n}",
    }
    values.update(fields)
    return {k: v for k, v in values.items() if v is not MISSING}


def ingest(world, rows, *, submitter=None, actor=None, source="api"):
    return ingest_usage(
        submitter=submitter or world.manager,
        rows=rows,
        source=source,
        actor=actor or Actor(user=world.users["owner"]),
        filename="usage.csv",
    )


def stored_state() -> dict:
    return {
        "records": UsageRecord.objects.count(),
        "batches": UsageBatch.objects.count(),
        "audit": AuditEvent.objects.filter(change_type="usage.ingested").count(),
        "daily": sorted(
            DailyUsage.objects.values_list("account_id", "product_id", "day", "quantity", "cost", "records")
        ),
    }


def rejected(world, rows, **kwargs) -> UsageRejected:
    """Ingest `rows`, expect a rejection, and check nothing at all was stored."""
    before = stored_state()
    with pytest.raises(UsageRejected) as caught:
        ingest(world, rows, **kwargs)
    assert stored_state() == before
    return caught.value


def only_error(world, bad_row, **kwargs) -> RowError:
    """A batch of good rows with `bad_row` as row 2: its one error."""
    errors = rejected(world, [row(1), bad_row, row(3)], **kwargs).errors
    assert len(errors) == 1, errors
    assert errors[0].row == 2
    return errors[0]


# --- Atomic batches -----------------------------------------------------------------------------------


def test_one_bad_row_rejects_the_whole_batch_and_stores_nothing(world):
    ingest(world, [row(100)])  # existing totals must not move either
    rows = [row(n) for n in range(1, 6)]
    rows[2]["quantity"] = "-3"
    rows[4]["product"] = "sms.pigeon"
    error = rejected(world, rows)
    assert [(e.row, e.field) for e in error.errors] == [(3, "quantity"), (5, "product")]
    assert error.total == 2
    assert str(error.errors[0]) == "Row 3, quantity: cannot be negative."
    assert not UsageRecord.objects.filter(idempotency_key="msg-1").exists()


def test_every_bad_row_is_reported_with_its_number_up_to_a_hundred(world):
    rows = [row(n, quantity="x" if n % 2 else "1") for n in range(1, 301)]
    error = rejected(world, rows)
    assert error.total == 150
    assert len(error.errors) == 100
    assert [e.row for e in error.errors] == list(range(1, 200, 2))


def test_a_good_batch_is_stored_with_its_batch_and_totals(world):
    result = ingest(world, [row(1), row(2, quantity="2.5")], source="csv")
    assert (result.accepted, result.duplicates) == (2, 0)
    batch = UsageBatch.objects.get()
    assert result.batch == batch
    assert (batch.submitted_by_account, batch.submitted_by, batch.source) == (
        world.manager,
        world.users["owner"],
        "csv",
    )
    assert (batch.filename, batch.accepted, batch.duplicates) == ("usage.csv", 2, 0)
    assert set(UsageRecord.objects.values_list("batch", flat=True)) == {batch.pk}
    record = UsageRecord.objects.get(idempotency_key="msg-2")
    assert (record.account, record.quantity, record.rate, record.cost) == (
        world.manager,
        Decimal("2.5"),
        Decimal("0.004"),
        Decimal("0.01"),
    )
    assert record.started_at == AT + timedelta(seconds=2)
    total = DailyUsage.objects.get()
    assert (total.account, total.day, total.quantity, total.cost, total.records) == (
        world.manager,
        AT.date(),
        Decimal("3.5"),
        Decimal("0.014"),
        2,
    )


# --- Each kind of bad row -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"quantity": MISSING}, "quantity", "is required."),
        ({"product": MISSING}, "product", "is required."),
        ({"started_at": MISSING}, "started_at", "is required."),
        ({"idempotency_key": MISSING}, "idempotency_key", "is required."),
        ({"idempotency_key": ""}, "idempotency_key", "is required."),
        ({"idempotency_key": "   "}, "idempotency_key", "is required."),
        ({"quantity": None}, "quantity", "is required."),
        ({"colour": "red"}, "colour", "is not a known field."),
        ({"product": "sms.pigeon"}, "product", "'sms.pigeon' is not a known product."),
        ({"quantity": "abc"}, "quantity", "'abc' is not a number."),
        ({"quantity": "1,5"}, "quantity", "'1,5' is not a number."),
        ({"quantity": "NaN"}, "quantity", "'NaN' is not a number."),
        ({"quantity": "Infinity"}, "quantity", "'Infinity' is not a number."),
        ({"quantity": "-1"}, "quantity", "cannot be negative."),
        ({"quantity": "-0.000001"}, "quantity", "cannot be negative."),
        ({"quantity": "0.0000001"}, "quantity", "has more than 6 decimal places."),
        ({"quantity": "1.1234567"}, "quantity", "has more than 6 decimal places."),
        ({"quantity": "1E-7"}, "quantity", "has more than 6 decimal places."),
        ({"quantity": "100000000000000"}, "quantity", "is too large."),
        ({"quantity": 1.5}, "quantity", "must be a decimal number written as a string or an integer."),
        ({"quantity": 2.0}, "quantity", "must be a decimal number written as a string or an integer."),
        ({"quantity": True}, "quantity", "must be a decimal number written as a string or an integer."),
        ({"started_at": "yesterday"}, "started_at", "'yesterday' is not an ISO 8601 time (2026-11-27T14:05:00Z)."),
        ({"started_at": "2025-13-01T00:00:00Z"}, "started_at", "is not an ISO 8601 time"),
        ({"started_at": "2025-06-01T25:00:00Z"}, "started_at", "is not an ISO 8601 time"),
        ({"started_at": "1999-12-31T23:59:59Z"}, "started_at", "is before 2000."),
        ({"direction": "sideways"}, "direction", "must be inbound or outbound."),
        ({"country": "USA"}, "country", "must be a two-letter ISO 3166 code."),
        ({"country": "U1"}, "country", "must be a two-letter ISO 3166 code."),
        ({"destination": "+1-555-0100"}, "destination", "must be a phone number"),
        ({"destination": "=HYPERLINK(1)"}, "destination", "must be a phone number"),
        ({"destination": "+" + "1" * 32}, "destination", "must be a phone number"),
        ({"idempotency_key": "k" * 101}, "idempotency_key", "is longer than 100 characters."),
    ],
)
def test_a_bad_row_is_refused_with_its_row_number_and_field(world, fields, field, message):
    error = only_error(world, row(2, **fields))
    assert error.field == field
    assert message in error.message


def test_a_time_in_the_future_is_refused(world):
    error = only_error(world, row(2, started_at=(timezone.now() + timedelta(hours=1)).isoformat()))
    assert (error.field, error.message) == ("started_at", "is in the future.")


def test_a_time_a_moment_ahead_is_accepted_for_clock_skew(world):
    ingest(world, [row(1, started_at=(timezone.now() + timedelta(minutes=1)).isoformat())])
    assert UsageRecord.objects.count() == 1


def test_a_row_that_is_not_a_mapping_is_refused(world):
    error = only_error(world, ["sms.outbound", "1"])
    assert (error.field, error.message) == ("record", "must be an object with named fields.")


def test_a_row_with_several_problems_reports_each(world):
    errors = rejected(world, [row(1, quantity="-1", started_at="soon", country="x")]).errors
    assert {(e.row, e.field) for e in errors} == {(1, "quantity"), (1, "started_at"), (1, "country")}


def test_a_time_without_offset_is_utc(world):
    ingest(world, [row(1, started_at="2025-06-01T23:30:00")])
    assert UsageRecord.objects.get().started_at == datetime(2025, 6, 1, 23, 30, tzinfo=UTC)
    assert DailyUsage.objects.get().day == datetime(2025, 6, 1).date()


def test_accepted_values_are_normalised(world):
    rows = [
        row(1, quantity=5, direction="OUTBOUND", country="us", destination=" +15550100 "),
        row(2, quantity=Decimal("0.000001"), direction="inbound", started_at="2025-06-01T10:00:02Z"),
        row(3, quantity=" 2.500000 ", product=" sms.outbound ", idempotency_key=" msg-3 "),
    ]
    ingest(world, rows)
    stored = {r.idempotency_key: r for r in UsageRecord.objects.all()}
    assert set(stored) == {"msg-1", "msg-2", "msg-3"}
    assert (stored["msg-1"].quantity, stored["msg-1"].direction, stored["msg-1"].country) == (5, "outbound", "US")
    assert stored["msg-1"].destination == "+15550100"
    assert stored["msg-2"].quantity == Decimal("0.000001")
    assert stored["msg-3"].quantity == Decimal("2.5")
    assert (stored["msg-3"].direction, stored["msg-3"].country, stored["msg-3"].destination) == ("", "", "")


def test_a_duplicate_idempotency_key_in_the_batch_names_the_earlier_row(world):
    rows = [row(1), row(2), row(3, idempotency_key="msg-1"), row(4), row(5, idempotency_key="msg-1")]
    errors = rejected(world, rows).errors
    assert errors == [
        RowError(3, "idempotency_key", "'msg-1' is also used in row 1."),
        RowError(5, "idempotency_key", "'msg-1' is also used in row 1."),
    ]


def test_the_same_key_for_two_accounts_is_not_a_duplicate(world):
    rows = [row(1), row(2, idempotency_key="msg-1", account=str(world.managed.public_id))]
    assert ingest(world, rows).accepted == 2
    assert set(UsageRecord.objects.values_list("account", "idempotency_key")) == {
        (world.manager.pk, "msg-1"),
        (world.managed.pk, "msg-1"),
    }


def test_an_empty_batch_is_refused(world):
    errors = rejected(world, []).errors
    assert errors == [RowError(0, "records", "The batch is empty.")]
    assert str(errors[0]) == "records: The batch is empty."


def test_a_batch_over_the_limit_is_refused(world):
    assert MAX_BATCH == 10_000
    errors = rejected(world, [row(1)] * (MAX_BATCH + 1)).errors
    assert errors == [RowError(0, "records", "A batch holds at most 10,000 records; this one has 10,001.")]


def test_a_batch_at_the_limit_is_accepted(world):
    rows = [row(n) for n in range(MAX_BATCH)]
    assert ingest(world, rows).accepted == MAX_BATCH
    assert UsageRecord.objects.count() == MAX_BATCH
    assert DailyUsage.objects.get().records == MAX_BATCH


def test_a_product_without_a_price_at_that_instant_is_refused(world):
    Product.objects.create(sku="video.outbound", name="Outbound video", unit="minute")
    error = only_error(world, row(2, product="video.outbound"))
    assert error.field == "product"
    assert error.message.startswith("video.outbound has no price at 2025-06-01 10:00:02")


def test_a_product_priced_only_from_later_is_refused_before_its_price(world):
    product = Product.objects.create(sku="video.outbound", name="Outbound video", unit="minute")
    Rate.objects.create(product=product, unit_price=Decimal("0.05"), effective_from=AT)
    error = only_error(world, row(2, product="video.outbound", started_at="2025-06-01T09:59:59.999999Z"))
    assert "has no price" in error.message
    ingest(world, [row(1, product="video.outbound", started_at="2025-06-01T10:00:00Z")])
    assert UsageRecord.objects.get().rate == Decimal("0.05")


def test_an_inactive_product_is_refused(world):
    Product.objects.filter(sku="fax.outbound").update(active=False)
    error = only_error(world, row(2, product="fax.outbound"))
    assert (error.field, error.message) == ("product", "'fax.outbound' is not a known product.")


# --- Whose usage --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Account.Status.DISABLED, Account.Status.CANCELLED])
def test_a_disabled_accounts_usage_is_refused(world, status):
    Account.objects.filter(pk=world.standard.pk).update(status=status)
    world.standard.refresh_from_db()
    errors = rejected(world, [row(1), row(2)], submitter=world.standard).errors
    # The submitter itself is refused once, for the whole batch.
    assert [(e.row, e.field) for e in errors] == [(0, "account")]
    assert errors[0].message == f"Solo Standard is {status.value}; its usage is refused."


def test_a_manager_naming_a_disabled_managed_account_is_refused(world):
    Account.objects.filter(pk=world.managed.pk).update(status=Account.Status.DISABLED)
    error = only_error(world, row(2, account=str(world.managed.public_id)))
    assert (error.field, error.message) == ("account", "Alpine Voice is disabled; its usage is refused.")


def test_a_manager_may_name_its_managed_accounts(world):
    Rate.objects.create(
        product=Product.objects.get(sku="sms.outbound"),
        account=world.manager,
        unit_price=Decimal("0.0035"),
        effective_from=AT - timedelta(days=30),
    )
    rows = [
        row(1, account=str(world.managed.public_id)),
        row(2, account=str(world.sibling.public_id), quantity="2"),
        row(3, account=str(world.manager.public_id)),
        row(4),
    ]
    assert ingest(world, rows).accepted == 4
    by_key = {r.idempotency_key: r for r in UsageRecord.objects.all()}
    assert by_key["msg-1"].account == world.managed
    assert by_key["msg-2"].account == world.sibling
    assert by_key["msg-3"].account == world.manager
    assert by_key["msg-4"].account == world.manager
    assert {r.rate for r in by_key.values()} == {Decimal("0.0035")}
    assert UsageBatch.objects.get().submitted_by_account == world.manager
    assert set(DailyUsage.objects.values_list("account", "records")) == {
        (world.managed.pk, 1),
        (world.sibling.pk, 1),
        (world.manager.pk, 2),
    }


@pytest.mark.parametrize(
    "spelling",
    [
        lambda public_id: str(public_id).upper(),  # e.g. Swift's UUID().uuidString
        lambda public_id: public_id.hex,
        lambda public_id: f" {public_id} ",
    ],
    ids=["upper-case", "32-hex-digits", "padded"],
)
def test_a_manager_may_name_its_managed_account_in_any_uuid_spelling(world, spelling):
    ingest(world, [row(1, account=spelling(world.managed.public_id))])
    assert UsageRecord.objects.get().account == world.managed


@pytest.mark.parametrize(
    "named",
    [
        lambda w: str(w.other_managed.public_id),  # another manager's managed account
        lambda w: str(w.other_manager.public_id),
        lambda w: str(w.standard.public_id),
        lambda w: str(uuid.uuid4()),
        lambda w: "not-a-uuid",
        lambda w: str(w.managed.pk),  # a database id is not an account reference
    ],
    ids=["other-managers-managed", "other-manager", "standard", "random-uuid", "garbage", "database-id"],
)
def test_a_manager_naming_an_account_it_does_not_manage_is_refused(world, named):
    value = named(world)
    error = only_error(world, row(2, account=value))
    assert (error.field, error.message) == ("account", f"'{value}' is not this account or one of its managed accounts.")


@pytest.mark.parametrize("named", ["managed", "manager", "other_managed", "sibling"])
def test_a_standard_account_naming_another_account_is_refused(world, named):
    value = str(getattr(world, named).public_id)
    error = only_error(
        world, row(2, account=value), submitter=world.standard, actor=Actor(user=world.users["standard_owner"])
    )
    assert error.field == "account"


def test_an_account_may_name_itself(world):
    actor = Actor(user=world.users["standard_owner"])
    ingest(world, [row(1, account=str(world.standard.public_id))], submitter=world.standard, actor=actor)
    assert UsageRecord.objects.get().account == world.standard


def test_a_managed_account_cannot_name_its_sibling_or_its_manager(world):
    actor = Actor(user=world.users["managed_owner"])
    for other in (world.sibling, world.manager):
        error = only_error(world, row(2, account=str(other.public_id)), submitter=world.managed, actor=actor)
        assert error.field == "account"


# --- Re-sent batches --------------------------------------------------------------------------------


def test_a_resent_batch_adds_nothing(world):
    rows = [row(n, account=str(world.managed.public_id)) for n in range(1, 6)]
    ingest(world, rows)
    before = stored_state()
    result = ingest(world, rows)
    assert (result.accepted, result.duplicates, result.batch) == (0, 5, None)
    assert stored_state() == before


def test_a_resent_record_keeps_its_first_values(world):
    ingest(world, [row(1, quantity="1")])
    result = ingest(world, [row(1, quantity="999")])
    assert (result.accepted, result.duplicates) == (0, 1)
    assert UsageRecord.objects.get().quantity == Decimal("1")
    assert DailyUsage.objects.get().quantity == Decimal("1")


def test_a_partly_new_batch_adds_only_the_new_records(world):
    first = [row(n, quantity="2") for n in range(1, 4)]
    ingest(world, first)
    second = [*first, row(4, quantity="0.25"), row(5, quantity="0.5")]
    result = ingest(world, second)
    assert (result.accepted, result.duplicates) == (2, 3)
    assert (result.batch.accepted, result.batch.duplicates) == (2, 3)
    assert UsageRecord.objects.count() == 5
    assert set(UsageRecord.objects.filter(batch=result.batch).values_list("idempotency_key", flat=True)) == {
        "msg-4",
        "msg-5",
    }
    total = DailyUsage.objects.get()
    assert (total.quantity, total.cost, total.records) == (Decimal("6.75"), Decimal("0.027"), 5)


# --- Audit -------------------------------------------------------------------------------------------------


def test_each_accepted_batch_is_audited_naming_the_user(world):
    first = ingest(world, [row(1), row(2)])
    second = ingest(world, [row(1), row(3)])
    ingest(world, [row(1)])  # all duplicates: no batch, no event
    events = list(AuditEvent.objects.filter(change_type="usage.ingested").order_by("id"))
    assert len(events) == 2
    for event, batch, count in ((events[0], first.batch, 2), (events[1], second.batch, 1)):
        assert event.account == world.manager
        assert event.user == world.users["owner"]
        assert event.user_email == world.users["owner"].email
        assert (event.resource_type, event.resource_id) == ("usagebatch", str(batch.public_id))
        assert event.change_made_by == AuditEvent.MadeBy.ACCOUNT_OWNER
        assert {"field": "records", "from": None, "to": count} in event.changes
        assert {"field": "source", "from": None, "to": "api"} in event.changes


def test_usage_sent_by_a_manager_acting_as_a_managed_account_is_audited_as_the_manager(world):
    actor = Actor(user=world.users["owner"], acting_as=world.users["managed_owner"])
    ingest(world, [row(1)], submitter=world.managed, actor=actor)
    event = AuditEvent.objects.get(change_type="usage.ingested")
    assert (event.account, event.user, event.acting_as) == (
        world.managed,
        world.users["owner"],
        world.users["managed_owner"],
    )
    assert event.change_made_by == AuditEvent.MadeBy.ACCOUNT_MANAGER
    assert UsageBatch.objects.get().submitted_by == world.users["owner"]


def test_a_disabled_submitter_cannot_submit_for_its_managed_accounts(world):
    from accounts.models import Account
    from billing.models import UsageRecord
    from billing.usage.services import UsageRejected, ingest_usage

    Account.objects.filter(pk=world.manager.pk).update(status=Account.Status.DISABLED)
    world.manager.refresh_from_db()
    row = {
        "account": str(world.managed.public_id),
        "product": "sms.outbound",
        "quantity": "1",
        "started_at": "2026-01-05T10:00:00Z",
        "idempotency_key": "disabled-submitter",
    }
    with pytest.raises(UsageRejected) as rejected:
        ingest_usage(submitter=world.manager, rows=[row], source="api", actor=Actor(user=world.users["owner"]))
    assert "its usage is refused" in str(rejected.value.errors[0])
    assert not UsageRecord.objects.exists()
