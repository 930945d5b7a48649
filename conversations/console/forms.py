from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from conversations.roles import is_agent

from ..selectors import ListFilter


class ConsoleLoginForm(AuthenticationForm):
    """Django's login form (it calls `authenticate(request=…)`, so django-axes counts every
    failure) that also turns away accounts that are not staff."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "not_staff": _("This account cannot use the console. Ask an administrator."),
    }

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not is_agent(user):
            raise forms.ValidationError(self.error_messages["not_staff"], code="not_staff")


class ListForm(forms.Form):
    q = forms.CharField(required=False, max_length=100)
    filter = forms.ChoiceField(required=False, choices=[(c, c) for c in ListFilter.CHOICES])
    cursor = forms.CharField(required=False, max_length=200)

    def values(self) -> dict:
        if not self.is_valid():
            return {"query": "", "list_filter": ListFilter.ALL, "cursor": ""}
        return {
            "query": self.cleaned_data["q"],
            "list_filter": self.cleaned_data["filter"] or ListFilter.ALL,
            "cursor": self.cleaned_data["cursor"],
        }


class ReplyForm(forms.Form):
    """A text, or a file with `text` as its caption (the service checks which is missing)."""

    text = forms.CharField(max_length=4096, strip=True, required=False)
    # An empty file is refused by `attachments.attachment_check`, with its name in the message.
    file = forms.FileField(required=False, allow_empty_file=True)


class ReactForm(forms.Form):
    message = forms.IntegerField(min_value=1)
    emoji = forms.CharField(max_length=16, strip=True, required=False)  # empty: remove the reaction


class NoteForm(forms.Form):
    text = forms.CharField(max_length=4000, strip=True)


class LanguageForm(forms.Form):
    language = forms.ChoiceField(choices=settings.LANGUAGES)


class NotifyForm(forms.Form):
    """The menu's notification toggles: each button posts both values."""

    notify = forms.BooleanField(required=False)
    sound = forms.BooleanField(required=False)
