"""Forecasts of a run's final loss from its logged curve, its planned schedule and its family's curves (GET
/api/v1/runs/{id}/forecast/, the admin's run page, workers.refresh_forecast): the reads that gather the family as
fits.laws.forecast takes it, the verdict against the family's best-ranked law, and the cache in front of both.

Computed on read and cached (Django's cache) under the family's history version (forecast_version): a new metric
point, a changed run or a new fit of the family changes the version, so the next read recomputes. The work is
bounded: at most MAX_FAMILY_RUNS runs are read, each history thinned to MAX_POINTS_READ points, and the law engine
bins and fits at most MAX_FIT_RUNS of them (docs/curves.md, "Forecasts through the API").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db.models import Count, Max, Sum
from django.utils import timezone

from apikit.fields import iso_utc
from fits.laws import RunConfig
from fits.laws.forecast import (
    DEFAULT_LAW,
    DEFAULT_LEVEL,
    MAX_FIT_RUNS,
    FamilyRun,
    compare_with_law,
    forecast_loss,
)
from fits.laws.schedules import Schedule, ScheduleError, build_schedule, schedule_from_log, schedule_spec
from fits.models import Fit
from fits.selectors import curve_fit_last_finished_id, curve_fit_newest, law_ranking
from fits.services import FitNotFound, FitUnusable, PredictionInvalid, prediction_make
from mlflow_compat.models import MlflowRun
from runs.models import MetricPoint, Run
from runs.plots import is_final_value

# The metric keys read as a run's loss curve, first present wins; else the first key with "loss" in its name that
# is not a final value (final_loss, ptq_loss/...). `?key=` names another.
CURVE_LOSS_KEYS = ("loss", "train_loss", "train/loss", "training_loss", "val_loss", "eval_loss", "valid_loss")
LR_KEY = "lr"  # the logged learning rate: the schedule's past (docs/mlflow.md)
MAX_FAMILY_RUNS = 16  # runs of the family read for one forecast (the target included): nearest sizes first
MAX_POINTS_READ = 4_000  # points kept per history read (every k-th and the last): the fit bins to 192 anyway
CACHE_SECONDS = 24 * 3600  # a backstop: the version key already changes with every point
CACHE_PREFIX = "forecast:v1"


def curve_loss_key(keys: Iterable[str]) -> str | None:
    """The key read as the loss curve among a run's metric keys (CURVE_LOSS_KEYS's rule), or None."""
    present = set(keys)
    for key in CURVE_LOSS_KEYS:
        if key in present:
            return key
    named = sorted(k for k in present if "loss" in k.lower() and not is_final_value(k))
    return named[0] if named else None


def forecast_version(*, team_id: int, family: str) -> str:
    """The family's history version: its runs (count, last change), the points logged through the MLflow API (a
    counter per run, no scan of the points), its newest succeeded fit and its newest finished curve fit. Four
    aggregate queries."""
    runs = Run.objects.filter(team_id=team_id, family=family).aggregate(n=Count("id"), at=Max("updated_at"))
    points = MlflowRun.objects.filter(bitscale_run__team_id=team_id, bitscale_run__family=family).aggregate(
        n=Sum("history_points"), d=Sum("history_dropped")
    )
    fit = Fit.objects.filter(team_id=team_id, family=family, status=Fit.Status.SUCCEEDED).aggregate(last=Max("id"))
    at = runs["at"].timestamp() if runs["at"] is not None else 0.0
    curve_fit = curve_fit_last_finished_id(team_id=team_id, family=family)
    return f"{runs['n']}-{at:.6f}-{points['n'] or 0}-{points['d'] or 0}-{fit['last'] or 0}-{curve_fit}"


def _cache_key(run_id: int, version: str, *, key: str | None, law: str, level: float) -> str:
    return f"{CACHE_PREFIX}:{run_id}:{version}:{key or ''}:{law}:{level:.6g}"


def latest_cache_key(run_id: int) -> str:
    """Where the run's newest forecast (default query) is kept whatever the version, for the run list's column."""
    return f"{CACHE_PREFIX}:latest:{run_id}"


@dataclass(frozen=True)
class _History:
    steps: np.ndarray
    values: np.ndarray


def _thin(steps: np.ndarray, values: np.ndarray, limit: int = MAX_POINTS_READ) -> _History:
    """Every k-th point and the last, at most about `limit` points (the last step stays exact: it is how far the
    run has got)."""
    if steps.shape[0] <= limit:
        return _History(steps, values)
    k = math.ceil(steps.shape[0] / limit)
    keep = np.zeros(steps.shape[0], dtype=bool)
    keep[::k] = True
    keep[-1] = True
    return _History(steps[keep], values[keep])


def _histories(run_ids: Sequence[int], keys: Mapping[int, str]) -> dict[tuple[int, str], _History]:
    """{(run id, key): history} of the runs' loss keys and their `lr`, by step, NaN where NaN was logged: one
    query per run (each an index range scan)."""
    out: dict[tuple[int, str], _History] = {}
    for run_id in run_ids:
        wanted = {keys[run_id], LR_KEY} if run_id in keys else {LR_KEY}
        rows = list(
            MetricPoint.objects.filter(run_id=run_id, key__in=wanted)
            .order_by("key", "step", "timestamp", "id")
            .values_list("key", "step", "value")
        )
        for key in wanted:
            pts = [(s, math.nan if v is None else v) for k, s, v in rows if k == key]
            if pts:
                arr = np.asarray(pts, dtype=np.float64)
                out[(run_id, key)] = _thin(arr[:, 0], arr[:, 1])
    return out


def _run_schedule(stored: Mapping[str, Any] | None, lr: _History | None) -> tuple[Schedule | None, bool, list[str]]:
    """(schedule, planned, warnings): the logged `lr` past with the described plan for the rest; `planned` says
    whether the run's planned end is known (a description), not only the log's end."""
    spec = schedule_spec(stored)
    warnings: list[str] = []
    if lr is not None:
        ok = np.isfinite(lr.values) & (lr.steps >= 0)
        if np.any(ok):
            try:
                return schedule_from_log(lr.steps[ok], lr.values[ok], plan=spec), spec is not None, warnings
            except ScheduleError as exc:
                warnings.append(f"the logged lr was not used ({exc}); the described schedule was")
    if spec is not None:
        try:
            return build_schedule(spec), True, warnings
        except ScheduleError as exc:  # a description stored before the API refused it (runs.schedules)
            warnings.append(f"the described schedule cannot be used: {exc}")
    return None, False, warnings


def _family_candidates(run: Run) -> list[dict[str, Any]]:
    """The target and up to MAX_FAMILY_RUNS - 1 other runs of its family (not excluded), nearest in size first,
    then the most recently changed."""
    rows: list[dict[str, Any]] = [
        dict(row)
        for row in Run.objects.filter(team_id=run.team_id, family=run.family, excluded=False)
        .exclude(pk=run.pk)
        .values("id", "n_params", "schedule", "cooldown_of_id", "updated_at")
    ]
    size = max(run.n_params, 1)
    rows.sort(key=lambda r: (abs(math.log(max(r["n_params"], 1) / size)), -r["updated_at"].timestamp()))
    target = {
        "id": run.pk,
        "n_params": run.n_params,
        "schedule": run.schedule,
        "cooldown_of_id": run.cooldown_of_id,
    }
    return [target, *rows[: MAX_FAMILY_RUNS - 1]]


def _metric_keys(run_ids: Sequence[int]) -> dict[int, set[str]]:
    """{run id: its metric keys}: from the MLflow runs' latest values (every logged key is there; one query, no
    scan of the points), and by a DISTINCT over the points for runs with no MLflow run."""
    keys_of: dict[int, set[str]] = {}
    linked = MlflowRun.objects.filter(bitscale_run_id__in=run_ids).values_list("bitscale_run_id", "metrics")
    for run_id, metrics in linked:
        if run_id is not None:
            keys_of[run_id] = set(metrics or {})
    rest = [i for i in run_ids if i not in keys_of]
    if rest:
        points = MetricPoint.objects.filter(run_id__in=rest).order_by().values_list("run_id", "key").distinct()
        for run_id, key in points:
            keys_of.setdefault(run_id, set()).add(key)
    return keys_of


def _lineages(rows: Sequence[Mapping[str, Any]], trunks_with_cooldowns: set[int]) -> dict[int, str]:
    """A trunk and the cooldowns branched off it share history: one lineage, so neither lends to the other."""
    out: dict[int, str] = {}
    for r in rows:
        if r["cooldown_of_id"] is not None:
            out[r["id"]] = f"trunk-{r['cooldown_of_id']}"
        elif r["id"] in trunks_with_cooldowns:
            out[r["id"]] = f"trunk-{r['id']}"
        else:
            out[r["id"]] = ""
    return out


def forecast_compute(
    *, run: Run, key: str | None = None, law: str = DEFAULT_LAW, level: float = DEFAULT_LEVEL
) -> dict[str, Any]:
    """The forecast body of `run` (see docs/api.md, "Forecasts"), computed now, not cached."""
    rows = _family_candidates(run)
    ids = [r["id"] for r in rows]
    keys_of = _metric_keys(ids)
    loss_keys: dict[int, str] = {}
    for run_id in ids:
        chosen = key if key is not None else curve_loss_key(keys_of.get(run_id, ()))
        if chosen is not None and chosen in keys_of.get(run_id, set()):
            loss_keys[run_id] = chosen
    trunks = set(
        Run.objects.filter(team_id=run.team_id, cooldowns__isnull=False, pk__in=ids).values_list("pk", flat=True)
    )
    lineage = _lineages(rows, trunks)
    histories = _histories([i for i in ids if i in loss_keys or i == run.pk], loss_keys)

    body: dict[str, Any] = {
        "run": run.pk,
        "family": run.family,
        "key": loss_keys.get(run.pk, key),
        "forecast": None,
        "reasons": [],
        "verdict": None,
        "verdict_reason": None,
        "curve_fit": None,
        "curve_fit_reason": None,
        "outcome": None,
        "warnings": [],
    }
    family: list[FamilyRun] = []
    target: FamilyRun | None = None
    planned = False
    for r in rows:
        loss = histories.get((r["id"], loss_keys.get(r["id"], "")))
        schedule, has_plan, warnings = _run_schedule(r["schedule"], histories.get((r["id"], LR_KEY)))
        if r["id"] == run.pk:
            body["warnings"] += warnings
            planned = has_plan
        if loss is None or schedule is None:
            continue
        keep = np.isfinite(loss.values) & (loss.steps <= schedule.total_steps)
        fr = FamilyRun(
            run=str(r["id"]),
            group=str(r["n_params"]),
            steps=loss.steps[keep],
            loss=loss.values[keep],
            schedule=schedule,
            lineage=lineage[r["id"]],
        )
        if r["id"] == run.pk:
            target = fr
        else:
            family.append(fr)

    if run.pk not in loss_keys:
        wanted = f"the metric {key!r}" if key is not None else f"a loss metric ({', '.join(CURVE_LOSS_KEYS[:3])}, ...)"
        body["reasons"].append(f"no loss curve logged: the run has no points of {wanted}")
    unusable = [w for w in body["warnings"] if w.startswith("the described schedule cannot be used")]
    if not planned and unusable:
        body["reasons"].append(f"no usable planned schedule: {unusable[0]}; correct the run's schedule")
    elif not planned:
        body["reasons"].append(
            "no planned schedule: give the run a schedule (total_steps, peak_lr, lr_schedule, ...) so its remaining "
            "learning rates are known"
        )
    if target is not None and planned and not body["reasons"]:
        fc = forecast_loss(target, family, law=law, level=level, max_runs=MAX_FIT_RUNS)
        if fc.ok and fc.loss is not None and fc.interval is not None:
            spec = schedule_spec(run.schedule)
            tokens = spec.tokens_per_step if spec is not None else None
            body["forecast"] = {
                "loss": fc.loss,
                "interval": [fc.interval[0], fc.interval[1]],
                "level": fc.level,
                "sd": fc.sd,
                "at_step": fc.at_step,
                "at_tokens": None if tokens is None else fc.at_step * tokens,
                "last_step": target.last_step,
                "fraction_seen": fc.fraction_seen,
                "law": fc.law,
                "lenders": [int(r) for r in fc.lenders],
                "fit_runs": [int(r) for r in fc.fit_runs],
                "baseline_loss": fc.baseline_loss,
                "path": fc.path,
            }
            body["warnings"] += fc.warnings
            _outcome(run, body)
            _curve_record(run, body)
            _verdict(run, body)
        else:
            body["reasons"].append(fc.reason)
    body["computed_at"] = iso_utc(timezone.now())
    return body


def _final_loss(run: Run) -> float | None:
    """The run's measured final loss once it has finished, else None: then the forecast is all there is."""
    if run.status == Run.Status.FINISHED and run.final_loss is not None and math.isfinite(run.final_loss):
        return float(run.final_loss)
    return None


def _outcome(run: Run, body: dict[str, Any]) -> None:
    """For a finished run, how its forecast held against its measured final loss (`outcome`): a finished run's
    forecast is a check of the curve law on it, not an answer, and is never shown in the final loss's place."""
    final = _final_loss(run)
    if final is None:
        body["outcome"] = None
        return
    forecast = body["forecast"]
    low, high = forecast["interval"]
    body["outcome"] = {
        "final_loss": final,
        "error": forecast["loss"] - final,
        "inside": bool(low <= final <= high),
    }


def _curve_record(run: Run, body: dict[str, Any]) -> None:
    """The family's stored curve fit of the forecast's law and its held-out score (how that law forecast the
    family's own finished runs from part of their steps), into `body`; a warning when those forecasts' intervals
    covered fewer of them than their level says: then this forecast's interval may be too narrow as well."""
    law = body["forecast"]["law"]
    stored = curve_fit_newest(team_id=run.team_id, family=run.family, law=law)
    if stored is None:
        body["curve_fit_reason"] = (
            f"the family has no {law} curve fit yet: the workers fit one once a run of the family has logged a "
            "loss curve with a decayed learning rate"
        )
        return
    if stored.status != stored.Status.SUCCEEDED:
        body["curve_fit_reason"] = (
            f"the family's newest {law} curve fit (version {stored.version}) failed: {stored.error}"
        )
        return
    held = stored.heldout or {}
    record = {k: held.get(k) for k in ("scheme", "fraction", "n", "mae", "rmse", "bias", "coverage", "level")}
    body["curve_fit"] = {
        "id": stored.pk,
        "version": stored.version,
        "law": stored.law,
        "n_runs": len(stored.run_ids),
        "finished_at": iso_utc(stored.finished_at) if stored.finished_at is not None else None,
        "heldout": record,
    }
    n, coverage, level = record["n"] or 0, record["coverage"], record["level"]
    if not n:
        body["curve_fit_reason"] = (
            f"the family's {law} curve fit has no finished, decayed run to score its forecasts on yet: nothing "
            "checks this interval against the family's own runs"
        )
    elif coverage is not None and level is not None and coverage < level:
        fraction = record["fraction"]
        seen = f" (each from {fraction:.0%} of its steps)" if isinstance(fraction, int | float) else ""
        body["warnings"].append(
            f"the family's {law} curve fit forecast {round(coverage * n)} of {n} of its finished runs inside their "
            f"{level:.0%} intervals{seen}: this interval may be too narrow"
        )


def _verdict(run: Run, body: dict[str, Any]) -> None:
    """The forecast against the family's best-ranked law at the run's (N, D, bits), into `body`."""
    forecast = body["forecast"]
    ranking = law_ranking(team=run.team, family=run.family).ranking
    if ranking.best is None:
        body["verdict_reason"] = "the family has no ranked law fit yet"
        return
    config = RunConfig(
        n_params=run.n_params,
        n_tokens=run.n_tokens,
        weight_bits=run.weight_bits,
        activation_bits=run.activation_bits,
        kv_bits=run.kv_bits,
        exponent_bits=run.exponent_bits,
        mantissa_bits=run.mantissa_bits,
    )
    try:
        answer = prediction_make(team=run.team, family=run.family, law=ranking.best, config=config)
    except (FitNotFound, FitUnusable, PredictionInvalid) as exc:
        body["verdict_reason"] = f"the {ranking.best} fit cannot predict this run: {exc}"
        return
    low, high = answer.interval
    law_interval = (low, high) if low is not None and high is not None else None
    # A finished run is judged by what it measured (exact), a running one by its forecast and interval.
    final = _final_loss(run)
    basis = "forecast" if final is None else "final_loss"
    try:
        verdict = compare_with_law(
            forecast["loss"] if final is None else final,
            (forecast["interval"][0], forecast["interval"][1]) if final is None else None,
            answer.loss,
            law_interval,
            forecast_level=forecast["level"],
        )
    except ValueError as exc:
        body["verdict_reason"] = f"no verdict: {exc}"
        return
    body["verdict"] = {
        **verdict.as_dict(),
        "basis": basis,
        "law": ranking.best,
        "fit_id": answer.fit_id,
        "law_loss": answer.loss,
        "law_interval": None if law_interval is None else list(law_interval),
        # How far the law's side can be trusted: its fit's verdict and where the run sits against its runs.
        "law_quality": answer.quality,
        "law_data_range": answer.data_range,
    }
    body["warnings"] = [*body["warnings"], *(f"the {ranking.best} law: {w}" for w in answer.warnings)]


def run_forecast(
    *, run: Run, key: str | None = None, law: str = DEFAULT_LAW, level: float = DEFAULT_LEVEL, refresh: bool = False
) -> dict[str, Any]:
    """The run's forecast from the cache when the family's history version has not changed, else computed and
    cached (`refresh` recomputes whatever the cache holds). The default query's answer is also kept under
    latest_cache_key for the run list."""
    version = forecast_version(team_id=run.team_id, family=run.family)
    cache_key = _cache_key(run.pk, version, key=key, law=law, level=level)
    if not refresh:
        cached = cache.get(cache_key)
        if cached is not None:
            return dict(cached, cached=True)
    body = forecast_compute(run=run, key=key, law=law, level=level)
    body["version"] = version
    cache.set(cache_key, body, CACHE_SECONDS)
    if key is None and law == DEFAULT_LAW and level == DEFAULT_LEVEL:
        cache.set(latest_cache_key(run.pk), _summary(body), CACHE_SECONDS)
    return dict(body, cached=False)


def forecast_refresh(*, run_id: int) -> bool:
    """Compute and cache run `run_id`'s forecast (the default query) unless the cache has it for the family's
    current version; False when the run no longer exists."""
    run = Run.objects.filter(pk=run_id).select_related("team").first()
    if run is None:
        return False
    run_forecast(run=run)
    return True


def _summary(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the run list shows of a forecast: the loss and the verdict, or the first reason."""
    forecast = body.get("forecast")
    verdict = body.get("verdict")
    outcome = body.get("outcome")
    return {
        "loss": None if forecast is None else forecast["loss"],
        "final_loss": None if not outcome else outcome["final_loss"],
        "verdict": None if verdict is None else verdict["verdict"],
        "text": verdict["text"] if verdict else (body.get("verdict_reason") or "; ".join(body.get("reasons") or [])),
    }


def forecast_summaries(*, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The newest forecast summary of each run that has one, in one cache read (never a fit)."""
    found = cache.get_many([latest_cache_key(i) for i in run_ids])
    return {i: found[latest_cache_key(i)] for i in run_ids if latest_cache_key(i) in found}


__all__ = [
    "CURVE_LOSS_KEYS",
    "MAX_FAMILY_RUNS",
    "curve_loss_key",
    "forecast_compute",
    "forecast_refresh",
    "forecast_summaries",
    "forecast_version",
    "run_forecast",
    "schedule_spec",
]
