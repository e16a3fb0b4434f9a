from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts.access import AccountAccess, account_access, managed_account_access
from accounts.actor import Actor
from accounts.forms import apply_refusal
from accounts.models import Account
from accounts.permissions import RESELL, SUBMIT_USAGE, VIEW_BILLING, can_see_pricing
from billing import credit_note_views
from billing.forms import InvoicePaidForm, InvoiceVoidForm, ResaleMarkupForm, TransferForm, UsageUploadForm
from billing.invoices import credit_notes, resale
from billing.invoices import services as invoice_services
from billing.invoices.pdf import BadDownloadToken, invoice_pdf, invoice_view, pdf_filename, read_download_token
from billing.invoices.selectors import invoices_of, issued_invoices_of, period_end, status_note_visible
from billing.ledger import selectors as ledger_selectors
from billing.ledger import services as ledger
from billing.models import Balance, Invoice, LedgerEntry, Product, UsageBatch
from billing.money import format_money, to_cents
from billing.payments import selectors as payment_selectors
from billing.tables import InvoiceTable, IssuedInvoiceTable, LedgerEntryTable
from billing.usage import csv_upload
from billing.usage.rating import RateBook, rate_card
from billing.usage.services import MAX_BATCH, OPTIONAL_FIELDS, REQUIRED_FIELDS, IngestResult, UsageRejected
from portal.pagination import paginate_table

GET_AND_POST = ["GET", "POST"]
SOURCE_LABELS = {
    "list price": "List price",
    "negotiated rate": "Negotiated",
    "custom rate": "Custom",
    "resale price": "Resale price",
}


# --- CSV upload ------------------------------------------------------------------------------------------


@login_required
@require_http_methods(GET_AND_POST)
def usage_upload(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, SUBMIT_USAGE)
    form = UsageUploadForm(request.POST, request.FILES) if request.method == "POST" else UsageUploadForm()
    rejected = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            result = csv_upload.ingest_csv(submitter=access.account, upload=upload, actor=Actor.from_request(request))
        except UsageRejected as error:
            rejected = error
        else:
            messages.success(request, _accepted_message(result, upload.name))
            return redirect("usage_upload", access.account.public_id)
    context = {
        "access": access,
        "account": access.account,
        "form": form,
        "rejected": rejected,
        "more_errors": rejected.total - len(rejected.errors) if rejected else 0,
        "required_columns": REQUIRED_FIELDS,
        "optional_columns": OPTIONAL_FIELDS,
        "products": Product.objects.filter(active=True),
        "max_rows": MAX_BATCH,
        "max_megabytes": csv_upload.MAX_UPLOAD_BYTES // (1024 * 1024),
        "recent_uploads": _recent_uploads(access.account),
    }
    return render(request, "billing/usage_upload.html", context, status=422 if form.errors or rejected else 200)


def _accepted_message(result: IngestResult, filename: str) -> str:
    accepted = f"{result.accepted:,} record{'' if result.accepted == 1 else 's'} accepted"
    duplicates = f"{result.duplicates:,} duplicate{'' if result.duplicates == 1 else 's'} skipped"
    return f"{accepted}, {duplicates} ({filename})."


def _recent_uploads(account: Account) -> QuerySet[UsageBatch]:
    batches = UsageBatch.objects.filter(submitted_by_account=account, source=UsageBatch.Source.CSV)
    return batches.select_related("submitted_by").order_by("-created_at")[:5]


# --- Rate card -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLine:
    product: Product
    price: str
    source: str
    account: Account | None = None
    inherited: str = ""


@login_required
@require_GET
def rate_card_page(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, VIEW_BILLING)
    account = access.account
    if not access.can.view_rates:  # the flag the Rates link reads too
        raise Http404("This account has no such page.")  # hidden pricing: no rate reaches its users
    now = timezone.now()
    card = rate_card(account, at=now)
    lines = [RateLine(p, _price(price, p), SOURCE_LABELS.get(source, source)) for p, price, source in card]
    context = {
        "access": access,
        "account": account,
        "now": now,
        "lines": lines,
        "custom_lines": [line for line in lines if line.source == SOURCE_LABELS["custom rate"]],
        # Priced by its manager (markup or resale rates): the platform's rates are the manager's cost.
        "resale_priced": any(line.source == SOURCE_LABELS["resale price"] for line in lines),
        "managed_custom_lines": _managed_custom_lines(account, card, now) if account.is_manager else [],
    }
    return render(request, "billing/rate_card.html", context)


def _price(price: Decimal | None, product: Product) -> str:
    return "no price" if price is None else f"{product.currency} {price:.6f}"


def _managed_custom_lines(
    manager: Account, card: list[tuple[Product, Decimal | None, str]], at: datetime
) -> list[RateLine]:
    """The custom rates in force for the manager's managed accounts that may have them, beside
    the manager's own rate, which every other managed account inherits."""
    own = {product.pk: _price(price, product) for product, price, _ in card}
    custom = manager.managed_accounts.filter(allow_custom_pricing=True).exclude(status=Account.Status.CANCELLED)
    accounts = list(custom.select_related("manager").order_by("name", "pk"))
    book = RateBook(accounts)
    in_force = {account.pk: book.rates_set_by(account.pk, at) for account in accounts}
    products = Product.objects.in_bulk({pk for rates in in_force.values() for pk in rates})
    return [
        RateLine(product, _price(price, product), "Custom", account=account, inherited=own.get(product.pk, ""))
        for account in accounts
        for product, price in sorted(
            ((products[pk], price) for pk, price in in_force[account.pk].items()), key=lambda pair: pair[0].sku
        )
    ]


# --- Balance ---------------------------------------------------------------------------------------------

ENTRIES_PER_PAGE = 25


@login_required
@require_GET
def balance_page(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, VIEW_BILLING)
    account = access.account
    context = {"access": access, "account": account}
    if not ledger_selectors.has_own_balance(account):
        # Roll-up: its usage is charged to the manager, whose amounts are none of its business.
        return render(request, "billing/balance_rollup.html", context)
    balance = ledger_selectors.current_balance(account)
    table = LedgerEntryTable(LedgerEntry.objects.filter(account=account).order_by("-created_at", "-id"))
    paginate_table(request, table, per_page=ENTRIES_PER_PAGE)
    pending = payment_selectors.pending_payments_total(account)
    context |= {"balance": _money_facts(balance, pending=pending), "table": table}
    return render(request, "billing/balance.html", context)


def _money_facts(balance: Balance, *, pending: Decimal) -> dict[str, str | bool]:
    currency = balance.currency
    return {
        "amount": format_money(balance.amount, currency),
        "credit_limit": format_money(balance.credit_limit, currency),
        "available": format_money(balance.available_credit, currency),
        "pending": format_money(pending, currency),
        "currency": currency,
        "negative": balance.amount < 0,
    }


# --- Credit transfer to a managed account --------------------------------------------------------------------


@login_required
@require_http_methods(GET_AND_POST)
def managed_transfer(request: HttpRequest, account_id: UUID, managed_id: UUID) -> HttpResponse:
    """GET: the form. POST: the confirmation step. POST with `confirm`: the transfer, made once per key."""
    access, managed = managed_account_access(request, account_id, managed_id)
    manager = access.account
    available = ledger_selectors.current_balance(manager).available_credit
    refusal = ledger_selectors.transfer_refusal(managed)
    if request.method == "GET":
        form = TransferForm(initial={"key": uuid.uuid4()}, available=available)
        return _transfer_form(request, access, managed, form, available, refusal)
    confirming = request.POST.get("confirm") == "1"
    form = TransferForm(request.POST, available=available, confirming=confirming)
    if refusal is not None:
        form.add_error(None, refusal)
    if not form.is_valid():
        return _transfer_form(request, access, managed, form, available, refusal, status=422)
    amount, key = form.cleaned_data["amount"], form.cleaned_data["key"]
    if not confirming:
        return _transfer_confirm(request, access, managed, amount, key, available)
    try:
        posted = ledger.transfer_credit(
            manager=manager, managed=managed, amount=amount, key=str(key), actor=Actor.from_request(request)
        )
    except ledger.LedgerError as error:
        apply_refusal(form=form, refusal=error)
        return _transfer_form(request, access, managed, form, available, refusal, status=422)
    moved = format_money(-posted.entry.amount, posted.entry.currency)
    if posted.created:
        messages.success(request, f"{moved} transferred to {managed.name}.")
    else:
        messages.info(request, f"This transfer was already made ({moved} to {managed.name}); nothing was sent twice.")
    return redirect("managed_detail", manager.public_id, managed.public_id)


def _transfer_form(
    request: HttpRequest,
    access: AccountAccess,
    managed: Account,
    form: TransferForm,
    available: Decimal,
    refusal: str | None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "access": access,
        "account": access.account,
        "managed": managed,
        "form": form,
        "refusal": refusal,
        "available": format_money(available),
        "managed_balance": None if refusal else format_money(ledger_selectors.current_balance(managed).amount),
        "max_transfer": format_money(settings.BILLING_MAX_TRANSFER),
    }
    return render(request, "billing/transfer.html", context, status=status)


def _transfer_confirm(
    request: HttpRequest, access: AccountAccess, managed: Account, amount: Decimal, key: uuid.UUID, available: Decimal
) -> HttpResponse:
    context = {
        "access": access,
        "account": access.account,
        "managed": managed,
        "amount": format_money(amount),
        "amount_input": f"{to_cents(amount):.2f}",
        "key": key,
        "available_after": format_money(available - amount),
    }
    return render(request, "billing/transfer_confirm.html", context)


# --- Invoices --------------------------------------------------------------------------------------------

INVOICES_PER_PAGE = 25


@login_required
@require_GET
def invoice_list(request: HttpRequest, account_id: UUID) -> HttpResponse:
    """The account's invoices, newest first. A roll-up managed account is billed by its manager: its
    page says so and lists the manager's invoices to it (with hidden pricing too: it owes them)."""
    access = account_access(request, account_id, VIEW_BILLING)
    account = access.account
    table = InvoiceTable(invoices_of(account), account=account)
    paginate_table(request, table, per_page=INVOICES_PER_PAGE)
    context = {
        "access": access,
        "account": account,
        "table": table,
        "billed_to_manager": not account.has_own_balance,
    }
    return render(request, "billing/invoice_list.html", context)


@login_required
@require_GET
def invoice_detail(request: HttpRequest, account_id: UUID, invoice_id: UUID) -> HttpResponse:
    """One invoice billed to the account: header, statement, and its lines in a section per
    account. With hidden pricing (DESIGN section 3) the totals and the statement stay, since they
    are money the account itself owes, but the lines show quantities only: no per-line amount, no
    rounding line, no subtotal.

    A constant number of queries, whatever the number of sections (a manager with 3,000 roll-up
    accounts): the invoice, then its lines with their accounts and products in one query."""
    access = account_access(request, account_id, VIEW_BILLING)
    account = access.account
    invoice = _own_invoice(account, invoice_id)
    return _invoice_page(
        request,
        access,
        invoice,
        pricing=can_see_pricing(account),
        issued=False,
        show_note=status_note_visible(invoice, account),
    )


def _invoice_page(
    request: HttpRequest, access: AccountAccess, invoice: Invoice, *, pricing: bool, issued: bool, show_note: bool
) -> HttpResponse:
    view = invoice_view(invoice, pricing=pricing, page=_page_number(request))
    context = {
        "access": access,
        "account": access.account,
        "invoice": invoice,
        "bill_to": invoice.bill_to,
        "issued": issued,
        "issuer": view.issuer,
        "period_end": period_end(invoice),
        "priced": view.priced,
        "sections": view.sections,
        "statement": view.statement,
        "statement_note": view.statement_note,
        "total": view.total,
        "section_count": view.section_count,
        "sections_total": view.sections_total,
        "adds_up": view.adds_up,
        # The self-check is internal: platform staff see it, customers never do (issue 12, item 7).
        "staff_check": request.user.is_staff,
        "transitions": _transitions(invoice) if issued else [],
        "page": view.page,
        "status_note": invoice.status_note if show_note else "",
        "issuer_party": view.issuer_party,
        "bill_to_party": view.bill_to_party,
        "payment_status": view.payment_status,
        "payment_status_label": view.payment_status_label,
    }
    context |= credit_note_views.credit_note_context(invoice, pricing=pricing)
    return render(request, "billing/invoice_detail.html", context)


@login_required
@require_GET
def invoice_pdf_download(request: HttpRequest, account_id: UUID, invoice_id: UUID) -> HttpResponse:
    """The invoice as a PDF attachment: the same access and the same pricing rule as its page."""
    access = account_access(request, account_id, VIEW_BILLING)
    account = access.account
    invoice = _own_invoice(account, invoice_id)
    return pdf_response(invoice, pricing=can_see_pricing(account))


@require_GET
def invoice_download(request: HttpRequest, token: str) -> HttpResponse:
    """The PDF behind a signed, time-limited link the API hands out (`action=link`): no session,
    the token is the credential. It names the invoice and the API key's account; the invoice must
    still be one that account sees, and the pricing is that account's. Any bad, tampered or expired
    token, or an account no longer usable (`Account.blocked_reason`), is a 404 that says nothing more."""
    try:
        account_public_id, invoice_public_id = read_download_token(token)
    except BadDownloadToken:
        raise Http404("No such invoice.") from None
    account = Account.objects.select_related("manager").filter(public_id=account_public_id).first()
    if account is None or not account.is_usable:
        raise Http404("No such invoice.")
    invoice = _own_invoice(account, invoice_public_id)
    response = pdf_response(invoice, pricing=can_see_pricing(account))
    response["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    return response


def _page_number(request: HttpRequest) -> int:
    """`?page=N` of a long invoice's sections; anything else is the first page."""
    value = request.GET.get("page", "1")
    return int(value) if value.isdigit() and len(value) < 7 else 1


def _own_invoice(account: Account, invoice_id: UUID) -> Invoice:
    # bill_to is the account itself: joined, so the payer costs no query of its own.
    return get_object_or_404(invoices_of(account).select_related("bill_to"), public_id=invoice_id)


# --- Reseller invoices (a manager's invoices to its roll-up managed accounts) ---------------------------

ISSUED_STATUS_CHOICES = [("", "Any status")] + [
    (status.value, status.label) for status in (Invoice.Status.FINALIZED, Invoice.Status.PAID, Invoice.Status.VOID)
]
STATUS_ACTIONS = {
    "paid": (Invoice.Status.PAID, InvoicePaidForm, "Mark paid"),
    "void": (Invoice.Status.VOID, InvoiceVoidForm, "Void"),
}


@login_required
@require_http_methods(GET_AND_POST)
def resale_invoices(request: HttpRequest, account_id: UUID) -> HttpResponse:
    """The manager's resale markup and the reseller invoices it issued, filtered by status and by
    managed account, 25 a page."""
    access = account_access(request, account_id, RESELL)
    manager = access.account
    if request.method == "POST":
        form = ResaleMarkupForm(request.POST)
        if form.is_valid():
            invoice_services.set_resale_markup(
                manager=manager, markup_percent=form.cleaned_data["markup_percent"], actor=Actor.from_request(request)
            )
            messages.success(
                request, f"Markup set to {form.cleaned_data['markup_percent']} %. The next close applies it."
            )
            return redirect("resale_invoices", manager.public_id)
    else:
        form = ResaleMarkupForm(initial={"markup_percent": resale.markup_of(manager)})
    invoices = credit_notes.with_credited(issued_invoices_of(manager))
    status = request.GET.get("status", "")
    if status in dict(ISSUED_STATUS_CHOICES) and status:
        invoices = invoices.filter(status=status)
    bill_to = None
    if request.GET.get("account"):
        public_id = _uuid_or_none(request.GET["account"])
        bill_to = manager.managed_accounts.filter(public_id=public_id).first() if public_id else None
        invoices = invoices.filter(bill_to=bill_to)
    table = IssuedInvoiceTable(invoices, account=manager)
    paginate_table(request, table, per_page=INVOICES_PER_PAGE)
    context = {
        "access": access,
        "account": manager,
        "form": form,
        "table": table,
        "status": status,
        "status_choices": ISSUED_STATUS_CHOICES,
        "bill_to": bill_to,
        "has_rollup": Account.objects.rollups_of(manager).exists(),
    }
    return render(request, "billing/resale_invoices.html", context, status=422 if form.errors else 200)


def _uuid_or_none(value: str) -> UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _issued_invoice(manager: Account, invoice_id: UUID) -> Invoice:
    return get_object_or_404(issued_invoices_of(manager), public_id=invoice_id)


@login_required
@require_GET
def issued_invoice_detail(request: HttpRequest, account_id: UUID, invoice_id: UUID) -> HttpResponse:
    """A reseller invoice as its issuer sees it: always priced (the manager set the prices)."""
    access = account_access(request, account_id, RESELL)
    invoice = _issued_invoice(access.account, invoice_id)
    return _invoice_page(request, access, invoice, pricing=True, issued=True, show_note=True)


@login_required
@require_GET
def issued_invoice_pdf(request: HttpRequest, account_id: UUID, invoice_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, RESELL)
    return pdf_response(_issued_invoice(access.account, invoice_id), pricing=True)


def _transitions(invoice: Invoice) -> list[tuple[str, str]]:
    allowed = invoice_services.TRANSITIONS.get(invoice.status, set())
    return [(action, label) for action, (target, _, label) in STATUS_ACTIONS.items() if target in allowed]


@login_required
@require_http_methods(GET_AND_POST)
def issued_invoice_status(request: HttpRequest, account_id: UUID, invoice_id: UUID, action: str) -> HttpResponse:
    """Mark a reseller invoice paid, or void it: a confirmation page, then the change (audited)."""
    access = account_access(request, account_id, RESELL)
    invoice = _issued_invoice(access.account, invoice_id)
    if action not in STATUS_ACTIONS:
        raise Http404("No such action.")
    _target, form_class, label = STATUS_ACTIONS[action]
    form = form_class(request.POST if request.method == "POST" else None)
    refused = None
    if request.method == "POST" and form.is_valid():
        actor = Actor.from_request(request)
        try:
            if action == "paid":
                invoice_services.mark_invoice_paid(invoice=invoice, note=form.cleaned_data["note"], actor=actor)
            else:
                invoice_services.void_invoice(invoice=invoice, reason=form.cleaned_data["reason"], actor=actor)
        except invoice_services.InvoiceStateError as failure:
            refused = failure  # shown above the form (the invoice's state, not a field), with its 409
        else:
            messages.success(request, f"Invoice {invoice.number} is now {invoice.get_status_display().lower()}.")
            return redirect("issued_invoice_detail", access.account.public_id, invoice.public_id)
    context = {
        "access": access,
        "account": access.account,
        "invoice": invoice,
        "action": action,
        "label": label,
        "form": form,
        "error": refused.message if refused else None,
        "allowed": action in dict(_transitions(invoice)),
        "total": format_money(invoice.total, invoice.currency),
    }
    status = refused.status if refused else 422 if form.errors else 200
    return render(request, "billing/invoice_status_confirm.html", context, status=status)


def pdf_response(invoice: Invoice, *, pricing: bool) -> HttpResponse:
    response = HttpResponse(invoice_pdf(invoice, pricing=pricing), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{pdf_filename(invoice)}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
