"""What notifications keeps: each paying account's low-balance threshold (and whether its balance is
below it now, so a crossing is acted on once), and each person's alert choices per account."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from accounts.models import Account
from notifications.alerts import Alert


class LowBalanceThreshold(models.Model):
    """An alert when the account's balance falls below `amount` (USD). `below` is the crossing's
    state: set once when a debit takes the balance below, cleared when a credit brings it back (or
    the threshold moves under it); the banner shows while it is set."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="low_balance_threshold")
    amount = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0.00"))
    currency = models.CharField(max_length=3, default="USD")
    enabled = models.BooleanField(default=False)
    below = models.BooleanField(default=False)
    below_since = models.DateTimeField(null=True, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"Low balance below USD {self.amount:,.2f} ({state}) of {self.account_id}"


class AlertChoice(models.Model):
    """One person's choice for one alert in one account: by e-mail or not, about the account itself
    and (a manager's people) about its managed accounts. No row: the role's default
    (notifications.alerts.DEFAULTS)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_choices")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="alert_choices")
    alert = models.CharField(max_length=32, choices=[(a.value, a.value) for a in Alert])
    email = models.BooleanField()
    managed_email = models.BooleanField(default=False, help_text="Also about the manager's managed accounts")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "account", "alert"], name="alert_choice_one_per_alert"),
        ]

    def __str__(self) -> str:
        return f"{self.alert} for {self.user_id} in {self.account_id}"
