"""Credit notes against finalized invoices (issue 12 item 6)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0011_credit_transfers")]

    operations: list[migrations.operations.base.Operation] = []
