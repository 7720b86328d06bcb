"""Operations: worker heartbeats, metrics for Prometheus, request ids and JSON logs (docs/operations.md)."""
