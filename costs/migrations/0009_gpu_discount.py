from typing import Any

from django.db import migrations, models


def keep_existing_figures(apps: Any, schema_editor: Any) -> None:
    """Rows priced before this field discounted the whole node, GPUs included: they keep
    that (their GPU discount is their discount), so no figure changes meaning."""
    pricing = apps.get_model("cost", "ClusterPricing")
    pricing.objects.filter(discount_percent__gt=0).update(gpu_discount_percent=models.F("discount_percent"))


class Migration(migrations.Migration):
    """A GPU discount apart from the CPU and RAM one (issue 29): OpenCost's `discount`
    applies to CPU and RAM only. New pricing rows default to 0 (GPUs at their price)."""

    dependencies = [
        ("cost", "0008_cost_snapshots"),
    ]

    operations = [
        migrations.AddField(
            model_name="clusterpricing",
            name="gpu_discount_percent",
            field=models.DecimalField(decimal_places=2, default=0, max_digits=5),
        ),
        migrations.AddConstraint(
            model_name="clusterpricing",
            constraint=models.CheckConstraint(
                condition=models.Q(("gpu_discount_percent__gte", 0), ("gpu_discount_percent__lte", 100)),
                name="clusterpricing_gpu_discount_range",
            ),
        ),
        migrations.RunPython(keep_existing_figures, migrations.RunPython.noop),
    ]
