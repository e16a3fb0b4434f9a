"""v2 API: the balance (`GET /balance`), invoices (`GET /invoices`, `GET /invoices/{id}`) and usage
ingestion (`POST /usage_records`, our own extension of the contract).

Usage ingestion is a thin skin over `billing.usage.ingest_usage`, the one way usage gets in: the batch is validated
whole, stored atomically, idempotent per (account, idempotency key), and a manager key may name its
managed accounts in `account`. This view only maps the request onto it; its refusal (`UsageRejected`)
answers in the contract's errors through `api_view`: one error per bad row and field, with the JSON
pointer of that field (`/records/<0-based index>/<field>`) and the 1-based row number in the detail.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse

from accounts.api_access import ApiRequest, key_account
from billing.invoices.pdf import download_token
from billing.invoices.selectors import invoices_of, period_end
from billing.ledger.selectors import current_balance, has_own_balance
from billing.models import Balance, Invoice
from billing.money import to_cents
from billing.payments.selectors import pending_payments_total
from billing.usage.services import ingest_usage
from portal.api import ApiError, actor, api_view, invalid, json_body, page


@api_view("GET")
def balance(request: ApiRequest) -> JsonResponse:
    """The key's account's own balance, in the shape of the SDK's `BalanceRetrieveResponse`.

    A roll-up managed account's key gets a 403 `billed_to_manager`: such an account has no balance
    of its own (DESIGN section 5: its usage is charged to its manager's balance, and it pays the
    manager on the manager's own invoice, at the manager's resale prices). Answering with the
    manager's shared balance would show the manager's money to its customer, and with hidden pricing
    its movements would reveal the priced amounts the account may not see. A separately billed
    managed account, hidden pricing or not, sees its own balance: that is money it holds.
    """
    account = key_account(request)
    if not has_own_balance(account):
        raise ApiError(
            403,
            "billed_to_manager",
            "Billed to the manager",
            f"{account.name} is billed to its manager (roll-up billing) and has no balance of its own; "
            "ask the manager for its statement.",
        )
    row = current_balance(account)  # a read writes nothing
    return JsonResponse({"data": balance_json(row, pending=pending_payments_total(account))})


def balance_json(row: Balance, *, pending: Decimal) -> dict[str, str]:
    """`pending`: the card payments not yet settled (billing.payments.selectors.pending_payments_total),
    a decimal string like the other amounts (the SDK's `Data.pending: Optional[str]`); not in the
    balance until Stripe confirms them."""
    return {
        "record_type": "balance",
        "balance": _money(row.amount),
        "credit_limit": _money(row.credit_limit),
        "available_credit": _money(row.available_credit),
        "pending": _money(pending),
        "currency": row.currency,
    }


def _money(amount: Decimal | int) -> str:
    return f"{to_cents(Decimal(amount)):.2f}"  # an unsaved row holds the int default 0


# --- Invoices ----------------------------------------------------------------------------------------

INVOICE_SORTS = {"period_start": ("period", "id"), "-period_start": ("-period", "-id")}
INVOICE_ACTIONS = ("json", "link")


@api_view("GET")
def invoices(request: ApiRequest) -> JsonResponse:
    """The key's account's own invoices (`sort` = `period_start` | `-period_start`, the default),
    in the shape of the SDK's `InvoiceListResponse`. A roll-up managed account's key gets the
    reseller invoices its manager issued to it. A manager's key lists the invoices billed to the
    manager only (not those it issued)."""
    sort = request.GET.get("sort", "-period_start")
    if sort not in INVOICE_SORTS:
        raise invalid("sort", f"Must be one of {', '.join(INVOICE_SORTS)}.", query=True)
    records = invoices_of(key_account(request)).order_by(*INVOICE_SORTS[sort])
    return page(request, records, lambda invoice: invoice_json(request, invoice))


@api_view("GET")
def invoice(request: ApiRequest, invoice_id: str) -> JsonResponse:
    """One of the key's account's invoices (404 for any other id), in the shape of the SDK's
    `InvoiceRetrieveResponse`. `action=link` adds `download_url`: a signed link to the invoice's PDF
    that needs no session and expires after 15 minutes (billing.invoices.pdf.download_token); it serves the
    PDF as the key's account sees it (its pricing rule), and only while that account sees the invoice."""
    action = request.GET.get("action", "json")
    if action not in INVOICE_ACTIONS:
        raise invalid("action", f"Must be one of {', '.join(INVOICE_ACTIONS)}.", query=True)
    account = key_account(request)
    record = get_object_or_404(invoices_of(account), public_id=_uuid(invoice_id))
    data = invoice_json(request, record)
    if action == "link":
        token = download_token(record, account)
        data["download_url"] = request.build_absolute_uri(reverse("invoice_download", args=[token]))
    return JsonResponse({"data": data})


def invoice_json(request: ApiRequest, invoice: Invoice) -> dict[str, Any]:
    """The contract's fields (`invoice_id`, `file_id`, `paid`, `period_start`, `period_end` (the
    last day of the month, included), `url`: this record in the API) and our extras: number,
    status, currency and total. The total is money the account owes, shown even with hidden pricing
    (DESIGN section 3); nothing here is a rate or a per-line amount. `file_id` is null: no PDF file
    is stored."""
    return {
        "record_type": "invoice",
        "invoice_id": str(invoice.public_id),
        "file_id": None,
        "paid": invoice.status == Invoice.Status.PAID,
        "period_start": invoice.period.isoformat(),
        "period_end": period_end(invoice).isoformat(),
        "url": request.build_absolute_uri(reverse("api_invoice", args=[invoice.public_id])),
        "number": invoice.number,
        "status": invoice.status,
        "currency": invoice.currency,
        "total": _money(invoice.total),
        "issued_by": str(invoice.issuer.public_id) if invoice.issuer is not None else "platform",
    }


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Http404 from None


# --- Usage ingestion ----------------------------------------------------------------------------------


@api_view("POST")
def usage_records(request: ApiRequest) -> JsonResponse:
    try:
        body = json_body(request, allowed=("records",))
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raise ApiError(
            413,
            "payload_too_large",
            "Payload too large",
            f"The body is larger than the {limit:,} bytes this server accepts; split the batch.",
        ) from None
    records = body.get("records")
    if records is None:
        raise invalid("records", "records is required: a list of usage records.")
    if not isinstance(records, list):
        raise invalid("records", "records must be a list of usage records.")
    # A rejected batch is a UsageRejected: api_view answers its row errors, one per bad row and field.
    result = ingest_usage(submitter=key_account(request), rows=records, source="api", actor=actor(request))
    return JsonResponse(
        {
            "data": {
                "record_type": "usage_batch",
                # No batch is stored when every record was a duplicate: nothing new to point at.
                "id": str(result.batch.public_id) if result.batch is not None else None,
                "accepted": result.accepted,
                "duplicates": result.duplicates,
            }
        },
        status=201 if result.accepted else 200,
    )
