"""Admin for teams, memberships, API keys and runs, scoped to the teams a staff user belongs to.

Access in the admin follows team membership, not Django's per-model permissions: a staff user sees the teams
they are a member of (any role) and changes what their role allows; superusers see everything. The scoping
lives in one place, TeamScopedAdmin (and TeamScopedInline for inlines), which every ModelAdmin of team data
subclasses: it filters get_queryset (lists, detail pages by URL, actions, "select all", exports, list filter
choices and autocomplete all read it) and answers every has_*_permission from the user's roles.
"""

import json
import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.admin.widgets import AutocompleteSelect as AutocompleteSelectBase
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from runs.admin_display import (
    MISSING,
    bits_label,
    count_html,
    count_with_exact,
    datetime_html,
    decimal_html,
    decimal_label,
)
from runs.csvio import csv_lines
from runs.models import ApiKey, Evaluation, Membership, Run, Team
from runs.plots import loss_curves_svg
from runs.schedules import schedule_text
from runs.selectors import loss_curves, run_densities, run_export_rows
from runs.services import api_key_create, api_key_revoke, run_delete, run_update, team_get_or_create

ALL_ROLES = frozenset(Membership.Role.values)
WRITE_ROLES = frozenset({Membership.Role.OWNER, Membership.Role.MEMBER})
OWNER_ROLES = frozenset({Membership.Role.OWNER})


# Scoping ------------------------------------------------------------------------------------------------


def admin_team_roles(request: HttpRequest) -> dict[int, str]:
    """{team id: role} of the requesting user, read once per request."""
    cached = getattr(request, "_bitscale_team_roles", None)
    if cached is None:
        user = request.user
        cached = (
            dict(Membership.objects.filter(user_id=user.pk).values_list("team_id", "role"))
            if user.is_authenticated and user.is_active and user.is_staff
            else {}
        )
        request._bitscale_team_roles = cached  # type: ignore[attr-defined]
    return cached


def admin_team_ids(request: HttpRequest, roles: Collection[str] = ALL_ROLES) -> set[int]:
    """The teams in which the requesting user holds one of `roles`."""
    return {team_id for team_id, role in admin_team_roles(request).items() if role in roles}


def is_superuser(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_superuser)


def sees_several_teams(request: HttpRequest) -> bool:
    """Whether the lists can show rows of more than one team to this user (read once per request): only then
    do they spend a column on the team."""
    cached = getattr(request, "_bitscale_several_teams", None)
    if cached is None:
        cached = Team.objects.count() > 1 if is_superuser(request) else len(admin_team_ids(request)) > 1
        request._bitscale_several_teams = cached  # type: ignore[attr-defined]
    return bool(cached)


class AutocompleteSelect(AutocompleteSelectBase):
    """Django's autocomplete widget, rendering a posted value that is not an id of its model as no selection.

    Django's own filters its model on the posted value to show it again, which fails on a value that is not an
    id (`team=abc`); the form shows the field's error instead.
    """

    def optgroups(
        self, name: str, value: Sequence[str], attr: dict[str, Any] | None = None
    ) -> list[tuple[str | None, list[dict[str, Any]], int | None]]:
        remote = self.field.remote_field
        opts = remote.model._meta
        target = opts.get_field(getattr(remote, "field_name", None) or opts.pk.attname)
        return super().optgroups(name, [v for v in value if _is_valid(target, v)], attr)


def _is_valid(field: Any, value: Any) -> bool:
    try:
        field.to_python(value)
    except ValidationError:
        return False
    return True


def autocomplete_widget(model_admin: Any, db_field: Any, request: HttpRequest, kwargs: dict[str, Any]) -> None:
    """Put the safe autocomplete widget on `db_field` when the admin autocompletes it (before Django puts its own)."""
    if db_field.name in model_admin.get_autocomplete_fields(request):
        kwargs.setdefault("widget", AutocompleteSelect(db_field, model_admin.admin_site, using=kwargs.get("using")))


class ShownFiltersChangeList(ChangeList):
    """A change list that refuses a filter parameter it would drop without showing.

    Django hides a list filter with fewer than two choices and then ignores its parameter: for a member of one
    team, `?team__id__exact=<another team>` listed every run of their own team, and "select all" with an action
    acted on all of them. A list must never act on more than it shows, so such a parameter is refused: Django
    redirects to the unfiltered list (`?e=1`), with a message naming the parameter, and runs no action.
    """

    def get_filters(self, request: HttpRequest) -> Any:
        specs, has_filters, remaining, may_have_duplicates, has_active = super().get_filters(request)
        applied = set(remaining)
        for spec in specs:
            applied.update(str(name) for name in spec.expected_parameters() or () if name)
        hierarchy = f"{self.date_hierarchy}__" if self.date_hierarchy else None
        dropped = sorted(
            key
            for key in self.get_filters_params()
            if key not in applied and not (hierarchy and key.startswith(hierarchy))
        )
        if dropped:
            messages.error(
                request,
                f"This list cannot filter by {', '.join(dropped)} (nothing it shows matches the value, or the "
                "filter has one choice); it shows the unfiltered list instead and ran no action.",
            )
            raise IncorrectLookupParameters(f"filters not shown: {dropped}")
        return specs, has_filters, remaining, may_have_duplicates, has_active


class TeamScopedAdmin(admin.ModelAdmin[Any]):
    """A ModelAdmin over rows that belong to a team; `team_path` leads from the model to Team ("" for Team).

    Subclasses set the roles that may change, add and delete; viewing needs any membership of the row's team.
    They must not override get_queryset without calling super(): everything the admin shows goes through it.
    """

    team_path = "team"
    change_roles: frozenset[str] = WRITE_ROLES
    add_roles: frozenset[str] = WRITE_ROLES
    delete_roles: frozenset[str] = WRITE_ROLES

    def team_lookup(self) -> str:
        return f"{self.team_path}__in" if self.team_path else "pk__in"

    def team_id_of(self, obj: Any) -> int | None:
        """The id of the team `obj` belongs to."""
        if not self.team_path:
            return int(obj.pk)
        value = obj
        *hops, last = self.team_path.split("__")
        for hop in hops:
            value = getattr(value, hop)
        return getattr(value, f"{last}_id", None)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ShownFiltersChangeList

    def get_list_display(self, request: HttpRequest) -> Any:
        """The list's columns, without `team` for a user who only ever sees one team's rows."""
        columns = list(super().get_list_display(request))
        if "team" in columns and not sees_several_teams(request):
            columns.remove("team")
        return columns

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if is_superuser(request):
            return queryset
        return queryset.filter(**{self.team_lookup(): admin_team_ids(request)})

    def _allowed(self, request: HttpRequest, roles: Collection[str], obj: Any | None) -> bool:
        if is_superuser(request):
            return True
        teams = admin_team_ids(request, roles)
        if obj is None:
            return bool(teams)
        return self.team_id_of(obj) in teams

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request) or bool(admin_team_ids(request))

    def has_view_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return self._allowed(request, ALL_ROLES, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return self._allowed(request, self.change_roles, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, self.add_roles, None)

    def has_delete_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return self._allowed(request, self.delete_roles, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # A row can only be put into a team where the user may add rows.
        if db_field.related_model is Team and not is_superuser(request):
            kwargs["queryset"] = Team.objects.filter(pk__in=admin_team_ids(request, self.add_roles))
        autocomplete_widget(self, db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class TeamScopedInline(admin.TabularInline[Any, Any]):
    """An inline whose rows belong to the parent's team: the parent's scope decides, with `change_roles`."""

    change_roles: frozenset[str] = WRITE_ROLES
    parent_team_path = "team"  # from the parent object to its team id; "" when the parent is the Team

    def _parent_team_id(self, obj: Any) -> int | None:
        if obj is None:
            return None
        return int(obj.pk) if not self.parent_team_path else getattr(obj, f"{self.parent_team_path}_id", None)

    def _allowed(self, request: HttpRequest, roles: Collection[str], obj: Any | None) -> bool:
        if is_superuser(request):
            return True
        teams = admin_team_ids(request, roles)
        return bool(teams) if obj is None else self._parent_team_id(obj) in teams

    def has_view_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return self._allowed(request, ALL_ROLES, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return self._allowed(request, self.change_roles, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return self._allowed(request, self.change_roles, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return self._allowed(request, self.change_roles, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        autocomplete_widget(self, db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


TEAM_FILTER = ("team", admin.RelatedOnlyFieldListFilter)  # lists only teams present in the scoped queryset


# Teams and memberships ------------------------------------------------------------------------------------


class MembershipInline(TeamScopedInline):
    model = Membership
    extra = 0
    parent_team_path = ""
    change_roles = OWNER_ROLES
    autocomplete_fields = ["user"]  # the user search is Django's: it needs auth's view_user permission


class ApiKeyInline(TeamScopedInline):
    """The team's keys at a glance (read-only: keys are created and revoked on the API key pages)."""

    model = ApiKey
    extra = 0
    parent_team_path = ""
    fields = readonly_fields = ("prefix", "label", "read_only", "created_at", "last_used_at", "revoked_at")
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return False


@admin.register(Team)
class TeamAdmin(TeamScopedAdmin):
    """Owners rename their team and manage its members; only superusers create or delete teams."""

    team_path = ""
    change_roles = OWNER_ROLES
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline, ApiKeyInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Team | None = None) -> bool:
        return is_superuser(request)

    def get_readonly_fields(self, request: HttpRequest, obj: Team | None = None) -> list[str]:
        return ["slug", "created_at"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Team, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        team, _ = team_get_or_create(slug=obj.slug, name=obj.name)
        obj.pk = team.pk


@admin.register(Membership)
class MembershipAdmin(TeamScopedAdmin):
    """Members of the user's teams; owners add, change and remove them."""

    change_roles = add_roles = delete_roles = OWNER_ROLES
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role", TEAM_FILTER]
    search_fields = ["user__username", "team__slug"]
    autocomplete_fields = ["user", "team"]
    list_select_related = ["user", "team"]


# API keys ------------------------------------------------------------------------------------------------


@admin.register(ApiKey)
class ApiKeyAdmin(TeamScopedAdmin):
    """Keys are created here with only team, label and access; the secret is shown once, in a message."""

    list_display = ["prefix", "team", "label", "access", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["read_only", TEAM_FILTER, ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "label", "team__slug"]
    list_select_related = ["team"]
    actions = ["revoke_keys"]
    autocomplete_fields = ["team"]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # keys are revoked, never deleted: last use stays on record
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    @admin.display(description="access")
    def access(self, obj: ApiKey) -> str:
        return "read-only" if obj.read_only else "read-write"

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Sequence[str]:  # type: ignore[override]
        if obj is None:
            return ["team", "label", "read_only"]
        return ["team", "label", "read_only", "prefix", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        if obj is None:
            return []
        return ["team", "read_only", "prefix", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["label"])
            return
        key, secret = api_key_create(team=obj.team, read_only=obj.read_only, label=obj.label)
        obj.pk = key.pk
        self.message_user(
            request,
            f"New API key for {key.team.slug}: {secret} (copy it now: it is stored only as a hash and "
            "will not be shown again).",
            level=messages.WARNING,
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(key=key)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s).")


# Runs ----------------------------------------------------------------------------------------------------


class EvaluationInline(TeamScopedInline):
    """PTQ evaluations of the run, read-only: they are reported through the API."""

    model = Evaluation
    extra = 0
    fields = readonly_fields = ("post_train_bits", "method", "loss_value", "updated_at")

    @admin.display(description="loss")
    def loss_value(self, evaluation: Evaluation) -> str:
        return decimal_html(evaluation.loss)

    def has_add_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return False


class ExclusionForm(forms.Form):
    """The intermediate page of the exclude action: why these runs leave the fits."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Stored on every selected run as its exclusion_reason.",
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("Say why these runs are excluded.")
        return reason


class RunChangeForm(forms.ModelForm[Run]):
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("excluded") and not (data.get("exclusion_reason") or "").strip():
            self.add_error("exclusion_reason", "Required when the run is excluded.")
        return data


EDITABLE_RUN_FIELDS = ("name", "excluded", "exclusion_reason")
# The run's page: the fields a reviewer reads first at the top; N and D shown exact with their short form.
RUN_PAGE_REPLACED = ("n_params", "n_tokens", "schedule")
RUN_PAGE_DISPLAYS = (
    "n_params_exact",
    "n_tokens_exact",
    "tokens_per_param",
    "effective_params_16bit",
    "density",
    "loss_curve",
    "schedule_plan",
)
RUN_PAGE_SECTIONS: tuple[tuple[str | None, tuple[str, ...]], ...] = (
    (None, ("name", "external_id", "team", "family", "status", "trained_at")),
    ("Scale", ("n_params_exact", "param_count", "n_tokens_exact", "tokens_per_param")),
    (
        "Precision",
        ("weight_bits", "activation_bits", "kv_bits", "number_format", "exponent_bits", "mantissa_bits"),
    ),
    ("Result", ("final_loss", "effective_params_16bit", "density")),
    ("Fits", ("excluded", "exclusion_reason")),
    ("Loss curve", ("loss_curve", "schedule_plan", "cooldown_of")),
    (
        "Data and architecture",
        ("dataset", "eval_set", "n_layers", "d_model", "n_heads", "n_kv_heads", "seq_len", "metadata"),
    ),
    ("Record", ("created_at", "updated_at")),
)
FLOAT_FORMAT_PATTERN = re.compile(r"^E(\d{1,2})M(\d{1,2})$")


def float_format_label(exponent_bits: int | None, mantissa_bits: int | None) -> str | None:
    """The label `E4M3` of a run that reported its floating-point format; None for one that did not."""
    if exponent_bits is None or mantissa_bits is None:
        return None
    return f"E{exponent_bits}M{mantissa_bits}"


class FloatFormatFilter(admin.SimpleListFilter):
    """Runs by the floating-point format they trained in (E4M3, E8M7, ...), as one choice per format present."""

    title = "floating-point format"
    parameter_name = "float_format"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        pairs = (
            model_admin.get_queryset(request)  # scoped: only formats of the user's teams
            .filter(exponent_bits__isnull=False)
            .order_by("-exponent_bits", "-mantissa_bits")
            .values_list("exponent_bits", "mantissa_bits")
            .distinct()
        )
        labels = [float_format_label(e, m) for e, m in pairs]
        return [(label, label) for label in labels if label] + [("none", "not given")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if value == "none":
            return queryset.filter(exponent_bits__isnull=True)
        match = FLOAT_FORMAT_PATTERN.match(value)
        if match is None:
            return queryset.none()
        return queryset.filter(exponent_bits=int(match[1]), mantissa_bits=int(match[2]))


@admin.register(Run)
class RunAdmin(TeamScopedAdmin):
    """Runs come from the API; here they are reviewed, excluded or re-included (refits follow) and exported."""

    form = RunChangeForm
    # What a reviewer scans for (the rest is on the run's page); `team` only for a user who sees several teams.
    list_display = [
        "run_label",
        "team",
        "family",
        "n_params_short",
        "n_tokens_short",
        "bits",
        "final_loss_short",
        "state",
        "trained_on",
    ]
    list_display_links = ["run_label"]
    RUN_SECTIONS = RUN_PAGE_SECTIONS
    list_filter = [
        TEAM_FILTER,
        "family",
        "status",
        "excluded",
        "number_format",
        FloatFormatFilter,
        "weight_bits",
        "activation_bits",
        "kv_bits",
    ]
    search_fields = ["name", "=external_id"]
    list_select_related = ["team"]
    inlines = [EvaluationInline]
    list_per_page = 100
    show_full_result_count = False  # counting 100,000 runs on every page view is wasted work
    actions = ["exclude_runs", "include_runs", "export_csv", "delete_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs are reported by training scripts through the API

    def get_readonly_fields(self, request: HttpRequest, obj: Run | None = None) -> list[str]:
        fields = [f.name for f in Run._meta.fields if f.name not in EDITABLE_RUN_FIELDS]
        return [*fields, *RUN_PAGE_DISPLAYS]

    def get_fieldsets(self, request: HttpRequest, obj: Run | None = None) -> Any:
        """The run's page in sections; a model field no section names lands in "Other", so none goes missing."""
        named = {name for _, names in self.RUN_SECTIONS for name in names} | set(RUN_PAGE_REPLACED)
        rest = [f.name for f in Run._meta.fields if f.name not in named and f.name != "id"]
        sections = [*self.RUN_SECTIONS, *([("Other", tuple(rest))] if rest else [])]
        return [(title, {"fields": names}) for title, names in sections]

    # The list's columns ---------------------------------------------------------------------------------

    @admin.display(description="run", ordering="name")
    def run_label(self, run: Run) -> str:
        """The run's name, or its external id when it has none; both, with the id, on hover."""
        label = run.name or run.external_id or f"run {run.pk}"
        exact = f"id {run.pk}" + (f", external id {run.external_id}" if run.external_id else "")
        return format_html('<span title="{}">{}</span>', exact, label)

    @admin.display(description="N", ordering="n_params")
    def n_params_short(self, run: Run) -> str:
        return count_html(run.n_params)

    @admin.display(description="D", ordering="n_tokens")
    def n_tokens_short(self, run: Run) -> str:
        return count_html(run.n_tokens)

    @admin.display(description="bits w/a/kv", ordering="weight_bits")
    def bits(self, run: Run) -> str:
        widths = "/".join(bits_label(b) for b in (run.weight_bits, run.activation_bits, run.kv_bits))
        label = float_format_label(run.exponent_bits, run.mantissa_bits)
        text = f"{widths} {label}" if label else widths
        if run.number_format != Run.NumberFormat.FP:
            text = f"{text} {run.number_format}"
        return text

    @admin.display(description="final loss", ordering="final_loss")
    def final_loss_short(self, run: Run) -> str:
        return decimal_html(run.final_loss)

    @admin.display(description="status", ordering="status")
    def state(self, run: Run) -> str:
        """The run's status; an excluded run says so, with the reason on hover (normal runs show nothing more)."""
        if not run.excluded:
            return run.get_status_display()
        return format_html(
            '{} <span class="run-excluded" title="{}" style="color: var(--error-fg, #ba2121); font-weight: bold">'
            "excluded</span>",
            run.get_status_display(),
            run.exclusion_reason or "no reason given",
        )

    @admin.display(description="trained", ordering="trained_at")
    def trained_on(self, run: Run) -> str:
        return datetime_html(run.trained_at, minutes=False)  # the day; the time on hover

    # The run's page -------------------------------------------------------------------------------------

    @admin.display(description="N, parameters")
    def n_params_exact(self, run: Run) -> str:
        return count_with_exact(run.n_params)

    @admin.display(description="D, tokens")
    def n_tokens_exact(self, run: Run) -> str:
        return count_with_exact(run.n_tokens)

    @admin.display(description="tokens per parameter")
    def tokens_per_param(self, run: Run) -> str:
        if not run.n_params or run.n_tokens is None:
            return MISSING
        return decimal_label(run.n_tokens / run.n_params, 3)

    def _density(self, run: Run) -> tuple[float | None, float | None]:
        """(N_hat, density) from the family's current fit, read once per page (fits.density)."""
        cached: tuple[float | None, float | None] | None = getattr(run, "_density_cache", None)
        if cached is None:
            cached = run_densities(runs=[run]).get(run.pk, (None, None))
            run._density_cache = cached  # type: ignore[attr-defined]
        return cached

    @admin.display(description="effective params (16-bit reference)")
    def effective_params_16bit(self, run: Run) -> str:
        value = self._density(run)[0]
        return "— (no final loss, no succeeded fit, or at the law's asymptote)" if value is None else f"{value:.4g}"

    @admin.display(description="capacity density")
    def density(self, run: Run) -> str:
        value = self._density(run)[1]
        return "—" if value is None else f"{value:.4f}"

    @admin.display(description="schedule")
    def schedule_plan(self, run: Run) -> str:
        """The planned learning-rate schedule in words (runs.schedules.schedule_text), the stored JSON on hover."""
        if not run.schedule:
            return "— (none described: a forecast needs one)"
        return format_html('<span title="{}">{}</span>', json.dumps(run.schedule), schedule_text(run.schedule))

    @admin.display(description="loss curve")
    def loss_curve(self, run: Run) -> str:
        """The run's logged loss metrics against step (its metric history, e.g. from MLflow)."""
        if run.pk is None:
            return "—"
        svg = loss_curves_svg(loss_curves(run=run), salt=f"run-{run.pk}")
        if not svg:
            return "— (no loss metric history logged)"
        return format_html('<div class="loss-curve">{}</div>', mark_safe(svg))  # matplotlib escapes the text it writes

    def save_model(self, request: HttpRequest, obj: Run, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE_RUN_FIELDS}
        if fields.get("excluded") is False:
            fields["exclusion_reason"] = ""  # a re-included run carries no stale reason
        if fields:
            run_update(run=obj, fields=fields)  # marks the family for a refit

    def delete_model(self, request: HttpRequest, obj: Run) -> None:
        run_delete(run=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        with transaction.atomic():
            for run in queryset:
                run_delete(run=run)

    def _update_each(self, runs: Iterable[Run], fields: dict[str, Any]) -> int:
        count = 0
        with transaction.atomic():  # all or nothing; the refits are queued once, on commit
            for run in runs:
                run_update(run=run, fields=fields)
                count += 1
        return count

    @admin.action(description="Exclude selected runs from fits (asks for a reason)", permissions=["change"])
    def exclude_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> HttpResponse | None:
        form = ExclusionForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            count = self._update_each(
                queryset.filter(excluded=False), {"excluded": True, "exclusion_reason": form.cleaned_data["reason"]}
            )
            self.message_user(request, f"Excluded {count} run(s); their families will be refitted.")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Exclude runs from fits",
            "opts": self.model._meta,
            "form": form,
            "runs": queryset.order_by("id")[:50],
            "count": queryset.count(),
            "selected_ids": list(queryset.values_list("pk", flat=True)),
            "action": "exclude_runs",
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/runs/run/exclude_runs.html", context)

    @admin.action(description="Re-include selected runs in fits", permissions=["change"])
    def include_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        count = self._update_each(queryset.filter(excluded=True), {"excluded": False, "exclusion_reason": ""})
        self.message_user(request, f"Re-included {count} run(s); their families will be refitted.")

    @admin.action(description="Export selected runs as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Run]) -> StreamingHttpResponse:
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response = StreamingHttpResponse(csv_lines(run_export_rows(runs=queryset)), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="runs-{stamp}.csv"'
        return response
