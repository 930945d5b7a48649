from django.urls import path

from . import auth, views

app_name = "console"

urlpatterns = [
    path("login/", auth.ConsoleLoginView.as_view(), name="login"),
    path("logout/", auth.ConsoleLogoutView.as_view(), name="logout"),
    path("language/", auth.language_set, name="language"),
    path("availability/", views.availability, name="availability"),
    path("", views.inbox, name="inbox"),
    path("list/", views.conversation_rows, name="list"),
    path("list/poll/", views.list_poll, name="list_poll"),
    path("c/<int:pk>/", views.thread, name="thread"),
    path("c/<int:pk>/poll/", views.thread_poll, name="thread_poll"),
    path("c/<int:pk>/older/", views.thread_older, name="thread_older"),
    path("c/<int:pk>/media/<int:message_id>/", views.media, name="media"),
    path("c/<int:pk>/reply/", views.reply, name="reply"),
    path("c/<int:pk>/react/", views.react, name="react"),
    path("c/<int:pk>/take-over/", views.take_over, name="take_over"),
    path("c/<int:pk>/hand-back/", views.hand_back, name="hand_back"),
    path("c/<int:pk>/resolve/", views.resolve, name="resolve"),
    path("c/<int:pk>/reopen/", views.reopen, name="reopen"),
    path("c/<int:pk>/assign/", views.assign, name="assign"),
    path("c/<int:pk>/notes/", views.note_add, name="note_add"),
    path("c/<int:pk>/template/", views.template_form, name="template_form"),
    path("c/<int:pk>/template/preview/", views.template_preview, name="template_preview"),
    path("c/<int:pk>/template/send/", views.template_send, name="template_send"),
    path("c/<int:pk>/profile/<slug:key>/", views.profile_field, name="profile_field"),
]
