"""Settings shared by every environment; local, test and production override a handful of values."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import django_stubs_ext
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from config.db import engine as db_engine
from config.env import cache_config, env, flag, integer, string, string_list

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
    "axes",  # admin login lockout (AUTH below)
    "csp",  # Content-Security-Policy header (SECURITY HEADERS below)
    "runs",
    "fits",
    "planner",
    "workers",
    "ops",
    "mlflow_compat",
]

MIDDLEWARE = [
    "config.headers.PolicyCSPMiddleware",  # first: every response carries the policy, the probes' too
    "ops.middleware.ProbeMiddleware",  # /healthz and /metrics, before host validation (ops.middleware)
    "ops.middleware.RequestIdMiddleware",
    "ops.metrics.RequestMetricsMiddleware",
    "mlflow_compat.middleware.MlflowErrorShapeMiddleware",  # sees the refusals of the four below
    "config.request_body.RequestBodyMiddleware",
    "config.middleware.RequestSizeLimitMiddleware",
    "config.middleware.QueryStringTextMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.browser_middleware.BrowserSessionMiddleware",  # Django's, passed through for /api/ (as the two below)
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.AdminSelectionMiddleware",  # after CSRF: it reads the form
    "config.browser_middleware.BrowserAuthenticationMiddleware",
    "config.browser_middleware.BrowserMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.headers.NoStoreApiMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
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
if "ENGINE" in DATABASES["default"]:  # config.db: PostgreSQL with a health check that sends no query
    DATABASES["default"]["ENGINE"] = db_engine(DATABASES["default"]["ENGINE"])
if DATABASES["default"].get("ENGINE") == "config.db" and not flag("DJANGO_DB_PREPARED_STATEMENTS", default=True):
    # Behind a pooler that cannot keep prepared statements (config.db, PgBouncer in transaction mode before 1.21).
    DATABASES["default"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), "prepare_threshold": None}
if DATABASES["default"].get("ENGINE") == "django.db.backends.sqlite3":
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

# Admin login lockout (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one username, or from one
# address, further attempts are refused (429, even with the right password) until AXES_COOLOFF_TIME passes or
# `manage.py axes_reset` clears them. Attempts are rows in the database, so every web process sees them.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = integer("AXES_FAILURE_LIMIT", default=5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=integer("AXES_COOLOFF_MINUTES", default=15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: one user from anywhere, or one address
AXES_RESET_ON_SUCCESS = True
# The client address (config.client_ip): REMOTE_ADDR, or behind DJANGO_TRUSTED_PROXY_COUNT proxies that each add the
# address they saw to X-Forwarded-For, the one the outermost of them added; what a client writes there itself is
# never believed.
TRUSTED_PROXY_COUNT = integer("DJANGO_TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "config.client_ip.client_ip"

# SECURITY HEADERS ------------------------------------------------------------------------
# Content-Security-Policy (django-csp) on every page: scripts only from this origin (the API docs page loads its
# script from a URL, not inline), nothing framed or plugged in. Styles may be inline: the admin's SVG plots are
# matplotlib's, which style elements with style attributes and a <style> block.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

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
        "apikit.pagination.StableOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "apikit.pagination.CreatedCursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_PARSER_CLASSES": ["apikit.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["apikit.renderers.SafeJSONRenderer"],
    "EXCEPTION_HANDLER": "apikit.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["apikit.throttling.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "apikit.schema.BitscaleAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [
        "apikit.renderers.SafeJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ]

# Requests per API key, e.g. "1200/min" (DRF's rate syntax); empty turns the limit off.
API_RATE_LIMIT = string("API_RATE_LIMIT", default="1200/min")

# CACHES ----------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#caches
# Rate-limit counters and rendered plots live here: per process by default; CACHE_URL=redis://host:6379/1 shares
# them. A Redis cache falls back to local memory while Redis does not answer (config.cache), retried every
# CACHE_RETRY_SECONDS: an outage never fails a request.
CACHES = {"default": cache_config(string("CACHE_URL", default="locmemcache://"))}
CACHE_RETRY_SECONDS = 5.0

SPECTACULAR_SETTINGS = {
    "TITLE": "Bitscale API",
    "DESCRIPTION": "Track training runs, fit precision-aware scaling laws, plan the next model.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "runs.models.Run.Status",
        "FitStatusEnum": "fits.models.Fit.Status",
    },
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# CELERY ----------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 12 * 60
# With Redis as the broker (compose): the visibility timeout must exceed the task time limit, or Redis hands an
# unacknowledged fit to a second worker.
REDIS_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
    "visibility_timeout": 2 * CELERY_TASK_TIME_LIMIT,
    # A publish makes one connection attempt (a worker's own publishes still retry, by Celery's publish retry
    # policy): a post while Redis is down leaves its refit to the sweep at once instead of retrying for
    # seconds. Workers reconnect to consume by their own schedule (config.celery).
    "max_retries": 0,
    "socket_connect_timeout": 1,
    "socket_timeout": 10,
}
CELERY_BROKER_URL = string("CELERY_BROKER_URL", default="filesystem://")  # embedded: no server needed
if CELERY_BROKER_URL == "filesystem://":
    _queue_dir = str(BASE_DIR / "var" / "broker")  # created on demand (ops.health, make run)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        "data_folder_in": _queue_dir,
        "data_folder_out": _queue_dir,
        "control_folder": str(BASE_DIR / "var" / "broker" / "control"),
        "polling_interval": 0.1,  # the folder is polled: 1 s (the default) would add seconds to every fit
    }
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False  # inspect/ping are not needed on a laptop
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = dict(REDIS_BROKER_TRANSPORT_OPTIONS)
CELERY_WORKER_CONSUMER = "config.celery:PromptConsumer"  # reconnects to a broker that returns within 5 s
CELERY_TASK_ACKS_LATE = True  # tasks are idempotent, so a redelivery after a crash is safe
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # a worker killed mid-task puts the message back
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # fits are long; a worker takes one message at a time
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # nobody waits on results: fits are rows, and chunks count themselves
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers and beat wait for a broker that went away as long as it takes (Celery's default gives up after 100
# tries, which with config.celery's 5 s schedule would end a worker after 8 minutes of outage).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_TIMEOUT = 2  # a web request that publishes must not hang on a dead broker
CELERY_TASK_DEFAULT_QUEUE = "celery"
# After a publish fails, a web process takes the broker for down this long: posts and /healthz do not try it
# again meanwhile (config.dispatch, ops.health); the sweep re-sends what was not delivered.
BROKER_RETRY_SECONDS = 5.0
# The sweep re-sends refits the broker lost or never got: every 15 s, so refits resume within a minute of Redis's
# return (docs/fitting-pipeline.md, Recovery). It reads two indexed queries; a late one expires, never doubles.
FIT_SWEEP_INTERVAL_SECONDS = integer("FIT_SWEEP_INTERVAL_SECONDS", default=15, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "sweep-fits": {
        "task": "workers.sweep_fits",
        "schedule": float(FIT_SWEEP_INTERVAL_SECONDS),
        "options": {"expires": FIT_SWEEP_INTERVAL_SECONDS},
    },
}

# FITS ------------------------------------------------------------------------------------
# docs/fitting-pipeline.md: debounce, bootstrap chunks, recovery.
FIT_DEBOUNCE_SECONDS = integer("FIT_DEBOUNCE_SECONDS", default=5)  # a refit waits until changes pause this long
FIT_MAX_WAIT_SECONDS = integer("FIT_MAX_WAIT_SECONDS", default=60)  # ... but no longer than this after the first
FIT_BOOTSTRAP_DRAWS = integer("FIT_BOOTSTRAP_DRAWS", default=200)
FIT_CHUNK_SIZE = integer("FIT_CHUNK_SIZE", default=25, minimum=1)  # draws per task: 200 draws = 8 tasks
# A worker computing a fit step refreshes its heartbeat this often (fits.heartbeat; 0: off), so a running fit
# silent for FIT_STUCK_AFTER_SECONDS (several heartbeats) lost its worker and the sweep takes it over.
FIT_HEARTBEAT_SECONDS = integer("FIT_HEARTBEAT_SECONDS", default=10, minimum=0)
FIT_STUCK_AFTER_SECONDS = integer("FIT_STUCK_AFTER_SECONDS", default=60, minimum=1)
FIT_SWEEP_GRACE_SECONDS = integer("FIT_SWEEP_GRACE_SECONDS", default=60)  # a message younger than this is not lost

# LOGGING ---------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/topics/logging/
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": string("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# OPERATIONS ------------------------------------------------------------------------------
# docs/operations.md: JSON logs, metrics, worker heartbeats, Sentry.
# LOG_FORMAT=json writes one JSON object per line (ops.logs), each with the request's id (X-Request-ID).
LOG_FORMAT = string("LOG_FORMAT", default="plain").strip().lower()
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: expected plain or json")
LOGGING["filters"] = {"request_id": {"()": "ops.logs.RequestIdFilter"}}
LOGGING["formatters"]["json"] = {"()": "ops.logs.JsonFormatter"}
LOGGING["handlers"]["console"].update(formatter=LOG_FORMAT, filters=["request_id"])
# Celery keeps the logging configured above instead of installing its own plain-text handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"
# GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`; unset, /metrics answers 404.
METRICS_TOKEN = string("METRICS_TOKEN", default="")
# Set by config/gunicorn.py: request metrics of all gunicorn worker processes are summed from files there.
PROMETHEUS_MULTIPROC_DIR = string("PROMETHEUS_MULTIPROC_DIR", default="")
# Each Celery worker records a heartbeat this often; /healthz counts workers seen within three periods.
WORKER_HEARTBEAT_SECONDS = integer("WORKER_HEARTBEAT_SECONDS", default=30, minimum=1)
# Errors (web requests and Celery tasks) go to Sentry when a DSN is set; nothing is sent otherwise.
SENTRY_DSN = string("SENTRY_DSN", default="")
if SENTRY_DSN:
    from config.sentry import sentry_init

    sentry_init(dsn=SENTRY_DSN, environment=string("SENTRY_ENVIRONMENT", default="production"))
