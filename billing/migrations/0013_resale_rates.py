"""Per-product resale rates of a manager (issue 12 item 9)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0012_credit_notes")]

    operations: list[migrations.operations.base.Operation] = []
