"""`Client.forecast` and `bitscale forecast RUN_ID` (issue 24): the forecast with its interval, lenders and verdict,
or the reasons there is none; against the fake API and the real app."""

from __future__ import annotations

import pytest
from bitscale_client import Client, NotFound

from tests.client.fake_api import URL

BODY = {
    "run": 7, "family": "mp", "key": "loss",
    "forecast": {
        "loss": 2.6154, "interval": [2.6001, 2.6307], "level": 0.95, "sd": 0.0078, "at_step": 72000,
        "at_tokens": None, "last_step": 18000, "fraction_seen": 0.25, "law": "annealing", "lenders": [3],
        "fit_runs": [7, 3], "baseline_loss": 2.72,
    },
    "reasons": [],
    "verdict": {"verdict": "below", "text": "below the law by 3.58% ± 0.41%", "law": "chinchilla", "fit_id": 9},
    "verdict_reason": None, "warnings": [], "version": "v", "computed_at": "2026-12-05T05:00:00Z", "cached": False,
}  # fmt: skip


def test_forecast_prints_the_loss_interval_lenders_and_verdict(api, run_cli):
    api.responses["/api/v1/runs/7/forecast/"] = (200, BODY)

    code, out, _ = run_cli("forecast", "7", "--law", "auto", "--level", "0.9")

    assert code == 0
    assert out.splitlines() == [
        "Run 7: forecast loss 2.6154 at step 72,000 (95% interval 2.6001 - 2.6307)",
        "  seen: 25% of the planned steps (last step 18,000)",
        "  law: annealing; annealing lent by run(s): 3",
        "  verdict: below the law by 3.58% ± 0.41% (chinchilla fit 9)",
    ]
    assert dict(api.requests[-1].url.params) == {"law": "auto", "level": "0.9"}


def test_forecast_prints_the_laws_record_on_the_family_or_why_there_is_none(api, run_cli):
    record = {
        "id": 4, "version": 2, "law": "annealing", "n_runs": 5, "finished_at": "2026-12-05T05:00:00Z",
        "heldout": {"scheme": "half", "fraction": 0.5, "n": 4, "mae": 0.0123, "rmse": 0.015, "bias": 0.0,
                    "coverage": 0.75, "level": 0.95},
    }  # fmt: skip
    api.responses["/api/v1/runs/7/forecast/"] = (200, {**BODY, "curve_fit": record, "curve_fit_reason": None})
    _, scored, _ = run_cli("forecast", "7")
    reason = "the family has no annealing curve fit yet: ..."
    api.responses["/api/v1/runs/7/forecast/"] = (200, {**BODY, "curve_fit": None, "curve_fit_reason": reason})
    _, unknown, _ = run_cli("forecast", "7")

    assert (
        "  record: annealing curve fit v2 forecast 4 finished run(s) of the family from 50% of their steps: "
        "MAE 0.0123, 3 of 4 inside their 95% intervals"
    ) in scored.splitlines()
    assert f"  record: {reason}" in unknown.splitlines()


def test_a_finished_runs_forecast_prints_its_final_loss_and_error_and_the_verdict_of_the_final_loss(api, run_cli):
    verdict = {**BODY["verdict"], "basis": "final_loss"}
    outcome = {"final_loss": 2.6400, "error": -0.0246, "inside": False}
    api.responses["/api/v1/runs/7/forecast/"] = (200, {**BODY, "outcome": outcome, "verdict": verdict})

    _, out, _ = run_cli("forecast", "7")

    lines = out.splitlines()
    assert "  finished at 2.6400: the forecast was off by -0.0246, outside its interval" in lines
    assert "  verdict of the final loss: below the law by 3.58% ± 0.41% (chinchilla fit 9)" in lines


def test_no_forecast_prints_the_reasons(api, run_cli):
    reasons = ["no decay seen in the family yet: no run of the family has decayed"]
    api.responses["/api/v1/runs/7/forecast/"] = (200, {**BODY, "forecast": None, "verdict": None, "reasons": reasons})

    code, out, _ = run_cli("forecast", "7")

    assert code == 0
    assert out == f"Run 7: no forecast\n  - {reasons[0]}\n"


def test_another_teams_run_is_not_found(api):
    api.responses["/api/v1/runs/8/forecast/"] = (404, {"errors": {"detail": ["No such run."]}})
    client = Client(URL, "bsk_x", transport=api.transport(), seed=1)

    with pytest.raises(NotFound):
        client.forecast(8)


@pytest.mark.django_db(transaction=True)
def test_the_client_reads_the_real_endpoint(live_server, tmp_path):
    from runs.models import Team
    from runs.services import api_key_create
    from tests.fits.test_forecast_api import CURVES, logged

    team = Team.objects.create(slug="live", name="Live")
    key = api_key_create(team=team, label="client tests")[1]
    logged(team, CURVES["cosine_24000"])
    target = logged(team, CURVES["cosine_72000"], upto=0.5)

    with Client(live_server.url, key, spool_path=tmp_path / "spool.jsonl") as client:
        body = client.forecast(target.pk)

    assert body["forecast"]["loss"] == pytest.approx(CURVES["cosine_72000"].final_loss, abs=0.01)
    assert body["forecast"]["fraction_seen"] == pytest.approx(0.5, abs=0.01)
