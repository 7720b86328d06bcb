"""Reads of plans; every selector over team data takes the acting team."""

from django.db.models import QuerySet

from planner.models import Plan
from runs.models import Team

# The plan's own columns and the four fit columns its JSON shows: never the fit's draws or snapshot.
PLAN_FIELDS = (*(f.name for f in Plan._meta.concrete_fields), "fit__id", "fit__law", "fit__version", "fit__quality")


def plan_list(*, team: Team, family: str | None = None) -> QuerySet[Plan]:
    """The team's plans, newest first, with the fit's id, law and version in the same query."""
    plans = Plan.objects.filter(team=team).select_related("fit").only(*PLAN_FIELDS)
    return plans if family is None else plans.filter(family=family)
