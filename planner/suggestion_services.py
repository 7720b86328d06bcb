"""Next-run suggestions (docs/api.md, Suggestions): which cheap runs would narrow the plan's interval.

The maths is planner.suggestions (pure). A suggestion request is a plan request plus an experiment budget: the
law is chosen as for a plan (planner.law_choice), the plan's optimum is searched on its current fit
(planner.search), then the candidate grid is built from the widths the law can train (ScalingLaw.
suggestion_bit_configs) and ranked. Nothing is stored: a suggestion is a computation on the current fit, like
/predict/. The API's SuggestionsSerializer shapes the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.allocation import FloatArray, PlanResult, cost_factor
from planner.errors import PlanInvalid
from planner.law_choice import LawSelection, law_choose
from planner.models import Plan
from planner.requests import Budget, PlanRequest, budget_from
from planner.search import PlanOnFit, plan_search_on_fit
from planner.services import plan_request_of
from planner.suggestions import (
    DEFAULT_NOISE_REL,
    SuggestionError,
    SuggestionResult,
    Target,
    candidate_grid,
    suggest_runs,
)
from runs.models import Team

MAX_SUGGESTIONS = 10
# Tied widths tried besides the plan's own configuration and 16 bits, when the request gives no bits_choices.
DEFAULT_SUGGESTION_BITS: tuple[float, ...] = (4.0, 6.0, 8.0)
# Bit configurations the candidate grid spans at most (each adds N x tokens-per-parameter candidates, about 100):
# 512 tied widths would be 57,000 candidates and seconds of CPU for little more information.
MAX_SUGGESTION_BIT_CONFIGS = 128
# Smallest candidate N, relative to the plan's N, when the fit's data range does not say.
N_MIN_RATIO = 1e-3
# Experiment budget for a stored plan's suggestions (the admin's plan page) when none is given: this share of the
# plan's budget in FLOPs, the order of a scaling sweep run before a large training run.
DEFAULT_EXPERIMENT_BUDGET_SHARE = 0.01


@dataclass(frozen=True)
class Suggestions:
    """The answer to a suggestion request: the plan it targets, the experiment budget, the ranked runs."""

    request: PlanRequest
    selection: LawSelection
    search: PlanOnFit
    experiment_budget: Budget
    ranked: SuggestionResult
    warnings: tuple[str, ...]

    @property
    def planned(self) -> PlanResult:
        return self.search.planned

    @property
    def expected_narrowing(self) -> float:
        """The share of the target's 95% interval width the suggested runs are expected to remove."""
        before, after = self.ranked.target_interval_before, self.ranked.target_interval_after
        width = before[1] - before[0]
        return 1.0 - (after[1] - after[0]) / width if width > 0 else 0.0


def _at_most(
    configs: list[tuple[float, float, float]], *, keep: list[tuple[float, float, float]]
) -> tuple[list[tuple[float, float, float]], list[str]]:
    """At most MAX_SUGGESTION_BIT_CONFIGS bit configurations for the candidate grid, evenly thinned (the plan's
    own and 16 bits always kept), and the warning that says so: the work of a suggestion grows with the grid."""
    if len(configs) <= MAX_SUGGESTION_BIT_CONFIGS:
        return configs, []
    step = len(configs) / (MAX_SUGGESTION_BIT_CONFIGS - len(keep))
    chosen = {configs[int(i * step)] for i in range(MAX_SUGGESTION_BIT_CONFIGS - len(keep))}
    chosen |= {k for k in keep if k in configs}
    warning = (
        f"{len(configs)} bit configurations: candidate runs were drawn from {len(chosen)} of them, evenly spaced "
        "(with the plan's own and 16 bits)"
    )
    return sorted(chosen), [warning]


def suggestions_compute(
    *, team: Team, request: PlanRequest, experiment_budget: Budget, max_suggestions: int = 3
) -> Suggestions:
    """Up to `max_suggestions` runs, together within `experiment_budget`, that would narrow the 95% interval of
    the loss at the plan's optimum for the request's budget the most (planner.suggestions).

    Only the team's own current fit is used. Raises NoSucceededFit (no succeeded fit, or one without bootstrap
    draws) and PlanInvalid naming the field.
    """
    if isinstance(max_suggestions, bool) or not isinstance(max_suggestions, int) or max_suggestions < 1:
        raise PlanInvalid({"max_suggestions": ["Must be a positive integer."]})
    max_suggestions = min(max_suggestions, MAX_SUGGESTIONS)
    selection = law_choose(team=team, request=request)
    search = plan_search_on_fit(
        team=team, request=request, law=selection.used, fit_id=selection.fit_id, need_draws=True
    )
    assert search.draws is not None  # need_draws
    result, rec = search.result, search.planned.recommendation
    hardware, cost_model = search.planned.hardware, request.cost_model

    def factor(w: FloatArray, a: FloatArray) -> FloatArray:
        return cost_factor(w, a, cost_model=cost_model, hardware=hardware)  # type: ignore[arg-type]

    recommended = (rec.weight_bits, rec.activation_bits, rec.kv_bits)
    configs, thinned = _at_most(
        search.law.suggestion_bit_configs(
            recommended, result.all_params, request.constraints.bits, DEFAULT_SUGGESTION_BITS
        ),
        keep=[recommended, (16.0, 16.0, 16.0)],
    )
    n_min = float(result.data_range.get("n_params_min") or rec.n_params * N_MIN_RATIO)
    n_max = float(rec.n_params)
    try:
        candidates = candidate_grid(
            experiment_flops=experiment_budget.flops,
            bit_configs=configs,
            cost_factor_fn=factor,
            n_min=min(n_min, n_max),
            n_max=n_max,
        )
        ranked = suggest_runs(
            search.draws,
            Target(
                n_params=float(rec.n_params),
                n_tokens=float(rec.n_tokens),
                weight_bits=rec.weight_bits,
                activation_bits=rec.activation_bits,
                kv_bits=rec.kv_bits,
                post_train_bits=rec.post_train_bits,
            ),
            candidates,
            experiment_flops=experiment_budget.flops,
            max_suggestions=max_suggestions,
            noise_rel=float(result.metrics.get("rmse_log") or DEFAULT_NOISE_REL),
        )
    except SuggestionError as exc:
        raise PlanInvalid({"experiment_budget": [str(exc)]}) from exc
    return Suggestions(
        request=request,
        selection=selection,
        search=search,
        experiment_budget=experiment_budget,
        ranked=ranked,
        warnings=(*search.warnings, *thinned, *selection.warnings),
    )


def suggestions_for_plan(
    *, plan: Plan, experiment_budget: Budget | None = None, max_suggestions: int = 3
) -> Suggestions:
    """suggestions_compute for a stored plan's request on the family's current fit (which may be newer than the
    plan's); `experiment_budget` defaults to DEFAULT_EXPERIMENT_BUDGET_SHARE of the plan's budget in FLOPs."""
    if experiment_budget is None:
        experiment_budget = budget_from(
            {"flops": plan.budget_flops * DEFAULT_EXPERIMENT_BUDGET_SHARE}, section="experiment_budget"
        )
    request = plan_request_of(plan).with_law(plan.law)
    return suggestions_compute(
        team=plan.team, request=request, experiment_budget=experiment_budget, max_suggestions=max_suggestions
    )


__all__ = [
    "DEFAULT_EXPERIMENT_BUDGET_SHARE",
    "MAX_SUGGESTIONS",
    "Suggestions",
    "suggestions_compute",
    "suggestions_for_plan",
]
