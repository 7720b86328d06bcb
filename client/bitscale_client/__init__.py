"""Python client for Bitscale: log training runs, read scaling-law fits, predict losses and plan runs."""

from bitscale_client.client import Client, new_external_id
from bitscale_client.errors import (
    AuthenticationFailed,
    BitscaleError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServerUnavailable,
    ValidationFailed,
)
from bitscale_client.models import (
    BulkResult,
    Evaluation,
    Fit,
    Plan,
    PlanConfig,
    Prediction,
    Run,
    Spooled,
    SyncResult,
)
from bitscale_client.transport import RetryPolicy

__version__ = "0.1.0"
__all__ = [
    "AuthenticationFailed",
    "BitscaleError",
    "BulkResult",
    "Client",
    "Conflict",
    "Evaluation",
    "Fit",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "Plan",
    "PlanConfig",
    "Prediction",
    "RetryPolicy",
    "Run",
    "ServerUnavailable",
    "Spooled",
    "SyncResult",
    "ValidationFailed",
    "new_external_id",
]
