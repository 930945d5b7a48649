from django.contrib import admin
from django.urls import include, path

from conversations.console import urls as console_urls
from webhooks import simulator

from . import views

urlpatterns = [
    path("health/", views.health, name="health"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("webhooks/", include("webhooks.urls")),
    # The console's pages and the simulator's (which posts through the webhook) share its namespace.
    path("console/", include((console_urls.urlpatterns + simulator.urlpatterns, console_urls.app_name))),
    path("admin/", admin.site.urls),
]
