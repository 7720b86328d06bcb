"""Reads for the admin's plan pages: how a plan's law was chosen."""

import math
from typing import Any

from fits.laws.backtest import SCHEME_TEXT
from fits.review import fit_admin_url, number_label
from planner.models import AUTO_LAW, Plan


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
