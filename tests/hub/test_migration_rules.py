"""Expand, then contract: no migration may break the previous release's code running on the
new schema during a rolling upgrade, unless it is marked as a contract step
(tests/hub/migration_rules.py; docs/development.md, "Migrations")."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import migrations, models
from django.db.migrations.state import ModelState, ProjectState

from tests.hub.migration_rules import project_violations, violations
from tests.hub.releases import released_files


def test_every_migration_since_the_previous_release_is_an_expand_step_or_a_contract() -> None:
    # the previous release's migrations are applied everywhere: only the newer ones count
    released = released_files("*/migrations/*.py")
    assert "clusters/migrations/0001_initial.py" in released
    assert project_violations(released) == []


def test_the_check_sees_the_migrations_of_the_previous_release_too() -> None:
    # those added NOT NULL columns with only a Python default (before the rule)
    found = project_violations(set())
    assert any(v.startswith("accounts.0002_tokens_and_guardrails: ") for v in found), found


def state() -> ProjectState:
    """An app `shop` with `Item(name, note NULL, owner FK)`, before the migration checked."""
    project = ProjectState()
    project.add_model(ModelState("shop", "owner", [("id", models.AutoField(primary_key=True))]))
    fields: list[tuple[str, Any]] = [
        ("id", models.AutoField(primary_key=True)),
        ("name", models.CharField(max_length=20)),
        ("note", models.CharField(max_length=20, null=True)),
        ("owner", models.ForeignKey("shop.owner", on_delete=models.CASCADE)),
    ]
    project.add_model(ModelState("shop", "item", fields))
    return project


def migration(*operations: Any, contract: bool = False) -> migrations.Migration:
    attributes: dict[str, Any] = {"operations": list(operations)}
    if contract:
        attributes["contract"] = True
    made: type[migrations.Migration] = type("Migration", (migrations.Migration,), attributes)
    return made("0002_change", "shop")


BREAKING = {
    "drop column": migrations.RemoveField("item", "note"),
    "drop table": migrations.DeleteModel("item"),
    "rename column": migrations.RenameField("item", "name", "title"),
    "rename table": migrations.RenameModel("item", "article"),
    "move table": migrations.AlterModelTable("item", "shop_article"),
    "column renamed by db_column": migrations.AlterField(
        "item", "name", models.CharField(max_length=20, db_column="title")
    ),
    "FK column renamed": migrations.AlterField(
        "item",
        "owner",
        models.ForeignKey("shop.owner", on_delete=models.CASCADE, db_column="holder"),
    ),
    "nullable made NOT NULL": migrations.AlterField(
        "item", "note", models.CharField(max_length=20, default="")
    ),
    "NOT NULL without default": migrations.AddField("item", "size", models.IntegerField(default=0)),
    "NOT NULL FK": migrations.AddField(
        "item", "maker", models.ForeignKey("shop.owner", on_delete=models.CASCADE)
    ),
    "SQL drop column": migrations.RunSQL("ALTER TABLE shop_item DROP COLUMN note"),
    "SQL rename": migrations.RunSQL(["ALTER TABLE shop_item RENAME TO shop_article"]),
    "SQL NOT NULL": migrations.RunSQL("ALTER TABLE shop_item ALTER COLUMN note SET NOT NULL"),
}

COMPATIBLE = {
    "nullable column": migrations.AddField("item", "size", models.IntegerField(null=True)),
    "NOT NULL with db_default": migrations.AddField(
        "item", "size", models.IntegerField(default=0, db_default=0)
    ),
    "new table": migrations.CreateModel("tag", [("id", models.AutoField(primary_key=True))]),
    "column on a new table": migrations.AddField("tag", "label", models.TextField()),
    "NOT NULL made nullable": migrations.AlterField(
        "item", "name", models.CharField(max_length=40, null=True)
    ),
    "index": migrations.AddIndex("item", models.Index(fields=["name"], name="item_name")),
    "SQL trigger": migrations.RunSQL("DROP TRIGGER IF EXISTS t ON shop_item; CREATE TRIGGER t"),
    "data": migrations.RunPython(migrations.RunPython.noop),
}


@pytest.mark.parametrize("name", sorted(BREAKING))
def test_a_breaking_change_fails_the_check_unless_marked_contract(name: str) -> None:
    operation = BREAKING[name]
    (found,) = violations(migration(operation), state())
    assert found.startswith("shop.0002_change: ")
    assert violations(migration(operation, contract=True), state()) == []


@pytest.mark.parametrize("name", sorted(COMPATIBLE))
def test_an_expand_change_passes(name: str) -> None:
    operations = [COMPATIBLE[name]]
    if name == "column on a new table":
        operations.insert(0, COMPATIBLE["new table"])
    assert violations(migration(*operations), state()) == []
