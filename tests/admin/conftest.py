"""Fixtures for the admin tests: two teams with members, runs of a Kumar-style sweep and two fit versions."""

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from django.test import Client

from fits.laws import FitResult, Observations, kumar_synthetic
from fits.models import Fit
from runs.models import Run, Team
from tests.factories import PASSWORD, FitFactory, TeamFactory, logged_in, runs_from_observations, staff_user


@pytest.fixture
def alpha(db: None) -> Team:
    return TeamFactory.create(slug="alpha", name="Alpha Lab")


@pytest.fixture
def beta(db: None) -> Team:
    return TeamFactory.create(slug="beta", name="Beta Lab")


@pytest.fixture
def login(db: None) -> Callable[[Any], Client]:
    """A test client logged in as the given user."""
    return logged_in


@pytest.fixture
def alpha_member(alpha: Team) -> Client:
    return logged_in(staff_user("ada", team=alpha, role="member"))


@pytest.fixture
def alpha_viewer(alpha: Team) -> Client:
    return logged_in(staff_user("vic", team=alpha, role="viewer"))


@pytest.fixture
def alpha_owner(alpha: Team) -> Client:
    return logged_in(staff_user("olga", team=alpha, role="owner"))


@pytest.fixture
def beta_member(beta: Team) -> Client:
    return logged_in(staff_user("bob", team=beta, role="owner"))


@pytest.fixture
def superuser(django_user_model: Any, db: None) -> Client:
    user = django_user_model.objects.create_superuser(username="root", password=PASSWORD, email="root@example.com")
    return logged_in(user)


@pytest.fixture
def alpha_runs(alpha: Team, kumar_data: Observations) -> list[Run]:
    return runs_from_observations(alpha, kumar_data, family="kumar", prefix="alpha")


@pytest.fixture
def beta_runs(beta: Team) -> list[Run]:
    data, _ = kumar_synthetic(seed=5, n_values=(30e6, 60e6, 110e6), d_values=(1.5e9, 3e9, 6e9))
    small = data.subset(np.arange(data.n_runs) < 40)
    return runs_from_observations(beta, small, family="secret-sweep", prefix="beta")


@pytest.fixture
def alpha_fits(alpha: Team, alpha_runs: list[Run], kumar_fit: FitResult) -> tuple[Fit, Fit]:
    """Version 1 without the last 24 runs and with one run that is excluded since; version 2 on the rest."""
    ids = [run.pk for run in alpha_runs]
    excluded = alpha_runs[0]
    older = replace(kumar_fit, params={**kumar_fit.params, "alpha": kumar_fit.params["alpha"] * 0.9})
    v1 = FitFactory.create(team=alpha, family="kumar", result=older, version=1, of_current_runs=True, run_ids=ids[:-24])
    Run.objects.filter(pk=excluded.pk).update(excluded=True, exclusion_reason="loss spike")
    v2 = FitFactory.create(team=alpha, family="kumar", result=kumar_fit, version=2, of_current_runs=True)
    return v1, v2
