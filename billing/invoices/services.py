"""Invoice states and the manager's resale terms: each change audited in its transaction."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.errors import Refusal
from accounts.locks import lock_or_create
from accounts.models import Account
from billing.invoices.lines import PLATFORM_ISSUER
from billing.invoices.resale import resale_issuer_key
from billing.models import (
    CloseRun,
    Invoice,
    InvoiceSequence,
    ResaleTerms,
)

# The only moves a finalized invoice makes; a draft exists only inside the transaction building it.
TRANSITIONS: dict[str, set[str]] = {
    Invoice.Status.FINALIZED: {Invoice.Status.PAID, Invoice.Status.VOID},
    Invoice.Status.PAID: set(),
    Invoice.Status.VOID: set(),
}


class InvoiceStateError(Refusal):
    """A status change the invoice's current state does not allow (already paid, already void):
    a conflict with the state, not bad input, so a 409 as the invoice status page answers it."""

    status = 409
    code = "invalid_state"
    title = "Invalid state"


def _move(invoice: Invoice, to: str, *, note: str, stamp: str) -> Invoice:
    allowed_from = [state for state, targets in TRANSITIONS.items() if to in targets]
    # Conditional update: two managers clicking at once change it once; the loser is told why.
    changed = Invoice.objects.filter(pk=invoice.pk, status__in=allowed_from).update(
        status=to, status_note=note, **{stamp: timezone.now()}
    )
    if not changed:
        current = Invoice.objects.get(pk=invoice.pk)
        raise InvoiceStateError(
            f"Invoice {current.number} is {current.get_status_display().lower()}: it cannot be marked "
            f"{Invoice.Status(to).label.lower()}."
        )
    invoice.refresh_from_db()
    return invoice


@transaction.atomic
def mark_invoice_paid(*, invoice: Invoice, note: str, actor: Actor) -> Invoice:
    """The issuer records that the invoice was paid (a reseller invoice: the managed account paid
    its manager outside the platform). Audited on the issuer and the bill-to."""
    before = invoice.status
    invoice = _move(invoice, Invoice.Status.PAID, note=note.strip()[:255], stamp="paid_at")
    _audit_status(invoice, audit.ChangeType.INVOICE_MARKED_PAID, before, actor)
    return invoice


@transaction.atomic
def void_invoice(*, invoice: Invoice, reason: str, actor: Actor) -> Invoice:
    """The issuer cancels the invoice; a reason is required. The usage stays charged on the
    platform side: voiding a reseller invoice only says the manager will not collect it."""
    if not reason.strip():
        raise InvoiceStateError("Give the reason for voiding the invoice.")
    before = invoice.status
    invoice = _move(invoice, Invoice.Status.VOID, note=reason.strip()[:255], stamp="voided_at")
    _audit_status(invoice, audit.ChangeType.INVOICE_VOIDED, before, actor)
    return invoice


def _audit_status(invoice: Invoice, change_type: audit.ChangeType, before: str, actor: Actor) -> None:
    account = invoice.issuer or invoice.bill_to
    audit.record(
        account=account,
        related_account=invoice.bill_to if invoice.issuer_id else None,
        change_type=change_type,
        resource=invoice,
        changes=[
            {"field": "status", "from": before, "to": invoice.status},
            {"field": "status_note", "from": "", "to": invoice.status_note},
        ],
        actor=actor,
    )


@transaction.atomic
def set_resale_markup(*, manager: Account, markup_percent: Decimal, actor: Actor) -> ResaleTerms:
    """The manager's markup over the platform's cost on its reseller invoices (from the next close)."""
    markup_percent = Decimal(markup_percent).quantize(Decimal("0.01"))
    terms = lock_or_create(ResaleTerms.objects, manager=manager)
    before = terms.markup_percent
    if before == markup_percent:
        return terms
    terms.markup_percent = markup_percent
    terms.save(update_fields=["markup_percent", "updated_at"])
    audit.record(
        account=manager,
        change_type=audit.ChangeType.RESALE_MARKUP_CHANGED,
        resource=manager,
        changes=[{"field": "markup_percent", "from": str(before), "to": str(markup_percent)}],
        actor=actor,
    )
    return terms


# --- Benchmark and scale workloads only -------------------------------------------------------------------


@transaction.atomic
def discard_close(*, month: date, account_ids: list[int]) -> int:
    """For benchmark and scale workloads only (`manage.py benchmark` closes the same month again on
    every run); refused when MC_ENV=production, where a finalized invoice never goes. Deletes the
    close of `month` for `account_ids`: the month's platform invoices to them and the reseller
    invoices they issued or received, with their lines, and the month's close run (refused when it
    covers other accounts too); the numbers those invoices took go back to their sequences when
    they are the latest contiguous block of it. The month's usage charges are the ledger's to
    discard (billing.ledger.services.discard_usage_charges). Returns how many invoices it deleted."""
    if settings.MC_ENV == "production":
        raise InvoiceStateError("A close is discarded on benchmark and scale databases only, never in production.")
    ids = set(account_ids)
    run = CloseRun.objects.filter(period=month).first()
    if run is not None and run.items.exclude(account_id__in=ids).exists():
        raise InvoiceStateError(f"The close of {month:%Y-%m} covers other accounts too: it is not discarded.")
    invoices = Invoice.objects.filter(period=month).filter(Q(bill_to_id__in=ids) | Q(issuer_id__in=ids))
    numbers: list[tuple[int | None, str]] = list(invoices.exclude(number="").values_list("issuer_id", "number"))
    _, deleted = invoices.delete()
    CloseRun.objects.filter(period=month).delete()
    _give_back_numbers(numbers)
    return deleted.get(Invoice._meta.label, 0)


def _give_back_numbers(numbers: list[tuple[int | None, str]]) -> None:
    """Each sequence steps back over the numbers taken, when they are a contiguous block at its top:
    anything else would leave a gap or give a number out twice."""
    issuers = Account.objects.in_bulk({issuer_id for issuer_id, _ in numbers if issuer_id is not None})
    taken_by: dict[str, list[int]] = {}
    for issuer_id, number in numbers:
        key = PLATFORM_ISSUER if issuer_id is None else resale_issuer_key(issuers[issuer_id])
        digits = "".join(ch for ch in number.rsplit("-", 1)[-1] if ch.isdigit())
        if digits:
            taken_by.setdefault(key, []).append(int(digits))
    for key, taken in taken_by.items():
        low, high = min(taken), max(taken)
        if len(set(taken)) == high - low + 1:
            InvoiceSequence.objects.filter(issuer_key=key, last_number=high).update(last_number=low - 1)
