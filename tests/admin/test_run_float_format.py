"""The floating-point format of runs in the admin: a list column, a filter by format, and the run page."""

from runs.models import Run

RUNS = "/admin/runs/run/"


def _mark_fp(runs, exponent_bits, mantissa_bits):
    Run.objects.filter(pk__in=[run.pk for run in runs]).update(
        number_format="fp", exponent_bits=exponent_bits, mantissa_bits=mantissa_bits
    )


def test_list_shows_the_format_and_filters_by_it(alpha_member, alpha_runs, beta_runs):
    _mark_fp(alpha_runs[:2], 4, 3)
    _mark_fp(alpha_runs[2:3], 8, 7)
    _mark_fp(beta_runs[:1], 5, 2)  # another team's format is not offered

    page = alpha_member.get(RUNS)
    body = page.content.decode()

    assert page.status_code == 200
    assert "E4M3" in body
    assert "float_format=E8M7" in body
    assert "float_format=E5M2" not in body
    shown = alpha_member.get(RUNS, {"float_format": "E4M3"}).context["cl"].result_list
    assert sorted(run.pk for run in shown) == sorted(run.pk for run in alpha_runs[:2])
    without = alpha_member.get(RUNS, {"float_format": "none"}).context["cl"].result_list
    assert all(run.exponent_bits is None for run in without)
    assert alpha_member.get(RUNS, {"float_format": "fp8"}).context["cl"].result_list.count() == 0


def test_run_page_shows_the_format_read_only(alpha_member, alpha_runs):
    run = alpha_runs[0]
    _mark_fp([run], 2, 1)

    body = alpha_member.get(f"{RUNS}{run.pk}/change/").content.decode()

    assert "Exponent bits" in body
    assert "Mantissa bits" in body
    assert 'name="exponent_bits"' not in body  # reported by the API, not edited here
