"""config.db: the statements every request runs are bound on the server and prepared; the ORM's are not."""

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.db.base import PREPARE_THRESHOLD, DatabaseWrapper
from runs.models import Run
from runs.selectors import api_key_get_active
from runs.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")


def _prepared(db: Any = connection) -> list[str]:
    with db.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


def test_the_key_lookup_is_prepared_once_a_connection_ran_it_often_and_still_reads_revocation(team):
    # given a key looked up more often than the threshold on this connection
    key, secret = api_key_create(team=team)
    for _ in range(PREPARE_THRESHOLD + 1):
        assert api_key_get_active(secret=secret) is not None
    assert any("runs_apikey" in statement for statement in _prepared())
    # when the key is revoked
    api_key_revoke(key=key)
    # then the prepared lookup refuses it at once
    assert api_key_get_active(secret=secret) is None


def test_the_orm_queries_bind_on_the_client_and_are_not_prepared(team):
    for _ in range(PREPARE_THRESHOLD + 2):
        list(Run.objects.filter(team=team, family="x"))
    assert not any("runs_run" in statement for statement in _prepared())


def test_a_prepared_statement_is_logged_with_its_values(team):
    _, secret = api_key_create(team=team)
    for _ in range(PREPARE_THRESHOLD + 1):
        api_key_get_active(secret=secret)
    with CaptureQueriesContext(connection) as queries:
        api_key_get_active(secret=secret)
    (query,) = queries.captured_queries
    assert "runs_apikey" in query["sql"]
    assert "$1" not in query["sql"]  # the digest quoted in, as Django logs its own queries


def test_prepared_statements_can_be_turned_off_for_a_pooler(team):
    # given a connection made with DJANGO_DB_PREPARED_STATEMENTS=false (OPTIONS prepare_threshold None)
    settings = {
        **connection.settings_dict,
        "OPTIONS": {**connection.settings_dict["OPTIONS"], "prepare_threshold": None},
    }
    other = DatabaseWrapper(settings, alias="unprepared")
    _, secret = api_key_create(team=team)
    try:
        with other.prepared_cursor() as cursor:
            for _ in range(PREPARE_THRESHOLD + 2):
                cursor.execute("SELECT id FROM runs_apikey WHERE prefix = %s", [secret[:12]])
                assert cursor.fetchone() is not None
        # then the statements still run, and none is prepared
        assert _prepared(other) == []
    finally:
        other.close()
