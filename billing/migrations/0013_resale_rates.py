"""Per-product resale rates of a manager (issue 12 item 9)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0012_credit_notes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ResaleRate",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("unit_price", models.DecimalField(blank=True, decimal_places=6, max_digits=14, null=True)),
                ("effective_from", models.DateField(help_text="First day of the UTC month it applies from.")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "manager",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="resale_rates",
                        to="accounts.account",
                    ),
                ),
                (
                    "product",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="+", to="billing.product"
                    ),
                ),
            ],
            options={
                "ordering": ["manager_id", "product_id", "effective_from"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("manager", "product", "effective_from"), name="resale_rate_one_per_product_month"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("effective_from__day", 1)), name="resale_rate_from_first_day"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("unit_price__isnull", True), ("unit_price__gte", 0), _connector="OR"),
                        name="resale_rate_not_negative",
                    ),
                ],
            },
        ),
    ]
