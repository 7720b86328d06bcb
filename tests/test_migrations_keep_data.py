"""Data stored before fits became their own app survives the move: a database at the old schema (runs 0002,
planner 0004: Fit, FitScope, FitChunk and Plan in planner's tables), filled, then migrated forward, serves every
run, fit (succeeded with draws and snapshot, and failed) and plan through the API with the same ids and values.
"""

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from fits.laws import fit_law, kumar_synthetic
from runs.services import api_key_digest

OLD_SCHEMA = [("runs", "0002_run_float_format"), ("planner", "0004_law_fp")]
FAMILY = "kumar"


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _fill_old_schema(apps):
    """Rows written with the models as they were at the old schema (the historical models, not today's)."""
    team_model = apps.get_model("runs", "Team")
    run_model = apps.get_model("runs", "Run")
    evaluation_model = apps.get_model("runs", "Evaluation")
    api_key_model = apps.get_model("runs", "ApiKey")
    fit_model = apps.get_model("planner", "Fit")
    scope_model = apps.get_model("planner", "FitScope")
    plan_model = apps.get_model("planner", "Plan")

    team = team_model.objects.create(slug="legacy", name="Legacy Lab")
    secret = "bsk_legacy-key-for-the-migration-test"
    api_key_model.objects.create(team=team, prefix=secret[:12], digest=api_key_digest(secret))
    data, _ = kumar_synthetic(seed=11, n_values=(30e6, 60e6, 110e6, 220e6), d_values=(1.5e9, 3e9, 6e9))
    runs = [
        run_model.objects.create(
            team=team,
            family=FAMILY,
            external_id=f"legacy-{i}",
            n_params=round(data.n_params[i]),
            n_tokens=round(data.n_tokens[i]),
            weight_bits=float(data.weight_bits[i]),
            activation_bits=float(data.activation_bits[i]),
            kv_bits=float(data.kv_bits[i]),
            final_loss=float(data.final_loss[i]),
            status="finished",
        )
        for i in range(data.n_runs)
    ]
    for r, bits, loss in zip(
        data.eval_run.tolist(), data.eval_post_bits.tolist(), data.eval_loss.tolist(), strict=True
    ):
        evaluation_model.objects.create(run=runs[r], post_train_bits=bits, loss=loss)
    result = fit_law("precision", data, n_bootstrap=12, seed=3)
    draws = np.ascontiguousarray(result.draws, dtype=np.float64)
    succeeded = fit_model.objects.create(
        team=team,
        family=FAMILY,
        law="precision",
        version=1,
        status="succeeded",
        run_ids=[run.pk for run in runs],
        snapshot=b"npz snapshot bytes",
        data_fingerprint="f" * 64,
        params=result.params,
        intervals={k: [v[0], v[1]] for k, v in result.intervals.items()},
        fixed=result.fixed,
        metrics=result.metrics,
        backtest=result.backtest,
        warnings=result.warnings,
        data_range=result.data_range,
        draw_names=result.draw_names,
        draws=draws.tobytes(),
    )
    failed = fit_model.objects.create(
        team=team, family=FAMILY, law="chinchilla", version=1, status="failed", error="FitFailed: no spread in N"
    )
    scope_model.objects.create(team=team, family=FAMILY, law="precision", generation=3, fingerprint="f" * 64)
    plan = plan_model.objects.create(
        team=team,
        family=FAMILY,
        law="precision",
        requested_law="precision",
        fit=succeeded,
        budget={"flops": 1e21},
        budget_flops=1e21,
        recommendation={"n_params": 1200000000, "weight_bits": 7.0, "predicted_loss": 2.91},
        warnings=["kept"],
    )
    return {
        "secret": secret,
        "run_ids": [run.pk for run in runs],
        "first_run_loss": runs[0].final_loss,
        "n_evaluations": len(data.eval_run),
        "succeeded": succeeded.pk,
        "failed": failed.pk,
        "plan": plan.pk,
        "params": result.params,
        "draws": draws,
    }


@pytest.mark.django_db(transaction=True)
def test_runs_fits_and_plans_stored_before_the_move_are_served_after_it():
    # given a database at the old schema, with rows in it
    stored = _fill_old_schema(_migrate(OLD_SCHEMA))

    # when it is migrated forward to today's schema
    call_command("migrate", verbosity=0)

    # then every row is served through the API with its id and values
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {stored['secret']}")
    runs = api.get("/api/v1/runs/", {"family": FAMILY, "page_size": 1000}).json()["results"]
    assert sorted(r["id"] for r in runs) == sorted(stored["run_ids"])
    first = api.get(f"/api/v1/runs/{stored['run_ids'][0]}/").json()
    assert first["final_loss"] == stored["first_run_loss"]
    assert sum(len(r["evaluations"]) for r in runs) == stored["n_evaluations"]

    fit = api.get(f"/api/v1/fits/{stored['succeeded']}/").json()
    assert (fit["law"], fit["version"], fit["status"]) == ("precision", 1, "succeeded")
    assert fit["params"] == pytest.approx(stored["params"])
    assert fit["n_draws"] == stored["draws"].shape[0]
    current = api.get("/api/v1/fits/current/", {"family": FAMILY, "law": "precision"}).json()
    assert current["id"] == stored["succeeded"]
    failed = api.get(f"/api/v1/fits/{stored['failed']}/").json()
    assert (failed["status"], failed["error"]) == ("failed", "FitFailed: no spread in N")
    # a succeeded fit stored before verdicts got one from the data migration (fits 0007); a failed fit has none
    assert fit["quality"] in ("good", "weak", "unusable")
    assert failed["quality"] is None

    # the draws survived byte for byte: a prediction's interval is read from them
    prediction = api.get(
        "/api/v1/predict/",
        {"family": FAMILY, "law": "precision", "n_params": 500000000, "n_tokens": 10000000000, "weight_bits": 8},
    )
    assert prediction.status_code == 200, prediction.json()
    low, high = prediction.json()["interval"]
    assert low < prediction.json()["loss"] < high

    plan = api.get(f"/api/v1/plans/{stored['plan']}/").json()
    assert plan["fit"]["id"] == stored["succeeded"]
    assert plan["recommendation"]["n_params"] == 1200000000
    assert plan["warnings"] == ["kept"]

    # and new versions continue the old numbering in the renamed tables
    from fits.models import Fit

    assert Fit.objects.filter(team__slug="legacy").count() == 2
    assert connection.introspection.table_names().count("fits_fit") == 1
    assert "planner_fit" not in connection.introspection.table_names()
