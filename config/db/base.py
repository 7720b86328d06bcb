"""PostgreSQL, with the per-request health check answered from the socket while the connection is quiet.

With CONN_HEALTH_CHECKS, Django checks a persistent connection before the first query of each request by sending
`SELECT 1`: one round trip per request, and PostgreSQL's CPU to answer it. A connection that the server ended
(a restart, `pg_terminate_backend`, `idle_session_timeout`) has something waiting on its socket: the server's
FATAL message, or the end of the stream. So while an idle connection's socket has nothing to read, it is taken as
usable without a query; when something is waiting, or the connection is not idle, Django's own check runs and
closes a broken connection, which the request then replaces. A connection lost without a word (a host powered
off) fails Django's check only after the TCP timeout too, so nothing that check caught is missed.
"""

import select
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self) -> None:
        wrapper: Any = self  # Django's attributes that its type stubs leave out
        if self.connection is None or not wrapper.health_check_enabled or wrapper.health_check_done or wrapper.pool:
            return  # what Django's check does in each of these cases: nothing
        if self.socket_quiet():
            wrapper.health_check_done = True
            return
        super().close_if_health_check_failed()

    def socket_quiet(self) -> bool:
        """Whether the connection is idle and the server has sent nothing since the last answer."""
        try:
            pgconn = self.connection.pgconn
            if pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status != pq.TransactionStatus.IDLE:
                return False
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
        except (OSError, ValueError, AttributeError, psycopg.Error):
            return False
        return not readable
