"""The `bitscale` command against a fake API: parsing, output, exit codes and field errors."""

from __future__ import annotations

import csv
import json

import pytest
from bitscale_client import cli
from bitscale_client.spool import Spool

from tests.client.fake_api import RUN, down, status

PLAN = {
    "id": 12,
    "family": "sweep",
    "law": "precision",
    "budget": {"flops": 1e22},
    "recommendation": {
        "n_params": 2.1e9,
        "n_tokens": 6.2e11,
        "tokens_per_param": 295.2,
        "weight_bits": 6,
        "activation_bits": 8,
        "kv_bits": 8,
        "post_train_bits": 4,
        "predicted_loss": 2.412,
        "predicted_loss_interval": [2.39, 2.44],
        "compute_flops": 1e22,
        "weights_memory_bytes": 1.05e9,
    },
    "baseline": {"n_params": 1.0e9, "n_tokens": 1.6e12, "weight_bits": 16, "predicted_loss": 2.47},
    "alternatives": [{"n_params": 1.5e9, "n_tokens": 8e11, "weight_bits": 8, "predicted_loss": 2.42}],
    "optimum_spread": {"n_params": [1.6e9, 2.7e9], "weight_bits": [5, 7]},
    "fit": {"id": 4, "law": "precision", "version": 3},
    "warnings": ["the optimum is beyond the largest run (extrapolation)"],
}


def test_plan_arguments_become_the_contract_body(api, run_cli):
    api.responses["/api/v1/plans/"] = (201, PLAN)

    code, _, _ = run_cli("plan", "--flops", "1e22", "--family", "sweep", "--post-train-bits", "4",
                         "--bits-choices", "4,8,16", "--n-params-max", "3e9")  # fmt: skip

    assert code == 0
    assert json.loads(api.requests[0].content) == {
        "family": "sweep",
        "budget": {"flops": 1e22},
        "constraints": {"post_train_bits": 4.0, "bits_choices": [4.0, 8.0, 16.0], "n_params_max": 3_000_000_000},
    }


def test_plan_law_is_sent_only_when_given(api, run_cli):
    api.responses["/api/v1/plans/"] = (201, PLAN)

    run_cli("plan", "--flops", "1e22", "--family", "sweep", "--law", "chinchilla")

    assert json.loads(api.requests[0].content)["law"] == "chinchilla"


def test_plan_by_gpu_hours_sends_the_hardware(api, run_cli):
    api.responses["/api/v1/plans/"] = (201, PLAN)

    run_cli("plan", "--gpu-hours", "5000", "--hardware", "a100", "--family", "sweep")

    assert json.loads(api.requests[0].content)["budget"] == {"gpu_hours": 5000.0, "hardware": "a100"}


def test_plan_prints_recommendation_next_to_the_16_bit_baseline(api, run_cli):
    api.responses["/api/v1/plans/"] = (201, PLAN)

    _, out, _ = run_cli("plan", "--flops", "1e22", "--family", "sweep", "--post-train-bits", "4")

    lines = out.splitlines()
    assert lines[0] == "Plan 12 for family sweep (precision law, fit v3, id 4)"
    assert "Budget: 1e+22 FLOPs" in out
    header = next(line for line in lines if "recommendation" in line)
    assert header.split() == ["recommendation", "16-bit", "baseline"]
    assert next(line for line in lines if line.startswith("parameters (N)")).split()[-2:] == ["2.1B", "1B"]
    assert next(line for line in lines if line.startswith("weight bits")).split()[-2:] == ["6", "16"]
    assert "2.4120 [2.3900, 2.4400]" in out
    assert "Predicted loss change vs the 16-bit baseline: -0.0580 nats" in out
    assert "n_params: 1.6B .. 2.7B" in out
    assert "  - the optimum is beyond the largest run (extrapolation)" in out


def test_plan_needs_a_budget_and_a_family():
    with pytest.raises(SystemExit) as caught:
        cli.build_parser().parse_args(["plan", "--family", "f"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["plan", "--flops", "1e22", "--gpu-hours", "5", "--family", "f"])


def test_plan_without_a_fit_exits_1_with_the_reason(api, run_cli):
    api.responses["/api/v1/plans/"] = (409, {"errors": {"detail": ["family sweep has no succeeded precision fit"]}})

    code, _, err = run_cli("plan", "--flops", "1e22", "--family", "sweep")

    assert code == 1
    assert "no succeeded precision fit" in err


def test_fit_prints_parameters_intervals_and_freshness(api, run_cli):
    fit = {
        "id": 4, "family": "sweep", "law": "precision", "version": 3, "status": "succeeded",
        "params": {"E": 1.7, "alpha": 0.34, "gamma_w": 2.6}, "intervals": {"E": [1.6, 1.8]},
        "fixed": {"gamma_w": 2.6}, "metrics": {"n_runs": 40, "r2": 0.991}, "backtest": {"rmse_log": 0.012},
        "warnings": ["few low-bit runs"], "stale": True, "pending": True,
    }  # fmt: skip
    api.responses["/api/v1/fits/current/"] = (200, fit)

    code, out, _ = run_cli("fit", "show", "sweep", "--law", "precision")

    assert code == 0
    assert "Fit 4: family sweep, law precision, version 3 (succeeded)" in out
    assert "stale (runs changed since); a newer fit is queued or running" in out
    assert next(line for line in out.splitlines() if line.startswith("E ")).split() == ["E", "1.7", "[1.6,", "1.8]"]
    assert "2.6 (fixed)" in out
    assert "r2=0.991" in out
    assert "  - few low-bit runs" in out


def test_fit_names_the_runs_its_screening_rule_left_out_and_the_backtest_scheme(api, run_cli):
    fit = {
        "id": 5, "family": "gems", "law": "chinchilla", "version": 1, "status": "succeeded",
        "params": {"E": 1.9}, "intervals": {}, "fixed": {}, "metrics": {"n_runs": 126, "n_screened": 14},
        "backtest": {"rmse_log_runs": 0.0097, "scheme": "largest_compute", "held_out_n_params": [5e8]},
        "warnings": [], "stale": False, "pending": None,
        "screened": [{"run_id": 812, "n_params": 1.6e8, "n_tokens": 3.3e10, "final_loss": 3.41,
                      "residual": 0.052, "reason": "loss 5.2% above the law (robust z 6.1)"}],
    }  # fmt: skip
    api.responses["/api/v1/fits/current/"] = (200, fit)

    code, out, _ = run_cli("fit", "show", "gems", "--law", "chinchilla")

    assert code == 0
    assert "Backtest (largest-compute runs held out): rmse_log_runs=0.0097" in out
    assert "Runs left out by the screening rule (1; they still count for the ranking):" in out
    row = next(line for line in out.splitlines() if line.startswith("812 "))
    assert "loss 5.2% above the law" in row


def test_fit_of_a_family_without_one_exits_1(run_cli):
    code, _, err = run_cli("fit", "show", "nothing")

    assert code == 1
    assert "HTTP 404" in err


def test_fit_passes_any_law_name_to_the_server_and_prints_its_refusal(api, run_cli):
    # The CLI keeps no list of laws: a law the server adds is usable at once, and an unknown one is the server's
    # 400 naming the field.
    api.responses["/api/v1/fits/current/"] = (400, {"errors": {"law": ["unknown law 'nope'; expected one of [...]"]}})

    code, _, err = run_cli("fit", "show", "sweep", "--law", "nope")

    assert code == 1
    assert api.requests[0].url.params["law"] == "nope"
    assert "unknown law 'nope'" in err


FIT = {
    "id": 4, "family": "sweep", "law": "precision", "version": 3, "status": "succeeded", "params": {"E": 1.7},
    "intervals": {}, "fixed": {}, "metrics": {}, "backtest": {}, "warnings": [], "stale": False, "pending": False,
}  # fmt: skip


def test_fit_family_still_shows_the_fit_and_names_the_new_command(api, run_cli):
    api.responses["/api/v1/fits/current/"] = (200, FIT)

    code, out, err = run_cli("fit", "sweep")

    assert code == 0
    assert "Fit 4: family sweep, law precision, version 3 (succeeded)" in out
    assert "it is now `bitscale fit show sweep`" in err
    assert "`bitscale fit refit sweep` asks for a new one" in err
    assert [r.method for r in api.requests] == ["GET"]  # showing never asks for a fit


def test_fit_refit_asks_the_server_for_a_new_version(api, run_cli):
    api.responses["/api/v1/fits/"] = (202, {**FIT, "id": 9, "version": 4, "status": "queued", "params": {}})

    code, out, err = run_cli("fit", "refit", "sweep", "--law", "chinchilla")

    assert code == 0
    assert api.posted("/api/v1/fits/") == [{"family": "sweep", "law": "chinchilla"}]
    assert "version 4 is queued" in out
    assert err == ""


@pytest.mark.parametrize("args", [("fit", "show"), ("fit", "refit"), ("fit", "plot", "sweep")])
def test_a_fit_command_without_its_family_or_with_an_unknown_action_is_a_usage_error(api, run_cli, args):
    code, _, err = run_cli(*args)

    assert code == 2
    assert "fit" in err
    assert api.requests == []


def test_log_a_single_run_file(api, run_cli, tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({**RUN, "external_id": "one"}))

    code, out, _ = run_cli("log", str(tmp_path / "run.json"))

    assert code == 0
    assert out.startswith("run 1 (one): sweep")


def test_log_a_list_of_runs(api, run_cli, tmp_path):
    (tmp_path / "runs.json").write_text(json.dumps([RUN, RUN]))

    code, out, _ = run_cli("log", str(tmp_path / "runs.json"))

    assert code == 0
    assert out == "2 run(s) sent: 2 created, 0 updated\n"


def test_log_prints_the_servers_field_errors_and_exits_1(api, run_cli, tmp_path):
    (tmp_path / "run.json").write_text(json.dumps(RUN))
    errors = {"final_loss": ["Must be a finite number."], "evaluations": [{}, {"loss": ["Required."]}]}
    api.fail_next(status(400, body={"errors": errors}))

    code, _, err = run_cli("log", str(tmp_path / "run.json"))

    assert code == 1
    assert "  final_loss: Must be a finite number.\n" in err
    assert "  evaluations[1].loss: Required.\n" in err


def test_log_when_the_server_is_down_spools_and_exits_75_then_sync_uploads(api, run_cli, tmp_path, spool_path):
    (tmp_path / "run.json").write_text(json.dumps(RUN))
    api.fail_next(*down(6))

    code, _, err = run_cli("log", str(tmp_path / "run.json"))
    assert code == 75
    assert "bitscale sync" in err
    assert len(Spool(spool_path).entries()) == 1

    code, out, _ = run_cli("sync")
    assert code == 0
    assert out.startswith("uploaded 1 run(s) (1 created, 0 updated); 0 left in the spool")
    assert api.creates == 1


def test_bad_input_files_exit_2_without_a_traceback(run_cli, tmp_path):
    (tmp_path / "bad.json").write_text("{nope")

    assert run_cli("log", str(tmp_path / "bad.json"))[0] == 2
    assert run_cli("log", str(tmp_path / "missing.json"))[0] == 2
    assert run_cli("import-csv", str(tmp_path / "bad.json"))[0] == 2


def test_missing_configuration_is_a_clear_error(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("BITSCALE_URL", raising=False)
    monkeypatch.delenv("BITSCALE_API_KEY", raising=False)

    assert cli.main(["sync"]) == 2
    assert "BITSCALE_URL" in capsys.readouterr().err


def test_flags_given_after_the_command_override_the_environment(api, run_cli):
    run_cli("fit", "show", "f", "--url", "http://flag.test", "--api-key", "bsk_flag")

    assert api.requests[0].url.host == "flag.test"
    assert api.requests[0].headers["Authorization"] == "Bearer bsk_flag"


def test_import_csv_reads_the_export_format_and_shows_progress(api, run_cli, tmp_path):
    columns = ["id", "external_id", "name", "family", "n_params", "n_tokens", "final_loss", "metadata",
               "post_train_bits", "method", "eval_loss"]  # fmt: skip
    with open(tmp_path / "runs.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for i in range(2500):
            run = [i, "", f"'=run{i}", "f", 1000 * (i + 1), 20000 * (i + 1), 3.5, json.dumps({"k": i})]
            writer.writerow([*run, 4, "rtn", 3.9])
            writer.writerow([*run, 3, "gptq", 4.1])

    code, out, err = run_cli("import-csv", str(tmp_path / "runs.csv"))

    assert code == 0
    assert out == "2500 run(s) sent: 2500 created, 0 updated\n"
    assert [len(body["runs"]) for body in api.posted("/api/v1/runs/bulk/")] == [1000, 1000, 500]
    assert "import [" in err
    assert "2500/2500 (100%)" in err
    first = api.posted("/api/v1/runs/bulk/")[0]["runs"][0]
    assert first["name"] == "=run0"  # the export's spreadsheet quote is removed
    assert first["metadata"] == {"k": 0}
    assert first["evaluations"] == [
        {"post_train_bits": 4.0, "loss": 3.9, "method": "rtn"},
        {"post_train_bits": 3.0, "loss": 4.1, "method": "gptq"},
    ]
    assert first["external_id"].startswith("csv-")

    run_cli("import-csv", str(tmp_path / "runs.csv"))  # the derived external_ids make a re-import idempotent
    assert api.creates == 2500


def test_import_csv_refuses_unknown_columns(run_cli, tmp_path):
    (tmp_path / "runs.csv").write_text("n_params,n_tokens,colour\n1,2,red\n")

    code, _, err = run_cli("import-csv", str(tmp_path / "runs.csv"))

    assert code == 2
    assert "unknown column(s): colour" in err


def test_export_csv_passes_filters(api, run_cli, tmp_path):
    api.responses["/api/v1/runs/export.csv"] = (200, "ignored")

    code, out, _ = run_cli("export-csv", str(tmp_path / "out.csv"), "--family", "f", "--filter", "n_params__gte=10")

    assert code == 0
    assert dict(api.requests[0].url.params) == {"family": "f", "n_params__gte": "10"}
    assert out.startswith("wrote ")


def test_a_plan_on_the_fp_law_prints_its_format(api, run_cli):
    fp_plan = {
        **PLAN,
        "law": "fp",
        "fit": {"id": 5, "law": "fp", "version": 1},
        "recommendation": {**PLAN["recommendation"], "weight_bits": 8, "exponent_bits": 4, "mantissa_bits": 3},
        "baseline": {**PLAN["baseline"], "exponent_bits": 8, "mantissa_bits": 7},
    }
    api.responses["/api/v1/plans/"] = (201, fp_plan)

    _, out, _ = run_cli("plan", "--flops", "1e22", "--family", "sweep", "--law", "fp")

    assert next(line for line in out.splitlines() if line.startswith("fp format")).split()[-2:] == ["E4M3", "E8M7"]
    api.responses["/api/v1/plans/"] = (201, PLAN)
    _, precision_out, _ = run_cli("plan", "--flops", "1e22", "--family", "sweep")
    assert "fp format" not in precision_out
