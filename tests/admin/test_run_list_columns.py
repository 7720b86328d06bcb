"""The run list shows what a reviewer scans for, in short numbers, and flags only the runs that are excluded;
everything else is on the run's page."""

from django.contrib.admin.utils import flatten_fieldsets

from runs.admin import RunAdmin
from runs.models import Run

RUNS = "/admin/runs/run/"


def test_the_run_list_has_the_reviewers_columns_in_short_numbers(alpha_member, alpha_runs):
    run = alpha_runs[-1]
    Run.objects.filter(pk=run.pk).update(n_params=70_000_000, n_tokens=3_000_000_000, final_loss=3.3499999999999996)

    page = alpha_member.get(RUNS)
    body = page.content.decode()

    assert page.context["cl"].list_display == [
        "action_checkbox",
        "run_label",
        "family",
        "n_params_short",
        "n_tokens_short",
        "bits",
        "final_loss_short",
        "state",
        "trained_on",
        "forecast_verdict",
    ]
    assert 'title="70,000,000" style="white-space: nowrap">70M</span>' in body
    assert 'title="3,000,000,000" style="white-space: nowrap">3.0B</span>' in body
    assert 'title="3.3499999999999996" style="white-space: nowrap">3.350</span>' in body
    assert ">70000000<" not in body


def test_only_an_excluded_run_is_flagged(alpha_member, alpha_runs):
    Run.objects.filter(pk=alpha_runs[-1].pk).update(excluded=True, exclusion_reason="loss spike at 9k")

    body = alpha_member.get(RUNS).content.decode()

    assert body.count('class="run-excluded"') == 1  # the normal runs carry no mark at all
    assert 'title="loss spike at 9k"' in body
    assert "icon-no.svg" not in body
    assert "icon-yes.svg" not in body


def test_the_team_column_appears_only_for_a_user_who_sees_several_teams(alpha_member, superuser, alpha_runs, beta_runs):
    assert "team" not in alpha_member.get(RUNS).context["cl"].list_display
    assert "team" in superuser.get(RUNS).context["cl"].list_display


def test_an_fp_run_shows_its_format_with_its_bits(alpha_member, alpha_runs):
    Run.objects.filter(pk=alpha_runs[-1].pk).update(
        weight_bits=8, activation_bits=8, kv_bits=16, number_format="fp", exponent_bits=4, mantissa_bits=3
    )
    Run.objects.filter(pk=alpha_runs[-2].pk).update(weight_bits=4, activation_bits=4, kv_bits=16, number_format="int")

    body = alpha_member.get(RUNS).content.decode()

    assert "8/8/16 E4M3" in body
    assert "4/4/16 int" in body


def test_the_run_page_shows_every_field_in_sections_with_exact_numbers(alpha_member, alpha_runs):
    run = alpha_runs[-1]
    Run.objects.filter(pk=run.pk).update(n_params=70_000_000, n_tokens=1_400_000_000)

    page = alpha_member.get(f"{RUNS}{run.pk}/change/")
    body = page.content.decode()

    shown = set(flatten_fieldsets(page.context["adminform"].fieldsets))
    # N and D are shown exact by n_params_exact / n_tokens_exact, the schedule in words by schedule_plan
    hidden = {"id", "n_params", "n_tokens", "schedule"}
    assert {f.name for f in Run._meta.fields} - hidden <= shown
    assert "70,000,000 (70M)" in body
    assert "1,400,000,000 (1.4B)" in body
    assert ">20.0<" in body  # tokens per parameter


def test_a_field_added_to_runs_lands_on_the_page_even_when_no_section_names_it(alpha_member, alpha_runs, monkeypatch):
    sections = tuple((title, tuple(n for n in names if n != "dataset")) for title, names in RunAdmin.RUN_SECTIONS)
    monkeypatch.setattr(RunAdmin, "RUN_SECTIONS", sections)

    page = alpha_member.get(f"{RUNS}{alpha_runs[-1].pk}/change/")

    assert ("Other", {"fields": ("dataset",)}) in page.context["adminform"].model_admin.get_fieldsets(
        page.wsgi_request, alpha_runs[-1]
    )
