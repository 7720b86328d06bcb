"""Law comparison: rank a family's current fits, one per law, by their backtest error; pure, no Django.

The score is the backtest's `rmse_log_runs`: the root mean square of log-loss residuals on the held-out runs'
final losses (the fit on the other runs predicting them; fits.laws.backtest chooses the held-out runs from
the model sizes, the same for every law fitted to the same runs). It is the one backtest
number every law predicts; `rmse_log` also counts PTQ evaluations for a law that has a PTQ term, so it is not
comparable across laws. Lower is better. docs/laws-engine.md, "Law comparison", states the rules; ELIGIBILITY_RULE
is the one sentence the API, the admin and the docs give for which law may be named best.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fits.laws.backtest import SCHEME_TEXT

# Scores within this relative distance of the best score of their group count as tied: a backtest on a handful
# of held-out runs cannot tell 2% apart. Tied laws are ordered by fewer fitted parameters (parsimony), then by
# law name, so the order never depends on the order of the input.
TIE_RELATIVE = 0.02

# Below this many held-out runs behind the best law's score, the ranking says it rests on little: a backtest holds
# out only the runs of the largest N, which for continuous sizes (Epoch's digitised runs) is a single run.
MIN_HELD_OUT_RUNS = 5

# Two laws scored on the same held-out runs are compared run by run: the difference of their squared errors over
# the runs both predict, and its standard error. A law whose excess over the best of its group is within TIE_Z
# standard errors is tied with it (about a 2.5% one-sided chance for a law that is in truth no worse), so the
# simpler law is not passed over for a difference the held-out runs cannot show. Without run-level residuals
# (fits stored before they were kept) TIE_RELATIVE decides.
TIE_Z = 2.0
MIN_PAIRED_RUNS = 3

REASON_OLD_FIT = "fitted before law ranking; refit to rank"
BACKTEST_NOT_COMPUTED = "backtest not computed"
REASON_UNUSABLE = "unusable fit"

ELIGIBILITY_RULE = (
    "A law may be named best when its fit is usable (its verdict is not unusable), it has a backtest score, it "
    "covers as many of the family's runs as the most-covering fit (a run counts as covered when the fit used it or "
    "its screening rule left it out), and, in a family whose runs vary their training bits, it models bits or no "
    "law that models them predicts the held-out runs better."
)


@dataclass(frozen=True)
class LawFit:
    """What the ranking needs of one law's current fit."""

    law: str
    fit_id: int
    version: int
    backtest: Mapping[str, Any]
    n_params_fitted: int  # parameters estimated from the data (held-fixed ones not counted)
    n_runs: int | None  # runs the fit covers (metrics["n_runs"]); None when the fit does not say
    warnings: Sequence[str] = ()
    stale: bool = False
    n_screened: int = 0  # runs the fit's screening rule left out (metrics["n_screened"]): still covered by the fit
    quality: str = ""  # the fit's verdict (fits.laws.quality): good, weak, unusable; "" when not assessed
    quality_reasons: Sequence[str] = ()
    models_bits: bool = False  # the law models training precision (ScalingLaw.bit_dims)
    varies_bits: bool = False  # the fit's runs vary their training bits (data_range)
    data_fingerprint: str = ""  # the runs the fit saw: run-level residuals are comparable only on the same runs


@dataclass(frozen=True)
class RankedLaw:
    """One law's place: ranked entries carry a score and a rank; `reason` says why one is unranked or ineligible."""

    law: str
    fit_id: int
    version: int
    score: float | None
    n_held_out_runs: int | None
    n_params_fitted: int
    n_runs: int | None
    ranked: bool
    eligible: bool  # may be chosen as the best law (ELIGIBILITY_RULE)
    reason: str | None
    rank: int | None
    stale: bool
    scheme: str | None = None  # the backtest's held-out scheme (fits.laws.backtest); None when unranked
    held_out_n_params: tuple[float, ...] = ()  # the model sizes of the held-out runs
    n_runs_covered: int | None = None  # fitted plus screened: what eligibility compares (ELIGIBILITY_RULE)
    quality: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "fit_id": self.fit_id,
            "version": self.version,
            "score": self.score,
            "n_held_out_runs": self.n_held_out_runs,
            "n_params_fitted": self.n_params_fitted,
            "n_runs": self.n_runs,
            "ranked": self.ranked,
            "eligible": self.eligible,
            "reason": self.reason,
            "rank": self.rank,
            "stale": self.stale,
            "scheme": self.scheme,
            "held_out_n_params": list(self.held_out_n_params),
            "n_runs_covered": self.n_runs_covered,
            "quality": self.quality or None,
        }


@dataclass(frozen=True)
class Ranking:
    """Ranked laws first (rank 1, 2, ...), then unranked ones by law name; `best` is the first eligible one."""

    entries: tuple[RankedLaw, ...] = field(default_factory=tuple)

    @property
    def best(self) -> str | None:
        """The first eligible law; when no ranked law is eligible, the first ranked one (`warnings` says why)."""
        entry = self._best_entry()
        return None if entry is None else entry.law

    def _best_entry(self) -> RankedLaw | None:
        eligible = next((e for e in self.entries if e.eligible), None)
        return eligible if eligible is not None else next((e for e in self.entries if e.ranked), None)

    @property
    def basis(self) -> dict[str, Any] | None:
        """What the best law's score rests on: its backtest scheme, held-out runs and their model sizes."""
        best = self._best_entry()
        if best is None:
            return None
        return {
            "law": best.law,
            "score": best.score,
            "scheme": best.scheme,
            "n_held_out_runs": best.n_held_out_runs,
            "held_out_n_params": list(best.held_out_n_params),
        }

    def get(self, law: str) -> RankedLaw | None:
        return next((e for e in self.entries if e.law == law), None)

    @property
    def warnings(self) -> list[str]:
        """What weakens the choice of the best law: a score measured on fewer than MIN_HELD_OUT_RUNS runs, a best
        law that is not eligible (no eligible law has a score), laws scored on different held-out runs."""
        best = self._best_entry()
        if best is None:
            return []
        out = []
        held = best.n_held_out_runs
        if held is not None and held < MIN_HELD_OUT_RUNS:
            runs = "run" if held == 1 else "runs"
            which = SCHEME_TEXT.get(best.scheme or "", "the runs of the largest N")
            out.append(
                f"the law ranking rests on {held} held-out {runs} ({which}): a weak basis for choosing "
                "a law; runs at several sizes near the largest would make it firmer"
            )
        if not best.eligible:
            out.append(f"{best.law} is named best though {best.reason}: no eligible law has a score yet")
        others = [e for e in self.entries if e.ranked and e is not best and _basis_key(e) != _basis_key(best)]
        if others:
            out.append(
                f"not every law was scored on the same held-out runs as {best.law} "
                f"({_basis_text(best)}): " + "; ".join(f"{e.law} on {_basis_text(e)}" for e in others)
            )
        return out


def _basis_key(entry: RankedLaw) -> tuple[str | None, int | None, tuple[float, ...]]:
    return entry.scheme, entry.n_held_out_runs, entry.held_out_n_params


def _basis_text(entry: RankedLaw) -> str:
    sizes = ", ".join(f"{n:.3g}" for n in entry.held_out_n_params)
    where = f" at N = {sizes}" if sizes else ""
    return f"{entry.n_held_out_runs} runs, scheme {entry.scheme}{where}"


def _unranked_reason(fit: LawFit) -> str | None:
    """Why this fit has no score, or None when it has one."""
    if fit.quality == "unusable":
        why = "; ".join(fit.quality_reasons[:1]) or "its verdict is unusable"
        return f"{REASON_UNUSABLE}: {why}"
    score = fit.backtest.get("rmse_log_runs")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score) or score < 0:
            return f"backtest score is not a finite, non-negative number ({score!r})"
        return None
    noted = next((w for w in fit.warnings if w.startswith(BACKTEST_NOT_COMPUTED)), None)
    if noted is not None:
        return noted  # the engine's own words: "backtest not computed (fit without the largest N failed: ...)"
    return REASON_OLD_FIT


def _residuals(fit: LawFit) -> dict[int, float] | None:
    """The fit's held-out runs and their residuals (finite only), by row of the family's snapshot; None when the
    backtest does not carry them."""
    runs, residuals = fit.backtest.get("held_out_runs"), fit.backtest.get("residuals_runs")
    if not isinstance(runs, list | tuple) or not isinstance(residuals, list | tuple) or len(runs) != len(residuals):
        return None
    out = {}
    for run, value in zip(runs, residuals, strict=True):
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[int(run)] = float(value)
    return out


@dataclass(frozen=True)
class Paired:
    """Two laws on the held-out runs both predicted: how many, each one's RMSE there, and the standard error of
    the mean difference of their squared errors (first minus second)."""

    n_runs: int
    rmse_first: float
    rmse_second: float
    mean_difference: float
    standard_error: float

    @property
    def first_meaningfully_worse(self) -> bool:
        """The first law's squared errors exceed the second's by more than TIE_Z standard errors."""
        return self.mean_difference > TIE_Z * self.standard_error


def paired(first: LawFit, second: LawFit) -> Paired | None:
    """The run-level comparison of two fits of the same runs (same snapshot), or None when it cannot be made."""
    if not first.data_fingerprint or first.data_fingerprint != second.data_fingerprint:
        return None
    a, b = _residuals(first), _residuals(second)
    if a is None or b is None:
        return None
    common = sorted(set(a) & set(b))
    if len(common) < MIN_PAIRED_RUNS:
        return None
    ea = [a[i] for i in common]
    eb = [b[i] for i in common]
    diff = [x * x - y * y for x, y in zip(ea, eb, strict=True)]
    m = len(diff)
    mean = sum(diff) / m
    var = sum((d - mean) ** 2 for d in diff) / (m - 1)
    return Paired(
        n_runs=m,
        rmse_first=math.sqrt(sum(x * x for x in ea) / m),
        rmse_second=math.sqrt(sum(y * y for y in eb) / m),
        mean_difference=mean,
        standard_error=math.sqrt(var / m),
    )


def _tied(candidate: tuple[float, LawFit], anchor: tuple[float, LawFit]) -> bool:
    """Whether `candidate` (score at least the anchor's) is tied with `anchor`: not meaningfully worse on the
    held-out runs both predicted (TIE_Z), or, without run-level residuals, within TIE_RELATIVE of its score."""
    comparison = paired(candidate[1], anchor[1])
    if comparison is not None:
        return not comparison.first_meaningfully_worse
    return candidate[0] <= anchor[0] * (1.0 + TIE_RELATIVE)


def _tie_ordered(scored: list[tuple[float, LawFit]]) -> list[tuple[float, LawFit]]:
    """Ascending score; each group of laws tied with the group's lowest score (_tied) is ordered by parsimony."""
    rest = sorted(scored, key=lambda item: (item[0], item[1].n_params_fitted, item[1].law))
    out: list[tuple[float, LawFit]] = []
    while rest:
        anchor = rest[0]
        group = [item for item in rest if item is anchor or _tied(item, anchor)]
        rest = [item for item in rest if not any(item is g for g in group)]
        out.extend(sorted(group, key=lambda item: (item[1].n_params_fitted, item[1].law)))
    return out


def _ignores_varied_bits(fit: LawFit, score: float, others: list[tuple[float, LawFit]]) -> str | None:
    """Why a law that ignores training bits may not be the best of a family that varies them: a ranked law that
    models bits predicts the held-out runs (those both predicted, or the scores when runs cannot be paired) at
    least as well. None when it may."""
    if fit.models_bits or not (fit.varies_bits or any(o.varies_bits for _, o in others)):
        return None
    for other_score, other in others:
        if not other.models_bits or other.quality == "unusable":
            continue
        comparison = paired(fit, other)
        if comparison is not None:
            if comparison.rmse_second <= comparison.rmse_first:
                return (
                    f"ignores the training bits this family varies, and {other.law} predicts the held-out runs both "
                    f"predict better (RMSE of log loss {comparison.rmse_second:.4g} against "
                    f"{comparison.rmse_first:.4g} on {comparison.n_runs} runs)"
                )
        elif other_score <= score:
            return (
                f"ignores the training bits this family varies, and {other.law} has a lower backtest error "
                f"({other_score:.4g} against {score:.4g})"
            )
    return None


def rank_laws(fits: Sequence[LawFit]) -> Ranking:
    """Order the current fits of one family's laws by backtest error (module docstring, TIE_Z, TIE_RELATIVE).

    A fit without `rmse_log_runs`, or with an unusable verdict, is listed unranked, with the reason. A ranked fit
    is eligible to be the best law under ELIGIBILITY_RULE: a fit covering fewer runs than the family's
    most-covering fit (the floating-point law fits only runs that report exponent and mantissa bits; or a fit not
    yet refreshed after new runs) keeps its rank but is not eligible, since its score was measured on other
    held-out runs; nor is a law that ignores the training bits a family varies while a law that models them
    predicts the held-out runs better.
    """
    most_runs = max((_coverage(f) for f in fits if f.n_runs is not None), default=None)
    scored: list[tuple[float, LawFit]] = []
    unranked: list[tuple[LawFit, str]] = []
    for fit in fits:
        reason = _unranked_reason(fit)
        if reason is None:
            scored.append((float(fit.backtest["rmse_log_runs"]), fit))
        else:
            unranked.append((fit, reason))

    entries: list[RankedLaw] = []
    for position, (score, fit) in enumerate(_tie_ordered(scored), start=1):
        covers_less = most_runs is not None and fit.n_runs is not None and _coverage(fit) < most_runs
        reason = (
            f"covers {_coverage(fit)} of the {most_runs} runs the other fits cover: its backtest is not "
            "comparable, so it is not eligible as the best law"
            if covers_less
            else _ignores_varied_bits(fit, score, [item for item in scored if item[1] is not fit])
        )
        entries.append(_entry(fit, score=score, ranked=True, eligible=reason is None, reason=reason, rank=position))
    for fit, reason in sorted(unranked, key=lambda item: item[0].law):
        entries.append(_entry(fit, score=None, ranked=False, eligible=False, reason=reason, rank=None))
    return Ranking(entries=tuple(entries))


def _coverage(fit: LawFit) -> int:
    """Runs the fit was given: those it fitted plus those its screening rule left out."""
    return (fit.n_runs or 0) + fit.n_screened


def _entry(
    fit: LawFit, *, score: float | None, ranked: bool, eligible: bool, reason: str | None, rank: int | None
) -> RankedLaw:
    held = fit.backtest.get("n_held_out_runs")
    sizes = fit.backtest.get("held_out_n_params")
    # Fits from before the schemes existed were all backtested on the runs of the largest N.
    scheme = fit.backtest.get("scheme", "largest_n") if ranked else None
    return RankedLaw(
        law=fit.law,
        fit_id=fit.fit_id,
        version=fit.version,
        score=score,
        n_held_out_runs=int(held) if isinstance(held, int | float) and math.isfinite(held) else None,
        n_params_fitted=fit.n_params_fitted,
        n_runs=fit.n_runs,
        ranked=ranked,
        eligible=eligible,
        reason=reason,
        rank=rank,
        stale=fit.stale,
        scheme=str(scheme) if scheme is not None else None,
        held_out_n_params=tuple(float(n) for n in sizes) if isinstance(sizes, list | tuple) else (),
        n_runs_covered=_coverage(fit) if fit.n_runs is not None else None,
        quality=fit.quality,
    )


__all__ = [
    "ELIGIBILITY_RULE",
    "MIN_HELD_OUT_RUNS",
    "REASON_OLD_FIT",
    "REASON_UNUSABLE",
    "TIE_RELATIVE",
    "TIE_Z",
    "LawFit",
    "Paired",
    "RankedLaw",
    "Ranking",
    "paired",
    "rank_laws",
]
