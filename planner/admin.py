"""Admin for plans: the stored answers with their iso-loss plot and law selection, a "Plan a run" form, and the
next runs to train."""

import json
from collections.abc import Callable
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from fits.review import PLOTS_CACHE_SECONDS, PLOTS_CACHE_VERSION
from fits.selectors import fit_result
from planner.allocation import HARDWARE_PROFILES
from planner.api.serializers import PlanConstraintsSerializer, SuggestionsSerializer
from planner.errors import NoSucceededFit, PlanInvalid
from planner.models import Plan, plan_law_choices
from planner.plots import PlanPoint, plan_contour_svg
from planner.requests import AUTO_LAW, Budget, ConstraintsRequest, PlanRequest, budget_from
from planner.review import TeamFamilies, plan_form_families, plan_law_selection
from planner.services import plan_create, plan_rerun
from planner.suggestion_services import DEFAULT_EXPERIMENT_BUDGET_SHARE, MAX_SUGGESTIONS, suggestions_for_plan
from runs.admin import TEAM_FILTER, TeamScopedAdmin, admin_team_ids, is_superuser
from runs.admin_display import (
    MISSING,
    bits_label,
    bytes_html,
    count_html,
    count_label,
    datetime_html,
    decimal_html,
    decimal_label,
    sci_html,
    sci_label,
)
from runs.models import Team

PLAN_CONFIG_ROWS = (
    ("n_params", "N, parameters"),
    ("n_tokens", "D, tokens"),
    ("tokens_per_param", "tokens per parameter"),
    ("weight_bits", "weight bits"),
    ("activation_bits", "activation bits"),
    ("kv_bits", "KV bits"),
    ("post_train_bits", "post-train bits"),
    ("predicted_loss", "predicted loss"),
    ("predicted_loss_interval", "95% interval"),
    ("compute_flops", "compute (16-bit-equivalent FLOPs)"),
    ("weights_memory_bytes", "weights memory"),
)


# A plan on the fp law (Sun et al.) also names the floating-point format of its width.
FP_FORMAT_ROWS = (("exponent_bits", "exponent bits (fp format)"), ("mantissa_bits", "mantissa bits (fp format)"))


def _format(value: Any) -> str:
    """A number of no known kind: four significant digits; a range as "low – high"."""
    if value is None:
        return "—"
    if isinstance(value, list):
        return " – ".join(_format(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10_000 else sci_label(value)
    return decimal_label(value)


# How each quantity of a plan reads (the exact value on hover): N and D in units, FLOPs in scientific form.
VALUE_FORMATS: dict[str, Callable[[Any], str]] = {
    "n_params": count_html,
    "n_tokens": count_html,
    "compute_flops": sci_html,
    "compute": sci_html,
    "weights_memory_bytes": bytes_html,
    "predicted_loss": decimal_html,
    "tokens_per_param": lambda v: decimal_html(v, 3),
    "weight_bits": bits_label,
    "activation_bits": bits_label,
    "kv_bits": bits_label,
    "post_train_bits": bits_label,
    "exponent_bits": bits_label,
    "mantissa_bits": bits_label,
}


def plan_value(key: str, value: Any) -> str:
    """One quantity of a plan as the pages show it; a [low, high] pair as "low – high"."""
    if value is None:
        return MISSING
    formatter = VALUE_FORMATS.get(key)
    if isinstance(value, list):
        if key == "predicted_loss_interval":
            formatter = decimal_html
        return format_html_join(" – ", "{}", ((formatter(v) if formatter else _format(v),) for v in value))
    return formatter(value) if formatter else _format(value)


class PlanForm(forms.Form):
    """The "Plan a run" form: a family of one of the user's teams (with a succeeded fit), a budget in FLOPs or
    GPU-hours on some hardware, optional constraints as JSON."""

    family = forms.ChoiceField(
        choices=[],
        label="Team and family",
        help_text="Families of your teams with a succeeded fit, by team; the laws fitted are in brackets.",
    )
    law = forms.ChoiceField(choices=plan_law_choices, initial=AUTO_LAW)
    flops = forms.FloatField(required=False, label="Budget (FLOPs)", help_text="6·N·D at 16 bits, e.g. 1e21.")
    gpu_hours = forms.FloatField(required=False, label="or GPU-hours")
    hardware = forms.ChoiceField(
        choices=[("", "—")] + [(name, name) for name in sorted(HARDWARE_PROFILES)], required=False
    )
    cost_model = forms.ChoiceField(choices=Plan.CostModel.choices, initial=Plan.CostModel.LINEAR_BITS)
    constraints = forms.CharField(  # a plain text box: JSONField would prefill an empty form with "null"
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text='Optional, e.g. {"post_train_bits": 4, "n_params_max": 3e9, "bits_choices": [4, 6, 8, 16]}.',
    )

    def __init__(self, *args: Any, families: list[TeamFamilies], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teams = {group.team.pk: group.team for group in families}
        field = cast(forms.ChoiceField, self.fields["family"])
        field.choices = [
            (
                group.team_label,
                [(family_choice(group.team.pk, family), label) for family, label in group.choices()],
            )
            for group in families
        ]
        values = [family_choice(group.team.pk, family) for group in families for family in group.laws]
        if len(values) == 1:
            field.initial = values[0]

    def clean_family(self) -> tuple[Team, str]:
        team_id, _, family = str(self.cleaned_data["family"]).partition(":")
        team = self.teams.get(int(team_id)) if team_id.isdigit() else None
        if team is None or not family:  # the choices already refuse anything not offered; this is belt and braces
            raise forms.ValidationError("Choose a family of one of your teams.")
        return team, family

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:  # the budget rules have one home (planner.requests.budget_from)
            data["budget"] = budget_from(self.budget())
        except PlanInvalid as exc:
            budget_errors = exc.errors.get("budget", exc.errors)
            if not isinstance(budget_errors, dict):
                raise forms.ValidationError(_flatten_errors(budget_errors)) from exc
            for field, messages_ in budget_errors.items():
                text = _flatten_errors(messages_)
                if field in self.fields:
                    self.add_error(field, text)
                else:
                    self.add_error(None, text)
        return data

    def clean_constraints(self) -> ConstraintsRequest:
        text = (self.cleaned_data.get("constraints") or "").strip()
        if not text:
            return ConstraintsRequest()
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("Must be a JSON object.")
        constraints = PlanConstraintsSerializer(data=value)  # the API's own rules for each field
        if not constraints.is_valid():
            raise forms.ValidationError(_flatten_errors(constraints.errors))
        return constraints.constraints()

    def budget(self) -> dict[str, Any]:
        data = self.cleaned_data
        if data.get("flops") is not None:
            return {"flops": data["flops"]}
        return {"gpu_hours": data.get("gpu_hours"), "hardware": data.get("hardware") or None}

    def request(self) -> PlanRequest:
        """The validated form as the planner takes it."""
        data = self.cleaned_data
        return PlanRequest(
            family=data["family"][1],
            budget=data["budget"],
            constraints=data["constraints"],
            law=data["law"],
            cost_model=data["cost_model"],
        )


def family_choice(team_id: int, family: str) -> str:
    """The value of one family in the form's select: team and family together (a family name is a slug)."""
    return f"{team_id}:{family}"


def plan_contour(plan: Plan) -> str:
    """The plan's iso-loss plot, cached per plan (plans and fits never change)."""
    key = f"plan-contour:{plan.pk}:{PLOTS_CACHE_VERSION}"
    svg: str | None = cache.get(key)
    if svg is not None:
        return svg
    rec, base = plan.recommendation, plan.baseline
    result = fit_result(fit_id=plan.fit_id)
    optimum = PlanPoint(
        "recommendation", rec["n_params"], max(rec["weight_bits"], rec["activation_bits"]), rec.get("predicted_loss")
    )
    baseline = PlanPoint("16-bit baseline", base["n_params"], 16.0, base.get("predicted_loss")) if base else None
    alternatives = [
        PlanPoint("alternative", a["n_params"], max(a["weight_bits"], a["activation_bits"])) for a in plan.alternatives
    ]
    low = min([2.0, *(p.bits for p in [optimum, *alternatives])])
    svg = plan_contour_svg(
        law=plan.law,
        params=result.all_params,
        budget_flops=plan.budget_flops,
        optimum=optimum,
        baseline=baseline,
        cost_model=plan.cost_model,
        hardware=plan.hardware or None,
        bits_range=(low, 16.0),
        extra_points=alternatives,
    )
    cache.set(key, svg, PLOTS_CACHE_SECONDS)
    return svg


class SuggestionBudgetForm(forms.Form):
    """The plan page's GET form for "Next runs to train": the experiment budget in FLOPs and how many runs."""

    experiment_flops = forms.FloatField(
        required=False, label="Experiment budget (FLOPs)", widget=forms.TextInput(attrs={"size": 10})
    )
    max_suggestions = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_SUGGESTIONS, label="runs", widget=forms.TextInput(attrs={"size": 3})
    )

    def clean_experiment_flops(self) -> float | None:
        value: float | None = self.cleaned_data.get("experiment_flops")
        if value is not None and value <= 0:
            raise forms.ValidationError("Must be a positive number of FLOPs, e.g. 1e19.")
        return value


def _bits_label(config: dict[str, Any]) -> str:
    return "/".join(f"{config[k]:g}" for k in ("weight_bits", "activation_bits", "kv_bits"))


def _width(interval: list[float | None]) -> float | None:
    lo, hi = interval
    return None if lo is None or hi is None else hi - lo


def _width_label(width: float | None) -> str:
    return "—" if width is None else f"{width:.4g}"  # widths are small: significant digits, not decimals


def plan_suggestions_context(plan: Plan, query: Any) -> dict[str, Any]:
    """The "Next runs to train" section of a plan's page: suggestions_for_plan with the page's GET form (the
    default experiment budget when it is empty or invalid), formatted; the service's refusal becomes the reason
    shown in the section instead of an error page."""
    form = SuggestionBudgetForm(query if any(k in query for k in SuggestionBudgetForm.base_fields) else None)
    flops = max_suggestions = None
    if form.is_bound and form.is_valid():
        flops, max_suggestions = form.cleaned_data["experiment_flops"], form.cleaned_data["max_suggestions"]
    context: dict[str, Any] = {
        "suggestion_form": form,
        "suggestion_default_share": f"{DEFAULT_EXPERIMENT_BUDGET_SHARE:.0%}",
    }
    try:
        experiment: Budget | None = None
        if flops is not None:
            experiment = budget_from({"flops": flops}, section="experiment_budget")
        body = SuggestionsSerializer(
            suggestions_for_plan(plan=plan, experiment_budget=experiment, max_suggestions=max_suggestions or 3)
        ).data
    except NoSucceededFit as exc:
        return {**context, "suggestion_error": str(exc)}
    except PlanInvalid as exc:
        return {**context, "suggestion_error": _flatten_errors(exc.errors)}
    experiment = body["experiment_budget_flops"]
    before, after = body["target_loss_interval"], body["expected_target_loss_interval"]
    width_before = _width(before)
    target = body["target"]
    rows = []
    for s in body["suggestions"]:
        width_after = s["expected_target_interval_width"]
        narrowing = (
            None if width_before is None or width_after is None or width_before <= 0 else 1 - width_after / width_before
        )
        rows.append(
            {
                "rank": s["rank"],
                "n_params": plan_value("n_params", s["n_params"]),
                "n_tokens": plan_value("n_tokens", s["n_tokens"]),
                "tokens_per_param": plan_value("tokens_per_param", s["tokens_per_param"]),
                "bits": _bits_label(s),
                "cost_flops": sci_html(s["cost_flops"]),
                "cost_share": f"{s['cost_flops'] / experiment:.1%}",
                "predicted_loss": plan_value("predicted_loss", s["predicted_loss"]),
                "predicted_loss_interval": plan_value("predicted_loss_interval", s["predicted_loss_interval"]),
                "width": f"{_width_label(width_before)} → {_width_label(width_after)}",
                "narrowing": "—" if narrowing is None else f"{narrowing:.1%}",
            }
        )
    return {
        **context,
        "suggestions": rows,
        "suggestion_fit": f"{plan.family}/{body['law']} v{body['fit']['version']}",
        "suggestion_fit_url": reverse("admin:fits_fit_change", args=[body["fit"]["id"]]),
        "suggestion_fit_differs": body["fit"]["id"] != plan.fit_id,
        "suggestion_target": (
            f"N={count_label(target['n_params'])}, D={count_label(target['n_tokens'])}, bits {_bits_label(target)}"
            + (f", post-train {target['post_train_bits']:g} bits" if target.get("post_train_bits") else "")
        ),
        "suggestion_experiment": sci_label(experiment),
        "suggestion_total": sci_label(body["total_cost_flops"]),
        "suggestion_total_share": f"{body['total_cost_flops'] / experiment:.1%}",
        "suggestion_before": f"{_format(before)} (width {_width_label(width_before)})",
        "suggestion_after": f"{_format(after)} (width {_width_label(_width(after))})",
        "suggestion_narrowing": "—" if body["expected_narrowing"] is None else f"{body['expected_narrowing']:.1%}",
        "suggestion_method": (
            f"{body['n_draws']} bootstrap draws, {body['n_candidates']} candidate runs, "
            f"noise {body['noise_rel']:.2%} of the loss, {body['selection']} selection"
        ),
        "suggestion_warnings": body["warnings"],
    }


@admin.register(Plan)
class PlanAdmin(TeamScopedAdmin):
    """Stored plans with the fit version they used; "Plan a run" replaces the add form; plans re-run on new fits."""

    change_form_template = "admin/planner/plan/change_form.html"
    # What a reviewer scans for (the rest is on the plan's page); `team` only for a user who sees several teams.
    list_display = ["plan_label", "team", "law_used", "budget_label", "recommended", "gain", "created_on"]
    list_display_links = ["plan_label"]
    list_filter = ["law", "requested_law", "family", "cost_model", TEAM_FILTER]
    search_fields = ["family"]
    list_select_related = ["team", "fit"]
    fields = readonly_fields = (
        "team",
        "family",
        "requested_law",
        "law",
        "fit",
        "budget",
        "constraints",
        "cost_model",
        "hardware",
        "budget_flops_label",
        "created_at",
    )
    actions = ["rerun_plans", "delete_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Plan]:
        return super().get_queryset(request).defer("fit__draws", "fit__snapshot", "fit__point_state")

    def has_change_permission(self, request: HttpRequest, obj: Plan | None = None) -> bool:
        return False  # a plan is a record; re-running makes a new one

    @admin.display(description="plan", ordering="id")
    def plan_label(self, plan: Plan) -> str:
        return f"{plan.pk}: {plan.family}"

    @admin.display(description="law (fit)", ordering="law")
    def law_used(self, plan: Plan) -> str:
        """The law used and its fit version, and "auto" when the planner chose it."""
        chosen = ", chosen by rank" if plan.requested_law == AUTO_LAW else ""
        return f"{plan.law} v{plan.fit.version}{chosen}"

    @admin.display(description="created", ordering="created_at")
    def created_on(self, plan: Plan) -> str:
        return datetime_html(plan.created_at)

    @admin.display(description="budget (FLOPs)")
    def budget_flops_label(self, plan: Plan) -> str:
        return f"{sci_label(plan.budget_flops)} ({plan.budget_flops:,.0f})"

    @admin.display(description="budget")
    def budget_label(self, plan: Plan) -> str:
        flops = format_html("{} FLOPs", sci_html(plan.budget_flops))
        if "gpu_hours" in plan.budget:
            return format_html("{:g} GPU-h {} ({})", plan.budget["gpu_hours"], plan.budget.get("hardware", ""), flops)
        return flops

    @admin.display(description="recommendation")
    def recommended(self, plan: Plan) -> str:
        rec = plan.recommendation
        bits = "/".join(f"{rec[k]:g}" for k in ("weight_bits", "activation_bits", "kv_bits"))
        return format_html(
            "N={}, D={}, bits {}, loss {}",
            count_html(rec["n_params"]),
            count_html(rec["n_tokens"]),
            bits,
            decimal_html(rec.get("predicted_loss")),
        )

    @admin.display(description="vs 16-bit")
    def gain(self, plan: Plan) -> str:
        rec, base = plan.recommendation.get("predicted_loss"), (plan.baseline or {}).get("predicted_loss")
        if rec is None or base is None:
            return "—"
        return f"{rec - base:+.4f}"

    def plan_teams(self, request: HttpRequest) -> list[Team]:
        """The teams the form plans for: the user's own, where they may add plans. A superuser plans for the teams
        they belong to, or for every team when they belong to none (an operator's account)."""
        if is_superuser(request):
            own = admin_team_ids(request)
            teams = Team.objects.filter(pk__in=own) if own else Team.objects.all()
        else:
            teams = Team.objects.filter(pk__in=admin_team_ids(request, self.add_roles))
        return list(teams.order_by("name", "slug"))

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None) -> Any:
        """The "Plan a run" form: plan_create on submit, then the stored plan's page."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        families = plan_form_families(teams=self.plan_teams(request))
        form = PlanForm(request.POST or None, families=families)
        if request.method == "POST" and form.is_valid():
            team, _ = form.cleaned_data["family"]
            try:
                plan = plan_create(team=team, request=form.request())
            except NoSucceededFit as exc:
                form.add_error("family", str(exc))
            except PlanInvalid as exc:
                form.add_error(None, _flatten_errors(exc.errors))
            else:
                plan_contour(plan)  # drawn now, while the user waits for the plan anyway: the page then opens at once
                self.message_user(request, f"Planned from {plan.fit}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:planner_plan_change", args=[plan.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Plan a run",
            "opts": self.model._meta,
            "form": form,
            "no_families": not families,
            "has_view_permission": self.has_view_permission(request),
        }
        return TemplateResponse(request, "admin/planner/plan/plan_form.html", context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        plan = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if plan is not None:
            rec, base = plan.recommendation, plan.baseline or {}
            config_rows = PLAN_CONFIG_ROWS + (FP_FORMAT_ROWS if "exponent_bits" in rec else ())
            context.update(
                plan_review=True,
                rows=[
                    (label, plan_value(key, rec.get(key)), plan_value(key, base.get(key))) for key, label in config_rows
                ],
                has_baseline=plan.baseline is not None,
                alternatives=[
                    {label: plan_value(key, alt.get(key)) for key, label in config_rows} for alt in plan.alternatives
                ],
                alternative_columns=[label for _, label in config_rows],
                spread=[(k, plan_value(k, v)) for k, v in sorted((plan.optimum_spread or {}).items())],
                plan_warnings=plan.warnings,
                data_position=plan_position_rows(plan.data_range),
                precision=plan_precision_rows(plan.precision_choice),
                contour=plan_contour(plan),
                fit_url=reverse("admin:fits_fit_change", args=[plan.fit_id]),
                fit_label=str(plan.fit),
                law_selection=plan_law_selection(plan=plan),
                **plan_suggestions_context(plan, request.GET),
            )
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.action(description="Re-run selected plans on the current fit", permissions=["add"])
    def rerun_plans(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        created, failed = [], []
        for plan in queryset.select_related("team"):
            try:
                created.append(plan_rerun(plan=plan))
            except (NoSucceededFit, PlanInvalid) as exc:
                failed.append(f"plan {plan.pk}: {exc}")
        if created:
            self.message_user(
                request,
                "New plan(s): " + ", ".join(f"{p.pk} (fit v{p.fit.version})" for p in created),
                messages.SUCCESS,
            )
        for line in failed:
            self.message_user(request, line, messages.ERROR)


def plan_position_rows(data_range: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """The recommendation's place against the fit's runs, one row per axis: (axis, value, the runs' range, where)."""
    rows: list[tuple[str, str, str, str]] = []
    for key, where in (data_range or {}).items():
        factor = where.get("factor")
        place = where["position"]
        if factor is not None and place != "inside":
            place = f"{factor:.3g}x {place}"
        span = format_html("{} to {}", plan_value(key, where["min"]), plan_value(key, where["max"]))
        rows.append((key, plan_value(key, where["value"]), span, place))
    return rows


def plan_precision_rows(choice: dict[str, Any] | None) -> dict[str, Any] | None:
    """The meaningful-difference decision (planner.services.PRECISION_RULE) as the plan page shows it."""
    if not choice:
        return None

    def widths(values: dict[str, float]) -> str:
        return "/".join(f"{values[k]:g}" for k in ("weight_bits", "activation_bits", "kv_bits"))

    def gain(value: float | None, interval: list[float | None] | None) -> str:
        if value is None:
            return "—"
        if not interval or None in interval:
            return f"{value:+.4f}"
        return f"{value:+.4f} [{interval[0]:+.4f}, {interval[1]:+.4f}]"

    return {
        "rule": choice["rule"],
        "decided": choice.get("decided", ""),
        "rows": [
            ("reference widths (w/a/kv)", widths(choice["reference"])),
            ("lowest predicted loss at (w/a/kv)", widths(choice["point_best"])),
            ("chosen (w/a/kv)", widths(choice["chosen"])),
            ("gain of the chosen widths, nats (95%)", gain(choice.get("gain"), choice.get("gain_interval"))),
            (
                "gain of the lowest-loss widths, nats (95%)",
                gain(choice.get("point_best_gain"), choice.get("point_best_gain_interval")),
            ),
            ("kept at the reference", ", ".join(choice.get("kept_reference") or []) or "—"),
            ("bootstrap draws", str(choice.get("n_draws", "—"))),
        ],
    }


def _flatten_errors(errors: Any, prefix: str = "") -> str:
    if isinstance(errors, dict):
        return "; ".join(
            _flatten_errors(v, f"{prefix}{k}: " if k != "non_field_errors" else prefix) for k, v in errors.items()
        )
    if isinstance(errors, list):
        return "; ".join(f"{prefix}{e}" for e in errors)
    return f"{prefix}{errors}"
