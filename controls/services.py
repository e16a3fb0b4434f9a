"""Writes of controls: spend limits, the credit limits a manager gives, and the one check that turns
usage, balances and limits into an account's service block.

The check (`check_accounts`) is set-based over any number of accounts, in a fixed number of
queries: the accounts' rows locked in primary-key order (so two checks of the same account, two
usage batches racing, queue behind each other and the second sees the first's result), their limits
with this month's and today's spend from the daily and monthly totals, their balances; then one
update per table for what changed and one insert for the audit events. Each crossing is acted on
once: a limit remembers the period it was reached in, an account its block, and only a change of
those is audited."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Model, Sum
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.audit import Entry, FieldChange
from accounts.errors import Refusal
from accounts.locks import lock_rows
from accounts.models import Account, AuditEvent, ServiceBlock
from billing.ledger import services as ledger
from billing.models import Balance, Product
from billing.money import to_cents
from billing.periods import month_start, next_month
from controls.models import ResalePrices, SpendLimit

MAX_LIMIT = Decimal("10000000.00")  # USD ten million a month is a typing error, not a limit


class ControlsError(Refusal):
    """A spend or credit limit the rules refuse."""


# --- Spend limits --------------------------------------------------------------------------------------


@transaction.atomic
def set_spend_limit(
    *,
    account: Account,
    set_by: str,
    product: Product | None,
    monthly_amount: Decimal,
    daily_amount: Decimal | None,
    action: str,
    actor: Actor,
) -> SpendLimit:
    """Sets (or changes) the limit of `set_by` on `account` for `product` (None: every product),
    audited, and checks the account at once: a raised limit lifts its block, a lowered one may set it."""
    _refuse_bad_limit(account=account, set_by=set_by, monthly=monthly_amount, daily=daily_amount, action=action)
    lock_rows(Account.objects.filter(pk=account.pk))  # the check's lock: a check running now waits, or we do
    if set_by == SpendLimit.SetBy.OWNER:
        _refuse_above_manager(account=account, product=product, monthly=monthly_amount, daily=daily_amount)
    limit = SpendLimit.objects.filter(account=account, set_by=set_by, product=product).first()
    before: dict[str, object] = {"monthly_amount": None, "daily_amount": None, "action": None}
    if limit is None:
        limit = SpendLimit(account=account, set_by=set_by, product=product)
    else:
        before = {"monthly_amount": limit.monthly_amount, "daily_amount": limit.daily_amount, "action": limit.action}
    if before["monthly_amount"] != monthly_amount:
        limit.monthly_reached_for = None  # another amount: reaching it is a crossing of its own
    if before["daily_amount"] != daily_amount:
        limit.daily_reached_for = None
    limit.monthly_amount, limit.daily_amount, limit.action = monthly_amount, daily_amount, action
    limit.updated_by = actor.user
    limit.save()
    changes: list[FieldChange] = [
        {"field": field, "from": _text(before[field]), "to": _text(getattr(limit, field))}
        for field in before
        if before[field] != getattr(limit, field)
    ]
    if changes:
        changes.append({"field": "rule", "from": None, "to": limit.rule})
        _audit_limit(limit, actor, audit.ChangeType.SPEND_LIMIT_SET, changes)
    check_accounts(account_ids=[account.pk], actor=actor)
    return limit


@transaction.atomic
def remove_spend_limit(*, limit: SpendLimit, actor: Actor) -> None:
    """Removes a limit, audited; the account is checked at once (its block may lift)."""
    lock_rows(Account.objects.filter(pk=limit.account_id))
    changes: list[FieldChange] = [{"field": "rule", "from": limit.rule, "to": None}]
    _audit_limit(limit, actor, audit.ChangeType.SPEND_LIMIT_REMOVED, changes)
    limit.delete()
    check_accounts(account_ids=[limit.account_id], actor=actor)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _audit_limit(limit: SpendLimit, actor: Actor, change_type: audit.ChangeType, changes: list[FieldChange]) -> None:
    account = limit.account
    audit.record(
        account=account,
        related_account=account.manager if account.is_managed else None,
        actor=actor,
        change_type=change_type,
        resource=limit,
        changes=changes,
    )


def _refuse_bad_limit(*, account: Account, set_by: str, monthly: Decimal, daily: Decimal | None, action: str) -> None:
    if not account.is_managed:
        raise ControlsError("Spend limits are set on managed accounts.")
    if set_by == SpendLimit.SetBy.OWNER and not account.has_own_balance:
        raise ControlsError(f"{account.name} is billed to its manager (roll-up); its manager sets its limits.")
    if action not in SpendLimit.Action.values:
        raise ControlsError("Choose what happens at the limit: alert only, or alert and block.", field="action")
    for field_name, amount in (("monthly_amount", monthly), ("daily_amount", daily)):
        if amount is None:
            continue
        if not amount.is_finite() or amount <= 0 or amount != to_cents(amount):
            raise ControlsError("A limit is more than zero, in whole cents.", field=field_name)
        if amount > MAX_LIMIT:
            raise ControlsError(f"A limit is at most USD {MAX_LIMIT:,.2f}.", field=field_name)
    if daily is not None and daily > monthly:
        raise ControlsError("The daily amount cannot be more than the monthly amount.", field="daily_amount")


def _refuse_above_manager(
    *, account: Account, product: Product | None, monthly: Decimal, daily: Decimal | None
) -> None:
    """An account's own limit is never above its manager's on the same products (the manager's limit
    on every product bounds the account's limit on one)."""
    managers = SpendLimit.objects.filter(account=account, set_by=SpendLimit.SetBy.MANAGER)
    for limit in managers.filter(product__isnull=True) | managers.filter(product=product):
        if monthly > limit.monthly_amount:
            raise ControlsError(
                f"Your manager's limit is USD {limit.monthly_amount:,.2f} a month on {limit.scope}; "
                "yours cannot be higher.",
                field="monthly_amount",
            )
        if limit.daily_amount is not None and (daily is None or daily > limit.daily_amount):
            raise ControlsError(
                f"Your manager's limit is USD {limit.daily_amount:,.2f} a day on {limit.scope}; "
                "set a daily amount no higher.",
                field="daily_amount",
            )


# --- Credit limits a manager gives --------------------------------------------------------------------


@transaction.atomic
def set_managed_credit_limit(*, manager: Account, managed: Account, limit: Decimal, actor: Actor) -> Balance:
    """A manager lets a separately billed managed account go below zero by `limit`: it guarantees
    that debt, so what it gives all its separately billed accounts together is at most its own
    credit limit (which staff set). Under the manager's balance lock, so two grants at once cannot
    together give more. The ledger audits the change; the account is checked at once."""
    if managed.manager_id != manager.pk:
        raise ControlsError("That is not one of your managed accounts.")
    if not managed.has_own_balance:
        raise ControlsError(f"{managed.name} is billed to you (roll-up); it has no credit limit of its own.")
    if not limit.is_finite() or limit < 0 or limit != to_cents(limit):
        raise ControlsError("A credit limit is zero or more, in whole cents.", field="credit_limit")
    ledger.balance_of(manager), ledger.balance_of(managed)
    own = {b.account_id: b for b in lock_rows(Balance.objects.filter(account_id__in=[manager.pk, managed.pk]))}
    guarantee = own[manager.pk].credit_limit
    given = (
        Balance.objects.filter(account__in=Account.objects.filter(manager=manager).paying_own_usage())
        .exclude(account=managed)
        .aggregate(total=Sum("credit_limit"))["total"]
    ) or Decimal(0)
    if given + limit > guarantee:
        room = max(guarantee - given, Decimal(0))
        raise ControlsError(
            f"You guarantee at most USD {guarantee:,.2f} (your own credit limit) across your separately billed "
            f"accounts; USD {given:,.2f} is given to others, so at most USD {room:,.2f} here.",
            field="credit_limit",
        )
    return ledger.set_credit_limit(account=managed, limit=limit, actor=actor)


# --- The check ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    accounts: int
    reached: int  # limits reached in this check (crossings)
    blocked: int
    unblocked: int


@dataclass
class _Facts:
    """What the check found for one account."""

    reached: list[tuple[SpendLimit, str]]  # (limit, "monthly" | "daily") crossed now
    blocking: list[tuple[SpendLimit, datetime]]  # block-action limits reached, and when their period ends
    exhausted: Decimal | None  # the available credit, when it is used up
    nearing: list[tuple[SpendLimit, str, date]] = field(default_factory=list)  # 80 % used, not reached


def check_accounts(
    *, account_ids: Iterable[int], actor: Actor | None = None, now: datetime | None = None
) -> CheckResult:
    """Checks the accounts' spend limits and credit and sets, changes or lifts their service blocks;
    see the module's docstring. `actor` is who caused the check (a manager raising a limit), the
    platform when usage or a task did."""
    ids = sorted(set(account_ids))
    if not ids:
        return CheckResult(0, 0, 0, 0)
    actor = actor or Actor.platform_staff()
    now = now or timezone.now()
    with transaction.atomic():
        accounts = _locked_with_managers(ids)
        facts = _facts(accounts, now)
        entries, reached = _limit_crossings(facts, now.date())
        entries += _neared(facts)
        changed, block_entries = _blocks(accounts, facts, now)
        audit.record_many(actor=actor, entries=entries + block_entries)
    blocked = sum(e.change_type == audit.ChangeType.SERVICE_BLOCKED for e in block_entries)
    return CheckResult(len(accounts), reached, blocked, len(block_entries) - blocked)


def _locked_with_managers(ids: list[int]) -> list[Account]:
    """The accounts locked (primary-key order), each with its manager loaded but not locked."""
    accounts = lock_rows(Account.objects.filter(pk__in=ids))
    managers = Account.objects.in_bulk({a.manager_id for a in accounts if a.manager_id is not None})
    for account in accounts:
        if account.manager_id is not None:
            account.manager = managers[account.manager_id]
    return accounts


def _facts(accounts: list[Account], now: datetime) -> dict[int, _Facts]:
    today = now.date()
    by_pk = {a.pk: a for a in accounts}
    facts = {a.pk: _Facts([], [], None) for a in accounts}
    # Each account's use at the prices it pays (ResalePrices, its manager's read once per manager).
    by_manager: dict[int | None, list[int]] = defaultdict(list)
    for account in accounts:
        by_manager[account.manager_id if account.is_managed else None].append(account.pk)
    for manager_id, ids in sorted(by_manager.items(), key=lambda item: item[0] or 0):
        manager = by_pk[ids[0]].manager if manager_id is not None else None
        prices = ResalePrices.of(manager, today.replace(day=1))
        limits = SpendLimit.objects.filter(account_id__in=ids).with_use(today=today, prices=prices)
        for limit in limits.select_related("product"):
            limit.account = by_pk[limit.account_id]
            _limit_facts(limit, facts[limit.account_id], today)
    own = [a.pk for a in accounts if a.has_own_balance]
    available = dict(
        Balance.objects.filter(account_id__in=own).values_list("account_id", F("amount") + F("credit_limit"))
    )
    for pk in own:
        credit = to_cents(available.get(pk, Decimal(0)))  # no balance row yet: nothing paid in
        if credit <= 0:
            facts[pk].exhausted = credit
    return facts


def _limit_facts(limit: SpendLimit, facts: _Facts, today: date) -> None:
    month = today.replace(day=1)
    monthly_used, daily_used = to_cents(limit.monthly_use), to_cents(limit.daily_use)  # type: ignore[attr-defined]
    periods = [("monthly", monthly_used >= limit.monthly_amount, month, month_start(next_month(month)))]
    if limit.daily_amount is not None:
        tomorrow = datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
        periods.append(("daily", daily_used >= limit.daily_amount, today, tomorrow))
    for name, hit, period, ends in periods:
        field = f"{name}_reached_for"
        if hit and getattr(limit, field) != period:
            setattr(limit, field, period)
            facts.reached.append((limit, name))
        elif not hit and getattr(limit, field) == period:
            setattr(limit, field, None)  # raised above its use: reaching it again is a new crossing
            facts.reached.append((limit, ""))
        if hit and limit.action == SpendLimit.Action.BLOCK:
            facts.blocking.append((limit, ends))
        amount, used = (limit.monthly_amount, monthly_used) if name == "monthly" else (limit.daily_amount, daily_used)
        if not hit and amount is not None and used * 5 >= amount * 4:
            facts.nearing.append((limit, name, period))  # 80 % used: `_neared` acts on it once


def _limit_crossings(facts: dict[int, _Facts], today: date) -> tuple[list[Entry], int]:
    changed = {limit.pk: limit for f in facts.values() for limit, _ in f.reached}
    SpendLimit.objects.bulk_update(list(changed.values()), ["monthly_reached_for", "daily_reached_for"])
    entries = []
    for f in facts.values():
        for limit, period in f.reached:
            if not period:
                continue
            amount = limit.monthly_amount if period == "monthly" else limit.daily_amount
            changes: list[FieldChange] = [
                {"field": "rule", "from": None, "to": limit.rule},
                {"field": "period", "from": None, "to": f"{period} ({today:%Y-%m-%d})"},
                {"field": "amount", "from": None, "to": f"{amount:.2f}"},
                {"field": "action", "from": None, "to": limit.get_action_display()},
            ]
            entries.append(_entry(limit.account, audit.ChangeType.SPEND_LIMIT_REACHED, limit, changes))
    return entries, len(entries)


def _neared(facts: dict[int, _Facts]) -> list[Entry]:
    """`spend_limit.neared` for each limit 80 % used in its period, once per crossing: a limit
    remembers the period it was reached in, and its 80 % crossing is the event itself, found by
    limit, period and amount (one query, only when a limit is in that band; under the accounts'
    locks, so a racing check finds the other's). Another amount, a raised limit, is a new crossing."""
    nearing = [item for f in facts.values() for item in f.nearing]
    if not nearing:
        return []
    since = datetime.combine(min(period for _, _, period in nearing).replace(day=1), time.min, tzinfo=UTC)
    recorded = AuditEvent.objects.filter(
        change_type=audit.ChangeType.SPEND_LIMIT_NEARED,
        resource_id__in=[str(limit.public_id) for limit, _, _ in nearing],
        created_at__gte=since,
    ).values_list("resource_id", "changes")
    done = {(resource_id, _said(changes, "period"), _said(changes, "amount")) for resource_id, changes in recorded}
    entries = []
    for limit, name, period in nearing:
        amount = limit.monthly_amount if name == "monthly" else limit.daily_amount
        when = f"{name} ({period:%Y-%m})" if name == "monthly" else f"{name} ({period:%Y-%m-%d})"
        if (str(limit.public_id), when, f"{amount:.2f}") in done:
            continue
        changes: list[FieldChange] = [
            {"field": "rule", "from": None, "to": limit.rule},
            {"field": "period", "from": None, "to": when},
            {"field": "amount", "from": None, "to": f"{amount:.2f}"},
            {"field": "percent_used", "from": None, "to": "80"},
        ]
        entries.append(_entry(limit.account, audit.ChangeType.SPEND_LIMIT_NEARED, limit, changes))
    return entries


def _said(changes: list[FieldChange], name: str) -> object:
    return next((c.get("to") for c in changes if c.get("field") == name), None)


def _entry(account: Account, change_type: audit.ChangeType, resource: Model, changes: list[FieldChange]) -> Entry:
    """An event on `account`'s log, and on its manager's (`related_account`) for a managed account."""
    related = account.manager if account.is_managed else None
    return Entry(account=account, change_type=change_type, resource=resource, changes=changes, related_account=related)


def _blocks(accounts: list[Account], facts: dict[int, _Facts], now: datetime) -> tuple[int, list[Entry]]:
    """Sets each account's block to what its facts say: credit first (it has no end), then the
    block-action limits reached (until the latest of their periods ends)."""
    changed, entries = [], []
    for account in accounts:
        f = facts[account.pk]
        reason, until, rule = "", None, ""
        if f.exhausted is not None:
            reason, rule = (
                ServiceBlock.CREDIT_EXHAUSTED,
                f"Available credit is USD {f.exhausted:,.2f} (balance + credit limit <= 0)",
            )
        elif f.blocking:
            limit, _ = f.blocking[0]
            reason, until, rule = ServiceBlock.SPEND_LIMIT, max(ends for _, ends in f.blocking), limit.rule
        entries += _transition(account, reason, rule, now)
        if (account.service_blocked_reason, account.service_blocked_until) != (reason, until):
            account.service_blocked_reason, account.service_blocked_until = reason, until
            changed.append(account)
    Account.objects.bulk_update(changed, ["service_blocked_reason", "service_blocked_until"])
    return len(changed), entries


_LIFTED = {
    ServiceBlock.CREDIT_EXHAUSTED: "Available credit restored (a top-up, a transfer or a higher credit limit)",
    ServiceBlock.SPEND_LIMIT: "No blocking spend limit is reached any more (raised or removed)",
}


def _transition(account: Account, reason: str, rule: str, now: datetime) -> list[Entry]:
    """The audit events of moving `account`'s stored block to `reason`: lifted, set, or changed. A
    block whose period ended is lifted (once: the check that first sees it says so)."""
    stored, until = account.service_blocked_reason, account.service_blocked_until
    ended = bool(stored) and until is not None and until <= now
    entries = []
    if stored and (ended or not reason):
        why = "Its period ended (a new day or month)" if ended else _LIFTED[ServiceBlock(stored)]
        changes: list[FieldChange] = [
            {"field": "service_status", "from": "blocked", "to": "active"},
            {"field": "reason", "from": stored, "to": None},
            {"field": "rule", "from": None, "to": why},
        ]
        entries.append(_entry(account, audit.ChangeType.SERVICE_UNBLOCKED, account, changes))
        stored = ""
    if reason and reason != stored:
        changes = [
            {"field": "service_status", "from": "blocked" if stored else "active", "to": "blocked"},
            {"field": "reason", "from": stored or None, "to": reason},
            {"field": "rule", "from": None, "to": rule},
        ]
        if account.is_manager:
            changes.append({"field": "rollup_accounts", "from": None, "to": "blocked with it (manager_blocked)"})
        entries.append(_entry(account, audit.ChangeType.SERVICE_BLOCKED, account, changes))
    return entries


def accounts_due_a_check(now: datetime | None = None) -> list[int]:
    """Accounts whose stored block may be out of date: a block whose period has ended, or credit used
    up with no block yet (debt from before these rules, a credit limit lowered by staff in bulk)."""
    now = now or timezone.now()
    ended = Account.objects.filter(service_blocked_until__lte=now).exclude(service_blocked_reason="")
    exhausted = (
        Account.objects.paying_own_usage()
        .filter(service_blocked_reason="", balance__isnull=False)
        .alias(available=F("balance__amount") + F("balance__credit_limit"))
        .filter(available__lte=0)
    )
    found = {pk for queryset in (ended, exhausted) for pk in queryset.values_list("pk", flat=True)}
    return sorted(found)
