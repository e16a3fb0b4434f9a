from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.stagekit import clear_login
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import Membership


class AccountAdapter(DefaultAccountAdapter):
    def pre_login(self, request: HttpRequest, user: AbstractBaseUser, **kwargs: Any) -> HttpResponse | None:
        """Refuse sign-in to people whose every account is blocked (`Account.blocked_reason`: disabled,
        cancelled, or under a disabled manager), saying why."""
        memberships = Membership.objects.filter(user_id=user.pk).select_related("account", "account__manager")
        reasons = [membership.account.blocked_reason for membership in memberships]
        if reasons and all(reasons):
            clear_login(request)
            return render(request, "account/account_disabled.html", {"reasons": reasons}, status=403)
        return super().pre_login(request, user, **kwargs)
