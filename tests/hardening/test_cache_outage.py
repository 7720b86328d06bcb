"""A Redis cache that stops answering costs nothing but shared rate-limit counts: every call still answers.

With compose's configuration the per-key rate limit counts in Redis (CACHE_URL=redis://redis:6379/1). A private
redis-server is stopped under posts, reads and plans, and started again; the rate limit stays on.
"""

import logging
import threading

import pytest
import redis
from django.core.cache import cache, caches

from config.cache import FALLBACKS
from config.env import cache_config
from fits.review import fit_plot, fit_plot_keys
from planner.admin import plan_contour
from planner.models import Plan
from runs.models import Run
from tests.factories import payload
from tests.hardening.fitted import FAMILY

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_cache(redis_server, settings):
    if redis_server.process is None:
        redis_server.start()
    settings.CACHES = {"default": cache_config(redis_server.url(1))}  # compose's CACHE_URL, on the private server
    settings.CACHE_RETRY_SECONDS = 0.0  # retry Redis on every call, so its return is seen at once
    settings.API_RATE_LIMIT = "1000/min"
    # The process's fallback memory outlives a test (LocMemCache storage is shared by name): an earlier test's
    # rate counts there, under a key id the test database has since reused, would count against this one.
    caches["default"]._fallback.clear()
    yield redis_server
    if redis_server.process is None:
        redis_server.start()
    cache.clear()
    caches["default"]._fallback.clear()


def _fallbacks() -> float:
    return FALLBACKS._value.get()


def test_calls_answer_while_the_cache_is_down_and_every_post_is_stored(redis_cache, client_rw, caplog, kumar_fit):
    assert client_rw.post("/api/v1/runs/", payload(external_id="before"), format="json").status_code == 201
    assert redis.Redis.from_url(redis_cache.url(1)).dbsize() > 0  # the key's request count went to Redis

    redis_cache.stop()
    fallbacks = _fallbacks()
    with caplog.at_level(logging.WARNING, logger="bitscale.cache"):
        statuses = [
            client_rw.post("/api/v1/runs/", payload(external_id=f"down-{i}"), format="json").status_code
            for i in range(5)
        ]
        statuses += [client_rw.get(path).status_code for path in ("/api/v1/runs/", "/api/v1/families/")]
    assert statuses == [201] * 5 + [200, 200]
    assert _fallbacks() > fallbacks
    assert "Redis failed" in caplog.text

    redis_cache.start()
    assert client_rw.post("/api/v1/runs/", payload(external_id="after"), format="json").status_code == 201
    stored = set(Run.objects.values_list("external_id", flat=True))
    assert stored == {"before", "after", *(f"down-{i}" for i in range(5))}


def test_the_rate_limit_holds_per_process_while_the_cache_is_down(redis_cache, client_rw, settings):
    settings.API_RATE_LIMIT = "3/min"
    redis_cache.stop()
    statuses = [client_rw.get("/api/v1/runs/").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_the_threads_of_a_process_share_what_they_keep_while_the_cache_is_down(redis_cache):
    # Django gives each thread its own cache object (gunicorn runs several threads per process): while Redis is
    # down they fall back to one memory, so a counter or a plot kept by one thread is seen by the others.
    redis_cache.stop()
    cache.set("plot:7", "<svg/>")
    seen = {}

    def other_thread() -> None:
        seen["object"] = caches["default"]
        seen["value"] = caches["default"].get("plot:7")

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen["object"] is not caches["default"]
    assert seen["value"] == "<svg/>"


def test_the_admins_plots_render_while_the_cache_is_down(redis_cache, fitted, client_rw, kumar_fit):
    response = client_rw.post("/api/v1/plans/", {"family": FAMILY, "budget": {"flops": 1e21}}, format="json")
    assert response.status_code == 201, response.content
    plan = Plan.objects.get(pk=response.json()["id"])
    redis_cache.stop()
    fallbacks = _fallbacks()
    for _ in range(2):  # rendered, then kept in this process's memory
        assert all(fit_plot(fit=fitted["precision"], key=key).svg for key in fit_plot_keys())
        assert plan_contour(plan).lstrip().startswith("<")
    assert _fallbacks() > fallbacks
