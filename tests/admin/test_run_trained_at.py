"""When runs were trained, in the admin: a column of the run list, sortable, and read-only on the run page."""

from datetime import UTC, datetime

from runs.models import Run

RUNS = "/admin/runs/run/"


def test_the_run_list_shows_and_sorts_by_the_training_date(alpha_member, alpha_runs):
    Run.objects.filter(pk=alpha_runs[0].pk).update(trained_at=datetime(2023, 2, 1, tzinfo=UTC))
    Run.objects.filter(pk=alpha_runs[1].pk).update(trained_at=datetime(2022, 7, 9, tzinfo=UTC))

    page = alpha_member.get(RUNS)
    assert page.status_code == 200
    assert "column-trained_on" in page.content.decode()
    column = page.context["cl"].list_display.index("trained_on")
    oldest_first = alpha_member.get(RUNS, {"o": str(column)})
    assert [run.pk for run in oldest_first.context["cl"].result_list[:2]] == [alpha_runs[1].pk, alpha_runs[0].pk]
    assert ">2022-07-09<" in oldest_first.content.decode()  # the day; the exact time on hover


def test_the_run_page_shows_the_training_date_read_only(alpha_member, alpha_runs):
    run = alpha_runs[0]
    Run.objects.filter(pk=run.pk).update(trained_at=datetime(2023, 2, 1, 12, 30, tzinfo=UTC))
    body = alpha_member.get(f"{RUNS}{run.pk}/change/").content.decode()
    assert "Trained at" in body
    assert "Feb. 1, 2023, 12:30" in body
    assert 'name="trained_at"' not in body
