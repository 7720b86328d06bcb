"""Settings for the test suite; DATABASE_URL still comes from the environment (SQLite or PostgreSQL)."""

from config.env import flag, integer
from config.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
API_RATE_LIMIT = ""  # off, except in the tests of the limit itself
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Unit tests run tasks inline; the integration tests switch this off and run real workers (tests/workers).
CELERY_TASK_ALWAYS_EAGER = flag("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
FIT_DEBOUNCE_SECONDS = integer("FIT_DEBOUNCE_SECONDS", default=0)  # eager tasks cannot wait
FIT_BOOTSTRAP_DRAWS = integer("FIT_BOOTSTRAP_DRAWS", default=20)
FIT_CHUNK_SIZE = integer("FIT_CHUNK_SIZE", default=10, minimum=1)
# Eager fits run inside the test's own transaction, where a heartbeat thread's second connection would wait on its
# locks; real workers (tests/workers, CELERY_TASK_ALWAYS_EAGER=false) keep the heartbeat on.
FIT_HEARTBEAT_SECONDS = integer("FIT_HEARTBEAT_SECONDS", default=0 if CELERY_TASK_ALWAYS_EAGER else 10, minimum=0)
# Each test sees the broker as it is at that moment; the tests of the back-off set it themselves.
BROKER_RETRY_SECONDS = 0.0
