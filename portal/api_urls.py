"""The v2 JSON API (../shared/API.md). Each resource's views live in the app that owns it."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from accounts import api as accounts_api
from billing import api as billing_api
from controls import api as controls_api
from notifications import api as notifications_api
from portal.api import ApiError
from portal.openapi import openapi_json
from reporting import api as reporting_api
from webhooks import api as webhooks_api


@csrf_exempt  # key-authenticated like every API view: no CSRF 403 for a POST to an unknown path
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    return ApiError(404, "not_found", "Not found", f"There is no {request.path} in the v2 API.").response()


urlpatterns = [
    path("openapi.json", openapi_json, name="api_openapi"),
    path("managed_accounts", accounts_api.managed_accounts, name="api_managed_accounts"),
    path("managed_accounts/<str:managed_id>", accounts_api.managed_account, name="api_managed_account"),
    *[
        path(
            f"managed_accounts/<str:managed_id>/actions/{action}",
            accounts_api.managed_account_action,
            {"action": action},
            name=f"api_managed_account_{action}",
        )
        for action in ("disable", "enable")
    ],
    path("audit_events", accounts_api.audit_events, name="api_audit_events"),
    path("usage_reports", reporting_api.usage_reports, name="api_usage_reports"),
    path("usage_reports/options", reporting_api.usage_report_options, name="api_usage_report_options"),
    path("usage_records", billing_api.usage_records, name="api_usage_records"),
    path("balance", billing_api.balance, name="api_balance"),
    path("invoices", billing_api.invoices, name="api_invoices"),
    path("invoices/<str:invoice_id>", billing_api.invoice, name="api_invoice"),
    path("credit_transfers", billing_api.credit_transfers, name="api_credit_transfers"),
    path("credit_transfers/<str:transfer_id>", billing_api.credit_transfer, name="api_credit_transfer"),
    path("spend_limit", controls_api.own_spend_limit, name="api_spend_limit"),
    path(
        "managed_accounts/<str:managed_id>/spend_limit",
        controls_api.managed_spend_limit,
        name="api_managed_account_spend_limit",
    ),  # fmt: skip
    path(
        "managed_accounts/<str:managed_id>/credit_limit",
        controls_api.managed_credit_limit,
        name="api_managed_account_credit_limit",
    ),  # fmt: skip
    path(
        "managed_accounts/<str:managed_id>/users", accounts_api.managed_account_users, name="api_managed_account_users"
    ),  # fmt: skip
    path(
        "managed_accounts/<str:managed_id>/users/<str:user_id>",
        accounts_api.managed_account_user,
        name="api_managed_account_user",
    ),  # fmt: skip
    path("webhook_endpoints", webhooks_api.endpoints, name="api_webhook_endpoints"),
    path("webhook_endpoints/<str:endpoint_id>", webhooks_api.endpoint, name="api_webhook_endpoint"),
    path(
        "webhook_endpoints/<str:endpoint_id>/deliveries", webhooks_api.deliveries, name="api_webhook_deliveries"
    ),  # fmt: skip
    path(
        "webhook_endpoints/<str:endpoint_id>/deliveries/<str:delivery_id>",
        webhooks_api.delivery,
        name="api_webhook_delivery",
    ),  # fmt: skip
    path(
        "webhook_endpoints/<str:endpoint_id>/deliveries/<str:delivery_id>/actions/resend",
        webhooks_api.delivery_resend,
        name="api_webhook_delivery_resend",
    ),  # fmt: skip
    path("notification_settings", notifications_api.notification_settings, name="api_notification_settings"),
    path(
        "notification_settings/<str:setting_id>",
        notifications_api.notification_setting,
        name="api_notification_setting",
    ),  # fmt: skip
    path("low_balance_threshold", notifications_api.low_balance_threshold, name="api_low_balance_threshold"),
    # Anything else under /v2/ answers in the contract's error shape, not Django's HTML 404.
    re_path(r"^.*$", api_not_found, name="api_not_found"),
]
