"""Give every existing team the default alert rules (new teams get them when created:
alerts/signals.py). Written with the historical model, from the same list, keeping to the
kinds the historical model knows (a kind added later comes with its own migration, which
runs this again: 0003)."""

from typing import Any

from django.db import migrations


def add_defaults(apps: Any, schema_editor: Any) -> None:
    from alerts.params import DEFAULT_RULES, clean_params, default_group_by

    rule_model = apps.get_model("alerts", "AlertRule")
    known = {value for value, _ in rule_model._meta.get_field("kind").choices}
    for team in apps.get_model("accounts", "Team").objects.all():
        have = set(rule_model.objects.filter(team=team).values_list("name", flat=True))
        rule_model.objects.bulk_create(
            rule_model(
                team=team,
                name=name,
                kind=kind,
                params=clean_params(kind, dict(params)),
                severity=severity,
                description=description,
                group_by=default_group_by(kind),
            )
            for name, kind, params, severity, description in DEFAULT_RULES
            if name not in have and kind in known
        )


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial")]
    operations = [migrations.RunPython(add_defaults, migrations.RunPython.noop)]
