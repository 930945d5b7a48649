"""Django admin for bot configurations (filled in by the AI agent work)."""
