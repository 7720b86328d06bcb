"""The fit list and page at a glance: the reviewer's columns with a verdict, a failed fit's reason first, and
plots that never hold the page up (one URL each, rendered once per fit and cached, ahead of time when the cache
is shared between processes)."""

from dataclasses import replace

import pytest
from django.core.cache import cache
from django.test import override_settings

from fits import plots, review
from fits.models import Fit
from fits.review import fit_plot_keys, fit_plots_prerender, fit_verdict
from tests.factories import FitFactory

FITS = "/admin/fits/fit/"


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def test_the_fit_list_has_the_reviewers_columns_and_a_verdict(alpha_member, alpha, alpha_runs, kumar_fit):
    warned = replace(kumar_fit, warnings=["alpha at its bound", "few runs at 4 bits"])
    FitFactory.create(team=alpha, family="kumar", result=warned, version=1)
    FitFactory.create(team=alpha, family="kumar", law="chinchilla", failed=True, error="FitFailed: 2 distinct N")

    page = alpha_member.get(FITS)
    body = page.content.decode()

    assert page.context["cl"].list_display == [  # no action column: a member has no action on fits
        "fit_label",
        "verdict",
        "n_runs",
        "r2",
        "backtest_error",
        "created_on",
    ]
    assert "kumar · precision v1" in body
    assert "succeeded, 2 warnings" in body
    assert 'title="alpha at its bound\nfew runs at 4 bits"' in body
    assert 'title="FitFailed: 2 distinct N"' in body


def test_the_verdict_is_one_function_of_the_fit(alpha):
    assert fit_verdict(fit=FitFactory.build(team=alpha, warnings=[])).label == "succeeded"
    assert fit_verdict(fit=FitFactory.build(team=alpha, warnings=["w"])).label == "succeeded, 1 warning"
    assert fit_verdict(fit=FitFactory.build(team=alpha, status=Fit.Status.RUNNING)).level == "pending"
    failed = fit_verdict(fit=FitFactory.build(team=alpha, failed=True, error="boom"))
    assert (failed.level, failed.detail) == ("bad", "boom")


def test_a_failed_fits_reason_comes_first(alpha_member, alpha):
    fit = FitFactory.create(team=alpha, failed=True, error="FitFailed: fewer than 3 distinct N")

    page = alpha_member.get(f"{FITS}{fit.pk}/change/")
    body = page.content.decode()

    assert page.context["adminform"].model_admin.get_fields(page.wsgi_request, fit)[0] == "error"
    reason = body.index('id="fit-failed-reason"')
    assert "FitFailed: fewer than 3 distinct N" in body[reason : reason + 300]
    assert reason < body.index('class="form-row')  # above every field


def test_the_fit_page_renders_no_plot_itself(alpha_member, alpha_fits, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the page must not render plots")

    monkeypatch.setattr(review, "FIT_PLOTS", tuple((k, t, refuse) for k, t, _ in review.FIT_PLOTS))
    monkeypatch.setattr(review, "fit_density_plot", refuse)
    _, v2 = alpha_fits

    body = alpha_member.get(f"{FITS}{v2.pk}/change/").content.decode()

    for key in fit_plot_keys():
        assert f'<img src="/admin/fits/fit/{v2.pk}/plot/{key}.svg?v=' in body


def test_a_plot_is_rendered_once_and_then_served_from_the_cache(alpha_member, alpha_fits, monkeypatch):
    _, v2 = alpha_fits
    url = f"{FITS}{v2.pk}/plot/residuals.svg"
    calls = []
    renderer = plots.residuals_vs_n_svg

    def counting(result, data):
        calls.append(1)
        return renderer(result, data)

    monkeypatch.setattr(
        review, "FIT_PLOTS", tuple((k, t, counting if k == "residuals" else r) for k, t, r in review.FIT_PLOTS)
    )

    first, second = alpha_member.get(url), alpha_member.get(url)

    assert first.status_code == second.status_code == 200
    assert first["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert first.content == second.content
    assert first.content.startswith(b"<svg")
    assert "private" in first["Cache-Control"]
    assert len(calls) == 1


def test_plots_are_only_for_the_fits_team_and_known_keys(alpha_member, beta_member, alpha, alpha_fits):
    _, v2 = alpha_fits
    failed = FitFactory.create(team=alpha, failed=True, version=3)

    assert beta_member.get(f"{FITS}{v2.pk}/plot/residuals.svg").status_code in (302, 404)  # as if it did not exist
    assert alpha_member.get(f"{FITS}{v2.pk}/plot/nothing.svg").status_code == 404
    assert alpha_member.get(f"{FITS}{failed.pk}/plot/residuals.svg").status_code == 404
    assert alpha_member.get(f"{FITS}999999/plot/residuals.svg").status_code in (302, 404)


def test_the_page_lists_every_plot_fits_plots_draws(kumar_fit, kumar_data):
    # fits.review names the plots to render one at a time; a plot added to fits.plots.fit_plots must be named too.
    drawn = [plot.key for plot in plots.fit_plots(kumar_fit, kumar_data)]
    assert [key for key, _, _ in review.FIT_PLOTS] == drawn


def test_a_published_fit_has_its_plots_rendered_ahead_into_a_shared_cache(alpha_fits, tmp_path):
    _, v2 = alpha_fits
    shared = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": tmp_path}}

    assert fit_plots_prerender(fit_id=v2.pk) == 0  # the tests' local-memory cache: no other process would read it
    with override_settings(CACHES=shared):
        assert fit_plots_prerender(fit_id=v2.pk) == len(fit_plot_keys())
        key = review.fit_plot_key(fit=v2, key="ptq")
        assert cache.get(key).svg.startswith("<svg")


def test_the_worker_sends_the_rendering_after_publishing_when_the_cache_is_shared(monkeypatch):
    from workers import tasks

    sent = []
    monkeypatch.setattr(tasks, "fit_finish", lambda fit_id: True)
    monkeypatch.setattr(tasks.dispatch, "send", lambda name, **kwargs: sent.append((name, kwargs)))

    monkeypatch.setattr(tasks, "plots_cache_is_shared", lambda: False)
    tasks.finish_fit(fit_id=7)
    monkeypatch.setattr(tasks, "plots_cache_is_shared", lambda: True)
    tasks.finish_fit(fit_id=7)

    assert sent == [("workers.render_fit_plots", {"fit_id": 7})]
