"""Reads for the admin's plan pages: the families a user can plan for, and how a plan's law was chosen."""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fits.laws.backtest import SCHEME_TEXT
from fits.models import Fit
from fits.review import fit_admin_url, number_label
from planner.models import AUTO_LAW, Plan
from runs.models import Team


@dataclass(frozen=True)
class TeamFamilies:
    """One team's families with a succeeded fit, and the laws fitted to each, for the "Plan a run" form."""

    team: Team
    laws: dict[str, list[str]] = field(default_factory=dict)  # family -> laws with a succeeded fit, by name

    @property
    def team_label(self) -> str:
        return f"{self.team.name} ({self.team.slug})" if self.team.name else self.team.slug

    def choices(self) -> list[tuple[str, str]]:
        """(family, label) in name order; the label names the laws: "kumar-synthetic (chinchilla, precision)"."""
        return [(family, f"{family} ({', '.join(laws)})") for family, laws in sorted(self.laws.items())]


def plan_form_families(*, teams: Iterable[Team]) -> list[TeamFamilies]:
    """The families of `teams` with a succeeded fit, grouped by team (in the order given), teams without one left
    out; one query besides reading `teams`."""
    by_id = {team.pk: TeamFamilies(team) for team in teams}
    fitted = (
        Fit.objects.filter(team_id__in=list(by_id), status=Fit.Status.SUCCEEDED)
        .values_list("team_id", "family", "law")
        .distinct()
        .order_by("team_id", "family", "law")
    )
    for team_id, family, law in fitted:
        by_id[team_id].laws.setdefault(family, []).append(law)
    return [group for group in by_id.values() if group.laws]


def _basis_label(entry: dict[str, Any]) -> str:
    """What a law's score was measured on: "4 held-out runs (runs of the largest N)"; "" when not recorded (plans
    made before the basis was stored, or a law without a score)."""
    held = entry.get("n_held_out_runs")
    if isinstance(held, bool) or not isinstance(held, int | float) or not math.isfinite(held):
        return ""
    label = f"{int(held)} held-out run{'s' if int(held) != 1 else ''}"
    scheme = entry.get("scheme")
    return f"{label} ({SCHEME_TEXT.get(scheme, scheme)})" if isinstance(scheme, str) and scheme else label


def plan_law_selection(*, plan: Plan) -> dict[str, Any]:
    """A plan's stored `law_selection` for its page: requested and used law, the reason and the compact ranking
    the choice was made on (with links to those fit versions). A plan made before laws were compared has none:
    it named its law explicitly."""
    selection = plan.law_selection
    if not selection:
        return {"recorded": False, "requested": plan.requested_law, "used": plan.law}
    ranking = [
        {
            "law": entry.get("law"),
            "rank": entry.get("rank"),
            "score_label": number_label(entry.get("score")),
            "basis": _basis_label(entry),
            "version": entry.get("version"),
            "url": fit_admin_url(entry.get("fit_id")),
            "eligible": entry.get("eligible"),
            "reason": entry.get("reason"),
            "is_used": entry.get("law") == selection.get("used"),
        }
        for entry in selection.get("ranking") or []
        if isinstance(entry, dict)
    ]
    requested = selection.get("requested", plan.requested_law)
    return {
        "recorded": True,
        "requested": requested,
        "requested_auto": requested == AUTO_LAW,
        "used": selection.get("used", plan.law),
        "reason": selection.get("reason", ""),
        "ranking": ranking,
    }
