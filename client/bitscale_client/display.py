"""Plain-text renderings for the command line: the plan table and the fit summary."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bitscale_client.models import Fit, Plan, PlanConfig


def human_count(value: float | None) -> str:
    """1.23e9 -> '1.23B'; None -> '-'."""
    if value is None:
        return "-"
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def human_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for size, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= size:
            return f"{value / size:.3g} {suffix}"
    return f"{value:.0f} B"


def _bits(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _loss(config: PlanConfig) -> str:
    if config.predicted_loss is None:
        return "-"
    interval = config.predicted_loss_interval
    text = f"{config.predicted_loss:.4f}"
    return text + (f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "")


def _flops(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


PLAN_ROWS: list[tuple[str, Callable[[PlanConfig], str]]] = [
    ("parameters (N)", lambda c: human_count(c.n_params)),
    ("tokens (D)", lambda c: human_count(c.n_tokens)),
    ("tokens per parameter", lambda c: "-" if c.tokens_per_param is None else f"{c.tokens_per_param:.3g}"),
    ("weight bits", lambda c: _bits(c.weight_bits)),
    ("activation bits", lambda c: _bits(c.activation_bits)),
    ("KV-cache bits", lambda c: _bits(c.kv_bits)),
    ("post-train bits", lambda c: _bits(c.post_train_bits)),
    ("predicted loss [95%]", _loss),
    ("compute (FLOPs)", lambda c: _flops(c.compute_flops)),
    ("weights memory", lambda c: human_bytes(c.weights_memory_bytes)),
]


def _format(config: PlanConfig) -> str:
    e, m = config.raw.get("exponent_bits"), config.raw.get("mantissa_bits")
    return "-" if e is None or m is None else f"E{e:g}M{m:g}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a rule under the header."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def _budget(budget: dict[str, Any]) -> str:
    if "flops" in budget:
        return f"{float(budget['flops']):.3g} FLOPs"
    if "gpu_hours" in budget:
        return f"{budget['gpu_hours']:g} GPU-hours on {budget.get('hardware', '?')}"
    return "-"


def render_plan(plan: Plan) -> str:
    """The recommendation next to the 16-bit baseline, then alternatives, the optimum's spread and warnings."""
    fit = plan.fit
    title = f"Plan {plan.id} for family {plan.family or '?'}"
    if fit:
        title += f" ({fit.get('law', plan.law)} law, fit v{fit.get('version', '?')}, id {fit.get('id', '?')})"
    out = [title, f"Budget: {_budget(plan.budget)}", ""]
    baseline = plan.baseline or PlanConfig.from_json({})
    rows = [[label, show(plan.recommendation), show(baseline)] for label, show in PLAN_ROWS]
    if "exponent_bits" in plan.recommendation.raw:  # a plan on the fp law names the floating-point format
        rows.insert(6, ["fp format", _format(plan.recommendation), _format(baseline)])
    out.append(table(["", "recommendation", "16-bit baseline"], rows))
    rec, base = plan.recommendation.predicted_loss, baseline.predicted_loss
    if rec is not None and base is not None:
        out.append(f"\nPredicted loss change vs the 16-bit baseline: {rec - base:+.4f} nats")
    if plan.alternatives:
        out.append("\nAlternatives:")
        alt_rows = [
            [str(i + 1), human_count(a.n_params), human_count(a.n_tokens), _bits(a.weight_bits),
             _bits(a.activation_bits), _bits(a.kv_bits), _loss(a)]
            for i, a in enumerate(plan.alternatives)
        ]  # fmt: skip
        out.append(table(["#", "N", "D", "w bits", "a bits", "kv bits", "predicted loss"], alt_rows))
    if plan.optimum_spread:
        out.append("\nOptimum spread (95% over bootstrap draws):")
        for name, value in plan.optimum_spread.items():
            out.append(f"  {name}: {_spread(name, value)}")
    out.extend(["\nWarnings:", *[f"  - {w}" for w in plan.warnings]] if plan.warnings else [])
    return "\n".join(out)


def _spread(name: str, value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        show = human_count if name.startswith(("n_", "N")) else (lambda v: f"{v:g}")
        return f"{show(value[0])} .. {show(value[1])}"
    return str(value)


def render_fit(fit: Fit) -> str:
    """Parameters with their 95% intervals, fit quality, backtest, freshness and warnings."""
    out = [f"Fit {fit.id}: family {fit.family}, law {fit.law}, version {fit.version} ({fit.status})"]
    freshness = "stale (runs changed since)" if fit.stale else "up to date"
    if fit.pending:
        freshness += "; a newer fit is queued or running"
    out.append(f"Data: {freshness}; created {fit.created_at or '-'}")
    if fit.quality:
        out.append(f"Verdict: {fit.quality}" + "".join(f"\n  - {reason}" for reason in fit.quality_reasons))
    rows = []
    for name, value in fit.params.items():
        interval = fit.intervals.get(name)
        fixed = " (fixed)" if name in fit.fixed else ""
        rows.append([name, f"{value:.6g}{fixed}", f"[{interval[0]:.6g}, {interval[1]:.6g}]" if interval else "-"])
    out.extend(["", table(["parameter", "value", "95% interval"], rows)])
    if fit.metrics:
        out.append("\nMetrics: " + ", ".join(f"{k}={_num(v)}" for k, v in fit.metrics.items()))
    if fit.backtest:
        scheme = {"largest_n": "largest N held out", "largest_compute": "largest-compute runs held out"}.get(
            str(fit.backtest.get("scheme", "largest_n")), str(fit.backtest.get("scheme"))
        )
        # Run-level lists (each held-out run and its residual) are for the ranking, not for reading.
        listed = ("scheme", "held_out_n_params", "held_out_runs", "residuals_runs")
        shown = {k: v for k, v in fit.backtest.items() if k not in listed}
        out.append(f"Backtest ({scheme}): " + ", ".join(f"{k}={_num(v)}" for k, v in shown.items()))
    if fit.screened:
        out.append(f"\nRuns left out by the screening rule ({len(fit.screened)}; they still count for the ranking):")
        rows = [
            [
                str(entry.get("run_id", "-")),
                human_count(entry.get("n_params")),
                human_count(entry.get("n_tokens")),
                _num(entry.get("final_loss")),
                _num(entry.get("residual")),
                str(entry.get("reason", "")),
            ]
            for entry in fit.screened
        ]
        out.append(table(["run", "N", "D", "loss", "residual", "why"], rows))
    if fit.warnings:
        out.extend(["\nWarnings:", *[f"  - {w}" for w in fit.warnings]])
    return "\n".join(out)


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_forecast(body: dict[str, Any]) -> str:
    """A run's forecast (GET runs/{id}/forecast/) in a few lines: the loss and its interval at the planned end, how
    much of the run was seen, who lent the annealing terms, and the verdict against the family's law; or why none."""
    run = body.get("run")
    forecast = body.get("forecast")
    if forecast is None:
        reasons = body.get("reasons") or ["the server gave no reason"]
        return "\n".join([f"Run {run}: no forecast", *(f"  - {reason}" for reason in reasons)])
    low, high = forecast["interval"]
    lenders = ", ".join(str(r) for r in forecast.get("lenders") or []) or "none (no decay ahead)"
    lines = [
        f"Run {run}: forecast loss {forecast['loss']:.4f} at step {forecast['at_step']:,} "
        f"({forecast['level']:.0%} interval {low:.4f} - {high:.4f})",
        f"  seen: {forecast['fraction_seen']:.0%} of the planned steps (last step {forecast.get('last_step', 0):,})",
        f"  law: {forecast['law']}; annealing lent by run(s): {lenders}",
    ]
    outcome = body.get("outcome")
    if outcome:
        lines.append(
            f"  finished at {outcome['final_loss']:.4f}: the forecast was off by {outcome['error']:+.4f}, "
            f"{'inside' if outcome['inside'] else 'outside'} its interval"
        )
    verdict = body.get("verdict")
    if verdict is not None:
        judged = "of the final loss" if verdict.get("basis") == "final_loss" else ""
        lines.append(
            f"  verdict{' ' + judged if judged else ''}: {verdict['text']} ({verdict['law']} fit {verdict['fit_id']})"
        )
    elif body.get("verdict_reason"):
        lines.append(f"  verdict: none ({body['verdict_reason']})")
    record = _curve_record(body)
    if record:
        lines.append(f"  record: {record}")
    lines += [f"  warning: {w}" for w in body.get("warnings") or []]
    return "\n".join(lines)


def _curve_record(body: dict[str, Any]) -> str:
    """How the forecast's law did on the family's own finished runs (the body's curve_fit), or why unknown."""
    fit = body.get("curve_fit")
    if fit is None:
        return str(body.get("curve_fit_reason") or "")
    held = fit.get("heldout") or {}
    n = held.get("n") or 0
    if not n:
        return str(body.get("curve_fit_reason") or f"{fit['law']} curve fit v{fit['version']}: not scored yet")
    text = f"{fit['law']} curve fit v{fit['version']} forecast {n} finished run(s) of the family"
    if isinstance(held.get("fraction"), int | float):
        text += f" from {held['fraction']:.0%} of their steps"
    if isinstance(held.get("mae"), int | float):
        text += f": MAE {held['mae']:.4f}"
    if isinstance(held.get("coverage"), int | float) and isinstance(held.get("level"), int | float):
        text += f", {round(held['coverage'] * n)} of {n} inside their {held['level']:.0%} intervals"
    return text
