"""The API key scheme in the OpenAPI schema: `Authorization: Bearer <api key>` and the docs page's Authorize button.

Registered when imported (runs.apps); it lives with the authentication class it describes.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object

from runs.api.authentication import ApiKeyAuthentication


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")
