"""Settings for the test suite; DATABASE_URL still comes from the environment (SQLite or PostgreSQL)."""

from config.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
FIT_DEBOUNCE_SECONDS = 0  # eager tasks cannot wait; the debounce itself is tested on the service
FIT_BOOTSTRAP_DRAWS = 20
FIT_CHUNK_SIZE = 10
