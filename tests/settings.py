"""Settings for the test suite: the real PostgreSQL and Redis of this machine.

Override with TEST_DATABASE_URL / TEST_BROKER_URL. A developer's .env is
never read.
"""

import os
import tempfile

os.environ["DATABASE_URL"] = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
# Redis database 15 is the suite's own; it is flushed at the start of a run.
os.environ["CELERY_BROKER_URL"] = os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("VIGIL_WORK_DIR", os.path.join(tempfile.gettempdir(), "vigil-test-work"))

from scanner_service.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users

# Rate limits count in this process's memory, never in a developer's Redis. The rates are production's
# only in tests/service/test_auth.py (which sets low ones); elsewhere hypothesis posts hundreds of webhooks
# a minute to one registry, which production would rightly refuse.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {scope: "100000/min" for scope in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]},  # noqa: F405
}
