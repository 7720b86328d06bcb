"""Plans: how big, how long and in how many bits, for a compute budget (docs/api.md, Plans).

The maths is planner.allocation.plan_search (pure); these services turn a stored fit into its loss functions,
check the request against the fit (law, PTQ term, domain), run the search, add the fit's warnings
(extrapolation, stale, newer fit failed) and store the Plan.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from rest_framework import status

from apikit.exceptions import DomainError
from fits.json_numbers import finite_or_none
from fits.laws import FitResult, fp_layout, in_domain, predict_loss, predict_loss_draws
from fits.laws.backtest import SCHEME_TEXT
from fits.models import Fit, Law
from fits.ranking import RankedLaw
from fits.selectors import fit_current, fit_is_stale, law_ranking
from fits.services import fit_missing_reason
from planner.allocation import (
    HARDWARE_PROFILES,
    MIN_BUDGET_FLOPS,
    FloatArray,
    LossFn,
    OptimumSpread,
    PlanConfig,
    PlanConstraints,
    PlanningError,
    PlanResult,
    budget_to_flops,
    get_hardware,
    plan_search,
)
from planner.models import AUTO_LAW, Plan
from runs.models import Team

PLAN_CONSTRAINT_KEYS = (
    "n_params",
    "n_params_max",
    "n_tokens_max",
    "weight_bits",
    "activation_bits",
    "kv_bits",
    "bits_choices",
    "post_train_bits",
    "weights_memory_max_bytes",
    "tie_bits",  # extension: weight = activation = KV bits (fractional bits_choices sweeps)
)
PLAN_BUDGET_KEYS = ("flops", "gpu_hours", "hardware", "mfu")
_BIT_KEYS = ("weight_bits", "activation_bits", "kv_bits")
_DIM_OF = {"weight_bits": "w", "activation_bits": "a", "kv_bits": "kv"}


class NoSucceededFit(DomainError):
    """The family has no succeeded fit of the law asked for (409)."""

    status_code = status.HTTP_409_CONFLICT


class PlanInvalid(DomainError):
    """The request cannot be planned; `errors` names the field, nested as the input is: {"constraints": {...}}."""


def _invalid(section: str | None, field: str, message: str) -> PlanInvalid:
    if section is None:
        return PlanInvalid({field: [message]})
    return PlanInvalid({section: {field: [message]}})


def _plan_loss_fns(fit: Fit) -> tuple[LossFn, LossFn | None, FitResult]:
    """The fit's point loss function and its all-draws version, in planner.allocation's LossFn shape.

    Under PTQ (post_train_bits given), activation and KV bits must lie above the deployment width, else NaN:
    Kumar's Eq. 9 robustness product over w, a, kv is zero when any training width equals P_post, so a
    4-bit KV cache would otherwise erase the penalty of quantizing 8-bit weights to 4 bits (an artifact of
    the functional form, not a measured effect). The weights are guarded by plan_search itself (PTQ only
    applies when weight_bits > post_train_bits).
    """
    result = fit.as_result()
    params = result.all_params
    draws = result.draws[np.all(np.isfinite(result.draws), axis=1)] if result.draws.size else result.draws

    def guard(out: FloatArray, ab: FloatArray, kvb: FloatArray, post: FloatArray | None) -> FloatArray:
        if post is None:
            return out
        return np.where((ab > post) & (kvb > post), out, np.nan)

    def point(
        n: FloatArray, d: FloatArray, wb: FloatArray, ab: FloatArray, kvb: FloatArray, post: FloatArray | None
    ) -> FloatArray:
        out = predict_loss(
            result.law,
            params,
            n_params=n,
            n_tokens=d,
            weight_bits=wb,
            activation_bits=ab,
            kv_bits=kvb,
            post_train_bits=post,
        )
        return guard(out, ab, kvb, post)

    def per_draw(
        n: FloatArray, d: FloatArray, wb: FloatArray, ab: FloatArray, kvb: FloatArray, post: FloatArray | None
    ) -> FloatArray:
        out = predict_loss_draws(
            result.law,
            draws,
            result.draw_names,
            result.fixed,
            n_params=n,
            n_tokens=d,
            weight_bits=wb,
            activation_bits=ab,
            kv_bits=kvb,
            post_train_bits=post,
        )
        return guard(out, ab, kvb, post)

    return point, (per_draw if draws.shape[0] >= 2 else None), result


def plan_budget_validate(budget: Mapping[str, Any]) -> tuple[dict[str, Any], float, str | None, float | None]:
    """Validate a budget: normalised copy, FLOPs, hardware name (or None) and MFU override (or None)."""
    if not isinstance(budget, Mapping):
        raise PlanInvalid({"budget": ['Must be an object: {"flops": C} or {"gpu_hours": H, "hardware": ...}.']})
    unknown = sorted(set(budget) - set(PLAN_BUDGET_KEYS))
    if unknown:
        raise PlanInvalid({"budget": {key: ["Unknown field."] for key in unknown}})
    normal = {k: budget[k] for k in PLAN_BUDGET_KEYS if budget.get(k) is not None}
    hardware = normal.get("hardware")
    if hardware is not None:
        try:
            hardware = get_hardware(str(hardware)).name
        except ValueError as exc:
            raise _invalid("budget", "hardware", str(exc)) from exc
        normal["hardware"] = hardware
    if ("flops" in normal) == ("gpu_hours" in normal):
        raise PlanInvalid({"budget": {"non_field_errors": ["Give exactly one of flops or gpu_hours."]}})
    for key in ("flops", "gpu_hours"):
        value = normal.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0)
        ):
            raise _invalid("budget", key, "Must be a finite positive number.")
    mfu = normal.get("mfu")
    if mfu is not None and (isinstance(mfu, bool) or not isinstance(mfu, int | float) or not 0 < mfu <= 1):
        raise _invalid("budget", "mfu", "Must be a number in (0, 1].")
    if "gpu_hours" in normal and hardware is None:
        raise _invalid(
            "budget", "hardware", "Required with gpu_hours (one of: " + ", ".join(sorted(HARDWARE_PROFILES)) + ")."
        )
    if mfu is not None and "gpu_hours" not in normal:
        raise _invalid("budget", "mfu", "Only applies to a gpu_hours budget.")
    flops = budget_to_flops(flops=normal.get("flops"), gpu_hours=normal.get("gpu_hours"), hardware=hardware, mfu=mfu)
    if not flops >= MIN_BUDGET_FLOPS:
        key = "flops" if "flops" in normal else "gpu_hours"
        raise _invalid("budget", key, f"Too small to plan: {flops:g} FLOPs, below {MIN_BUDGET_FLOPS:g}.")
    return normal, flops, hardware, mfu


def _plan_constraints(
    constraints: Mapping[str, Any] | None, result: FitResult
) -> tuple[dict[str, Any], PlanConstraints, bool]:
    """Validate constraints against the fit: normalised copy, the search's constraints, and tie_bits.

    Chinchilla fits ignore precision: every width is fixed at 16 and bit constraints are refused. Precision
    fits: a fixed width outside the law's domain is refused; a width the family never varied (its factor is
    held at 1 in the fit) is held at the width the family trained at, unless the request fixes it. Fp fits:
    one floating-point format for weights, activations and KV cache (tied bits, at least 2), no PTQ term.
    """
    raw = dict(constraints or {})
    unknown = sorted(set(raw) - set(PLAN_CONSTRAINT_KEYS))
    if unknown:
        raise PlanInvalid({"constraints": {key: ["Unknown field."] for key in unknown}})
    normal = {k: raw[k] for k in PLAN_CONSTRAINT_KEYS if raw.get(k) is not None}
    tie_bits = bool(normal.get("tie_bits", False))
    if "bits_choices" in normal:
        normal["bits_choices"] = sorted({float(b) for b in normal["bits_choices"]})
    values: dict[str, Any] = {k: v for k, v in normal.items() if k != "tie_bits"}
    params = result.all_params
    if result.law == Law.CHINCHILLA:
        for key in (*_BIT_KEYS, "bits_choices", "post_train_bits", "tie_bits"):
            if key in normal:
                raise _invalid(
                    "constraints", key, "The chinchilla law does not model precision; plan bits with law=precision."
                )
        values.update(weight_bits=16.0, activation_bits=16.0, kv_bits=16.0)
    elif result.law == Law.FP:
        if "post_train_bits" in normal:
            raise _invalid(
                "constraints",
                "post_train_bits",
                "The fp law has no PTQ term; plan a deployment width with law=precision.",
            )
        for key in ("activation_bits", "kv_bits"):
            if key in normal:
                raise _invalid(
                    "constraints",
                    key,
                    "The fp law trains weights, activations and KV cache in one floating-point format: "
                    "fix weight_bits only.",
                )
        width = values.pop("weight_bits", None)
        if width is not None:
            if float(width) < 2:
                raise _invalid("constraints", "weight_bits", "A floating-point format needs at least 2 bits.")
            values["bits_choices"] = [float(width)]
        elif "bits_choices" in normal and min(normal["bits_choices"]) < 2:
            raise _invalid("constraints", "bits_choices", "A floating-point format needs at least 2 bits.")
        tie_bits = True
    else:
        post = values.get("post_train_bits")
        if post is not None and "C_T" not in params:
            raise _invalid(
                "constraints", "post_train_bits", "This fit has no PTQ term (the family has no evaluations)."
            )
        for key in _BIT_KEYS:
            if key in values and not bool(in_domain(params, **{key: float(values[key])})):
                raise _invalid("constraints", key, f"{values[key]:g} bits lies outside the fitted law's domain.")
            held = float(params.get(f"gamma_{_DIM_OF[key]}", 0.0)) <= 0.0
            if held and key not in values and not tie_bits:
                values[key] = result.data_range.get(f"{key}_max", 16.0)
        w = values.get("weight_bits")
        if post is not None and w is not None and w > post:
            for key in ("activation_bits", "kv_bits"):
                if key in values and values[key] <= post:
                    raise _invalid(
                        "constraints",
                        key,
                        "Must be above post_train_bits when the weights are quantized after training "
                        "(Kumar's PTQ term vanishes at equal widths, an artifact the planner does not use).",
                    )
    try:
        choices = values.pop("bits_choices", None)
        search = PlanConstraints(
            bits_choices=None if choices is None else tuple(float(b) for b in choices),
            **{k: float(v) for k, v in values.items()},
        )
    except PlanningError as exc:
        raise PlanInvalid({"constraints": [str(exc)]}) from exc
    return normal, search, tie_bits


def config_json(config: PlanConfig | None, result: FitResult | None = None) -> dict[str, Any] | None:
    """A searched configuration as stored on plans; with an fp fit, also the format (exponent, mantissa bits)."""
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
        **format_json(result, config.weight_bits),
    }


def format_json(result: FitResult | None, weight_bits: float) -> dict[str, Any]:
    """For an fp fit, the floating-point format of a width: the law's best layout (fp_layout); else nothing.

    Whole bits for a whole width (E4M3); a fractional width gets the law's continuous optimum."""
    if result is None or result.law != Law.FP:
        return {}
    exponent, mantissa = fp_layout(result.all_params, weight_bits)
    return {
        key: int(value) if float(value).is_integer() else float(value)
        for key, value in (("exponent_bits", exponent), ("mantissa_bits", mantissa))
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


def plan_fit_warnings(fit: Fit, result: FitResult, rec: PlanConfig) -> list[str]:
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
    if result.law != Law.CHINCHILLA:
        # The fp law reads one format (the weights' width); the KV cache's width is not part of it.
        keys = ("weight_bits",) if result.law == Law.FP else (*_BIT_KEYS, "post_train_bits")
        for key in keys:
            value = getattr(rec, key)
            lo, hi = rng.get(f"{key}_min"), rng.get(f"{key}_max")
            if value is None or lo is None or hi is None:
                continue
            if not lo <= value <= hi:
                span = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
                out.append(f"extrapolation: {key} {value:g} is outside the fit's data ({span} bits)")
    if fit_is_stale(fit=fit):
        out.append(f"stale fit: the family's runs changed since fit v{fit.version}; a refit will replace it")
    failed = (
        Fit.objects.filter(
            team_id=fit.team_id, family=fit.family, law=fit.law, status=Fit.Status.FAILED, version__gt=fit.version
        )
        .only("version", "error")
        .order_by("-version")
        .first()
    )
    if failed is not None:
        out.append(
            f"a newer fit failed: v{failed.version} ({failed.error or 'no reason recorded'}); "
            f"this plan uses v{fit.version}"
        )
    return out


@dataclass(frozen=True)
class PlanOnFit:
    """A plan search on a family's current fit, with the validated inputs as stored; nothing is written yet."""

    fit: Fit
    result: FitResult
    draws: LossFn | None
    budget_json: dict[str, Any]
    budget_flops: float
    hardware: Any  # as plan_budget_validate resolved it: a profile, or None for a FLOPs budget
    constraints_json: dict[str, Any]
    planned: PlanResult


def plan_search_on_current_fit(
    *,
    team: Team,
    family: str,
    law: str,
    budget: Mapping[str, Any],
    constraints: Mapping[str, Any] | None,
    cost_model: str,
    fit_id: int | None = None,
) -> PlanOnFit:
    """Validate a plan request and run the search on the family's current fit of `law` and its draws (with
    `fit_id`, that version: the one the law selection ranked).

    Raises NoSucceededFit when the family has no succeeded fit of that law, PlanInvalid (naming the field)
    when the budget or constraints are malformed, contradictory or outside the fitted law's domain.
    """
    if law not in Law.values:
        raise PlanInvalid({"law": [f"Unknown law {law!r}."]})
    if cost_model not in Plan.CostModel.values:
        raise PlanInvalid({"cost_model": [f"Unknown cost model {cost_model!r}."]})
    budget_json, budget_flops, hardware, _ = plan_budget_validate(budget)
    fit = fit_current(team=team, family=family, law=law, fit_id=fit_id)
    if fit is None:
        why = fit_missing_reason(team=team, family=family, law=law)
        raise NoSucceededFit(f"The family {family!r} has no succeeded {law} fit yet.{why}")
    point, draws, result = _plan_loss_fns(fit)
    constraints_json, search_constraints, tie_bits = _plan_constraints(constraints, result)
    try:
        planned = plan_search(
            point,
            budget_flops,
            cost_model=cost_model,  # type: ignore[arg-type]  # checked against Plan.CostModel above
            hardware=hardware,
            constraints=search_constraints,
            draws=draws,
            tie_bits=tie_bits or law == Law.CHINCHILLA,
        )
    except PlanningError as exc:
        raise PlanInvalid({"constraints": [str(exc)]}) from exc
    return PlanOnFit(
        fit=fit,
        result=result,
        draws=draws,
        budget_json=budget_json,
        budget_flops=budget_flops,
        hardware=hardware,
        constraints_json=constraints_json,
        planned=planned,
    )


@dataclass(frozen=True)
class LawSelection:
    """Which law a plan request is answered with, and why (stored on the plan as `law_selection`)."""

    requested: str  # AUTO_LAW or a law
    used: str
    reason: str
    ranking: list[dict[str, Any]]  # compact: empty for an explicit law (no ranking is read)
    warnings: tuple[str, ...] = ()  # the ranking's (fits.ranking.Ranking.warnings); added to the plan's warnings
    fit_id: int | None = None  # the version of `used` the ranking read; None for an explicit law

    def as_json(self) -> dict[str, Any]:
        return {"requested": self.requested, "used": self.used, "reason": self.reason, "ranking": self.ranking}


# The keys of a ranking entry that a plan keeps (the full entry is GET /api/v1/fits/ranking/).
_COMPACT_RANKING_KEYS = (
    "law",
    "fit_id",
    "version",
    "score",
    "scheme",
    "n_held_out_runs",
    "rank",
    "eligible",
    "reason",
)


def _law_refusal(fit: Fit, constraints: Mapping[str, Any] | None) -> str | None:
    """Why `fit` cannot serve these constraints (the message _plan_constraints would answer), or None.

    The law's own checks decide: a law that does not model precision refuses bit constraints, a fit without a
    PTQ term refuses post_train_bits, a width outside the law's domain is refused. No draws are read.
    """
    light = fit.as_result(with_draws=False)
    try:
        _plan_constraints(constraints, light)
    except PlanInvalid as exc:
        return _first_message(exc.errors)
    return None


def _first_message(errors: Any, path: str = "") -> str:
    if isinstance(errors, Mapping):
        key, value = next(iter(errors.items()))
        return _first_message(value, f"{path}.{key}" if path else str(key))
    if isinstance(errors, list) and errors:
        return f"{path}: {errors[0]}" if path else str(errors[0])
    return str(errors)


def _score_text(entry: RankedLaw) -> str:
    held = f" on {entry.n_held_out_runs} held-out runs" if entry.n_held_out_runs is not None else ""
    scheme = f" ({SCHEME_TEXT.get(entry.scheme or '', entry.scheme)})" if entry.scheme else ""
    return f"backtest RMSE of log loss {entry.score:.4g}{held}{scheme}"


def plan_law_resolve(
    *, team: Team, family: str, law: str = AUTO_LAW, constraints: Mapping[str, Any] | None = None
) -> LawSelection:
    """The law that answers a plan request: `law` itself when it names one, else (AUTO_LAW) the best-ranked law.

    Auto: the eligible ranked laws in rank order (fits.ranking), the first whose current fit accepts the
    constraints (a law that does not model precision cannot serve bit constraints; post_train_bits needs a fit
    with a PTQ term). When none is ranked, or none of the ranked ones can serve, the fallback is `precision`
    if it has a succeeded fit, else the other laws in ranking order, again the first that can serve; when no
    law can serve, the first of that fallback order is used and its plan search names the refused field (400).
    Raises NoSucceededFit when the family has no succeeded fit of any law; an explicit law is checked by the
    plan search (PlanInvalid for an unknown law, NoSucceededFit for a missing fit).
    """
    if law != AUTO_LAW:
        return LawSelection(requested=law, used=law, reason="requested explicitly", ranking=[])
    family_ranking = law_ranking(team=team, family=family)
    ranking, fits = family_ranking.ranking, family_ranking.fits
    if not ranking.entries:
        raise NoSucceededFit(f"The family {family!r} has no succeeded fit of any law yet.")
    compact = [{k: v for k, v in e.as_dict().items() if k in _COMPACT_RANKING_KEYS} for e in ranking.entries]

    def select(used: str, reason: str) -> LawSelection:
        return LawSelection(
            requested=AUTO_LAW,
            used=used,
            reason=reason,
            ranking=compact,
            warnings=tuple(ranking.warnings),
            fit_id=fits[used].pk,
        )

    refused: dict[str, str] = {}
    preferred = [e for e in ranking.entries if e.eligible]
    for entry in preferred:
        refusal = _law_refusal(fits[entry.law], constraints)
        if refusal is None:
            if entry.rank == 1:
                return select(entry.law, f"{entry.law} ranks first by backtest error ({_score_text(entry)})")
            skipped = [
                f"{e.law} cannot serve this request ({refused[e.law]})" if e.law in refused else f"{e.law}: {e.reason}"
                for e in ranking.entries
                if e.rank is not None and entry.rank is not None and e.rank < entry.rank
            ]
            return select(
                entry.law,
                f"{entry.law} is the best-ranked law that can serve this request (rank {entry.rank}, "
                f"{_score_text(entry)}); " + "; ".join(skipped),
            )
        refused[entry.law] = refusal

    # When no law is eligible, first the law the ranking names best anyway (its warnings say why), so a plan and
    # GET /fits/ranking/ agree; then precision (the law that models every precision input the planner takes);
    # then ranking order.
    named = ranking.best if not preferred else None
    fallback = sorted(ranking.entries, key=lambda e: (e.law != named, e.law != Law.PRECISION))  # stable sort
    if preferred:
        why_not = "; ".join(f"{name} cannot serve this request ({why})" for name, why in refused.items())
        context = f"no eligible ranked law can serve this request: {why_not}"
    else:
        context = (
            "no law is eligible to be the best yet (" + "; ".join(f"{e.law}: {e.reason}" for e in ranking.entries) + ")"
        )
    for entry in fallback:
        if entry.law in refused:
            continue
        refusal = _law_refusal(fits[entry.law], constraints)
        if refusal is None:
            kind = (
                "the law the ranking names best"
                if entry.law == named
                else "the default law"
                if entry.law == Law.PRECISION
                else "a law with a succeeded fit"
            )
            return select(entry.law, f"{context}; fell back to {entry.law}, {kind}")
        refused[entry.law] = refusal
    # No law accepts the constraints: plan with the fallback's first choice, whose search names the field (400).
    return select(fallback[0].law, f"{context}; no law can serve this request")


def plan_create(
    *,
    team: Team,
    family: str,
    law: str = AUTO_LAW,
    budget: Mapping[str, Any],
    constraints: Mapping[str, Any] | None = None,
    cost_model: str = "linear_bits",
) -> Plan:
    """Plan N, D and bit widths for `budget` from the family's current fit of `law`, and store the plan.

    `law` AUTO_LAW (the default) uses the best-ranked law that can serve the request (plan_law_resolve); the
    plan records the law used in `law`, the request in `requested_law`, and why in `law_selection`.
    Raises NoSucceededFit when the family has no succeeded fit of that law (of any law, for AUTO_LAW),
    PlanInvalid (naming the field) when the budget or constraints are malformed, contradictory or outside the
    fitted law's domain.
    """
    if law == AUTO_LAW:  # a malformed request is a 400 before any law is chosen (an explicit law: in the search)
        if cost_model not in Plan.CostModel.values:
            raise PlanInvalid({"cost_model": [f"Unknown cost model {cost_model!r}."]})
        plan_budget_validate(budget)
    selection = plan_law_resolve(team=team, family=family, law=law, constraints=constraints)
    search = plan_search_on_current_fit(
        team=team,
        family=family,
        law=selection.used,
        budget=budget,
        constraints=constraints,
        cost_model=cost_model,
        fit_id=selection.fit_id,
    )
    planned = search.planned
    rec = planned.recommendation
    warnings = [*planned.warnings, *plan_fit_warnings(search.fit, search.result, rec), *selection.warnings]
    return Plan.objects.create(
        team=team,
        family=family,
        law=selection.used,
        requested_law=selection.requested,
        law_selection=selection.as_json(),
        fit=search.fit,
        budget=search.budget_json,
        constraints=search.constraints_json,
        cost_model=cost_model,
        hardware=planned.hardware or "",
        budget_flops=search.budget_flops,
        recommendation=config_json(rec, search.result),
        baseline=config_json(planned.baseline, search.result),
        alternatives=[config_json(a, search.result) for a in planned.alternatives],
        optimum_spread=_spread_json(planned.optimum_spread),
        warnings=warnings,
    )


def plan_rerun(*, plan: Plan) -> Plan:
    """The same request as `plan` (law as requested) on the family's current fits, stored as a new plan (the
    original is kept)."""
    return plan_create(
        team=plan.team,
        family=plan.family,
        law=plan.requested_law,  # an auto plan stays auto: the law is chosen again on today's fits
        budget=plan.budget,
        constraints=plan.constraints,
        cost_model=plan.cost_model,
    )
