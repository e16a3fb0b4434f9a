"""Encrypts the MFA secrets stored before accounts.mfa.MFAAdapter did (TOTP secrets, recovery-code
seeds and migrated codes), with settings.MFA_ENCRYPTION_KEYS. Safe to run again: it skips what is
encrypted already. Backwards, it writes them in plain text again (for a rollback of the adapter)."""

from django.db import migrations

from accounts.mfa import decrypt_secret, encrypt_secret, is_encrypted


def _encrypt(value):
    return value if is_encrypted(value) else encrypt_secret(value)


def _decrypt(value):
    return decrypt_secret(value)


def _rewrite(apps, convert):
    Authenticator = apps.get_model("mfa", "Authenticator")
    for authenticator in Authenticator.objects.filter(type__in=["totp", "recovery_codes"]).iterator():
        data = dict(authenticator.data)
        for field in ("secret", "seed"):
            if isinstance(data.get(field), str):
                data[field] = convert(data[field])
        if isinstance(data.get("migrated_codes"), list):
            data["migrated_codes"] = [convert(code) for code in data["migrated_codes"]]
        if data != authenticator.data:
            Authenticator.objects.filter(pk=authenticator.pk).update(data=data)


def encrypt_secrets(apps, schema_editor):
    _rewrite(apps, _encrypt)


def decrypt_secrets(apps, schema_editor):
    _rewrite(apps, _decrypt)


class Migration(migrations.Migration):
    dependencies = [("mfa", "0003_authenticator_type_uniq")]

    operations = [migrations.RunPython(encrypt_secrets, decrypt_secrets)]
