"""The run's admin pages with its forecast (fits.forecasts): the run page draws the forecast and its band over the
loss curve (or says why there is none) and the run list shows each run's verdict. runs.admin cannot import fits,
so fits extends runs' RunAdmin and registers the extension in its place."""

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from fits.forecasts import forecast_summaries, run_forecast
from runs.admin import RUN_PAGE_DISPLAYS, RunAdmin
from runs.models import Run
from runs.plots import loss_curves_svg
from runs.selectors import loss_curves

VERDICT_COLOURS = {"above": "#ba2121", "below": "#2e7d32", "on": "inherit"}


def forecast_lines(body: dict[str, Any]) -> list[str]:
    """A forecast body in words, a line each: the loss, interval, step and lenders; the verdict (or why there is
    none); the law's record on the family (its stored curve fit's held-out score, or why unknown); the warnings."""
    forecast = body.get("forecast")
    if forecast is None:
        return ["no forecast: " + "; ".join(body.get("reasons") or ["unknown"])]
    low, high = forecast["interval"]
    lenders = ", ".join(str(i) for i in forecast["lenders"]) or "none (no decay ahead)"
    lines = [
        f"{forecast['loss']:.4f} ({forecast['level']:.0%}: {low:.4f}-{high:.4f}) at step {forecast['at_step']:,}, "
        f"{forecast['fraction_seen']:.0%} seen, {forecast['law']} law; annealing lent by run(s) {lenders}"
    ]
    outcome = body.get("outcome")
    if outcome:
        lines.append(
            f"finished at {outcome['final_loss']:.4f}: the forecast was off by {outcome['error']:+.4f}, "
            f"{'inside' if outcome['inside'] else 'outside'} its interval"
        )
    verdict = body.get("verdict")
    if verdict:
        judged = "the final loss" if verdict.get("basis") == "final_loss" else "the forecast"
        lines.append(f"verdict of {judged}: {verdict['text']} ({verdict['law']})")
    else:
        lines.append(f"verdict: none ({body.get('verdict_reason')})")
    record = body.get("curve_fit")
    held = (record or {}).get("heldout") or {}
    if record and held.get("n") and held.get("mae") is not None and held.get("coverage") is not None:
        lines.append(
            f"record: the {record['law']} curve fit v{record['version']} forecast {held['n']} finished run(s) of "
            f"the family, MAE {held['mae']:.4f}, {round(held['coverage'] * held['n'])} of {held['n']} inside "
            f"their {held.get('level') or 0.95:.0%} intervals"
        )
    elif body.get("curve_fit_reason"):
        lines.append(f"record: {body['curve_fit_reason']}")
    lines += [f"warning: {w}" for w in body.get("warnings") or []]
    return lines


class RunWithForecastAdmin(RunAdmin):
    """RunAdmin with the forecast on the run page and the verdict column on the list."""

    list_display = [*RunAdmin.list_display, "forecast_verdict"]

    def get_readonly_fields(self, request: HttpRequest, obj: Run | None = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "forecast"]

    def get_fieldsets(self, request: HttpRequest, obj: Run | None = None) -> Any:
        """RunAdmin's sections, with the forecast after the loss curve."""
        return [
            (title, {**opts, "fields": (*opts["fields"], "forecast")} if "loss_curve" in opts["fields"] else opts)
            for title, opts in super().get_fieldsets(request, obj)
        ]

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        """The page's runs with their newest forecast summary: one cache read for the page, never a fit."""
        changelist = super().get_changelist_instance(request)
        summaries = forecast_summaries(run_ids=[run.pk for run in changelist.result_list])
        for run in changelist.result_list:
            run._forecast_summary = summaries.get(run.pk)
        return changelist

    @admin.display(description="forecast")
    def forecast_verdict(self, run: Run) -> str:
        """The verdict of the run's newest forecast (computed when someone last read it), or — when none is cached."""
        summary = getattr(run, "_forecast_summary", None)
        if not summary or summary.get("loss") is None:
            return format_html('<span title="{}">—</span>', (summary or {}).get("text") or "no forecast read yet")
        label = summary.get("verdict") or "forecast"
        # A finished run shows what it measured: its forecast is then a check of the curve law, not an answer.
        final = summary.get("final_loss")
        shown = f"{summary['loss']:.3f}" if final is None else f"final {final:.3f}"
        return format_html(
            '<span class="forecast-verdict" title="{}" style="color: {}">{} {}</span>',
            summary.get("text") or "",
            VERDICT_COLOURS.get(label, "inherit"),
            shown,
            label if summary.get("verdict") else "",
        )

    def _forecast(self, run: Run) -> dict[str, Any]:
        cached: dict[str, Any] | None = getattr(run, "_forecast_body", None)
        if cached is None:
            cached = run_forecast(run=run)
            run._forecast_body = cached  # type: ignore[attr-defined]
        return cached

    @admin.display(description="forecast")
    def forecast(self, run: Run) -> str:
        if run.pk is None:
            return "—"
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in forecast_lines(self._forecast(run))))

    @admin.display(description="loss curve")
    def loss_curve(self, run: Run) -> str:
        """The logged loss curves, final values as markers at the last step, and the forecast with its band."""
        if run.pk is None:
            return "—"
        body = self._forecast(run)
        note = "" if body["forecast"] is not None else "no forecast: " + "; ".join(body["reasons"])
        svg = loss_curves_svg(loss_curves(run=run), salt=f"run-{run.pk}", forecast=body["forecast"], note=note)
        if not svg:
            return "— (no loss metric history logged)"
        return format_html('<div class="loss-curve">{}</div>', mark_safe(svg))  # matplotlib escapes the text it writes


assert "loss_curve" in RUN_PAGE_DISPLAYS  # the display this class replaces
admin.site.unregister(Run)
admin.site.register(Run, RunWithForecastAdmin)
