"""Next-run suggestions (docs/api.md, Suggestions): which cheap runs would narrow the plan's interval.

The maths is planner.suggestions (pure); this module reuses the plans section of planner.services to turn the
family's current fit into loss functions, validate the budgets and constraints and find the plan's optimum,
then builds the candidate grid and ranks it. Nothing is stored: a suggestion is a computation on the current
fit, like /predict/.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fits.json_numbers import finite_or_none
from fits.models import Law
from planner.allocation import FloatArray, cost_factor
from planner.models import Plan
from planner.services import (
    NoSucceededFit,
    PlanInvalid,
    config_json,
    format_json,
    plan_budget_validate,
    plan_fit_warnings,
    plan_search_on_current_fit,
)
from planner.suggestions import (
    DEFAULT_NOISE_REL,
    SuggestionError,
    Target,
    candidate_grid,
    suggest_runs,
)
from runs.models import Team

MAX_SUGGESTIONS = 10
# Tied widths tried besides the plan's own configuration and 16 bits (precision law), when the request gives
# no bits_choices.
DEFAULT_SUGGESTION_BITS: tuple[float, ...] = (4.0, 6.0, 8.0)
# Bit configurations the candidate grid spans at most (each adds N x tokens-per-parameter candidates, about 100):
# 512 tied widths would be 57,000 candidates and seconds of CPU for little more information.
MAX_SUGGESTION_BIT_CONFIGS = 128
# Smallest candidate N, relative to the plan's N, when the fit's data range does not say.
N_MIN_RATIO = 1e-3
# Experiment budget for a stored plan's suggestions (the admin's plan page) when none is given: this share of the
# plan's budget in FLOPs, the order of a scaling sweep run before a large training run.
DEFAULT_EXPERIMENT_BUDGET_SHARE = 0.01


def _experiment_budget(experiment_budget: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
    try:
        normal, flops, _, _ = plan_budget_validate(experiment_budget)
    except PlanInvalid as exc:
        raise PlanInvalid({"experiment_budget": exc.errors.get("budget", exc.errors)}) from exc
    return normal, flops


def _bit_configs(
    law: str, rec: tuple[float, float, float], params: Mapping[str, float], constraints: Mapping[str, Any]
) -> list[tuple[float, float, float]]:
    """The plan's bits, 16 bits, and tied widths (bits_choices or the defaults); a width the request fixes or
    the family never varied (its gamma is held at 0) stays at the plan's value."""
    if law == Law.CHINCHILLA:
        return [(16.0, 16.0, 16.0)]
    if law == Law.FP:  # one format for everything: tied widths, or only the plan's when the request fixes it
        if "weight_bits" in constraints:
            return [rec]
        widths = constraints.get("bits_choices") or DEFAULT_SUGGESTION_BITS
        return sorted({rec, (16.0, 16.0, 16.0), *((float(b), float(b), float(b)) for b in widths)})
    tied = constraints.get("bits_choices") or DEFAULT_SUGGESTION_BITS
    out = {rec, (16.0, 16.0, 16.0), *((float(b), float(b), float(b)) for b in tied)}
    keys = ("weight_bits", "activation_bits", "kv_bits")
    dims = ("w", "a", "kv")
    fixed = [
        i
        for i, (key, dim) in enumerate(zip(keys, dims, strict=True))
        if key in constraints or float(params.get(f"gamma_{dim}", 0.0)) <= 0.0
    ]
    configs = set()
    for cfg in out:
        values = list(cfg)
        for i in fixed:
            values[i] = rec[i]
        configs.add((values[0], values[1], values[2]))
    return sorted(configs)


def suggestions_compute(
    *,
    team: Team,
    family: str,
    law: str = "precision",
    budget: Mapping[str, Any],
    constraints: Mapping[str, Any] | None = None,
    cost_model: str = "linear_bits",
    experiment_budget: Mapping[str, Any],
    max_suggestions: int = 3,
    fit_id: int | None = None,
) -> dict[str, Any]:
    """Up to `max_suggestions` runs, together within `experiment_budget`, that would narrow the 95% interval
    of the loss at the plan's optimum for `budget` the most (planner.suggestions), as the response body.

    Only the team's own current fit is used. Raises NoSucceededFit (no succeeded fit, or one without bootstrap
    draws) and PlanInvalid naming the field.
    """
    if isinstance(max_suggestions, bool) or not isinstance(max_suggestions, int) or max_suggestions < 1:
        raise PlanInvalid({"max_suggestions": ["Must be a positive integer."]})
    max_suggestions = min(max_suggestions, MAX_SUGGESTIONS)
    experiment_json, experiment_flops = _experiment_budget(experiment_budget)
    search = plan_search_on_current_fit(
        team=team,
        family=family,
        law=law,
        budget=budget,
        constraints=constraints,
        cost_model=cost_model,
        fit_id=fit_id,  # the version the law selection ranked, when it ranked one
    )
    if search.draws is None:
        raise NoSucceededFit(f"The current {law} fit of {family!r} has no bootstrap draws to compare.")
    fit, result, draws, planned, hardware = search.fit, search.result, search.draws, search.planned, search.hardware
    budget_json, budget_flops, constraints_json = search.budget_json, search.budget_flops, search.constraints_json
    rec = planned.recommendation

    def factor(w: FloatArray, a: FloatArray) -> FloatArray:
        return cost_factor(w, a, cost_model=cost_model, hardware=hardware)  # type: ignore[arg-type]

    rng = result.data_range
    n_min = float(rng.get("n_params_min") or rec.n_params * N_MIN_RATIO)
    n_max = float(rec.n_params)
    noise = float(result.metrics.get("rmse_log") or DEFAULT_NOISE_REL)
    configs, thinned = _at_most(
        _bit_configs(law, (rec.weight_bits, rec.activation_bits, rec.kv_bits), result.all_params, constraints_json),
        keep=[(rec.weight_bits, rec.activation_bits, rec.kv_bits), (16.0, 16.0, 16.0)],
    )
    try:
        candidates = candidate_grid(
            experiment_flops=experiment_flops,
            bit_configs=configs,
            cost_factor_fn=factor,
            n_min=min(n_min, n_max),
            n_max=n_max,
        )
        ranked = suggest_runs(
            draws,
            Target(
                n_params=float(rec.n_params),
                n_tokens=float(rec.n_tokens),
                weight_bits=rec.weight_bits,
                activation_bits=rec.activation_bits,
                kv_bits=rec.kv_bits,
                post_train_bits=rec.post_train_bits,
            ),
            candidates,
            experiment_flops=experiment_flops,
            max_suggestions=max_suggestions,
            noise_rel=noise,
        )
    except SuggestionError as exc:
        raise PlanInvalid({"experiment_budget": [str(exc)]}) from exc
    before, after = ranked.target_interval_before, ranked.target_interval_after
    width_before = before[1] - before[0]
    width_after = after[1] - after[0]
    return {
        "family": family,
        "law": law,
        "fit": {"id": fit.pk, "version": fit.version},
        "budget": budget_json,
        "budget_flops": budget_flops,
        "constraints": constraints_json,
        "cost_model": cost_model,
        "hardware": planned.hardware or "",
        "experiment_budget": experiment_json,
        "experiment_budget_flops": experiment_flops,
        "target": config_json(rec, result),
        "target_loss_interval": [finite_or_none(v) for v in before],
        "expected_target_loss_interval": [finite_or_none(v) for v in after],
        "expected_narrowing": finite_or_none(1.0 - width_after / width_before) if width_before > 0 else 0.0,
        "total_cost_flops": ranked.total_cost_flops,
        "noise_rel": ranked.noise_rel,
        "n_draws": ranked.n_draws,
        "n_candidates": ranked.n_candidates,
        "selection": ranked.strategy,
        "suggestions": [
            {
                "rank": i + 1,
                "n_params": s.n_params,
                "n_tokens": s.n_tokens,
                "tokens_per_param": s.n_tokens / s.n_params,
                "weight_bits": s.weight_bits,
                "activation_bits": s.activation_bits,
                "kv_bits": s.kv_bits,
                **format_json(result, s.weight_bits),
                "cost_flops": s.cost_flops,
                "predicted_loss": finite_or_none(s.predicted_loss),
                "predicted_loss_interval": [finite_or_none(v) for v in s.predicted_loss_interval],
                "target_variance_reduction": finite_or_none(s.variance_reduction),
                "expected_target_interval_width": finite_or_none(s.target_interval_width_after),
            }
            for i, s in enumerate(ranked.suggestions)
        ],
        "warnings": [*planned.warnings, *plan_fit_warnings(fit, result, rec), *thinned],
    }


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


def suggestions_for_plan(
    *, plan: Plan, experiment_budget: Mapping[str, Any] | None = None, max_suggestions: int = 3
) -> dict[str, Any]:
    """suggestions_compute for a stored plan's team, family, law, budget, constraints and cost model, on the
    family's current fit (which may be newer than the plan's); `experiment_budget` defaults to
    DEFAULT_EXPERIMENT_BUDGET_SHARE of the plan's budget in FLOPs. Raises as suggestions_compute does.
    """
    if experiment_budget is None:
        experiment_budget = {"flops": plan.budget_flops * DEFAULT_EXPERIMENT_BUDGET_SHARE}
    return suggestions_compute(
        team=plan.team,
        family=plan.family,
        law=plan.law,
        budget=plan.budget,
        constraints=plan.constraints,
        cost_model=plan.cost_model,
        experiment_budget=experiment_budget,
        max_suggestions=max_suggestions,
    )


__all__ = ["DEFAULT_EXPERIMENT_BUDGET_SHARE", "MAX_SUGGESTIONS", "suggestions_compute", "suggestions_for_plan"]
