"""Error reporting to Sentry, started from the settings only when SENTRY_DSN is set."""

import sentry_sdk


def sentry_init(*, dsn: str, environment: str) -> None:
    """Report unhandled errors of web requests and Celery tasks (integrations are enabled automatically).

    No personal data (send_default_pii off: no user ids, cookies or API keys) and no performance tracing.
    """
    sentry_sdk.init(dsn=dsn, environment=environment, send_default_pii=False, traces_sample_rate=0.0)
