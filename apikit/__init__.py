"""The shared API plumbing every app's `api/` builds on: the exception handler and the domain-error base,
strict fields and serializers, team scoping, permissions, pagination, the JSON parser, throttling and the
OpenAPI schema class. It imports no app (config only): apps depend on it, never the other way round."""
