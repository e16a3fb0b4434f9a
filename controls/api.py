"""v2 API of controls: spend limits (a manager's on each of its managed accounts, an account's own)
and the credit limit a manager gives a separately billed managed account.

Every rule is the services' (`controls.services`): positive whole cents, at most the maximum, the
daily amount within the monthly one, an account's own limit never above its manager's, a roll-up
account's limits set by its manager only, the credit a manager guarantees. These views only read
the request, call one service, and answer the record.

A spend limit is addressed as Telnyx's are, by product (`product`, a SKU; absent or null: every
product), and answered like Telnyx's `SpendLimit`: the record exists for every account and product,
with `limit` null when none is set; the spend so far this month and today, at the prices the
account pays, is left out (null) where the key's account may not see pricing."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.http import Http404, JsonResponse
from django.utils import timezone

from accounts.api_access import ApiRequest, key_account, managed_account_of
from accounts.models import Account
from accounts.permissions import can_see_pricing
from billing.api import amount_field
from billing.ledger.selectors import current_balance
from billing.models import Product
from billing.money import to_cents
from billing.periods import next_month
from controls import selectors, services
from controls.models import SpendLimit
from portal.api import ApiError, actor, api_view, invalid, iso, json_body, string_field

LIMIT_FIELDS = ("product", "monthly_amount", "daily_amount", "action")


@api_view("GET", "PUT", "DELETE")
def managed_spend_limit(request: ApiRequest, managed_id: str) -> JsonResponse:
    """The manager's spend limit on one of its managed accounts (any other id: 404)."""
    managed = managed_account_of(request, public_id=managed_id)
    return _spend_limit(request, managed, SpendLimit.SetBy.MANAGER)


@api_view("GET", "PUT", "DELETE")
def own_spend_limit(request: ApiRequest) -> JsonResponse:
    """The key's account's own spend limit (with `X-Managed-Account-Id`, that managed account's own,
    as its owner would set it), and beside it `manager_limit`, the one its manager set on it."""
    return _spend_limit(request, key_account(request), SpendLimit.SetBy.OWNER)


def _spend_limit(request: ApiRequest, account: Account, set_by: str) -> JsonResponse:
    if request.method == "PUT":
        body = json_body(request, allowed=LIMIT_FIELDS)
        product = _product(body.get("product"), query=False)
        monthly = amount_field(body, "monthly_amount")
        assert monthly is not None  # required
        services.set_spend_limit(
            account=account,
            set_by=set_by,
            product=product,
            monthly_amount=monthly,
            daily_amount=amount_field(body, "daily_amount", required=False),
            action=string_field(body, "action", max_length=20) or SpendLimit.Action.BLOCK,
            actor=actor(request),
        )
        return JsonResponse({"data": _record(request, account, set_by, product)})
    product = _product(request.GET.get("product"), query=True)
    if request.method == "DELETE":
        record = _record(request, account, set_by, product)
        limit = _limits(account, set_by, product).get(set_by)
        if limit is None:
            raise ApiError(404, "not_found", "Not found", "No spend limit is set on this product.")
        services.remove_spend_limit(limit=limit, actor=actor(request))
        return JsonResponse({"data": {**record, "limit": None}})
    return JsonResponse({"data": _record(request, account, set_by, product)})


def _product(value: object, *, query: bool) -> Product | None:
    if value is None or value == "":
        return None
    found = Product.objects.filter(active=True, sku=value).first() if isinstance(value, str) else None
    if found is None:
        raise invalid("product", "product must be the SKU of an active product, or null for every product.",
                      query=query)  # fmt: skip
    return found


def _limits(account: Account, set_by: str, product: Product | None) -> dict[str, SpendLimit]:
    """The account's limits on exactly `product` (None: every product), by who set them, with use."""
    today = timezone.now().date()
    return {
        limit.set_by: limit
        for limit in selectors.limits_of(account, today=today)
        if limit.product_id == (product.pk if product else None)
    }


def _record(request: ApiRequest, account: Account, set_by: str, product: Product | None) -> dict[str, Any]:
    today = timezone.now().date()
    month = today.replace(day=1)
    account.refresh_from_db(fields=["service_blocked_reason", "service_blocked_until"])  # a write may have moved it
    limits = _limits(account, set_by, product)
    limit = limits.get(set_by)
    measured = limit or next(iter(limits.values()), None)  # the spend is the same under either limit
    priced = can_see_pricing(key_account(request)) and measured is not None
    record: dict[str, Any] = {
        "record_type": "spend_limit",
        "account_id": str(account.public_id),
        "set_by": set_by,
        "product": product.sku if product else None,
        "product_name": product.name if product else "All products",
        "limit": _limit_json(limit, today) if limit else None,
        "currency": "USD",
        "period_start": month.isoformat(),
        "period_end": next_month(month).isoformat(),
        "monthly_spend_usd": _cents(measured.monthly_use) if priced and measured else None,  # type: ignore[attr-defined]
        "daily_spend_usd": _cents(measured.daily_use) if priced and measured else None,  # type: ignore[attr-defined]
        "service_status": "blocked" if account.service_block else "active",
        "service_blocked_reason": account.service_block or None,
    }
    if set_by == SpendLimit.SetBy.OWNER:
        manager_limit = limits.get(SpendLimit.SetBy.MANAGER)
        record["manager_limit"] = _limit_json(manager_limit, today) if manager_limit else None
    return record


def _limit_json(limit: SpendLimit, today: date) -> dict[str, Any]:
    return {
        "id": str(limit.public_id),
        "monthly_amount": f"{limit.monthly_amount:.2f}",
        "daily_amount": f"{limit.daily_amount:.2f}" if limit.daily_amount is not None else None,
        "action": limit.action,
        "monthly_reached": limit.monthly_reached_for == today.replace(day=1),
        "daily_reached": limit.daily_reached_for == today,
        "created_at": iso(limit.created_at),
        "updated_at": iso(limit.updated_at),
    }


def _cents(amount: Any) -> str:
    return f"{to_cents(amount):.2f}"


# --- Credit limits ---------------------------------------------------------------------------------------


@api_view("GET", "PUT")
def managed_credit_limit(request: ApiRequest, managed_id: str) -> JsonResponse:
    """GET: a separately billed managed account's credit limit and balance. PUT `credit_limit`: the
    manager sets it, within what it guarantees (`controls.services.set_managed_credit_limit`)."""
    manager = key_account(request)
    managed = managed_account_of(request, public_id=managed_id)
    if request.method == "PUT":
        body = json_body(request, allowed=("credit_limit",))
        limit = amount_field(body, "credit_limit")
        assert limit is not None  # required
        services.set_managed_credit_limit(manager=manager, managed=managed, limit=limit, actor=actor(request))
    if not managed.has_own_balance:
        raise Http404("A roll-up managed account has no credit limit of its own.")
    return JsonResponse({"data": _credit_json(managed)})


def _credit_json(managed: Account) -> dict[str, Any]:
    row = current_balance(managed)
    return {
        "record_type": "credit_limit",
        "account_id": str(managed.public_id),
        "credit_limit": _cents(row.credit_limit),
        "balance": _cents(row.amount),
        "available_credit": _cents(row.available_credit),
        "currency": row.currency,
    }
