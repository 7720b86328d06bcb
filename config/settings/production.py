"""Production settings: no defaults for secrets or service URLs, secure cookies and HSTS."""

from config.env import env, flag, integer, string, string_list
from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, MIDDLEWARE

DEBUG = False
SECRET_KEY = string("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = string_list("DJANGO_ALLOWED_HOSTS", default=[])
DATABASES["default"] = {**DATABASES["default"], **env.db("DATABASE_URL")}
CELERY_BROKER_URL = string("CELERY_BROKER_URL")

# SECURITY --------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = flag("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = integer("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
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
