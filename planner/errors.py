"""The planner's domain errors (apikit.errors answers them: 400 and 409)."""

from apikit.exceptions import Conflict, DomainError


class PlanInvalid(DomainError):
    """The request cannot be planned; `errors` names the field, nested as the input is: {"constraints": {...}}."""


class NoSucceededFit(Conflict):
    """The family has no succeeded fit of the law asked for (of any law, for an auto request)."""


def invalid(section: str | None, field: str, message: str) -> PlanInvalid:
    """PlanInvalid naming `field`, inside `section` ("budget", "constraints") when given."""
    if section is None:
        return PlanInvalid({field: [message]})
    return PlanInvalid({section: {field: [message]}})
