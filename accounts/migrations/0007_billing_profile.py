"""Billing profile of an account (issue 12 item 7)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_onboarding_upload")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.CreateModel(
            name="BillingProfile",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("legal_name", models.CharField(blank=True, max_length=255)),
                ("address_line1", models.CharField(blank=True, max_length=255, verbose_name="address")),
                ("address_line2", models.CharField(blank=True, max_length=255, verbose_name="address (line 2)")),
                ("city", models.CharField(blank=True, max_length=128)),
                ("postal_code", models.CharField(blank=True, max_length=32)),
                ("region", models.CharField(blank=True, max_length=128, verbose_name="region or state")),
                (
                    "country",
                    models.CharField(blank=True, help_text="ISO 3166 two-letter code, e.g. DE", max_length=2),
                ),
                ("tax_id", models.CharField(blank=True, max_length=64, verbose_name="tax id")),
                ("invoice_emails", models.JSONField(blank=True, default=list, help_text="Where invoices are e-mailed")),
                (
                    "payment_terms_days",
                    models.PositiveSmallIntegerField(
                        default=14, help_text="On the invoices this account issues: days until due"
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "account",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="billing_profile",
                        to="accounts.account",
                    ),
                ),
                (
                    "updated_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("payment_terms_days__lte", 365)), name="billing_profile_terms_in_range"
                    )
                ],
            },
        ),
    ]
