"""Routes of the operator endpoints (also answered early by ops.middleware.ProbeMiddleware, for any Host)."""

from django.urls import path

from ops.health import healthz

urlpatterns = [path("healthz", healthz, name="healthz")]
