"""Issue 13 items 1-2 (engineer mc_h): the service block controls sets on an account (spend limit,
credit exhausted), and until when, so that accounts can tell without importing controls."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_user_public_id_and_audit_resource_label"),
    ]

    operations = [
        migrations.AddField(
            model_name="account",
            name="service_blocked_reason",
            field=models.CharField(
                blank=True,
                choices=[("spend_limit", "Spend limit reached"), ("credit_exhausted", "Credit exhausted")],
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="account",
            name="service_blocked_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
