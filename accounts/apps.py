from typing import Any

from django.apps import AppConfig
from django.http import HttpRequest


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Customer accounts"  # allauth's own app is "Accounts"

    def ready(self) -> None:
        from allauth.account.signals import user_logged_in

        from accounts import onboarding  # noqa: F401  (registers its Celery task in workers)
        from accounts.models import User
        from accounts.services import record_sign_in

        # allauth's signal fires on real sign-ins only, not when hijack switches the session's user.
        def on_sign_in(sender: object, request: HttpRequest, user: User, **kwargs: Any) -> None:
            record_sign_in(user=user, ip_address=request.META.get("REMOTE_ADDR"))

        user_logged_in.connect(on_sign_in, weak=False, dispatch_uid="accounts.record_sign_in")
