"""Fixtures for the admin tests: two teams with members, runs of a Kumar-style sweep and two fit versions."""

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from django.test import Client

from fits.laws import FitResult, Observations, kumar_synthetic
from fits.models import Fit
from fits.selectors import fit_data
from runs.models import Evaluation, Membership, Run, Team
from tests.conftest import N_BOOTSTRAP  # noqa: F401  (the admin tests import it from here)
from tests.factories import TeamFactory

PASSWORD = "correct horse battery staple"


def runs_from_observations(team: Team, data: Observations, *, family: str, prefix: str) -> list[Run]:
    """Rows straight into the database (no services: no refit is queued by the fixtures)."""
    runs = Run.objects.bulk_create(
        Run(
            team=team,
            family=family,
            external_id=f"{prefix}-{i:04d}",
            name=f"{prefix} run {i}",
            n_params=round(data.n_params[i]),
            n_tokens=round(data.n_tokens[i]),
            weight_bits=float(data.weight_bits[i]),
            activation_bits=float(data.activation_bits[i]),
            kv_bits=float(data.kv_bits[i]),
            number_format=(
                "fp"
                if np.isfinite(data.exponent_bits[i]) or min(data.weight_bits[i], data.activation_bits[i]) >= 16
                else "int"
            ),
            exponent_bits=int(data.exponent_bits[i]) if np.isfinite(data.exponent_bits[i]) else None,
            mantissa_bits=int(data.mantissa_bits[i]) if np.isfinite(data.mantissa_bits[i]) else None,
            final_loss=float(data.final_loss[i]),
        )
        for i in range(data.n_runs)
    )
    Evaluation.objects.bulk_create(
        Evaluation(run=runs[r], post_train_bits=float(b), loss=float(loss))
        for r, b, loss in zip(
            data.eval_run.tolist(), data.eval_post_bits.tolist(), data.eval_loss.tolist(), strict=True
        )
    )
    return runs


def store_fit(team: Team, result: FitResult, *, family: str, version: int, run_ids: list[int] | None = None) -> Fit:
    """A succeeded fit row as the pipeline publishes it, with the family's current runs as its snapshot."""
    data = fit_data(team_id=team.pk, family=family)
    return Fit.objects.create(
        team=team,
        family=family,
        law=result.law,
        version=version,
        status=Fit.Status.SUCCEEDED,
        run_ids=data.run_ids if run_ids is None else run_ids,
        snapshot=data.to_bytes(),
        data_fingerprint=data.fingerprint,
        params=result.params,
        intervals={k: [v[0], v[1]] for k, v in result.intervals.items()},
        fixed=result.fixed,
        metrics=result.metrics,
        backtest=result.backtest,
        warnings=result.warnings,
        data_range=result.data_range,
        draw_names=result.draw_names,
        draws=np.ascontiguousarray(result.draws, dtype=np.float64).tobytes(),
    )


@pytest.fixture
def alpha(db: None) -> Team:
    return TeamFactory.create(slug="alpha", name="Alpha Lab")


@pytest.fixture
def beta(db: None) -> Team:
    return TeamFactory.create(slug="beta", name="Beta Lab")


def make_user(django_user_model: Any, username: str, *, team: Team | None = None, role: str = "member", **extra: Any):
    user = django_user_model.objects.create_user(username=username, password=PASSWORD, is_staff=True, **extra)
    if team is not None:
        Membership.objects.create(user=user, team=team, role=role)
    return user


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alpha_member(django_user_model: Any, alpha: Team) -> Client:
    return logged_in(make_user(django_user_model, "ada", team=alpha, role="member"))


@pytest.fixture
def alpha_viewer(django_user_model: Any, alpha: Team) -> Client:
    return logged_in(make_user(django_user_model, "vic", team=alpha, role="viewer"))


@pytest.fixture
def alpha_owner(django_user_model: Any, alpha: Team) -> Client:
    return logged_in(make_user(django_user_model, "olga", team=alpha, role="owner"))


@pytest.fixture
def beta_member(django_user_model: Any, beta: Team) -> Client:
    return logged_in(make_user(django_user_model, "bob", team=beta, role="owner"))


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
    v1 = store_fit(alpha, older, family="kumar", version=1, run_ids=ids[:-24])
    Run.objects.filter(pk=excluded.pk).update(excluded=True, exclusion_reason="loss spike")
    v2 = store_fit(alpha, kumar_fit, family="kumar", version=2)
    return v1, v2
