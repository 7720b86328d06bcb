"""The fit's verdict in the admin: the fit list's column and the fit page (issue 23)."""

import pytest

from fits.models import Fit
from fits.review import fit_verdict
from tests.factories import FitFactory

REASONS = ["no signal: the law explains 0.0% of the variance of log loss that a constant loss leaves"]


def test_a_succeeded_fit_shows_its_quality_verdict(alpha):
    weak = fit_verdict(fit=FitFactory.build(team=alpha, quality=Fit.Quality.WEAK, quality_reasons=["thin design"]))
    unusable = fit_verdict(fit=FitFactory.build(team=alpha, quality=Fit.Quality.UNUSABLE, quality_reasons=REASONS))
    good = fit_verdict(fit=FitFactory.build(team=alpha, quality=Fit.Quality.GOOD, warnings=["w"]))

    assert (weak.level, weak.label, weak.detail) == ("warning", "weak", "thin design")
    assert (unusable.level, unusable.label, unusable.detail) == ("bad", "unusable", REASONS[0])
    assert (good.level, good.label) == ("good", "good")


@pytest.mark.django_db
def test_the_fit_list_and_page_show_the_verdict_and_its_reasons(alpha_member, alpha):
    fit = FitFactory.create(team=alpha, quality=Fit.Quality.UNUSABLE, quality_reasons=REASONS)

    listing = alpha_member.get("/admin/fits/fit/").content.decode()
    page = alpha_member.get(f"/admin/fits/fit/{fit.pk}/change/").content.decode()

    assert ">unusable</span>" in listing
    assert 'id="fit-quality-reasons"' in page
    assert "No prediction, plan or suggestion rests on this fit" in page
    assert REASONS[0] in page
    assert 'id="fit-failed-reason"' not in page  # unusable is not failed
