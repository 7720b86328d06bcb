"""Law comparison: rank a family's current fits, one per law, by their backtest error; pure, no Django.

The score is the backtest's `rmse_log_runs`: the root mean square of log-loss residuals on the held-out runs'
final losses (the fit on the other runs predicting them; fits.laws.backtest chooses the held-out runs from
the model sizes, the same for every law fitted to the same runs). It is the one backtest
number every law predicts; `rmse_log` also counts PTQ evaluations for a law that has a PTQ term, so it is not
comparable across laws. Lower is better. docs/laws-engine.md, "Law comparison", states the rules.
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

REASON_OLD_FIT = "fitted before law ranking; refit to rank"
BACKTEST_NOT_COMPUTED = "backtest not computed"


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
    eligible: bool  # may be chosen as the best law (ranked, and covering as many runs as the other fits)
    reason: str | None
    rank: int | None
    stale: bool
    scheme: str | None = None  # the backtest's held-out scheme (fits.laws.backtest); None when unranked
    held_out_n_params: tuple[float, ...] = ()  # the model sizes of the held-out runs

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
            out.append(f"{best.law} is named best though {best.reason}: no law covering every run has a score yet")
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
    score = fit.backtest.get("rmse_log_runs")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score) or score < 0:
            return f"backtest score is not a finite, non-negative number ({score!r})"
        return None
    noted = next((w for w in fit.warnings if w.startswith(BACKTEST_NOT_COMPUTED)), None)
    if noted is not None:
        return noted  # the engine's own words: "backtest not computed (fit without the largest N failed: ...)"
    return REASON_OLD_FIT


def _tie_ordered(scored: list[tuple[float, LawFit]]) -> list[tuple[float, LawFit]]:
    """Ascending score; each group of scores within TIE_RELATIVE of the group's lowest is ordered by parsimony."""
    rest = sorted(scored, key=lambda item: (item[0], item[1].n_params_fitted, item[1].law))
    out: list[tuple[float, LawFit]] = []
    while rest:
        anchor = rest[0][0]
        group = [item for item in rest if item[0] <= anchor * (1.0 + TIE_RELATIVE)]
        rest = rest[len(group) :]
        out.extend(sorted(group, key=lambda item: (item[1].n_params_fitted, item[1].law)))
    return out


def rank_laws(fits: Sequence[LawFit]) -> Ranking:
    """Order the current fits of one family's laws by backtest error (module docstring, TIE_RELATIVE).

    A fit without `rmse_log_runs` is listed unranked, with the reason. A fit covering fewer runs than the
    family's most-covering fit (the floating-point law fits only runs that report exponent and mantissa bits;
    or a fit not yet refreshed after new runs) keeps its rank but is not eligible to be the best law: its score
    was measured on other held-out runs.
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
        entries.append(
            _entry(
                fit,
                score=score,
                ranked=True,
                eligible=not covers_less,
                reason=(
                    f"covers {_coverage(fit)} of the {most_runs} runs the other fits cover: its backtest is not "
                    "comparable, so it is not eligible as the best law"
                    if covers_less
                    else None
                ),
                rank=position,
            )
        )
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
    )


__all__ = ["MIN_HELD_OUT_RUNS", "REASON_OLD_FIT", "TIE_RELATIVE", "LawFit", "RankedLaw", "Ranking", "rank_laws"]
