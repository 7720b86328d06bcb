"""POST /api/v1/plans/ (and /suggestions/) with law "auto", the default: the best-ranked law that can serve.

Fits are stored directly with published parameters (tests.factories.FitFactory) and a backtest score, so
which law wins is set by the test, not by a fit.
"""

import pytest

from planner.errors import NoSucceededFit
from planner.law_choice import law_choose
from planner.models import Plan
from planner.search import plan_search_on_fit
from planner.services import plan_create, plan_rerun
from tests.factories import FitFactory, plan_request, scored_backtest
from tests.published import EPOCH, KUMAR

pytestmark = pytest.mark.django_db

BUDGET = {"flops": 1e21}


def scored_fit(team, law, score, *, version=1, n_runs=40, params=None):
    """A succeeded fit of the law's published parameters whose backtest scored `score` (scored_backtest)."""
    return FitFactory.create(
        team=team,
        law=law,
        version=version,
        params=params if params is not None else (EPOCH if law == "chinchilla" else KUMAR),
        backtest=scored_backtest(score),
        metrics={"n_draws": 200, "n_runs": float(n_runs)},
    )


@pytest.fixture
def chinchilla_ranks_first(team):
    return {"chinchilla": scored_fit(team, "chinchilla", 0.010), "precision": scored_fit(team, "precision", 0.025)}


def test_a_plan_without_a_law_uses_the_best_ranked_law_and_says_so(client_rw, team, chinchilla_ranks_first, post_plan):
    body = post_plan(client_rw, {"family": "main", "budget": BUDGET})

    assert body["law"] == "chinchilla"
    assert body["fit"] == {"id": chinchilla_ranks_first["chinchilla"].pk, "law": "chinchilla", "version": 1}
    assert body["requested_law"] == "auto"
    selection = body["law_selection"]
    assert (selection["requested"], selection["used"]) == ("auto", "chinchilla")
    assert selection["reason"].startswith("chinchilla ranks first by backtest error")
    assert [(e["law"], e["rank"], e["score"]) for e in selection["ranking"]] == [
        ("chinchilla", 1, 0.010),
        ("precision", 2, 0.025),
    ]
    stored = Plan.objects.get(pk=body["id"])
    assert (stored.law, stored.requested_law, stored.law_selection) == ("chinchilla", "auto", selection)


def test_auto_is_the_same_as_no_law(client_rw, team, chinchilla_ranks_first, post_plan):
    body = post_plan(client_rw, {"family": "main", "law": "auto", "budget": BUDGET})
    assert (body["law"], body["requested_law"]) == ("chinchilla", "auto")


@pytest.mark.parametrize(
    ("key", "value"),
    [("weight_bits", 8), ("activation_bits", 8), ("kv_bits", 8), ("bits_choices", [4, 8]), ("tie_bits", True)],
)
def test_a_bit_constraint_moves_auto_to_a_law_that_models_precision(
    client_rw, team, chinchilla_ranks_first, key, value, post_plan
):
    body = post_plan(client_rw, {"family": "main", "budget": BUDGET, "constraints": {key: value}})

    assert body["law"] == "precision"
    assert body["fit"]["id"] == chinchilla_ranks_first["precision"].pk
    reason = body["law_selection"]["reason"]
    assert reason.startswith("precision is the best-ranked law that can serve this request (rank 2")
    assert f"chinchilla cannot serve this request (constraints.{key}:" in reason


def test_post_train_bits_needs_a_fit_with_a_ptq_term(client_rw, team, chinchilla_ranks_first, post_plan):
    body = post_plan(client_rw, {"family": "main", "budget": BUDGET, "constraints": {"post_train_bits": 4}})
    assert body["law"] == "precision"
    assert "chinchilla cannot serve this request (constraints.post_train_bits:" in body["law_selection"]["reason"]


def test_post_train_bits_that_no_law_can_serve_is_a_400_naming_it(client_rw, team, post_plan):
    scored_fit(team, "chinchilla", 0.010)
    no_ptq = {k: v for k, v in KUMAR.items() if k not in {"C_T", "gamma_D", "gamma_N", "gamma_post", "n_post"}}
    scored_fit(team, "precision", 0.025, params=no_ptq)

    errors = post_plan(
        client_rw, {"family": "main", "budget": BUDGET, "constraints": {"post_train_bits": 4}}, expected=400
    )["errors"]

    assert "no PTQ term" in errors["constraints"]["post_train_bits"][0]  # precision's answer, the fallback
    assert not Plan.objects.exists()


def test_an_explicit_law_is_used_as_before(client_rw, team, chinchilla_ranks_first, post_plan):
    body = post_plan(client_rw, {"family": "main", "law": "precision", "budget": BUDGET})

    assert body["law"] == "precision"
    assert body["fit"]["law"] == "precision"
    assert body["requested_law"] == "precision"
    assert body["law_selection"] == {
        "requested": "precision",
        "used": "precision",
        "reason": "requested explicitly",
        "ranking": [],
    }
    # An explicit chinchilla still refuses bit constraints, naming the field.
    bits = {"family": "main", "law": "chinchilla", "budget": BUDGET, "constraints": {"weight_bits": 8}}
    assert "weight_bits" in post_plan(client_rw, bits, expected=400)["errors"]["constraints"]


def test_an_explicit_law_plans_exactly_as_auto_does_when_auto_picks_it(client_rw, team, post_plan):
    scored_fit(team, "precision", 0.010)
    scored_fit(team, "chinchilla", 0.030)
    auto = post_plan(client_rw, {"family": "main", "budget": BUDGET})
    explicit = post_plan(client_rw, {"family": "main", "law": "precision", "budget": BUDGET})
    assert auto["law"] == "precision"
    assert auto["recommendation"] == explicit["recommendation"]


def test_only_old_fits_fall_back_to_precision_and_say_so(client_rw, team, post_plan):
    scored_fit(team, "chinchilla", None)
    scored_fit(team, "precision", None)

    body = post_plan(client_rw, {"family": "main", "budget": BUDGET})

    assert body["law"] == "precision"
    reason = body["law_selection"]["reason"]
    assert reason.startswith("no law is eligible to be the best yet")
    assert "fitted before law ranking; refit to rank" in reason
    assert reason.endswith("fell back to precision, the default law")
    assert [e["rank"] for e in body["law_selection"]["ranking"]] == [None, None]


def test_without_a_precision_fit_any_law_with_a_succeeded_fit_serves(client_rw, team, post_plan):
    scored_fit(team, "chinchilla", None)
    body = post_plan(client_rw, {"family": "main", "budget": BUDGET})
    assert body["law"] == "chinchilla"
    assert body["law_selection"]["reason"].endswith("fell back to chinchilla, a law with a succeeded fit")


def test_a_law_covering_fewer_runs_is_not_chosen(client_rw, team, post_plan):
    scored_fit(team, "chinchilla", 0.005, n_runs=12)
    scored_fit(team, "precision", 0.030, n_runs=40)

    body = post_plan(client_rw, {"family": "main", "budget": BUDGET})

    assert body["law"] == "precision"
    assert "chinchilla: covers 12 of the 40 runs" in body["law_selection"]["reason"]


def test_no_succeeded_fit_of_any_law_is_409(client_rw, team):
    FitFactory.create(team=team, failed=True)
    response = client_rw.post("/api/v1/plans/", {"family": "main", "budget": BUDGET}, format="json")
    assert response.status_code == 409
    assert "any law" in response.json()["errors"]["detail"][0]


def test_a_bad_budget_is_a_400_even_without_a_fit(client_rw, team, post_plan):
    errors = post_plan(client_rw, {"family": "main", "budget": {"flops": -1}}, expected=400)["errors"]
    assert "flops" in errors["budget"]
    with pytest.raises(Exception, match="budget"):
        plan_create(team=team, request=plan_request(family="main", budget={"flops": 1e21, "dollars": 3}))


def test_rerun_of_an_auto_plan_stays_auto_and_picks_the_law_again(team, chinchilla_ranks_first):
    plan = plan_create(team=team, request=plan_request(family="main", budget=BUDGET))
    assert (plan.law, plan.requested_law) == ("chinchilla", "auto")
    scored_fit(team, "precision", 0.001, version=2)  # a refit: precision now ranks first

    again = plan_rerun(plan=plan)

    assert (again.law, again.requested_law) == ("precision", "auto")
    assert again.law_selection["used"] == "precision"
    assert again.fit.version == 2


def test_rerun_of_an_explicit_plan_keeps_its_law(team, chinchilla_ranks_first):
    plan = plan_create(team=team, request=plan_request(family="main", law="precision", budget=BUDGET))
    again = plan_rerun(plan=plan)
    assert (again.law, again.requested_law) == ("precision", "precision")


def test_the_database_refuses_a_plan_answered_with_another_law_than_asked(team, chinchilla_ranks_first):
    from django.db import IntegrityError, transaction

    plan = plan_create(team=team, request=plan_request(family="main", law="chinchilla", budget=BUDGET))
    with transaction.atomic(), pytest.raises(IntegrityError):
        Plan.objects.filter(pk=plan.pk).update(requested_law="precision")


def test_law_choice_reads_only_the_team_s_fits(team, other_team):
    scored_fit(other_team, "chinchilla", 0.01)
    with pytest.raises(NoSucceededFit):
        law_choose(team=team, request=plan_request(family="main", budget={"flops": 1e21}))


def test_list_filters_by_the_law_used(client_rw, team, chinchilla_ranks_first, post_plan):
    auto = post_plan(client_rw, {"family": "main", "budget": BUDGET})["id"]
    explicit = post_plan(client_rw, {"family": "main", "law": "precision", "budget": BUDGET})["id"]
    assert [p["id"] for p in client_rw.get("/api/v1/plans/?law=chinchilla").json()["results"]] == [auto]
    assert [p["id"] for p in client_rw.get("/api/v1/plans/?law=precision").json()["results"]] == [explicit]


def test_suggestions_default_to_auto_as_well(client_rw, team, chinchilla_ranks_first):
    body = {"family": "main", "budget": BUDGET, "experiment_budget": {"flops": 1e19}}

    response = client_rw.post("/api/v1/suggestions/", body, format="json")

    assert response.status_code == 200, response.json()
    answer = response.json()
    assert answer["law"] == "chinchilla"
    assert answer["fit"]["id"] == chinchilla_ranks_first["chinchilla"].pk
    assert answer["law_selection"]["requested"] == "auto"
    explicit = client_rw.post("/api/v1/suggestions/", {**body, "law": "precision"}, format="json").json()
    assert explicit["law"] == "precision"
    assert explicit["law_selection"]["reason"] == "requested explicitly"


def test_an_auto_plan_warns_when_the_ranking_rests_on_few_held_out_runs(
    client_rw, team, chinchilla_ranks_first, post_plan
):
    # The scored fits held out 4 runs (below fits.ranking.MIN_HELD_OUT_RUNS): the choice of law is weak.
    auto = post_plan(client_rw, {"family": "main", "budget": BUDGET})
    assert any("rests on 4 held-out runs" in w for w in auto["warnings"]), auto["warnings"]
    ranking = client_rw.get("/api/v1/fits/ranking/", {"family": "main"}).json()
    assert any("rests on 4 held-out runs" in w for w in ranking["warnings"])

    explicit = post_plan(client_rw, {"family": "main", "law": "precision", "budget": BUDGET})
    assert not any("held-out run" in w for w in explicit["warnings"])  # no ranking was read


def test_an_auto_plan_rests_on_the_fit_version_its_law_selection_ranked(team, chinchilla_ranks_first):
    # A newer succeeded version landing between the ranking and the search must not replace the ranked one:
    # the plan's reason quotes that version's backtest.
    selection = law_choose(team=team, request=plan_request(family="main", budget={"flops": 1e21}))
    assert selection.used == "chinchilla"
    assert selection.fit_id == chinchilla_ranks_first["chinchilla"].pk
    newer = scored_fit(team, "chinchilla", 0.5, version=2)
    request = plan_request(family="main", budget=BUDGET)
    ranked = plan_search_on_fit(team=team, request=request, law="chinchilla", fit_id=selection.fit_id)
    assert ranked.fit.pk == selection.fit_id
    assert plan_search_on_fit(team=team, request=request, law="chinchilla").fit.pk == newer.pk


def test_the_ranking_of_a_plan_says_what_each_score_was_measured_on(client_rw, team, chinchilla_ranks_first, post_plan):
    body = post_plan(client_rw, {"family": "main", "budget": BUDGET})
    assert [(e["scheme"], e["n_held_out_runs"]) for e in body["law_selection"]["ranking"]] == [("largest_n", 4)] * 2
    # A plan stored before the basis was kept answers null for it.
    stored = Plan.objects.get(pk=body["id"])
    old = [
        {k: v for k, v in e.items() if k not in ("scheme", "n_held_out_runs")} for e in stored.law_selection["ranking"]
    ]
    Plan.objects.filter(pk=stored.pk).update(law_selection={**stored.law_selection, "ranking": old})
    again = client_rw.get(f"/api/v1/plans/{stored.pk}/").json()["law_selection"]["ranking"]
    assert [(e["scheme"], e["n_held_out_runs"]) for e in again] == [(None, None)] * 2


def test_when_no_law_is_eligible_a_plan_uses_the_law_the_ranking_names_best(client_rw, team, post_plan):
    # fp has the only score but covers a subset of the runs: the ranking names it best with a warning, and an
    # auto plan answers with the same law and says why, rather than with a law the ranking did not name.
    scored_fit(team, "chinchilla", 0.005, n_runs=12)
    scored_fit(team, "precision", None, n_runs=40)
    ranking = client_rw.get("/api/v1/fits/ranking/", {"family": "main"}).json()
    body = post_plan(client_rw, {"family": "main", "budget": BUDGET})
    assert ranking["best"] == body["law"] == "chinchilla"
    assert body["law_selection"]["reason"].endswith("fell back to chinchilla, the law the ranking names best")
