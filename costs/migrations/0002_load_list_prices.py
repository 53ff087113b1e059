"""Ship the list prices with the schema (dated 2026-01-01); later changes come from
`manage.py cost_load_prices` as new dated rows."""

from datetime import date
from typing import Any

from django.db import migrations


def load(apps: Any, schema_editor: Any) -> None:
    from costs.pricelist import list_prices

    model = apps.get_model("cost", "InstancePrice")
    model.objects.bulk_create(
        [
            model(
                provider=provider,
                region=region,
                instance_type=instance_type,
                hourly=hourly,
                valid_from=date(2026, 1, 1),
            )
            for provider, region, instance_type, hourly in list_prices()
        ],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [("cost", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
