"""Production settings: no defaults for secrets or service URLs, secure cookies and HSTS."""

from django.core.exceptions import ImproperlyConfigured

from config.db import engine as db_engine
from config.env import env, flag, integer, string, string_list
from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, MIDDLEWARE

DEBUG = False
SECRET_KEY = string("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = string_list("DJANGO_ALLOWED_HOSTS", default=[])
DATABASES["default"] = {**DATABASES["default"], **env.db("DATABASE_URL")}
if "ENGINE" in DATABASES["default"]:
    DATABASES["default"]["ENGINE"] = db_engine(DATABASES["default"]["ENGINE"])
CELERY_BROKER_URL = string("CELERY_BROKER_URL")
# Keys that were ever published (defaults and examples of this repository) sign nothing in production.
PUBLIC_SECRET_KEYS = {
    "insecure-local-development-key-do-not-use-in-production",
    "change-me-to-a-long-random-string",
    "change-me-to-a-long-random-string-before-exposing-this-anywhere",
}
if SECRET_KEY.strip() in PUBLIC_SECRET_KEYS or not SECRET_KEY.strip():
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set to a secret value, not a published example")
for _required in ("DATABASE_URL", "CELERY_BROKER_URL"):
    if not string(_required).strip():
        raise ImproperlyConfigured(f"{_required} must be set")

# SECURITY --------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# One switch for how browsers reach the site. DJANGO_HTTPS=true (the default): over HTTPS, directly or through
# a proxy that sets X-Forwarded-Proto; cookies are Secure, plain HTTP is redirected, HSTS is sent.
# DJANGO_HTTPS=false: plain HTTP (e.g. docker compose on a private network); cookies without Secure, or the
# browser would drop the session and CSRF cookies and the admin login would fail. The deploy checks that
# flag exactly these choices are silenced then, since they were made on purpose.
HTTPS = flag("DJANGO_HTTPS", default=True)
SECURE_SSL_REDIRECT = flag("DJANGO_SECURE_SSL_REDIRECT", default=HTTPS)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = integer("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if not HTTPS:
    # W010 is W012 (no Secure session cookie) as Django says it when the session middleware in MIDDLEWARE is
    # config.browser_middleware's subclass, which its check does not look for by name: the same choice.
    SILENCED_SYSTEM_CHECKS = ["security.W004", "security.W008", "security.W010", "security.W012", "security.W016"]
SECURE_CONTENT_TYPE_NOSNIFF = True

# STATIC FILES ----------------------------------------------------------------------------
# https://whitenoise.readthedocs.io/en/stable/django.html
# gunicorn serves the admin and API-docs assets itself (after `collectstatic`); no extra web server.
MIDDLEWARE = [*MIDDLEWARE]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "whitenoise.middleware.WhiteNoiseMiddleware"
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # also serve straight from the apps when collectstatic has not run
