"""Server-rendered SVG plots of a fit: matplotlib (Agg backend) on NumPy arrays, no Django.

Every function takes the law engine's FitResult (and the Observations it was fitted on) and returns SVG text
ready to inline in a page (no XML prolog). Large families stay readable: scatter plots show a seeded random
sample of at most MAX_POINTS points, say so in a note under the title, and aggregate over every point where
an aggregate helps (binned medians of the residuals). Text stays text (svg.fonttype "none"), so the plots
are small, searchable and testable; each plot salts its element ids, so several can share one HTML page.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from fits.density import MIN_TREND_POINTS, MIN_TREND_SPAN_DAYS, density_trend
from fits.laws import DIMS, BitsPanel, FitResult, Observations, RunConfig, get_law, predict_loss
from plotkit import add_note, axes_of, message_svg, new_figure, render_svg, style

FloatArray = npt.NDArray[np.float64]

MAX_POINTS = 2_000  # per scatter: beyond this a plot turns into a blob and the SVG into megabytes
SAMPLE_SEED = 20240411
MAX_CELLS = 3  # (N, D) cells in the loss-against-bits plot
DIM_LABELS = {"w": "weights", "a": "activations", "kv": "KV cache"}
BITS_ARGUMENT = {"w": "weight_bits", "a": "activation_bits", "kv": "kv_bits"}
DIM_COLOURS = {"w": "#1f77b4", "a": "#d62728", "kv": "#2ca02c"}


@dataclass(frozen=True)
class Plot:
    """One rendered plot: a stable key, a caption title and the SVG text."""

    key: str
    title: str
    svg: str


# Helpers -------------------------------------------------------------------------------------------------


def sample_indices(n: int, limit: int = MAX_POINTS, *, seed: int = SAMPLE_SEED) -> npt.NDArray[np.intp]:
    """All indices when n <= limit, else a seeded random `limit` of them in increasing order."""
    if n <= limit:
        return np.arange(n, dtype=np.intp)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=limit, replace=False)).astype(np.intp)


def _sample_note(shown: int, total: int, noun: str) -> str:
    if shown >= total:
        return f"{total:,} {noun}"
    return f"showing a random {shown:,} of {total:,} {noun} (seeded sample)"


def training_bits(data: Observations) -> FloatArray:
    """The lowest training precision of each run, min(P_w, P_a, P_kv): the colour of a run in the plots."""
    return np.asarray(np.minimum(np.minimum(data.weight_bits, data.activation_bits), data.kv_bits))


def predicted_final_loss(result: FitResult, data: Observations) -> FloatArray:
    """The law's final loss (before PTQ) for every run; NaN where a run lies outside the law's domain (for the
    fp law: where the run reports no floating-point format)."""
    return predict_loss(result.law, result.all_params, RunConfig.of_runs(data))


def _bits_colourbar(fig: Figure, ax: Axes, mappable: Any) -> None:
    bar = fig.colorbar(mappable, ax=ax, pad=0.01, aspect=30)
    bar.set_label("training bits, min(P_w, P_a, P_kv)")


def _human(value: float) -> str:
    """1.1e8 -> '110M', 2.6e10 -> '26B'."""
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


# Fit plots -----------------------------------------------------------------------------------------------


def observed_vs_predicted_svg(result: FitResult, data: Observations) -> str:
    """Observed against predicted final loss with the y = x line, each run coloured by its training bits."""
    title = "Observed vs predicted final loss"
    if data.n_runs == 0:
        return message_svg(title, "No runs.", salt="obs-pred")
    predicted = predicted_final_loss(result, data)
    inside = np.isfinite(predicted)
    keep = np.flatnonzero(inside)[sample_indices(int(inside.sum()))]
    fig = new_figure()
    ax = axes_of(fig)[0]
    bits = training_bits(data)
    with style():
        points = ax.scatter(
            predicted[keep],
            data.final_loss[keep],
            c=bits[keep],
            cmap="viridis",
            norm=Normalize(vmin=float(bits.min()), vmax=float(bits.max())),
            s=10 if keep.size > 500 else 18,
            alpha=0.7 if keep.size > 500 else 0.9,
            linewidths=0,
        )
        both = np.concatenate([predicted[inside], data.final_loss[inside]]) if inside.any() else data.final_loss
        lo, hi = float(np.min(both)), float(np.max(both))
        pad = 0.03 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#333333", lw=1, ls="--", label="y = x")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("predicted final loss (nats)")
        ax.set_ylabel("observed final loss (nats)")
        ax.set_title(title, loc="left", pad=14)
        note = _sample_note(keep.size, int(inside.sum()), "runs")
        if (~inside).any():
            note += f"; {int((~inside).sum())} outside the law's domain not shown"
        add_note(ax, note)
        ax.legend(loc="upper left")
        _bits_colourbar(fig, ax, points)
    return render_svg(fig, salt="obs-pred")


def _log_bins(values: FloatArray, max_bins: int = 20) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """Bin centres and each value's bin: one bin per distinct value when there are few, else log-spaced bins."""
    distinct = np.unique(values)
    if distinct.size <= max_bins:
        return distinct, np.searchsorted(distinct, values).astype(np.intp)
    edges = np.geomspace(distinct[0], distinct[-1] * (1 + 1e-9), max_bins + 1)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, max_bins - 1).astype(np.intp)
    centres = np.sqrt(edges[:-1] * edges[1:])
    return centres, index


def screened_mask(result: FitResult, data: Observations) -> npt.NDArray[np.bool_]:
    """The runs of `data` (the fit's own snapshot) that the fit's screening rule left out."""
    mask = np.zeros(data.n_runs, dtype=bool)
    for entry in result.screened:
        index = entry.get("index")
        if isinstance(index, int) and 0 <= index < data.n_runs:
            mask[index] = True
    return mask


def residuals_vs_n_svg(result: FitResult, data: Observations) -> str:
    """log L_hat - log L against N (positive: the law over-predicts), with the binned median and IQR of all runs;
    the runs the screening rule left out are marked."""
    title = "Residuals vs model size N"
    predicted = predicted_final_loss(result, data)
    inside = np.isfinite(predicted)
    if not inside.any():
        return message_svg(title, "No run inside the law's domain.", salt="residuals")
    n = data.n_params[inside]
    residual = np.log(predicted[inside]) - np.log(data.final_loss[inside])
    bits = training_bits(data)[inside]
    keep = sample_indices(n.size)
    fig = new_figure()
    ax = axes_of(fig)[0]
    with style():
        jitter = np.exp(np.random.default_rng(SAMPLE_SEED).uniform(-0.03, 0.03, keep.size))  # separate stacked N
        points = ax.scatter(
            n[keep] * jitter,
            residual[keep],
            c=bits[keep],
            cmap="viridis",
            s=8 if keep.size > 500 else 16,
            alpha=0.6 if keep.size > 500 else 0.85,
            linewidths=0,
        )
        centres, index = _log_bins(n)
        medians, q25, q75, used = [], [], [], []
        for b in range(centres.size):
            values = residual[index == b]
            if values.size:
                used.append(centres[b])
                medians.append(np.median(values))
                q25.append(np.percentile(values, 25))
                q75.append(np.percentile(values, 75))
        ax.fill_between(used, q25, q75, color="#ff7f0e", alpha=0.2, lw=0, label="IQR per N bin (all runs)")
        ax.plot(used, medians, color="#ff7f0e", lw=1.6, marker="o", ms=3, label="median per N bin (all runs)")
        ax.axhline(0.0, color="#333333", lw=1, ls="--")
        screened = screened_mask(result, data) & inside
        if screened.any():  # every one, however many points are sampled: the reader looks for these
            ax.scatter(
                data.n_params[screened],
                np.log(predicted[screened]) - np.log(data.final_loss[screened]),
                marker="x",
                color="#d62728",
                s=36,
                linewidths=1.4,
                label=f"left out by the screening rule ({int(screened.sum())})",
                zorder=5,
            )
        ax.set_xscale("log")
        ax.set_xlabel("N, non-embedding parameters")
        ax.set_ylabel("log predicted - log observed")
        ax.set_title(title, loc="left", pad=14)
        add_note(ax, _sample_note(keep.size, n.size, "runs") + "; positive: the law over-predicts")
        ax.legend(loc="best")
        _bits_colourbar(fig, ax, points)
    return render_svg(fig, salt="residuals")


def _reference_bits(data: Observations) -> dict[str, float]:
    """Each dimension's highest trained precision (usually 16): the level the others are held at."""
    return {dim: float(np.max(data.bits(dim))) for dim in DIMS}


def varying_dims(data: Observations) -> list[str]:
    """The precision dimensions whose training bits take more than one value in the data."""
    return [dim for dim in DIMS if data.n_runs and np.unique(data.bits(dim)).size > 1]


def _cell_keys(data: Observations, *, binned: bool) -> tuple[FloatArray, FloatArray]:
    """Each run's (N, D) cell: exact values, or the geometric centre of a tenth-of-a-decade bin when binned."""
    if not binned:
        return data.n_params, data.n_tokens
    return 10 ** (np.round(np.log10(data.n_params) * 10) / 10), 10 ** (np.round(np.log10(data.n_tokens) * 10) / 10)


def _pick_cells(n_keys: FloatArray, d_keys: FloatArray, mask: npt.NDArray[np.bool_]) -> list[tuple[float, float]]:
    """Up to MAX_CELLS (N, D) cells with the most runs under `mask`, spread from the smallest N to the largest."""
    if not mask.any():
        return []
    cells, counts = np.unique(np.stack([n_keys[mask], d_keys[mask]], axis=1), axis=0, return_counts=True)
    busy = cells[counts >= max(2, int(0.5 * counts.max()))]
    if busy.size == 0:
        busy = cells[counts == counts.max()]
    # For each N keep its largest D (the best-trained models), then spread across N.
    by_n: dict[float, float] = {}
    for n_value, d_value in busy:
        by_n[float(n_value)] = max(by_n.get(float(n_value), 0.0), float(d_value))
    ns = sorted(by_n)
    picks = sorted({0, len(ns) // 2, len(ns) - 1})[:MAX_CELLS]
    return [(ns[i], by_n[ns[i]]) for i in picks]


def loss_vs_bits_svg(result: FitResult, data: Observations) -> str:
    """Final loss against the training bits of each varying dimension at fixed (N, D): runs and fitted curves."""
    title = "Loss vs training bits at fixed (N, D)"
    panel = get_law(result.law).bits_panel(varying_dims(data))
    if not isinstance(panel, BitsPanel):
        return message_svg(title, panel, salt="loss-bits")
    dims = list(panel.dims)
    if not dims:
        return message_svg(title, "Training bits do not vary in this family.", salt="loss-bits")
    reference = _reference_bits(data)
    fig = new_figure((3.4 * len(dims) + 0.6, 3.6))
    axes = axes_of(fig, len(dims))
    colours = ["#440154", "#21918c", "#e5a100"]
    with style():
        for ax, dim in zip(axes, dims, strict=True):
            others = [d for d in DIMS if d != dim]
            mask = np.ones(data.n_runs, dtype=bool)
            for other in others:
                if panel.tie_activations and other == "a":  # one format for weights and activations
                    mask &= data.activation_bits == data.weight_bits
                    continue
                mask &= data.bits(other) == reference[other]
            # Sweeps on a grid share exact (N, D) cells; continuous sizes are grouped into narrow log bins.
            exact_n, exact_d = _cell_keys(data, binned=False)
            _, counts = np.unique(np.stack([exact_n[mask], exact_d[mask]], axis=1), axis=0, return_counts=True)
            binned = bool(mask.any()) and int(counts.max()) < 3
            n_keys, d_keys = _cell_keys(data, binned=binned)
            cells = _pick_cells(n_keys, d_keys, mask)
            bits_grid = np.linspace(float(data.bits(dim).min()), float(data.bits(dim).max()), 120)
            for colour, (n_value, d_value) in zip(colours, cells, strict=False):
                here = mask & (n_keys == n_value) & (d_keys == d_value)
                label = f"N{'~' if binned else '='}{_human(n_value)}, D{'~' if binned else '='}{_human(d_value)}"
                ax.scatter(data.bits(dim)[here], data.final_loss[here], color=colour, s=16, zorder=3, label=label)
                config = RunConfig(n_params=n_value, n_tokens=d_value).replace(
                    **{BITS_ARGUMENT[d]: reference[d] for d in others}, **{BITS_ARGUMENT[dim]: bits_grid}
                )
                curve = predict_loss(result.law, result.all_params, config)
                ax.plot(bits_grid, curve, color=colour, lw=1.4)
            ax.set_xlabel(f"training bits, {DIM_LABELS[dim]} (P_{dim})")
            held = ", ".join(f"P_{d}={reference[d]:g}" for d in others)
            lines = panel.lines_note
            if panel.tie_activations:
                held = f"P_a=P_w, P_kv={reference['kv']:g}"
            ax.set_title(DIM_LABELS[dim].capitalize(), loc="left", pad=14)
            add_note(ax, f"others held: {held}; lines: {lines}" + ("; N, D in 0.1-decade bins" if binned else ""))
            if ax is axes[0]:
                ax.set_ylabel("final loss (nats)")
                ax.legend(loc="upper right")
        fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    return render_svg(fig, salt="loss-bits")


def _draw_param_maps(result: FitResult) -> dict[str, Any] | None:
    """Fixed and fitted parameters with every fitted value a column of finite draws, shape (S, 1)."""
    ok = np.all(np.isfinite(result.draws), axis=1) if result.draws.size else np.zeros(0, dtype=bool)
    if int(ok.sum()) < 2:
        return None
    draws = result.draws[ok]
    params: dict[str, Any] = dict(result.fixed)
    for j, name in enumerate(result.draw_names):
        params[name] = draws[:, j].reshape(-1, 1)
    return params


def effective_params_svg(result: FitResult, data: Observations | None = None) -> str:
    """N_eff/N against training bits for weights, activations and KV cache, each with its 95% bootstrap band."""
    title = "Effective parameters N_eff/N vs training bits"
    law = get_law(result.law)
    params = result.all_params
    message = law.effective_params_message(params)
    if message is not None:
        return message_svg(title, message, salt="neff")
    active = [dim for dim in DIMS if float(params.get(f"gamma_{dim}", 0.0)) > 0]
    if not active:
        return message_svg(title, "No precision dimension varied in the data: N_eff = N.", salt="neff")
    low = 1.0
    if data is not None and data.n_runs:
        low = max(1.0, min(float(data.bits(dim).min()) for dim in active) - 1.0)
    bits = np.linspace(low, 16.0, 161)
    draw_params = _draw_param_maps(result)
    fig = new_figure()
    ax = axes_of(fig)[0]
    with style():
        for dim in active:
            key = BITS_ARGUMENT[dim]
            curve = law.effective_params_ratio(params, RunConfig(n_params=1.0, n_tokens=1.0).replace(**{key: bits}))
            ax.plot(
                bits,
                curve,
                color=DIM_COLOURS[dim],
                lw=1.6,
                label=f"{DIM_LABELS[dim]} (gamma_{dim}={params[f'gamma_{dim}']:.3g})",
            )
            if draw_params is not None:
                with np.errstate(invalid="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # bits below a draw's domain are NaN columns
                    at_bits = RunConfig(n_params=1.0, n_tokens=1.0).replace(**{key: bits.reshape(1, -1)})
                    per_draw = law.effective_params_ratio(draw_params, at_bits)
                    if np.isfinite(per_draw).any():
                        lo = np.nanpercentile(per_draw, 2.5, axis=0)
                        hi = np.nanpercentile(per_draw, 97.5, axis=0)
                        ax.fill_between(bits, lo, hi, color=DIM_COLOURS[dim], alpha=0.18, lw=0)
            if data is not None and data.n_runs:
                seen = np.unique(data.bits(dim))
                ax.plot(seen, np.full(seen.shape, -0.03), "|", color=DIM_COLOURS[dim], ms=8, clip_on=False)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlim(bits[0], bits[-1])
        ax.set_xlabel("training bits of that dimension (others at 16)")
        ax.set_ylabel("N_eff / N")
        ax.set_title(title, loc="left", pad=14)
        band = f"bands: 95% of {int(np.all(np.isfinite(result.draws), axis=1).sum())} bootstrap draws"
        held = [DIM_LABELS[d] for d in DIMS if d not in active]
        add_note(ax, band + "; ticks: trained widths" + (f"; held at 1: {', '.join(held)}" if held else ""))
        ax.legend(loc="lower right")
    return render_svg(fig, salt="neff")


def ptq_degradation_svg(result: FitResult, data: Observations) -> str:
    """Loss increase from post-training quantization against D/N, one colour and fitted curve per P_post."""
    title = "PTQ degradation vs tokens per parameter D/N"
    if data.n_evals == 0:
        return message_svg(title, "No PTQ evaluations in this family.", salt="ptq")
    reference = _reference_bits(data)
    run = data.eval_run
    at_reference = np.ones(data.n_evals, dtype=bool)
    for dim in DIMS:
        at_reference &= data.bits(dim)[run] == reference[dim]
    if not at_reference.any():
        at_reference = np.ones(data.n_evals, dtype=bool)
    post = data.eval_post_bits[at_reference]
    ratio = (data.n_tokens / data.n_params)[run][at_reference]
    delta = data.eval_loss[at_reference] - data.final_loss[run][at_reference]
    levels = np.unique(post)
    palette = matplotlib.colormaps["plasma"](np.linspace(0.05, 0.85, max(levels.size, 2)))
    keep = sample_indices(post.size)
    has_term = get_law(result.law).has_ptq_term(result.all_params)
    n_ref = float(np.median(data.n_params[run][at_reference]))
    fig = new_figure()
    ax = axes_of(fig)[0]
    with style():
        grid = np.geomspace(float(ratio.min()) / 1.3, float(ratio.max()) * 1.3, 100)
        for colour, level in zip(palette, levels, strict=False):
            here = keep[post[keep] == level]
            ax.scatter(ratio[here], delta[here], color=colour, s=12, alpha=0.75, linewidths=0, label=f"{level:g}-bit")
            if has_term:
                trained_config = RunConfig(
                    n_params=n_ref,
                    n_tokens=grid * n_ref,
                    weight_bits=reference["w"],
                    activation_bits=reference["a"],
                    kv_bits=reference["kv"],
                )
                with np.errstate(invalid="ignore"):
                    quantised = predict_loss(
                        result.law,
                        result.all_params,
                        trained_config.replace(post_train_bits=np.full(grid.shape, level)),
                    )
                    trained = predict_loss(result.law, result.all_params, trained_config)
                ax.plot(grid, quantised - trained, color=colour, lw=1.4)
        ax.set_xscale("log")
        ax.axhline(0.0, color="#333333", lw=0.8)
        ax.set_xlabel("tokens per parameter D/N")
        ax.set_ylabel("loss after PTQ - final loss (nats)")
        ax.set_title(title, loc="left", pad=14)
        trained_at = "/".join(f"{reference[d]:g}" for d in DIMS)
        note = _sample_note(keep.size, post.size, "evaluations") + f" of runs trained at {trained_at} bits"
        note += f"; lines: fitted law at N={_human(n_ref)}" if has_term else "; no PTQ term fitted"
        add_note(ax, note)
        ax.legend(title="post-train bits", loc="upper left", ncols=2)
    return render_svg(fig, salt="ptq")


def fit_plots(result: FitResult, data: Observations) -> list[Plot]:
    """Every plot of a fit page, in reading order."""
    return [
        Plot("observed-vs-predicted", "Observed vs predicted", observed_vs_predicted_svg(result, data)),
        Plot("residuals", "Residuals vs N", residuals_vs_n_svg(result, data)),
        Plot("loss-vs-bits", "Loss vs training bits", loss_vs_bits_svg(result, data)),
        Plot("effective-params", "N_eff/N vs bits", effective_params_svg(result, data)),
        Plot("ptq", "PTQ degradation", ptq_degradation_svg(result, data)),
    ]


# Capacity density ----------------------------------------------------------------------------------------


def density_over_time_svg(
    times: Sequence[datetime],
    densities: npt.ArrayLike,
    *,
    bits: npt.ArrayLike | None = None,
    reference: str = "",
) -> str:
    """Capacity density of each run (fits.density) against when it was trained, log scale, with the
    least-squares trend ln(rho) = A t + B and its doubling time ln 2 / A (docs/laws.md section 11.3), or
    the reason there is none (too few runs, or training dates spanning too short a time)."""
    title = "Capacity density over time"
    rho = np.asarray(densities, dtype=np.float64).ravel()
    if len(times) != rho.size:
        raise ValueError(f"times and densities differ in length ({len(times)} vs {rho.size})")
    with np.errstate(invalid="ignore"):
        defined = np.isfinite(rho) & (rho > 0)
    if not defined.any():
        return message_svg(title, "No run with a defined density.", salt="density")
    origin = min(times)
    days = np.array([(t - origin).total_seconds() / 86400.0 for t in times], dtype=np.float64)
    trend = density_trend(days, rho)
    keep = np.flatnonzero(defined)[sample_indices(int(defined.sum()))]
    shown_times = mdates.date2num([times[i] for i in keep])  # type: ignore[no-untyped-call]  # matplotlib leaves it untyped
    colour = training_bits_array(bits, rho.size)
    fig = new_figure()
    ax = axes_of(fig)[0]
    with style():
        if colour is not None:
            points = ax.scatter(
                shown_times,
                rho[keep],
                c=colour[keep],
                cmap="viridis",
                norm=Normalize(vmin=float(colour.min()), vmax=float(colour.max())),
                s=14,
                alpha=0.85,
                linewidths=0,
            )
            _bits_colourbar(fig, ax, points)
        else:
            ax.scatter(shown_times, rho[keep], s=14, alpha=0.85, linewidths=0, color=DIM_COLOURS["w"])
        ax.axhline(1.0, color="#333333", lw=0.8, ls=":", label="16-bit reference (density 1)")
        if math.isfinite(trend.slope):
            span = np.linspace(float(days[defined].min()), float(days[defined].max()), 50)
            line_times = [origin + timedelta(days=float(d)) for d in span]
            if trend.doubling_days is not None:
                label = f"trend: doubles every {trend.doubling_days:.3g} days (R² {trend.r2:.2f})"
            else:
                label = f"trend: not rising ({trend.slope:+.2e} per day, R² {trend.r2:.2f})"
            fitted = np.exp(trend.intercept + trend.slope * span)
            ax.plot(mdates.date2num(line_times), fitted, color="#d62728", lw=1.4, label=label)  # type: ignore[no-untyped-call]
        ax.set_yscale("log")
        ax.xaxis_date()
        ax.set_xlabel("trained (trained_at)")
        ax.set_ylabel("density N_hat / N")
        ax.set_title(title, loc="left", pad=14)
        note = _sample_note(keep.size, int(defined.sum()), "runs")
        if (~defined).any():
            note += f"; {int((~defined).sum())} at or below the asymptote not shown"
        if not math.isfinite(trend.slope):
            if trend.n_points < MIN_TREND_POINTS:
                note += f"; no trend: needs {MIN_TREND_POINTS} runs with a density"
            else:  # the reason in short, so the note stays one line
                note += f"; no trend: trained over {trend.span_days:.2g} days, needs {MIN_TREND_SPAN_DAYS:g}"
        if reference:
            note += f"; reference: {reference}"
        add_note(ax, note)
        ax.legend(loc="best")
        fig.autofmt_xdate()
    return render_svg(fig, salt="density")


def training_bits_array(bits: npt.ArrayLike | None, size: int) -> FloatArray | None:
    """Per-run colour values, or None when not given or not one per run."""
    if bits is None:
        return None
    arr = np.asarray(bits, dtype=np.float64).ravel()
    return arr if arr.size == size and np.isfinite(arr).all() else None
