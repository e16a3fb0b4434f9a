"""Settings for Mission Control, read from the environment.

With no environment at all the portal runs on embedded defaults (SQLite, a file-system Celery
broker, console e-mail). MC_ENV=production switches every secure default on and requires the
secrets and addresses that production needs.
"""

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from portal.env import env_bool, env_choice, env_decimal, env_fernet_keys, env_int, env_list, env_str, env_url

# ModelAdmin[Account], ModelForm[Account] and the like, written for the type checker, work at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MC_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded SQLite file and file-system broker live here

MC_ENV = env_choice("MC_ENV", "development", ("development", "test", "production"))
PRODUCTION = MC_ENV == "production"

DEBUG = env_bool("DEBUG", MC_ENV == "development")
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when MC_ENV=production.")

SECRET_KEY = env_str("SECRET_KEY", required=PRODUCTION) or "dev-only-insecure-key-do-not-use-in-production"
if PRODUCTION and len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters long in production.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set in production.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Where people reach the portal: every link that leaves a request (e-mails, PDFs) starts with it.
SITE_URL = env_url("SITE_URL", "http://127.0.0.1:8000", required=PRODUCTION)
if PRODUCTION and not SITE_URL.startswith("https://"):
    raise ImproperlyConfigured("SITE_URL must be an https:// URL in production.")
SITE_NAME = "Mission Control"

INSTALLED_APPS = [
    "portal.admin_config.StaffAdminConfig",  # django.contrib.admin, with a site where staff need MFA
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "hijack",
    "django_tables2",
    "django_filters",
    "portal",
    "accounts",
    "billing",
    "reporting",
    "controls",
    "webhooks",
    "notifications",
]

MIDDLEWARE = [
    "portal.request_id.RequestIdMiddleware",  # outermost: every answer and log line carries the id
    "portal.api_middleware.ApiErrorsMiddleware",  # /v2/: Django's own error pages become the API's JSON
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.security.SecurityHeadersMiddleware",  # CSP and no-store: every response but static files
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "hijack.middleware.HijackUserMiddleware",
    "accounts.middleware.ActingMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.portal",
                "portal.navigation.navigation",  # the sidebar: current-page mark, account switcher
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
_database_url = env_str("DATABASE_URL", required=PRODUCTION) or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
try:
    DATABASES = {
        "default": dj_database_url.parse(_database_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0))
    }
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if PRODUCTION and DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Production runs on PostgreSQL: DATABASE_URL must be postgres://...")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take SQLite's write lock at BEGIN, so two requests that read-then-write
    # (the managed-account limit) queue instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if MC_ENV == "test":
    # Fast hashing keeps the suite quick; production keeps Django's default PBKDF2.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- django-allauth ----------------------------------------------------------------------------
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_SIGNUP_FORM_CLASS = "accounts.forms.SignupForm"
# Enumeration prevention (allauth 65: ACCOUNT_PREVENT_ENUMERATION, read in
# allauth.account.internal.flows.manage_email.assess_unique_email). Only with mandatory verification
# can allauth answer a sign-up for a registered address exactly as for a new one ("we sent you a
# verification e-mail") and e-mail that address's owner instead; with "optional" it must say
# "already registered". "strict" would create a second, unverified user with the same address,
# which our unique User.email refuses. So verification is mandatory, not a setting.
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = None
# allauth's default limits (sign-in, failed sign-ins per address and per e-mail, password reset,
# the MFA code step...), counted in the shared cache; tests that need them turn them on.
ACCOUNT_RATE_LIMITS: bool | dict[str, str] = False if MC_ENV == "test" else {}
MFA_ADAPTER = "accounts.mfa.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Mission Control"
# TOTP secrets and recovery-code seeds are stored Fernet-encrypted with these keys (accounts/mfa.py).
_DEV_MFA_KEY = "bWlzc2lvbi1jb250cm9sLWRldi1vbmx5LW1mYS1rZXk="  # base64 of "mission-control-dev-only-mfa-key"
MFA_ENCRYPTION_KEYS = env_fernet_keys("MFA_ENCRYPTION_KEY", [_DEV_MFA_KEY], required=PRODUCTION)
if PRODUCTION and _DEV_MFA_KEY in MFA_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("MFA_ENCRYPTION_KEY must be a key of your own in production, not the development key.")
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"

# --- Log in as a managed account (django-hijack) ---------------------------------------------
HIJACK_INSERT_BEFORE = None  # our own banner is part of the base template
HIJACK_PERMISSION_CHECK = "accounts.permissions.hijack_permission_check"
ACTING_MAX_MINUTES = env_int("ACTING_MAX_MINUTES", 30, minimum=1)

# --- Cache (the API's rate limit) -----------------------------------------------------------------
# Shared between processes in production (Redis), so that every gunicorn worker counts the same key.
_cache_url = env_str("CACHE_URL", required=PRODUCTION)
if _cache_url and not _cache_url.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured("CACHE_URL must be a redis:// URL.")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}
    if _cache_url
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 1200, minimum=1)
# Failed key authentications a minute per client address (REMOTE_ADDR; IPv6 by /64) before the API
# answers 429 without looking keys up. Behind a proxy, the proxy must set REMOTE_ADDR to the client's.
API_AUTH_FAILURES_PER_MINUTE = env_int("API_AUTH_FAILURES_PER_MINUTE", 30, minimum=1)
# A full usage batch (10,000 records with UUID keys and account ids) is about 3 MB of JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 8 * 1024 * 1024, minimum=1024 * 1024)

# --- Accounts ---------------------------------------------------------------------------------
MANAGED_ACCOUNT_LIMIT_DEFAULT = env_int("MANAGED_ACCOUNT_LIMIT_DEFAULT", 3000, minimum=0)
INVITATION_MAX_AGE_DAYS = env_int("INVITATION_MAX_AGE_DAYS", 7, minimum=1)

# --- Billing -------------------------------------------------------------------------------------
BILLING_MAX_TRANSFER = env_decimal("BILLING_MAX_TRANSFER", "100000.00", minimum="0.01")
BILLING_MAX_TOP_UP = env_decimal("BILLING_MAX_TOP_UP", "10000.00", minimum="0.01")
BILLING_AUTO_RECHARGE_MAX_PER_DAY = env_int("BILLING_AUTO_RECHARGE_MAX_PER_DAY", 3, minimum=0)
# The monthly close invoices parties without roll-up accounts in batches of this many per task.
CLOSE_BATCH_SIZE = env_int("CLOSE_BATCH_SIZE", 100, minimum=1)

# --- Stripe (payment methods, top-ups, auto-recharge) ---------------------------------------------
# Development and tests talk to localstripe on loopback (`./dev run` starts it; the tests start
# their own on a free port); production talks to Stripe itself, with real keys, by settings alone.
_LOCALSTRIPE = "http://127.0.0.1:8420"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")


STRIPE_API_BASE = (env_str("STRIPE_API_BASE", "" if PRODUCTION else _LOCALSTRIPE) or "").rstrip("/")
if STRIPE_API_BASE and not STRIPE_API_BASE.startswith(("http://", "https://")):
    raise ImproperlyConfigured("STRIPE_API_BASE must be an http(s):// URL, or empty for Stripe itself.")
if PRODUCTION and STRIPE_API_BASE and _is_loopback(STRIPE_API_BASE):
    raise ImproperlyConfigured("STRIPE_API_BASE points at a loopback (localstripe) API; production uses Stripe.")
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", required=PRODUCTION) or "sk_test_localstripe"
STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY", required=PRODUCTION) or "pk_test_localstripe"
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", required=PRODUCTION) or "whsec_localstripe_development"
if PRODUCTION and (
    not STRIPE_SECRET_KEY.startswith(("sk_live_", "sk_test_", "rk_live_", "rk_test_"))
    or not STRIPE_PUBLISHABLE_KEY.startswith(("pk_live_", "pk_test_"))
    or not STRIPE_WEBHOOK_SECRET.startswith("whsec_")
    or "localstripe" in STRIPE_SECRET_KEY + STRIPE_PUBLISHABLE_KEY + STRIPE_WEBHOOK_SECRET
):
    raise ImproperlyConfigured(
        "Production needs real Stripe keys: STRIPE_SECRET_KEY (sk_...), STRIPE_PUBLISHABLE_KEY (pk_...) "
        "and STRIPE_WEBHOOK_SECRET (whsec_...)."
    )
# Stripe.js: Stripe's own script in production (it must come from Stripe, PCI DSS); localstripe
# serves its stand-in under the API base. Never a copy in this repository or a CDN.
STRIPE_JS_URL = env_str("STRIPE_JS_URL", "") or (
    f"{STRIPE_API_BASE}/js.stripe.com/v3/" if STRIPE_API_BASE else "https://js.stripe.com/v3/"
)

# --- Sessions and security ----------------------------------------------------------------------
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 12, minimum=300)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Content-Security-Policy and caching (portal.security) -------------------------------------------
# portal.security.build_content_security_policy() builds the one policy from the Stripe settings
# above: scripts, styles and everything else from this site only, plus Stripe.js's origin (script,
# frames) and the Stripe API's (requests). Enforced, never report-only; no setting loosens it.
# portal.security.SecurityHeadersMiddleware also marks every signed-in answer Cache-Control: no-store.
if not STRIPE_JS_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured("STRIPE_JS_URL must be an http(s):// URL.")
if PRODUCTION and not STRIPE_JS_URL.startswith("https://"):
    raise ImproperlyConfigured("STRIPE_JS_URL must be an https:// URL in production (it is a script source).")
# --- end of Content-Security-Policy and caching -------------------------------------------------------

# --- E-mail -----------------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Mission Control <no-reply@mission-control.localhost>")

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", required=PRODUCTION) or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    # A broker that needs no server: queues are folders, shared by the web process and the worker.
    _queue_dir = str(VAR_DIR / "celery-broker")
    Path(_queue_dir).mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, str | int] = {
        "data_folder_in": _queue_dir,
        "data_folder_out": _queue_dir,
        "control_folder": str(VAR_DIR / "celery-control"),
    }
else:
    # With acks_late, a task whose worker died is handed out again after this many seconds (Redis's
    # default is an hour). Every task here is idempotent and takes seconds, so a quarter of an hour.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 900, minimum=60)}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", MC_ENV == "test")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Internationalisation, static files -----------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# No front-end library: charts are SVG drawn on the server (reporting/charts.py). A library, if one
# is ever needed, arrives as a Python package installed by the set-up command, never from a CDN.
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

if not PRODUCTION:
    # Serve files straight from the finders; production serves the collected, hashed copies.
    WHITENOISE_USE_FINDERS = True
    WHITENOISE_AUTOREFRESH = True
    STATIC_ROOT.mkdir(exist_ok=True)

DJANGO_TABLES2_TEMPLATE = "django_tables2/table.html"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every line names the request it was written for (portal.request_id; "-" outside a request),
    # the id the answer carried as X-Request-Id.
    "filters": {"request_id": {"()": "portal.request_id.RequestIdFilter"}},
    "formatters": {"default": {"format": "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["request_id"], "formatter": "default"}},
    "root": {"handlers": ["console"], "level": env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))},
    # stripe-python logs every request at INFO; its errors reach us as exceptions anyway.
    "loggers": {"stripe": {"level": "WARNING"}},
}
