"""Routes of the fits, ranking and predict API, included under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from fits.api.views import FitViewSet, PredictApi

router = SimpleRouter()
router.register("fits", FitViewSet, basename="fit")

urlpatterns = [path("predict/", PredictApi.as_view(), name="predict"), *router.urls]
