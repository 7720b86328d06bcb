"""API-key authentication: `Authorization: Bearer <key>` acts for the key's team and nothing else."""

from dataclasses import dataclass

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from runs.models import ApiKey, Team
from runs.selectors import api_key_get_active
from runs.services import api_key_touch


@dataclass(frozen=True)
class TeamPrincipal:
    """The `request.user` of an API request: a team acting through one key."""

    team: Team
    read_only: bool

    is_authenticated = True
    is_anonymous = False

    def __str__(self) -> str:
        return f"team {self.team.slug}"


class ApiKeyAuthentication(BaseAuthentication):
    """Bearer API keys; `request.auth` is the ApiKey, `request.user` a TeamPrincipal."""

    def authenticate(self, request: Request) -> tuple[TeamPrincipal, ApiKey] | None:
        header = get_authorization_header(request)
        if not header:
            return None  # IsAuthenticated then refuses with 401, thanks to authenticate_header
        scheme, _, secret = header.decode("latin-1").partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise AuthenticationFailed("Use the header 'Authorization: Bearer <api key>'.")
        key = api_key_get_active(secret=secret)
        if key is None:
            raise AuthenticationFailed("Unknown or revoked API key.")
        api_key_touch(key=key)
        return TeamPrincipal(team=key.team, read_only=key.read_only), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'  # without it DRF downgrades 401 to 403
