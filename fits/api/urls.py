"""Routes of the fits, ranking, predict and density-trend API, included under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from fits.api.curve_fits import CurveFitViewSet
from fits.api.density import DensityTrendApi
from fits.api.forecast import RunForecastApi
from fits.api.views import FitViewSet, PredictApi

router = SimpleRouter()
router.register("fits", FitViewSet, basename="fit")
router.register("curve-fits", CurveFitViewSet, basename="curve-fit")

urlpatterns = [
    path("predict/", PredictApi.as_view(), name="predict"),
    path("density/trend/", DensityTrendApi.as_view(), name="density-trend"),
    path("runs/<int:pk>/forecast/", RunForecastApi.as_view(), name="run-forecast"),
    *router.urls,
]
