from datetime import UTC, datetime
from decimal import Decimal

from django.db import migrations

# The platform's catalogue and list prices (USD), effective from the platform's first day.
CATALOGUE = [
    ("voice.outbound", "Outbound voice", "minute", "0.010000"),
    ("voice.inbound", "Inbound voice", "minute", "0.003500"),
    ("voice.tollfree.inbound", "Toll-free inbound voice", "minute", "0.020000"),
    ("sms.outbound", "Outbound SMS", "message", "0.004000"),
    ("sms.inbound", "Inbound SMS", "message", "0.001000"),
    ("mms.outbound", "Outbound MMS", "message", "0.015000"),
    ("mms.inbound", "Inbound MMS", "message", "0.005000"),
    ("number.local", "Local number", "number-month", "1.000000"),
    ("number.tollfree", "Toll-free number", "number-month", "2.000000"),
    ("fax.outbound", "Outbound fax", "page", "0.007000"),
]
SINCE = datetime(2020, 1, 1, tzinfo=UTC)


def load(apps, schema_editor):
    Product = apps.get_model("billing", "Product")
    Rate = apps.get_model("billing", "Rate")
    for sku, name, unit, price in CATALOGUE:
        product, _ = Product.objects.get_or_create(sku=sku, defaults={"name": name, "unit": unit})
        Rate.objects.get_or_create(
            product=product, account=None, effective_from=SINCE, defaults={"unit_price": Decimal(price)}
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
