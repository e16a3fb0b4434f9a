"""Credit-note pages: the manager issues one against a reseller invoice it issued (a form, then a
confirmation step showing what will be credited), and both sides download its PDF. Platform staff
credit the platform's invoices from the admin site (billing.admin.InvoiceAdmin)."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.access import AccountAccess, account_access
from accounts.actor import Actor
from accounts.forms import apply_refusal
from accounts.permissions import RESELL, VIEW_BILLING, can_see_pricing
from billing.credit_note_forms import CreditNoteForm
from billing.invoices import credit_notes
from billing.invoices.pdf import credit_note_filename, credit_note_pdf
from billing.invoices.selectors import invoices_of, issued_invoices_of
from billing.models import CreditNote, Invoice
from billing.money import format_money


def credit_note_context(invoice: Invoice, *, pricing: bool) -> dict[str, Any]:
    """What the invoice page's credit-note block reads (templates/billing/credit_note_summary.html)."""
    return {"credit": credit_notes.credit_summary(invoice, pricing=pricing)}


def _issued_invoice(access: AccountAccess, invoice_id: UUID) -> Invoice:
    return get_object_or_404(issued_invoices_of(access.account).select_related("bill_to"), public_id=invoice_id)


@login_required
@require_http_methods(["GET", "POST"])
def issued_credit_note_new(request: HttpRequest, account_id: UUID, invoice_id: UUID) -> HttpResponse:
    """GET: the form. POST: the confirmation step. POST with `confirm`: the credit note, issued once per key."""
    access = account_access(request, account_id, RESELL)
    invoice = _issued_invoice(access, invoice_id)
    form = credit_note_form(invoice, request.POST if request.method == "POST" else None)
    if request.method == "GET" or not form.is_valid():
        return _form_page(request, access, invoice, form, status=200 if request.method == "GET" else 422)
    if request.POST.get("confirm") != "1":
        try:  # the rules, asked before showing what will be credited; asked again when issuing
            credit_notes.check_credit_note(invoice=invoice, reason=form.cleaned_data["reason"], **form.credit())
        except credit_notes.CreditNoteRefused as refusal:
            apply_refusal(form=form, refusal=refusal)
            return _form_page(request, access, invoice, form, status=refusal.status)
        return _confirm_page(request, access, invoice, form)
    try:
        note = credit_notes.issue_credit_note(
            invoice=invoice,
            reason=form.cleaned_data["reason"],
            key=str(form.cleaned_data["key"]),
            actor=Actor.from_request(request),
            **form.credit(),
        )
    except credit_notes.CreditNoteRefused as refusal:
        apply_refusal(form=form, refusal=refusal)
        return _form_page(request, access, invoice, form, status=refusal.status)
    messages.success(
        request, f"Credit note {note.number} of {format_money(note.amount)} issued to {invoice.bill_to.name}."
    )
    return redirect("issued_invoice_detail", access.account.public_id, invoice.public_id)


def credit_note_form(invoice: Invoice, data: Any = None) -> CreditNoteForm:
    """The form for `invoice` (new, with a fresh key, when `data` is None)."""
    lines = credit_notes.creditable_lines(invoice)
    left = credit_notes.left_to_credit(invoice)
    if data is None:
        return CreditNoteForm(initial={"key": uuid.uuid4(), "mode": "amount"}, lines=lines, left=left)
    return CreditNoteForm(data, lines=lines, left=left)


def _form_page(
    request: HttpRequest, access: AccountAccess, invoice: Invoice, form: CreditNoteForm, *, status: int
) -> HttpResponse:
    context = {
        "access": access,
        "account": access.account,
        "invoice": invoice,
        "form": form,
        "credit": credit_notes.credit_summary(invoice, pricing=True),
        "total": format_money(invoice.total, invoice.currency),
        "allowed": credit_notes.can_be_credited(invoice) and credit_notes.left_to_credit(invoice) > 0,
    }
    return render(request, "billing/credit_note_form.html", context, status=status)


def _confirm_page(request: HttpRequest, access: AccountAccess, invoice: Invoice, form: CreditNoteForm) -> HttpResponse:
    total, lines = form.asked()
    left = credit_notes.left_to_credit(invoice)
    context = {
        "access": access,
        "account": access.account,
        "invoice": invoice,
        "amount": format_money(total),
        "lines": [(label, format_money(amount)) for label, amount in lines],
        "reason": form.cleaned_data["reason"],
        "left_after": format_money(left - total),
        "hidden": form.hidden_values(),
    }
    return render(request, "billing/credit_note_confirm.html", context)


def _pdf(note: CreditNote, *, pricing: bool) -> HttpResponse:
    response = HttpResponse(credit_note_pdf(note, pricing=pricing), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{credit_note_filename(note)}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _note_of(invoice: Invoice, note_id: UUID) -> CreditNote:
    return get_object_or_404(
        CreditNote.objects.select_related("invoice__bill_to", "invoice__issuer"), invoice=invoice, public_id=note_id
    )


@login_required
@require_GET
def credit_note_pdf_download(request: HttpRequest, account_id: UUID, invoice_id: UUID, note_id: UUID) -> HttpResponse:
    """A credit note of an invoice billed to the account, as the account sees it (its pricing rule)."""
    access = account_access(request, account_id, VIEW_BILLING)
    invoice = get_object_or_404(invoices_of(access.account), public_id=invoice_id)
    return _pdf(_note_of(invoice, note_id), pricing=can_see_pricing(access.account))


@login_required
@require_GET
def issued_credit_note_pdf(request: HttpRequest, account_id: UUID, invoice_id: UUID, note_id: UUID) -> HttpResponse:
    """A credit note of a reseller invoice, as its issuer sees it: always priced."""
    access = account_access(request, account_id, RESELL)
    return _pdf(_note_of(_issued_invoice(access, invoice_id), note_id), pricing=True)
