"""Issue and due dates, billing-profile snapshots on invoices (issue 12 item 7)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0013_resale_rates")]

    operations: list[migrations.operations.base.Operation] = []
