"""Retries with backoff, Retry-After, error mapping and idempotent external_ids, against a fake API."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from bitscale_client import (
    AuthenticationFailed,
    BitscaleError,
    Conflict,
    NotFound,
    PermissionDenied,
    RetryPolicy,
    Run,
    ServerUnavailable,
    ValidationFailed,
)
from bitscale_client.transport import parse_retry_after

from tests.client.fake_api import RUN, down, status


def test_log_run_retries_5xx_then_succeeds(api, client, sleeps):
    api.fail_next(status(503), status(502), status(500))

    run = client.log_run(**RUN)

    assert isinstance(run, Run)
    assert run.n_params == 1_000_000
    assert len(sleeps) == 3
    assert api.creates == 1


def test_connection_errors_are_retried(api, client, sleeps):
    api.fail_next(*down(2))

    assert isinstance(client.log_run(**RUN), Run)
    assert len(sleeps) == 2


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap():
    policy = RetryPolicy(max_retries=8, backoff_base=0.5, backoff_max=4.0)
    rng = random.Random(1)
    for attempt in range(8):
        cap = min(4.0, 0.5 * 2**attempt)
        delays = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > 0.8 * cap  # the jitter spans the whole window


def test_retry_after_seconds_is_honoured(api, client, sleeps):
    api.fail_next(status(429, {"Retry-After": "7"}), status(503, {"Retry-After": "2"}))

    client.log_run(**RUN)

    assert sleeps == [7.0, 2.0]


def test_retry_after_http_date_is_honoured():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)

    assert parse_retry_after(header, now=now) == pytest.approx(30)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_gives_up_after_max_retries_with_server_unavailable(api, make_client, sleeps):
    client = make_client(max_retries=3, spool=False)
    api.fail_next(*[status(503)] * 10)

    with pytest.raises(ServerUnavailable, match="4 attempt"):
        client.log_run(**RUN)
    assert len(api.requests) == 4
    assert len(sleeps) == 3


@pytest.mark.parametrize(
    ("code", "error"),
    [(400, ValidationFailed), (401, AuthenticationFailed), (403, PermissionDenied), (404, NotFound), (409, Conflict)],
)
def test_4xx_is_not_retried_and_maps_to_its_exception(api, client, sleeps, code, error):
    api.fail_next(status(code, body={"errors": {"detail": ["nope"]}}))

    with pytest.raises(error) as caught:
        client.log_run(**RUN)

    assert caught.value.status == code
    assert caught.value.errors == {"detail": ["nope"]}
    assert isinstance(caught.value, BitscaleError)
    assert len(api.requests) == 1
    assert sleeps == []


def test_validation_failed_carries_the_field_errors(api, client):
    body = {"errors": {"final_loss": ["Must be a finite number."], "n_tokens": ["This field is required."]}}
    api.fail_next(status(400, body=body))

    with pytest.raises(ValidationFailed) as caught:
        client.log_run(**RUN)

    assert caught.value.errors == body["errors"]
    assert "final_loss: Must be a finite number." in str(caught.value)


def test_generated_external_id_is_the_same_on_every_retry(api, client):
    api.fail_next(status(503), *down(1), status(504))

    run = client.log_run(**RUN)

    sent = api.posted("/api/v1/runs/")
    assert len(sent) == 4
    assert len({body["external_id"] for body in sent}) == 1
    assert run.external_id == sent[0]["external_id"]
    assert run.external_id.startswith("bsc-")


def test_caller_external_id_is_kept_and_a_repost_updates_the_same_run(api, client):
    first = client.log_run(**RUN, external_id="exp-1")
    second = client.log_run(**{**RUN, "final_loss": 3.4}, external_id="exp-1")

    assert first.id == second.id
    assert second.final_loss == 3.4
    assert api.creates == 1


def test_a_response_lost_after_the_server_wrote_makes_no_second_run(api, client):
    def lost_response(request: httpx.Request) -> httpx.Response:
        api.handle(request)  # the server writes the run ...
        raise httpx.ReadTimeout("... but the answer never arrives", request=request)

    api.fail_next(lost_response)

    client.log_run(**RUN)

    assert api.creates == 1
    assert len(api.runs) == 1


def test_log_evaluation_posts_to_the_run(api, client):
    api.responses["/api/v1/runs/5/evaluations/"] = (201, {"post_train_bits": 4, "method": "gptq", "loss": 3.9})

    evaluation = client.log_evaluation(5, post_train_bits=4, loss=3.9, method="gptq")

    assert (evaluation.post_train_bits, evaluation.method, evaluation.loss) == (4.0, "gptq", 3.9)


def test_bearer_key_is_sent(api, client):
    client.log_run(**RUN)

    assert api.requests[0].headers["Authorization"] == "Bearer bsk_test"
