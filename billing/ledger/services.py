"""The ledger: every money movement is one immutable entry, and an account's balance is the sum of
its entries. The cached `Balance.amount` changes only in the transaction that adds an entry, under
the balance row's lock, so it always equals that sum.

Who holds money: every standard, manager and separately billed managed account; a roll-up managed
account's charges land on its manager (`billed_party`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.errors import Refusal
from accounts.locks import lock_rows
from accounts.models import Account
from billing.ledger.selectors import billed_party, has_own_balance, transfer_refusal
from billing.ledger.signals import debit_posted
from billing.models import Balance, LedgerEntry, MonthlyUsage
from billing.money import to_cents


class LedgerError(Refusal):
    """A ledger movement the rules refuse (no balance of its own, a bad amount, a bad transfer)."""


class InsufficientCredit(LedgerError):
    """A debit beyond the available credit; told apart so callers can retry or explain it."""


def balance_of(account: Account) -> Balance:
    """The account's balance row (created at zero on first use). Roll-up accounts have none."""
    if not has_own_balance(account):
        raise LedgerError(f"{account.name} is billed to its manager and has no balance of its own.")
    balance, _ = Balance.objects.get_or_create(account=account)
    return balance


def _lock(accounts: list[Account]) -> dict[int, Balance]:
    """Balance rows locked in primary-key order, so that two transactions never wait on each other
    in opposite orders (a transfer and a reverse transfer at once cannot deadlock)."""
    for account in accounts:
        balance_of(account)
    return {b.account_id: b for b in lock_rows(Balance.objects.filter(account_id__in={a.pk for a in accounts}))}


POSTABLE_KINDS = (
    LedgerEntry.Kind.TOP_UP,
    LedgerEntry.Kind.ADJUSTMENT,
    LedgerEntry.Kind.REFUND,
    LedgerEntry.Kind.INVOICE_SETTLEMENT,
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
        _after_debit(entry, before=balance.amount - amount, after=balance.amount)
    return Posted(entry, created=True)


def _after_debit(entry: LedgerEntry, *, before: Decimal, after: Decimal) -> None:
    """A debit may take the balance below the account's auto-recharge threshold: the ledger says so
    (`debit_posted`), and payments, which builds on the ledger, answers (billing.payments.receivers)."""
    debit_posted.send(sender=LedgerEntry, account_id=entry.account_id, entry_id=entry.pk, before=before, after=after)


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


@transaction.atomic
def transfer_credit(*, manager: Account, managed: Account, amount: Decimal, key: str, actor: Actor) -> Posted:
    """Moves credit from a manager to one of its separately billed managed accounts: both legs in
    one transaction, the manager's leg limited by its available credit."""
    amount = Decimal(amount)
    if managed.manager_id != manager.pk:
        raise LedgerError("That is not one of your managed accounts.")
    refusal = transfer_refusal(managed)
    if refusal is not None:
        raise LedgerError(refusal)
    if not amount.is_finite() or amount <= 0 or amount != to_cents(amount):
        raise LedgerError("Transfer a positive amount in cents.", field="amount")
    if amount > settings.BILLING_MAX_TRANSFER:
        raise LedgerError(f"A transfer is at most USD {settings.BILLING_MAX_TRANSFER:,.2f}.", field="amount")
    balances = _lock([manager, managed])
    out = _post(
        balances[manager.pk],
        kind=LedgerEntry.Kind.TRANSFER_OUT,
        amount=-amount,
        key=f"transfer:{key}",
        description=f"Credit transferred to {managed.name}",
        allow_overdraft=False,
        related_account=managed,
        actor=actor,
    )
    if not out.created:
        return out
    _post(
        balances[managed.pk],
        kind=LedgerEntry.Kind.TRANSFER_IN,
        amount=amount,
        key=f"transfer:{key}",
        description=f"Credit from {manager.name}",
        allow_overdraft=True,
        related_account=manager,
        actor=actor,
    )
    audit.record(
        account=manager,
        related_account=managed,
        actor=actor,
        change_type=audit.ChangeType.BALANCE_TRANSFERRED,
        resource=out.entry,
        changes=[{"field": "amount", "from": None, "to": str(amount)}],
    )
    return out


@transaction.atomic
def post_usage_charges(*, account: Account, month: date) -> Posted | None:
    """Charges `account`'s rated usage of `month` to its billed party, as the difference between the
    month's cost to date (rounded to cents once, half up) and what was already charged for it.
    Safe to run any number of times, at once too: the cumulative amount is in the idempotency key
    and the difference is taken under the balance's lock. Usage already happened, so a charge may
    take the balance below the credit limit."""
    payer = billed_party(account)
    balance = _lock([payer])[payer.pk]
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
    bulk balance update, and `_after_debit` for every debited account. The same amounts and the
    same idempotency keys as one by one, so the two can be mixed and repeated. Returns how many
    entries it posted."""
    accounts = sorted({account.pk: account for account in accounts}.values(), key=lambda a: a.pk)
    if not accounts:
        return 0
    if not all(has_own_balance(account) for account in accounts):
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
    for the keys already posted, one bulk insert, one bulk update, then `_after_debit` once per
    debited balance."""
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
    Balance.objects.bulk_update([balances[pk] for pk in last], ["amount", "updated_at"], batch_size=2000)
    for pk, entry in last.items():
        if balances[pk].amount < before[pk]:
            _after_debit(entry, before=before[pk], after=balances[pk].amount)
    return len(entries)


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
