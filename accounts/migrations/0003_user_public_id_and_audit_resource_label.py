"""Issue 15 item 4 and issue 14 item 5 (engineer mc_b): users get a public UUID (the v2 API's audit
`user_id`, as Telnyx gives it), and audit events keep what people call their resource."""

import uuid

from django.db import migrations, models


def give_users_public_ids(apps, schema_editor):
    # One UUID per existing user: AddField's callable default would give every row the same one.
    User = apps.get_model("accounts", "User")
    users = list(User.objects.only("pk"))
    for user in users:
        user.public_id = uuid.uuid4()
    User.objects.bulk_update(users, ["public_id"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_api_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="resource_label",
            field=models.CharField(blank=True, default="", max_length=255),
        ),
        migrations.AddField(
            model_name="user",
            name="public_id",
            field=models.UUIDField(null=True, editable=False),
        ),
        migrations.RunPython(give_users_public_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="user",
            name="public_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
