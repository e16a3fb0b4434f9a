"""v2 API: the balance (`GET /balance`), invoices (`GET /invoices`, `GET /invoices/{id}`) and usage
ingestion (`POST /usage_records`, our own extension of the contract), and credit transfers between a
manager and its separately billed managed accounts (`/credit_transfers`, shaped like Vonage's).

Usage ingestion is a thin skin over `billing.usage.ingest_usage`, the one way usage gets in: the batch is validated
whole, stored atomically, idempotent per (account, idempotency key), and a manager key may name its
managed accounts in `account`. This view only maps the request onto it; its refusal (`UsageRejected`)
answers in the contract's errors through `api_view`: one error per bad row and field, with the JSON
pointer of that field (`/records/<0-based index>/<field>`) and the 1-based row number in the detail.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import Q
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse

from accounts.api_access import ApiRequest, key_account, key_permission, managed_account_of
from accounts.models import Account
from accounts.permissions import MANAGE_MANAGED_ACCOUNTS
from billing.invoices.pdf import download_token
from billing.invoices.selectors import invoices_of, period_end
from billing.ledger import services as ledger
from billing.ledger.selectors import current_balance, has_own_balance
from billing.models import Balance, CreditTransfer, Invoice
from billing.money import to_cents
from billing.payments.selectors import pending_payments_total
from billing.usage.services import ingest_usage
from portal.api import ApiError, actor, api_view, invalid, iso, json_body, page, query_time, string_field


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
    account = own_balance_account(request)
    row = current_balance(account)  # a read writes nothing
    return JsonResponse({"data": balance_json(row, pending=pending_payments_total(account))})


def own_balance_account(request: ApiRequest) -> Account:
    """The key's account, when it holds a balance of its own; a 403 `billed_to_manager` for a
    roll-up managed account (see `balance`)."""
    account = key_account(request)
    if not has_own_balance(account):
        raise ApiError(
            403,
            "billed_to_manager",
            "Billed to the manager",
            f"{account.name} is billed to its manager (roll-up billing) and has no balance of its own; "
            "ask the manager for its statement.",
        )
    return account


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
        # What the customer acts on (issue 12 item 7): `status` stays the stored state.
        "payment_status": invoice.payment_status,
        "issue_date": invoice.issue_date.isoformat() if invoice.issue_date else None,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
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


# --- Credit transfers -----------------------------------------------------------------------------------

TRANSFER_FIELDS = ("from", "to", "amount", "reference")
TRANSFER_FILTERS = ("filter[account_id]", "filter[created_after]", "filter[created_before]")
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 191  # the ledger key is "transfer:" and this, in 200 characters
# An amount as text: digits, an optional fraction. Its value (positive, cents, at most the maximum)
# is the service's to judge; this only bounds the size, so that no amount overflows the arithmetic.
_AMOUNT = re.compile(r"-?\d{1,15}(?:\.\d{1,20})?")


def amount_field(body: dict[str, Any], name: str, *, required: bool = True) -> Decimal | None:
    """A money amount of the body, a decimal string (`"10.00"`) or a JSON number, read exactly."""
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(name, f"{name} is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise invalid(name, f'{name} must be an amount such as "10.00".')
    text = value.strip() if isinstance(value, str) else str(value)
    if not _AMOUNT.fullmatch(text):
        raise invalid(name, f'{name} must be an amount such as "10.00", at most 15 digits before the point.')
    return Decimal(text)


@api_view("GET", "POST")
def credit_transfers(request: ApiRequest) -> JsonResponse:
    """GET: the transfers the key's account is a party to (a manager's: with all its managed
    accounts; a separately billed managed account's: its own), newest first, paged;
    `filter[account_id]` (either party), `filter[created_after]`, `filter[created_before]`.
    POST: a manager's key moves credit to (`from` = the manager) or back from (`to` = the manager)
    one of its separately billed managed accounts, through the page's service and its audit.
    `Idempotency-Key`: a repeat gets the first transfer back (200, `Idempotent-Replayed: true`)."""
    if request.method == "POST":
        return _create_transfer(request)
    account = own_balance_account(request)
    records = CreditTransfer.objects.of(account).select_related("manager", "managed")
    party = request.GET.get("filter[account_id]")
    if party is not None:
        party_id = _query_uuid(party, "filter[account_id]")
        records = records.filter(Q(manager__public_id=party_id) | Q(managed__public_id=party_id))
    after, before = query_time(request, "filter[created_after]"), query_time(request, "filter[created_before]")
    if after is not None:
        records = records.filter(created_at__gte=after)
    if before is not None:
        records = records.filter(created_at__lt=before)
    return page(request, records.order_by("-created_at", "-id"), transfer_json)


@api_view("GET")
def credit_transfer(request: ApiRequest, transfer_id: str) -> JsonResponse:
    """One transfer the key's account is a party to; 404 for any other id."""
    records = CreditTransfer.objects.of(key_account(request)).select_related("manager", "managed")
    return JsonResponse({"data": transfer_json(get_object_or_404(records, public_id=_uuid(transfer_id)))})


def _create_transfer(request: ApiRequest) -> JsonResponse:
    manager = key_permission(request, permission=MANAGE_MANAGED_ACCOUNTS)
    body = json_body(request, allowed=TRANSFER_FIELDS)
    sender, receiver = string_field(body, "from", required=True), string_field(body, "to", required=True)
    amount = amount_field(body, "amount")
    assert amount is not None  # required
    reference = string_field(body, "reference") or ""
    key = _idempotency_key(request)
    mine = str(manager.public_id)
    if (sender == mine) == (receiver == mine):
        raise invalid("from", "One of from and to is your own account's id, the other a managed account's.")
    to_manager = receiver == mine
    managed = managed_account_of(request, public_id=sender if to_manager else receiver)
    made = ledger.transfer(
        manager=manager,
        managed=managed,
        amount=amount,
        actor=actor(request),
        direction=CreditTransfer.Direction.TO_MANAGER if to_manager else CreditTransfer.Direction.TO_MANAGED,
        key=key,
        reference=reference,
    )
    response = JsonResponse({"data": transfer_json(made.transfer)}, status=201 if made.created else 200)
    if not made.created:
        response["Idempotent-Replayed"] = "true"
    return response


def _idempotency_key(request: ApiRequest) -> str | None:
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        detail = f"{IDEMPOTENCY_HEADER} is 1 to {MAX_IDEMPOTENCY_KEY} printable characters (a UUID is usual)."
        raise ApiError(422, "invalid_header", "Invalid header", detail)
    return key


def transfer_json(transfer: CreditTransfer) -> dict[str, Any]:
    """Vonage's credit-transfer fields (`id`, `amount`, `from`, `to`, `reference`, `created_at`),
    the amount a decimal string, and our `direction` and `currency`."""
    return {
        "record_type": "credit_transfer",
        "id": str(transfer.public_id),
        "amount": _money(transfer.amount),
        "currency": transfer.currency,
        "from": str(transfer.sender.public_id),
        "to": str(transfer.receiver.public_id),
        "direction": transfer.direction,
        "reference": transfer.reference,
        "created_at": iso(transfer.created_at),
    }


def _query_uuid(value: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise invalid(name, f"{name} must be an account id (a UUID).", query=True) from None
