"""Which law answers a plan request: the law it names, or (auto) the best-ranked law that can serve it.

Reads the family's ranking (fits.selectors.law_ranking) and asks each candidate law whether it can serve the
request's bit constraints (fits.laws.ScalingLaw.plan_bits); nothing here knows a law by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fits.laws import DEFAULT_LAW, ConstraintRefused, get_law
from fits.laws.backtest import SCHEME_TEXT
from fits.models import Fit
from fits.ranking import RankedLaw
from fits.selectors import law_ranking
from planner.errors import NoSucceededFit
from planner.requests import AUTO_LAW, PlanRequest
from runs.models import Team


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
_COMPACT_RANKING_KEYS = ("law", "fit_id", "version", "score", "scheme", "n_held_out_runs", "rank", "eligible", "reason")


def law_refusal(fit: Fit, request: PlanRequest) -> str | None:
    """Why `fit`'s law cannot serve the request's bit constraints ("constraints.<field>: <message>"), or None.

    The law's own rules decide (the same ones the search applies); no draws are read.
    """
    try:
        get_law(fit.law).plan_bits(request.constraints.bits, {**fit.fixed, **fit.params}, fit.data_range)
    except ConstraintRefused as refused:
        return f"constraints.{refused.field}: {refused.message}"
    return None


def _score_text(entry: RankedLaw) -> str:
    held = f" on {entry.n_held_out_runs} held-out runs" if entry.n_held_out_runs is not None else ""
    scheme = f" ({SCHEME_TEXT.get(entry.scheme or '', entry.scheme)})" if entry.scheme else ""
    return f"backtest RMSE of log loss {entry.score:.4g}{held}{scheme}"


def law_choose(*, team: Team, request: PlanRequest) -> LawSelection:
    """The law that answers `request`: the law it names, else (auto) the best-ranked law that can serve it.

    Auto: the eligible ranked laws in rank order (fits.ranking), the first whose current fit accepts the
    constraints. When none is ranked, or none of the ranked ones can serve, the fallback order is the law the
    ranking names best anyway (so a plan and GET /fits/ranking/ agree), then the default law (fits.laws.DEFAULT_LAW,
    the one that models every precision input the planner takes), then ranking order; again the first that can
    serve. When no law can serve, the first of that fallback order is used and its search names the refused field
    (400). NoSucceededFit when the family has no succeeded fit of any law; an explicit law is checked by the
    search (NoSucceededFit for a missing fit).
    """
    if request.law != AUTO_LAW:
        return LawSelection(requested=request.law, used=request.law, reason="requested explicitly", ranking=[])
    family_ranking = law_ranking(team=team, family=request.family)
    ranking, fits = family_ranking.ranking, family_ranking.fits
    if not ranking.entries:
        raise NoSucceededFit(f"The family {request.family!r} has no succeeded fit of any law yet.")
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
        refusal = law_refusal(fits[entry.law], request)
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

    named = ranking.best if not preferred else None
    fallback = sorted(ranking.entries, key=lambda e: (e.law != named, e.law != DEFAULT_LAW))  # stable sort
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
        refusal = law_refusal(fits[entry.law], request)
        if refusal is None:
            kind = (
                "the law the ranking names best"
                if entry.law == named
                else "the default law"
                if entry.law == DEFAULT_LAW
                else "a law with a succeeded fit"
            )
            return select(entry.law, f"{context}; fell back to {entry.law}, {kind}")
        refused[entry.law] = refusal
    return select(fallback[0].law, f"{context}; no law can serve this request")
