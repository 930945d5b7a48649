"""The system check that keeps the webhook's short route honest (`webhooks.checks`): every
middleware in MIDDLEWARE is one the short route knows it may skip, and no setting that only
CommonMiddleware applies is on."""

from django.core import checks

from webhooks.checks import check_short_route
from webhooks.wsgi import SKIPPED_MIDDLEWARE


def test_the_projects_middleware_passes(settings):
    assert check_short_route(None) == []
    assert set(settings.MIDDLEWARE) <= set(SKIPPED_MIDDLEWARE)


def test_the_check_runs_with_the_projects_other_checks():
    assert check_short_route in checks.registry.registry.get_checks()
    assert all(e.id not in ("webhooks.E001", "webhooks.E002") for e in checks.run_checks())


def test_a_middleware_the_short_route_does_not_know_fails_the_check(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "shop.middleware.TenantMiddleware"]

    errors = check_short_route(None)

    assert [e.id for e in errors] == ["webhooks.E001"]
    assert errors[0].level == checks.ERROR
    assert "'shop.middleware.TenantMiddleware'" in errors[0].msg and "SKIPPED_MIDDLEWARE" in errors[0].hint


def test_each_unknown_middleware_is_named_in_its_own_error(settings):
    settings.MIDDLEWARE = ["a.First", *settings.MIDDLEWARE, "b.Second"]

    errors = check_short_route(None)

    assert [e.id for e in errors] == ["webhooks.E001", "webhooks.E001"]
    assert "'a.First'" in errors[0].msg and "'b.Second'" in errors[1].msg


def test_disallowed_user_agents_fail_the_check(settings):
    import re

    settings.DISALLOWED_USER_AGENTS = [re.compile(r"^BadBot")]

    assert [e.id for e in check_short_route(None)] == ["webhooks.E002"]


def test_prepend_www_fails_the_check(settings):
    settings.PREPEND_WWW = True

    errors = check_short_route(None)

    assert [e.id for e in errors] == ["webhooks.E002"]
    assert "PREPEND_WWW" in errors[0].msg
