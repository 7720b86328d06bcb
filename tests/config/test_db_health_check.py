"""config.db: the per-request health check answered from the socket, and a connection the server ended replaced."""

from typing import Any

import pytest
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper as DjangoWrapper

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the check reads a PostgreSQL connection's socket")


def _persistent_connection() -> None:
    connection.ensure_connection()
    wrapper: Any = connection
    wrapper.health_check_enabled = True
    wrapper.health_check_done = False


def test_a_quiet_connection_is_checked_without_a_query(monkeypatch):
    _persistent_connection()
    calls = []
    monkeypatch.setattr(DjangoWrapper, "is_usable", lambda self: calls.append(1) or True)
    with connection.cursor() as cursor:  # the first query of a request runs the check
        cursor.execute("SELECT 1")
    assert calls == []
    assert connection.health_check_done


def test_a_connection_the_server_ended_is_replaced_before_the_query():
    _persistent_connection()
    pid = connection.connection.info.backend_pid
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
    finally:
        other.close()
    import time

    for _ in range(50):  # the server's FATAL message reaches the socket
        if not connection.socket_quiet():
            break
        time.sleep(0.05)
    with connection.cursor() as cursor:  # without the check this query fails on the dead connection
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
