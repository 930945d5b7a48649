from django.contrib import admin

from whatsbot.roles import is_admin

from .agent import admin as agent_admin  # noqa: F401  (registers BotConfig)

# Only admins reach Django admin; agents work in the console.
admin.site.has_permission = lambda request: is_admin(request.user)
admin.site.site_header = "whatsbot"
