"""factory_boy factories and data builders for the test suite: model rows, API payloads and the shared
constants of the tests. Test modules import from here (or from tests.published), never from each other."""

import math
from typing import Any

import factory
import numpy as np
from django.contrib.auth import get_user_model

from fits.laws import FitResult, Observations
from fits.models import Fit
from fits.references import density_reference_refresh
from fits.selectors import fit_data
from planner.models import Plan
from planner.requests import AUTO_LAW, ConstraintsRequest, PlanRequest, budget_from
from runs.models import Evaluation, Membership, Run, Team
from tests.published import EPOCH, KUMAR, SUN

N_BOOTSTRAP = 8  # enough draws for intervals and bands in tests that only read them
PASSWORD = "correct horse battery staple"  # of every user made by staff_user()

# Published parameters a stored fit carries unless a test gives its own. The fp law absorbs log2(block size)
# into gamma; Sun et al. scaled blocks of 128 elements.
PUBLISHED_PARAMS: dict[str, dict[str, float]] = {
    "chinchilla": EPOCH,
    "precision": KUMAR,
    "fp": {**SUN, "gamma": SUN["gamma"] / math.log2(128.0)},
}

# What a family's data spanned (a stored fit's extrapolation reference); Kumar's sweep went up to 1.7B parameters.
KUMAR_DATA_RANGE = {
    "n_params_min": 3e7,
    "n_params_max": 1.7e9,
    "n_tokens_min": 1e9,
    "n_tokens_max": 2.6e10,
    "weight_bits_min": 3.0,
    "weight_bits_max": 16.0,
    "activation_bits_min": 3.0,
    "activation_bits_max": 16.0,
    "kv_bits_min": 3.0,
    "kv_bits_max": 16.0,
    "post_train_bits_min": 3.0,
    "post_train_bits_max": 8.0,
}


class TeamFactory(factory.django.DjangoModelFactory[Team]):
    class Meta:
        model = Team
        django_get_or_create = ["slug"]

    slug = factory.Sequence(lambda i: f"team-{i}")
    name = factory.LazyAttribute(lambda team: team.slug.title())


class RunFactory(factory.django.DjangoModelFactory[Run]):
    class Meta:
        model = Run

    team = factory.SubFactory(TeamFactory)
    family = "sweep"
    n_params = factory.Sequence(lambda i: 10_000_000 * (1 + i % 20))
    n_tokens = factory.Sequence(lambda i: 1_000_000_000 * (1 + i % 7))
    final_loss = factory.Sequence(lambda i: 3.0 + (i % 11) / 10)


class EvaluationFactory(factory.django.DjangoModelFactory[Evaluation]):
    class Meta:
        model = Evaluation

    run = factory.SubFactory(RunFactory)
    post_train_bits = 4
    loss = factory.LazyAttribute(lambda e: (e.run.final_loss or 3.0) + 0.1)


class RunPayloadFactory(factory.DictFactory):
    """The JSON body of POST /api/v1/runs/."""

    external_id = factory.Sequence(lambda i: f"run-{i}")
    family = "sweep"
    n_params = factory.Sequence(lambda i: 30_000_000 * (1 + i % 8))
    n_tokens = factory.Sequence(lambda i: 1_500_000_000 * (1 + i % 5))
    weight_bits = 16
    final_loss = 3.21


def payload(**overrides: Any) -> dict[str, Any]:
    """A valid run body with `overrides` applied (a key set to ... is removed)."""
    body: dict[str, Any] = dict(RunPayloadFactory.create())
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def payloads_from_observations(observations: Any, *, family: str, prefix: str = "run") -> list[dict[str, Any]]:
    """Run bodies for POST /api/v1/runs/ from a fits.laws.Observations (evaluations nested)."""
    o = observations
    evaluations: dict[int, list[dict[str, Any]]] = {}
    for run, bits, loss in zip(o.eval_run.tolist(), o.eval_post_bits.tolist(), o.eval_loss.tolist(), strict=True):
        evaluations.setdefault(run, []).append({"post_train_bits": bits, "loss": loss})
    return [
        {
            "external_id": f"{prefix}-{i}",
            "family": family,
            "n_params": round(o.n_params[i]),
            "n_tokens": round(o.n_tokens[i]),
            "weight_bits": float(o.weight_bits[i]),
            "activation_bits": float(o.activation_bits[i]),
            "kv_bits": float(o.kv_bits[i]),
            "final_loss": float(o.final_loss[i]),
            **({"evaluations": evaluations[i]} if i in evaluations else {}),
            **(
                {"exponent_bits": int(o.exponent_bits[i]), "mantissa_bits": int(o.mantissa_bits[i])}
                if np.isfinite(o.exponent_bits[i])
                else {}
            ),
        }
        for i in range(o.n_runs)
    ]


def lognormal_draws(params: dict[str, float], *, n_draws: int, spread: float, seed: int) -> bytes:
    """Bootstrap draws as the draws column stores them: each parameter times a seeded log-normal factor of
    relative width `spread`, one row per draw, columns in the order of `params`."""
    centre = np.array(list(params.values()), dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = centre * np.exp(spread * rng.standard_normal((n_draws, centre.size)))
    return np.ascontiguousarray(draws, dtype=np.float64).tobytes()


class FitFactory(factory.django.DjangoModelFactory[Fit]):
    """A succeeded fit as the pipeline publishes it.

    By default: the law's published parameters (PUBLISHED_PARAMS) with `n_draws` seeded log-normal draws of
    relative width `spread` (seeded by the version), over Kumar's data range. Parameters:
    - `result=` a FitResult: its columns (Fit.result_fields) and law instead;
    - `failed=True`: a failed fit, with no parameters and no draws;
    - `of_current_runs=True`: the family's current runs as the fit's snapshot (run_ids, snapshot, fingerprint).
    Any column can still be given directly.
    """

    class Meta:
        model = Fit
        skip_postgeneration_save = True

    class Params:
        result: FitResult | None = None
        n_draws = 200
        spread = 0.01
        of_current_runs = False
        columns = factory.LazyAttribute(lambda o: Fit.result_fields(o.result) if o.result is not None else None)
        family_data = factory.LazyAttribute(
            lambda o: fit_data(team_id=o.team.pk, family=o.family) if o.of_current_runs else None
        )
        failed = factory.Trait(
            status=Fit.Status.FAILED,
            params={},
            draw_names=[],
            draws=None,
            metrics={},
            data_range={},
            error="FitFailed: fewer than 3 distinct N",
        )

    team = factory.SubFactory(TeamFactory)
    family = "main"
    law = factory.LazyAttribute(lambda o: o.result.law if o.result is not None else "precision")
    version = 1
    status = Fit.Status.SUCCEEDED
    run_ids = factory.LazyAttribute(lambda o: o.family_data.run_ids if o.family_data is not None else [])
    snapshot = factory.LazyAttribute(lambda o: o.family_data.to_bytes() if o.family_data is not None else None)
    data_fingerprint = factory.LazyAttribute(lambda o: o.family_data.fingerprint if o.family_data is not None else "")
    params = factory.LazyAttribute(
        lambda o: o.columns["params"] if o.columns is not None else dict(PUBLISHED_PARAMS[o.law])
    )
    intervals = factory.LazyAttribute(lambda o: o.columns["intervals"] if o.columns is not None else {})
    fixed = factory.LazyAttribute(lambda o: o.columns["fixed"] if o.columns is not None else {})
    metrics = factory.LazyAttribute(lambda o: o.columns["metrics"] if o.columns is not None else {"n_draws": o.n_draws})
    backtest = factory.LazyAttribute(lambda o: o.columns["backtest"] if o.columns is not None else {})
    warnings = factory.LazyAttribute(lambda o: o.columns["warnings"] if o.columns is not None else [])
    screened = factory.LazyAttribute(lambda o: o.columns["screened"] if o.columns is not None else [])
    data_range = factory.LazyAttribute(
        lambda o: o.columns["data_range"] if o.columns is not None else dict(KUMAR_DATA_RANGE)
    )
    draw_names = factory.LazyAttribute(lambda o: o.columns["draw_names"] if o.columns is not None else list(o.params))
    draws = factory.LazyAttribute(
        lambda o: o.columns["draws"]
        if o.columns is not None
        else lognormal_draws(o.params, n_draws=o.n_draws, spread=o.spread, seed=o.version)
    )

    @factory.post_generation
    def density_reference(obj: Fit, create: bool, extracted: Any, **kwargs: Any) -> None:  # noqa: N805
        """As publishing does (fits.pipeline): the family's density reference follows its current fits."""
        if create:
            density_reference_refresh(team_id=obj.team_id, family=obj.family)


def scored_backtest(score: float | None) -> dict[str, float]:
    """A fit's backtest scored `score` (rmse_log_runs, what laws are ranked by); None: a backtest without the
    run-level score, which leaves the fit unranked."""
    backtest = {"rmse_log": 0.05, "mean_signed_error": 0.0, "n_held_out": 6.0}
    if score is not None:
        backtest.update(rmse_log_runs=score, n_held_out_runs=4.0)
    return backtest


class PlanFactory(factory.django.DjangoModelFactory[Plan]):
    """A stored plan of a fit (by default a new succeeded fit), asked with an explicit law for `budget`.

    The outputs are whatever the test gives (empty by default): a factory does not run the planner; tests that
    need a real answer call planner.services.plan_create."""

    class Meta:
        model = Plan

    fit = factory.SubFactory(FitFactory)
    team = factory.SelfAttribute("fit.team")
    family = factory.SelfAttribute("fit.family")
    law = factory.SelfAttribute("fit.law")
    requested_law = factory.SelfAttribute("law")
    budget = factory.LazyFunction(lambda: {"flops": 1e21})
    budget_flops = factory.LazyAttribute(lambda o: float(o.budget["flops"]))
    cost_model = Plan.CostModel.LINEAR_BITS


def runs_from_observations(team: Team, data: Observations, *, family: str, prefix: str) -> list[Run]:
    """Rows straight into the database (no services: no refit is queued)."""
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


def staff_user(username: str, *, team: Team | None = None, role: str = "member", **extra: Any) -> Any:
    """A staff user with password PASSWORD, a member of `team` with `role` when a team is given."""
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=True, **extra)
    if team is not None:
        Membership.objects.create(user=user, team=team, role=role)
    return user


def logged_in(user: Any) -> Any:
    """A Django test client logged in as `user`."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def plan_request(
    *,
    family: str,
    budget: dict[str, Any],
    constraints: dict[str, Any] | None = None,
    law: str = AUTO_LAW,
    cost_model: str = "linear_bits",
) -> PlanRequest:
    """A PlanRequest from JSON-like arguments, as the API's serializer builds one (planner.requests)."""
    return PlanRequest(
        family=family,
        budget=budget_from(budget),
        constraints=ConstraintsRequest.from_json(constraints),
        law=law,
        cost_model=cost_model,
    )
