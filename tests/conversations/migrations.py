"""Run a data migration as `migrate` does: the schema moved back to the migration before it,
rows written with the models of that time, then the schema moved forward through it (all
inside the test's transaction, which puts everything back)."""

from __future__ import annotations

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrated_to(app: str, name: str) -> Apps:
    """The schema as of migration `app.name`; its models (the rows of that time)."""
    return _migrate([(app, name)]).loader.project_state([(app, name)]).apps


def migrated_to_latest() -> Apps:
    executor = MigrationExecutor(connection)
    return _migrate(executor.loader.graph.leaf_nodes()).loader.project_state().apps


def _migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    with connection.cursor() as cursor:
        # Rows written in this transaction would otherwise hold deferred foreign key checks,
        # and PostgreSQL refuses to ALTER a table with pending trigger events.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor
