"""Billing profile of an account (issue 12 item 7)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_onboarding_upload")]

    operations: list[migrations.operations.base.Operation] = []
