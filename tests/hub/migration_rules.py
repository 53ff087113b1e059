"""The expand/contract rule of rolling upgrades (docs/development.md, "Migrations"): during
an upgrade the previous release's web and workers run against the new schema, so a
migration may only add what the old code ignores. It may not drop or rename a table or a
column, turn a nullable column NOT NULL, nor add a NOT NULL column without a database
default (`db_default`: the old code's INSERTs leave it out), unless the migration is a
contract step, marked on its class:

    class Migration(migrations.Migration):
        contract = True  # drops what the previous release already stopped using

A contract step lands one release after the code stopped using what it removes.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import migrations, models
from django.db.migrations.state import ProjectState

MARKER = "contract"
# Raw SQL that drops or renames a table or a column.
DESTRUCTIVE_SQL = re.compile(
    r"\bDROP\s+(TABLE|COLUMN)\b|\bRENAME\s+(TO|COLUMN)\b|\bALTER\s+COLUMN\s+\S+\s+SET\s+NOT\s+NULL\b",
    re.IGNORECASE,
)


def is_contract(migration: migrations.Migration) -> bool:
    return getattr(migration, MARKER, False) is True


def _sql_text(sql: Any) -> str:
    if isinstance(sql, list | tuple):
        return " ".join(_sql_text(part) for part in sql)
    if isinstance(sql, str):
        return sql
    return str(sql[0]) if isinstance(sql, tuple) else str(sql)


def _field(state: ProjectState, app: str, model: str, name: str) -> models.Field[Any, Any] | None:
    model_state = state.models.get((app, model.lower()))
    if model_state is None:
        return None
    return model_state.fields.get(name)


def _column(field: models.Field[Any, Any], name: str) -> str:
    return field.db_column or (f"{name}_id" if field.is_relation and field.many_to_one else name)


def violations(migration: migrations.Migration, before: ProjectState) -> list[str]:
    """What in `migration` breaks the previous release's code (empty: nothing), given the
    project state before it. A contract step has none by definition."""
    if is_contract(migration):
        return []
    app = migration.app_label
    created = {
        op.name.lower() for op in migration.operations if isinstance(op, migrations.CreateModel)
    }
    found: list[str] = []
    for op in migration.operations:
        what = f"{app}.{migration.name}: {op.describe()}"
        if isinstance(
            op,
            migrations.RemoveField
            | migrations.DeleteModel
            | migrations.RenameField
            | migrations.RenameModel
            | migrations.AlterModelTable,
        ):
            found.append(f"{what} (drops or renames a table or column)")
        elif isinstance(op, migrations.AddField):
            field = op.field
            if (
                op.model_name.lower() not in created
                and not field.many_to_many
                and not field.null
                and field.db_default is models.NOT_PROVIDED
            ):
                found.append(f"{what} (NOT NULL without db_default: old INSERTs fail)")
        elif isinstance(op, migrations.AlterField):
            old = _field(before, app, op.model_name, op.name)
            new = op.field
            if old is None or old.many_to_many:
                continue
            if _column(old, op.name) != _column(new, op.name):
                found.append(f"{what} (renames a column)")
            if old.null and not new.null:
                found.append(f"{what} (makes a nullable column NOT NULL)")
        elif isinstance(op, migrations.RunSQL) and DESTRUCTIVE_SQL.search(_sql_text(op.sql)):
            found.append(f"{what} (SQL drops or renames a table or column)")
    return found


def project_violations(released: set[str]) -> list[str]:
    """Every violation in the project's migrations (the files on disk) but those of
    `released` (paths relative to the repository: applied everywhere already)."""
    import sys
    from pathlib import Path

    from django.db.migrations.loader import MigrationLoader

    root = Path(__file__).resolve().parents[2]
    loader = MigrationLoader(None, ignore_no_migrations=True)
    own = _own_apps()
    found: list[str] = []
    for key, migration in sorted(loader.disk_migrations.items()):
        path = Path(str(sys.modules[type(migration).__module__].__file__)).resolve()
        if key[0] not in own or str(path.relative_to(root)) in released:
            continue
        before = loader.project_state(key, at_end=False)
        found += violations(migration, before)
    return found


def _own_apps() -> set[str]:
    from pathlib import Path

    from django.apps import apps

    root = Path(__file__).resolve().parents[2]
    return {
        config.label
        for config in apps.get_app_configs()
        if Path(config.path).resolve().is_relative_to(root)
        and ".venv" not in Path(config.path).parts
    }
