"""A worker whose broker went away tries again at most RECONNECT_MAX_SECONDS apart (kombu's own schedule grows to
30 s), so it consumes again within seconds of Redis's return."""

from config.celery import RECONNECT_MAX_SECONDS, PromptConsumer, app


class _Connection:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def ensure_connection(self, *args, **kwargs):
        self.calls.append(kwargs)
        return self


def test_the_workers_consumer_reconnects_on_a_short_schedule():
    assert app.conf.worker_consumer == "config.celery:PromptConsumer"
    consumer = PromptConsumer.__new__(PromptConsumer)  # only ensure_connected is exercised
    consumer.app = app
    consumer.first_connection_attempt = False
    consumer.broker_connection_retry_attempt = 0
    connection = _Connection()
    assert consumer.ensure_connected(connection) is connection
    [schedule] = connection.calls
    assert schedule["interval_max"] == RECONNECT_MAX_SECONDS <= 5
    assert schedule["interval_start"] <= RECONNECT_MAX_SECONDS
    assert app.conf.broker_connection_max_retries is None  # and never gives up
