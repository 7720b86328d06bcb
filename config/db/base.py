"""PostgreSQL, with the per-request health check answered from the socket while the connection is quiet, and a
cursor for the few hot statements that binds on the server and lets psycopg prepare them.

With CONN_HEALTH_CHECKS, Django checks a persistent connection before the first query of each request by sending
`SELECT 1`: one round trip per request, and PostgreSQL's CPU to answer it. A connection that the server ended
(a restart, `pg_terminate_backend`, `idle_session_timeout`) has something waiting on its socket: the server's
FATAL message, or the end of the stream. So while an idle connection's socket has nothing to read, it is taken as
usable without a query; when something is waiting, or the connection is not idle, Django's own check runs and
closes a broken connection, which the request then replaces. A connection lost without a word (a host powered
off) fails Django's check only after the TCP timeout too, so nothing that check caught is missed.

Django's cursor binds parameters on the client: every statement reaches PostgreSQL as new text to parse, analyse
and plan. `prepared_cursor()` binds on the server instead, and psycopg prepares a statement once it has run
PREPARE_THRESHOLD times on the connection (a per-connection LRU of 100 statements), so PostgreSQL only executes
it after that. Only the statements written once as SQL go through it (apikit.rows, the key lookup, the family
marker, the MLflow run read; the metric points' INSERT asks psycopg to prepare it at once): the ORM's queries
keep Django's client-side binding, whose behaviour (type inference, `IN` lists, `LIKE` patterns) the project
relies on. Behind a pooler that cannot carry prepared statements across transactions (PgBouncer in transaction
mode before 1.21), set DJANGO_DB_PREPARED_STATEMENTS=false: the statements still bind on the server but are
never prepared.
"""

import select
from typing import Any

import psycopg
from django.db.backends.postgresql import base, operations
from django.db.backends.utils import CursorWrapper
from psycopg import pq

# A statement run this many times on a connection is prepared on its next run: the second, as each web thread holds
# its own connection for DJANGO_CONN_MAX_AGE seconds and may run a statement only a few times in that while
# (psycopg's default, 5, left most of them unprepared); a statement run once, such as a multi-row INSERT of an
# unusual size, is not prepared. Django turns preparing off (None) unless OPTIONS names it; the ORM's client-side
# cursors never prepare either way.
PREPARE_THRESHOLD = 1


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor: Any, sql: str, params: Any) -> str:
        """The statement as logged (connection.queries, CaptureQueriesContext): for a `prepared_cursor()` the text
        with its parameters quoted in, as Django logs its own; psycopg keeps no text of a prepared execution."""
        if isinstance(cursor, psycopg.ClientCursor):
            return super().last_executed_query(cursor, sql, params)
        try:
            return self.compose_sql(sql, params)
        except psycopg.errors.DataError:
            return sql


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        options = self.settings_dict.get("OPTIONS") or {}
        params["prepare_threshold"] = options.get("prepare_threshold", PREPARE_THRESHOLD)
        return params

    def prepared_cursor(self) -> CursorWrapper:
        """A cursor like `cursor()` (health check, error wrapping, query logging), whose statements bind their
        parameters on the server, so psycopg can prepare the ones a connection runs often. Use it only for
        statements written as SQL with plain `%s` placeholders whose types PostgreSQL infers from the columns."""
        wrapper: Any = self  # Django's private helpers that its type stubs leave out
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            cursor: CursorWrapper = wrapper._prepare_cursor(base.ServerBindingCursor(self.connection))  # type: ignore[attr-defined]
        return cursor

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
