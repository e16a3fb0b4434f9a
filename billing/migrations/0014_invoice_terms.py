"""Issue and due dates, billing-profile snapshots on invoices (issue 12 item 7).

Invoices finalized before this migration get an issue date (the UTC day they were finalized) and
a due date 14 days later, the default payment terms, so every issued invoice has a status a
customer understands. Their profile snapshots stay empty: the pages then show the names the
invoice always showed (the account's name and e-mail), never today's profile as if it had been
on the invoice."""

from datetime import UTC, timedelta

from django.db import migrations, models

DEFAULT_TERMS = timedelta(days=14)


def derive_dates(apps, schema_editor):  # type: ignore[no-untyped-def]
    invoice_model = apps.get_model("billing", "Invoice")
    pending = invoice_model.objects.filter(finalized_at__isnull=False, issue_date__isnull=True).only("finalized_at")
    batch = []
    for invoice in pending.iterator(chunk_size=2000):
        invoice.issue_date = invoice.finalized_at.astimezone(UTC).date()
        invoice.due_date = invoice.issue_date + DEFAULT_TERMS
        batch.append(invoice)
        if len(batch) >= 2000:
            invoice_model.objects.bulk_update(batch, ["issue_date", "due_date"])
            batch = []
    if batch:
        invoice_model.objects.bulk_update(batch, ["issue_date", "due_date"])


class Migration(migrations.Migration):
    dependencies = [("billing", "0013_resale_rates")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="invoice",
            name="bill_to_details",
            field=models.JSONField(blank=True, default=dict, help_text="The bill-to's billing profile, as issued"),
        ),
        migrations.AddField(
            model_name="invoice",
            name="due_date",
            field=models.DateField(blank=True, help_text="The issue date plus the issuer's payment terms", null=True),
        ),
        migrations.AddField(
            model_name="invoice",
            name="emailed_at",
            field=models.DateTimeField(blank=True, help_text="When it was e-mailed to the bill-to", null=True),
        ),
        migrations.AddField(
            model_name="invoice",
            name="issue_date",
            field=models.DateField(blank=True, help_text="The UTC day it was finalized", null=True),
        ),
        migrations.AddField(
            model_name="invoice",
            name="issuer_details",
            field=models.JSONField(blank=True, default=dict, help_text="The issuer's billing profile, as issued"),
        ),
        migrations.RunPython(derive_dates, migrations.RunPython.noop, elidable=True),
    ]
