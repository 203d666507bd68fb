"""Settings, all from the environment (django-environ).

With nothing configured Vigil runs on embedded defaults: SQLite next to the
code and Celery tasks run in-process, so the quick start needs no services.
Production sets DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY and
VIGIL_CREDENTIALS_KEY (see the README).
"""

import tempfile
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

SECRET_KEY = env.str("SECRET_KEY", default="vigil-insecure-development-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "scans",
    "advisories",
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "scanner_service.urls"
WSGI_APPLICATION = "scanner_service.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'vigil.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")

# Cache: rate-limit counters. Redis (CACHE_URL, else REDIS_URL) when configured; else this process's
# memory, which suits a single process only (each gunicorn worker would count on its own).
_CACHE_URL = env.str("CACHE_URL", default="") or env.str("REDIS_URL", default="")
CACHES = {
    "default": environ.Env.cache_url_config(
        _CACHE_URL, backend="django.core.cache.backends.redis.RedisCache" if _CACHE_URL.startswith("redis") else None
    )
    if _CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
CACHES["default"].setdefault("KEY_PREFIX", "vigil")

REST_FRAMEWORK = {
    # Vigil's API tokens (accounts), then, for compatibility, DRF's user tokens, the session (admin
    # UI, browsable API) and Basic. A token's role decides; other users are admin if staff, else viewer.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    # Viewers read, admins change; views that let other roles write say so (accounts/permissions.py).
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.ReadOrAdmin"],
    "DEFAULT_THROTTLE_RATES": {
        # Per registry (webhooks) and per API token (POST /api/v1/scans, /api/v1/sboms).
        "webhook": env.str("VIGIL_WEBHOOK_RATE", default="120/min"),
        "scan_submission": env.str("VIGIL_SCAN_SUBMISSION_RATE", default="30/min"),
    },
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Vigil API",
    "DESCRIPTION": "Container image inventories, scans and registry webhooks.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Several choice sets are called `state`: each gets its own name in the schema.
    "ENUM_NAME_OVERRIDES": {
        "FindingStateEnum": "scans.choices.FindingState",
        "DecisionStateEnum": "scans.choices.DecisionState",
        "ScanStateEnum": "scans.choices.ScanState",
    },
}

# Celery: without a broker, tasks run in-process (embedded defaults).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"scans.analyze_image": {"queue": "scans"}}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # scans are long; don't hoard them
CELERY_TASK_SOFT_TIME_LIMIT = env.int("VIGIL_SCAN_SOFT_TIME_LIMIT", default=1800)
CELERY_TASK_TIME_LIMIT = env.int("VIGIL_SCAN_TIME_LIMIT", default=1900)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A message a worker took but never acknowledged (it died) goes back to the queue after this
# long; longer than any countdown. The lease reaper usually steps in well before.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("VIGIL_BROKER_VISIBILITY_TIMEOUT", default=3600)}
# A pool child killed mid-task (out of memory) is not re-run from the broker: an image that
# kills workers would loop. The reaper re-queues it instead, a capped number of times.
CELERY_TASK_REJECT_ON_WORKER_LOST = False

# Vigil
# Fernet key (urlsafe base64, 32 bytes) that encrypts registry credentials at
# rest. Unset, a key is derived from SECRET_KEY, which suits development only.
VIGIL_CREDENTIALS_KEY = env.str("VIGIL_CREDENTIALS_KEY", default="")
VIGIL_WORK_DIR = env.path("VIGIL_WORK_DIR", default=Path(tempfile.gettempdir()) / "vigil-work")
VIGIL_SCAN_MAX_RETRIES = env.int("VIGIL_SCAN_MAX_RETRIES", default=5)
VIGIL_SCAN_RETRY_BACKOFF = env.int("VIGIL_SCAN_RETRY_BACKOFF", default=10)  # seconds, doubled per retry
VIGIL_SCAN_RETRY_BACKOFF_MAX = env.int("VIGIL_SCAN_RETRY_BACKOFF_MAX", default=600)
# Failure safety (README, "Production"). A running scan renews its lease every third of this;
# past it, the reaper (scans.reap_stale_jobs, every minute) queues the job again.
VIGIL_SCAN_LEASE_SECONDS = env.int("VIGIL_SCAN_LEASE_SECONDS", default=120)
# A queued job that no worker took by then has its message sent again.
VIGIL_SCAN_QUEUE_LEASE_SECONDS = env.int("VIGIL_SCAN_QUEUE_LEASE_SECONDS", default=3600)
# A job whose worker died more often than this fails for good (with a reason).
VIGIL_SCAN_MAX_LOST_WORKERS = env.int("VIGIL_SCAN_MAX_LOST_WORKERS", default=2)
# Per-size time limit: base + per GiB of compressed image, capped by VIGIL_SCAN_SOFT_TIME_LIMIT.
VIGIL_SCAN_TIME_BASE = env.int("VIGIL_SCAN_TIME_BASE", default=300)
VIGIL_SCAN_TIME_PER_GB = env.int("VIGIL_SCAN_TIME_PER_GB", default=300)
# Scans pulling from one registry at once (0: no limit); per registry name: "hub=2,quay=8".
VIGIL_REGISTRY_CONCURRENCY = env.int("VIGIL_REGISTRY_CONCURRENCY", default=4)
VIGIL_REGISTRY_CONCURRENCY_OVERRIDES = env.dict("VIGIL_REGISTRY_CONCURRENCY_OVERRIDES", cast={"value": int}, default={})
VIGIL_REGISTRY_BUSY_COUNTDOWN = env.int("VIGIL_REGISTRY_BUSY_COUNTDOWN", default=10)  # seconds before asking again
# Redis for the concurrency limit and the queue view: the broker's, unless set.
VIGIL_REDIS_URL = env.str("VIGIL_REDIS_URL", default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")
# Test hook: seconds a scan sleeps after analysing, before storing (tests/service/test_failure_safety.py).
VIGIL_TEST_SCAN_DELAY = env.float("VIGIL_TEST_SCAN_DELAY", default=0)
VIGIL_PLATFORM = env.str("VIGIL_PLATFORM", default="linux/amd64")
VIGIL_LIMITS = {
    "max_layer_bytes": env.int("VIGIL_MAX_LAYER_BYTES", default=16 << 30),
    "max_ratio": env.int("VIGIL_MAX_LAYER_RATIO", default=200),
    "max_entries": env.int("VIGIL_MAX_LAYER_ENTRIES", default=1_000_000),
    "max_file_bytes": env.int("VIGIL_MAX_FILE_BYTES", default=1 << 30),
}
# Sources the scheduled sync reads from their published URLs (every 6 hours by
# default; the schedule is a django-celery-beat PeriodicTask, editable in the admin).
VIGIL_ADVISORY_SOURCES = env.list(
    "VIGIL_ADVISORY_SOURCES",
    default=["osv", "alpine-secdb", "debian-tracker", "ubuntu", "redhat-csaf", "nvd", "kev", "epss"],
)
# OSV publishes one all.zip per ecosystem; these are synced when no --path is given.
VIGIL_OSV_ECOSYSTEMS = env.list(
    "VIGIL_OSV_ECOSYSTEMS",
    default=["PyPI", "npm", "Go", "Maven", "crates.io", "RubyGems", "NuGet", "Packagist", "Debian", "Alpine"],
)
VIGIL_MAX_BLOB_BYTES = env.int("VIGIL_MAX_BLOB_BYTES", default=8 << 30)
# A report says the advisory database is stale when its newest successful sync is older than this.
VIGIL_ADVISORY_MAX_AGE_HOURS = env.int("VIGIL_ADVISORY_MAX_AGE_HOURS", default=48)
# Largest webhook body accepted; Distribution batches a few events per request.
VIGIL_MAX_WEBHOOK_BYTES = env.int("VIGIL_MAX_WEBHOOK_BYTES", default=1 << 20)
# The key Harbor presents to the Scanner Adapter API (X-ScannerAdapter-API-Key or Bearer); unset, only Basic
# with a Vigil user's password is accepted.
VIGIL_HARBOR_ADAPTER_API_KEY = env.str("VIGIL_HARBOR_ADAPTER_API_KEY", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
