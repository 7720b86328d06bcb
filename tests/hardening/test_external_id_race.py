"""Two PATCHes giving two runs the same external_id at once: one 200, the other a 400 naming external_id.

The service checks that no other run holds the id, then saves; two requests can both pass the check. The unique
constraint settles it; the loser's IntegrityError must become the 400, never a 500.
"""

import os
import threading

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from runs.models import Run
from runs.services import api_key_create
from tests.factories import RunFactory, TeamFactory

PAIRS = 15


def test_the_loser_of_the_check_then_save_race_gets_a_400_naming_external_id(client_rw, team, monkeypatch):
    # Deterministic form of the race: the other run takes the id between our check and our save.
    ours, theirs = RunFactory.create(team=team), RunFactory.create(team=team, external_id="other")
    from runs import services

    real = services.Run.objects.filter

    def filter_that_misses_the_other_writer(*args, **kwargs):
        if kwargs.get("external_id") == "contested":
            Run.objects.filter(pk=theirs.pk).update(external_id="contested")
            return real(pk__in=[])
        return real(*args, **kwargs)

    monkeypatch.setattr(services.Run.objects, "filter", filter_that_misses_the_other_writer)
    response = client_rw.patch(f"/api/v1/runs/{ours.pk}/", {"external_id": "contested"}, format="json")
    monkeypatch.undo()
    assert response.status_code == 400, response.content
    assert "external_id" in response.json()["errors"]
    ours.refresh_from_db()
    assert ours.external_id != "contested"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_concurrent_patches_to_the_same_external_id_one_200_one_400():
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI must run the suite on PostgreSQL (DATABASE_URL=postgres://...)")
        pytest.skip("needs PostgreSQL: export DATABASE_URL=postgres://postgres@127.0.0.1:5432/bitscale")
    team = TeamFactory(slug="race-patch")
    _, secret = api_key_create(team=team)
    outcomes = []
    for pair in range(PAIRS):
        runs = [RunFactory.create(team=team, external_id=f"p{pair}-{i}") for i in range(2)]
        barrier = threading.Barrier(2)
        statuses: list[tuple[int, dict]] = []
        errors: list[BaseException] = []

        def patch(run, value=f"shared-{pair}", barrier=barrier, statuses=statuses, errors=errors):
            try:
                client = APIClient()
                client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
                barrier.wait(timeout=10)
                response = client.patch(f"/api/v1/runs/{run.pk}/", {"external_id": value}, format="json")
                statuses.append((response.status_code, response.json()))
            except BaseException as exc:  # surfaced below: a thread's exception must fail the test
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=patch, args=(run,)) for run in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        codes = sorted(code for code, _ in statuses)
        outcomes.append(codes)
        assert codes == [200, 400], statuses
        loser = next(body for code, body in statuses if code == 400)
        assert "external_id" in loser["errors"]
        assert Run.objects.filter(team=team, external_id=f"shared-{pair}").count() == 1
    assert len(outcomes) == PAIRS
