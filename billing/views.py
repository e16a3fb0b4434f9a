from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts.access import account_access
from accounts.actor import Actor
from accounts.models import Account
from accounts.permissions import SUBMIT_USAGE, VIEW_BILLING, can_see_pricing
from billing import csv_upload
from billing.forms import UsageUploadForm
from billing.models import Product, Rate, UsageBatch
from billing.pricing import rate_card
from billing.usage import MAX_BATCH, OPTIONAL_FIELDS, REQUIRED_FIELDS, IngestResult, UsageRejected

GET_AND_POST = ["GET", "POST"]
SOURCE_LABELS = {"list price": "List price", "negotiated rate": "Negotiated", "custom rate": "Custom"}


# --- CSV upload ------------------------------------------------------------------------------------------


@login_required
@require_http_methods(GET_AND_POST)
def usage_upload(request, account_id):
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


def _recent_uploads(account: Account):
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
def rate_card_page(request, account_id):
    access = account_access(request, account_id, VIEW_BILLING)
    account = access.account
    if not can_see_pricing(account):
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
        "managed_custom_lines": _managed_custom_lines(account, card, now) if account.is_manager else [],
    }
    return render(request, "billing/rate_card.html", context)


def _price(price: Decimal | None, product: Product) -> str:
    return "no price" if price is None else f"{product.currency} {price:.6f}"


def _managed_custom_lines(manager: Account, card, at: datetime) -> list[RateLine]:
    """The custom rates in force for the manager's managed accounts that may have them, beside
    the manager's own rate, which every other managed account inherits."""
    own = {product.pk: _price(price, product) for product, price, _ in card}
    rates = (
        Rate.objects.filter(account__manager=manager, account__allow_custom_pricing=True, effective_from__lte=at)
        .exclude(account__status=Account.Status.CANCELLED)
        .select_related("account", "product")
        .order_by("account__name", "account_id", "product__sku", "effective_from")
    )
    latest: dict[tuple[int, int], Rate] = {}
    for rate in rates:
        latest[(rate.account_id, rate.product_id)] = rate  # the last one started is in force
    return [
        RateLine(
            r.product, _price(r.unit_price, r.product), "Custom", account=r.account, inherited=own.get(r.product_id, "")
        )
        for r in latest.values()
    ]
