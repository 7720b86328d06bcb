"""`bitscale fit show` prints the fit's verdict and its reasons (issue 23)."""

from __future__ import annotations

FIT = {
    "id": 4, "family": "sweep", "law": "precision", "version": 3, "status": "succeeded",
    "params": {"E": 1.7, "alpha": 0.34}, "intervals": {}, "fixed": {}, "metrics": {"n_runs": 40},
    "backtest": {"rmse_log_runs": 0.01, "held_out_runs": [3, 7], "residuals_runs": [0.01, -0.01]},
    "warnings": [], "stale": False, "pending": None,
}  # fmt: skip


def test_fit_show_prints_the_verdict_with_its_reasons(api, run_cli):
    reasons = ["thin design: the fit rests on 3 model sizes (fewer than 4)"]
    api.responses["/api/v1/fits/current/"] = (200, {**FIT, "quality": "weak", "quality_reasons": reasons})

    code, out, _ = run_cli("fit", "show", "sweep", "--law", "precision")

    assert code == 0
    assert f"Verdict: weak\n  - {reasons[0]}" in out
    assert "residuals_runs" not in out  # the ranking's run-level lists are not printed


def test_a_server_without_verdicts_prints_none(api, run_cli):
    api.responses["/api/v1/fits/current/"] = (200, FIT)
    _, out, _ = run_cli("fit", "show", "sweep", "--law", "precision")
    assert "Verdict" not in out
