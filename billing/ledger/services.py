"""The ledger: every money movement is one immutable entry, and an account's balance is the sum of
its entries. The cached `Balance.amount` changes only in the transaction that adds an entry, under
the balance row's lock, so it always equals that sum.

Who holds money: every standard, manager and separately billed managed account; a roll-up managed
account's charges land on its manager (`billed_party`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.audit import FieldChange
from accounts.errors import Refusal
from accounts.locks import lock_rows
from accounts.models import Account
from billing.ledger.selectors import billed_party, has_own_balance, owes_from_separate_billing, transfer_refusal
from billing.ledger.signals import Debit, balances_debited, credit_changed, debits_posted
from billing.models import Balance, CreditTransfer, LedgerEntry, MonthlyUsage
from billing.money import to_cents


class LedgerError(Refusal):
    """A ledger movement the rules refuse (no balance of its own, a bad amount, a bad transfer)."""


class InsufficientCredit(LedgerError):
    """A debit beyond the available credit; told apart so callers can retry or explain it."""


def balance_of(account: Account, month: date | None = None) -> Balance:
    """The account's balance row (created at zero on first use), for a movement of `month` (this
    month by default). Roll-up accounts have none, but for what a roll-up account still owes
    from its separately billed months (`owes_from_separate_billing`)."""
    if not has_own_balance(account, month) and not owes_from_separate_billing(account):
        raise LedgerError(f"{account.name} is billed to its manager and has no balance of its own.")
    balance, _ = Balance.objects.get_or_create(account=account)
    return balance


def _lock(accounts: list[Account], month: date | None = None) -> dict[int, Balance]:
    """Balance rows locked in primary-key order, so that two transactions never wait on each other
    in opposite orders (a transfer and a reverse transfer at once cannot deadlock)."""
    for account in accounts:
        balance_of(account, month)
    return {b.account_id: b for b in lock_rows(Balance.objects.filter(account_id__in={a.pk for a in accounts}))}


POSTABLE_KINDS = (
    LedgerEntry.Kind.TOP_UP,
    LedgerEntry.Kind.ADJUSTMENT,
    LedgerEntry.Kind.REFUND,
    LedgerEntry.Kind.INVOICE_SETTLEMENT,
    LedgerEntry.Kind.CREDIT_NOTE,  # billing.invoices.credit_notes, under the invoice's lock
)


@dataclass(frozen=True)
class Posted:
    entry: LedgerEntry
    created: bool  # False when the idempotency key had already been posted


def _post(
    balance: Balance,
    *,
    kind: str,
    amount: Decimal,
    key: str,
    description: str,
    allow_overdraft: bool,
    related_account: Account | None = None,
    period: date | None = None,
    actor: Actor | None = None,
) -> Posted:
    """Adds one entry to a balance already locked by the caller's transaction."""
    existing = LedgerEntry.objects.filter(account_id=balance.account_id, idempotency_key=key).first()
    if existing is not None:
        return Posted(existing, created=False)
    amount = Decimal(amount)
    if not amount.is_finite() or amount == 0 or amount != to_cents(amount):
        raise LedgerError("A ledger amount is a non-zero number of cents.", field="amount")
    if amount < 0 and not allow_overdraft and balance.amount + amount < -balance.credit_limit:
        raise InsufficientCredit(
            f"Not enough credit: {balance.currency} {-amount:,.2f} is more than the available "
            f"{balance.currency} {balance.available_credit:,.2f}.",
            field="amount",
        )
    entry = LedgerEntry.objects.create(
        account_id=balance.account_id,
        kind=kind,
        amount=amount,
        currency=balance.currency,
        idempotency_key=key,
        description=description[:255],
        related_account=related_account,
        period=period,
        created_by=actor.user if actor else None,
    )
    balance.amount += amount
    balance.save(update_fields=["amount", "updated_at"])
    if amount < 0:
        _announce_debits({balance.account_id: Debit(entry.pk, balance.amount - amount, balance.amount)})
    else:
        credit_changed.send(sender=LedgerEntry, account_id=balance.account_id, available=balance.available_credit)
    return Posted(entry, created=True)


def _announce_debits(debits: dict[int, Debit]) -> None:
    """Debits may take balances below an auto-recharge threshold or use up credit: the ledger says
    so once per posting (`debits_posted`, `balances_debited`), and payments and controls, built on
    the ledger, answer (billing.payments.receivers, controls.receivers)."""
    debits_posted.send(sender=LedgerEntry, debits=debits)
    balances_debited.send(sender=LedgerEntry, after={pk: debit.after for pk, debit in debits.items()})


@transaction.atomic
def post_entry(
    *,
    account: Account,
    kind: str,
    amount: Decimal,
    key: str,
    description: str,
    allow_overdraft: bool = False,
    actor: Actor | None = None,
) -> Posted:
    """One entry on one account's own balance; a repeated key returns the first entry unchanged.
    Transfers and usage charges have their own functions; keys are kept apart per kind."""
    if kind not in POSTABLE_KINDS:
        raise LedgerError(f"{kind} entries are posted by their own function, not post_entry.")
    balance = _lock([account])[account.pk]
    return _post(
        balance,
        kind=kind,
        amount=amount,
        key=f"{kind}:{key}",
        description=description,
        allow_overdraft=allow_overdraft,
        actor=actor,
    )


class TransferKeyReused(LedgerError):
    """An idempotency key already used for another transfer: the request is not a repeat of it."""

    status = 409
    code = "idempotency_key_reused"
    title = "Idempotency key reused"


@dataclass(frozen=True)
class Transferred:
    transfer: CreditTransfer
    created: bool  # False when the idempotency key had already made this transfer


@transaction.atomic
def transfer_credit(*, manager: Account, managed: Account, amount: Decimal, key: str, actor: Actor) -> Posted:
    """Moves credit from a manager to one of its separately billed managed accounts (the page's
    transfer): `transfer` to the managed account, answered as its debit leg. The form's key is one
    per form, so a repeat of it (a double click, the back button) is that form's transfer, made once,
    whatever it asks now."""
    made = transfer(manager=manager, managed=managed, amount=amount, key=key, actor=actor, same_request_only=False)
    return Posted(made.transfer.debit, created=made.created)


@transaction.atomic
def transfer(
    *,
    manager: Account,
    managed: Account,
    amount: Decimal,
    actor: Actor,
    direction: str = CreditTransfer.Direction.TO_MANAGED,
    key: str | None = None,
    reference: str = "",
    same_request_only: bool = True,
) -> Transferred:
    """Moves credit between a manager and one of its separately billed managed accounts, either
    way: both legs in one transaction, the sender's leg limited by its available credit (a managed
    account gives back at most what it holds: its credit line is its manager's guarantee, not
    money). `key` (unique per manager) makes a repeat find the transfer it made; the same key with
    another request is refused (`same_request_only`; else the key's transfer is the answer). Under
    both balances' locks, so two requests with one key queue and the second finds the first's."""
    amount = Decimal(amount)
    to_manager = direction == CreditTransfer.Direction.TO_MANAGER
    if direction not in CreditTransfer.Direction.values:
        raise LedgerError("A transfer goes to the managed account or to the manager.", field="direction")
    if managed.manager_id != manager.pk:
        raise LedgerError("That is not one of your managed accounts.")
    refusal = transfer_refusal(managed, to_manager=to_manager)
    if refusal is not None:
        raise LedgerError(refusal)
    if not amount.is_finite() or amount <= 0 or amount != to_cents(amount):
        raise LedgerError("Transfer a positive amount in cents.", field="amount")
    if amount > settings.BILLING_MAX_TRANSFER:
        raise LedgerError(f"A transfer is at most USD {settings.BILLING_MAX_TRANSFER:,.2f}.", field="amount")
    balances = _lock([manager, managed])
    if key is not None:
        done = CreditTransfer.objects.filter(manager=manager, idempotency_key=key).first()
        if done is not None:
            asked = (managed.pk, amount, direction, reference)
            return Transferred(_repeated(done, asked=asked) if same_request_only else done, created=False)
    sender, receiver = (managed, manager) if to_manager else (manager, managed)
    owed = -balances[managed.pk].amount
    if not has_own_balance(managed) and amount > owed:
        raise LedgerError(
            f"{managed.name} is billed to you (roll-up): transfer at most the USD {owed:,.2f} it still owes "
            "from its separately billed months.",
            field="amount",
        )
    if to_manager and amount > balances[managed.pk].amount:
        held = max(balances[managed.pk].amount, Decimal(0))
        raise InsufficientCredit(
            f"Not enough credit: {managed.name} holds {balances[managed.pk].currency} {held:,.2f}, "
            f"less than {amount:,.2f}.",
            field="amount",
        )
    ledger_key = f"transfer:{key if key is not None else uuid.uuid4()}"
    out = _post(
        balances[sender.pk], kind=LedgerEntry.Kind.TRANSFER_OUT, amount=-amount, key=ledger_key,
        description=f"Credit transferred to {receiver.name}", allow_overdraft=False, related_account=receiver,
        actor=actor,
    )  # fmt: skip
    into = _post(
        balances[receiver.pk], kind=LedgerEntry.Kind.TRANSFER_IN, amount=amount, key=ledger_key,
        description=f"Credit from {sender.name}", allow_overdraft=True, related_account=sender, actor=actor,
    )  # fmt: skip
    made = CreditTransfer.objects.create(
        public_id=out.entry.public_id, manager=manager, managed=managed, direction=direction, amount=amount,
        currency=out.entry.currency, reference=reference, idempotency_key=key, debit=out.entry, credit=into.entry,
        created_by=actor.user, created_at=out.entry.created_at,
    )  # fmt: skip
    changes: list[FieldChange] = [{"field": "amount", "from": None, "to": str(amount)}]
    if to_manager:
        changes.append({"field": "direction", "from": None, "to": direction})
    if reference:
        changes.append({"field": "reference", "from": None, "to": reference})
    audit.record(
        account=manager,
        related_account=managed,
        actor=actor,
        change_type=audit.ChangeType.BALANCE_TRANSFERRED,
        resource=out.entry,
        changes=changes,
    )
    return Transferred(made, created=True)


def _repeated(done: CreditTransfer, *, asked: tuple[int, Decimal, str, str]) -> CreditTransfer:
    """The transfer a key made, when the request (managed account, amount, direction, reference)
    asks for the same; refused when it asks otherwise."""
    if (done.managed_id, done.amount, done.direction, done.reference) != asked:
        raise TransferKeyReused(
            "This idempotency key was used for another transfer (other accounts, amount, direction or "
            "reference); send a new key for a new transfer.",
            field="idempotency_key",
        )
    return done


@transaction.atomic
def post_usage_charges(*, account: Account, month: date) -> Posted | None:
    """Charges `account`'s rated usage of `month` to its billed party, as the difference between the
    month's cost to date (rounded to cents once, half up) and what was already charged for it.
    Safe to run any number of times, at once too: the cumulative amount is in the idempotency key
    and the difference is taken under the balance's lock. Usage already happened, so a charge may
    take the balance below the credit limit."""
    payer = billed_party(account, month)
    balance = _lock([payer], month)[payer.pk]
    charged = _charged(
        LedgerEntry.objects.filter(account=payer, related_account=account), group_by="related_account_id", month=month
    )
    entries = _usage_charge_entries([account], month, payer_of=lambda account: balance, charged=charged)
    if not entries:
        return None
    (entry,) = entries
    return _post(
        balance,
        kind=entry.kind,
        amount=entry.amount,
        key=entry.idempotency_key,
        description=entry.description,
        allow_overdraft=True,
        related_account=account,
        period=month,
    )


@transaction.atomic
def post_usage_charges_for(*, payer: Account, accounts: list[Account], month: date) -> int:
    """`post_usage_charges` for many accounts billed to one payer (a manager's roll-up accounts at
    the close), set-based: two grouped sums, one bulk insert and one balance update, under the
    payer's balance lock, instead of a round of queries per account. The same amounts and the same
    idempotency keys, so the two can be mixed and repeated. Returns how many entries it posted."""
    if any(a.manager_id != payer.pk or a.has_own_balance_in(month) for a in accounts):
        raise LedgerError(f"Only accounts billed to {payer.name} by roll-up in {month:%B %Y} are charged to it.")
    balance = _lock([payer])[payer.pk]
    ids = [account.pk for account in accounts]
    charged = _charged(
        LedgerEntry.objects.filter(account=payer, related_account_id__in=ids),
        group_by="related_account_id",
        month=month,
    )
    entries = _usage_charge_entries(accounts, month, payer_of=lambda account: balance, charged=charged)
    return _post_bulk(entries, {payer.pk: balance})


@transaction.atomic
def post_own_usage_charges(*, accounts: list[Account], month: date) -> int:
    """`post_usage_charges` for many accounts that each pay their own usage (the close's batches of
    standard, manager and separately billed accounts), set-based: the balances locked in one
    SELECT ... FOR UPDATE in primary-key order (as `_lock`), two grouped sums, one bulk insert, one
    bulk balance update, and the debits announced once (`_announce_debits`). The same amounts and the
    same idempotency keys as one by one, so the two can be mixed and repeated. Returns how many
    entries it posted."""
    accounts = sorted({account.pk: account for account in accounts}.values(), key=lambda a: a.pk)
    if not accounts:
        return 0
    if not all(has_own_balance(account, month) for account in accounts):
        raise LedgerError("Only accounts with a balance of their own pay their own usage.")
    ids = [account.pk for account in accounts]
    present = set(Balance.objects.filter(account_id__in=ids).values_list("account_id", flat=True))
    if len(present) < len(ids):
        Balance.objects.bulk_create([Balance(account_id=pk) for pk in ids if pk not in present], ignore_conflicts=True)
    balances = {b.account_id: b for b in lock_rows(Balance.objects.filter(account_id__in=ids))}
    charged = _charged(
        LedgerEntry.objects.filter(account_id__in=ids, related_account_id=F("account_id")),
        group_by="account_id",
        month=month,
    )
    entries = _usage_charge_entries(accounts, month, payer_of=lambda account: balances[account.pk], charged=charged)
    return _post_bulk(entries, balances)


def _charged(entries: QuerySet[LedgerEntry], *, group_by: str, month: date) -> dict[int, Decimal]:
    """What was already charged for the month, per account the usage is of (negative amounts)."""
    return dict(
        entries.filter(kind=LedgerEntry.Kind.USAGE_CHARGE, period=month)
        .values(group_by)
        .annotate(total=Sum("amount"))
        .values_list(group_by, "total")
        .order_by()
    )


def _usage_charge_entries(
    accounts: Sequence[Account],
    month: date,
    *,
    payer_of: Callable[[Account], Balance],
    charged: dict[int, Decimal],
) -> list[LedgerEntry]:
    """Each account's missing usage charge, unsaved, on its payer's balance: the one place a usage
    charge's amount (the month's cost to date, rounded to cents once, less what was charged) and
    its idempotency key (that cumulative amount) are decided, one account or thousands."""
    exact = dict(
        MonthlyUsage.objects.filter(account_id__in=[a.pk for a in accounts], month=month)
        .values("account_id")
        .annotate(total=Sum("cost"))
        .values_list("account_id", "total")
        .order_by()
    )
    entries = []
    for account in accounts:
        target = to_cents(exact.get(account.pk) or Decimal(0))
        delta = target + (charged.get(account.pk) or Decimal(0))  # charges are negative
        if delta:
            balance = payer_of(account)
            entries.append(
                LedgerEntry(
                    account_id=balance.account_id,
                    kind=LedgerEntry.Kind.USAGE_CHARGE,
                    amount=-delta,
                    currency=balance.currency,
                    idempotency_key=f"usage:{account.pk}:{month:%Y-%m}:{target}",
                    description=f"Usage of {account.name}, {month:%B %Y}"[:255],
                    related_account_id=account.pk,
                    period=month,
                )
            )
    return entries


def _post_bulk(entries: list[LedgerEntry], balances: dict[int, Balance]) -> int:
    """Inserts the entries whose keys are new, and moves their (locked) balances by them: one query
    for the keys already posted, one bulk insert, one bulk update, then the debits
    announced once (`_announce_debits`)."""
    if entries:
        posted = set(
            LedgerEntry.objects.filter(
                account_id__in={e.account_id for e in entries}, idempotency_key__in=[e.idempotency_key for e in entries]
            ).values_list("account_id", "idempotency_key")
        )
        entries = [e for e in entries if (e.account_id, e.idempotency_key) not in posted]
    if not entries:
        return 0
    LedgerEntry.objects.bulk_create(entries, batch_size=2000)  # sets each entry's pk (PostgreSQL, SQLite)
    now = timezone.now()
    before: dict[int, Decimal] = {}
    last: dict[int, LedgerEntry] = {}
    for entry in entries:
        balance = balances[entry.account_id]
        before.setdefault(entry.account_id, balance.amount)
        last[entry.account_id] = entry
        balance.amount += entry.amount
        balance.updated_at = now
    _save_amounts([balances[pk] for pk in last], now)
    debited = {
        pk: Debit(last[pk].pk, before[pk], balances[pk].amount) for pk in last if balances[pk].amount < before[pk]
    }
    if debited:
        _announce_debits(debited)
    return len(entries)


def _save_amounts(balances: list[Balance], now: datetime) -> None:
    """The (locked) balances' new amounts written back: on PostgreSQL one UPDATE ... FROM unnest
    (`bulk_update` builds a CASE of a branch per row, milliseconds of Python per hundred), elsewhere
    `bulk_update`."""
    if connection.vendor != "postgresql":
        Balance.objects.bulk_update(balances, ["amount", "updated_at"], batch_size=2000)
        return
    table = connection.ops.quote_name(Balance._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS b SET amount = v.amount, updated_at = %s "  # noqa: S608 (the model's table)
            "FROM unnest(%s::bigint[], %s::numeric[]) AS v(id, amount) WHERE b.id = v.id",
            [now, [b.pk for b in balances], [b.amount for b in balances]],
        )


@transaction.atomic
def adjust_balance(*, account: Account, amount: Decimal, reason: str, key: str, actor: Actor) -> Posted:
    """A staff correction (admin site), audited on the account."""
    if not reason.strip():
        raise LedgerError("Give the reason for the adjustment.", field="reason")
    posted = post_entry(
        account=account,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        amount=amount,
        key=key,
        description=f"Adjustment: {reason.strip()}",
        allow_overdraft=True,
        actor=actor,
    )
    if posted.created:
        audit.record(
            account=account,
            actor=actor,
            change_type=audit.ChangeType.BALANCE_ADJUSTED,
            resource=posted.entry,
            changes=[
                {"field": "amount", "from": None, "to": str(posted.entry.amount)},
                {"field": "reason", "from": None, "to": reason.strip()},
            ],
        )
    return posted


@transaction.atomic
def set_credit_limit(*, account: Account, limit: Decimal, actor: Actor) -> Balance:
    """Staff set how far below zero an account may go; only that column is written, on the locked
    row, so no entry posted meanwhile is lost."""
    limit = Decimal(limit)
    if not limit.is_finite() or limit < 0 or limit != to_cents(limit):
        raise LedgerError("A credit limit is zero or more, in cents.", field="credit_limit")
    balance = _lock([account])[account.pk]
    before = balance.credit_limit
    if before != limit:
        balance.credit_limit = limit
        balance.save(update_fields=["credit_limit", "updated_at"])
        audit.record(
            account=account,
            actor=actor,
            change_type=audit.ChangeType.BALANCE_CREDIT_LIMIT_CHANGED,
            resource=balance,
            changes=[{"field": "credit_limit", "from": str(before), "to": str(limit)}],
        )
        credit_changed.send(sender=Balance, account_id=account.pk, available=balance.available_credit)
    return balance


# --- Benchmark and scale workloads only -------------------------------------------------------------------


@transaction.atomic
def discard_usage_charges(*, accounts: list[Account], month: date) -> int:
    """For benchmark and scale workloads only (`manage.py benchmark` closes the same month again on
    every run); refused when MC_ENV=production, where a posted entry never goes. Deletes the
    usage-charge entries of `month` on the balances of `accounts` and moves those cached balances
    back by the same amounts, under the balance rows' locks in primary-key order, so that each still
    equals the sum of its entries. Returns how many entries it deleted."""
    if settings.MC_ENV == "production":
        raise LedgerError("Usage charges are discarded on benchmark and scale databases only, never in production.")
    ids = {account.pk for account in accounts}
    balances = {b.account_id: b for b in lock_rows(Balance.objects.filter(account_id__in=ids))}
    entries = LedgerEntry.objects.filter(account_id__in=ids, kind=LedgerEntry.Kind.USAGE_CHARGE, period=month)
    totals = _charged(entries, group_by="account_id", month=month)
    # The ledger's queryset refuses deletes, as the application never deletes an entry; this is the one exception.
    deleted, _ = QuerySet.delete(entries)
    now = timezone.now()
    for account_id, total in totals.items():
        balances[account_id].amount -= total
        balances[account_id].updated_at = now
    Balance.objects.bulk_update([balances[pk] for pk in totals], ["amount", "updated_at"], batch_size=2000)
    return deleted
