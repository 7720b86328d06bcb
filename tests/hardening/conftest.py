"""Fixtures of the hardening tests: a team whose family has succeeded fits of every law."""

import pytest

from fits.models import Fit
from runs.models import Team
from tests.hardening.fitted import store_fitted_family


@pytest.fixture
def fitted(team: Team) -> dict[str, Fit]:
    return store_fitted_family(team)
