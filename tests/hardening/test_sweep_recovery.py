"""The sweep takes a scope whose refit message was lost as soon as no message on its way can be that old
(FIT_DEBOUNCE_SECONDS + FIT_SWEEP_GRACE_SECONDS: a message refreshes `enqueued_at` at every step), not two
minutes later; and beat sends the sweep often enough for refits to resume within a minute of Redis's return."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from fits.models import FitScope
from fits.pipeline import fits_sweep

pytestmark = pytest.mark.django_db


def test_a_message_silent_longer_than_any_step_is_taken_for_lost(team, settings):
    settings.FIT_DEBOUNCE_SECONDS, settings.FIT_MAX_WAIT_SECONDS, settings.FIT_SWEEP_GRACE_SECONDS = 5, 60, 30
    FitScope.objects.bulk_create([FitScope(team=team, family="f", law=law) for law in ("chinchilla", "precision")])
    scopes = FitScope.objects.filter(team=team, family="f")
    now = timezone.now()
    scopes.update(dirty_since=now - timedelta(seconds=50), enqueued_at=now - timedelta(seconds=30))
    assert fits_sweep().scope_ids == []  # 30 s: a message may still be on its way
    scopes.update(enqueued_at=now - timedelta(seconds=36))
    assert sorted(fits_sweep().scope_ids) == sorted(scopes.values_list("id", flat=True))


def test_beat_sweeps_every_15_seconds_and_drops_a_late_sweep():
    entry = django_settings.CELERY_BEAT_SCHEDULE["sweep-fits"]
    assert entry["schedule"] == 15.0
    assert entry["options"]["expires"] <= entry["schedule"]
