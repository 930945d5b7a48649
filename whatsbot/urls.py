from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("health/", views.health, name="health"),
    path("webhooks/", include("webhooks.urls")),
    path("console/", include("conversations.console.urls")),
    path("admin/", admin.site.urls),
]
