"""Invoice states and the manager's resale terms: each change audited in its transaction."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.models import Account
from billing.models import (
    Invoice,
    ResaleTerms,
)

# The only moves a finalized invoice makes; a draft exists only inside the transaction building it.
TRANSITIONS = {
    Invoice.Status.FINALIZED: {Invoice.Status.PAID, Invoice.Status.VOID},
    Invoice.Status.PAID: set(),
    Invoice.Status.VOID: set(),
}


class InvoiceStateError(Exception):
    """A status change the invoice's current state does not allow (already paid, already void)."""


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
def mark_invoice_paid(*, invoice: Invoice, note: str, actor) -> Invoice:
    """The issuer records that the invoice was paid (a reseller invoice: the managed account paid
    its manager outside the platform). Audited on the issuer and the bill-to."""
    before = invoice.status
    invoice = _move(invoice, Invoice.Status.PAID, note=note.strip()[:255], stamp="paid_at")
    _audit_status(invoice, "invoice.marked_paid", before, actor)
    return invoice


@transaction.atomic
def void_invoice(*, invoice: Invoice, reason: str, actor) -> Invoice:
    """The issuer cancels the invoice; a reason is required. The usage stays charged on the
    platform side: voiding a reseller invoice only says the manager will not collect it."""
    if not reason.strip():
        raise InvoiceStateError("Give the reason for voiding the invoice.")
    before = invoice.status
    invoice = _move(invoice, Invoice.Status.VOID, note=reason.strip()[:255], stamp="voided_at")
    _audit_status(invoice, "invoice.voided", before, actor)
    return invoice


def _audit_status(invoice: Invoice, change_type: str, before: str, actor) -> None:
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
def set_resale_markup(*, manager: Account, markup_percent: Decimal, actor) -> ResaleTerms:
    """The manager's markup over the platform's cost on its reseller invoices (from the next close)."""
    markup_percent = Decimal(markup_percent).quantize(Decimal("0.01"))
    terms, _ = ResaleTerms.objects.select_for_update().get_or_create(manager=manager)
    before = terms.markup_percent
    if before == markup_percent:
        return terms
    terms.markup_percent = markup_percent
    terms.save(update_fields=["markup_percent", "updated_at"])
    audit.record(
        account=manager,
        change_type="resale_markup.changed",
        resource=manager,
        changes=[{"field": "markup_percent", "from": str(before), "to": str(markup_percent)}],
        actor=actor,
    )
    return terms
