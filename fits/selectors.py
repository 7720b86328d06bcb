"""Reads of fits and of the data they are fitted on; every selector over team data takes the acting team."""

import hashlib
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import Exists, Max, OuterRef, QuerySet, Subquery

from fits.laws import FitResult, Observations, get_law
from fits.laws.schedules import DECAYED_FRACTION
from fits.models import FamilyCurveFit, Fit, FitScope
from fits.ranking import LawFit, Ranking, rank_laws
from runs.models import Evaluation, FamilyChange, Run, Team

RUN_COLUMNS = (
    "id",
    "n_params",
    "n_tokens",
    "weight_bits",
    "activation_bits",
    "kv_bits",
    "final_loss",
    "exponent_bits",  # NULL (NaN in the arrays) unless the run reported its floating-point format
    "mantissa_bits",
)


@dataclass(frozen=True)
class FitData:
    """The finished, non-excluded runs of a family as the law engine takes them, with their identity."""

    observations: Observations
    run_ids: list[int]
    fingerprint: str  # sha256 of every value the fit reads: equal fingerprints give equal fits

    @property
    def n_runs(self) -> int:
        return len(self.run_ids)

    def law_applies(self, law: str) -> bool:
        """Whether `law` has anything to fit in these runs (the law decides: fits.laws.ScalingLaw.applies_to)."""
        return get_law(law).applies_to(self.observations)

    def to_bytes(self) -> bytes:
        """A compact, exact copy of the snapshot for the fit record (npz)."""
        buffer = io.BytesIO()
        o = self.observations
        np.savez_compressed(
            buffer,
            run_ids=np.asarray(self.run_ids, dtype=np.int64),
            n_params=o.n_params,
            n_tokens=o.n_tokens,
            weight_bits=o.weight_bits,
            activation_bits=o.activation_bits,
            kv_bits=o.kv_bits,
            final_loss=o.final_loss,
            eval_run=o.eval_run,
            eval_post_bits=o.eval_post_bits,
            eval_loss=o.eval_loss,
            exponent_bits=o.exponent_bits,
            mantissa_bits=o.mantissa_bits,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, *, fingerprint: str) -> "FitData":
        arrays = np.load(io.BytesIO(blob))
        observations = Observations(**{name: arrays[name] for name in arrays.files if name != "run_ids"})
        return cls(observations=observations, run_ids=arrays["run_ids"].tolist(), fingerprint=fingerprint)


def _decays(schedule: Any) -> bool:
    """Whether a stored schedule (runs.schedules' form) plans a decay to at most half the peak learning rate
    (fits.laws.schedules.DECAYED_FRACTION) before its end."""
    if not isinstance(schedule, dict) or schedule.get("lr_schedule", "cosine") == "constant":
        return False
    total, peak = schedule.get("total_steps") or 0, schedule.get("peak_lr") or 0.0
    start = schedule.get("decay_start")
    if start is None:
        start = schedule.get("warmup_steps") or 0
    return bool(start < total and float(schedule.get("final_lr") or 0.0) <= DECAYED_FRACTION * float(peak))


def uncooled_trunks(*, team_id: int, family: str) -> list[int]:
    """The ids of the family's runs that have cooldowns branched off them (runs naming them in `cooldown_of`) and
    whose own learning rate does not decay (a constant-LR trunk, or one with no described schedule): their final
    loss still carries the loss a decay would remove (about 0.08 nats on Gemstones, docs/curves.md section 6), so
    they never enter a law fit; each cooldown enters as its own (N, D, loss) point. One query."""
    trunks = Run.objects.filter(team_id=team_id, family=family, cooldowns__isnull=False).distinct()
    return sorted(pk for pk, schedule in trunks.values_list("pk", "schedule") if not _decays(schedule))


def fit_data(*, team_id: int, family: str) -> FitData:
    """Snapshot of a family's finished, non-excluded runs and their evaluations, in run-id order; trunks that
    only cooldowns make fit points of are left out (uncooled_trunks)."""
    runs = list(
        Run.objects.filter(team_id=team_id, family=family, status=Run.Status.FINISHED, excluded=False)
        .exclude(pk__in=uncooled_trunks(team_id=team_id, family=family))
        .order_by("id")
        .values_list(*RUN_COLUMNS)
    )
    run_ids = [row[0] for row in runs]
    position = {run_id: i for i, run_id in enumerate(run_ids)}
    evaluations = list(
        Evaluation.objects.filter(run_id__in=run_ids)
        .order_by("run_id", "post_train_bits", "method")
        .values_list("run_id", "post_train_bits", "method", "loss")
        if run_ids
        else []
    )
    table = np.asarray([[np.nan if v is None else v for v in row[1:]] for row in runs], dtype=np.float64).reshape(
        -1, len(RUN_COLUMNS) - 1
    )
    digest = hashlib.sha256()
    digest.update(repr(runs).encode())
    digest.update(repr(evaluations).encode())
    observations = Observations(
        n_params=table[:, 0],
        n_tokens=table[:, 1],
        weight_bits=table[:, 2],
        activation_bits=table[:, 3],
        kv_bits=table[:, 4],
        final_loss=table[:, 5],
        exponent_bits=table[:, 6],
        mantissa_bits=table[:, 7],
        eval_run=np.asarray([position[e[0]] for e in evaluations], dtype=np.intp),
        eval_post_bits=np.asarray([e[1] for e in evaluations], dtype=np.float64),
        eval_loss=np.asarray([e[3] for e in evaluations], dtype=np.float64),
    )
    return FitData(observations=observations, run_ids=run_ids, fingerprint=digest.hexdigest())


def fit_families(*, teams: QuerySet[Team]) -> list[str]:
    """The families of `teams` with at least one succeeded fit, in name order."""
    return list(
        Fit.objects.filter(team__in=teams, status=Fit.Status.SUCCEEDED)
        .order_by("family")
        .values_list("family", flat=True)
        .distinct()
    )


def fit_result(*, fit_id: int) -> FitResult:
    """A stored fit, by id, as the law engine's FitResult with its draws (callers have checked the team)."""
    return Fit.objects.defer("point_state", "snapshot").get(pk=fit_id).as_result()


def fit_latest(*, team_id: int, family: str, law: str) -> Fit | None:
    """The newest version of (family, law) whatever its status, without the binary columns."""
    return Fit.objects.filter(team_id=team_id, family=family, law=law).without_blobs().order_by("-version").first()


def fit_current(*, team: Team, family: str, law: str, fit_id: int | None = None) -> Fit | None:
    """The newest succeeded fit of (family, law), with its draws; None when there is none yet.

    With `fit_id`, that succeeded version (the one a ranking just read), so a decision and its answer rest on the
    same fit even when a newer version lands in between.
    """
    fits = Fit.objects.filter(team=team, family=family, law=law, status=Fit.Status.SUCCEEDED)
    if fit_id is not None:
        fits = fits.filter(pk=fit_id)
    return fits.defer("point_state", "snapshot").order_by("-version").first()


def fit_pending(*, team: Team, family: str, law: str) -> Fit | None:
    """The fit of (family, law) that is queued or running, if any."""
    return Fit.objects.filter(team=team, family=family, law=law).in_flight().without_blobs().first()


def fit_newest_failed(*, team: Team, family: str, law: str) -> Fit | None:
    """The newest failed fit of (family, law), without its blobs; None when none failed."""
    return (
        Fit.objects.filter(team=team, family=family, law=law, status=Fit.Status.FAILED)
        .without_blobs()
        .order_by("-version")
        .first()
    )


def curve_fit_newest(*, team_id: int, family: str, law: str) -> FamilyCurveFit | None:
    """The newest finished version (succeeded or failed) of the family's curve fit of `law`; None before any."""
    return (
        FamilyCurveFit.objects.filter(
            team_id=team_id,
            family=family,
            law=law,
            status__in=[FamilyCurveFit.Status.SUCCEEDED, FamilyCurveFit.Status.FAILED],
        )
        .order_by("-version")
        .first()
    )


def curve_fit_last_finished_id(*, team_id: int, family: str) -> int:
    """The id of the family's newest finished curve fit of any law (0 before any): part of a forecast's version."""
    last = FamilyCurveFit.objects.filter(
        team_id=team_id,
        family=family,
        status__in=[FamilyCurveFit.Status.SUCCEEDED, FamilyCurveFit.Status.FAILED],
    ).aggregate(last=Max("id"))["last"]
    return int(last or 0)


def fit_is_stale(*, fit: Fit) -> bool:
    """Have the family's runs changed since this fit took its snapshot? (Changes not yet refreshed count.)"""
    return fit_is_stale_by_scope(
        fit=fit,
        scope=FitScope.objects.filter(team_id=fit.team_id, family=fit.family, law=fit.law).first(),
        family_pending=family_change_pending(team_id=fit.team_id, family=fit.family),
    )


def family_change_pending(*, team_id: int, family: str) -> bool:
    """Whether the family's runs changed since its last refit took them (runs.models.FamilyChange)."""
    return FamilyChange.objects.filter(team_id=team_id, family=family, pending_since__isnull=False).exists()


def fit_is_stale_by_scope(*, fit: Fit, scope: FitScope | None, family_pending: bool) -> bool:
    """The staleness rule: the family has a change no refit took yet, the law has one deferred, or the law's last
    snapshot differs from the fit's data."""
    if family_pending:
        return True
    if scope is None:
        return False
    return scope.dirty_since is not None or (bool(scope.fingerprint) and scope.fingerprint != fit.data_fingerprint)


# Law comparison ------------------------------------------------------------------------------------------

# What ranking and law choice read of a fit: never the draws, snapshot or point state.
LAW_RANKING_FIT_FIELDS = (
    "id",
    "team_id",
    "family",
    "law",
    "version",
    "status",
    "objective",
    "params",
    "intervals",
    "fixed",
    "metrics",
    "backtest",
    "warnings",
    "data_range",
    "draw_names",
    "data_fingerprint",
    "quality",
    "quality_reasons",
)


@dataclass(frozen=True)
class FamilyLawRanking:
    """The current succeeded fit of every law of a family (without blobs) and their ranking (fits.ranking)."""

    family: str
    fits: dict[str, Fit]
    ranking: Ranking


def fits_current_by_law(*, team: Team, family: str) -> dict[str, Fit]:
    """The newest succeeded fit of each law of `family`, keyed by law, without the binary columns: one query."""
    newest = (
        Fit.objects.filter(team=team, family=family, law=OuterRef("law"), status=Fit.Status.SUCCEEDED)
        .order_by("-version")
        .values("version")[:1]
    )
    fits = (
        Fit.objects.filter(team=team, family=family, status=Fit.Status.SUCCEEDED, version=Subquery(newest))
        .only(*LAW_RANKING_FIT_FIELDS)
        .order_by("law")
    )
    return {fit.law: fit for fit in fits}


def _varies_bits(data_range: dict[str, float]) -> bool:
    """Whether a fit's runs trained at more than one width of weights, activations or KV cache."""
    return any(
        data_range.get(f"{key}_min") is not None and data_range.get(f"{key}_min") != data_range.get(f"{key}_max")
        for key in ("weight_bits", "activation_bits", "kv_bits")
    )


def law_ranking(*, team: Team, family: str) -> FamilyLawRanking:
    """Rank the current succeeded fits of every law of `family` by backtest error (two queries).

    `ranking.entries` is empty when the family has no succeeded fit of any law.
    """
    fits = fits_current_by_law(team=team, family=family)
    # One query for the scopes and the family's pending change (scopes exist for every law once a family refits).
    pending_change = FamilyChange.objects.filter(team=team, family=family, pending_since__isnull=False)
    scopes = (
        {s.law: s for s in FitScope.objects.filter(team=team, family=family).annotate(pending=Exists(pending_change))}
        if fits
        else {}
    )
    pending = any(getattr(s, "pending", False) for s in scopes.values())
    law_fits = []
    for law, fit in fits.items():
        n_runs = fit.metrics.get("n_runs")
        law_fits.append(
            LawFit(
                law=law,
                fit_id=fit.pk,
                version=fit.version,
                backtest=fit.backtest or {},
                n_params_fitted=len(fit.params or {}),
                n_runs=int(n_runs) if isinstance(n_runs, int | float) and math.isfinite(n_runs) else None,
                warnings=[str(w) for w in fit.warnings or []],
                stale=fit_is_stale_by_scope(fit=fit, scope=scopes.get(law), family_pending=pending),
                n_screened=int(fit.metrics.get("n_screened") or 0),
                quality=fit.quality,
                quality_reasons=[str(r) for r in fit.quality_reasons or []],
                models_bits=bool(get_law(law).bit_dims),
                varies_bits=_varies_bits(fit.data_range or {}),
                data_fingerprint=fit.data_fingerprint,
            )
        )
    return FamilyLawRanking(family=family, fits=fits, ranking=rank_laws(law_fits))
