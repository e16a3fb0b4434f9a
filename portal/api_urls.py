"""The v2 JSON API (../shared/API.md). Each resource's views live in the app that owns it."""

from django.urls import path

from accounts import api as accounts_api

urlpatterns = [
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
]
