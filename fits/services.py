"""Fit services the API calls: ask for a refit now, and predict a loss from the current fit.

The refit steps themselves are fits.pipeline; these functions validate a request against the stored fits and
raise domain errors (apikit.exceptions) that the API answers with their status code (apikit.errors).
"""

import math
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from apikit.exceptions import DomainError, NotFound
from fits.json_numbers import finite_or_none
from fits.laws import RunConfig, get_law, predict_with_interval
from fits.models import Fit, FitScope
from fits.pipeline import fit_scope_refresh
from fits.references import density_reference_refresh
from fits.selectors import fit_current, fit_latest, fit_newest_failed, fit_pending
from runs.models import Run, Team


class FitNotFound(NotFound):
    """No fit (or nothing to fit) for the request."""


class PredictionInvalid(DomainError):
    """The fit cannot answer this query; `errors` names the field."""


def fit_current_or_404(*, team: Team, family: str, law: str) -> Fit:
    """The newest succeeded fit of (family, law); FitNotFound, saying why, when there is none yet."""
    fit = fit_current(team=team, family=family, law=law)
    if fit is None:
        raise FitNotFound(
            "No succeeded fit of this family and law yet." + fit_missing_reason(team=team, family=family, law=law)
        )
    return fit


def fit_missing_reason(*, team: Team, family: str, law: str) -> str:
    """Why (family, law) has no current fit, as sentences to append to "no succeeded fit": the newest failed fit
    with its reason, and a fit in flight; "" when neither."""
    message = ""
    failed = fit_newest_failed(team=team, family=family, law=law)
    if failed is not None:
        reason = (failed.error or "no reason was recorded").strip().rstrip(".")
        message += f" The newest failed fit is fit {failed.pk} (version {failed.version}): {reason}."
    pending = fit_pending(team=team, family=family, law=law)
    if pending is not None:
        message += f" Fit {pending.pk} (version {pending.version}) is {pending.status}."
    return message


def fit_request(
    *, team: Team, family: str, law: str, objective: str | None = None, screen_outliers: bool | None = None
) -> Fit:
    """Ask for a refit now (POST /fits/): the fit in flight, a new queued version, or the latest if unchanged.

    `objective` and `screen_outliers`, when given, become the family's settings for this law: this version and
    the ones that follow use them. FitNotFound when the team has no runs in the family, or none a fit could use.
    """
    if not Run.objects.filter(team=team, family=family).exists():
        raise FitNotFound("This team has no runs in that family.")
    scope, _ = FitScope.objects.get_or_create(team=team, family=family, law=law)
    changes = {
        key: value
        for key, value in (("objective", objective), ("screen_outliers", screen_outliers))
        if value is not None and getattr(scope, key) != value
    }
    if changes:
        FitScope.objects.filter(pk=scope.pk).update(**changes)
    if not Fit.objects.filter(team=team, family=family, law=law).in_flight().exists():
        fit_scope_refresh(scope_id=scope.pk, force=True)
    fit = fit_latest(team_id=team.pk, family=family, law=law)
    if fit is None:
        raise FitNotFound("This family has no finished, non-excluded runs to fit.")
    return fit


def fits_delete(*, fits: QuerySet[Fit]) -> int:
    """Delete fit versions (the admin lets superusers); the families' density references follow their current
    reference fit (fits.references). Plans keep their fit (RESTRICT): deleting a fit a plan cites fails."""
    with transaction.atomic():
        families = set(fits.values_list("team_id", "family"))
        deleted, _ = fits.delete()
        for team_id, family in families:
            density_reference_refresh(team_id=team_id, family=family)
    return deleted


@dataclass(frozen=True)
class PredictionAnswer:
    """A predicted final loss with its 95% interval over the draws, from one fit (GET /predict/)."""

    loss: float
    interval: tuple[float | None, float | None]
    fit_id: int
    extrapolation: dict[str, Any]


def prediction_make(*, team: Team, family: str, law: str, config: RunConfig) -> PredictionAnswer:
    """Predict the loss of one configuration from the family's current fit of `law`.

    FitNotFound without a succeeded fit; PredictionInvalid for a PTQ width the fit has no term for, or a
    configuration outside the law's domain.
    """
    fit = fit_current_or_404(team=team, family=family, law=law)
    result = fit.as_result()
    if config.post_train_bits is not None:
        refusal = get_law(fit.law).ptq_refusal(result.all_params)
        if refusal is not None:
            raise PredictionInvalid({"post_train_bits": [f"This fit has no PTQ term ({refusal})"]})
    prediction = predict_with_interval(result, config)
    loss = float(prediction.loss)
    if not math.isfinite(loss):
        raise PredictionInvalid({"non_field_errors": ["This configuration lies outside the law's domain."]})
    low, high = prediction.interval
    return PredictionAnswer(
        loss=loss,
        interval=(finite_or_none(low), finite_or_none(high)),
        fit_id=fit.pk,
        extrapolation=prediction.extrapolation,
    )
