"""Who may use the console: active staff users ("agents"). Admins are agents too."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django_htmx.http import HttpResponseClientRedirect

from conversations.roles import is_agent


def staff_required(view):
    """Anonymous → the login page (coming back afterwards); logged in but not staff → 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if request.htmx:
                # The session ran out under a polling page: send the whole page to the login.
                return HttpResponseClientRedirect(redirect_to_login(request.htmx.current_url_abs_path or "/console/").url)
            return redirect_to_login(request.get_full_path())
        if not is_agent(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper
