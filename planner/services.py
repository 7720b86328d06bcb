"""Writes of fits: mark scopes dirty, debounce, snapshot, claim, compute in chunks, publish.

The workers call these through thin tasks (workers/tasks.py); nothing here needs a broker, so every step
can be tested by calling it. A fit moves queued -> running -> succeeded | failed, and each step is a
conditional UPDATE, so a duplicate or late message finds nothing to do.
"""

import logging
import math
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

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
from planner.heartbeat import chunk_in_progress, fit_heartbeat
from planner.laws import (
    FitFailed,
    FitResult,
    assemble_fit,
    bootstrap_chunk,
    fit_point,
    fp_layout,
    in_domain,
    predict_loss,
    predict_loss_draws,
)
from planner.models import AUTO_LAW, Fit, FitChunk, FitScope, Law, Plan
from planner.ranking import RankedLaw
from planner.selectors import FitData, fit_current, fit_data, fit_is_stale, fit_latest, law_ranking
from runs.models import Team

logger = logging.getLogger(__name__)

try:
    CODE_VERSION = f"bitscale {version('bitscale')}"
except PackageNotFoundError:  # running from a checkout that was not pip-installed
    CODE_VERSION = "bitscale dev"


def _send(task: Any, **kwargs: Any) -> None:
    """Publish a task message; a broker that is down is logged, not raised: the sweep re-sends later."""
    countdown = kwargs.pop("countdown", None)
    try:
        task.apply_async(kwargs=kwargs, countdown=countdown, retry=False)
    except Exception as exc:  # kombu raises many types for an unreachable broker; the request must still succeed
        logger.warning("could not publish %s(%s): %s; the sweep will re-send it", task.name, kwargs, exc)


def _tasks() -> Any:
    from workers import tasks  # the task modules import this one: resolve them at call time

    return tasks


# Writers: mark the family's scopes dirty --------------------------------------------------------------


def fit_scopes_mark_dirty(*, team_id: int, families: Iterable[str]) -> None:
    """Record that the runs of `families` changed; call inside the writer's transaction.

    Bumps each scope's generation and, once per dirty episode, sends a debounced refit after commit.
    The scope rows are updated last, in one statement, so the row locks are held only until the commit.
    """
    families = sorted(set(families))
    if not families:
        return
    now = timezone.now()
    scopes = FitScope.objects.filter(team_id=team_id, family__in=families)
    touched = scopes.update(
        generation=F("generation") + 1, dirty_since=Coalesce("dirty_since", now), last_change_at=now
    )
    if touched < len(families) * len(Law):
        existing = set(scopes.values_list("family", "law"))
        for family in families:
            for law in Law:
                if (family, law.value) not in existing:
                    _scope_create(team_id=team_id, family=family, law=law.value, now=now)
    for scope_id in scopes.filter(enqueued_at__isnull=True).values_list("id", flat=True):
        if FitScope.objects.filter(pk=scope_id, enqueued_at__isnull=True).update(enqueued_at=now):
            transaction.on_commit(
                partial(_send, _tasks().refit_scope, scope_id=scope_id, countdown=settings.FIT_DEBOUNCE_SECONDS)
            )


def _scope_create(*, team_id: int, family: str, law: str, now: Any) -> None:
    try:
        with transaction.atomic():
            FitScope.objects.create(
                team_id=team_id, family=family, law=law, generation=1, dirty_since=now, last_change_at=now
            )
    except IntegrityError:  # a concurrent writer created it first: count our change on it
        FitScope.objects.filter(team_id=team_id, family=family, law=law).update(
            generation=F("generation") + 1, dirty_since=Coalesce("dirty_since", now), last_change_at=now
        )


# Step 1 (default queue): debounce, snapshot, queue a version --------------------------------------------


@dataclass(frozen=True)
class RefreshOutcome:
    """What a refit request did: queued a fit, found nothing to do, or asks to be retried later."""

    fit_id: int | None = None
    retry_in: float | None = None


def fit_scope_refresh(*, scope_id: int, force: bool = False) -> RefreshOutcome:
    """Turn a dirty scope into a queued fit once its changes have paused (or waited long enough).

    1. Debounce: wait until FIT_DEBOUNCE_SECONDS passed since the last change, at most FIT_MAX_WAIT_SECONDS
       since the first unfitted one; a fit already in flight also means "later".
    2. Under the scope's row lock (writers wait), snapshot the runs. Data equal to the last version's (same
       fingerprint) creates no version; otherwise a new queued version holds the snapshot.
    3. The scope is clean again; the fit is sent to the fits queue after commit.
    """
    now = timezone.now()
    scope = FitScope.objects.filter(pk=scope_id).first()
    if scope is None or (scope.dirty_since is None and not force):
        FitScope.objects.filter(pk=scope_id).update(enqueued_at=None)
        return RefreshOutcome()
    retry_in = 0.0
    if not force and scope.last_change_at is not None and scope.dirty_since is not None:
        ready_at = min(
            scope.last_change_at + timedelta(seconds=settings.FIT_DEBOUNCE_SECONDS),
            scope.dirty_since + timedelta(seconds=settings.FIT_MAX_WAIT_SECONDS),
        )
        retry_in = max(0.0, (ready_at - now).total_seconds())
    in_flight = Fit.objects.filter(team_id=scope.team_id, family=scope.family, law=scope.law).in_flight()
    if not retry_in and in_flight.exists():  # the next version starts once this one is done
        retry_in = max(float(settings.FIT_DEBOUNCE_SECONDS), 1.0)
    if retry_in:
        FitScope.objects.filter(pk=scope_id).update(enqueued_at=now)  # our message is still on its way
        return RefreshOutcome(retry_in=retry_in)

    with transaction.atomic():
        scope = FitScope.objects.select_for_update().get(pk=scope_id)
        data = fit_data(team_id=scope.team_id, family=scope.family)
        last = fit_latest(team_id=scope.team_id, family=scope.family, law=scope.law)
        FitScope.objects.filter(pk=scope_id).update(dirty_since=None, enqueued_at=None, fingerprint=data.fingerprint)
        if last is not None and last.data_fingerprint == data.fingerprint:
            return RefreshOutcome()  # the runs are as the last version saw them: no duplicate version
        if last is None and (data.n_runs == 0 or (not force and not data.law_applies(scope.law))):
            # Nothing was ever fitted and nothing is there to fit: no runs, or (fp law) no run reports its
            # floating-point format. An explicit request (force) still makes a version, which fails with the reason.
            return RefreshOutcome()
        fit = Fit.objects.create(
            team_id=scope.team_id,
            family=scope.family,
            law=scope.law,
            version=(last.version if last else 0) + 1,
            n_bootstrap=settings.FIT_BOOTSTRAP_DRAWS,
            chunk_size=settings.FIT_CHUNK_SIZE,
            run_ids=data.run_ids,
            snapshot=data.to_bytes(),
            data_fingerprint=data.fingerprint,
            code_version=CODE_VERSION,
        )
        transaction.on_commit(partial(_send, _tasks().run_fit, fit_id=fit.pk))
    return RefreshOutcome(fit_id=fit.pk)


def fit_request(*, team: Team, family: str, law: str) -> Fit | None:
    """Ask for a refit now (POST /fits/): the fit in flight, a new queued version, or the latest if unchanged."""
    scope, _ = FitScope.objects.get_or_create(team=team, family=family, law=law)
    if not Fit.objects.filter(team=team, family=family, law=law).in_flight().exists():
        fit_scope_refresh(scope_id=scope.pk, force=True)
    return fit_latest(team_id=team.pk, family=family, law=law)


# Step 2 (fits queue): claim, point fit, fan out the bootstrap ------------------------------------------------


def _stuck_before() -> Any:
    return timezone.now() - timedelta(seconds=settings.FIT_STUCK_AFTER_SECONDS)


def fit_execute(*, fit_id: int) -> list[int]:
    """Claim a queued fit (or take over one whose worker went silent), compute its point estimate, and
    return the bootstrap chunk indices still to compute; the caller sends them to the workers.

    1. Claim: queued -> running, or running with a heartbeat older than FIT_STUCK_AFTER_SECONDS (its worker
       died). Zero rows updated: a duplicate delivery; nothing to do.
    2. Compute the point fit outside any transaction, the heartbeat kept fresh meanwhile (planner.heartbeat);
       FitFailed is an outcome (stored, not retried).
    3. Publish the point state, conditional on this attempt still owning the fit.
    """
    now = timezone.now()
    claimable = Q(status=Fit.Status.QUEUED) | Q(status=Fit.Status.RUNNING, heartbeat_at__lt=_stuck_before())
    claimed = Fit.objects.filter(claimable, pk=fit_id).update(
        status=Fit.Status.RUNNING, started_at=Coalesce("started_at", now), heartbeat_at=now, attempt=F("attempt") + 1
    )
    if claimed != 1:
        return []
    fit = Fit.objects.defer("draws").get(pk=fit_id)
    if fit.point_state is None:
        data = FitData.from_bytes(bytes(fit.snapshot or b""), fingerprint=fit.data_fingerprint)
        try:
            with fit_heartbeat(fit_id=fit_id, attempt=fit.attempt):
                point = fit_point(fit.law, data.observations, objective=fit.objective, seed=fit.pk)
        except FitFailed as exc:
            _publish(fit, status=Fit.Status.FAILED, error=str(exc))
            return []
        state = pickle.dumps(point, protocol=pickle.HIGHEST_PROTOCOL)
        owned = Fit.objects.filter(pk=fit_id, status=Fit.Status.RUNNING, attempt=fit.attempt).update(
            point_state=state, draw_names=point.draw_names, heartbeat_at=timezone.now()
        )
        if not owned:
            return []
    done = set(FitChunk.objects.filter(fit_id=fit_id).values_list("index", flat=True))
    missing = [i for i in range(_chunk_count(fit)) if i not in done]
    if not missing:
        fit_finish(fit_id=fit_id)
    return missing


def _chunk_count(fit: Fit) -> int:
    return math.ceil(fit.n_bootstrap / fit.chunk_size) if fit.n_bootstrap else 0


def fit_compute_chunk(*, fit_id: int, index: int) -> bool:
    """Compute one chunk of bootstrap draws; True when it was the last one missing (time to finish).

    Idempotent: a chunk already stored, or being computed by another worker, or a fit no longer running, is
    left alone.
    """
    fit = Fit.objects.defer("draws", "snapshot").filter(pk=fit_id, status=Fit.Status.RUNNING).first()
    if fit is None or fit.point_state is None or FitChunk.objects.filter(fit_id=fit_id, index=index).exists():
        return False
    point = pickle.loads(bytes(fit.point_state))  # written by fit_execute into our own database
    start = index * fit.chunk_size
    count = min(fit.chunk_size, fit.n_bootstrap - start)
    with chunk_in_progress(fit_id=fit_id, index=index) as mine:
        if not mine:  # another worker computes it right now (a re-sent copy), or it was just stored
            return False
        draws = bootstrap_chunk(point, start=start, count=count)
    FitChunk.objects.bulk_create(
        [FitChunk(fit_id=fit_id, index=index, draws=np.ascontiguousarray(draws, dtype=np.float64).tobytes())],
        ignore_conflicts=True,  # a duplicate delivery computed it too: either copy is the same
    )
    Fit.objects.filter(pk=fit_id, status=Fit.Status.RUNNING).update(heartbeat_at=timezone.now())
    return FitChunk.objects.filter(fit_id=fit_id).count() >= _chunk_count(fit)


def fit_finish(*, fit_id: int) -> bool:
    """Assemble the stored chunks into the finished fit; True if this call published it."""
    fit = Fit.objects.defer("snapshot").filter(pk=fit_id, status=Fit.Status.RUNNING).first()
    if fit is None or fit.point_state is None:
        return False
    chunks = list(FitChunk.objects.filter(fit_id=fit_id).order_by("index").values_list("draws", flat=True))
    if len(chunks) < _chunk_count(fit):
        return False
    point = pickle.loads(bytes(fit.point_state))
    width = len(point.draw_names)
    draws = (
        np.concatenate([np.frombuffer(bytes(c), dtype=np.float64).reshape(-1, width) for c in chunks])
        if chunks
        else np.zeros((0, width))
    )
    with fit_heartbeat(fit_id=fit_id):
        result = assemble_fit(point, draws)
    return _publish(
        fit,
        status=Fit.Status.SUCCEEDED,
        params=result.params,
        intervals={k: [v[0], v[1]] for k, v in result.intervals.items()},
        fixed=result.fixed,
        metrics=result.metrics,
        backtest=result.backtest,
        warnings=result.warnings,
        data_range=result.data_range,
        draw_names=result.draw_names,
        draws=np.ascontiguousarray(result.draws, dtype=np.float64).tobytes(),
    )


def _json_safe(value: Any) -> Any:
    """`value` with every non-finite float as None: JSON has no NaN, and PostgreSQL's json columns refuse it
    (an undefined figure, such as R^2 when every run has the same loss, is stored as null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _publish(fit: Fit, *, status: str, **fields: Any) -> bool:
    """Finish a fit, conditional on it still running: a second publisher changes nothing."""
    fields = {k: v if isinstance(v, bytes) else _json_safe(v) for k, v in fields.items()}
    published = Fit.objects.filter(pk=fit.pk, status=Fit.Status.RUNNING).update(
        status=status, finished_at=timezone.now(), point_state=None, **fields
    )
    if published:
        FitChunk.objects.filter(fit_id=fit.pk).delete()
    return bool(published)


# The sweep (beat): anything lost ------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    scope_ids: list[int]
    fit_ids: list[int]


def fits_sweep(*, limit: int = 100) -> SweepResult:
    """Find refits whose message was lost: dirty scopes with no message on its way (or one sent long ago),
    queued fits nobody claimed, running fits whose worker went silent. The caller re-sends them."""
    now = timezone.now()
    lost_after = now - timedelta(seconds=settings.FIT_MAX_WAIT_SECONDS + settings.FIT_SWEEP_GRACE_SECONDS)
    scopes = list(
        FitScope.objects.filter(dirty_since__isnull=False)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=lost_after))
        .order_by("dirty_since")
        .values_list("id", flat=True)[:limit]
    )
    FitScope.objects.filter(pk__in=scopes).update(enqueued_at=now)
    queued_before = now - timedelta(seconds=settings.FIT_SWEEP_GRACE_SECONDS)
    fits = list(
        Fit.objects.filter(
            Q(status=Fit.Status.QUEUED, created_at__lt=queued_before)
            | Q(status=Fit.Status.RUNNING, heartbeat_at__lt=_stuck_before())
        )
        .order_by("created_at")
        .values_list("id", flat=True)[:limit]
    )
    return SweepResult(scope_ids=scopes, fit_ids=fits)


def send_all(task: Callable[..., Any], ids: Iterable[int], key: str) -> None:
    for value in ids:
        _send(task, **{key: value})


# =====================================================================================================
# Plans: how big, how long and in how many bits, for a budget (docs/api.md, Plans; issue 6)
# =====================================================================================================
#
# The maths is planner.allocation.plan_search (pure); this section turns a stored fit into its loss functions,
# checks the request against the fit (law, PTQ term, domain), runs the search, adds the fit's warnings
# (extrapolation, stale, newer fit failed) and stores the Plan.

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


class NoSucceededFit(Exception):
    """The family has no succeeded fit of the law asked for (409)."""


class PlanInvalid(Exception):
    """The request cannot be planned; `errors` names the field, nested as the input is: {"constraints": {...}}."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(str(errors))
        self.errors = errors


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


def _plan_budget(budget: Mapping[str, Any]) -> tuple[dict[str, Any], float, str | None, float | None]:
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


def _config_json(config: PlanConfig | None, result: FitResult | None = None) -> dict[str, Any] | None:
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
        "predicted_loss": _finite_or_none(config.predicted_loss),
        "predicted_loss_interval": None if interval is None else [_finite_or_none(v) for v in interval],
        "compute_flops": config.compute_flops,
        "weights_memory_bytes": config.weights_memory_bytes,
        **_format_json(result, config.weight_bits),
    }


def _format_json(result: FitResult | None, weight_bits: float) -> dict[str, Any]:
    """For an fp fit, the floating-point format of a width: the law's best layout (fp_layout); else nothing.

    Whole bits for a whole width (E4M3); a fractional width gets the law's continuous optimum."""
    if result is None or result.law != Law.FP:
        return {}
    exponent, mantissa = fp_layout(result.all_params, weight_bits)
    return {
        key: int(value) if float(value).is_integer() else float(value)
        for key, value in (("exponent_bits", exponent), ("mantissa_bits", mantissa))
    }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _spread_json(spread: OptimumSpread | None) -> dict[str, Any] | None:
    if spread is None:
        return None
    ranges = ("n_params", "n_tokens", "weight_bits", "activation_bits", "kv_bits", "predicted_loss")
    out: dict[str, Any] = {key: [_finite_or_none(v) for v in getattr(spread, key)] for key in ranges}
    out.update(
        n_draws=spread.n_draws,
        n_valid_draws=spread.n_valid_draws,
        fraction_at_window_edge=spread.fraction_at_window_edge,
    )
    return out


def _plan_fit_warnings(fit: Fit, result: FitResult, rec: PlanConfig) -> list[str]:
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
    hardware: Any  # as _plan_budget resolved it: a profile, or None for a FLOPs budget
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
) -> PlanOnFit:
    """Validate a plan request and run the search on the family's current fit of `law` and its draws.

    Raises NoSucceededFit when the family has no succeeded fit of that law, PlanInvalid (naming the field)
    when the budget or constraints are malformed, contradictory or outside the fitted law's domain.
    """
    if law not in Law.values:
        raise PlanInvalid({"law": [f"Unknown law {law!r}."]})
    if cost_model not in Plan.CostModel.values:
        raise PlanInvalid({"cost_model": [f"Unknown cost model {cost_model!r}."]})
    budget_json, budget_flops, hardware, _ = _plan_budget(budget)
    fit = fit_current(team=team, family=family, law=law)
    if fit is None:
        raise NoSucceededFit(f"The family {family!r} has no succeeded {law} fit yet.")
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
    warnings: tuple[str, ...] = ()  # the ranking's (planner.ranking.Ranking.warnings); added to the plan's warnings

    def as_json(self) -> dict[str, Any]:
        return {"requested": self.requested, "used": self.used, "reason": self.reason, "ranking": self.ranking}


# The keys of a ranking entry that a plan keeps (the full entry is GET /api/v1/fits/ranking/).
_COMPACT_RANKING_KEYS = ("law", "fit_id", "version", "score", "rank", "eligible", "reason")


def _law_refusal(fit: Fit, constraints: Mapping[str, Any] | None) -> str | None:
    """Why `fit` cannot serve these constraints (the message _plan_constraints would answer), or None.

    The law's own checks decide: a law that does not model precision refuses bit constraints, a fit without a
    PTQ term refuses post_train_bits, a width outside the law's domain is refused. No draws are read.
    """
    light = FitResult(
        law=fit.law,
        objective=fit.objective,
        params=dict(fit.params),
        intervals={},
        fixed=dict(fit.fixed),
        metrics=dict(fit.metrics),
        backtest=dict(fit.backtest),
        warnings=list(fit.warnings),
        draws=np.zeros((0, len(fit.draw_names))),
        draw_names=list(fit.draw_names),
        data_range=dict(fit.data_range),
    )
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
    return f"backtest RMSE of log loss {entry.score:.4g}{held}"


def plan_law_resolve(
    *, team: Team, family: str, law: str = AUTO_LAW, constraints: Mapping[str, Any] | None = None
) -> LawSelection:
    """The law that answers a plan request: `law` itself when it names one, else (AUTO_LAW) the best-ranked law.

    Auto: the eligible ranked laws in rank order (planner.ranking), the first whose current fit accepts the
    constraints (a law that does not model precision cannot serve bit constraints; post_train_bits needs a fit
    with a PTQ term). When none is ranked, or none of the ranked ones can serve, the fallback is `precision`
    if it has a succeeded fit, else the other laws in ranking order, again the first that can serve; when no
    law can serve, the first of that fallback order is used and its plan search names the refused field (400).
    Raises NoSucceededFit when the family has no succeeded fit of any law; an explicit law is checked by the
    plan search as before (PlanInvalid for an unknown law, NoSucceededFit for a missing fit).
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
            requested=AUTO_LAW, used=used, reason=reason, ranking=compact, warnings=tuple(ranking.warnings)
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

    # Precision first (the default before laws were ranked), then ranking order.
    fallback = sorted(ranking.entries, key=lambda e: e.law != Law.PRECISION)  # stable sort
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
            kind = "the default law" if entry.law == Law.PRECISION else "a law with a succeeded fit"
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
    if law == AUTO_LAW:  # a malformed request is a 400 before any law is chosen (an explicit law: as before)
        if cost_model not in Plan.CostModel.values:
            raise PlanInvalid({"cost_model": [f"Unknown cost model {cost_model!r}."]})
        _plan_budget(budget)
    selection = plan_law_resolve(team=team, family=family, law=law, constraints=constraints)
    search = plan_search_on_current_fit(
        team=team, family=family, law=selection.used, budget=budget, constraints=constraints, cost_model=cost_model
    )
    planned = search.planned
    rec = planned.recommendation
    warnings = [*planned.warnings, *_plan_fit_warnings(search.fit, search.result, rec), *selection.warnings]
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
        recommendation=_config_json(rec, search.result),
        baseline=_config_json(planned.baseline, search.result),
        alternatives=[_config_json(a, search.result) for a in planned.alternatives],
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
