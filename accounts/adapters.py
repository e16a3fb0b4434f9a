from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.stagekit import clear_login
from allauth.account.models import EmailConfirmation
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import Membership
from portal.site import absolute_url


class AccountAdapter(DefaultAccountAdapter):
    # allauth's e-mails name the product and link to SITE_URL, whatever host the request came on
    # (templates/account/email/base_message.txt reads site_name and site_url).

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        super().send_mail(
            template_prefix, email, {**context, "site_name": settings.SITE_NAME, "site_url": settings.SITE_URL}
        )

    def get_reset_password_from_key_url(self, key: str) -> str:
        return absolute_url(super().get_reset_password_from_key_url(key))

    def get_email_confirmation_url(self, request: HttpRequest, emailconfirmation: EmailConfirmation) -> str:
        return absolute_url(super().get_email_confirmation_url(request, emailconfirmation))

    def pre_login(self, request: HttpRequest, user: AbstractBaseUser, **kwargs: Any) -> HttpResponse | None:
        """Refuse sign-in to people whose every account is blocked (`Account.blocked_reason`: disabled,
        cancelled, or under a disabled manager), saying why."""
        memberships = Membership.objects.filter(user_id=user.pk).select_related("account", "account__manager")
        reasons = [membership.account.blocked_reason for membership in memberships]
        if reasons and all(reasons):
            clear_login(request)
            return render(request, "account/account_disabled.html", {"reasons": reasons}, status=403)
        return super().pre_login(request, user, **kwargs)
