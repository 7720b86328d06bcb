"""The plan search on a family's current fit: the law's loss functions, its bit rules, the pure search.

planner.allocation.plan_search is the maths; this module reads the fit (with its draws), lets the fit's law turn
the request's bit constraints into the ones its search runs (fits.laws.ScalingLaw.plan_bits), runs the search and
adds the warnings that come from the fit (extrapolation, staleness, a newer failed fit). Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fits.laws import BitRequest, ConstraintRefused, FitResult, RunConfig, ScalingLaw, get_law
from fits.laws.prediction import draw_params
from fits.models import Fit
from fits.selectors import fit_current, fit_is_stale, fit_newest_failed
from fits.services import fit_missing_reason
from planner.allocation import FloatArray, LossFn, PlanConfig, PlanConstraints, PlanningError, PlanResult, plan_search
from planner.errors import NoSucceededFit, PlanInvalid, invalid
from planner.requests import PlanRequest
from runs.models import Team


@dataclass(frozen=True)
class PlanOnFit:
    """A plan search on one fit: the fit, its law, the bit constraints the law ran, and the result."""

    fit: Fit
    result: FitResult
    law: ScalingLaw
    bits: BitRequest
    draws: LossFn | None
    planned: PlanResult
    warnings: tuple[str, ...]  # the search's, then the fit's (plan_fit_warnings)


def _loss_fns(law: ScalingLaw, result: FitResult) -> tuple[LossFn, LossFn | None]:
    """The fit's point loss function and its all-draws version, in planner.allocation's LossFn shape, as the law
    predicts for a plan (ScalingLaw.predict_for_plan)."""
    params = result.all_params
    draws = result.draws[np.all(np.isfinite(result.draws), axis=1)] if result.draws.size else result.draws

    def config(
        n: FloatArray, d: FloatArray, wb: FloatArray, ab: FloatArray, kvb: FloatArray, post: FloatArray | None
    ) -> RunConfig:
        return RunConfig(n_params=n, n_tokens=d, weight_bits=wb, activation_bits=ab, kv_bits=kvb, post_train_bits=post)

    def point(
        n: FloatArray, d: FloatArray, wb: FloatArray, ab: FloatArray, kvb: FloatArray, post: FloatArray | None
    ) -> FloatArray:
        return law.predict_for_plan(params, config(n, d, wb, ab, kvb, post))

    def per_draw(
        n: FloatArray, d: FloatArray, wb: FloatArray, ab: FloatArray, kvb: FloatArray, post: FloatArray | None
    ) -> FloatArray:
        at = config(n, d, wb, ab, kvb, post)
        out = law.predict_for_plan(draw_params(draws, result.draw_names, result.fixed, len(at.shape)), at)
        return np.broadcast_to(out, (draws.shape[0], *at.shape)).copy()

    return point, (per_draw if draws.shape[0] >= 2 else None)


def _search_constraints(request: PlanRequest, bits: BitRequest) -> PlanConstraints:
    constraints = request.constraints
    try:
        return PlanConstraints(
            n_params=constraints.n_params,
            n_params_max=constraints.n_params_max,
            n_tokens_max=constraints.n_tokens_max,
            weights_memory_max_bytes=constraints.weights_memory_max_bytes,
            weight_bits=bits.weight_bits,
            activation_bits=bits.activation_bits,
            kv_bits=bits.kv_bits,
            bits_choices=bits.bits_choices,
            post_train_bits=bits.post_train_bits,
        )
    except PlanningError as exc:
        raise PlanInvalid({"constraints": [str(exc)]}) from exc


def plan_search_on_fit(
    *, team: Team, request: PlanRequest, law: str, fit_id: int | None = None, need_draws: bool = False
) -> PlanOnFit:
    """Run the search for `request` on the family's current fit of `law` (with `fit_id`, that version: the one a
    law selection ranked).

    NoSucceededFit when the family has no succeeded fit of that law (or, with `need_draws`, one without bootstrap
    draws); PlanInvalid naming the field for a constraint the law refuses or one no configuration satisfies.
    """
    fit = fit_current(team=team, family=request.family, law=law, fit_id=fit_id)
    if fit is None:
        why = fit_missing_reason(team=team, family=request.family, law=law)
        raise NoSucceededFit(f"The family {request.family!r} has no succeeded {law} fit yet.{why}")
    model = get_law(fit.law)
    result = fit.as_result()
    try:
        bits = model.plan_bits(request.constraints.bits, result.all_params, result.data_range)
    except ConstraintRefused as refused:
        raise invalid("constraints", refused.field, refused.message) from refused
    point, draws = _loss_fns(model, result)
    if need_draws and draws is None:
        raise NoSucceededFit(f"The current {law} fit of {request.family!r} has no bootstrap draws to compare.")
    try:
        planned = plan_search(
            point,
            request.budget.flops,
            cost_model=request.cost_model,  # type: ignore[arg-type]  # one of COST_MODELS (PlanRequest checks)
            hardware=request.budget.hardware,
            constraints=_search_constraints(request, bits),
            draws=draws,
            tie_bits=bits.tie_bits,
        )
    except PlanningError as exc:
        raise PlanInvalid({"constraints": [str(exc)]}) from exc
    warnings = (*planned.warnings, *plan_fit_warnings(team=team, fit=fit, result=result, rec=planned.recommendation))
    return PlanOnFit(fit=fit, result=result, law=model, bits=bits, draws=draws, planned=planned, warnings=warnings)


def plan_fit_warnings(*, team: Team, fit: Fit, result: FitResult, rec: PlanConfig) -> list[str]:
    """Warnings that come from the fit rather than the search: extrapolation, staleness, a newer failed fit."""
    out: list[str] = []
    rng = result.data_range
    for key, value in (("n_params", rec.n_params), ("n_tokens", rec.n_tokens)):
        largest = rng.get(f"{key}_max")
        if largest and value > largest:
            out.append(
                f"extrapolation: {key} {value:.3g} is {value / largest:.1f}x the largest in the fit's data "
                f"({largest:.3g})"
            )
    for key in get_law(result.law).range_fields:
        width = getattr(rec, key, None)
        lo, hi = rng.get(f"{key}_min"), rng.get(f"{key}_max")
        if width is None or lo is None or hi is None:
            continue
        if not lo <= width <= hi:
            span = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
            out.append(f"extrapolation: {key} {width:g} is outside the fit's data ({span} bits)")
    if fit_is_stale(fit=fit):
        out.append(f"stale fit: the family's runs changed since fit v{fit.version}; a refit will replace it")
    failed = fit_newest_failed(team=team, family=fit.family, law=fit.law)
    if failed is not None and failed.version > fit.version:
        out.append(
            f"a newer fit failed: v{failed.version} ({failed.error or 'no reason recorded'}); "
            f"this plan uses v{fit.version}"
        )
    return out
