"""Reads for the admin's fit pages: the data a fit was made on, the diff from its previous version, its plots
and the family's law comparison."""

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.urls import reverse

from config.cache import cache_is_shared
from fits import plots
from fits.density_selectors import fit_run_densities
from fits.laws import FitResult, Observations
from fits.laws.backtest import SCHEME_TEXT
from fits.models import Fit
from fits.ranking import ELIGIBILITY_RULE
from fits.selectors import FitData, fit_data, law_ranking
from runs.admin_display import count_html
from runs.models import Run

PLOTS_CACHE_VERSION = 4  # bump when the plots change: fits are immutable, so a plot is cached per fit
PLOTS_CACHE_SECONDS = 24 * 3600


def fit_observations(*, fit: Fit) -> Observations:
    """The exact arrays the fit was computed on (its snapshot), or the family's current runs for an old fit."""
    if fit.snapshot:
        return FitData.from_bytes(bytes(fit.snapshot), fingerprint=fit.data_fingerprint).observations
    return fit_data(team_id=fit.team_id, family=fit.family).observations


def fit_previous(*, fit: Fit) -> Fit | None:
    """The newest succeeded fit of the same team, family and law with a lower version."""
    return (
        Fit.objects.filter(
            team_id=fit.team_id,
            family=fit.family,
            law=fit.law,
            status=Fit.Status.SUCCEEDED,
            version__lt=fit.version,
        )
        .without_blobs()
        .order_by("-version")
        .first()
    )


@dataclass(frozen=True)
class ParamChange:
    """One parameter's value in the previous and this version (None where it was absent or held fixed)."""

    name: str
    before: float | None
    after: float | None

    @property
    def relative(self) -> float | None:
        if self.before is None or self.after is None or self.before == 0:
            return None
        return (self.after - self.before) / abs(self.before)

    def __str__(self) -> str:
        def fmt(value: float | None) -> str:
            return "—" if value is None else f"{value:.3g}"

        return f"{self.name} {fmt(self.before)} → {fmt(self.after)}"


@dataclass(frozen=True)
class FitDiff:
    """What changed between two versions of one law: parameters, and which runs entered or left."""

    previous_version: int
    params: list[ParamChange]
    runs_added: int
    runs_removed: int
    removed_excluded: int  # of the removed runs, those now excluded
    removed_deleted: int  # of the removed runs, those deleted since
    removed_other: int  # the rest: no longer finished, or moved to another family
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line, e.g. "alpha 0.31 → 0.35; +24 runs, −1 excluded"."""
        moved = [c for c in self.params if c.relative is None or abs(c.relative) >= 0.005]
        parts = [str(c) for c in moved[:6]]
        if len(moved) > 6:
            parts.append(f"{len(moved) - 6} more parameter(s) changed")
        if not moved:
            parts.append("parameters unchanged (within 0.5%)")
        runs = [f"+{self.runs_added} runs"] if self.runs_added else []
        for count, what in (
            (self.removed_excluded, "excluded"),
            (self.removed_deleted, "deleted"),
            (self.removed_other, "no longer in the fit set"),
        ):
            if count:
                runs.append(f"−{count} {what}")
        return "; ".join(["; ".join(parts), ", ".join(runs) or "same runs"])


def fit_diff(*, fit: Fit, previous: Fit) -> FitDiff:
    """Parameter changes (fitted values; a parameter fixed on one side shows its held value) and run churn."""
    names = list(dict.fromkeys([*previous.params, *fit.params]))

    def value(f: Fit, name: str) -> float | None:
        raw = f.params.get(name, f.fixed.get(name))
        return float(raw) if isinstance(raw, int | float) and math.isfinite(raw) else None

    changes = [ParamChange(name, value(previous, name), value(fit, name)) for name in names]
    before, after = set(previous.run_ids), set(fit.run_ids)
    removed = before - after
    excluded = deleted = 0
    if removed:
        states = dict(Run.objects.filter(pk__in=removed).values_list("pk", "excluded"))
        excluded = sum(1 for pk in removed if states.get(pk) is True)
        deleted = sum(1 for pk in removed if pk not in states)
    return FitDiff(
        previous_version=previous.version,
        params=changes,
        runs_added=len(after - before),
        runs_removed=len(removed),
        removed_excluded=excluded,
        removed_deleted=deleted,
        removed_other=len(removed) - excluded - deleted,
    )


def backtest_rows(*, fit: Fit) -> tuple[str, list[tuple[str, str]]]:
    """The backtest's scheme in words, and its figures as (name, text) rows for the fit page."""
    rows = []
    for name, value in sorted((fit.backtest or {}).items()):
        if name in ("scheme", "held_out_runs", "residuals_runs"):
            continue  # run-level lists are what the ranking compares laws on, not figures to read
        if isinstance(value, list):
            text = ", ".join(f"{v:.3g}" if isinstance(v, int | float) else str(v) for v in value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            text = f"{value:.5g}"
        else:
            text = str(value)
        rows.append((name, text))
    scheme = str((fit.backtest or {}).get("scheme", "largest_n"))
    return (f"{SCHEME_TEXT[scheme]} held out" if scheme in SCHEME_TEXT else scheme), rows


def screened_rows(*, fit: Fit) -> list[dict[str, Any]]:
    """The runs the fit's screening rule left out, with a link to each run's page."""
    return [
        {
            **entry,
            "n_params": count_html(entry.get("n_params")),
            "n_tokens": count_html(entry.get("n_tokens")),
            "url": reverse("admin:runs_run_change", args=[entry["run_id"]]) if entry.get("run_id") else None,
        }
        for entry in fit.screened or []
    ]


# Plots -------------------------------------------------------------------------------------------------------
#
# A fit never changes, so each plot is rendered once and cached by (fit id, version, plot code version). The page
# itself only links the plots (an <img> each, fits.admin's plot view), so it answers in milliseconds whatever the
# cache holds; the plot view renders one plot at a time on a miss (a few hundred ms on the demo). When the cache is
# shared between processes (Redis, or make run's file cache), the worker that publishes a fit renders its plots
# right away, so a reviewer finds them ready.

# (key, title, renderer) of the five plots fits.plots.fit_plots draws, in its reading order; the density plot
# follows (it also reads when the runs were trained). tests/admin/test_fit_review_at_a_glance.py checks these against
# fits.plots.fit_plots, so a plot added there cannot be missed here.
FIT_PLOTS: tuple[tuple[str, str, Callable[[FitResult, Observations], str]], ...] = (
    ("observed-vs-predicted", "Observed vs predicted", plots.observed_vs_predicted_svg),
    ("residuals", "Residuals vs N", plots.residuals_vs_n_svg),
    ("loss-vs-bits", "Loss vs training bits", plots.loss_vs_bits_svg),
    ("effective-params", "N_eff/N vs bits", plots.effective_params_svg),
    ("ptq", "PTQ degradation", plots.ptq_degradation_svg),
)
DENSITY_PLOT = ("density", "Capacity density over time")
PLOT_TITLES = {key: title for key, title, _ in FIT_PLOTS} | dict([DENSITY_PLOT])
DENSITY_PLOT_VERSION = 2  # bump when the density plot changes


def plots_cache_is_shared() -> bool:
    """Whether what one process caches, another reads (Redis, a file cache): only then is rendering ahead worth it."""
    return cache_is_shared()


def fit_plot_key(*, fit: Fit, key: str) -> str:
    return f"fit-plot:{fit.pk}:{fit.version}:{PLOTS_CACHE_VERSION}:{key}"


def fit_plot(*, fit: Fit, key: str) -> plots.Plot:
    """One plot of a succeeded fit, from the cache or rendered now (and cached); KeyError for an unknown key."""
    if key == DENSITY_PLOT[0]:
        return fit_density_plot(fit)
    renderer = {name: render for name, _, render in FIT_PLOTS}[key]
    cache_key = fit_plot_key(fit=fit, key=key)
    cached: plots.Plot | None = cache.get(cache_key)
    if cached is not None:
        return cached
    plot = plots.Plot(key, PLOT_TITLES[key], renderer(fit.as_result(), fit_observations(fit=fit)))
    cache.set(cache_key, plot, PLOTS_CACHE_SECONDS)
    return plot


def fit_plot_keys() -> list[str]:
    """Every plot of a fit page, in reading order."""
    return [key for key, _, _ in FIT_PLOTS] + [DENSITY_PLOT[0]]


def fit_plots_prerender(*, fit_id: int) -> int:
    """Render a just-published fit's plots into a cache the web processes share; the number rendered (0 when the
    fit is gone, did not succeed, or the cache is this process's own)."""
    if not plots_cache_is_shared():
        return 0
    fit = Fit.objects.defer("point_state").filter(pk=fit_id, status=Fit.Status.SUCCEEDED).first()
    if fit is None:
        return 0
    for key in fit_plot_keys():
        fit_plot(fit=fit, key=key)
    return len(fit_plot_keys())


def fit_density_plot(fit: Fit) -> plots.Plot:
    """Capacity density of the fit's runs (those still stored, with a final loss) against when they were
    trained, relative to this fit's 16-bit curve; cached per fit and training dates (a fit never changes, but a
    run's trained_at may be corrected without changing what the fit reads)."""
    rows, density = fit_run_densities(fit=fit)
    dates = hashlib.sha256(repr([(r[0], r[-1].isoformat()) for r in rows]).encode()).hexdigest()[:16]
    key = f"fit-density:{fit.pk}:{fit.version}:{PLOTS_CACHE_VERSION}:{DENSITY_PLOT_VERSION}:{dates}"
    cached: plots.Plot | None = cache.get(key)
    if cached is not None:
        return cached
    svg = plots.density_over_time_svg(  # all NaN (no density defined) draws the message saying so
        [r[-1] for r in rows],
        density,
        bits=[min(r[4], r[5], r[6]) for r in rows],
        reference=f"{fit.law} v{fit.version} at 16 bits",
    )
    plot = plots.Plot(*DENSITY_PLOT, svg)
    cache.set(key, plot, PLOTS_CACHE_SECONDS)
    return plot


# At a glance --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitVerdict:
    """How a fit reads at a glance in the fit list and at the top of its page.

    `level` is one of "good", "warning", "bad" or "pending" (the colour), `label` the short text, `detail` what
    hovering shows (the warnings, or the error).
    """

    level: str
    label: str
    detail: str


# A succeeded fit's quality verdict (fits.laws.quality) as the colour the list and the page show.
QUALITY_LEVEL = {"good": "good", "weak": "warning", "unusable": "bad"}


def fit_verdict(*, fit: Fit) -> FitVerdict:
    """The fit's verdict, the one the fit list's column and the fit page read: failed or pending from its status;
    a succeeded fit's quality verdict (good, weak, unusable, with its reasons on hover); a succeeded fit stored
    without one, its status and how many warnings it carries."""
    if fit.status == Fit.Status.FAILED:
        return FitVerdict("bad", "failed", fit.error or "no reason recorded")
    if fit.status != Fit.Status.SUCCEEDED:
        return FitVerdict("pending", fit.get_status_display().lower(), "the workers are computing this version")
    if fit.quality in QUALITY_LEVEL:
        reasons = [str(r) for r in fit.quality_reasons or []]
        return FitVerdict(QUALITY_LEVEL[fit.quality], fit.quality, "\n".join(reasons) or "no concern")
    warnings = [str(w) for w in fit.warnings or []]
    if not warnings:
        return FitVerdict("good", "succeeded", "no warnings")
    count = f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
    return FitVerdict("warning", f"succeeded, {count}", "\n".join(warnings))


def interval_rows(*, fit: Fit) -> list[dict[str, Any]]:
    """One row per fitted parameter: value, 95% interval and its relative half-width."""
    rows = []
    for name, value in fit.params.items():
        interval = fit.intervals.get(name)
        lo, hi = (interval[0], interval[1]) if interval else (None, None)
        width = None
        if lo is not None and hi is not None and value:
            width = (hi - lo) / 2 / abs(value)
        rows.append({"name": name, "value": value, "lo": lo, "hi": hi, "relative_half_width": width})
    return rows


# Law comparison ------------------------------------------------------------------------------------------


def number_label(score: Any) -> str:
    return f"{score:.4g}" if isinstance(score, int | float) and not isinstance(score, bool) else "—"


def fit_admin_url(fit_id: Any) -> str | None:
    return reverse("admin:fits_fit_change", args=[fit_id]) if isinstance(fit_id, int) else None


@dataclass(frozen=True)
class LawComparison:
    """The fit page's "Law comparison for this family": one row per law with a current succeeded fit, in ranking
    order (fits.ranking), and how the page's own fit relates to them."""

    rows: list[dict[str, Any]]
    best: str | None
    page_law_row: dict[str, Any] | None  # the row of the page's law; None when that law has no succeeded fit
    eligibility_rule: str = ELIGIBILITY_RULE  # the one rule, as the API and docs state it (fits.ranking)

    @property
    def page_is_current(self) -> bool:
        return self.page_law_row is not None and self.page_law_row["is_page_fit"]


def law_comparison(*, fit: Fit) -> LawComparison:
    """The family's law ranking for the team that owns `fit` (planner.selectors.law_ranking: two queries, no
    draws), as rows for the admin: rank, score, held-out runs, fitted parameters, runs covered, eligibility,
    staleness and each law's fit page; the page's law and the best law are flagged."""
    family_ranking = law_ranking(team=fit.team, family=fit.family)
    best = family_ranking.ranking.best
    rows = []
    for entry in family_ranking.ranking.entries:
        current = family_ranking.fits[entry.law]
        rows.append(
            {
                "law": entry.law,
                "rank": entry.rank,
                "score": entry.score,
                "score_label": number_label(entry.score),
                "n_held_out_runs": entry.n_held_out_runs,
                "n_params_fitted": entry.n_params_fitted,
                "params": [(name, number_label(value)) for name, value in (current.params or {}).items()],
                "n_runs": entry.n_runs,
                "n_runs_covered": entry.n_runs_covered,
                "quality": entry.quality,
                "eligible": entry.eligible,
                "reason": entry.reason,
                "stale": entry.stale,
                "version": entry.version,
                "fit_id": entry.fit_id,
                "url": fit_admin_url(entry.fit_id),
                "is_page_law": entry.law == fit.law,
                "is_page_fit": entry.fit_id == fit.pk,
                "is_best": entry.law == best,
            }
        )
    page_law_row = next((row for row in rows if row["is_page_law"]), None)
    return LawComparison(rows=rows, best=best, page_law_row=page_law_row, eligibility_rule=ELIGIBILITY_RULE)
