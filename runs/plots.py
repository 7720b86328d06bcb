"""Server-rendered SVG of a run's loss curves: pure matplotlib (Agg backend) on plain lists, no Django.

Non-finite values (a diverged step logs NaN or Infinity) cannot be drawn; they are left out and counted in a note
under the title, so a curve that stops is not mistaken for one that ended.

Final values are not points of the training curve: `final_loss` and `ptq_loss/...` (MLflow's
`log_metric("final_loss", x)` stores step 0), and any loss logged only at step 0 while the curves go further, are
drawn as markers at the curves' last step, never as step 0 of a curve that starts at 7 nats.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from plotkit import add_note, axes_of, new_figure, render_svg

FIGSIZE = (6.4, 3.6)
NOTE_CHARS = 150
FINAL_VALUE_KEYS = ("final_loss",)
FINAL_VALUE_PREFIXES = ("ptq_loss/",)
EARLY_SHARE = 0.05  # the first 5% of the steps may fall off the top of the y-axis (_y_limits)


def is_final_value(key: str) -> bool:
    """Whether a metric key is a final value (logged once, at the end), not a point of the training curve."""
    return key in FINAL_VALUE_KEYS or key.startswith(FINAL_VALUE_PREFIXES)


def split_final_values(
    curves: Mapping[str, Sequence[tuple[int, float]]],
) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[tuple[int, float]]]]:
    """(training curves, final values): a key is a final value by its name (is_final_value) or when every point of
    it is at step 0 while another key's curve goes past step 0 (a value logged without a step)."""
    furthest = max((step for points in curves.values() for step, _ in points), default=0)
    training: dict[str, list[tuple[int, float]]] = {}
    finals: dict[str, list[tuple[int, float]]] = {}
    for key, points in curves.items():
        stepless = bool(points) and all(step == 0 for step, _ in points) and furthest > 0
        (finals if is_final_value(key) or stepless else training)[key] = list(points)
    return training, finals


def final_markers(curves: Mapping[str, Sequence[tuple[int, float]]]) -> dict[str, tuple[int, float]]:
    """{key: (step, value)} of the final values (split_final_values), each at the training curves' last step with
    its last finite value; keys with no finite value are left out."""
    training, finals = split_final_values(curves)
    last = max((step for points in training.values() for step, v in points if math.isfinite(v)), default=0)
    out: dict[str, tuple[int, float]] = {}
    for key, points in finals.items():
        values = [v for _, v in points if math.isfinite(v)]
        if values:
            out[key] = (last, values[-1])
    return out


def loss_curves_svg(
    curves: Mapping[str, Sequence[tuple[int, float]]],
    *,
    salt: str = "loss",
    forecast: Mapping[str, Any] | None = None,
    note: str = "",
) -> str:
    """One line per metric key, loss against step, as SVG text without the XML prolog ("" when nothing to draw).

    Final values are markers at the training curves' last step (split_final_values). `forecast` (the forecast body
    of fits.forecasts: loss, interval, level, at_step, last_step) draws the forecast at its step with its interval,
    and a band widening from the last logged step to it; `note` is written under the title (why there is no
    forecast, say).
    """
    training, finals = split_final_values(curves)
    drawable = {
        key: [(step, value) for step, value in points if math.isfinite(value)] for key, points in training.items()
    }
    final_points = {key: [v for _, v in points if math.isfinite(v)] for key, points in finals.items()}
    dropped = sum(len(points) for points in curves.values()) - sum(len(p) for p in drawable.values())
    dropped -= sum(len(v) for v in final_points.values())
    drawable = {key: points for key, points in drawable.items() if points}
    final_points = {key: values for key, values in final_points.items() if values}
    if not drawable and not final_points:
        return ""
    fig = new_figure(FIGSIZE)
    ax = axes_of(fig)[0]
    for key, points in sorted(drawable.items()):
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, linewidth=1.2, label=key, marker="." if len(points) < 30 else None)
    for key, (step, value) in sorted(final_markers(curves).items()):
        ax.plot([step], [value], linestyle="none", marker="D", markersize=5, label=f"{key} (final)")
    if forecast is not None:
        _draw_forecast(ax, forecast, drawable)
    cut = _y_limits(drawable, final_points, forecast)
    if cut is not None:
        low, high, hidden = cut
        ax.set_ylim(low, high)
        note = "; ".join(filter(None, [f"y-axis cut at {high:.2f}: {hidden} early point(s) above it", note]))
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    ax.set_title("Loss curves")
    notes = [*([f"{dropped} NaN/Infinity value(s) not drawn"] if dropped else []), *([note] if note else [])]
    if notes:  # at most two short lines: a long note would squeeze the axes away
        add_note(ax, textwrap.fill(textwrap.shorten("; ".join(notes), NOTE_CHARS, placeholder=" ..."), NOTE_CHARS // 2))
    ax.legend(loc="upper right")
    return render_svg(fig, salt=salt)


def _y_limits(
    drawable: Mapping[str, Sequence[tuple[int, float]]],
    finals: Mapping[str, Sequence[float]],
    forecast: Mapping[str, Any] | None,
) -> tuple[float, float, int] | None:
    """(low, high, points hidden) of a y-axis that leaves out the first steps' losses when they would flatten the
    rest: a curve falling from 10 nats to 3 makes the last 0.05 nats, where a forecast and its band live,
    invisible. The axis keeps every point past EARLY_SHARE of the furthest step, the final values and the
    forecast's interval; None when that cuts less than half of the full range (then nothing is hidden)."""
    points = [(step, value) for curve in drawable.values() for step, value in curve]
    if not points:
        return None
    furthest = max(step for step, _ in points)
    later = [value for step, value in points if step >= EARLY_SHARE * furthest]
    kept = [*later, *(v for values in finals.values() for v in values)]
    if forecast is not None:
        kept += [float(v) for v in forecast["interval"]]
        path = forecast.get("path") or {}
        kept += [float(v) for v in (*(path.get("low") or ()), *(path.get("high") or ()))]
    everything = [value for _, value in points] + kept
    bottom, top, full_top = min(everything), max(kept), max(everything)
    if full_top - bottom <= 0 or (top - bottom) > 0.5 * (full_top - bottom):
        return None
    margin = 0.08 * (top - bottom) or 0.01
    hidden = sum(1 for _, value in points if value > top + margin)
    return bottom - margin, top + margin, hidden


def _draw_forecast(ax: Any, forecast: Mapping[str, Any], drawable: Mapping[str, Sequence[tuple[int, float]]]) -> None:
    """The forecast at its step with its interval, joined to the last logged step by the fitted law's path and its
    band (the body's `path`); a body without a path gets a band that opens linearly from the last logged step."""
    at, loss = float(forecast["at_step"]), float(forecast["loss"])
    low, high = (float(v) for v in forecast["interval"])
    start = float(forecast.get("last_step") or 0)
    level = float(forecast.get("level") or 0.95)
    path = forecast.get("path") or {}
    if len(path.get("step") or ()) >= 2:
        ax.fill_between(path["step"], path["low"], path["high"], alpha=0.2, color="tab:red", linewidth=0)
        ax.plot(path["step"], path["loss"], linestyle="--", color="tab:red", linewidth=1)
    else:
        ax.fill_between([start, at], [loss, low], [loss, high], alpha=0.2, color="tab:red", linewidth=0)
        ax.plot([start, at], [loss, loss], linestyle=":", color="tab:red", linewidth=1)
    ax.errorbar(
        [at],
        [loss],
        yerr=[[loss - low], [high - loss]],
        fmt="o",
        color="tab:red",
        capsize=3,
        label=f"forecast {loss:.3f} ({level:.0%}: {low:.3f}-{high:.3f})",
    )
