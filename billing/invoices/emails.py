"""The e-mail of a finalized invoice (issue 12 item 7): to the bill-to's invoice recipients (its
billing profile; its owner without one), with the invoice's PDF attached as the bill-to sees it.

Queued by the close after the finalizing transaction commits (builder.announce_finalized), one
task per finalizing transaction. Each invoice is claimed before it is sent (`emailed_at`, a
conditional update), so a repeated or retried task sends nothing twice; a failure to reach the
mail server (OSError) gives the claim back and retries, as accounts.tasks.send_invitation_email.

Hidden pricing: the e-mail of an account whose pricing is hidden names no amount but the total,
and its PDF is the quantities-only one (can_see_pricing, the one rule)."""

from __future__ import annotations

from decimal import Decimal

from celery import shared_task
from django.core.mail import EmailMessage
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts import billing_profile as profiles
from accounts.permissions import can_see_pricing
from billing.invoices.pdf import invoice_pdf, pdf_filename, period_label
from billing.invoices.selectors import issuer_name
from billing.models import Invoice
from billing.money import format_money
from portal.site import absolute_url


def _unsent(invoice_ids: list[int]) -> QuerySet[Invoice]:
    return (
        Invoice.objects.filter(pk__in=invoice_ids, emailed_at__isnull=True)
        .issued()
        .select_related("bill_to", "bill_to__manager", "issuer")
        .order_by("pk")
    )


def invoice_message(invoice: Invoice) -> EmailMessage:
    """The e-mail of `invoice` to its bill-to's recipients, its PDF attached (not sent)."""
    bill_to = invoice.bill_to
    priced = can_see_pricing(bill_to)
    currency = invoice.currency
    statement: list[tuple[str, str]] = []
    if priced and invoice.issuer_id is None:
        statement = [
            ("Opening balance", format_money(invoice.opening_balance, currency)),
            ("Credits", format_money(invoice.credits, currency)),
            ("Usage charges", format_money(invoice.charges, currency)),
            ("Closing balance", format_money(invoice.closing_balance, currency)),
        ]
    context = {
        "invoice": invoice,
        "bill_to": bill_to,
        "bill_to_name": invoice.bill_to_details.get("name") or bill_to.name,
        "issuer": invoice.issuer_details.get("name") or issuer_name(invoice),
        "reseller": invoice.issuer_id is not None,
        "period": period_label(invoice),
        "total": format_money(invoice.total, currency),
        "statement": statement,
        "status": invoice.get_payment_status_display(),
        "url": absolute_url(reverse("invoice_detail", args=[bill_to.public_id, invoice.public_id])),
        "billing_profile_url": absolute_url(reverse("billing_profile", args=[bill_to.public_id])),
        "nothing_due": invoice.total == Decimal("0.00"),
    }
    subject = render_to_string("billing/email/invoice_subject.txt", context).strip()
    message = EmailMessage(
        subject=" ".join(subject.split()),  # one line, whatever a name holds
        body=render_to_string("billing/email/invoice.txt", context),
        to=profiles.invoice_recipients(bill_to),
    )
    message.attach(pdf_filename(invoice), invoice_pdf(invoice, pricing=priced), "application/pdf")
    return message


def send_invoice(invoice: Invoice) -> bool:
    """Claims and sends one invoice's e-mail; False when it was already claimed (sent, or being
    sent by another worker). An OSError gives the claim back and propagates (the task retries)."""
    claimed_at = timezone.now()
    if not Invoice.objects.filter(pk=invoice.pk, emailed_at__isnull=True).update(emailed_at=claimed_at):
        return False
    try:
        invoice_message(invoice).send()
    except OSError:
        Invoice.objects.filter(pk=invoice.pk, emailed_at=claimed_at).update(emailed_at=None)
        raise
    return True


@shared_task(name="billing.tasks.email_invoices", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def email_invoices(invoice_ids: list[int]) -> int:
    """E-mails the finalized invoices not e-mailed yet; returns how many it sent."""
    return sum(send_invoice(invoice) for invoice in _unsent(invoice_ids))
