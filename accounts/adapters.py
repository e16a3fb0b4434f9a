from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.stagekit import clear_login
from django.shortcuts import render

from accounts.models import Account


class AccountAdapter(DefaultAccountAdapter):
    def pre_login(self, request, user, **kwargs):
        """Refuse sign-in to people whose every account is disabled or cancelled."""
        statuses = set(user.memberships.values_list("account__status", flat=True))
        if statuses and Account.Status.ENABLED not in statuses:
            clear_login(request)
            return render(request, "account/account_disabled.html", status=403)
        return super().pre_login(request, user, **kwargs)
