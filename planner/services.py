"""Plans: answer a plan request and store the answer (docs/api.md, Plans).

A request (planner.requests.PlanRequest, validated once) goes through three steps: the law that answers it
(planner.law_choice), the search on that law's current fit (planner.search), and the record written here.
"""

from typing import Any

from fits.json_numbers import finite_or_none
from fits.laws import ScalingLaw
from planner.allocation import OptimumSpread, PlanConfig
from planner.law_choice import law_choose
from planner.models import Plan
from planner.requests import ConstraintsRequest, PlanRequest, budget_from
from planner.search import plan_search_on_fit
from runs.models import Team


def config_json(config: PlanConfig | None, law: ScalingLaw, params: dict[str, float]) -> dict[str, Any] | None:
    """A searched configuration as plans store it, with the law's deployment format (ScalingLaw.deployment_format)."""
    if config is None:
        return None
    interval = config.predicted_loss_interval
    return {
        "n_params": int(config.n_params),
        "n_tokens": int(config.n_tokens),
        "tokens_per_param": config.tokens_per_param,
        "weight_bits": config.weight_bits,
        "activation_bits": config.activation_bits,
        "kv_bits": config.kv_bits,
        "post_train_bits": config.post_train_bits,
        "predicted_loss": finite_or_none(config.predicted_loss),
        "predicted_loss_interval": None if interval is None else [finite_or_none(v) for v in interval],
        "compute_flops": config.compute_flops,
        "weights_memory_bytes": config.weights_memory_bytes,
        **law.deployment_format(params, config.weight_bits),
    }


def _spread_json(spread: OptimumSpread | None) -> dict[str, Any] | None:
    if spread is None:
        return None
    ranges = ("n_params", "n_tokens", "weight_bits", "activation_bits", "kv_bits", "predicted_loss")
    out: dict[str, Any] = {key: [finite_or_none(v) for v in getattr(spread, key)] for key in ranges}
    out.update(
        n_draws=spread.n_draws,
        n_valid_draws=spread.n_valid_draws,
        fraction_at_window_edge=spread.fraction_at_window_edge,
    )
    return out


def plan_create(*, team: Team, request: PlanRequest) -> Plan:
    """Plan N, D and bit widths for the request's budget from the family's current fit, and store the plan.

    An auto request uses the best-ranked law that can serve it (planner.law_choice); the plan records the law
    used in `law`, the request in `requested_law`, and why in `law_selection`. Raises NoSucceededFit (no
    succeeded fit of that law, of any law for auto) and PlanInvalid naming the field (planner.errors).
    """
    selection = law_choose(team=team, request=request)
    search = plan_search_on_fit(team=team, request=request, law=selection.used, fit_id=selection.fit_id)
    planned = search.planned
    params = search.result.all_params
    return Plan.objects.create(
        team=team,
        family=request.family,
        law=selection.used,
        requested_law=selection.requested,
        law_selection=selection.as_json(),
        fit=search.fit,
        budget=request.budget.as_json(),
        constraints=request.constraints.as_json(),
        cost_model=request.cost_model,
        hardware=planned.hardware or "",
        budget_flops=request.budget.flops,
        recommendation=config_json(planned.recommendation, search.law, params),
        baseline=config_json(planned.baseline, search.law, params),
        alternatives=[config_json(a, search.law, params) for a in planned.alternatives],
        optimum_spread=_spread_json(planned.optimum_spread),
        warnings=[*search.warnings, *selection.warnings],
    )


def plan_request_of(plan: Plan) -> PlanRequest:
    """The request a stored plan answered (law as requested: an auto plan stays auto)."""
    return PlanRequest(
        family=plan.family,
        budget=budget_from(plan.budget),
        constraints=ConstraintsRequest.from_json(plan.constraints),
        law=plan.requested_law,
        cost_model=plan.cost_model,
    )


def plan_rerun(*, plan: Plan) -> Plan:
    """The same request as `plan` on the family's current fits, stored as a new plan (the original is kept)."""
    return plan_create(team=plan.team, request=plan_request_of(plan))


__all__ = ["config_json", "plan_create", "plan_request_of", "plan_rerun"]
