"""Load (or update) the bundled policy library in every team, through the same service
as `manage.py policies_load_library`. A later library change ships as a new migration
running this again."""

from typing import Any

from django.db import migrations


def load(apps: Any, schema_editor: Any) -> None:
    from policies.services.library import library_load

    policy_model = apps.get_model("policies", "Policy")
    rule_model = apps.get_model("policies", "PolicyRule")
    for team in apps.get_model("accounts", "Team").objects.all():
        library_load(team=team, policy_model=policy_model, rule_model=rule_model)


class Migration(migrations.Migration):
    dependencies = [("policies", "0001_initial"), ("accounts", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
