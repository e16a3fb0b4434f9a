"""Settings come from the environment, strictly: a malformed value stops start-up with a clear message."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "MC_ENV": "production",
    "SECRET_KEY": "p" * 30 + "-production-secret-key-long-enough-1234567890",
    "DATABASE_URL": "postgres://mc:secret@db.internal:5432/mission_control",
    "CELERY_BROKER_URL": "redis://cache.internal:6379/0",
    "ALLOWED_HOSTS": "portal.example.com",
    "SITE_URL": "https://portal.example.com",
    "CACHE_URL": "redis://cache.internal:6379/1",
    "STRIPE_SECRET_KEY": "sk_live_" + "x" * 24,
    "STRIPE_PUBLISHABLE_KEY": "pk_live_" + "x" * 24,
    "STRIPE_WEBHOOK_SECRET": "whsec_" + "x" * 32,
    "MFA_ENCRYPTION_KEY": "cHJvZHVjdGlvbi10ZXN0LW1mYS1rZXktMzItYnl0ZXM=",  # Fernet key: 32 bytes, url-safe base64
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"MC_ENV", "DATABASE_URL", "CELERY_BROKER_URL"} and not k.startswith("STRIPE_")
    }
    clean.update(env, DJANGO_SETTINGS_MODULE="portal.settings", MC_VAR_DIR=str(ROOT / "var"))
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def test_the_production_profile_passes_check_deploy_with_no_warning():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"SESSION_COOKIE_AGE": "ten"}, "SESSION_COOKIE_AGE='ten' is not a whole number"),
        ({"MANAGED_ACCOUNT_LIMIT_DEFAULT": "-1"}, "MANAGED_ACCOUNT_LIMIT_DEFAULT=-1 must be at least 0"),
        ({"MC_ENV": "staging"}, "MC_ENV='staging' must be one of"),
        ({"DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL is not a valid database URL"),
        ({**PRODUCTION_ENV, "SECRET_KEY": "short"}, "SECRET_KEY must be at least 50 characters"),
        ({**PRODUCTION_ENV, "DEBUG": "true"}, "DEBUG must be off"),
        ({**PRODUCTION_ENV, "DATABASE_URL": ""}, "DATABASE_URL must be set"),
        ({**PRODUCTION_ENV, "DATABASE_URL": "sqlite:///x.db"}, "Production runs on PostgreSQL"),
        ({"BILLING_AUTO_RECHARGE_MAX_PER_DAY": "many"}, "BILLING_AUTO_RECHARGE_MAX_PER_DAY='many' is not a whole"),
        ({"BILLING_AUTO_RECHARGE_MAX_PER_DAY": "-1"}, "BILLING_AUTO_RECHARGE_MAX_PER_DAY=-1 must be at least 0"),
        ({"STRIPE_API_BASE": "127.0.0.1:8420"}, "STRIPE_API_BASE must be an http(s):// URL"),
        (
            {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0", "CELERY_VISIBILITY_TIMEOUT": "5"},
            "CELERY_VISIBILITY_TIMEOUT=5 must be at least 60",
        ),
        ({**PRODUCTION_ENV, "STRIPE_SECRET_KEY": ""}, "STRIPE_SECRET_KEY must be set"),
        ({**PRODUCTION_ENV, "STRIPE_PUBLISHABLE_KEY": ""}, "STRIPE_PUBLISHABLE_KEY must be set"),
        ({**PRODUCTION_ENV, "STRIPE_WEBHOOK_SECRET": ""}, "STRIPE_WEBHOOK_SECRET must be set"),
        ({**PRODUCTION_ENV, "STRIPE_SECRET_KEY": "sk_test_localstripe"}, "Production needs real Stripe keys"),
        ({**PRODUCTION_ENV, "STRIPE_PUBLISHABLE_KEY": "not-a-key"}, "Production needs real Stripe keys"),
        ({**PRODUCTION_ENV, "STRIPE_API_BASE": "http://127.0.0.1:8420"}, "production uses Stripe"),
        ({**PRODUCTION_ENV, "STRIPE_API_BASE": "http://localhost:8420"}, "production uses Stripe"),
        ({**PRODUCTION_ENV, "MFA_ENCRYPTION_KEY": ""}, "MFA_ENCRYPTION_KEY must be set"),
        (
            {**PRODUCTION_ENV, "MFA_ENCRYPTION_KEY": "bWlzc2lvbi1jb250cm9sLWRldi1vbmx5LW1mYS1rZXk="},
            "MFA_ENCRYPTION_KEY must be a key of your own in production",
        ),
        ({"MFA_ENCRYPTION_KEY": "not-a-fernet-key"}, "MFA_ENCRYPTION_KEY must be Fernet keys"),
        ({"MFA_ENCRYPTION_KEY": "cHJvZHVjdGlvbi10ZXN0LW1mYS1rZXk="}, "MFA_ENCRYPTION_KEY must be Fernet keys"),
        ({"API_AUTH_FAILURES_PER_MINUTE": "0"}, "API_AUTH_FAILURES_PER_MINUTE=0 must be at least 1"),
        ({**PRODUCTION_ENV, "SITE_URL": ""}, "SITE_URL must be set"),
        ({"SITE_URL": "portal.example.com"}, "SITE_URL='portal.example.com' must look like https://"),
        ({"SITE_URL": "https://portal.example.com/app"}, "must look like https://portal.example.com"),
        ({**PRODUCTION_ENV, "SITE_URL": "http://portal.example.com"}, "SITE_URL must be an https:// URL in production"),
    ],
)
def test_a_bad_value_stops_start_up_with_a_clear_message(env, message):
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_embedded_defaults_need_no_environment():
    result = _manage("check", env={})
    assert result.returncode == 0, result.stderr


def _setting(name: str, env: dict[str, str]) -> str:
    code = f"import django; django.setup(); from django.conf import settings; print(settings.{name})"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MC_ENV", "STRIPE_", "DATABASE_URL"))}
    clean.update(env, DJANGO_SETTINGS_MODULE="portal.settings", MC_VAR_DIR=str(ROOT / "var"))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_development_talks_to_localstripe_on_loopback_and_production_to_stripe():
    assert _setting("STRIPE_API_BASE", {}) == "http://127.0.0.1:8420"
    assert _setting("STRIPE_JS_URL", {}) == "http://127.0.0.1:8420/js.stripe.com/v3/"
    assert _setting("BILLING_AUTO_RECHARGE_MAX_PER_DAY", {}) == "3"
    assert _setting("STRIPE_API_BASE", PRODUCTION_ENV) == ""
    assert _setting("STRIPE_JS_URL", PRODUCTION_ENV) == "https://js.stripe.com/v3/"


def test_a_task_lost_with_its_worker_is_handed_out_again_after_the_visibility_timeout():
    redis = {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}
    assert _setting("CELERY_BROKER_TRANSPORT_OPTIONS", redis) == "{'visibility_timeout': 900}"
    assert _setting("CELERY_BROKER_TRANSPORT_OPTIONS", {**redis, "CELERY_VISIBILITY_TIMEOUT": "120"}) == (
        "{'visibility_timeout': 120}"
    )


def test_beat_closes_the_month_on_the_1st_and_sweeps_it_hourly_after():
    from portal.celery import app

    schedule = app.conf.beat_schedule
    first, sweep = schedule["close-previous-month"], schedule["close-previous-month-sweep"]
    assert first["task"] == sweep["task"] == "billing.tasks.close_previous_month"
    assert first["schedule"].day_of_month == sweep["schedule"].day_of_month == {1}
    assert first["schedule"].hour == {0} and sweep["schedule"].hour == set(range(1, 24))


def test_production_refuses_to_start_without_the_mfa_encryption_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "MFA_ENCRYPTION_KEY"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "MFA_ENCRYPTION_KEY must be set" in result.stderr


def test_the_mfa_encryption_key_may_list_an_old_key_for_rotation():
    keys = f"{PRODUCTION_ENV['MFA_ENCRYPTION_KEY']}, bWlzc2lvbi1jb250cm9sLWRldi1vbmx5LW1mYS1rZXk="
    assert _setting("MFA_ENCRYPTION_KEYS", {"MFA_ENCRYPTION_KEY": keys}) == (
        "['cHJvZHVjdGlvbi10ZXN0LW1mYS1rZXktMzItYnl0ZXM=', 'bWlzc2lvbi1jb250cm9sLWRldi1vbmx5LW1mYS1rZXk=']"
    )
