"""Extension points of runs for the apps built on them, so that runs imports none of those apps.

Imports run one way (config, apikit, runs, fits, planner, workers): runs cannot call fits, yet every write of
runs must mark the family's fits dirty in the same transaction, and a run's JSON shows its capacity density
from the family's current fit. fits plugs both in from FitsConfig.ready(); without fits installed, writes
mark nothing and densities are None.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runs.models import Run

# (team id, families whose runs changed) -> None; called inside the writer's transaction.
FamiliesChanged = Callable[[int, Iterable[str]], None]
# runs -> {run id: (effective_params_16bit, density)}; runs without a reference fit are left out.
DensityProvider = Callable[[Sequence["Run"]], dict[int, tuple[float | None, float | None]]]

_families_changed: list[FamiliesChanged] = []
_density_providers: list[DensityProvider] = []


def on_families_changed(receiver: FamiliesChanged) -> None:
    """Call `receiver(team_id, families)` in the transaction of every write that changes a family's runs."""
    if receiver not in _families_changed:
        _families_changed.append(receiver)


def set_density_provider(provider: DensityProvider) -> None:
    """Use `provider` for the capacity density that run lists and pages show (one provider at a time)."""
    _density_providers[:] = [provider]


def families_changed(*, team_id: int, families: Iterable[str]) -> None:
    """Announce that the runs of `families` changed; call inside the writer's transaction."""
    families = sorted(set(families))
    if families:
        for receiver in _families_changed:
            receiver(team_id, families)


def run_densities(*, runs: Sequence["Run"]) -> dict[int, tuple[float | None, float | None]]:
    """(effective_params_16bit, density) per run id, from the registered provider; empty without one."""
    return _density_providers[0](runs) if _density_providers else {}
