"""Settings shared by every environment; local, test and production override a handful of values."""

from pathlib import Path
from typing import Any

import django_stubs_ext

from config.env import env, flag, integer, string, string_list

django_stubs_ext.monkeypatch()  # lets admin and DRF classes be subscripted for the type checker

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# GENERAL ---------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#core-settings
DEBUG = flag("DJANGO_DEBUG", default=False)
SECRET_KEY = string("DJANGO_SECRET_KEY", default="insecure-local-development-key-do-not-use-in-production")
ALLOWED_HOSTS = string_list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
TIME_ZONE = "UTC"
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = False
ROOT_URLCONF = "config.urls"
# Where people reach this server; used in what commands print (load_demo). `make run` passes PORT.
SITE_URL = string("SITE_URL", default=f"http://localhost:{integer('PORT', default=8000, minimum=1)}")
WSGI_APPLICATION = "config.wsgi.application"

# APPS ------------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#installed-apps
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally: the docs page works offline
    "runs",
    "planner",
    "workers",
    "mlflow_compat",
]

MIDDLEWARE = [
    "config.middleware.RequestSizeLimitMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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

# DATABASES -------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#databases
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = integer("DJANGO_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web server and a worker share the file without "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# STATIC FILES ----------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/howto/static-files/
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# AUTH ------------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#auth-password-validators
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# UPLOADS ---------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#data-upload-max-memory-size
# The contract answers 413 above 5 MB (config.middleware); Django's own limit sits just above it.
REQUEST_BODY_MAX_BYTES = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES + 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000

# REST FRAMEWORK --------------------------------------------------------------------------
# https://www.django-rest-framework.org/api-guide/settings/
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["runs.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "runs.api.pagination.StableOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "runs.api.pagination.CreatedCursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_PARSER_CLASSES": ["runs.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "runs.api.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["runs.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "runs.api.schema.BitscaleAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ]

# Requests per API key, e.g. "1200/min" (DRF's rate syntax); empty turns the limit off.
API_RATE_LIMIT = string("API_RATE_LIMIT", default="1200/min")

# CACHES ----------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#caches
# Rate-limit counters live here: per process by default; CACHE_URL=redis://host:6379/1 shares them.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

SPECTACULAR_SETTINGS = {
    "TITLE": "Bitscale API",
    "DESCRIPTION": "Track training runs, fit precision-aware scaling laws, plan the next model.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "runs.models.Run.Status",
        "FitStatusEnum": "planner.models.Fit.Status",
    },
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# CELERY ----------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 12 * 60
CELERY_BROKER_URL = string("CELERY_BROKER_URL", default="filesystem://")  # embedded: no server needed
if CELERY_BROKER_URL == "filesystem://":
    _queue_dir = str(BASE_DIR / "var" / "broker")  # created on demand (config.health, make run)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        "data_folder_in": _queue_dir,
        "data_folder_out": _queue_dir,
        "control_folder": str(BASE_DIR / "var" / "broker" / "control"),
        "polling_interval": 0.1,  # the folder is polled: 1 s (the default) would add seconds to every fit
    }
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False  # inspect/ping are not needed on a laptop
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Must exceed the task time limit, or Redis hands an unacknowledged fit to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 2 * CELERY_TASK_TIME_LIMIT,
        "socket_connect_timeout": 2,  # a post while Redis is down fails over to the sweep in seconds
        "socket_timeout": 10,
    }
CELERY_TASK_ACKS_LATE = True  # tasks are idempotent, so a redelivery after a crash is safe
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # a worker killed mid-task puts the message back
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # fits are long; a worker takes one message at a time
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # nobody waits on results: fits are rows, and chunks count themselves
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2  # a web request that publishes must not hang on a dead broker
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_BEAT_SCHEDULE = {
    "sweep-fits": {
        "task": "workers.sweep_fits",
        "schedule": float(integer("FIT_SWEEP_INTERVAL_SECONDS", default=60, minimum=1)),
        "options": {"expires": 50},  # a late sweep is dropped, not doubled
    },
}

# FITS ------------------------------------------------------------------------------------
# docs/fitting-pipeline.md: debounce, bootstrap chunks, recovery.
FIT_DEBOUNCE_SECONDS = integer("FIT_DEBOUNCE_SECONDS", default=5)  # a refit waits until changes pause this long
FIT_MAX_WAIT_SECONDS = integer("FIT_MAX_WAIT_SECONDS", default=60)  # ... but no longer than this after the first
FIT_BOOTSTRAP_DRAWS = integer("FIT_BOOTSTRAP_DRAWS", default=200)
FIT_CHUNK_SIZE = integer("FIT_CHUNK_SIZE", default=25, minimum=1)  # draws per task: 200 draws = 8 tasks
FIT_STUCK_AFTER_SECONDS = integer("FIT_STUCK_AFTER_SECONDS", default=CELERY_TASK_TIME_LIMIT + 60)
FIT_SWEEP_GRACE_SECONDS = integer("FIT_SWEEP_GRACE_SECONDS", default=60)  # a message younger than this is not lost

# LOGGING ---------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/topics/logging/
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": string("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
