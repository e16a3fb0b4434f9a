"""Writes of notifications: the low-balance threshold (and its crossings, once each), a person's
alert choices, and the alert e-mails chosen for audit events, queued after commit.

Concurrency: every write of a threshold's `below` state holds the threshold row's lock, taken after
the account's balance lock (the ledger's, held by every posting), so two debits racing past the
threshold queue and the second finds the crossing made. The threshold row, not the account row: the
limits check (controls) locks account rows outside any balance lock, and a second lock order on
them could deadlock against it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import F, FilteredRelation, Q
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.audit import Entry, FieldChange
from accounts.errors import Refusal
from accounts.locks import lock_or_create, lock_rows
from accounts.models import Account, AuditEvent, Membership, User
from billing.ledger import services as ledger
from billing.models import Balance
from billing.money import to_cents
from notifications import tasks
from notifications.alerts import ALERT_OF, Alert, default_choice, subject_of
from notifications.models import AlertChoice, LowBalanceThreshold

MAX_THRESHOLD = Decimal("10000000.00")


class NotificationsError(Refusal):
    """A threshold or an alert choice the rules refuse."""


# --- The low-balance threshold ----------------------------------------------------------------------------


def threshold_refusal(account: Account) -> str | None:
    """Why `account` has no low-balance threshold of its own, or None when it may have one."""
    if not account.has_own_balance:
        return f"{account.name} is billed to its manager (roll-up): it has no balance of its own to watch."
    return None


@transaction.atomic
def set_low_balance_threshold(*, account: Account, amount: Decimal, enabled: bool, actor: Actor) -> LowBalanceThreshold:
    """Sets the account's threshold, audited, and compares the balance with it at once: a threshold
    set above the balance is a crossing (the alert goes out), one set below a low balance ends it."""
    refusal = threshold_refusal(account)
    if refusal is not None:
        raise NotificationsError(refusal)
    amount = Decimal(amount)
    if not amount.is_finite() or amount != to_cents(amount) or abs(amount) > MAX_THRESHOLD:
        raise NotificationsError(
            f"A threshold is an amount in whole cents, at most USD {MAX_THRESHOLD:,.2f} either side of zero.",
            field="threshold_amount",
        )
    ledger.balance_of(account)
    (balance,) = lock_rows(Balance.objects.filter(account=account))
    row = lock_or_create(LowBalanceThreshold.objects, account=account)
    changes: list[FieldChange] = [
        {"field": field, "from": before, "to": after}
        for field, before, after in (("threshold", str(row.amount), str(amount)), ("enabled", row.enabled, enabled))
        if before != after
    ]
    if changes:
        row.amount, row.enabled, row.updated_by = amount, enabled, actor.user
        row.save()
        audit.record(
            account=account,
            related_account=account.manager if account.is_managed else None,
            actor=actor,
            change_type=audit.ChangeType.LOW_BALANCE_THRESHOLD_CHANGED,
            resource=balance,
            changes=changes,
        )
    _compare([row], {account.pk: balance}, {account.pk: account}, actor=actor)
    return row


def balances_lowered(after: Mapping[int, Decimal]) -> int:
    """Debits just lowered these balances (inside their transaction, the balances locked): each
    that crossed below its threshold now is marked below and audited (`balance.low`), once.
    Set-based: one query when none crossed. Returns how many crossed."""
    rows = LowBalanceThreshold.objects.filter(account_id__in=list(after), enabled=True, below=False)
    crossed = sorted(pk for pk, amount in rows.values_list("account_id", "amount") if after[pk] < amount)
    if not crossed:
        return 0
    return _compare_locked(crossed)


def balance_raised(account_id: int) -> int:
    """A credit (a top-up, a transfer in) on a balance already locked: a low balance back at or
    above its threshold ends the crossing (`balance.recovered`)."""
    if not LowBalanceThreshold.objects.filter(account_id=account_id, below=True).exists():
        return 0
    return _compare_locked([account_id])


def _compare_locked(account_ids: list[int]) -> int:
    rows = lock_rows(LowBalanceThreshold.objects.filter(account_id__in=account_ids))
    balances = Balance.objects.in_bulk(field_name="account_id", id_list=account_ids)
    accounts = Account.objects.select_related("manager").in_bulk(account_ids)
    return _compare(rows, balances, accounts, actor=Actor.platform_staff())


def _compare(
    rows: Sequence[LowBalanceThreshold],
    balances: Mapping[int, Balance],
    accounts: Mapping[int, Account],
    *,
    actor: Actor,
) -> int:
    """Moves each (locked) threshold's `below` to what its balance says, one audit event per change."""
    now = timezone.now()
    entries: list[Entry] = []
    low: list[int] = []
    recovered: list[int] = []
    for row in rows:
        balance = balances.get(row.account_id)
        if balance is None:
            continue
        is_low = row.enabled and balance.amount < row.amount
        if is_low == row.below:
            continue
        (low if is_low else recovered).append(row.pk)
        if row.enabled:  # switched off while low: the state ends quietly
            entries.append(_balance_entry(accounts[row.account_id], balance, row, low=is_low))
    if low:
        LowBalanceThreshold.objects.filter(pk__in=low).update(below=True, below_since=now)
    if recovered:
        LowBalanceThreshold.objects.filter(pk__in=recovered).update(below=False, below_since=None)
    if entries:
        audit.record_many(actor=actor, entries=entries)
    for row in rows:
        if row.pk in low or row.pk in recovered:
            row.below, row.below_since = row.pk in low, now if row.pk in low else None
    return len(low)


def _balance_entry(account: Account, balance: Balance, row: LowBalanceThreshold, *, low: bool) -> Entry:
    changes: list[FieldChange] = [
        {"field": "balance", "from": None, "to": str(balance.amount)},
        {"field": "threshold", "from": None, "to": str(row.amount)},
        {"field": "currency", "from": None, "to": row.currency},
    ]
    return Entry(
        account=account,
        change_type=audit.ChangeType.BALANCE_LOW if low else audit.ChangeType.BALANCE_RECOVERED,
        resource=balance,
        changes=changes,
        related_account=account.manager if account.is_managed else None,
    )


# --- A person's alert choices ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    alert: Alert
    email: bool
    managed_email: bool


def choices_of(*, user: User, membership: Membership) -> list[Choice]:
    """The person's choice for every alert in the membership's account, the role's default where
    they have not chosen."""
    stored = {c.alert: c for c in AlertChoice.objects.filter(user=user, account_id=membership.account_id)}
    managed = membership.account.is_manager
    answer = []
    for alert in Alert:
        row = stored.get(alert)
        email = row.email if row else default_choice(role=membership.role, alert=alert)
        on_managed = (
            row.managed_email if row else managed and default_choice(role=membership.role, alert=alert, managed=True)
        )
        answer.append(Choice(alert, email, bool(on_managed and managed)))
    return answer


@transaction.atomic
def set_choices(
    *, user: User, membership: Membership, email: set[str], managed_email: set[str], actor: Actor
) -> list[Choice]:
    """Stores the person's choices (every alert: on when named), audited with what changed."""
    unknown = sorted((email | managed_email) - set(Alert))
    if unknown:
        raise NotificationsError(f"Unknown alerts: {', '.join(unknown)}.", field="alerts")
    if managed_email and not membership.account.is_manager:
        raise NotificationsError("Only a manager account has managed accounts.", field="managed_email")
    before = {c.alert: c for c in choices_of(user=user, membership=membership)}
    changes: list[FieldChange] = []
    for alert in Alert:
        after = Choice(alert, alert in email, alert in managed_email)
        AlertChoice.objects.update_or_create(
            user=user, account_id=membership.account_id, alert=alert,
            defaults={"email": after.email, "managed_email": after.managed_email},
        )  # fmt: skip
        if before[alert] != after:
            changes.append({"field": str(alert), "from": _said(before[alert]), "to": _said(after)})
    if changes:
        audit.record(
            account=membership.account,
            actor=actor,
            change_type=audit.ChangeType.NOTIFICATION_SETTINGS_CHANGED,
            resource=membership,
            changes=changes,
        )
    return choices_of(user=user, membership=membership)


def _said(choice: Choice) -> str:
    if choice.managed_email:
        return "e-mail, also for managed accounts" if choice.email else "e-mail for managed accounts only"
    return "e-mail" if choice.email else "off"


# --- Alert e-mails from audit events ----------------------------------------------------------------------


def queue_alert_emails(events: Sequence[AuditEvent]) -> list[tuple[int, list[int]]]:
    """Chooses, in the events' transaction, who is sent each alert event (the people of its account
    who want it, and for a managed account the manager's people who want it of managed accounts),
    and queues one task after commit that sends them. Set-based: two queries whatever the number
    of events (the people and their stored choices in one query: each membership joined to its
    person's choices in that account for these alerts). Returns [(event id, [user ids])]."""
    wanted = [(e, ALERT_OF[e.change_type]) for e in events if e.change_type in ALERT_OF]
    if not wanted:
        return []
    about = {e.pk: subject_of(e) for e, _ in wanted}
    own_ids = {subject.pk for subject, _ in about.values()}
    manager_ids = {s.manager_id for s, told in about.values() if told and s.manager_id is not None}
    choices = FilteredRelation(
        "user__alert_choices",
        condition=Q(user__alert_choices__account=F("account"), user__alert_choices__alert__in={a for _, a in wanted}),
    )
    rows = (
        Membership.objects.filter(account_id__in=own_ids | manager_ids, user__is_active=True)
        .annotate(choice=choices)
        .order_by()
        .values_list("account_id", "user_id", "role", "choice__alert", "choice__email", "choice__managed_email")
    )
    people: dict[int, dict[int, str]] = defaultdict(dict)  # account -> user -> role
    stored: dict[tuple[int, int, str], tuple[bool, bool]] = {}
    for account_id, user_id, role, alert, email, managed in rows:
        people[account_id][user_id] = role
        if alert is not None:
            stored[(user_id, account_id, alert)] = (email, managed)

    def wants(account_id: int, user_id: int, role: str, alert: Alert, *, managed: bool) -> bool:
        choice = stored.get((user_id, account_id, alert))
        if choice is None:
            return default_choice(role=role, alert=alert, managed=managed)
        return choice[1] if managed else choice[0]

    def who(account_id: int, alert: Alert, *, managed: bool) -> set[int]:
        return {u for u, role in people[account_id].items() if wants(account_id, u, role, alert, managed=managed)}

    batch = []
    for event, alert in wanted:
        subject, told = about[event.pk]
        users = who(subject.pk, alert, managed=False)
        if told and subject.manager_id is not None:
            users |= who(subject.manager_id, alert, managed=True)
        if users:
            batch.append((event.pk, sorted(users)))
    if batch:
        transaction.on_commit(lambda: tasks.send_alert_emails.delay([[pk, users] for pk, users in batch]))
    return batch
