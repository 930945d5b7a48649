"""Logging in and out, and each staff member's interface language."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from conversations.roles import is_agent
from profiles.models import StaffPreference

from ..services.console import staff_language_set
from .forms import ConsoleLoginForm, LanguageForm


def _remember_language(response: HttpResponse, language: str) -> HttpResponse:
    # LocaleMiddleware reads this cookie on every request: no query for the preference.
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=365 * 24 * 3600,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return response


class ConsoleLoginView(auth_views.LoginView):
    template_name = "console/login.html"
    authentication_form = ConsoleLoginForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        language = (
            StaffPreference.objects.filter(user=form.get_user()).values_list("language", flat=True).first()
            or settings.LANGUAGE_CODE
        )
        translation.activate(language)
        return _remember_language(response, language)


class ConsoleLogoutView(auth_views.LogoutView):
    pass


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """Staff: saved on their account (and so on every device they log in from). On the
    login page: only this browser's cookie."""
    form = LanguageForm(request.POST)
    language = form.cleaned_data["language"] if form.is_valid() else settings.LANGUAGE_CODE
    if is_agent(request.user):
        staff_language_set(user=request.user, language=language)
    next_url = request.POST.get("next") or "/console/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = "/console/"
    return _remember_language(redirect(next_url), language)
