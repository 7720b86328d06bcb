"""Admin for teams, memberships, API keys (shown once on creation) and runs with their evaluations."""

from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from runs.models import ApiKey, Evaluation, Membership, Run, Team
from runs.services import api_key_create, api_key_revoke


class MembershipInline(admin.TabularInline[Membership, Team]):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin[Team]):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role", "team"]
    search_fields = ["user__username", "team__slug"]
    autocomplete_fields = ["user", "team"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    """Keys are created here with only team, label and access; the secret is shown once, in a message."""

    list_display = ["prefix", "team", "label", "read_only", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["read_only", "team", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "label", "team__slug"]
    actions = ["revoke_keys"]

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

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            api_key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


class EvaluationInline(admin.TabularInline[Evaluation, Run]):
    model = Evaluation
    extra = 0
    fields = ["post_train_bits", "method", "loss", "updated_at"]
    readonly_fields = ["updated_at"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin[Run]):
    list_display = [
        "id",
        "name",
        "external_id",
        "team",
        "family",
        "n_params",
        "n_tokens",
        "weight_bits",
        "activation_bits",
        "kv_bits",
        "final_loss",
        "status",
        "excluded",
        "created_at",
    ]
    list_filter = [
        "team",
        "family",
        "status",
        "excluded",
        "number_format",
        "weight_bits",
        "activation_bits",
        "kv_bits",
    ]
    search_fields = ["name", "external_id", "family"]
    list_select_related = ["team"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [EvaluationInline]
    list_per_page = 100
    show_full_result_count = False  # counting 100,000 runs on every page view is wasted work
